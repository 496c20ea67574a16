"""The bundle's real commands, run as subprocesses on a small noisy data set (see conftest.py).

- ``python -m monai.bundle run``: every NIfTI file and DICOM series folder in ``dataset_dir`` is denoised into
  ``output_dir`` with the input's shape, affine and dtype, and a higher PSNR against the clean volume than the input;
  the result equals the library's own ``Denoiser`` on the same volume.
- A 4D diffusion NIfTI with its ``.bval``: read as a series, MR for ``auto``, written as a 4D NIfTI equal to the
  library's run on the series.
- ``torchrun --nproc_per_node=2 ... multi_gpu_inference.json``: gloo on CPU, every input processed exactly once
  (marked ``slow``).
- ``python -m monai.bundle verify_net_in_out`` and ``verify_metadata`` (against the vendored schema).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from meddenoiselib.bundle import BUNDLE_ROOT
from meddenoiselib.demo import sample_path
from meddenoiselib.evaluation import psnr as library_psnr
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume

from ..conftest import new_dicom_dataset
from .conftest import bundle_config, monai_bundle, run_bundle, run_command, torchrun_launcher

HERE = Path(__file__).resolve().parent


def psnr(clean: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB (the library's, i.e. MONAI's metric) with the clean volume's own value range as the peak."""
    clean = clean.astype(np.float32)
    return library_psnr(clean, test.astype(np.float32), data_range=float(clean.max() - clean.min()))


def test_run_writes_one_output_per_input_with_input_geometry_and_dtype(bundle_data, single_run):
    output_dir, result = single_run
    written = sorted(p.name for p in output_dir.iterdir())
    assert written == sorted(name for case in bundle_data.cases.values() for name in case.written)
    # the DICOM input's acquisition travels to a BIDS sidecar, as the CLI writes it
    sidecar = json.loads((output_dir / "ct_series.001_denoised.json").read_text())
    assert sidecar["Modality"] == "CT"
    assert re.fullmatch(r"auto: \S+ for CT \(DICOM Modality is CT\).*", sidecar["DenoisingMethod"]), sidecar
    assert sidecar["ConversionSoftware"] == "MedDenoise"
    for case in bundle_data.cases.values():
        image = nib.load(str(output_dir / case.output))
        assert image.shape == case.noisy.shape, case.name
        assert image.get_data_dtype() == np.int16, case.name
        np.testing.assert_allclose(image.affine, case.affine, atol=1e-4, err_msg=case.name)
    assert "3 input(s)" in result.stdout  # the initialize step's log line: notes.txt was not taken as an input


def test_run_denoises(bundle_data, single_run):
    output_dir, _ = single_run
    for case in bundle_data.cases.values():
        denoised = np.asarray(nib.load(str(output_dir / case.output)).dataobj)
        before, after = psnr(case.clean, case.noisy), psnr(case.clean, denoised)
        print(f"{case.name}: PSNR noisy {before:.2f} dB -> bundle {after:.2f} dB")
        assert after > before + 3.0, (case.name, before, after)


def test_run_equals_the_library_denoiser(bundle_data, single_run):
    """The bundle is a thin front end: ``Denoiser()`` with its defaults, on the volume the library reads, gives the
    bundle's output voxel for voxel (no forced window, slice axis or precision)."""
    output_dir, _ = single_run
    denoiser = Denoiser()
    for case in bundle_data.cases.values():
        expected = denoiser.denoise(read_volume(bundle_data.dataset_dir / case.name)).array.transpose(2, 1, 0)
        actual = np.asarray(nib.load(str(output_dir / case.output)).dataobj)
        assert actual.dtype == expected.dtype, case.name
        np.testing.assert_array_equal(actual, expected, err_msg=case.name)


@pytest.mark.slow  # two torchrun processes importing torch + MONAI: ~30 s on 2 cores
def test_torchrun_two_processes_split_the_inputs(bundle_data, single_run, multi_run):
    output_dir, log_dir, _ = multi_run
    expected = sorted(name for case in bundle_data.cases.values() for name in case.written)
    assert sorted(p.name for p in output_dir.iterdir()) == expected
    # the per-rank logs torchrun kept (--log-dir ... --redirects 3): which rank got and wrote what
    written_by_rank, inputs_by_rank = {}, {}
    for rank in (0, 1):
        logs = [p for p in log_dir.rglob("*.log") if p.parent.name == str(rank)]
        text = "\n".join(p.read_text() for p in logs)
        assert f"rank {rank} of 2" in text, text[-3000:]
        listed = re.search(rf"rank {rank} of 2: .*?; (\d+) of 3 input\(s\) from .*?: (.*)", text)
        inputs_by_rank[rank] = [name for name in listed.group(2).strip().split(", ") if name]
        assert int(listed.group(1)) == len(inputs_by_rank[rank])
        written_by_rank[rank] = [
            Path(line.split("writing: ")[1].strip()).name for line in text.splitlines() if "writing: " in line
        ]
    assert all(inputs_by_rank.values()), inputs_by_rank  # both ranks worked
    all_inputs = inputs_by_rank[0] + inputs_by_rank[1]
    assert sorted(all_inputs) == sorted(case.name for case in bundle_data.cases.values())  # each exactly once
    all_written = written_by_rank[0] + written_by_rank[1]
    outputs = sorted(case.output for case in bundle_data.cases.values())
    assert sorted(all_written) == outputs, written_by_rank  # each output written exactly once (SaveImaged's log)
    # and the split changes nothing in the results (up to rounding: torchrun runs each rank with 1 thread, which
    # changes the float summation order)
    single_dir, _ = single_run
    for name in outputs:
        a = np.asarray(nib.load(str(output_dir / name)).dataobj).astype(np.int32)
        b = np.asarray(nib.load(str(single_dir / name)).dataobj).astype(np.int32)
        assert np.abs(a - b).max() <= 1, name


@pytest.mark.slow
def test_torchrun_with_fewer_inputs_than_processes(tmp_path):
    """partition_dataset refuses fewer items than partitions; the config then gives each rank at most one input."""
    data = tmp_path / "data"
    data.mkdir()
    mr = nib.load(str(sample_path("mr_head")))
    nib.save(mr.slicer[16:40, 16:40, 8:12], str(data / "one.nii.gz"))
    configs = f"['{bundle_config()}','{bundle_config('multi_gpu_inference.json')}']"
    result = run_command(
        [
            *torchrun_launcher(),
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "monai.bundle",
            "run",
            "--config_file",
            configs,
            "--bundle_root",
            BUNDLE_ROOT,
            "--dataset_dir",
            str(data),
            "--output_dir",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert "1 of 1 input(s)" in output and "0 of 1 input(s)" in output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["one_denoised.nii.gz"]


def test_verify_net_in_out():
    result = monai_bundle(
        "verify_net_in_out",
        "network_def",
        "--meta_file",
        bundle_config("metadata.json"),
        "--config_file",
        bundle_config(),
        "--bundle_root",
        BUNDLE_ROOT,
        "--device",
        "cpu",
        "--any",
        "37",
        "--model_name",  # auto's network is chosen per volume (an nn.Identity stands in): verify a real one
        "default",
    )
    assert "data shape of network is verified with no error" in result.stdout + result.stderr


def test_verify_metadata_against_vendored_schema(tmp_path):
    """``verify_metadata`` downloads the schema named in metadata.json unless the file exists; it can't be downloaded
    here, so the schema written from the specification (Testing/bundle/metadata_schema.json) stands in for it."""
    schema = tmp_path / "schema.json"
    shutil.copy(HERE / "metadata_schema.json", schema)
    result = monai_bundle("verify_metadata", "--meta_file", bundle_config("metadata.json"), "--filepath", str(schema))
    assert "metadata is verified with no error" in result.stdout + result.stderr


@pytest.mark.parametrize("as_series_folder", [False, True])
def test_dataset_dir_may_be_a_series_folder(bundle_data, tmp_path, as_series_folder):
    """``--dataset_dir`` naming one DICOM series folder: its output lands inside output_dir, not beside it."""
    from meddenoiselib.bundle import find_dataset, output_root

    series = bundle_data.dataset_dir / bundle_data.cases["ct_series"].name
    folder = series if as_series_folder else bundle_data.dataset_dir
    datalist = find_dataset(folder)
    assert (len(datalist) == 1) if as_series_folder else (len(datalist) == 3)
    root = Path(output_root(folder))
    assert root == (series.parent if as_series_folder else folder).resolve()
    assert Path(datalist[0]["image"]).parent.resolve() == root


def test_a_4d_diffusion_series_goes_through_the_bundle_as_through_the_cli(tmp_path):
    """A DWI as 4D NIfTI with its FSL b-values file: the bundle reads it as a series (frames as channels), ``auto``
    takes it for MR from ``dwi.bval`` as the CLI does, every frame is denoised, and the output is a 4D NIfTI with the
    input's shape, affine and dtype, equal to the library's run on the series, with the gradient table beside it; the
    noise map is 4D too."""
    from meddenoiselib.io import read_series

    source = nib.load(str(sample_path("mr_head")))
    head = np.asarray(source.dataobj, dtype=np.float64)[:, :, 8:16]  # (X, Y, Z)
    clean = np.stack([head * w for w in (1.0, 0.5, 0.45, 0.55)], axis=-1)  # b = 0, then three b = 1000
    rng = np.random.default_rng(7)
    noisy = np.rint(np.hypot(clean + rng.normal(0, 30, clean.shape), rng.normal(0, 30, clean.shape))).astype(np.int16)
    dataset, output_dir = tmp_path / "dataset", tmp_path / "out"
    dataset.mkdir()
    path = dataset / "dwi.nii.gz"
    nib.save(nib.Nifti1Image(noisy, source.affine), str(path))
    (dataset / "dwi.bval").write_text("0 1000 1000 1000\n")
    (dataset / "dwi.bvec").write_text("0 1 0 0\n0 0 1 0\n0 0 0 1\n")

    result = run_bundle(dataset, output_dir, "--save_noise_map", "true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "for MR (the b-values file dwi.bval beside it" in result.stdout + result.stderr
    written = nib.load(str(output_dir / "dwi_denoised.nii.gz"))
    assert written.shape == noisy.shape and written.get_data_dtype() == np.int16
    np.testing.assert_allclose(written.affine, source.affine, atol=1e-4)
    denoised = np.asarray(written.dataobj)
    expected = Denoiser().denoise(read_series(path)).array  # (T, Z, Y, X)
    np.testing.assert_array_equal(denoised, expected.transpose(3, 2, 1, 0))
    for frame in range(noisy.shape[-1]):
        before, after = psnr(clean[..., frame], noisy[..., frame]), psnr(clean[..., frame], denoised[..., frame])
        assert after > before + 3.0, (frame, before, after)
    noise_map = nib.load(str(output_dir / "dwi_noise_map.nii.gz"))
    assert noise_map.shape == noisy.shape and noise_map.get_data_dtype() == np.float32
    # the gradient table beside the output, as the CLI writes it; nothing else
    for suffix in (".bval", ".bvec"):
        assert (output_dir / f"dwi_denoised{suffix}").read_text() == (dataset / f"dwi{suffix}").read_text()
    assert sorted(p.name for p in output_dir.iterdir()) == [
        "dwi_denoised.bval",
        "dwi_denoised.bvec",
        "dwi_denoised.nii.gz",
        "dwi_noise_map.nii.gz",
    ]


def _write_dicom_frames(folder: Path, frames: np.ndarray, tag_frame) -> None:
    """A classic MR DICOM series of frames: one file per image of ``frames`` ``(F, P, Y, X)`` uint16, 4 x 4 x 5 mm,
    ``tag_frame(dataset, f)`` giving each file its frame's own elements (a b-value, a temporal position)."""
    import pydicom

    folder.mkdir(parents=True)
    study, series = "1.2.3.4", "1.2.3.4.5"
    for f in range(frames.shape[0]):
        for p in range(frames.shape[1]):
            ds = new_dicom_dataset(study=study, series=series)
            ds.Modality, ds.PatientID, ds.InstanceNumber = "MR", "frames", f * frames.shape[1] + p + 1
            ds.ImageOrientationPatient, ds.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [0.0, 0.0, 5.0 * p]
            ds.PixelSpacing, ds.SliceThickness = [4.0, 4.0], 5.0
            tag_frame(ds, f)
            ds.Rows, ds.Columns = frames.shape[2:]
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.PixelData = np.ascontiguousarray(frames[f, p], dtype=np.uint16).tobytes()
            pydicom.dcmwrite(str(folder / f"{f:02d}_{p:02d}.dcm"), ds, enforce_file_format=True)


def _write_dicom_dwi(folder: Path, frames: np.ndarray, b_values) -> None:
    """A classic DWI DICOM series, frame ``f`` at ``b_values[f]``."""

    def tag(ds, f: int) -> None:
        ds.DiffusionBValue = b_values[f]

    _write_dicom_frames(folder, frames, tag)


def test_a_dicom_series_of_frames_goes_through_the_bundle_as_a_4d_series(tmp_path):
    """A classic DWI DICOM series (several images at every position) was refused by the bundle (its repeated
    positions fit no NIfTI affine); it is now read as the 4D series the CLI denoises and written as a 4D NIfTI on the
    positions' grid, MR from its Modality tag."""
    from meddenoiselib.io.series import series_of_repeated_frames

    head = np.asarray(nib.load(str(sample_path("mr_head"))).dataobj, dtype=np.float64).transpose(2, 1, 0)[8:14]
    clean = np.stack([head * w for w in (0.5, 1.0, 0.45, 0.55)])  # (F, P, Y, X), the b = 0 frame second
    rng = np.random.default_rng(9)
    noisy = np.rint(np.hypot(clean + rng.normal(0, 30, clean.shape), rng.normal(0, 30, clean.shape)))
    dataset, output_dir = tmp_path / "dataset", tmp_path / "out"
    _write_dicom_dwi(dataset / "dwi", noisy.astype(np.uint16), (1000.0, 0.0, 1000.0, 1000.0))

    result = run_bundle(dataset, output_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "for MR (DICOM Modality is MR)" in result.stdout + result.stderr
    written = nib.load(str(output_dir / "dwi_denoised.nii.gz"))
    assert written.shape == (58, 58, 6, 4)  # (x, y, z, frames)
    assert written.get_data_dtype() == np.uint16  # the files' type (MONAI's tensors hold uint16 as int32)
    np.testing.assert_allclose(written.header.get_zooms()[:3], (4.0, 4.0, 5.0))
    expected = Denoiser().denoise(series_of_repeated_frames(read_volume(dataset / "dwi"))).array  # (F, P, Y, X)
    denoised = np.asarray(written.dataobj)
    np.testing.assert_array_equal(denoised, expected.transpose(3, 2, 1, 0))
    for frame in range(4):
        before = psnr(clean[frame], noisy[frame])
        after = psnr(clean[frame], denoised[..., frame].transpose(2, 1, 0))
        assert after > before + 3.0, (frame, before, after)
    # its b-values go beside it as the CLI writes them (no directions in these headers: no .bvec), and a sidecar
    assert (output_dir / "dwi_denoised.bval").read_text() == "1000 0 1000 1000\n"
    assert not (output_dir / "dwi_denoised.bvec").exists()
    sidecar = json.loads((output_dir / "dwi_denoised.json").read_text())
    assert sidecar["Modality"] == "MR"
    # what `auto` chose for this volume, as the CLI records it, not just "auto"
    assert re.fullmatch(r"auto: \S+ for MR \(DICOM Modality is MR\).*", sidecar["DenoisingMethod"]), sidecar


def test_a_time_series_keeps_its_repetition_time(tmp_path):
    """An fMRI run, as a 4D NIfTI with its TR in ms and as a DICOM series with its RepetitionTime, comes out as a 4D
    NIfTI whose ``pixdim[4]`` is the TR in seconds (MONAI's writer wrote 1 without a unit, which FSL, AFNI and
    fMRIPrep read as a 1 s TR), denoised frame by frame."""
    head = np.asarray(nib.load(str(sample_path("mr_head"))).dataobj, dtype=np.float64).transpose(2, 1, 0)[8:12]
    clean = np.stack([head * w for w in (1.0, 0.98, 1.02)])  # (T, Z, Y, X)
    rng = np.random.default_rng(11)
    noisy = np.rint(np.hypot(clean + rng.normal(0, 30, clean.shape), rng.normal(0, 30, clean.shape))).astype(np.int16)
    dataset, output_dir = tmp_path / "dataset", tmp_path / "out"
    dataset.mkdir()
    image = nib.Nifti1Image(noisy.transpose(3, 2, 1, 0), np.diag([4.0, 4.0, 5.0, 1.0]))
    image.header.set_zooms((4.0, 4.0, 5.0, 2000.0))
    image.header.set_xyzt_units("mm", "msec")
    nib.save(image, str(dataset / "bold.nii.gz"))

    def tag(ds, f: int) -> None:
        ds.TemporalPositionIdentifier, ds.RepetitionTime = f + 1, 2500.0

    _write_dicom_frames(dataset / "bold_dicom", noisy.astype(np.uint16), tag)

    result = run_bundle(dataset, output_dir, "--modality", "mr")  # the NIfTI has no Modality tag
    assert result.returncode == 0, result.stderr[-3000:]
    for name, seconds, dtype in (("bold", 2.0, np.int16), ("bold_dicom", 2.5, np.uint16)):
        written = nib.load(str(output_dir / f"{name}_denoised.nii.gz"))
        assert written.shape == (58, 58, 4, 3) and written.get_data_dtype() == dtype, name
        np.testing.assert_allclose(written.header.get_zooms(), (4.0, 4.0, 5.0, seconds), rtol=1e-6, err_msg=name)
        assert written.header.get_xyzt_units() == ("mm", "sec"), name
        denoised = np.asarray(written.dataobj).transpose(3, 2, 1, 0)
        for frame in range(3):
            before, after = psnr(clean[frame], noisy[frame]), psnr(clean[frame], denoised[frame])
            assert after > before + 3.0, (name, frame, before, after)


def test_the_bundle_refuses_siemens_mosaics_it_could_not_place(tmp_path):
    import pydicom

    from meddenoiselib.bundle.readers import VolumeReader
    from meddenoiselib.errors import InputError

    ds = new_dicom_dataset()
    ds.Modality, ds.PatientID, ds.InstanceNumber = "MR", "mosaic", 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]
    ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0A, "US", 4)  # NumberOfImagesInMosaic
    ds.ImageOrientationPatient, ds.ImagePositionPatient, ds.PixelSpacing = [1, 0, 0, 0, 1, 0], [0, 0, 0], [2, 2]
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.zeros((64, 64), np.uint16).tobytes()
    pydicom.dcmwrite(str(tmp_path / "mosaic.dcm"), ds, enforce_file_format=True)
    reader = VolumeReader()
    with pytest.raises(InputError, match="Siemens mosaics.*command line"):
        reader.get_data(reader.read(str(tmp_path / "mosaic.dcm")))


def test_correct_tilt_writes_what_the_cli_writes_for_a_tilted_gantry(ct_crop, tmp_path):
    """A CT series taken on a tilted gantry, with ``--correct_tilt True``: the bundle's NIfTI is the command line's
    ``--correct-tilt`` output (the same orthogonal grid, the same voxels), with no sheared-grid warning."""
    from meddenoiselib.cli import main

    from ..cli.test_correct_tilt import _write_tilted_ct

    hu = ct_crop.astype(np.float64) * 1400.0 - 1000.0
    dataset = tmp_path / "dataset"
    _write_tilted_ct(dataset / "head_ct", np.stack([np.roll(hu, k, axis=0) for k in range(5)]), 20.0)
    result = run_bundle(dataset, tmp_path / "out", "--model_name", "median", "--correct_tilt", "true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "corrected a gantry tilt" in result.stdout + result.stderr
    assert "sheared" not in result.stdout + result.stderr
    assert main(["denoise", str(dataset / "head_ct"), str(tmp_path / "cli.nii.gz"), "--model", "median", "-q"]) == 0
    assert (
        main(
            ["denoise", str(dataset / "head_ct"), str(tmp_path / "cli_c.nii.gz"), "--model", "median"]
            + ["--correct-tilt", "-q"]
        )
        == 0
    )
    bundle, cli = nib.load(str(tmp_path / "out" / "head_ct_denoised.nii.gz")), nib.load(str(tmp_path / "cli_c.nii.gz"))
    assert bundle.shape == cli.shape == (128, 128 + 5, 5)
    np.testing.assert_allclose(bundle.affine, cli.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(bundle.dataobj), np.asarray(cli.dataobj))
