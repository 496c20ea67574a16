"""What the bundle folder holds and how its parts behave: layout, metadata, the spec's ``model.pt``, licences, every
shipped model served by name through the library (burst, noise-map and ``auto`` included), and the reader."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import jsonschema
import nibabel as nib
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from meddenoiselib.bundle import BUNDLE_ROOT, find_dataset, network_of, served_models
from meddenoiselib.bundle.inferer import DenoiserInferer, volume_from_item
from meddenoiselib.bundle.readers import VolumeReader
from meddenoiselib.demo import sample_path
from meddenoiselib.inference import Denoiser
from meddenoiselib.inference.denoiser import default_model_name
from meddenoiselib.io import read_volume
from meddenoiselib.networks import create_network
from meddenoiselib.weights import WEIGHTS_DIR, list_shipped_weights, load_model_card, save_weights

from .conftest import dicom_series_affine, run_in_process, write_cropped_series

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


def _parsed(name: str, **overrides):
    """One id of ``configs/inference.json``, parsed on the CPU with ``overrides``."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(ROOT / "configs" / "inference.json"))
    parser["device"] = "$torch.device('cpu')"
    for key, value in overrides.items():
        parser[key] = value
    return parser.get_parsed_content(name)


# ------------------------------------------------------------------------------------------------------ layout
def test_layout_and_package_data():
    for relative in (
        "LICENSE",
        "configs/metadata.json",
        "configs/inference.json",
        "configs/multi_gpu_inference.json",
        "configs/logging.conf",
        "docs/README.md",
        "docs/data_license.txt",
        "models/model.pt",
    ):
        assert (ROOT / relative).is_file(), relative
    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    assert "trained by the MedDenoise developers" in licence and "model card" in licence
    # configs/, models/, docs/ are not Python packages: they ship as package data of meddenoiselib
    assert '"bundle/**/*"' in (REPO / "pyproject.toml").read_text()
    for folder in ("configs", "models", "docs"):
        assert not (ROOT / folder / "__init__.py").exists()
    # the specification's model.pt and nothing else: every model is served from the library's safetensors
    assert [p.name for p in (ROOT / "models").iterdir()] == ["model.pt"]
    assert (ROOT / "models" / "model.pt").stat().st_size < 3e6


def test_configs_are_a_thin_front_end_over_the_library():
    config = json.loads((ROOT / "configs" / "inference.json").read_text())
    for key in (
        "dataset_dir",
        "output_dir",
        "network_def",
        "inferer",
        "preprocessing",
        "postprocessing",
        "dataset",
        "evaluator",
        "initialize",
        "run",
        "finalize",
        "model_name",
        "bundle_root",
        "device",
    ):
        assert key in config, key
    assert config["denoiser"]["_target_"] == "meddenoiselib.inference.Denoiser"
    assert config["inferer"]["_target_"] == "meddenoiselib.bundle.inferer.DenoiserInferer"
    assert config["network_def"] == "$meddenoiselib.bundle.network_of(@denoiser)"
    targets = [t["_target_"] for t in config["preprocessing"]["transforms"] + config["postprocessing"]["transforms"]]
    # scaling, bursts, clipping: the library's; after the denoised image only a diffusion input's gradient table, the
    # NIfTI's sidecar and the optional noise map (the library's); LoadImaged with the library's reader, taking an
    # item's series and noise SD map along
    assert targets == [
        "meddenoiselib.bundle.readers.LoadVolumed",
        "EnsureChannelFirstd",
        "SaveImaged",
        "meddenoiselib.bundle.gradients.GradientTabled",
        "meddenoiselib.bundle.sidecar.Sidecard",
        "meddenoiselib.bundle.noise_map.NoiseMapd",
        "SaveImaged",
    ]
    assert config["postprocessing"]["transforms"][0]["savepath_in_metadict"] is True  # where the table goes
    assert all("_disabled_" in t for t in config["postprocessing"]["transforms"][3:])
    # every Denoiser option the CLI has is a config id, passed through
    assert {"refine", "ensemble", "modality", "strength"} <= set(config["denoiser"]) and config["refine"] == "auto"
    text = (ROOT / "configs" / "inference.json").read_text()
    assert "CheckpointLoader" not in text and "torch.load" not in text and "Lambda" not in text  # nothing unpickled
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
    card = load_model_card(default_model_name())
    assert metadata["eval_metrics"]["model"] == default_model_name()
    for key, value in card["validation"].items():
        assert metadata["eval_metrics"][key] == value


# ----------------------------------------------------------------------------------------------------- weights
def test_model_pt_is_the_default_models_safetensors_and_needs_no_pickle():
    state = torch.load(ROOT / "models" / "model.pt", map_location="cpu", weights_only=True)
    reference = load_file(str(WEIGHTS_DIR / f"{default_model_name()}.safetensors"))
    assert sorted(state) == sorted(reference)
    for key, tensor in reference.items():
        assert state[key].dtype == tensor.dtype and torch.equal(state[key], tensor), key


@pytest.mark.parametrize("name", list_shipped_weights())
def test_network_def_is_the_shipped_safetensors_for_every_model(name):
    """``--model_name <name>`` builds the network from ``weights/<name>.safetensors`` through the library's loader."""
    network = _parsed("network_def", model_name=name)
    assert not network.training
    reference = load_file(str(WEIGHTS_DIR / f"{name}.safetensors"))
    state = network.state_dict()
    assert sorted(state) == sorted(reference)
    for key, tensor in reference.items():
        assert torch.equal(state[key], tensor), (name, key)


def test_export_script_check_passes_and_output_is_reproducible(tmp_path, capsys):
    export = _export_script()
    assert export.main(["--check"]) == 0, capsys.readouterr().err
    copy = tmp_path / "bundle"
    shutil.copytree(ROOT / "configs", copy / "configs")
    (copy / "models").mkdir()
    (copy / "models" / "dncnn-small.pt").write_bytes(b"a per-model copy of an old bundle version")
    assert export.main(["--bundle-root", str(copy), "--check"]) == 1
    assert "dncnn-small.pt: not part of the bundle" in capsys.readouterr().err
    assert export.main(["--bundle-root", str(copy)]) == 0
    assert [p.name for p in (copy / "models").iterdir()] == ["model.pt"]
    assert (copy / "models" / "model.pt").read_bytes() == (ROOT / "models" / "model.pt").read_bytes()
    assert (copy / "configs" / "metadata.json").read_text() == (ROOT / "configs" / "metadata.json").read_text()
    assert export.main(["--bundle-root", str(copy), "--check"]) == 0


def test_data_license_names_every_data_set_in_the_model_cards():
    text = (ROOT / "docs" / "data_license.txt").read_text()
    for name in list_shipped_weights():
        training = load_model_card(name).get("training", {})
        for entry in training.get("data", []) + training.get("validation_data", []):
            data_set = entry.split("/")[0]
            assert f"[{data_set}]" in text, f"{name}: data set {data_set!r} is missing from docs/data_license.txt"


# ------------------------------------------------------------------------------------------ serving by name
def test_unknown_model_name_lists_the_served_models():
    assert served_models()[:2] == ["auto", "default"] and set(list_shipped_weights()) <= set(served_models())
    with pytest.raises(Exception) as raised:  # noqa: B017 - MONAI wraps the library's OptionError in RuntimeError
        _parsed("denoiser", model_name="no-such-model")
    chain, error = [], raised.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__
    assert any("unknown model 'no-such-model'; choose one of" in text and "kpn-small" in text for text in chain)


def _bundle_output(tmp_path: Path, data: Path, tag: str, **overrides) -> np.ndarray:
    run_in_process(ROOT, dataset_dir=str(data), output_dir=str(tmp_path / tag), **overrides)
    return np.asarray(nib.load(str(tmp_path / tag / "mr_denoised.nii.gz")).dataobj)


def _library_output(data: Path, denoiser: Denoiser, sigma="auto") -> np.ndarray:
    return denoiser.denoise(read_volume(data / "mr.nii.gz"), sigma).array.transpose(2, 1, 0)


def test_burst_model_by_name_is_the_librarys(tmp_path, mr_crop):
    """``kpn-burst3`` sees each slice with its neighbours, exactly as the library feeds it (no bundle transform)."""
    actual = _bundle_output(tmp_path, mr_crop, "burst", model_name="kpn-burst3")
    np.testing.assert_array_equal(actual, _library_output(mr_crop, Denoiser("kpn-burst3")))
    single = _bundle_output(tmp_path, mr_crop, "single", model_name="kpn-small")
    assert np.abs(actual.astype(np.int32) - single).max() > 10  # a different model, a different result


def test_noise_map_model_gets_the_noise_level(tmp_path, mr_crop):
    """A model with a noise-level map (none is shipped yet), served from its safetensors with ``--weights``: the
    bundle's ``sigma`` reaches the network's map channel exactly as the library's ``denoise(volume, sigma)``."""
    torch.manual_seed(0)
    network = create_network("kpn-small", in_channels=2, noise_map=True)
    with torch.no_grad():
        for parameter in network.parameters():  # an untrained KPN ignores the map; make it matter
            parameter.add_(0.05 * torch.randn_like(parameter))
    card = {
        "name": "map-test",
        "input_scaling": "minmax",
        "architecture": {
            "network": "kpn-small",
            "spatial_dims": 2,
            "in_channels": 2,
            "out_channels": 1,
            "burst": 1,
            "noise_map": True,
            "overrides": {"noise_map": True},
        },
    }
    weights = save_weights(network, tmp_path / "map-test.safetensors", card)
    low = _bundle_output(tmp_path, mr_crop, "low", weights=str(weights), sigma=0.02)
    high = _bundle_output(tmp_path, mr_crop, "high", weights=str(weights), sigma=0.2)
    denoiser = Denoiser(weights=weights)
    np.testing.assert_array_equal(low, _library_output(mr_crop, denoiser, 0.02))
    np.testing.assert_array_equal(high, _library_output(mr_crop, denoiser, 0.2))
    assert np.abs(low.astype(np.int32) - high).max() > 0


def test_auto_chooses_per_volume_as_the_library(tmp_path, mr_crop):
    """``--model_name auto``: a cropped CT series (soft tissue only, so only its DICOM Modality tag says CT) gets the
    library's CT model: the tag travels from the reader through MONAI's metadata to the Denoiser."""
    ct = read_volume(sample_path("ct_chest"))
    rows, columns = slice(260, 324), slice(220, 284)
    series = tmp_path / "ct" / "series"
    write_cropped_series(series, rows, columns, ct.array[:, rows, columns], ct.source.dicom_files)
    run_in_process(ROOT, dataset_dir=str(series.parent), output_dir=str(tmp_path / "auto"), model_name="auto")
    actual = np.asarray(nib.load(str(tmp_path / "auto" / "series_denoised.nii.gz")).dataobj)
    denoiser = Denoiser("auto")
    expected = denoiser.denoise(read_volume(series)).array.transpose(2, 1, 0)
    np.testing.assert_array_equal(actual, expected)
    assert "DICOM Modality is CT" in denoiser.last_report.choice
    assert denoiser.last_report.method != default_model_name()  # a CT model, not the general default
    assert _parsed("denoiser").auto  # auto is the bundle's default, as the library's and the CLI's
    default = _parsed("denoiser", model_name="default").denoise(read_volume(series)).array.transpose(2, 1, 0)
    assert np.abs(actual.astype(np.int32) - default).max() > 0


def test_auto_reads_an_mr_floor_from_the_file_as_the_library(tmp_path):
    """A NIfTI MR without tag or BIDS name: the reader's file name reaches the Denoiser, which reads the magnitude
    floor in its air as the CLI does (MR: the burst model, the floor removed), not the general model."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(sample_path("mr_head"), folder / "head.nii.gz")
    run_in_process(ROOT, dataset_dir=str(folder), output_dir=str(tmp_path / "auto"), model_name="auto")
    actual = np.asarray(nib.load(str(tmp_path / "auto" / "head_denoised.nii.gz")).dataobj)
    denoiser = Denoiser("auto")
    expected = denoiser.denoise(read_volume(folder / "head.nii.gz")).array.transpose(2, 1, 0)
    assert "noise floor of a magnitude MR image" in denoiser.last_report.choice
    assert "magnitude noise floor removed" in denoiser.last_report.choice
    np.testing.assert_array_equal(actual, expected)


def test_clip_to_input_range_matches_the_library_both_ways(tmp_path, mr_crop):
    # kpn-small overshoots this crop's range without the clip (the default model need not: the option is what
    # is tested, so the model is named)
    for clip in (True, False):
        actual = _bundle_output(tmp_path, mr_crop, f"clip{clip}", model_name="kpn-small", clip_to_input_range=clip)
        expected = _library_output(mr_crop, Denoiser("kpn-small", clip_to_input_range=clip))
        np.testing.assert_array_equal(actual, expected)
    source = np.asarray(nib.load(str(mr_crop / "mr.nii.gz")).dataobj)
    clipped = np.asarray(nib.load(str(tmp_path / "clipTrue" / "mr_denoised.nii.gz")).dataobj)
    unclipped = np.asarray(nib.load(str(tmp_path / "clipFalse" / "mr_denoised.nii.gz")).dataobj)
    assert clipped.min() >= source.min() and clipped.max() <= source.max()
    assert unclipped.min() < source.min() or unclipped.max() > source.max()  # the option makes a difference here


# ------------------------------------------------------------------------------------------------- inferer
def test_inferer_round_trips_monai_layout_and_refuses_a_foreign_network():
    """``(B, C, I, J, K)`` in, the library's ``(K, J, I)`` volume inside, ``(B, C, I, J, K)`` out with the meta."""
    from monai.data import MetaTensor, list_data_collate

    class Recorder:
        model = None
        last_report = None

        def denoise(self, volume, sigma):
            self.seen, self.sigma = volume, sigma
            return volume.with_array(volume.array * 2)

    image = torch.arange(2 * 3 * 4, dtype=torch.int16).reshape(1, 1, 2, 3, 4)
    affine = torch.diag(torch.tensor([-0.5, -0.7, 2.5, 1.0], dtype=torch.float64))
    meta = {"affine": affine, "spacing": np.array([0.5, 0.7, 2.5]), "modality": "MR", "filename_or_obj": "x.nii"}
    batch = list_data_collate([{"image": MetaTensor(image[0], meta=meta)}])["image"]  # as MONAI's DataLoader does
    recorder = Recorder()
    out = DenoiserInferer(recorder, sigma=0.1)(batch)
    assert recorder.sigma == 0.1 and recorder.seen.array.shape == (4, 3, 2) and recorder.seen.array.dtype == np.int16
    np.testing.assert_array_equal(recorder.seen.array, image[0, 0].numpy().transpose(2, 1, 0))
    assert recorder.seen.spacing == (0.5, 0.7, 2.5) and recorder.seen.metadata == {"0008|0060": "MR"}
    assert out.shape == (1, 1, 2, 3, 4) and out.dtype == torch.int16 and torch.equal(out.as_tensor(), image * 2)
    assert isinstance(out, MetaTensor) and out.is_batch and torch.equal(out.affine[0], affine)
    volume = volume_from_item(MetaTensor(torch.zeros(3, 2, 3, 4), meta={"affine": affine}))
    assert volume.array.shape == (4, 3, 2, 3) and np.allclose(volume.spacing, (0.5, 0.7, 2.5))
    denoiser = Denoiser("kpn-small", device="cpu")
    assert network_of(denoiser) is denoiser.model
    with pytest.raises(ValueError, match="own network"):
        DenoiserInferer(denoiser)(batch, torch.nn.Conv2d(1, 1, 3))


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


def test_reader_takes_freesurfer_and_minc_files_with_their_affine(tmp_path):
    """MGZ and MINC (nibabel formats the library reads) reach the bundle in MONAI's (x, y, z) order with their own
    voxel-to-RAS affine, as nibabel gives them."""
    from nibabel.testing import data_path

    reader = VolumeReader()
    mr = nib.load(str(sample_path("mr_head")))
    mgz = tmp_path / "head.mgz"
    nib.save(nib.MGHImage(np.asarray(mr.dataobj).astype(np.int16), mr.affine), mgz)
    minc = Path(data_path) / "minc1_1_scale.mnc"
    for path in (mgz, minc):
        assert reader.verify_suffix(str(path))
        array, meta = reader.get_data(reader.read(str(path)))
        image = nib.load(str(path))
        np.testing.assert_allclose(array, np.asarray(image.dataobj), rtol=1e-6)
        np.testing.assert_allclose(meta["affine"], image.affine, atol=1e-5)


def test_reader_warns_about_an_atlas_registered_input(tmp_path, caplog):
    """As the CLI does (user need 21): the bundle's reader names an input registered to an atlas; not the sample."""
    mr = nib.load(str(sample_path("mr_head")))
    registered = nib.Nifti1Image(np.asanyarray(mr.dataobj), mr.affine, mr.header.copy())
    registered.set_sform(mr.affine, code=4)
    nib.save(registered, str(tmp_path / "t1_mni.nii.gz"))
    reader = VolumeReader()
    with caplog.at_level("WARNING", logger="meddenoiselib"):
        reader.get_data(reader.read(str(sample_path("mr_head"))))
        assert "looks resampled" not in caplog.text
        reader.get_data(reader.read(str(tmp_path / "t1_mni.nii.gz")))
    assert "t1_mni.nii.gz looks resampled: its NIfTI sform code is 4 (MNI 152 space)" in caplog.text


def test_reader_refusals_are_not_bypassed_by_monai_fallback_readers(tmp_path):
    """A folder with two equally large series is ambiguous for the library; LoadImaged must not read it anyway with
    one of MONAI's other readers."""
    import pydicom
    from monai.transforms import LoadImaged
    from pydicom.uid import generate_uid

    from meddenoiselib.errors import MedDenoiseError

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
