"""``exclude=`` / ``denoise --exclude``: a region left out of the denoising (metal, an implant; user need 16) keeps its
values and does not spread into the tissue around it; ``auto`` leaves a CT's metal out by itself. On the real chest
CT with a 3000 HU rod inserted in soft tissue and seeded noise: without it, the CT model leaves a bright halo next to
the metal."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from meddenoiselib.cli import main
from meddenoiselib.errors import MedDenoiseError
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import VolumeSeries, read_volume, write_volume
from meddenoiselib.transforms.metal import metal_region

METAL_HU = 3000


@pytest.fixture(scope="module")
def rod(ct_series_dir):
    """The sample chest CT's soft tissue around (200, 320), 128x128 px of 4 slices, with a metal rod 5 px in radius
    through all slices; the noisy copy has 25 HU of seeded Gaussian noise (metal included, as a scanner gives it)."""
    ct = read_volume(ct_series_dir).slab(1, 136, 264).slab(2, 256, 384)
    clean = ct.array.astype(np.int16)
    y, x = np.mgrid[:128, :128]
    metal = np.broadcast_to((y - 64) ** 2 + (x - 64) ** 2 <= 25, clean.shape)
    clean = np.where(metal, np.int16(METAL_HU), clean)
    noise = np.random.default_rng(3).normal(0.0, 25.0, clean.shape)
    noisy = ct.with_array(np.rint(clean + noise).astype(np.int16))
    distance = ndimage.distance_transform_edt(~metal[0])
    ring = np.broadcast_to((distance > 0.5) & (distance <= 3), clean.shape)  # the tissue next to the metal
    far = np.broadcast_to(distance > 16, clean.shape)
    return noisy, clean.astype(np.float64), np.ascontiguousarray(metal), ring, far


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(values**2)))


def test_metal_left_out_keeps_its_values_and_leaves_no_halo(rod):
    noisy, clean, metal, ring, far = rod
    before = noisy.array.copy()
    denoiser = Denoiser("auto", metal_hu=None)  # auto's own metal search off: the region is the caller's
    plain = denoiser.denoise(noisy).array.astype(np.float64)
    left_out = denoiser.denoise(noisy, exclude=metal)
    np.testing.assert_array_equal(noisy.array, before)  # the input is not modified
    assert left_out.array.dtype == np.int16 and denoiser.last_report.left_out_voxels == int(metal.sum()) == 324
    np.testing.assert_array_equal(left_out.array[metal], noisy.array[metal])  # exactly the input's
    out = left_out.array.astype(np.float64)
    noisy_ring, plain_ring, out_ring = (_rms(image[ring] - clean[ring]) for image in (noisy.array, plain, out))
    # measured (RMS against the clean image, in HU): noisy 24.0, the default model 47.0 (a +10 HU halo: worse than
    # the noisy input), left out 17.6
    assert plain_ring > noisy_ring and float((plain[ring] - clean[ring]).mean()) > 5  # the halo
    assert out_ring < 0.6 * plain_ring and abs(float((out[ring] - clean[ring]).mean())) < 3
    assert abs(_rms(out[far] - clean[far]) - _rms(plain[far] - clean[far])) < 0.3  # away from it: the same

    # a preview gives the full run's slice; an empty region changes nothing; all of it is refused
    np.testing.assert_array_equal(denoiser.preview(noisy, 2, exclude=metal).array[0], left_out.array[2])
    np.testing.assert_array_equal(denoiser.denoise(noisy, exclude=np.zeros_like(metal)).array, plain)
    with pytest.raises(MedDenoiseError, match="covers the whole image"):
        denoiser.denoise(noisy, exclude=np.ones_like(metal))


def test_auto_leaves_a_ct_s_metal_out_by_itself(rod):
    noisy, _, metal, _, _ = rod
    denoiser = Denoiser("auto")
    found = denoiser.denoise(noisy)
    assert denoiser.last_report.metal_voxels == 324 and denoiser.last_report.left_out_voxels == 0
    given = Denoiser("auto", metal_hu=None).denoise(noisy, exclude=metal)
    np.testing.assert_array_equal(found.array, given.array)
    np.testing.assert_array_equal(denoiser.preview(noisy, 1).array[0], found.array[1])
    inside = noisy.slab(1, 62, 66).slab(2, 62, 66)  # a crop of nothing but metal: denoised as it is, no refusal
    assert Denoiser("auto", modality="ct").denoise(inside).shape == (4, 4, 4)


def test_auto_finds_the_metal_of_each_frame_of_a_ct_series(rod):
    """A 4D CT (perfusion, 4D CT) whose rod moves between frames: each frame's metal is kept, and the tissue where
    the rod lies only in the other frame is denoised, not left out."""
    noisy, _, metal, _, _ = rod
    moved = np.roll(noisy.array, 20, axis=2)  # the rod 20 px to the right in frame 1
    series = VolumeSeries(np.stack([noisy.array, moved]), noisy.spacing, noisy.origin, noisy.direction)
    denoiser = Denoiser("auto")
    out = denoiser.denoise(series).array
    assert denoiser.last_report.metal_voxels == 2 * 324
    np.testing.assert_array_equal(out[0][metal], noisy.array[metal])
    rod_1 = np.roll(metal, 20, axis=2)
    np.testing.assert_array_equal(out[1][rod_1], moved[rod_1])
    only_in_1 = rod_1 & ~metal
    assert np.count_nonzero(out[0][only_in_1] != noisy.array[only_in_1]) > 0.9 * only_in_1.sum()
    plain = Denoiser("auto", metal_hu=None).denoise(series).array
    assert not np.array_equal(plain[0][metal], noisy.array[metal])  # without it the metal is denoised too
    preview = denoiser.preview(series, 1, frame=1)
    np.testing.assert_array_equal(preview.array[0], out[1, 1])  # the frame's slice of the whole run


def test_metal_is_a_cluster_at_the_threshold_not_a_noise_spike_in_bone():
    hu = np.full((3, 20, 20), 1500.0)  # dense bone
    hu[1, 5, 5] = 2600.0  # a lone noise spike
    hu[0:2, 12, 3:15] = 3071.0  # a wire one voxel wide, over two slices
    hu[2, 15:17, 15:17] = 2976.0  # an electrode of 2x2 voxels, saturated
    region = metal_region(hu)
    assert not region[1, 5, 5] and region[0:2, 12, 3:15].all() and region[2, 15:17, 15:17].all()
    assert int(region.sum()) == 2 * 12 + 4
    assert metal_region(np.full((2, 8, 8), 1900.0)) is None
    assert metal_region(hu, threshold=4000) is None


def test_a_series_keeps_the_region_in_every_frame_and_a_classical_filter_too(rod):
    noisy, clean, metal, ring, _ = rod
    frames = np.stack([noisy.array, np.flip(noisy.array, axis=0)])
    series = VolumeSeries(frames, spacing=noisy.spacing, origin=noisy.origin, direction=noisy.direction)
    out = Denoiser("median").denoise_series(series, sigma=20 / 255, exclude=metal).array
    np.testing.assert_array_equal(out[:, metal], series.array[:, metal])
    plain = Denoiser("median").denoise(noisy, sigma=20 / 255).array.astype(np.float64)
    first = out[0].astype(np.float64)
    assert _rms(first[ring] - clean[ring]) < _rms(plain[ring] - clean[ring]) - 2


def test_cli_exclude_writes_the_count_and_refuses_a_region_off_the_grid(tmp_path, rod, capsys):
    noisy, _, metal, _, _ = rod
    source, labels = tmp_path / "ct.nrrd", tmp_path / "metal.nrrd"
    write_volume(noisy, source)
    write_volume(noisy.with_array(metal.astype(np.uint8)), labels)
    args = ["denoise", str(source), str(tmp_path / "out.nrrd"), "--model", "median", "--sigma", "20"]
    assert main([*args, "--exclude", str(labels), "--report", str(tmp_path / "r.json"), "--no-progress"]) == 0
    assert "324 voxels left out" in capsys.readouterr().err
    assert json.loads((tmp_path / "r.json").read_text())["voxels_left_out"] == 324
    out = read_volume(tmp_path / "out.nrrd").array
    np.testing.assert_array_equal(out[metal], noisy.array[metal])

    from dataclasses import replace

    moved = tmp_path / "moved.nrrd"
    write_volume(replace(noisy.with_array(metal.astype(np.uint8)), origin=(0.0, 0.0, 0.0)), moved)
    assert main(["denoise", str(source), str(tmp_path / "x.nrrd"), "--exclude", str(moved), "-q"]) == 1
    assert "the region left out is not on the image's voxel grid" in capsys.readouterr().err
    assert not (tmp_path / "x.nrrd").exists()

    # info says so beforehand; auto leaves the metal out by itself (reported); --metal off denoises it too
    assert main(["info", str(source)]) == 0
    assert "324 voxels at or above 2500 HU in clusters: denoise (model auto) leaves them out" in capsys.readouterr().out
    auto = ["denoise", str(source), str(tmp_path / "auto.nrrd"), "--report", str(tmp_path / "a.json"), "-q"]
    assert main(auto) == 0
    assert json.loads((tmp_path / "a.json").read_text())["metal_voxels_left_out"] == 324
    assert main([*auto, "--metal", "off", "--overwrite"]) == 0
    assert "metal_voxels_left_out" not in json.loads((tmp_path / "a.json").read_text())
    assert not np.array_equal(read_volume(tmp_path / "auto.nrrd").array[metal], noisy.array[metal])
