"""A DICOM series of frames (a DWI or fMRI run: several images at every slice position) denoised into a 4D NIfTI,
NRRD or MGZ, as FSL, MRtrix and BIDS users convert them, with the diffusion encoding as FSL's ``.bval`` / ``.bvec``
beside a NIfTI. Before 2026-12-07 the CLI refused such an output ("slices at repeated positions ... write a DICOM
series instead"); only the MONAI bundle wrote the 4D NIfTI, and without a gradient table."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pydicom
import pytest

from meddenoiselib.cli import main
from meddenoiselib.demo import sample_path
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_series, read_volume
from meddenoiselib.io.dicom_diffusion import dicom_diffusion_table
from meddenoiselib.io.series import series_of_repeated_frames

from ..conftest import new_dicom_dataset, psnr_to_peak, rician_head_frames

B_VALUES = (0.0, 1000.0, 1000.0, 1000.0)
#: gradient directions in the patient's LPS coordinates (unit vectors; b = 0 has none)
DIRECTIONS = ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.6, 0.8), (0.48, -0.6, 0.64))
SIGMA = 30.0
#: an oblique slice plane (rotated 30 degrees about the patient's S axis, then tilted), as scanners plan them
ANGLE = math.radians(30)
ROW = np.array([math.cos(ANGLE), math.sin(ANGLE), 0.0])
COLUMN = np.array([-math.sin(ANGLE) * 0.8, math.cos(ANGLE) * 0.8, 0.6])


def _clean_and_noisy() -> tuple[np.ndarray, np.ndarray]:
    """``(4, 6, 58, 58)`` frames of the bundled head MR (b = 0 brightest) and their Rician magnitude, uint16."""
    return rician_head_frames((1.0, 0.5, 0.45, 0.55), slice(8, 14), seed=11, sigma=SIGMA)


def _write_series(folder, frames: np.ndarray, encode) -> None:
    """A classic MR DICOM series of ``frames`` ``(F, P, Y, X)`` on the oblique plane, 4 x 4 x 5 mm, each image's
    diffusion encoding set by ``encode(dataset, frame)``."""
    folder.mkdir(parents=True)
    normal = np.cross(ROW, COLUMN)
    for f in range(frames.shape[0]):
        for p in range(frames.shape[1]):
            ds = new_dicom_dataset(study="1.2.3.4", series="1.2.3.4.5")
            ds.Modality, ds.PatientID, ds.InstanceNumber = "MR", "dwi", f * frames.shape[1] + p + 1
            ds.ImageOrientationPatient = [*ROW.tolist(), *COLUMN.tolist()]
            ds.ImagePositionPatient = (np.array([-100.0, -80.0, 20.0]) + 5.0 * p * normal).tolist()
            ds.PixelSpacing, ds.SliceThickness = [4.0, 4.0], 5.0
            ds.Rows, ds.Columns = frames.shape[2:]
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.PixelData = np.ascontiguousarray(frames[f, p], dtype=np.uint16).tobytes()
            encode(ds, f)
            pydicom.dcmwrite(str(folder / f"{f:02d}_{p:02d}.dcm"), ds, enforce_file_format=True)


def _standard(ds, f: int) -> None:
    ds.DiffusionBValue = B_VALUES[f]
    if B_VALUES[f] > 0:
        ds.DiffusionGradientOrientation = list(DIRECTIONS[f])


def _siemens(ds, f: int) -> None:
    block = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    block.add_new(0x0C, "IS", str(int(B_VALUES[f])))
    block.add_new(0x0D, "CS", "DIRECTIONAL" if B_VALUES[f] > 0 else "NONE")
    if B_VALUES[f] > 0:
        block.add_new(0x0E, "FD", list(DIRECTIONS[f]))


def _ge(ds, f: int) -> None:
    block = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
    block.add_new(0x39, "IS", [str(int(B_VALUES[f]) + 1_000_000_000), "0", "0", "0"])


def _lps_directions(bvec: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """FSL's ``(3, F)`` b-vectors back to LPS patient directions, through the written file's affine (as MRtrix
    reads them): un-negate x for a positive determinant, then the voxel axes' RAS directions, then RAS -> LPS."""
    axes = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    voxel = bvec.copy()
    if np.linalg.det(affine[:3, :3]) > 0:
        voxel[0] = -voxel[0]
    return (np.diag([-1.0, -1.0, 1.0]) @ axes @ voxel).T


def test_a_dicom_dwi_series_is_written_as_a_4d_nifti_with_its_gradient_table(tmp_path, capsys):
    clean, noisy = _clean_and_noisy()
    _write_series(tmp_path / "dwi", noisy, _standard)
    out = tmp_path / "dwi_denoised.nii.gz"
    assert main(["denoise", str(tmp_path / "dwi"), str(out), "--quiet"]) == 0

    written = nib.load(str(out))
    assert written.shape == (58, 58, 6, 4)  # (x, y, positions, frames)
    np.testing.assert_allclose(written.header.get_zooms()[:3], (4.0, 4.0, 5.0), atol=1e-4)
    volume = read_volume(tmp_path / "dwi")
    series = series_of_repeated_frames(volume)
    np.testing.assert_allclose(written.affine, series.ijk_to_ras(), atol=1e-4)  # the positions' oblique grid
    expected = Denoiser().denoise(series).array  # (F, P, Y, X), the same run as a DICOM folder output's
    denoised = np.asarray(written.dataobj).transpose(3, 2, 1, 0)
    np.testing.assert_array_equal(denoised, expected)
    for f in range(4):
        assert psnr_to_peak(clean[f], denoised[f]) > psnr_to_peak(clean[f], noisy[f]) + 3.0, f

    assert (tmp_path / "dwi_denoised.bval").read_text() == "0 1000 1000 1000\n"
    bvec = np.loadtxt(tmp_path / "dwi_denoised.bvec")
    assert bvec.shape == (3, 4)
    np.testing.assert_allclose(np.linalg.norm(bvec, axis=0), [0, 1, 1, 1], atol=1e-5)
    np.testing.assert_allclose(_lps_directions(bvec, written.affine), DIRECTIONS, atol=1e-5)

    # read back, the NIfTI and its .bval are a diffusion series of MR, as dcm2niix's output is
    back = read_series(out)
    assert back.frame_label == "gradient" and back.num_frames == 4
    # info on the DICOM says what the table will be
    capsys.readouterr()
    assert main(["info", str(tmp_path / "dwi")]) == 0
    shown = capsys.readouterr().out
    assert "b-values 0 x1, 1000 x3; with gradient directions; from DICOM DiffusionBValue and" in shown


def test_siemens_and_ge_private_encodings(tmp_path, capsys):
    _, noisy = _clean_and_noisy()
    _write_series(tmp_path / "siemens", noisy[:, :2], _siemens)
    volume = read_volume(tmp_path / "siemens")
    table = dicom_diffusion_table(volume.source.dicom_files, volume.source.repeated_frames)
    np.testing.assert_array_equal(table.b_values, B_VALUES)
    np.testing.assert_allclose(table.directions, DIRECTIONS)
    assert "Siemens" in table.source

    _write_series(tmp_path / "ge", noisy[:, :2], _ge)
    out = tmp_path / "ge.nii"
    assert main(["denoise", str(tmp_path / "ge"), str(out), "--model", "kpn-burst3", "--refine", "off"]) == 0
    assert (tmp_path / "ge.bval").read_text() == "0 1000 1000 1000\n"  # GE's 10^9 offsets removed
    assert not (tmp_path / "ge.bvec").exists()
    assert "b-values but no gradient directions (GE's private b-value)" in capsys.readouterr().err


def test_other_frames_and_formats(tmp_path, capsys):
    """An fMRI-like series (no b-values) gets a 4D NIfTI without tables; a DWI to TIFF gets no table (a warning), to
    NRRD 3D Slicer's DWI header; a DICOM folder output is a DICOM series as before; an existing table is not
    replaced without --overwrite."""
    _, noisy = _clean_and_noisy()

    def bold(ds, f: int) -> None:
        ds.TemporalPositionIdentifier, ds.RepetitionTime = f + 1, 2000.0

    _write_series(tmp_path / "bold", noisy[:, :3], bold)
    args = ["--model", "kpn-burst3", "--refine", "off", "--quiet"]
    assert main(["denoise", str(tmp_path / "bold"), str(tmp_path / "bold.nii.gz"), *args]) == 0
    written = nib.load(str(tmp_path / "bold.nii.gz"))
    assert written.shape == (58, 58, 3, 4)
    # the volumes' interval, as dcm2niix writes it and FSL / fMRIPrep read it
    assert written.header.get_zooms()[3] == pytest.approx(2.0) and written.header.get_xyzt_units() == ("mm", "sec")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["bold.json", "bold.nii.gz"]

    _write_series(tmp_path / "dwi", noisy[:, :3], _standard)
    capsys.readouterr()
    assert main(["denoise", str(tmp_path / "dwi"), str(tmp_path / "dwi.tif"), "--model", "kpn-burst3"]) == 0
    assert "or into a NRRD only" in capsys.readouterr().err
    assert read_series(tmp_path / "dwi.tif").array.shape == (4, 3, 58, 58)

    assert main(["denoise", str(tmp_path / "dwi"), str(tmp_path / "dwi_out"), *args]) == 0
    assert len(list((tmp_path / "dwi_out").glob("*.dcm"))) == 12

    # into a NRRD: 3D Slicer's diffusion-weighted NRRD (LPS measurement frame, gradients scaled by sqrt(b / b_max))
    assert main(["denoise", str(tmp_path / "dwi"), str(tmp_path / "dwi.nrrd"), *args]) == 0
    header = (tmp_path / "dwi.nrrd").read_bytes().split(b"\n\n")[0].decode()
    assert "modality:=DWMRI" in header and "DWMRI_b-value:=1000" in header
    assert "measurement frame: (1,0,0) (0,1,0) (0,0,1)" in header and "space: left-posterior-superior" in header
    for f, direction in enumerate(DIRECTIONS):
        line = next(row for row in header.splitlines() if row.startswith(f"DWMRI_gradient_{f:04d}:="))
        np.testing.assert_allclose([float(v) for v in line.split(":=")[1].split()], direction, atol=1e-7)
    back = read_series(tmp_path / "dwi.nrrd")
    assert back.frame_label == "gradient" and back.array.shape == (4, 3, 58, 58)

    (tmp_path / "dwi2.bval").write_text("mine\n")
    (tmp_path / "dwi2.json").unlink(missing_ok=True)
    assert main(["denoise", str(tmp_path / "dwi"), str(tmp_path / "dwi2.nii.gz"), *args]) != 0
    assert not (tmp_path / "dwi2.nii.gz").exists() and (tmp_path / "dwi2.bval").read_text() == "mine\n"


@pytest.mark.parametrize("residual", [False, True])
def test_residual_and_report_of_a_dicom_series_of_frames(tmp_path, residual):
    _, noisy = _clean_and_noisy()
    _write_series(tmp_path / "dwi", noisy[:, :3], _standard)
    extra = ["--residual", str(tmp_path / "res.nii.gz")] if residual else []
    args = ["--model", "kpn-burst3", "--refine", "off", "--quiet", "--report", str(tmp_path / "r.json")]
    assert main(["denoise", str(tmp_path / "dwi"), str(tmp_path / "o.nii.gz"), *args, *extra]) == 0
    if residual:
        removed = np.asarray(nib.load(str(tmp_path / "res.nii.gz")).dataobj)
        out = np.asarray(nib.load(str(tmp_path / "o.nii.gz")).dataobj).astype(np.float64)
        assert removed.shape == (58, 58, 3, 4) and removed.dtype == np.float32
        np.testing.assert_allclose(removed, noisy[:, :3].transpose(3, 2, 1, 0) - out, atol=1e-3)
    assert (tmp_path / "r.json").is_file()


def _nibabel_mosaic(name: str):
    """One of nibabel's Siemens DWI mosaics (real scanner headers with their CSA header; blank pixels), or a skip."""
    import gzip
    import io
    import warnings
    from pathlib import Path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel calls its DICOM readers experimental
        import nibabel.nicom

    path = Path(nibabel.nicom.__file__).parent / "tests" / "data" / f"{name}.dcm.gz"
    if not path.is_file():
        pytest.skip(f"nibabel's test mosaic {path.name} is not installed")
    return pydicom.dcmread(io.BytesIO(gzip.decompress(path.read_bytes())))


def test_siemens_mosaics_are_written_as_a_4d_nifti_placed_by_their_csa_header(tmp_path):
    """A Siemens scanner's DWI mosaics (b = 0 and b = 1000, 48 slices in 7 x 7 tiles of 128 x 128, oblique), their
    pixels replaced by a Rician-noisy head: the 4D NIfTI's affine is the one nibabel's own DICOM reader derives from
    the CSA header, the b-vector is the header's, and the frames are denoised."""
    import warnings

    head = np.asarray(nib.load(str(sample_path("mr_head"))).dataobj, dtype=np.float64).transpose(2, 1, 0)
    slices = np.zeros((48, 128, 128))
    slices[:, 35:93, 35:93] = head[np.arange(48) % head.shape[0]]
    rng = np.random.default_rng(5)
    folder = tmp_path / "mosaics"
    folder.mkdir()
    clean = []
    for name, weight in (("siemens_dwi_0", 1.0), ("siemens_dwi_1000", 0.5)):
        ds = _nibabel_mosaic(name)
        frame = slices * weight
        noisy = np.hypot(frame + rng.normal(0, SIGMA, frame.shape), rng.normal(0, SIGMA, frame.shape))
        tiles = np.zeros((49, 128, 128))
        tiles[:48] = np.rint(noisy)
        mosaic = tiles.reshape(7, 7, 128, 128).transpose(0, 2, 1, 3).reshape(896, 896)
        ds.PixelData = mosaic.astype(np.uint16).tobytes()
        ds.save_as(folder / f"{name}.dcm")
        clean.append((frame, noisy))
    out = tmp_path / "dwi.nii.gz"
    assert main(["denoise", str(folder), str(out), "--quiet"]) == 0

    written = nib.load(str(out))
    assert written.shape == (128, 128, 48, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel calls its DICOM readers experimental
        from nibabel.nicom import csareader, dicomwrappers

        wrapper = dicomwrappers.wrapper_from_data(_nibabel_mosaic("siemens_dwi_1000"))
        lps = wrapper.affine  # voxel (row, column, slice) -> LPS
        g_vector = csareader.get_g_vector(csareader.get_csa_header(_nibabel_mosaic("siemens_dwi_1000")))
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps[:, [1, 0, 2, 3]]  # voxel (column, row, slice) -> RAS
    np.testing.assert_allclose(written.affine, ras, atol=1e-3)

    assert (tmp_path / "dwi.bval").read_text() == "0 1000\n"
    bvec = np.loadtxt(tmp_path / "dwi.bvec")
    np.testing.assert_allclose(_lps_directions(bvec, written.affine)[1], g_vector / np.linalg.norm(g_vector), atol=1e-5)

    denoised = np.asarray(written.dataobj).transpose(3, 2, 1, 0)
    for f, (frame, noisy) in enumerate(clean):
        assert psnr_to_peak(frame, denoised[f]) > psnr_to_peak(frame, noisy) + 2.0, f
