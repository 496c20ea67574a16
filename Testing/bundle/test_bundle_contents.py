"""What the bundle folder holds and how its parts behave: layout, metadata, exported weights, licences, model
selection by name (burst and 3D models included), the reader and the adjacent-slices transform."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import jsonschema
import nibabel as nib
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from meddenoiselib.bundle import BUNDLE_ROOT, find_dataset, load_models_index, model_entry
from meddenoiselib.bundle.readers import VolumeReader
from meddenoiselib.bundle.transforms import AdjacentSlicesd
from meddenoiselib.demo import sample_path
from meddenoiselib.networks import create_network
from meddenoiselib.weights import WEIGHTS_DIR, list_shipped_weights, load_model_card

from .conftest import dicom_series_affine

ROOT = Path(BUNDLE_ROOT)
REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SEED_PAPERS = (
    "Beyond a Gaussian Denoiser",  # DnCNN, TIP 2017
    "Deep Dynamic Residual Attention Network",  # DRAN, Mathematics 2020
    "deep residual and multiscale encoder/decoder network",  # IRUNet, EMBC 2021
    "Residual Dense Network for Image Restoration",  # RDN, TPAMI 2020
    "Convolutional Denoising Autoencoders",  # conv-DAE, ICDMW 2016
    "Burst Denoising with Kernel Prediction Networks",  # KPN, CVPR 2018
)


def _export_script():
    path = REPO / "scripts" / "export_bundle_weights.py"
    spec = importlib.util.spec_from_file_location("export_bundle_weights", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------------ layout
def test_layout_and_package_data():
    for relative in ("LICENSE", "configs/metadata.json", "configs/inference.json", "configs/multi_gpu_inference.json",
                     "configs/logging.conf", "docs/README.md", "docs/data_license.txt", "models/model.pt",
                     "models/models.json"):
        assert (ROOT / relative).is_file(), relative
    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    assert "trained by the MedDenoise developers" in licence and "model card" in licence
    # configs/, models/, docs/ are not Python packages: they ship as package data of meddenoiselib
    assert '"bundle/**/*"' in (REPO / "pyproject.toml").read_text()
    for folder in ("configs", "models", "docs"):
        assert not (ROOT / folder / "__init__.py").exists()
    size = sum(p.stat().st_size for p in (ROOT / "models").glob("*.pt"))
    assert size < 3e6 * max(1, len(list_shipped_weights()))


def test_all_configs_are_json_and_name_the_network_by_dotted_path():
    config = json.loads((ROOT / "configs" / "inference.json").read_text())
    for key in ("dataset_dir", "output_dir", "network_def", "inferer", "preprocessing", "postprocessing", "dataset",
                "evaluator", "initialize", "run", "finalize", "model_name", "bundle_root", "device"):
        assert key in config, key
    assert config["network_def"]["_target_"].startswith("meddenoiselib.networks.")
    targets = [t["_target_"] for t in config["preprocessing"]["transforms"] + config["postprocessing"]["transforms"]]
    assert "meddenoiselib.transforms.NormalizeIntensityd" in targets
    assert "meddenoiselib.transforms.DenormalizeIntensityd" in targets
    assert targets[0] == "LoadImaged" and targets[-1] == "SaveImaged"
    multi = json.loads((ROOT / "configs" / "multi_gpu_inference.json").read_text())
    assert "partition_dataset" in multi["dataset#data"] and "even_divisible=False" in multi["dataset#data"]


# ---------------------------------------------------------------------------------------------------- metadata
def test_metadata_has_the_specification_keys_and_types():
    """The official schema can't be downloaded here: validate against the one written from the specification."""
    metadata = json.loads((ROOT / "configs" / "metadata.json").read_text())
    schema = json.loads((HERE / "metadata_schema.json").read_text())
    jsonschema.validate(metadata, schema)
    assert metadata["version"] in metadata["changelog"]
    for name in ("image",):
        spec = metadata["network_data_format"]["inputs"][name]
        assert (spec["type"], spec["format"], spec["num_channels"]) == ("image", "magnitude", 1)
    assert metadata["network_data_format"]["outputs"]["pred"]["num_channels"] == 1
    references = " ".join(metadata["references"])
    for title in SEED_PAPERS:
        assert title in references, title
    import monai

    assert metadata["monai_version"].split(".")[:2] == monai.__version__.split(".")[:2]
    assert metadata["required_packages_version"]["meddenoiselib"]


def test_metadata_eval_metrics_are_the_default_models_card():
    metadata = json.loads((ROOT / "configs" / "metadata.json").read_text())
    index = load_models_index()
    card = load_model_card(index["default"])
    assert metadata["eval_metrics"]["model"] == index["default"]
    for key, value in card["validation"].items():
        assert metadata["eval_metrics"][key] == value


# ----------------------------------------------------------------------------------------------------- weights
def test_every_shipped_model_is_exported_and_equals_its_safetensors():
    index = load_models_index()
    shipped = list_shipped_weights()
    assert sorted(index["models"]) == sorted(shipped), (
        "the bundle is out of date with meddenoiselib/weights: run python scripts/export_bundle_weights.py"
    )
    assert index["models"][index["default"]]["file"] == "model.pt"
    for name in shipped:
        entry = index["models"][name]
        state = torch.load(ROOT / "models" / entry["file"], map_location="cpu", weights_only=True)
        reference = load_file(str(WEIGHTS_DIR / f"{name}.safetensors"))
        assert sorted(state) == sorted(reference), name
        for key, tensor in reference.items():
            assert state[key].dtype == tensor.dtype and torch.equal(state[key], tensor), (name, key)
        arch = load_model_card(name)["architecture"]
        assert (entry["network"], entry["spatial_dims"], entry["in_channels"], entry["burst"]) == (
            arch["network"], arch["spatial_dims"], arch["in_channels"], arch.get("burst", 1))
        network = create_network(entry["network"], spatial_dims=entry["spatial_dims"],
                                 in_channels=entry["in_channels"], out_channels=entry["out_channels"])
        network.load_state_dict(state, strict=True)


def test_export_script_check_passes_and_output_is_reproducible(tmp_path, capsys):
    export = _export_script()
    assert export.main(["--check"]) == 0, capsys.readouterr().err
    copy = tmp_path / "bundle"
    shutil.copytree(ROOT / "configs", copy / "configs")
    assert export.main(["--bundle-root", str(copy)]) == 0
    for path in (ROOT / "models").iterdir():
        if path.suffix in (".pt", ".json"):
            assert (copy / "models" / path.name).read_bytes() == path.read_bytes(), path.name
    assert (copy / "configs" / "metadata.json").read_text() == (ROOT / "configs" / "metadata.json").read_text()


def test_data_license_names_every_data_set_in_the_model_cards():
    text = (ROOT / "docs" / "data_license.txt").read_text()
    for name in list_shipped_weights():
        training = load_model_card(name).get("training", {})
        for entry in training.get("data", []) + training.get("validation_data", []):
            data_set = entry.split("/")[0]
            assert f"[{data_set}]" in text, f"{name}: data set {data_set!r} is missing from docs/data_license.txt"


# ------------------------------------------------------------------------------------------ serving by name
def test_unknown_model_name_lists_the_served_models():
    with pytest.raises(ValueError, match="this bundle serves: default"):
        model_entry(BUNDLE_ROOT, "no-such-model")
    assert model_entry(BUNDLE_ROOT, "default")["file"] == "model.pt"


def _run_in_process(bundle_root: Path, **overrides) -> None:
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(
        config_file=str(bundle_root / "configs" / "inference.json"),
        logging_file=False,
        workflow_type="infer",
        bundle_root=str(bundle_root),
        **overrides,
    )
    workflow.initialize()
    assert workflow.check_properties() == []  # every required "infer" property of a MONAI bundle is defined
    workflow.run()
    workflow.finalize()


def test_model_name_selects_weights_and_architecture(tmp_path, monkeypatch):
    """Serve two extra models by name, as later shipped weights will be: a 2D burst model (3 adjacent slices) and a
    3D model. Untrained KPNs start as the mean of their input frames, so the expected outputs are exact: the mean of
    each slice and its neighbours for the burst model, the input itself for the 3D single-frame model."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # ConfigWorkflow.run() prepends the bundle root
    bundle = tmp_path / "bundle"
    shutil.copytree(ROOT / "configs", bundle / "configs")
    shutil.copytree(ROOT / "models", bundle / "models")
    index = load_models_index(bundle)
    for name, network, dims, burst in (("burst-test", "kpn-burst3", 2, 3), ("volume-test", "kpn-small", 3, 1)):
        torch.manual_seed(0)
        net = create_network(network, spatial_dims=dims)
        torch.save(net.state_dict(), bundle / "models" / f"{name}.pt")
        index["models"][name] = dict(index["models"][index["default"]], file=f"{name}.pt", network=network,
                                     spatial_dims=dims, in_channels=burst, burst=burst)
    (bundle / "models" / "models.json").write_text(json.dumps(index))

    data = tmp_path / "data"
    data.mkdir()
    mr = nib.load(str(sample_path("mr_head")))
    volume = np.asarray(mr.dataobj)[20:44, 16:40, 4:12]  # 24 x 24 x 8, int16
    nib.save(nib.Nifti1Image(volume, mr.affine), str(data / "mr.nii.gz"))

    _run_in_process(bundle, model_name="burst-test", dataset_dir=str(data), output_dir=str(tmp_path / "burst"))
    out = np.asarray(nib.load(str(tmp_path / "burst" / "mr_denoised.nii.gz")).dataobj).astype(np.int64)
    z = np.arange(volume.shape[2])
    neighbours = [volume[:, :, np.clip(z + offset, 0, z[-1])].astype(np.float64) for offset in (-1, 0, 1)]
    expected = np.rint(np.mean(neighbours, axis=0))
    assert np.abs(out - expected).max() <= 1

    _run_in_process(bundle, model_name="volume-test", dataset_dir=str(data), output_dir=str(tmp_path / "volume"),
                    roi_size=[16, 16, 8])
    out = np.asarray(nib.load(str(tmp_path / "volume" / "mr_denoised.nii.gz")).dataobj)
    assert np.abs(out.astype(np.int64) - volume).max() <= 1


def test_clip_to_input_range_matches_the_library_both_ways(tmp_path, monkeypatch):
    from meddenoiselib.inference import Denoiser
    from meddenoiselib.io import read_volume

    monkeypatch.setattr(sys, "path", list(sys.path))
    data = tmp_path / "data"
    data.mkdir()
    mr = nib.load(str(sample_path("mr_head")))
    nib.save(mr.slicer[8:50, 8:50, 6:14], str(data / "mr.nii.gz"))
    for clip in (True, False):
        out = tmp_path / f"clip{clip}"
        _run_in_process(ROOT, dataset_dir=str(data), output_dir=str(out), clip_to_input_range=clip)
        actual = np.asarray(nib.load(str(out / "mr_denoised.nii.gz")).dataobj).astype(np.int32)
        denoiser = Denoiser("default", device="cpu", precision="fp32", roi_size=1024, slice_axis=0,
                            clip_to_input_range=clip)
        expected = denoiser.denoise(read_volume(data / "mr.nii.gz")).array.transpose(2, 1, 0).astype(np.int32)
        assert np.abs(actual - expected).max() <= 1, clip
    source = np.asarray(nib.load(str(data / "mr.nii.gz")).dataobj)
    clipped = np.asarray(nib.load(str(tmp_path / "clipTrue" / "mr_denoised.nii.gz")).dataobj)
    unclipped = np.asarray(nib.load(str(tmp_path / "clipFalse" / "mr_denoised.nii.gz")).dataobj)
    assert clipped.min() >= source.min() and clipped.max() <= source.max()
    assert unclipped.min() < source.min() or unclipped.max() > source.max()  # the option makes a difference here


# ------------------------------------------------------------------------------------- reader and transforms
def test_reader_geometry_matches_the_dicom_headers_and_the_nifti_affine():
    """The series sample has a negative SpacingBetweenSlices tag, on which MONAI's ITKReader flips the slice axis."""
    reader = VolumeReader()
    series = sample_path("ct_chest")
    assert reader.verify_suffix(str(series))
    array, meta = reader.get_data(reader.read(str(series)))
    assert array.shape == (512, 512, 4) and array.dtype == np.int16
    np.testing.assert_allclose(meta["affine"], dicom_series_affine(series), atol=1e-6)
    mr = nib.load(str(sample_path("mr_head")))
    array, meta = reader.get_data(reader.read(str(sample_path("mr_head"))))
    np.testing.assert_array_equal(array, np.asarray(mr.dataobj))
    np.testing.assert_allclose(meta["affine"], mr.affine, atol=1e-5)
    assert not reader.verify_suffix("image.png")


def test_reader_refusals_are_not_bypassed_by_monai_fallback_readers(tmp_path):
    """A folder with two equally large series is ambiguous for the library; LoadImaged must not read it anyway with
    one of MONAI's other readers."""
    import pydicom
    from meddenoiselib.errors import MedDenoiseError
    from monai.transforms import LoadImaged
    from pydicom.uid import generate_uid

    sources = sorted(sample_path("ct_chest").glob("*.dcm"))[:2]
    for index in range(2):
        uid = generate_uid()
        for source in sources:
            ds = pydicom.dcmread(str(source))
            ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.save_as(str(tmp_path / f"{index}_{source.name}"))
    load = LoadImaged("image", reader="meddenoiselib.bundle.readers.VolumeReader", image_only=True, dtype=None)
    with pytest.raises(MedDenoiseError, match="ambiguous"):
        load({"image": str(tmp_path)})


def test_adjacent_slices_stack_neighbours_as_channels():
    volume = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    assert AdjacentSlicesd("image", burst=1)({"image": volume})["image"] is volume
    for slice_dim in (0, 1, 2):
        out = AdjacentSlicesd("image", burst=3, slice_dim=slice_dim)({"image": volume})["image"]
        assert out.shape == (3, 2, 3, 4)
        count = volume.shape[slice_dim + 1]
        for k in range(count):
            for channel, offset in enumerate((-1, 0, 1)):
                source = min(max(k + offset, 0), count - 1)
                got = out[channel].select(slice_dim, k)
                assert torch.equal(got, volume[0].select(slice_dim, source))
    with pytest.raises(ValueError, match="odd"):
        AdjacentSlicesd("image", burst=2)
    with pytest.raises(ValueError, match="single-channel"):
        AdjacentSlicesd("image", burst=3)({"image": torch.zeros(2, 3, 3, 3)})


def test_output_names_keep_dotted_series_folder_names_and_collisions_are_refused(tmp_path):
    from meddenoiselib.bundle import output_name_formatter, output_stem

    series = tmp_path / "1.2.840.5"
    shutil.copytree(sample_path("ct_chest"), series)
    assert output_stem(series) == "1.2.840.5"
    assert output_stem(tmp_path / "scan.nii.gz") == "scan" and output_stem(tmp_path / "scan.nrrd") == "scan"
    assert output_name_formatter({"filename_or_obj": str(series)}, None)["subject"] == f"{series}.series"
    assert output_name_formatter({"filename_or_obj": "/x/scan.nii.gz"}, None)["subject"] == "/x/scan.nii.gz"
    (tmp_path / "scan.nii.gz").write_bytes(b"")
    (tmp_path / "scan.nrrd").write_bytes(b"")
    with pytest.raises(ValueError, match="would both be written"):
        find_dataset(tmp_path)


def test_find_dataset_takes_volumes_and_series_folders_only(tmp_path):
    (tmp_path / "a.nii.gz").write_bytes(b"")
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "c.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    shutil.copytree(sample_path("ct_chest"), tmp_path / "series")
    names = [Path(item["image"]).name for item in find_dataset(tmp_path)]
    assert names == ["a.nii.gz", "series"]
    with pytest.raises(FileNotFoundError, match="no NIfTI"):
        find_dataset(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        find_dataset(tmp_path / "missing")
