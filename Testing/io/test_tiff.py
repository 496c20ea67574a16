"""TIFF as microscopy writes it, read with tifffile: tiled 16-bit pages exactly (ITK's reader fell back to 8-bit
RGBA), ImageJ hyperstacks with their channels as components (ITK interleaved them as slices), ImageJ's and OME's
physical pixel sizes in mm, and each written back in its own layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from meddenoiselib.cli import main
from meddenoiselib.errors import InputError
from meddenoiselib.io import Volume, read_series, read_volume, write_volume


def _stack(ct_crop: np.ndarray, depth: int = 6) -> np.ndarray:
    """A 16-bit z-stack of the real CT crop, each slice shifted (structure that changes along z)."""
    return np.stack([np.roll(ct_crop, 3 * k, axis=1) for k in range(depth)]) * 40000 + 1000


def test_a_tiled_16_bit_tiff_reads_exactly(tmp_path, ct_crop):
    image = _stack(ct_crop, 1)[0].astype(np.uint16)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, image, tile=(32, 32), compression="zlib")
    volume = read_volume(path)
    assert volume.array.dtype == np.uint16 and volume.num_components == 1
    np.testing.assert_array_equal(volume.array[0], image)


def test_an_imagej_hyperstack_keeps_its_channels_apart_and_its_microns(tmp_path, ct_crop):
    rng = np.random.default_rng(0)
    signal = _stack(ct_crop)
    # channel 0: the image with noise; channel 1: an empty channel with its own faint noise
    channels = np.stack([signal + rng.normal(0, 1500, signal.shape), 200 + rng.normal(0, 20, signal.shape)], axis=1)
    data = np.clip(channels, 0, 65535).astype(np.uint16)  # (Z, C, Y, X)
    path = tmp_path / "cells.tif"
    tifffile.imwrite(
        path, data, imagej=True, resolution=(1 / 0.2, 1 / 0.2), metadata={"axes": "ZCYX", "unit": "um", "spacing": 0.8}
    )
    volume = read_volume(path)
    assert volume.shape == (6, 128, 128) and volume.num_components == 2
    np.testing.assert_array_equal(volume.array, np.moveaxis(data, 1, -1))
    assert volume.spacing == pytest.approx((0.0002, 0.0002, 0.0008))  # 0.2 um pixels, 0.8 um slices, in mm

    out = tmp_path / "cells_dn.tif"
    assert main(["denoise", str(path), str(out), "--quiet"]) == 0
    with tifffile.TiffFile(out) as written:
        assert written.is_imagej and written.series[0].axes == "ZCYX"
        assert written.imagej_metadata["unit"] == "um" and written.imagej_metadata["spacing"] == pytest.approx(0.8)
        x_resolution = written.pages[0].tags["XResolution"].value
        assert x_resolution[0] / x_resolution[1] == pytest.approx(5.0)
        result = written.asarray().astype(np.float64)
    assert result.shape == data.shape
    # the empty channel stays empty: read as slices, its neighbours along z were the image channel's (ITK's reading
    # put the two channels' slices in turn), and a 2.5D model would carry the image into it
    empty = result[:, 1]
    assert np.abs(empty - 200).max() < 60 and np.corrcoef(empty.ravel(), signal.ravel())[0, 1] < 0.1
    # and the image channel is denoised
    before = np.sqrt(np.mean((data[:, 0] - signal) ** 2))
    after = np.sqrt(np.mean((result[:, 0] - signal) ** 2))
    assert after < 0.6 * before


def test_ome_tiff_physical_sizes_round_trip(tmp_path, ct_crop):
    data = _stack(ct_crop).astype(np.uint16)
    path = tmp_path / "stack.ome.tif"
    sizes = {"PhysicalSizeX": 0.35, "PhysicalSizeY": 0.35, "PhysicalSizeZ": 2.0}
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "ZYX", **sizes})  # micrometres by default
    volume = read_volume(path)
    assert volume.spacing == pytest.approx((0.00035, 0.00035, 0.002))
    back = read_volume(write_volume(volume.with_array(volume.array + 1), tmp_path / "out.ome.tif"))
    assert back.spacing == pytest.approx(volume.spacing)
    np.testing.assert_array_equal(back.array, volume.array + 1)


@pytest.mark.parametrize("unit, mm_per_unit", [("CENTIMETER", 10.0), ("INCH", 25.4)])
def test_plain_tiff_resolution_is_read_in_mm_and_written_back(tmp_path, ct_crop, unit, mm_per_unit):
    data = _stack(ct_crop, 1)[0].astype(np.uint16)
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, data, resolution=(40.0, 50.0), resolutionunit=unit)
    volume = read_volume(path)
    assert volume.spacing[:2] == pytest.approx((mm_per_unit / 40, mm_per_unit / 50))
    back = read_volume(write_volume(volume, tmp_path / "copy.tif"))
    assert back.spacing[:2] == pytest.approx(volume.spacing[:2]) and back.source.is_2d
    # a NIfTI-like volume's mm go to TIFF too
    other = Volume(np.zeros((3, 8, 9), np.float32), spacing=(0.5, 0.25, 3.0))
    assert read_volume(write_volume(other, tmp_path / "v.tif")).spacing[:2] == pytest.approx((0.5, 0.25))


def test_a_time_series_of_volumes_is_a_series_through_the_cli(tmp_path, ct_crop):
    rng = np.random.default_rng(1)
    clean = np.stack([_stack(ct_crop, 4) * (1 + 0.05 * t) for t in range(3)])  # (T, Z, Y, X)
    noisy = np.clip(clean + rng.normal(0, 1500, clean.shape), 0, 65535).astype(np.uint16)
    path = tmp_path / "timelapse.tif"
    tifffile.imwrite(
        path,
        noisy,
        imagej=True,
        resolution=(5, 5),
        metadata={"axes": "TZYX", "unit": "um", "spacing": 0.8, "finterval": 30},
    )
    with pytest.raises(InputError, match=r"timelapse.tif: a time series of volumes \(3 frames of 4 slices.*4D series"):
        read_volume(path)
    series = read_series(path)
    assert series.array.shape == (3, 4, 128, 128) and series.spacing == pytest.approx((0.0002, 0.0002, 0.0008))
    assert (series.frame_label, series.frame_values) == ("time", ("0", "30", "60"))  # from ImageJ's finterval

    out, residual = tmp_path / "out.tif", tmp_path / "residual.tif"
    assert main(["denoise", str(path), str(out), "--residual", str(residual), "--quiet"]) == 0
    with tifffile.TiffFile(out) as written:
        assert written.series[0].axes == "TZYX" and written.series[0].dtype == np.uint16
        metadata = written.imagej_metadata
        assert (metadata["frames"], metadata["slices"], metadata["unit"]) == (3, 4, "um")
        assert metadata["spacing"] == pytest.approx(0.8) and metadata["finterval"] == pytest.approx(30)
        result = written.asarray().astype(float)
    with tifffile.TiffFile(residual) as written:
        assert written.series[0].axes == "TZYX" and written.series[0].dtype == np.float32
    # measured: RMS error against the clean frames 1492 -> 683 (kpn-general, frame by frame)
    assert np.sqrt(np.mean((result - clean) ** 2)) < 0.6 * np.sqrt(np.mean((noisy - clean) ** 2))


def test_palette_miniswhite_and_bilevel_tiff(tmp_path, ct_crop):
    indices = (_stack(ct_crop, 1)[0] / 41000 * 255).astype(np.uint8)
    grey = np.tile(np.arange(256, dtype=np.uint16) * 257, (3, 1))
    colour = grey.copy()
    colour[1] = 0  # magenta shades
    # a grey palette (or an ImageJ LUT) colours the measurement: the indices are denoised, the map written back
    tifffile.imwrite(tmp_path / "grey.tif", indices, photometric="palette", colormap=grey)
    volume = read_volume(tmp_path / "grey.tif")
    np.testing.assert_array_equal(volume.array[0], indices)
    write_volume(volume, tmp_path / "grey_out.tif")
    with tifffile.TiffFile(tmp_path / "grey_out.tif") as written:
        assert written.pages[0].photometric == 3
        np.testing.assert_array_equal(written.pages[0].colormap, grey)
    # a colour palette is a colour image, read as RGB as ITK reads it
    tifffile.imwrite(tmp_path / "colour.tif", indices, photometric="palette", colormap=colour)
    rgb = read_volume(tmp_path / "colour.tif")
    assert rgb.num_components == 3 and rgb.array.dtype == np.uint16
    np.testing.assert_array_equal(rgb.array[0, ..., 0], indices.astype(np.uint16) * 257)
    assert not rgb.array[..., 1].any()
    # 0 is white: the values are kept as stored, and so is the photometric tag that says how to show them
    tifffile.imwrite(tmp_path / "white.tif", indices, photometric="miniswhite")
    write_volume(read_volume(tmp_path / "white.tif"), tmp_path / "white_out.tif")
    with tifffile.TiffFile(tmp_path / "white_out.tif") as written:
        assert written.pages[0].photometric == 0
        np.testing.assert_array_equal(written.asarray(), indices)
    # a 1-bit TIFF reads (as a mask); the CLI refuses to denoise it (Testing/cli/test_segmentation_inputs.py)
    tifffile.imwrite(tmp_path / "mask.tif", indices > 100)
    np.testing.assert_array_equal(read_volume(tmp_path / "mask.tif").array[0], indices > 100)


@pytest.mark.parametrize("compression", ["lzw", "jpeg", "packbits"])
def test_compressed_tiff_decodes(tmp_path, ct_crop, compression):
    image = (_stack(ct_crop, 1)[0] / 41000 * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "c.tif", image, compression=compression)
    volume = read_volume(tmp_path / "c.tif")
    tolerance = 8 if compression == "jpeg" else 0
    np.testing.assert_allclose(volume.array[0].astype(int), image.astype(int), atol=tolerance)


def test_a_truncated_stack_is_refused_not_cut_short_and_quiet_stays_quiet(tmp_path, ct_crop, capfd):
    data = _stack(ct_crop, 8).astype(np.uint16)
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, data, imagej=True, metadata={"axes": "ZYX"})
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[: 3 * data[0].nbytes])  # the first pages only: tifffile reads what is there
    with pytest.raises(InputError, match="cut.tif: the TIFF file is truncated or corrupt"):
        read_volume(cut)
    assert main(["denoise", str(cut), str(tmp_path / "out.tif"), "--quiet"]) == 1
    assert capfd.readouterr().err.strip().splitlines() == [
        f"error: {cut}: the TIFF file is truncated or corrupt (ImageJ series metadata invalid or corrupted file)"
    ]
    assert not (tmp_path / "out.tif").exists()


@pytest.mark.parametrize("flavour", ["imagej", "ome"])
def test_a_2d_time_lapse_goes_back_as_frames_with_its_interval(tmp_path, ct_crop, flavour):
    data = _stack(ct_crop, 5).astype(np.uint16)
    path = tmp_path / "lapse.tif"
    if flavour == "imagej":
        tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TYX", "finterval": 2.5})
    else:
        tifffile.imwrite(path, data, ome=True, metadata={"axes": "TYX", "TimeIncrement": 2.5})
    volume = read_volume(path)
    assert volume.shape == (5, 128, 128) and not volume.source.is_2d  # frames run along the slice axis
    out = write_volume(volume.with_array(volume.array + 3), tmp_path / "out.tif")
    with tifffile.TiffFile(out) as written:
        assert written.series[0].axes == "TYX"
        if flavour == "imagej":
            assert written.imagej_metadata["frames"] == 5 and written.imagej_metadata["finterval"] == 2.5
        else:
            assert 'TimeIncrement="2.5"' in written.ome_metadata
        np.testing.assert_array_equal(written.asarray(), data + 3)


def test_a_two_channel_stack_gives_evaluation_references_per_channel(tmp_path, ct_crop):
    from meddenoiselib.evaluation.compare import load_references

    data = np.stack([_stack(ct_crop, 5), _stack(ct_crop, 5)[:, ::-1]], axis=1).astype(np.uint16)  # (Z, C, Y, X)
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZCYX"})
    references = load_references([path], max_slices=2)
    assert [name for name, _ in references] == [
        "two.tif[channel 1][1]", "two.tif[channel 1][3]", "two.tif[channel 2][1]", "two.tif[channel 2][3]"
    ]  # fmt: skip
    first = data[1, 0].astype(np.float32)
    expected = (first - data[:, 0].min()) / (data[:, 0].max() - data[:, 0].min())
    np.testing.assert_allclose(references[0][1], expected, atol=1e-6)


def test_a_two_channel_stack_trains_as_one_grey_image_per_channel(tmp_path, ct_crop):
    from meddenoiselib.training.data import load_training_images

    data = np.stack([_stack(ct_crop, 3), _stack(ct_crop, 3)[:, ::-1]], axis=1).astype(np.uint16)  # (Z, C, Y, X)
    tifffile.imwrite(tmp_path / "two.tif", data, imagej=True, metadata={"axes": "ZCYX"})
    images = load_training_images([tmp_path / "two.tif"])
    assert [Path(image.name).name for image in images] == ["two.tif[channel 1]", "two.tif[channel 2]"]
    np.testing.assert_allclose(images[1].array[:, ::-1], images[0].array, atol=1e-6)  # the flipped channel


def test_imagej_display_settings_carry_over(tmp_path, ct_crop):
    data = np.stack([_stack(ct_crop, 3), _stack(ct_crop, 3)[:, ::-1]], axis=1).astype(np.uint16)  # (Z, C, Y, X)
    red, green = np.zeros((3, 256), np.uint8), np.zeros((3, 256), np.uint8)
    red[0] = green[1] = np.arange(256)
    display = {"mode": "composite", "LUTs": [red, green], "Ranges": (0.0, 40000.0, 500.0, 30000.0)}
    tifffile.imwrite(tmp_path / "cells.tif", data, imagej=True, metadata={"axes": "ZCYX", **display})
    volume = read_volume(tmp_path / "cells.tif")
    write_volume(volume.with_array(volume.array // 2), tmp_path / "out.tif")
    with tifffile.TiffFile(tmp_path / "out.tif") as written:
        metadata = written.imagej_metadata
        assert metadata["mode"] == "composite" and metadata["Ranges"] == display["Ranges"]
        np.testing.assert_array_equal(metadata["LUTs"][0], red)
        np.testing.assert_array_equal(metadata["LUTs"][1], green)


def test_ome_channel_names_and_colours_carry_over(tmp_path, ct_crop):
    """An OME-TIFF's channels keep their names, colours and fluorophores (napari, Fiji via Bio-Formats and OMERO
    label and colour the channels from them); they were left out of the output."""
    data = np.stack([_stack(ct_crop, 3), _stack(ct_crop, 3)[:, ::-1]], axis=1).astype(np.uint16)  # (Z, C, Y, X)
    channels = {"Name": ["DAPI", "GFP"], "Color": [-16776961, 16711935], "Fluor": ["DAPI", "EGFP"]}
    metadata = {"axes": "ZCYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2, "Channel": channels}
    tifffile.imwrite(tmp_path / "cells.ome.tif", data, ome=True, metadata=metadata)
    volume = read_volume(tmp_path / "cells.ome.tif")
    assert volume.num_components == 2
    write_volume(volume.with_array(volume.array // 2), tmp_path / "out.ome.tif")
    with tifffile.TiffFile(tmp_path / "out.ome.tif") as written:
        xml = written.ome_metadata
    for name, colour, fluor in zip(*channels.values(), strict=True):
        assert f'Name="{name}"' in xml and f'Color="{colour}"' in xml and f'Fluor="{fluor}"' in xml
    np.testing.assert_array_equal(read_volume(tmp_path / "out.ome.tif").array, volume.array // 2)
