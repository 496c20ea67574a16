"""A noise SD per voxel (``NoiseSDMap``, ``--noise-sd-map``): the image denoised divided by it and multiplied back.

Real data: the 256 x 256 brain slice of the test data with Rician noise whose sigma rises across the image from 1 %
to 8 % of its 99th percentile, as a parallel-imaging g-factor makes it (its air holds dim values of its own, 1-17,
which the floor's removal takes for noise: the bias stays negative); the chest CT for what is refused.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from meddenoiselib.cli import main
from meddenoiselib.errors import MedDenoiseError, OptionError
from meddenoiselib.evaluation.metrics import psnr
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume, write_volume
from meddenoiselib.io.series import VolumeSeries
from meddenoiselib.io.volume import Volume
from meddenoiselib.transforms import NoiseSDMap


@pytest.fixture(scope="module")
def ramped(mr_png):
    """``(clean volume, noisy volume, sigma map)``: the slice, Rician noise of sigma rising along x."""
    clean = read_volume(mr_png)
    values = clean.array.astype(np.float32)
    p99 = float(np.percentile(values, 99))
    sigma = np.broadcast_to((0.01 + 0.07 * np.linspace(0.0, 1.0, values.shape[2]))[None, None, :] * p99, values.shape)
    rng = np.random.default_rng(5)
    noisy = np.hypot(values + rng.normal(0.0, 1.0, values.shape) * sigma, rng.normal(0.0, 1.0, values.shape) * sigma)
    geometry = {"spacing": clean.spacing, "origin": clean.origin, "direction": clean.direction}
    sigma_map = Volume(np.ascontiguousarray(sigma, np.float32), **geometry)
    return clean, Volume(noisy.astype(np.float32), **geometry), sigma_map


def _scores(clean, result, sigma):
    values = clean.array.astype(np.float64)
    head = values > 0.1 * np.percentile(values, 99)
    air = values < 0.02 * np.percentile(values, 99)
    gain = psnr(values[head], result[head], float(values.max()))
    return gain, float(np.mean((result - values)[air] / sigma.array[air]))


@pytest.mark.parametrize("method", ["auto", "nlm"])
def test_a_varying_noise_level_is_removed_where_one_level_is_not(ramped, method):
    """auto (MR model and floor removal) and NLM, with one estimated level and with the map: PSNR over the head
    (noisy 29.39 dB) auto 31.26 -> 37.93, NLM 34.37 -> 37.31 (BM3D 34.61 -> 38.52); auto's background bias
    0.68 -> -0.23 sigma."""
    clean, noisy, sigma = ramped
    denoiser = Denoiser(method, modality="mr")
    one = denoiser.denoise(noisy).array
    mapped = denoiser.denoise(noisy, NoiseSDMap(sigma)).array
    assert mapped.dtype == noisy.array.dtype and mapped.shape == noisy.shape
    noisy_psnr, _ = _scores(clean, noisy.array, sigma)
    one_psnr, one_bias = _scores(clean, one, sigma)
    map_psnr, map_bias = _scores(clean, mapped, sigma)
    assert map_psnr > one_psnr + 2.0 and map_psnr > noisy_psnr + 6.0
    if method == "auto":
        assert abs(map_bias) < 0.3 < 0.6 < abs(one_bias)
        assert "divided by the noise SD map" in denoiser.last_report.choice


def test_a_map_off_the_grid_or_negative_or_on_a_ct_model_is_refused(ramped, ct_series_dir):
    clean, noisy, sigma = ramped
    denoiser = Denoiser("nlm", modality="mr")
    with pytest.raises(MedDenoiseError, match="shape"):
        denoiser.denoise(noisy, NoiseSDMap(sigma.array[:, :, :-1]))
    moved = Volume(sigma.array, sigma.spacing, tuple(np.add(sigma.origin, 2.0)), sigma.direction)
    with pytest.raises(MedDenoiseError, match="not on the image's voxel grid"):
        denoiser.denoise(noisy, NoiseSDMap(moved, label="moved.nii.gz"))
    with pytest.raises(MedDenoiseError, match="negative"):
        denoiser.denoise(noisy, NoiseSDMap(-sigma.array))
    with pytest.raises(OptionError, match="preview"):
        denoiser.preview(noisy, sigma=NoiseSDMap(sigma))
    ct = read_volume(ct_series_dir)
    with pytest.raises(OptionError, match="a CT's model works on HU"):
        Denoiser().denoise(ct, NoiseSDMap(np.full(ct.shape, 20.0)))


def test_one_map_serves_every_frame_of_a_series(ramped):
    clean, noisy, sigma = ramped
    frames = np.stack([noisy.array, noisy.array[:, ::-1]])
    series = VolumeSeries(frames, spacing=noisy.spacing, origin=noisy.origin, direction=noisy.direction)
    result = Denoiser("nlm", modality="mr").denoise_series(series, NoiseSDMap(sigma)).array
    assert result.shape == frames.shape
    assert _scores(clean, result[0], sigma)[0] > _scores(clean, noisy.array, sigma)[0] + 2.0


def test_cli_takes_the_map_file_and_refuses_another_level_beside_it(ramped, tmp_path, capsys):
    clean, noisy, sigma = ramped
    write_volume(noisy, tmp_path / "noisy.nii.gz")
    write_volume(sigma, tmp_path / "sigma.nii.gz")
    out, report = tmp_path / "out.nii.gz", tmp_path / "report.json"
    args = ["denoise", str(tmp_path / "noisy.nii.gz"), str(out), "--modality", "mr", "-q"]
    assert main([*args, "--noise-sd-map", str(tmp_path / "sigma.nii.gz"), "--report", str(report)]) == 0
    result = read_volume(out).array.astype(np.float32)
    assert _scores(clean, result, sigma)[0] > _scores(clean, noisy.array, sigma)[0] + 2.0
    assert json.loads(report.read_text())["noise_sd_map"] == str(tmp_path / "sigma.nii.gz")
    code = main([*args, "--overwrite", "--noise-sd-map", str(tmp_path / "sigma.nii.gz"), "--noise-sd", "5"])
    assert code == 2 and "leave out --sigma and --noise-sd" in capsys.readouterr().err


def test_a_floor_that_varies_across_the_image_is_named_where_one_level_is_used(ramped, mr_png, tmp_path, capsys):
    """The ramped slice's floor read in each half of its columns differs ~4x and `info` and `denoise` say so, pointing
    to --noise-sd-map; the same slice with one Rician level, and the bundled MR head, are not flagged."""
    from meddenoiselib.transforms.magnitude import estimate_magnitude_floor, floor_variation

    clean, noisy, sigma = ramped
    floor = estimate_magnitude_floor(noisy.array)
    axis, first, second = floor_variation(noisy.array, floor)
    assert axis == "columns" and second > 3.0 * first
    assert first == pytest.approx(sigma.array[0, :, : sigma.shape[2] // 2].mean(), rel=0.6)
    uniform_sigma = float(sigma.array.mean())
    rng = np.random.default_rng(2)
    values = clean.array.astype(np.float32)
    uniform = np.hypot(
        values + rng.normal(0.0, uniform_sigma, values.shape), rng.normal(0.0, uniform_sigma, values.shape)
    )
    assert floor_variation(uniform, estimate_magnitude_floor(uniform)) is None
    write_volume(noisy, tmp_path / "noisy.nii.gz")
    assert main(["info", str(tmp_path / "noisy.nii.gz"), "--json"]) == 0
    varies = json.loads(capsys.readouterr().out)["noise_sd_varies"]
    assert varies["along"] == "columns" and varies["last_half"] > 3.0 * varies["first_half"]
    report = tmp_path / "report.json"
    args = ["denoise", str(tmp_path / "noisy.nii.gz"), str(tmp_path / "out.nii.gz"), "--model", "nlm"]
    assert main([*args, "--report", str(report)]) == 0
    assert "--noise-sd-map takes" in capsys.readouterr().err
    assert "first half of the columns" in json.loads(report.read_text())["noise_floor_varies"]
    # with the map the run says which map, and nothing varies any more
    write_volume(sigma, tmp_path / "sigma.nii.gz")
    assert main([*args, "--overwrite", "--report", str(report), "--noise-sd-map", str(tmp_path / "sigma.nii.gz")]) == 0
    values = json.loads(report.read_text())
    assert values["noise_sd_map"] == str(tmp_path / "sigma.nii.gz") and "noise_floor_varies" not in values
    assert "--noise-sd-map takes" not in capsys.readouterr().err
