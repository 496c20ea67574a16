"""Siemens mosaic DICOM (EPI: fMRI, diffusion; one file per volume, the volume's slices tiled in a grid) is denoised
as the volumes it holds: each mosaic's tiles the slices of one frame, the files written back as mosaics."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from meddenoiselib.cli import main
from meddenoiselib.errors import InputError
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume
from meddenoiselib.io.mosaic import MosaicLayout
from meddenoiselib.io.series import series_of_repeated_frames, stacked_frames

from ..conftest import new_dicom_dataset, psnr_to_peak, rician_head_frames

B_VALUES = (1000, 1000, 0, 1000)  # the b = 0 volume between b = 1000 ones, as scanners interleave them
SIGMA = 30.0
SLICES = 10  # tiled 4 x 4: six empty tiles


def _tiled(volume: np.ndarray) -> np.ndarray:
    """``(n, r, c)`` -> the ``(g r, g c)`` mosaic, ``g = ceil(sqrt(n))``, row by row, the empty tiles 0."""
    n, r, c = volume.shape
    g = math.ceil(math.sqrt(n))
    mosaic = np.zeros((g * r, g * c), volume.dtype)
    for k in range(n):
        mosaic[k // g * r : (k // g + 1) * r, k % g * c : (k % g + 1) * c] = volume[k]
    return mosaic


def _write_mosaics(folder, frames: np.ndarray, b_values=B_VALUES, count: int | None = None) -> list:
    """One Siemens-style mosaic file per frame of ``frames`` ``(F, n, Y, X)`` uint16 (4 x 4 x 5 mm, all at the
    mosaic's one ImagePositionPatient, files named by their UIDs); ``b_values`` None: an fMRI series. ``count``:
    NumberOfImagesInMosaic to write (default ``n``; 0 leaves it out, as anonymisers that strip private tags do)."""
    folder.mkdir()
    study, series = generate_uid(), generate_uid()
    paths = []
    for f in range(frames.shape[0]):
        ds = new_dicom_dataset(study=study, series=series)
        ds.Modality, ds.Manufacturer, ds.PatientName, ds.PatientID = "MR", "SIEMENS", "Test^Mosaic", "mosaic"
        kind = "DIFFUSION" if b_values is not None else "M"
        ds.ImageType = ["ORIGINAL", "PRIMARY", kind, "NONE", "ND", "MOSAIC"]
        ds.InstanceNumber = f + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-100.0, -120.0, 30.0]
        ds.PixelSpacing, ds.SliceThickness, ds.SpacingBetweenSlices = [4.0, 4.0], 5.0, 5.0
        block = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
        if count != 0:
            block.add_new(0x0A, "US", frames.shape[1] if count is None else count)  # NumberOfImagesInMosaic
        if b_values is not None:
            block.add_new(0x0C, "IS", str(b_values[f]))  # B_value
        mosaic = _tiled(frames[f])
        ds.Rows, ds.Columns = mosaic.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = mosaic.astype(np.uint16).tobytes()
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        pydicom.dcmwrite(str(path), ds, enforce_file_format=True)
        paths.append(path)
    return paths


def _clean_and_noisy(weights=(0.5, 0.45, 1.0, 0.55)) -> tuple[np.ndarray, np.ndarray]:
    """``(F, 10, 58, 58)`` clean frames of the bundled head MR and their Rician magnitude (sigma 30), uint16."""
    return rician_head_frames(weights, slice(7, 17), seed=11, sigma=SIGMA)


def _frames_of(volume_array: np.ndarray) -> np.ndarray:
    """``(F, 232, 232)`` mosaics -> ``(F, 10, 58, 58)`` slices."""
    g = 4
    tiles = volume_array.reshape(-1, g, 58, g, 58).swapaxes(2, 3).reshape(-1, g * g, 58, 58)
    return tiles[:, :SLICES]


def test_a_mosaic_series_is_denoised_as_the_volumes_its_images_hold(tmp_path):
    clean, noisy = _clean_and_noisy()
    _write_mosaics(tmp_path / "dwi", noisy)
    volume = read_volume(tmp_path / "dwi")
    assert volume.shape == (4, 232, 232)  # the files as they are: four mosaics
    assert volume.source.mosaic == MosaicLayout(images=SLICES, grid=4, tile_rows=58, tile_columns=58)
    assert volume.source.repeated_frames == 4 and volume.source.repeated_frame_label == "gradient"
    series = series_of_repeated_frames(volume)
    np.testing.assert_array_equal(series.array, noisy)  # each mosaic's tiles, in acquisition order
    assert series.frame_label == "gradient" and series.spacing == (4.0, 4.0, 5.0)
    # the first tile's corner: the mosaic's position moved by half the difference of the sizes, (232 - 58) / 2 px
    np.testing.assert_allclose(series.origin, (-100.0 + 87 * 4.0, -120.0 + 87 * 4.0, 30.0))
    np.testing.assert_array_equal(stacked_frames(series.array, volume), volume.array)
    np.testing.assert_array_equal(series_of_repeated_frames(volume.slab(0, 1, 3)).array, noisy[1:3])  # whole mosaics

    denoiser = Denoiser("kpn-burst3", precision="fp32", refine="off")
    result = denoiser.denoise(volume)
    np.testing.assert_array_equal(result.array, stacked_frames(denoiser.denoise(series).array, volume))
    empty = result.array.reshape(4, 4, 58, 4, 58).swapaxes(2, 3).reshape(4, 16, 58, 58)[:, SLICES:]
    assert not empty.any()  # the empty tiles stay empty
    # before: each mosaic denoised as the one image it is (`auto`: its burst the other gradients' mosaics)
    flat = dataclasses.replace(volume, source=dataclasses.replace(volume.source, mosaic=None, repeated_frames=1))
    now, before = (Denoiser("auto").denoise(image).array for image in (volume, flat))
    gains = [psnr_to_peak(clean[f], _frames_of(now)[f]) - psnr_to_peak(clean[f], noisy[f]) for f in range(4)]
    gains_before = [psnr_to_peak(clean[f], _frames_of(before)[f]) - psnr_to_peak(clean[f], noisy[f]) for f in range(4)]
    assert min(gains) > 3.0 and min(np.subtract(gains, gains_before)) > 2.0, (gains, gains_before)
    # a preview of one file is that whole mosaic as the whole run gives it
    preview = denoiser.preview(volume, 2)
    np.testing.assert_array_equal(preview.array[0], result.array[2])
    assert preview.source.dicom_files == (volume.source.dicom_files[2],)


def test_the_cli_writes_mosaics_back_with_the_floor_removed(tmp_path, capsys):
    """Default flags, files in and out: every output file is its input's mosaic (size, ImageType but DERIVED, the
    private slice count, InstanceNumber, b-value) holding the tiles as ``auto`` denoises the volumes; the Rician
    floor in the air around the head is gone."""
    clean, noisy = _clean_and_noisy()
    paths = _write_mosaics(tmp_path / "dwi", noisy)
    assert main(["denoise", str(tmp_path / "dwi"), str(tmp_path / "out"), "--quiet"]) == 0
    expected = Denoiser("auto").denoise(read_volume(tmp_path / "dwi"))
    written = read_volume(tmp_path / "out")
    assert written.source.mosaic == read_volume(tmp_path / "dwi").source.mosaic
    np.testing.assert_array_equal(written.array, expected.array)
    for source, output in zip(expected.source.dicom_files, written.source.dicom_files, strict=True):
        before, after = pydicom.dcmread(source), pydicom.dcmread(output)
        assert (before.Rows, before.Columns, before.InstanceNumber) == (after.Rows, after.Columns, after.InstanceNumber)
        assert after.ImageType[0] == "DERIVED" and list(after.ImageType)[2:] == list(before.ImageType)[2:]
        for element in (0x100A, 0x100C):
            assert before[0x0019, element].value == after[0x0019, element].value
    assert sorted(map(str, paths)) == sorted(expected.source.dicom_files)
    frames = _frames_of(written.array).astype(float)
    air = np.broadcast_to(clean.max(axis=0) < 1, clean.shape)
    assert _frames_of(read_volume(tmp_path / "dwi").array)[air].mean() > 1.0 * SIGMA  # the floor: ~1.25 sigma
    assert abs(frames[air].mean()) < 0.15 * SIGMA
    for f in range(4):
        assert psnr_to_peak(clean[f], frames[f]) - psnr_to_peak(clean[f], noisy[f]) > 3.0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "dwi"), "--json"]) == 0  # says what denoise does with the files
    info = json.loads(capsys.readouterr().out)
    assert info["frames"] == 4
    assert info["frame_axis"] == "4 frames (gradient): Siemens mosaics of 10 slices of 58 x 58 in 4 x 4 tiles"
    report = tmp_path / "qa.json"
    assert main(["denoise", str(tmp_path / "dwi"), str(tmp_path / "again"), "--quiet", "--report", str(report)]) == 0
    assert json.loads(report.read_text())["dicom_frames"] == info["frame_axis"]
    assert info["auto"].startswith("kpn-burst3 for MR")


def test_one_mosaic_file_is_one_volume_and_an_fmri_series_is_a_time_series(tmp_path):
    clean, noisy = _clean_and_noisy(weights=(1.0, 1.01, 0.99))
    paths = _write_mosaics(tmp_path / "fmri", noisy, b_values=None)
    assert read_volume(tmp_path / "fmri").source.repeated_frame_label == "time"  # EPI repeated over time
    one = read_volume(paths[0])
    assert one.shape == (1, 232, 232) and one.source.mosaic is not None
    series = series_of_repeated_frames(one)
    assert series.num_frames == 1 and series.shape == (SLICES, 58, 58)
    denoiser = Denoiser("kpn-burst3", precision="fp32", refine="off")
    result = denoiser.denoise(one)
    np.testing.assert_array_equal(_frames_of(result.array)[0], denoiser.denoise(series).array[0])


def test_a_mosaic_whose_count_does_not_tile_it_is_refused_and_one_without_a_count_is_an_image(tmp_path):
    _, noisy = _clean_and_noisy()
    _write_mosaics(tmp_path / "bad", noisy[:1], count=17)  # 17 slices would need 5 x 5 tiles: 232 is not 5 x 46
    with pytest.raises(InputError, match=r"mosaic of 17 slices .* 5 x 5 tiles"):
        read_volume(tmp_path / "bad")
    assert main(["denoise", str(tmp_path / "bad"), str(tmp_path / "bad_out"), "--quiet"]) != 0
    assert not (tmp_path / "bad_out").exists()
    _write_mosaics(tmp_path / "anonymised", noisy[:2], count=0)
    volume = read_volume(tmp_path / "anonymised")
    assert volume.source.mosaic is None and series_of_repeated_frames(volume).shape == (1, 232, 232)
