"""``denoise --measure LABELS``: the standard deviation in painted regions before and after, in HU, as Slicer users
measure noise by hand (user need 12), with the regions' names from a 3D Slicer segmentation and a stated CNR."""

from __future__ import annotations

import json

import numpy as np
import pytest

from meddenoiselib.cli import main
from meddenoiselib.io import read_volume, write_volume


def _segmentation_header(shape, spacing, origin) -> str:
    z, y, x = shape
    return (
        "NRRD0004\ntype: unsigned char\ndimension: 3\nspace: left-posterior-superior\n"
        f"sizes: {x} {y} {z}\nspace directions: ({spacing[0]},0,0) (0,{spacing[1]},0) (0,0,{spacing[2]})\n"
        f"kinds: domain domain domain\nencoding: raw\nspace origin: ({origin[0]},{origin[1]},{origin[2]})\n"
        "Segment0_ID:=Segment_1\nSegment0_Name:=fat\nSegment0_LabelValue:=1\n"
        "Segment1_ID:=Segment_2\nSegment1_Name:=soft tissue\nSegment1_LabelValue:=2\n"
        "Segmentation_MasterRepresentation:=Binary labelmap\n\n"
    )


def test_measure_reports_noise_in_painted_regions_in_hu(tmp_path, ct_series_dir, capsys):
    ct = read_volume(ct_series_dir)
    source = tmp_path / "ct.nrrd"
    write_volume(ct, source)
    labels = np.zeros(ct.shape, np.uint8)
    labels[:, 110:130, 180:200] = 1  # flat fat of the sample chest CT (-126 HU, SD 19 HU on the 4 slices)
    labels[:, 190:210, 310:330] = 2  # flat soft tissue (39 HU, SD 19 HU)
    seg = tmp_path / "regions.seg.nrrd"
    seg.write_bytes(_segmentation_header(ct.shape, ct.spacing, ct.origin).encode() + labels.tobytes())
    report = tmp_path / "report.json"
    args = ["denoise", str(source), str(tmp_path / "out.nrrd"), "--measure", str(seg), "--report", str(report)]
    assert main([*args, "--model", "median", "--sigma", "10"]) == 0
    assert "region 1 (fat): SD" in capsys.readouterr().err
    values = json.loads(report.read_text())
    first, second = values["regions"]
    out = read_volume(tmp_path / "out.nrrd").array.astype(np.float64)
    inside = labels == 1
    assert first["label"] == 1 and first["name"] == "fat" and first["voxels"] == int(inside.sum()) == 1600
    assert first["sd_before"] == pytest.approx(ct.array[inside].std(ddof=1), rel=1e-6)
    assert first["sd_after"] == pytest.approx(out[inside].std(ddof=1), rel=1e-6)
    assert first["sd_after"] < first["sd_before"]  # the median filter removed noise there
    assert second["name"] == "soft tissue" and values["cnr"]["definition"].startswith("|mean1 - mean2|")
    pooled = np.sqrt((first["sd_before"] ** 2 + second["sd_before"] ** 2) / 2)
    assert values["cnr"]["before"] == pytest.approx(abs(first["mean_before"] - second["mean_before"]) / pooled)
    assert values["cnr"]["after"] > values["cnr"]["before"]  # fat and soft tissue easier to tell apart

    # the previewed slice's regions; labels off the grid are refused before anything is computed
    assert main([*args, "--preview-slice", "1", "--overwrite", "-q"]) == 0
    assert json.loads(report.read_text())["regions"][0]["voxels"] == 400
    moved = tmp_path / "moved.nrrd"
    write_volume(_moved(ct, labels), moved)
    assert main(["denoise", str(source), str(tmp_path / "x.nrrd"), "--measure", str(moved)]) == 1
    assert "the regions is not on the image's voxel grid" in capsys.readouterr().err
    assert not (tmp_path / "x.nrrd").exists()


def _moved(ct, labels):
    from dataclasses import replace

    return replace(ct.with_array(labels), origin=(ct.origin[0] + 5.0, ct.origin[1], ct.origin[2]))


def test_overlapping_segments_are_measured_whole_and_mask_as_their_union(tmp_path, ct_series_dir, capsys):
    """3D Slicer saves overlapping segments in layers (the .seg.nrrd's components): each is a region of its own for
    --measure, and their union for --mask; a multi-component image without segments is not a label map."""
    ct = read_volume(ct_series_dir)
    source = tmp_path / "ct.nrrd"
    write_volume(ct, source)
    z, y, x = ct.shape
    layers = np.zeros((z, y, x, 2), np.uint8)
    layers[:, 110:130, 180:200, 0] = 1  # fat
    layers[:, 190:210, 310:330, 0] = 2  # soft tissue
    layers[:, 100:140, 170:210, 1] = 1  # around the fat, overlapping it
    spacing, origin = ct.spacing, ct.origin
    header = (
        "NRRD0004\ntype: unsigned char\ndimension: 4\nspace: left-posterior-superior\n"
        f"sizes: 2 {x} {y} {z}\nspace directions: none ({spacing[0]},0,0) (0,{spacing[1]},0) (0,0,{spacing[2]})\n"
        f"kinds: list domain domain domain\nencoding: raw\nspace origin: ({origin[0]},{origin[1]},{origin[2]})\n"
        "Segment0_ID:=fat\nSegment0_Name:=fat\nSegment0_LabelValue:=1\nSegment0_Layer:=0\n"
        "Segment1_ID:=soft\nSegment1_Name:=soft tissue\nSegment1_LabelValue:=2\nSegment1_Layer:=0\n"
        "Segment2_ID:=ring\nSegment2_Name:=around fat\nSegment2_LabelValue:=1\nSegment2_Layer:=1\n"
        "Segmentation_MasterRepresentation:=Binary labelmap\n\n"
    )
    seg = tmp_path / "layers.seg.nrrd"
    seg.write_bytes(header.encode() + layers.tobytes())
    report = tmp_path / "report.json"
    args = ["denoise", str(source), str(tmp_path / "out.nrrd"), "--model", "median", "--sigma", "10", "-q"]
    assert main([*args, "--measure", str(seg), "--report", str(report)]) == 0
    rows = json.loads(report.read_text())["regions"]
    assert [(r["name"], r["voxels"]) for r in rows] == [("fat", 1600), ("soft tissue", 1600), ("around fat", 6400)]
    around = layers[..., 1] == 1
    assert rows[2]["sd_before"] == pytest.approx(ct.array[around].astype(np.float64).std(ddof=1), rel=1e-6)

    assert main([*args, "--mask", str(seg), "--overwrite"]) == 0
    out = read_volume(tmp_path / "out.nrrd").array
    inside = (layers != 0).any(axis=-1)
    np.testing.assert_array_equal(out[~inside], ct.array[~inside])  # outside the union: untouched
    assert np.count_nonzero(out[inside] != ct.array[inside]) > 0.5 * inside.sum()

    plain = tmp_path / "two.nrrd"  # the same voxels as a 2-component image without segments
    write_volume(ct.with_array(layers), plain)
    assert main(["denoise", str(source), str(tmp_path / "x.nrrd"), "--measure", str(plain), "-q"]) == 1
    assert "2 components and no segments" in capsys.readouterr().err
