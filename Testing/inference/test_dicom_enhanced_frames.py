"""Enhanced (multi-frame) MR DICOM holding several frames at every position is denoised as the 4D series it is: one
file of a whole DWI / fMRI / multi-echo run (its frames in any order), or a series of such files, one volume each
(as Siemens XA scanners write fMRI and diffusion), written back file for file and frame for frame."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from meddenoiselib.cli import main
from meddenoiselib.errors import InputError
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume
from meddenoiselib.io.series import series_of_repeated_frames, stacked_frames

from ..conftest import ENHANCED_MR_IMAGE_STORAGE, new_dicom_dataset, psnr_to_peak, rician_head_frames

B_VALUES = (1000.0, 1000.0, 0.0, 1000.0)
SIGMA = 30.0


def _item(**sequences) -> Dataset:
    """A functional-group item: ``Name=Dataset`` pairs become one-item sequences."""
    item = Dataset()
    for name, value in sequences.items():
        setattr(item, name, Sequence([value]))
    return item


def _dataset(**values) -> Dataset:
    ds = Dataset()
    for name, value in values.items():
        setattr(ds, name, value)
    return ds


def _write_enhanced(
    path,
    frames: np.ndarray,
    pairs,
    b_values=None,
    echo_times=None,
    series=None,
    instance=1,
    z0=0.0,
    directions=None,
    components=None,
):
    """An Enhanced MR Image file holding ``frames[f, p]`` (``(F, P, Y, X)`` uint16, 4 x 4 x 5 mm) for each ``(f, p)``
    of ``pairs`` in that order, with per-frame positions (from ``z0`` mm), temporal indices and b-values (with
    gradient ``directions``, LPS) or echo times, and each frame ``f``'s ComplexImageComponent ``components[f]``."""
    ds = new_dicom_dataset(ENHANCED_MR_IMAGE_STORAGE, "1.2.3.4", series)
    ds.Modality, ds.PatientID, ds.InstanceNumber = "MR", "enhanced", instance
    ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION" if b_values is not None else "M", "NONE"]
    measures = _dataset(PixelSpacing=[4.0, 4.0], SliceThickness=5.0)
    orientation = _dataset(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])
    ds.SharedFunctionalGroupsSequence = Sequence(
        [_item(PixelMeasuresSequence=measures, PlaneOrientationSequence=orientation)]
    )
    items = []
    for f, p in pairs:
        groups = {
            "PlanePositionSequence": _dataset(ImagePositionPatient=[0.0, 0.0, z0 + 5.0 * p]),
            "FrameContentSequence": _dataset(InStackPositionNumber=p + 1, TemporalPositionIndex=f + 1),
        }
        if b_values is not None:
            groups["MRDiffusionSequence"] = _dataset(DiffusionBValue=b_values[f])
            if directions is not None and b_values[f] > 0:
                gradient = _dataset(DiffusionGradientOrientation=list(directions[f]))
                groups["MRDiffusionSequence"].DiffusionDirectionality = "DIRECTIONAL"
                groups["MRDiffusionSequence"].DiffusionGradientDirectionSequence = Sequence([gradient])
        if echo_times is not None:
            groups["MREchoSequence"] = _dataset(EffectiveEchoTime=echo_times[f])
        if components is not None:
            frame_type = ["ORIGINAL", "PRIMARY", components[f][0], "NONE"]
            groups["MRImageFrameTypeSequence"] = _dataset(FrameType=frame_type, ComplexImageComponent=components[f])
        items.append(_item(**groups))
    ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    ds.NumberOfFrames = len(items)
    ds.Rows, ds.Columns = frames.shape[2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.ascontiguousarray(np.stack([frames[f, p] for f, p in pairs]), dtype=np.uint16).tobytes()
    pydicom.dcmwrite(str(path), ds, enforce_file_format=True)


def _clean_and_noisy(weights=(0.5, 0.45, 1.0, 0.55)) -> tuple[np.ndarray, np.ndarray]:
    """``(F, 8, 58, 58)`` frames of the bundled head MR and their Rician magnitude (sigma 30), uint16."""
    return rician_head_frames(weights, slice(8, 16), seed=7, sigma=SIGMA)


def test_one_enhanced_file_of_frames_in_position_order_is_denoised_as_a_series(tmp_path):
    """Frames stored position by position (every b-value of the first slice, then of the second...): before, a burst
    model's neighbours were the other gradients at the same position (on the MNI diffusion frames 1 dB lost on
    b = 0, docs/benchmarks_mosaic_dicom.md; this toy's b = 1000 frames are scaled copies of each other, which made
    those neighbours as good as the slices)."""
    clean, noisy = _clean_and_noisy()
    pairs = [(f, p) for p in range(8) for f in range(4)]
    _write_enhanced(tmp_path / "dwi.dcm", noisy, pairs, B_VALUES)
    volume = read_volume(tmp_path / "dwi.dcm")
    assert volume.shape == (32, 58, 58)  # the file's frames as it holds them
    assert (volume.source.repeated_frames, volume.source.repeated_frame_label) == (4, "gradient")
    series = series_of_repeated_frames(volume)
    np.testing.assert_array_equal(series.array, noisy)
    assert series.spacing[2] == pytest.approx(5.0)
    np.testing.assert_array_equal(stacked_frames(series.array, volume), volume.array)
    assert series_of_repeated_frames(volume.slab(0, 3, 9)) is None  # some of the frames: no longer their grid

    result = Denoiser("auto").denoise(volume)
    frames = series_of_repeated_frames(volume.with_array(result.array)).array
    gains = [psnr_to_peak(clean[f], frames[f]) - psnr_to_peak(clean[f], noisy[f]) for f in range(4)]
    assert min(gains) > 3.0, gains
    denoiser = Denoiser("kpn-burst3", precision="fp32", refine="off")
    np.testing.assert_array_equal(
        denoiser.denoise(volume).array, stacked_frames(denoiser.denoise(series).array, volume)
    )
    # a preview of frame 9 of the file (position 2, b = 0) is that frame as the whole run gives it
    preview = denoiser.preview(volume, 9)
    np.testing.assert_array_equal(preview.array[0], denoiser.denoise(volume).array[9])

    assert main(["denoise", str(tmp_path / "dwi.dcm"), str(tmp_path / "out.dcm"), "--quiet"]) == 0
    written = pydicom.dcmread(tmp_path / "out.dcm")
    assert written.NumberOfFrames == 32
    np.testing.assert_array_equal(read_volume(tmp_path / "out.dcm").array, result.array)
    for k, (f, p) in enumerate(pairs):
        item = written.PerFrameFunctionalGroupsSequence[k]
        assert item.PlanePositionSequence[0].ImagePositionPatient[2] == 5.0 * p
        assert item.MRDiffusionSequence[0].DiffusionBValue == B_VALUES[f]


def test_a_series_of_enhanced_files_one_volume_each_is_a_series(tmp_path):
    """Before 2026-12-06 such a series was refused ("split over 4 files of which 4 hold several frames")."""
    clean, noisy = _clean_and_noisy()
    folder = tmp_path / "xa"
    folder.mkdir()
    series_uid = generate_uid()
    for f in range(4):
        pairs = [(0, p) for p in range(8)]
        _write_enhanced(
            folder / f"{generate_uid()}.dcm", noisy[f : f + 1], pairs, B_VALUES[f : f + 1], None, series_uid, f + 1
        )
    volume = read_volume(folder)
    assert volume.shape == (32, 58, 58) and len(volume.source.dicom_files) == 4
    assert (volume.source.repeated_frames, volume.source.repeated_frame_label) == (4, "gradient")
    np.testing.assert_array_equal(series_of_repeated_frames(volume).array, noisy)

    assert main(["denoise", str(folder), str(tmp_path / "out"), "--quiet"]) == 0
    expected = Denoiser("auto").denoise(volume)
    written = read_volume(tmp_path / "out")
    np.testing.assert_array_equal(written.array, expected.array)
    frames = series_of_repeated_frames(written).array
    for f in range(4):
        assert psnr_to_peak(clean[f], frames[f]) - psnr_to_peak(clean[f], noisy[f]) > 3.0
    for path in written.source.dicom_files:
        assert pydicom.dcmread(path, stop_before_pixels=True).NumberOfFrames == 8


def test_echoes_and_time_points_are_told_apart_and_a_mismatched_series_is_refused(tmp_path):
    _, noisy = _clean_and_noisy(weights=(1.0, 0.7, 0.5))
    pairs = [(f, p) for f in range(3) for p in range(8)]
    _write_enhanced(tmp_path / "echoes.dcm", noisy, pairs, echo_times=(10.0, 30.0, 50.0))
    assert read_volume(tmp_path / "echoes.dcm").source.repeated_frame_label == "echo"
    _write_enhanced(tmp_path / "bold.dcm", noisy, pairs)
    assert read_volume(tmp_path / "bold.dcm").source.repeated_frame_label == "time"

    folder = tmp_path / "mismatched"  # two files of different positions: not one volume per file
    folder.mkdir()
    series_uid = generate_uid()
    _write_enhanced(folder / "a.dcm", noisy[:1], [(0, p) for p in range(8)], series=series_uid, instance=1)
    _write_enhanced(folder / "b.dcm", noisy[:1], [(0, p) for p in range(8)], series=series_uid, instance=2, z0=2.5)
    with pytest.raises(InputError, match="not one volume each at the same positions"):
        read_volume(folder)


def test_an_enhanced_dwi_file_is_written_as_a_4d_nifti_with_its_per_frame_gradient_table(tmp_path):
    """The frames of one file in position order (every gradient of the first slice, then of the second...): the
    4D NIfTI holds them frame by frame, and the .bval / .bvec are the per-frame MR Diffusion groups' values."""
    clean, noisy = _clean_and_noisy()
    directions = ((0.0, 0.6, 0.8), (1.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    pairs = [(f, p) for p in range(8) for f in range(4)]
    _write_enhanced(tmp_path / "dwi.dcm", noisy, pairs, B_VALUES, directions=directions)
    assert main(["denoise", str(tmp_path / "dwi.dcm"), str(tmp_path / "dwi.nii.gz"), "--quiet"]) == 0
    written = nib.load(str(tmp_path / "dwi.nii.gz"))
    frames = np.asarray(written.dataobj).transpose(3, 2, 1, 0)
    volume = read_volume(tmp_path / "dwi.dcm")
    np.testing.assert_array_equal(frames, Denoiser("auto").denoise(series_of_repeated_frames(volume)).array)
    for f in range(4):
        assert psnr_to_peak(clean[f], frames[f]) - psnr_to_peak(clean[f], noisy[f]) > 3.0
    assert (tmp_path / "dwi.bval").read_text() == "1000 1000 0 1000\n"
    # an axial grid of positive determinant: FSL's x is the negated first voxel axis (L in LPS)
    expected = np.array(directions).T * np.array([[-1.0], [1.0], [1.0]])
    np.testing.assert_allclose(np.loadtxt(tmp_path / "dwi.bvec"), expected + 0.0, atol=1e-6)


def test_an_enhanced_file_of_magnitude_and_phase_frames_is_refused(tmp_path, capsys):
    """Philips writes the magnitude and phase frames of a field map or SWI into one enhanced file; denoised as one
    run, phase angles would go through the magnitude model beside the magnitudes (classic series mixing parts were
    already refused, 2026-12-06). A file of magnitude frames only reads as before."""
    _, noisy = _clean_and_noisy(weights=(1.0, 0.7))
    pairs = [(f, p) for f in range(2) for p in range(8)]
    _write_enhanced(tmp_path / "mixed.dcm", noisy, pairs, echo_times=(5.0, 5.0), components=("MAGNITUDE", "PHASE"))
    with pytest.raises(
        InputError, match=r"mixed.dcm: this MR file's frames hold different parts .*8 magnitude, 8 phase"
    ):
        read_volume(tmp_path / "mixed.dcm")
    assert main(["denoise", str(tmp_path / "mixed.dcm"), str(tmp_path / "out.dcm")]) == 1
    assert "8 magnitude, 8 phase" in capsys.readouterr().err and not (tmp_path / "out.dcm").exists()

    _write_enhanced(tmp_path / "magnitude.dcm", noisy, pairs, echo_times=(5.0, 9.0), components=("MAGNITUDE",) * 2)
    assert read_volume(tmp_path / "magnitude.dcm").source.repeated_frames == 2
