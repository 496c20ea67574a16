"""A DICOM series holding several frames at every slice position (a classic DWI: one file per slice per gradient, as
GE and Philips write it) is denoised as the 4D series it is: frames grouped by position, each frame's own slices as a
burst model's neighbours, the result back in the files' order."""

from __future__ import annotations

import dataclasses

import nibabel as nib
import numpy as np
import pydicom
from pydicom.uid import generate_uid

from meddenoiselib.cli import main
from meddenoiselib.demo import sample_path
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume
from meddenoiselib.io.series import series_of_repeated_frames, stacked_frames

from ..conftest import new_dicom_dataset

B_VALUES = (1000.0, 1000.0, 0.0, 1000.0)  # the b = 0 frame between b = 1000 ones, as scanners interleave them


def _write_dwi_series(folder, frames: np.ndarray, b_values=B_VALUES, skip: int | None = None) -> None:
    """One MR file per image of ``frames`` ``(F, P, Y, X)`` uint16, 4 x 4 x 5 mm, InstanceNumber in acquisition
    order (frame by frame), files named by their UIDs (no order in the names); ``skip``: leave that image out."""
    folder.mkdir()
    study, series = generate_uid(), generate_uid()
    count, positions = frames.shape[:2]
    for f in range(count):
        for p in range(positions):
            if skip == f * positions + p:
                continue
            ds = new_dicom_dataset(study=study, series=series)
            ds.Modality, ds.PatientName, ds.PatientID = "MR", "Test^DWI", "dwi"
            ds.InstanceNumber = f * positions + p + 1
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.ImagePositionPatient = [0.0, 0.0, 5.0 * p]
            ds.PixelSpacing, ds.SliceThickness = [4.0, 4.0], 5.0
            ds.DiffusionBValue = b_values[f]
            ds.Rows, ds.Columns = frames.shape[2:]
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.PixelData = np.ascontiguousarray(frames[f, p], dtype=np.uint16).tobytes()
            pydicom.dcmwrite(str(folder / f"{ds.SOPInstanceUID}.dcm"), ds, enforce_file_format=True)


def _noisy_frames() -> np.ndarray:
    head = np.asarray(nib.load(str(sample_path("mr_head"))).dataobj, dtype=np.float64).transpose(2, 1, 0)[8:14]
    clean = np.stack([head * w for w in (0.5, 0.45, 1.0, 0.55)])
    rng = np.random.default_rng(5)
    return np.rint(np.hypot(clean + rng.normal(0, 30, clean.shape), rng.normal(0, 30, clean.shape))).astype(np.uint16)


def test_a_dicom_series_of_gradients_at_each_position_is_denoised_as_a_series(tmp_path):
    frames = _noisy_frames()  # (4, 6, 58, 58)
    _write_dwi_series(tmp_path / "dwi", frames)
    volume = read_volume(tmp_path / "dwi")
    assert volume.source.repeated_frames == 4 and volume.source.repeated_frame_label == "gradient"
    series = series_of_repeated_frames(volume)
    np.testing.assert_array_equal(series.array, frames)  # frames back in acquisition order, positions in order
    assert series.frame_label == "gradient" and series.spacing[2] == 5.0
    np.testing.assert_array_equal(stacked_frames(series.array, volume), volume.array)

    denoiser = Denoiser("kpn-burst3", precision="fp32", refine="off")
    as_series = denoiser.denoise(series, sigma=30 / 255).array
    result = denoiser.denoise(volume, sigma=30 / 255)
    np.testing.assert_array_equal(result.array, stacked_frames(as_series, volume))
    # before: the slices as they lie, the burst the other gradients at the same position (and the next position's)
    flat = dataclasses.replace(volume, source=dataclasses.replace(volume.source, repeated_frames=1))
    assert np.abs(denoiser.denoise(flat, sigma=30 / 255).array.astype(float) - result.array).max() > 10
    # a preview of one file's image is that image as the whole run gives it (position 3, the b = 0 frame: file 3*4+2)
    preview = denoiser.preview(volume, 14, sigma=30 / 255)
    np.testing.assert_array_equal(preview.array[0], result.array[14])
    assert preview.source.dicom_files == (volume.source.dicom_files[14],)


def test_the_cli_writes_a_dicom_series_of_frames_back_file_for_file(tmp_path):
    """Default flags, files in and out: each output file holds its own image denoised as ``auto`` denoises the
    frames, with its position, InstanceNumber and b-value."""
    frames = _noisy_frames()
    _write_dwi_series(tmp_path / "dwi", frames)
    assert main(["denoise", str(tmp_path / "dwi"), str(tmp_path / "out"), "--quiet"]) == 0
    expected = Denoiser("auto").denoise(read_volume(tmp_path / "dwi"))
    written = read_volume(tmp_path / "out")
    assert written.source.repeated_frames == 4
    np.testing.assert_array_equal(written.array, expected.array)
    for source, output in zip(expected.source.dicom_files, written.source.dicom_files, strict=True):
        before, after = pydicom.dcmread(source), pydicom.dcmread(output)
        assert (before.InstanceNumber, before.DiffusionBValue) == (after.InstanceNumber, after.DiffusionBValue)
        assert list(before.ImagePositionPatient) == list(after.ImagePositionPatient)


def test_a_series_with_unequal_repeats_is_not_frames(tmp_path):
    frames = _noisy_frames()
    _write_dwi_series(tmp_path / "dwi", frames, skip=5)  # one image missing: 3 frames at one position
    volume = read_volume(tmp_path / "dwi")
    assert volume.source.repeated_frames == 1 and series_of_repeated_frames(volume) is None
