"""Static checks of the module's files: CMake lists match the disk, the .ui matches the code, the module imports
without torch/MONAI/meddenoiselib, the icon is a real 128x128 PNG, the extension CMake, description JSON and
LICENSE pass what ExtensionsIndex checks, the extension configures against a stub SlicerConfig."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .conftest import MODULE_DIR, REPO

FAKES = Path(__file__).resolve().parent / "fakes.py"


def _cmake_list(text: str, variable: str) -> list[str]:
    match = re.search(rf"set\(\s*{variable}\s+(.*?)\)", text, flags=re.DOTALL)
    assert match, f"{variable} not found"
    items = [line.split("#", 1)[0].strip() for line in match.group(1).splitlines()]
    module_name = re.search(r"set\(\s*MODULE_NAME\s+(\S+)\s*\)", text).group(1)
    return [item.replace("${MODULE_NAME}", module_name) for item in " ".join(items).split() if item]


def test_cmake_lists_every_shipped_file():
    """SCRIPTS + RESOURCES in MedDenoise/CMakeLists.txt == the files under MedDenoise/ (a file not listed is not
    packaged; a listed file that is missing breaks the build)."""
    text = (MODULE_DIR / "CMakeLists.txt").read_text()
    scripts, resources = _cmake_list(text, "MODULE_PYTHON_SCRIPTS"), _cmake_list(text, "MODULE_PYTHON_RESOURCES")
    assert len(set(scripts + resources)) == len(scripts + resources), "a file is listed twice"
    assert all(name.endswith(".py") for name in scripts)
    assert not any(name.endswith(".py") for name in resources)
    on_disk = sorted(
        path.relative_to(MODULE_DIR).as_posix()
        for path in MODULE_DIR.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.name != "CMakeLists.txt"
        and path.relative_to(MODULE_DIR).parts[0] != "Testing"
        and not path.name.endswith(".pyc")
    )
    assert sorted(scripts + resources) == on_disk
    assert "WITH_GENERIC_TESTS" in text and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


@pytest.mark.skipif(
    shutil.which("cmake") is None or not any(shutil.which(c) for c in ("c++", "g++", "clang++")),
    reason="cmake and a C++ compiler are needed (project() enables C and C++)",
)
def test_cmake_configures_against_a_stub_slicer(tmp_path):
    """Configure the real top-level CMakeLists.txt against a stub ``SlicerConfig.cmake`` whose macros record their
    arguments: proves the CMake files parse and hand exactly these files to slicerMacroBuildScriptedModule."""
    stub = tmp_path / "stub"
    stub.mkdir()
    record = tmp_path / "record.txt"
    (stub / "SlicerConfig.cmake").write_text(
        textwrap.dedent(f"""
        set(Slicer_USE_FILE "${{CMAKE_CURRENT_LIST_DIR}}/UseSlicer.cmake")
        set(Slicer_EXTENSION_GENERATE_CONFIG "${{CMAKE_CURRENT_LIST_DIR}}/Empty.cmake")
        set(Slicer_EXTENSION_CPACK "${{CMAKE_CURRENT_LIST_DIR}}/Empty.cmake")
        set(Slicer_QTSCRIPTEDMODULES_LIB_DIR "lib/Slicer-5.10/qt-scripted-modules")
        set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR "lib/Slicer-5.10/qt-scripted-modules")
        set(BUILD_TESTING ON)
        macro(slicerMacroBuildScriptedModule)
          cmake_parse_arguments(MY "WITH_GENERIC_TESTS" "NAME" "SCRIPTS;RESOURCES" ${{ARGN}})
          file(APPEND "{record.as_posix()}" "NAME=${{MY_NAME}}\\nSCRIPTS=${{MY_SCRIPTS}}\\n")
          file(APPEND "{record.as_posix()}" "RESOURCES=${{MY_RESOURCES}}\\nGENERIC=${{MY_WITH_GENERIC_TESTS}}\\n")
        endmacro()
        macro(slicer_add_python_unittest)
          file(APPEND "{record.as_posix()}" "UNITTEST=${{ARGN}}\\n")
        endmacro()
        """)
    )
    (stub / "UseSlicer.cmake").write_text("")
    (stub / "Empty.cmake").write_text("")
    build = tmp_path / "build"
    result = subprocess.run(
        [
            "cmake",
            "-S",
            str(REPO),
            "-B",
            str(build),
            f"-DSlicer_DIR={stub}",
            "-DCMAKE_C_COMPILER_WORKS=1",
            "-DCMAKE_CXX_COMPILER_WORKS=1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    fields = dict(line.split("=", 1) for line in record.read_text().splitlines())
    text = (MODULE_DIR / "CMakeLists.txt").read_text()
    assert fields["NAME"] == "MedDenoise" and fields["GENERIC"] == "TRUE"
    assert fields["SCRIPTS"].split(";") == _cmake_list(text, "MODULE_PYTHON_SCRIPTS")
    assert fields["RESOURCES"].split(";") == _cmake_list(text, "MODULE_PYTHON_RESOURCES")
    assert fields["UNITTEST"] == "SCRIPT;MedDenoise.py"
    bundled = build / "lib/Slicer-5.10/qt-scripted-modules/MedDenoiseLibrarySource"
    assert (bundled / "pyproject.toml").is_file() and (
        bundled / "MedDenoiseLib/meddenoiselib/cli/__init__.py"
    ).is_file()
    assert (bundled / "LICENSE").read_text() == (REPO / "LICENSE").read_text()
    assert not list(bundled.rglob("__pycache__"))
    # the sample data the module registers is found in that installed copy, with the right checksums
    from MedDenoiseModuleLib.sampledata import CHEST_CT_FILES, chest_ct_folder

    installed_module = bundled.parent
    folder = chest_ct_folder(installed_module)
    assert folder is not None and folder.is_relative_to(bundled)
    assert [hashlib.sha256((folder / name).read_bytes()).hexdigest() for name, _ in CHEST_CT_FILES] == [
        digest for _, digest in CHEST_CT_FILES
    ]


def _cmake_value(text: str, variable: str) -> str:
    match = re.search(rf'set\(\s*{variable}\s+"([^"]*)"\s*\)', text)
    assert match, variable
    return match.group(1)


#: raw.githubusercontent.com URLs of this repository map to files of the checkout
_RAW = "https://raw.githubusercontent.com/MedDenoise/MedDenoise/main/"


def test_extension_cmake_fields_pass_the_extensions_index_checks():
    """What ExtensionsIndex's scripts/check_description_files.py checks in the top-level CMakeLists.txt (read from
    its source; the checks themselves need the network): project name = description file name, icon and screenshot
    URLs present and http(s), plus Slicer's conventions for contributors."""
    text = (REPO / "CMakeLists.txt").read_text()
    assert re.search(r"^project\(MedDenoise\)", text, flags=re.MULTILINE)
    assert (REPO / "MedDenoise.json").is_file()  # <project name>.json
    assert _cmake_value(text, "EXTENSION_CATEGORY") == "Filtering"  # an accepted catalog category
    contributors = _cmake_value(text, "EXTENSION_CONTRIBUTORS")
    assert all(re.fullmatch(r"[^(),]+ \([^()]+\)", c.strip()) for c in contributors.split(",")), contributors
    icon = _cmake_value(text, "EXTENSION_ICONURL")
    assert icon.startswith(_RAW) and (REPO / icon[len(_RAW) :]).is_file()
    screenshots = _cmake_value(text, "EXTENSION_SCREENSHOTURLS").split()
    assert screenshots and all(url.startswith("https://") and url.endswith(".png") for url in screenshots)
    # the screenshot must be taken in a real Slicer: the README names the path it goes to
    readme = (REPO / "README.md").read_text()
    assert all(url[len(_RAW) :] in readme for url in screenshots)
    assert re.search(r'set\(EXTENSION_DEPENDS\s+"PyTorch"\)', text)
    for line in (
        "find_package(Slicer REQUIRED)",
        "include(${Slicer_USE_FILE})",
        "add_subdirectory(MedDenoise)",
        "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
        "include(${Slicer_EXTENSION_CPACK})",
    ):
        assert line in text, line


#: properties of Slicer's catalog entry schema v1.0.2 (Slicer/Schemas/slicer-extension-catalog-entry-schema-*)
_CATALOG_PROPERTIES = {
    "$schema": str,
    "category": str,
    "scm_url": str,
    "scm_revision": str,
    "scm_type": str,
    "build_dependencies": list,
    "dicom_support_rule": str,
    "build_subdirectory": str,
    "enabled": bool,
    "tier": int,
}


def test_extension_description_json_and_licence():
    entry = json.loads((REPO / "MedDenoise.json").read_text())
    assert {"$schema", "category", "scm_url"} <= set(entry)  # required
    assert set(entry) <= set(_CATALOG_PROPERTIES)  # additionalProperties: false
    assert all(isinstance(entry[key], _CATALOG_PROPERTIES[key]) for key in entry)
    assert re.fullmatch(
        r"https://raw\.githubusercontent\.com/Slicer/Slicer/main/Schemas/"
        r"slicer-extension-catalog-entry-schema-v1\.0\.\d\.json#",
        entry["$schema"],
    )
    assert entry["build_dependencies"] == ["PyTorch"]  # SlicerPyTorch's CMake project name
    text = (REPO / "CMakeLists.txt").read_text()
    assert entry["category"] == _cmake_value(text, "EXTENSION_CATEGORY")
    assert entry["scm_url"].startswith("https://") and entry["scm_url"].removesuffix(".git") in _cmake_value(
        text, "EXTENSION_HOMEPAGE"
    )
    assert 1 <= entry["tier"] <= 5
    licence = (REPO / "LICENSE").read_text()
    assert licence.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in licence
    assert re.search(r'^license = "Apache-2.0"', (REPO / "pyproject.toml").read_text(), flags=re.MULTILINE)


def _ui_widgets() -> dict[str, ET.Element]:
    root = ET.parse(MODULE_DIR / "Resources/UI/MedDenoise.ui").getroot()
    return {widget.get("name"): widget for widget in root.iter("widget")}


def test_ui_file_matches_the_code_and_the_parameter_node():
    widgets = _ui_widgets()
    assert widgets["MedDenoise"].get("class") == "qMRMLWidget"
    source = (MODULE_DIR / "MedDenoise.py").read_text()
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    assert used <= set(widgets), f"used in MedDenoise.py but missing in the .ui: {used - set(widgets)}"

    bound = {}
    for name, widget in widgets.items():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.find("string").text] = (name, widget.get("class"))
    tree = ast.parse(source)
    wrapper = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "MedDenoiseParameterNode"
    )
    fields = [item.target.id for item in wrapper.body if isinstance(item, ast.AnnAssign)]
    assert fields == [
        "inputVolume",
        "outputVolume",
        "maskNode",
        "excludeNode",
        "measureNode",
        "noiseSdMapNode",
        "estimateNoiseSdMap",
        "wholeSequence",
        "model",
        "weightsFile",
        "modality",
        "ctWindow",
        "windowCenter",
        "windowWidth",
        "ensemble",
        "refine",
        "noiseLevelAuto",
        "noiseLevel",
        "noiseLevelUnits",
        "strength",
        "createResidual",
        "createNoiseMap",
        "device",
        "roiSize",
        "overlap",
        "sliceAxis",
        "separateProcess",
        "leaveMetalOut",
        "magnitudeFloor",
        "coils",
        "stabilizePhotonNoise",
    ]
    assert set(bound) == set(fields) - {"model", "weightsFile"}, (
        "every setting but the model list and the weights path (a str, which the path connector cannot take) is bound"
    )
    expected_classes = {
        "inputVolume": "qMRMLNodeComboBox",
        "outputVolume": "qMRMLNodeComboBox",
        "maskNode": "qMRMLNodeComboBox",
        "excludeNode": "qMRMLNodeComboBox",
        "measureNode": "qMRMLNodeComboBox",
        "noiseSdMapNode": "qMRMLNodeComboBox",
        "estimateNoiseSdMap": "QCheckBox",
        "wholeSequence": "QCheckBox",
        "modality": "QComboBox",
        "ctWindow": "QComboBox",
        "windowCenter": "QDoubleSpinBox",
        "windowWidth": "QDoubleSpinBox",
        "ensemble": "QComboBox",
        "refine": "QComboBox",
        "noiseLevelAuto": "QCheckBox",
        "noiseLevel": "QDoubleSpinBox",
        "noiseLevelUnits": "QComboBox",
        "strength": "ctkSliderWidget",
        "createResidual": "QCheckBox",
        "createNoiseMap": "QCheckBox",
        "device": "QComboBox",
        "roiSize": "QSpinBox",
        "overlap": "QDoubleSpinBox",
        "sliceAxis": "QComboBox",
        "separateProcess": "QCheckBox",
        "leaveMetalOut": "QCheckBox",
        "magnitudeFloor": "QComboBox",
        "coils": "QSpinBox",
        "stabilizePhotonNoise": "QCheckBox",
    }
    assert {field: cls for field, (_, cls) in bound.items()} == expected_classes
    for required in (
        "applyButton",
        "cancelButton",
        "progressBar",
        "statusLabel",
        "modelComboBox",
        "guardLabel",
        "logTextEdit",
        "reportTableView",
        "regionTableView",
        "measureSelector",
        "advancedCollapsibleButton",
    ):
        assert required in widgets, required
    assert widgets["logTextEdit"].get("class") == "QPlainTextEdit"
    assert widgets["reportTableView"].get("class") == widgets["regionTableView"].get("class") == "qMRMLTableView"
    # connectGui sets a node selector's nodeTypes from the annotation: the input offers exactly INPUT_NODE_TYPES
    from MedDenoiseModuleLib.masks import MASK_NODE_TYPES
    from MedDenoiseModuleLib.volumes import INPUT_NODE_TYPES

    annotations = {
        item.target.id: ast.unparse(item.annotation) for item in wrapper.body if isinstance(item, ast.AnnAssign)
    }
    for field, types in (
        ("inputVolume", INPUT_NODE_TYPES),
        ("outputVolume", INPUT_NODE_TYPES),
        ("maskNode", MASK_NODE_TYPES),
        ("excludeNode", MASK_NODE_TYPES),
        ("measureNode", MASK_NODE_TYPES),
    ):
        assert annotations[field] == f"Union[{', '.join(types)}]", field
        listed = [s.text for s in widgets[bound[field][0]].find("property[@name='nodeTypes']").iter("string")]
        assert listed == list(types), field
    # every selector and the table view get the scene
    receivers = {
        c.find("receiver").text
        for c in ET.parse(MODULE_DIR / "Resources/UI/MedDenoise.ui").getroot().iter("connection")
        if c.find("slot").text == "setMRMLScene(vtkMRMLScene*)"
    }
    assert receivers == {
        "excludeSelector",
        "inputSelector",
        "maskSelector",
        "measureSelector",
        "noiseSdMapSelector",
        "outputSelector",
        "regionTableView",
        "reportTableView",
    }


def test_icon_is_a_128_pixel_png():
    data = (MODULE_DIR / "Resources/Icons/MedDenoise.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (128, 128)


BLOCK_AND_IMPORT = """
import importlib.abc, sys
BLOCKED = {"torch", "monai", "meddenoiselib"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, Block())
sys.path[:0] = [MODULE_DIR, FAKES_DIR]
import fakes
with fakes.slicer_gui_fakes():
    import MedDenoise
    class Parent:
        pass
    module = MedDenoise.MedDenoise(Parent())
    assert module.parent.title == "MedDenoise" and module.parent.categories == ["Filtering.Denoising"]
    assert module.parent.contributors == ["MedDenoise developers (MedDenoise project)"]
    assert module.parent.acknowledgementText and module.parent.helpText
    logic = MedDenoise.MedDenoiseLogic()
    widget = MedDenoise.MedDenoiseWidget()
    assert issubclass(MedDenoise.MedDenoiseTest, fakes.unittest.TestCase)
    assert MedDenoise.missing_modules() == ["torch", "monai", "meddenoiselib"]
    assert [c.name for c in MedDenoise.available_models()] == ["auto", "default"]
    try:
        logic.process(None)
    except ValueError as exc:
        assert "No input volume" in str(exc)
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
    assert loaded == [], loaded
print("imported without", sorted(BLOCKED))
"""


def test_module_imports_without_torch_monai_or_meddenoiselib():
    """A fresh interpreter where importing torch, monai or meddenoiselib raises; the GUI modules slicer-core lacks
    are the fakes of fakes.py (qt.QTimer, slicer.i18n, slicer.ScriptedLoadableModule, parameterNodeWrapper)."""
    code = BLOCK_AND_IMPORT.replace("MODULE_DIR", repr(str(MODULE_DIR))).replace("FAKES_DIR", repr(str(FAKES.parent)))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "imported without" in result.stdout


def test_heavy_imports_happen_inside_functions_only():
    """AST check of every shipped .py: torch, monai and meddenoiselib are never imported at module level."""
    for path in [MODULE_DIR / "MedDenoise.py", *sorted((MODULE_DIR / "MedDenoiseModuleLib").glob("*.py"))]:
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"torch", "monai", "meddenoiselib", "PyTorchUtils"}, (path, name)


def test_library_sources_are_found_for_installation(tmp_path):
    """The first Apply pip-installs meddenoiselib from the extension's bundled copy or the source checkout."""
    from MedDenoiseModuleLib.dependencies import LIBRARY_SOURCE_FOLDER, find_library_source

    assert find_library_source(MODULE_DIR) == REPO  # running from the repository: MedDenoise/.. is the project
    installed = tmp_path / "qt-scripted-modules"
    (installed / LIBRARY_SOURCE_FOLDER).mkdir(parents=True)
    assert find_library_source(installed) is None
    shutil.copyfile(REPO / "pyproject.toml", installed / LIBRARY_SOURCE_FOLDER / "pyproject.toml")
    assert find_library_source(installed) == installed / LIBRARY_SOURCE_FOLDER


def test_settings_are_checked_with_messages_naming_the_setting():
    from MedDenoiseModuleLib import DenoiseSettings, Device

    assert DenoiseSettings(device=Device.CUDA).device == "cuda"
    assert DenoiseSettings(noise_level=25.5).sigma == pytest.approx(0.1)
    from meddenoiselib.transforms import NoiseSD

    assert DenoiseSettings(noise_sd=30.0).sigma == NoiseSD(30.0)  # converted by the library, per scaling
    for kwargs, name in [
        ({"noise_sd": 0.0}, "`noise_sd`"),
        ({"noise_level": 300.0}, "goes in as `noise_sd`"),
        ({"noise_sd": 20.0, "noise_level": 10.0}, "`noise_level` \\(0-255 scale\\) or as `noise_sd`"),
        ({"device": "gpu"}, "`device`"),
        ({"overlap": 1.0}, "`overlap`"),
        ({"roi_size": -1}, "`roi_size`"),
        ({"slice_axis": 3}, "`slice_axis`"),
        ({"noise_level": -1.0}, "`noise_level`"),
        ({"model": " "}, "`model`"),
        ({"ensemble": 3}, "`ensemble`"),
        ({"refine": "yes"}, "`refine`"),
    ]:
        with pytest.raises(ValueError, match=name):
            DenoiseSettings(**kwargs)


def test_ensemble_auto_is_left_to_the_library_and_a_chosen_size_is_passed():
    """The default ``auto`` adds nothing to the command (the CLI's own default); an explicit size, 1 included (the
    CLI would otherwise pick 8 views for a 2D image), is passed on both paths."""
    from MedDenoiseModuleLib import DenoiseSettings, Ensemble

    default = DenoiseSettings()
    assert default.ensemble == "auto"
    assert "--ensemble" not in default.cli_arguments()
    assert "ensemble" not in default.denoiser_arguments()
    off = DenoiseSettings(ensemble=Ensemble.ONE)
    assert off.cli_arguments()[-2:] == ["--ensemble", "1"]
    assert off.denoiser_arguments()["ensemble"] == 1
    assert Ensemble.AUTO.label().startswith("auto")


def test_refine_auto_is_left_to_the_library_and_on_or_off_is_passed():
    """A 300-slice CT is not refined by ``auto`` (time): the user can ask for it (``on``) or switch it off for speed;
    the default adds nothing, so the library's own ``auto`` decides, on both paths."""
    from MedDenoiseModuleLib import DenoiseSettings, Refine

    default = DenoiseSettings()
    assert default.refine == "auto"
    assert "--refine" not in default.cli_arguments() and "refine" not in default.denoiser_arguments()
    for choice in (Refine.ON, Refine.OFF):
        settings = DenoiseSettings(refine=choice)
        assert settings.cli_arguments()[-2:] == ["--refine", choice.value]
        assert settings.denoiser_arguments()["refine"] == choice.value
    assert Refine.OFF.label().startswith("off")


def test_module_files_parse_as_python_3_9():
    """Slicer 5.6/5.8 run Python 3.9: the module must still load there to show its version message (the library
    itself needs 3.10). Every shipped .py parses with the 3.9 grammar and defers annotations."""
    for path in [MODULE_DIR / "MedDenoise.py", *sorted((MODULE_DIR / "MedDenoiseModuleLib").glob("*.py"))]:
        source = path.read_text()
        ast.parse(source, filename=str(path), feature_version=(3, 9))
        if path.parent.name == "MedDenoiseModuleLib":
            assert "from __future__ import annotations" in source, path  # `str | None` hints are never evaluated
