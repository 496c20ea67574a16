"""The version guard, the library version check and the install plan (tiers A/C).

``runtime_problem``, ``library_update_needed`` and ``plan_library_install`` are plain functions tested on real
``pyproject.toml`` files and real ``packaging`` requirement parsing. ``ensureDependencies`` is wiring: it runs with
the GUI fakes of ``fakes.py`` and a recording runner in place of pip (what it asserts: which step runs, what is asked,
which command and constraints reach pip, what reaches the log; pip itself is not run).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from MedDenoiseModuleLib import dependencies, install
from MedDenoiseModuleLib.dependencies import library_update_needed, runtime_problem, version_tuple
from MedDenoiseModuleLib.install import pip_install_command, plan_library_install

from .conftest import REPO, add_volume_node, oblique_ijk_to_ras
from .fakes import slicer_gui_fakes

# (Slicer version, its Python): 5.6/5.8 ship 3.9, 5.10+ ship 3.12
GUARD_CASES = [
    ("5.6.2", (3, 9, 10), True),
    ("5.8.1", (3, 9, 10), True),
    ("5.10.0", (3, 12, 10), False),
    (None, (3, 10, 0), False),
]


@pytest.mark.parametrize("slicer_version, python, refused", GUARD_CASES)
def test_runtime_guard_names_the_slicer_that_is_needed(slicer_version, python, refused):
    message = runtime_problem(python, slicer_version)
    if not refused:
        assert message is None
        return
    assert message.startswith("MedDenoise needs 3D Slicer 5.10 or later.")
    assert f"This Slicer ({slicer_version}) has Python 3.9.10" in message and message.endswith("Nothing was installed.")


def _project(folder: Path, version: str, dependencies_: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ",\n".join(f'    "{d}"' for d in dependencies_)
    (folder / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["setuptools"]\n\n[project]\nname = "meddenoiselib"\nversion = "{version}"\n'
        f'dependencies = [\n{lines},\n]\n\n[tool.other]\nversion = "9.9"\n'
    )
    return folder


def test_library_version_check_finds_an_older_install(tmp_path, monkeypatch):
    source = _project(tmp_path / "src", "0.3.0", ["numpy>=1.24"])
    assert dependencies.packaged_library_version(source) == "0.3.0"  # the [project] version, not [tool.other]
    monkeypatch.setattr(dependencies, "installed_version", lambda name: "0.2.9")
    assert library_update_needed(source) == ("0.2.9", "0.3.0")
    monkeypatch.setattr(dependencies, "installed_version", lambda name: "0.3.0")
    assert library_update_needed(source) is None  # this checkout's CLI has every option the module passes
    assert library_update_needed(source, (("--no-such-option", "1"),)) == ("0.3.0 (without --no-such-option)", "0.3.0")
    monkeypatch.setattr(dependencies, "installed_version", lambda name: None)
    assert library_update_needed(source) is None  # missing is not outdated
    assert version_tuple("2.8.0+cu128") == (2, 8, 0) and version_tuple("1.6.1rc2") == (1, 6, 1)


def test_install_plan_blocks_downgrades_and_lists_upgrades(tmp_path):
    source = _project(
        tmp_path / "src",
        "0.2.0",
        [
            "torch>=2.8",
            "monai>=1.6,<1.7",
            "pydicom>=3.0",
            "numpy>=1.24",
            "safetensors>=0.4",
            "pywin32>=300; sys_platform == 'win32'",
        ],
    )
    installed = {
        "torch": "2.8.0+cu128",
        "MONAI": "1.6.1",
        "pydicom": "2.4.4",
        "numpy": "2.1.3",
        "SimpleITK": "2.4.0",
        "meddenoiselib": "0.1.0",
        "weird": "not-a-version",
    }
    plan = plan_library_install(source, installed, imported={"pydicom.dataset", "numpy"})
    assert plan.blocked is None and plan.version == "0.2.0"
    assert plan.new == ("safetensors>=0.4",) or sys.platform == "win32"
    assert [(c.name, c.installed, c.required, c.imported) for c in plan.upgrades] == [
        ("pydicom", "2.4.4", ">=3.0", True)
    ]
    assert plan.restart_needed == ("pydicom",)
    assert "Upgrades: pydicom 2.4.4 -> pydicom>=3.0" in plan.summary()
    assert "restart Slicer afterwards): pydicom" in plan.summary()
    assert plan.constraints == (
        "monai>=1.6.1",
        "numpy>=2.1.3",
        "pydicom>=2.4.4",
        "simpleitk>=2.4.0",
        "torch==2.8.0+cu128",
    )
    for line in plan.constraints:  # every line is a requirement pip can read
        requirement = Requirement(line)
        if requirement.name == "torch":
            assert str(requirement.specifier) == "==2.8.0+cu128"  # never replaced in place
        else:
            version = Version(installed[next(k for k in installed if k.lower() == requirement.name)].split("+")[0])
            assert requirement.specifier.contains(version) and not requirement.specifier.contains(
                Version(f"{version.major}.{version.minor}.{version.micro - 1}") if version.micro else Version("0")
            )

    newer = plan_library_install(source, {**installed, "MONAI": "1.7.0"}, imported=set())
    assert newer.blocked.startswith(
        "Installing meddenoiselib would downgrade packages in Slicer's Python (monai "
        "1.7.0 is installed, meddenoiselib 0.2.0 needs monai<1.7,>=1.6)"
    )
    assert newer.blocked.endswith(
        "Nothing was installed. Another extension probably installed the newer version; "
        "use a Slicer without it, or a MedDenoise release that supports it."
    )
    pinned = _project(tmp_path / "pinned", "0.2.0", ["numpy==1.26.4"])
    assert plan_library_install(pinned, {"numpy": "2.0.0"}, imported=()).blocked
    assert not plan_library_install(pinned, {"numpy": "1.25.0"}, imported=()).blocked

    command = pip_install_command("/opt/Slicer/bin/PythonSlicer", plan, "/tmp/c.txt")
    assert command == [
        "/opt/Slicer/bin/PythonSlicer",
        "-m",
        "pip",
        "install",
        "--upgrade",
        "--upgrade-strategy",
        "only-if-needed",
        "--constraint",
        "/tmp/c.txt",
        str(source),
    ]


def test_the_real_pyproject_plans_without_error():
    plan = install.plan_library_install(REPO)
    assert "monai>=1.6,<1.7" in plan.requirements and plan.version
    assert not any(line.startswith("meddenoiselib") for line in plan.constraints)


class RecordingRunner:
    """Stands in for pip: records the command and the constraints file it was given, prints two lines, exits 0."""

    runs: list = []

    def __init__(self) -> None:
        self.lines, self.code = [], None

    def start(self, command, env=None, cwd=None) -> None:
        constraints = Path(command[command.index("--constraint") + 1]).read_text()
        RecordingRunner.runs.append((list(command), constraints))
        self.lines, self.code = ["Processing ./MedDenoiseLibrarySource", "Successfully installed meddenoiselib"], 0

    def read_lines(self):
        lines, self.lines = self.lines, []
        return lines

    def exit_code(self):
        return self.code

    def kill(self) -> None:
        pass


@pytest.fixture()
def logic(monkeypatch):
    RecordingRunner.runs = []
    with slicer_gui_fakes() as fakes:
        import MedDenoise

        logic = MedDenoise.MedDenoiseLogic(runnerFactory=RecordingRunner)
        log: list[str] = []
        yield type("Setup", (), dict(module=MedDenoise, logic=logic, log=log, confirm=fakes.confirm, scene=fakes.scene))


def test_too_old_python_stops_before_anything(logic, monkeypatch):
    monkeypatch.setattr(logic.module, "runtime_problem", lambda *a: runtime_problem((3, 9, 10), "5.8.1"))
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # importing it would raise: it must not be tried
    with pytest.raises(RuntimeError, match="needs 3D Slicer 5.10 or later"):
        logic.logic.ensureDependencies(logCallback=logic.log.append)
    assert RecordingRunner.runs == [] and logic.confirm.questions == [] and logic.log[0].startswith("MedDenoise needs")


def test_old_torch_is_not_replaced_but_sent_to_pytorch_utils(logic, monkeypatch):
    monkeypatch.setattr(logic.module, "torch_too_old", lambda: True)
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)
    with pytest.raises(
        RuntimeError,
        match=r"Open the PyTorch Utils module.*install torch >=2.8 there, restart "
        r"Slicer.*a torch in use cannot be upgraded in place",
    ):
        logic.logic.ensureDependencies(logCallback=logic.log.append)
    assert RecordingRunner.runs == []


def test_outdated_library_is_reinstalled_with_constraints_and_every_step_logged(logic, monkeypatch, tmp_path):
    source = _project(tmp_path / "MedDenoiseLibrarySource", "0.2.0", ["numpy>=1.24", "monai>=1.6"])
    monkeypatch.setattr(logic.module, "find_library_source", lambda folder: source)
    monkeypatch.setattr(logic.module, "library_update_needed", lambda folder: ("0.1.0", "0.2.0"))
    assert logic.logic.ensureDependencies(logCallback=logic.log.append)
    ((command, constraints),) = RecordingRunner.runs
    assert command[1:5] == ["-m", "pip", "install", "--upgrade"] and command[-1] == str(source)
    assert "numpy>=" in constraints and "meddenoiselib" not in constraints
    (question,) = logic.confirm.questions
    assert "meddenoiselib 0.1.0 is older than the bundled 0.2.0" in question
    assert "Nothing already installed is downgraded, and torch is not changed." in question
    assert logic.log[:2] == [
        "Checking Python packages: torch, MONAI, meddenoiselib",
        "Installation needed (meddenoiselib 0.1.0 is older than the bundled 0.2.0).",
    ]
    assert "Successfully installed meddenoiselib" in logic.log and logic.log[-2] == "pip finished."


def test_declined_or_blocked_installs_run_nothing(logic, monkeypatch, tmp_path):
    source = _project(tmp_path / "MedDenoiseLibrarySource", "0.2.0", ["numpy<1.0"])
    monkeypatch.setattr(logic.module, "find_library_source", lambda folder: source)
    monkeypatch.setattr(logic.module, "library_update_needed", lambda folder: ("0.1.0", "0.2.0"))
    with pytest.raises(RuntimeError, match=r"would downgrade packages in Slicer's Python \(numpy"):
        logic.logic.ensureDependencies(logCallback=logic.log.append)
    assert RecordingRunner.runs == [] and logic.confirm.questions == []
    shutil.rmtree(source)
    _project(source, "0.2.0", ["numpy>=1.0"])
    logic.confirm.answer = False
    assert logic.logic.ensureDependencies(logCallback=logic.log.append) is False
    assert RecordingRunner.runs == [] and logic.log[-1] == "Installation declined."


def test_dicom_modality_reaches_the_run_settings(logic, temp_root):
    """Wiring: with modality "from DICOM" the logic reads the series' DICOM Modality and puts the library's word
    into the run's settings (``--modality`` is passed only to a library that has it)."""
    import slicer

    logic.logic.temporaryRoot = str(temp_root)
    node = add_volume_node(logic.scene, np.zeros((2, 8, 8), np.int16), oblique_ijk_to_ras(), name="ct")
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(logic.scene)
    item = hierarchy.CreateItem(hierarchy.GetSceneItemID(), node)
    hierarchy.SetItemAttribute(item, "DICOM.Modality", "CT")
    task = logic.logic.process(
        node, model="median", separateProcess=False, showResult=False, logCallback=logic.log.append
    )
    assert task.settings.modality == "ct"
    assert "DICOM Modality CT: modality 'ct' for the automatic model choice" in logic.log
    task = logic.logic.process(node, model="median", modality="us", separateProcess=False, showResult=False)
    assert task.settings.modality == "us"  # a chosen modality wins


def test_what_the_loaded_file_says_reaches_the_run_settings(logic, temp_root, tmp_path, ct_series_dir):
    """The module hands the library a NRRD of the node, which has lost the file's header, name and sidecar: the logic
    reads them from the node's storage file instead (a PET NIfTI with its dcm2niix sidecar, Modality PT, is ``other``;
    a BIDS ``_T1w`` is MR; a DICOM file loaded without the DICOM module has its tag, a MetaImage its Modality field),
    and a chosen modality still wins."""
    import json

    import nibabel

    logic.logic.temporaryRoot = str(temp_root)

    def loaded_from(name: str):
        path = tmp_path / name
        nibabel.save(nibabel.Nifti1Image(np.zeros((8, 8, 2), np.int16), np.eye(4)), path)
        node = add_volume_node(logic.scene, np.zeros((2, 8, 8), np.int16), np.eye(4), name=name)
        storage = logic.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
        storage.SetFileName(str(path))
        node.SetAndObserveStorageNodeID(storage.GetID())
        return node

    def modality_of(node, **options) -> str | None:
        run = logic.logic.process(node, model="median", separateProcess=False, showResult=False, **options)
        return run.settings.modality

    pet = loaded_from("scan.nii.gz")
    (tmp_path / "scan.json").write_text(json.dumps({"Modality": "PT", "Units": "BQML"}))
    assert modality_of(pet, logCallback=logic.log.append) == "other"
    assert any("scan.json gives Modality PT; modality 'other'" in line for line in logic.log), logic.log
    t1 = loaded_from("sub-01_T1w.nii.gz")
    assert modality_of(t1) == "mr"
    assert modality_of(t1, modality="us") == "us"
    assert modality_of(loaded_from("head.nii.gz")) is None  # nothing in its name: the library judges the voxels
    freesurfer = loaded_from("head.nii.gz")
    mgz = tmp_path / "T1.mgz"
    nibabel.save(nibabel.MGHImage(np.zeros((8, 8, 2), np.uint8), np.eye(4)), mgz)
    freesurfer.GetStorageNode().SetFileName(str(mgz))
    assert modality_of(freesurfer) == "mr"
    dicom = loaded_from("slice.nii.gz")
    dicom.GetStorageNode().SetFileName(str(sorted(ct_series_dir.glob("*.dcm"))[0]))  # Add Data of one DICOM file
    assert modality_of(dicom, logCallback=logic.log.append) == "ct"
    assert any("DICOM Modality is CT; modality 'ct'" in line for line in logic.log), logic.log
    import SimpleITK as sitk

    metaimage = tmp_path / "us.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 8, 8), np.uint8)), str(metaimage))
    raw = metaimage.read_bytes()
    metaimage.write_bytes(raw.replace(b"ElementDataFile", b"Modality = MET_MOD_US\nElementDataFile", 1))
    ultrasound = loaded_from("us0.nii.gz")
    ultrasound.GetStorageNode().SetFileName(str(metaimage))
    assert modality_of(ultrasound) == "us"
