"""FreeSurfer MGH / MGZ (read and written), Philips PAR/REC and MINC (read only; results as NIfTI), on the real
files nibabel ships with its tests (a Philips EPI phantom, MINC 1 and 2 volumes) and the sample MR head."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path

from meddenoiselib.cli import main
from meddenoiselib.errors import InputError, OutputError
from meddenoiselib.evaluation import psnr
from meddenoiselib.io import probe_volume, read_volume, write_volume
from meddenoiselib.io.modality import Modality, detect_modality
from meddenoiselib.io.series import is_series_file, read_series

from ..conftest import digest_tree

NIBABEL_DATA = Path(data_path)
PHANTOM = "phantom_EPI_asc_CLEAR_2_1"  # Philips 3T EPI phantom: 3 dynamics of 9 slices of 64 x 64, 3.75 x 3.75 x 8 mm


@pytest.fixture()
def parrec(tmp_path) -> Path:
    folder = tmp_path / "scanner"
    folder.mkdir()
    for suffix in (".PAR", ".REC"):
        shutil.copy(NIBABEL_DATA / (PHANTOM + suffix), folder / (PHANTOM + suffix))
    return folder / (PHANTOM + ".PAR")


@pytest.fixture()
def mr_mgz(tmp_path, mr_nifti) -> Path:
    """The sample MR head (int16, 4 x 4 x 5 mm, oblique-free) as FreeSurfer writes it, with its sequence timing."""
    source = nib.load(mr_nifti)
    image = nib.MGHImage(np.asarray(source.dataobj).astype(np.int16), source.affine)
    image.header["tr"], image.header["te"], image.header["flip_angle"] = 2300.0, 2.98, np.deg2rad(9.0)
    path = tmp_path / "head.mgz"
    nib.save(image, path)
    return path


def test_mgz_reads_with_nibabels_voxels_and_geometry(mr_mgz):
    volume = read_volume(mr_mgz)
    image = nib.load(mr_mgz)
    assert volume.source.format == "mgh" and volume.array.dtype == np.int16
    np.testing.assert_array_equal(volume.array, np.transpose(np.asarray(image.dataobj), (2, 1, 0)))
    np.testing.assert_allclose(volume.ijk_to_ras(), image.affine, atol=1e-5)
    assert volume.spacing == pytest.approx((4.0, 4.0, 5.0), abs=1e-5)
    assert volume.metadata["mgh_tr"] == "2300" and volume.metadata["mgh_te"] == "2.98"
    guess = detect_modality(volume)  # FreeSurfer processes MR; HU values would still say CT
    assert guess.modality is Modality.MR and "FreeSurfer" in guess.reason
    ct_values = volume.with_array(np.where(volume.array > 100, 400, -1000).astype(np.int16))
    assert detect_modality(ct_values).modality is Modality.CT


def test_mgz_denoised_through_the_cli_keeps_dtype_geometry_and_sequence_timing(tmp_path, mr_mgz):
    noisy, out = tmp_path / "noisy.mgz", tmp_path / "denoised.mgz"
    assert main(["simulate", str(mr_mgz), str(noisy), "--noise", "rician:10%", "--seed", "1", "-q"]) == 0
    before = digest_tree(tmp_path)
    assert main(["denoise", str(noisy), str(out), "--modality", "mr", "-q", "--report", str(tmp_path / "r.json")]) == 0
    assert all(digest_tree(tmp_path)[name] == digest for name, digest in before.items())  # inputs untouched
    clean, noisy_volume, result = read_volume(mr_mgz), read_volume(noisy), read_volume(out)
    assert result.array.dtype == np.int16 and result.same_geometry(clean, atol=1e-4)
    header = nib.load(out).header
    assert float(header["tr"]) == 2300.0 and float(header["te"]) == pytest.approx(2.98)
    assert float(header["flip_angle"]) == pytest.approx(np.deg2rad(9.0))
    peak = float(clean.array.max())
    gain = psnr(clean.array / peak, result.array / peak) - psnr(clean.array / peak, noisy_volume.array / peak)
    assert gain > 5  # measured +6.87 dB (27.09 -> 33.96) on this 58 x 58 x 24 head (the burst model, floor removed)
    assert json.loads((tmp_path / "r.json").read_text())["modality"] == "mr"
    # without --modality: an MGZ is taken as MR, and denoised the same way
    again = tmp_path / "again.mgz"
    assert main(["denoise", str(noisy), str(again), "-q"]) == 0
    np.testing.assert_array_equal(read_volume(again).array, result.array)


def test_mgz_output_refuses_what_mgh_cannot_store(tmp_path, mr_nifti):
    volume = read_volume(mr_nifti)
    with pytest.raises(OutputError, match=r"MGH cannot store float64 pixels \(only uint8, int16, int32, float32\)"):
        write_volume(volume.with_array(volume.array.astype(np.float64)), tmp_path / "x.mgz")
    written = write_volume(volume.with_array(volume.array.astype(np.float32)), tmp_path / "x.mgh")
    assert read_volume(written).array.dtype == np.float32 and read_volume(written).same_geometry(volume, atol=1e-4)


def test_parrec_is_a_4d_mr_series_written_as_nifti(tmp_path, parrec):
    assert is_series_file(parrec)
    series = read_series(parrec)
    image = nib.load(parrec)
    assert series.array.shape == (3, 9, 64, 64) and series.array.dtype == np.float32
    assert series.frame_label == "dynamic scan number" and series.frame_values == ("1", "2", "3")
    # display values, as nibabel's parrec2nii writes them (float32 holds the 16-bit scaled values)
    expected = np.transpose(np.asarray(image.dataobj), (3, 2, 1, 0))
    np.testing.assert_allclose(series.array, expected, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(series.ijk_to_ras(), image.affine, atol=1e-5)  # the oblique angulation kept
    assert detect_modality(series.frame(0)).modality is Modality.MR

    out = tmp_path / "out" / "epi.nii.gz"
    out.parent.mkdir()
    before = digest_tree(parrec.parent)
    assert main(["denoise", str(parrec), str(out), "-q", "--report", str(tmp_path / "r.json")]) == 0
    assert digest_tree(parrec.parent) == before
    written = nib.load(out)
    assert written.shape == (64, 64, 9, 3)
    np.testing.assert_allclose(written.affine, image.affine, atol=1e-4)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["modality"] == "mr" and "PAR/REC" in report["model_choice"]
    result = np.asarray(written.dataobj)
    changed = np.abs(result - np.asarray(image.dataobj))
    assert 0 < changed.mean() < 0.05 * np.asarray(image.dataobj).mean()  # denoised, not replaced


def test_a_folder_with_parrec_and_minc_gets_nifti_outputs(tmp_path, parrec):
    pytest.importorskip("h5py")
    shutil.copy(NIBABEL_DATA / "small.mnc", parrec.parent / "small.mnc")
    out = tmp_path / "results"
    assert main(["denoise", str(parrec.parent), str(out), "--model", "median", "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [PHANTOM + ".nii.gz", "small.nii.gz"]  # the .REC is no input


@pytest.mark.parametrize("name", ["minc1_1_scale.mnc", "small.mnc"])  # MINC 1 (NetCDF) and MINC 2 (HDF5)
def test_minc_reads_real_values_and_geometry(name):
    if name == "small.mnc":
        pytest.importorskip("h5py")
    volume = read_volume(NIBABEL_DATA / name)
    image = nib.load(NIBABEL_DATA / name)
    assert volume.source.format == "minc" and volume.array.dtype == np.float32
    np.testing.assert_allclose(volume.array, np.transpose(np.asarray(image.dataobj), (2, 1, 0)), rtol=1e-6)
    np.testing.assert_allclose(volume.ijk_to_ras(), image.affine, atol=1e-5)


def test_read_only_formats_are_refused_as_outputs(tmp_path, parrec):
    volume = read_volume(NIBABEL_DATA / "minc1_1_scale.mnc")
    for name, fmt in (("x.mnc", "MINC"), ("x.PAR", "PAR/REC")):
        with pytest.raises(OutputError, match=f"{fmt} files are read, not written; write .nii.gz"):
            write_volume(volume, tmp_path / name)
    assert main(["denoise", str(parrec), str(tmp_path / "x.PAR"), "-q"]) == 1


def test_bad_parrec_and_minc_inputs_get_one_clear_error(tmp_path, parrec, capsys):
    lone = tmp_path / "lone" / "T1.PAR"
    lone.parent.mkdir()
    shutil.copy(NIBABEL_DATA / "T1.PAR", lone)
    with pytest.raises(InputError, match=r"T1.PAR: the PAR/REC pair's data file T1.REC does not exist"):
        probe_volume(lone)
    with pytest.raises(InputError, match=rf"{PHANTOM}.REC: the data file of a Philips PAR/REC pair; give its header"):
        probe_volume(parrec.with_suffix(".REC"))
    # a header whose slice table disagrees with itself (one dynamic short)
    with pytest.raises(InputError, match=r"phantom_truncated.PAR: cannot read as PAR/REC \(.*dynamic"):
        probe_volume(NIBABEL_DATA / "phantom_truncated.PAR")
    with pytest.raises(InputError, match=r"minc1_4d.mnc: a MINC file with 4 axes .* only 3D MINC is read"):
        probe_volume(NIBABEL_DATA / "minc1_4d.mnc")
    # a truncated REC: the header is read, the data cannot be
    short = tmp_path / "short"
    short.mkdir()
    shutil.copy(parrec, short / parrec.name)
    (short / (PHANTOM + ".REC")).write_bytes(parrec.with_suffix(".REC").read_bytes()[:50_000])
    assert main(["denoise", str(short / parrec.name), str(tmp_path / "t.nii.gz"), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {short / parrec.name}") and "Traceback" not in err[0]
    assert not (tmp_path / "t.nii.gz").exists()


def _with_rec(tmp_path: Path, name: str) -> Path:
    """A real PAR header of nibabel's test data with a REC of the size it claims (nibabel ships the headers only)."""
    par = tmp_path / f"{name}.PAR"
    shutil.copy(NIBABEL_DATA / par.name, par)
    header = nib.parrec.PARRECHeader.from_fileobj(open(par))
    values = np.random.default_rng(0).integers(0, 4000, int(np.prod(header.get_data_shape())), dtype=np.uint16)
    par.with_suffix(".REC").write_bytes(values.tobytes())
    return par


def test_parrec_with_phase_or_real_images_is_refused(tmp_path):
    types = r"holds images of type 0 \(magnitude\), 1 \(real\), 2 \(imaginary\), 3 \(phase"
    with pytest.raises(InputError, match=types):
        probe_volume(_with_rec(tmp_path, "T1_3echo_mag_real_imag_phase"))
    with pytest.raises(InputError, match=r"fieldmap.PAR: holds images of type 0 \(magnitude\), 3 \(phase\); only"):
        probe_volume(_with_rec(tmp_path, "fieldmap"))


def test_a_diffusion_parrec_reads_as_a_series_of_its_eight_volumes(tmp_path):
    par = _with_rec(tmp_path, "DTI")  # a V4.1 header: 2 b-values x gradient directions, 10 slices of 80 x 80
    assert is_series_file(par)
    series = read_series(par)
    assert series.array.shape == (8, 10, 80, 80) and series.frame_label == "frame"  # two labels vary
    np.testing.assert_allclose(series.ijk_to_ras(), nib.load(par).affine, atol=1e-5)
