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
from meddenoiselib.transforms import NoiseSD, NoiseSDMap
from meddenoiselib.transforms.magnitude import estimate_magnitude_floor


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
    """auto (MR model and floor removal) and NLM, with one level and with the map: PSNR over the head (noisy 29.39
    dB) auto 31.26 -> 37.93, NLM 34.37 -> 37.31 (BM3D 34.61 -> 38.52); auto's background bias 0.68 -> -0.23 sigma.
    One level for auto is the floor's sigma given (left to itself, auto reads a map where the floor varies)."""
    clean, noisy, sigma = ramped
    denoiser = Denoiser(method, modality="mr")
    level = "auto" if method == "nlm" else NoiseSD(float(estimate_magnitude_floor(noisy.array).sigma))
    one = denoiser.denoise(noisy, level).array
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
    info = json.loads(capsys.readouterr().out)
    varies = info["noise_sd_varies"]
    assert varies["along"] == "columns" and varies["last_half"] > 3.0 * varies["first_half"]
    assert info["auto"].endswith("divided by the noise SD map estimated from the image (its floor varies)")
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
    # auto, the default, reads a map itself where the floor varies: no warning, the report says which map and why
    auto = ["denoise", str(tmp_path / "noisy.nii.gz"), str(tmp_path / "auto.nii.gz"), "--report", str(report)]
    assert main([*auto, "--modality", "mr", "--overwrite"]) == 0
    values = json.loads(report.read_text())
    assert values["noise_sd_map"].startswith("the noise SD map estimated from the image (the noise floor varies")
    assert "--noise-sd-map takes" not in capsys.readouterr().err


# ------------------------------------------------------------------------------------ a map read from the image


def test_a_map_estimated_from_the_image_follows_the_ramp_in_tissue_and_in_air(ramped):
    """``estimate_noise_sd_map`` on the ramped slice: within 15 % of the true sigma (median over the head and over the
    air); in the air the magnitude's spread is 0.66 of sigma (Rayleigh), so reading it as sigma, uncorrected, would
    be 34 % low there."""
    from meddenoiselib.transforms import estimate_noise_sd_map

    clean, noisy, sigma = ramped
    estimated = estimate_noise_sd_map(noisy.array)
    assert estimated.shape == noisy.shape and estimated.dtype == np.float32
    values = clean.array.astype(np.float64)
    head = values > 0.1 * np.percentile(values, 99)
    air = values < 0.02 * np.percentile(values, 99)
    ratio = estimated / sigma.array
    assert abs(np.median(ratio[head]) - 1.0) < 0.15
    assert abs(np.median(ratio[air]) - 1.0) < 0.15
    left, right = estimated[..., :64].mean(), estimated[..., -64:].mean()
    assert right > 2.5 * left  # the ramp: 3.8x between these strips (smoothing at the edges reads 2.8x)


def test_a_map_estimated_from_white_gaussian_noise_is_flat(mr_png):
    """Gaussian noise of SD 6 on the slice (no magnitude floor: no correction): every voxel's estimate within 15 %."""
    from meddenoiselib.transforms import estimate_noise_sd_map

    values = read_volume(mr_png).array.astype(np.float32)
    noisy = values + np.random.default_rng(9).normal(0.0, 6.0, values.shape).astype(np.float32) + 100.0
    estimated = estimate_noise_sd_map(noisy, coils=None)
    assert np.abs(estimated / 6.0 - 1.0).max() < 0.15


def test_auto_reads_a_map_where_the_floor_varies_and_nearly_matches_the_true_map(ramped):
    """``auto`` left to itself on the ramped slice, whose floor differs between its halves, reads a noise SD map from
    the image (``NoiseSDMap.estimated()``, the CLI's ``--noise-sd-map auto``): 38.20 dB over the head, the true map
    37.93, one level (the floor's sigma) 31.26; background bias within 0.3 sigma. The report says why."""
    clean, noisy, sigma = ramped
    denoiser = Denoiser("auto", modality="mr")
    floor = NoiseSD(float(estimate_magnitude_floor(noisy.array).sigma))
    one, _ = _scores(clean, denoiser.denoise(noisy, floor).array, sigma)
    true, _ = _scores(clean, denoiser.denoise(noisy, NoiseSDMap(sigma)).array, sigma)
    default, bias = _scores(clean, denoiser.denoise(noisy).array, sigma)
    report = denoiser.last_report
    assert default > true - 1.0 and default > one + 4.0
    assert abs(bias) < 0.3
    assert report.noise_sd_map.startswith("the noise SD map estimated from the image (the noise floor varies: sigma")
    assert "divided by the noise SD map estimated from the image" in report.choice
    explicit, _ = _scores(clean, denoiser.denoise(noisy, NoiseSDMap.estimated()).array, sigma)
    assert explicit == pytest.approx(default, abs=0.01)  # the same map, asked for
    assert denoiser.last_report.noise_sd_map == "the noise SD map estimated from the image"


def test_auto_keeps_one_level_where_the_floor_does_not_vary(mr_png):
    """Rician noise of one sigma (3 % of the 99th percentile) on the slice: no map is read, and ``auto``'s result is
    what it was (the floor's removal at one level)."""
    clean = read_volume(mr_png)
    values = clean.array.astype(np.float32)
    sigma = 0.03 * float(np.percentile(values, 99))
    rng = np.random.default_rng(6)
    noisy = clean.with_array(
        np.hypot(values + rng.normal(0.0, sigma, values.shape), rng.normal(0.0, sigma, values.shape)).astype(np.float32)
    )
    denoiser = Denoiser("auto", modality="mr")
    denoiser.denoise(noisy)
    assert denoiser.last_report.noise_sd_map == ""
    assert "noise SD map" not in denoiser.last_report.choice


def test_auto_reads_a_map_where_the_noise_peaks_inside_the_image(mr_png):
    """A g-factor bump (Rician sigma 2 % of the 99th percentile at the edges, 6 % in the middle): the floor, read in
    the air at the edges, is the same on every side, but the noise inside is well above it; ``auto`` reads a map
    (the report says why): 37.62 dB over the head, the floor's one level 33.14, the true map 38.12."""
    from meddenoiselib.transforms.magnitude import INTERIOR_VARIATION_FACTOR, interior_variation

    clean = read_volume(mr_png)
    values = clean.array.astype(np.float32)
    _, y, x = values.shape
    yy, xx = np.mgrid[:y, :x]
    bump = 0.02 + 0.04 * np.exp(-0.5 * ((yy - (y - 1) / 2) ** 2 + (xx - (x - 1) / 2) ** 2) / (0.3 * x) ** 2)
    sigma = Volume((bump * float(np.percentile(values, 99)))[None].astype(np.float32))
    rng = np.random.default_rng(7)
    noisy = clean.with_array(
        np.hypot(values + rng.normal(0.0, 1.0, values.shape) * sigma.array, rng.normal(0.0, 1.0, values.shape)
                 * sigma.array).astype(np.float32)
    )  # fmt: skip
    floor = estimate_magnitude_floor(noisy.array)
    assert interior_variation(noisy.array, floor) >= INTERIOR_VARIATION_FACTOR
    denoiser = Denoiser("auto", modality="mr")
    one, _ = _scores(clean, denoiser.denoise(noisy, NoiseSD(float(floor.sigma))).array, sigma)
    true, _ = _scores(clean, denoiser.denoise(noisy, NoiseSDMap(sigma)).array, sigma)
    default, _ = _scores(clean, denoiser.denoise(noisy).array, sigma)
    assert denoiser.last_report.noise_sd_map.startswith(
        "the noise SD map estimated from the image (the noise inside the image is "
    )
    assert default > one + 3.0 and default > true - 0.8


def _eight_coil_integers(clean: Volume, profile: np.ndarray, seed: int) -> tuple[Volume, Volume]:
    """``(noisy, sigma)``: the root sum of squares of 8 channels (the signal spread evenly over them) with noise of
    ``profile`` x the 99th percentile per channel, stored as integers (a floor of 4-5 grey levels)."""
    values = clean.array.astype(np.float64)
    sigma = profile * float(np.percentile(values, 99))
    rng = np.random.default_rng(seed)
    total = np.zeros(values.shape)
    for _ in range(8):
        real = values / np.sqrt(8) + rng.normal(size=values.shape) * sigma
        total += real**2 + (rng.normal(size=values.shape) * sigma) ** 2
    return clean.with_array(np.rint(np.sqrt(total)).astype(np.int16)), Volume(sigma.astype(np.float32))


def test_auto_reads_a_map_where_the_noise_peaks_inside_an_eight_coil_image_stored_as_integers(mr_png):
    """GRAPPA's g-factor on a multi-coil image: the same bump (2 % -> 6 %) as 8 coils combined by root sum of squares,
    stored as integers. The floor reads 8 coils (it read 6 and none of this before its integers were read as their
    rounding intervals allow) and the noise inside 1.8 times it: ``auto`` reads a map, 35.52 dB over the head against
    29.95 with the floor's one level (37.65 with the true map). The same image with one level (3 %) reads no map."""
    from meddenoiselib.transforms.magnitude import interior_variation

    clean = read_volume(mr_png)
    _, y, x = clean.shape
    yy, xx = np.mgrid[:y, :x]
    bump = 0.02 + 0.04 * np.exp(-0.5 * ((yy - (y - 1) / 2) ** 2 + (xx - (x - 1) / 2) ** 2) / (0.3 * x) ** 2)
    noisy, sigma = _eight_coil_integers(clean, bump[None], seed=7)
    floor = estimate_magnitude_floor(noisy.array)
    assert floor.coils == 8
    denoiser = Denoiser("auto", modality="mr")
    one, _ = _scores(clean, denoiser.denoise(noisy, NoiseSD(float(floor.sigma))).array, sigma)
    default, _ = _scores(clean, denoiser.denoise(noisy).array, sigma)
    assert "the noise inside the image is" in denoiser.last_report.noise_sd_map
    assert default > one + 4.0
    flat, _ = _eight_coil_integers(clean, np.full((1, y, x), 0.03), seed=8)
    flat_floor = estimate_magnitude_floor(flat.array)
    assert flat_floor.coils == 8 and interior_variation(flat.array, flat_floor) is None
    denoiser.denoise(flat)
    assert denoiser.last_report.noise_sd_map == ""


def test_an_estimated_map_reads_an_eight_coil_floor_without_a_one_sided_error(mr_png):
    """8 coils at one level (3 %), stored as integers: near the floor the magnitude's mean / SD hardly changes with the
    signal, so a tile's SD a few % off read the SNR only upwards and sigma 8-10 % low in air, and the floor's removal
    (its mean 3.9 sigma) left the air 1.2-1.4 sigma bright under ``--noise-sd-map auto``. Read as the posterior given
    the SD's error, and air tiles by their median: the map within 4 % of sigma in air and in the head, a pure 8-coil
    floor within 2 %, and the air's bias after ``auto`` under the map within 0.1 sigma of the true map's."""
    from meddenoiselib.transforms import estimate_noise_sd_map

    clean = read_volume(mr_png)
    _, y, x = clean.shape
    flat, sigma = _eight_coil_integers(clean, np.full((1, y, x), 0.03), seed=8)
    ratio = estimate_noise_sd_map(flat.array, coils=8) / sigma.array
    values = clean.array.astype(np.float64)
    head = values > 0.1 * np.percentile(values, 99)
    air = values < 0.02 * np.percentile(values, 99)
    assert abs(np.median(ratio[air]) - 1.0) < 0.04 and abs(np.median(ratio[head]) - 1.0) < 0.04
    level = float(sigma.array.flat[0])  # 5.4 grey levels
    channels = np.random.default_rng(9).normal(0.0, level, (16, 1, y, x))
    floor_only = np.rint(np.sqrt((channels**2).sum(axis=0)))
    assert np.median(estimate_noise_sd_map(floor_only, coils=8)) == pytest.approx(level, rel=0.02)
    # the slice's air holds dim values of its own, which the floor's removal takes for noise: the true map's bias
    # is -0.33 sigma; the estimated map's is the same within 0.1 (it was +0.59)
    denoiser = Denoiser("auto", modality="mr")
    _, estimated = _scores(clean, denoiser.denoise(flat, NoiseSDMap.estimated()).array.astype(np.float64), sigma)
    _, true = _scores(clean, denoiser.denoise(flat, NoiseSDMap(sigma)).array.astype(np.float64), sigma)
    assert abs(estimated - true) < 0.1


def test_an_estimated_map_is_refused_for_ct_colour_and_a_constant_image(ct_series_dir, us_png):
    ct = read_volume(ct_series_dir)
    with pytest.raises(OptionError, match="misses most of a CT's noise"):
        Denoiser("nlm").denoise(ct, NoiseSDMap.estimated())
    colour = Volume(np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(MedDenoiseError, match="3 components"):
        Denoiser("nlm", modality="other").denoise(colour, NoiseSDMap.estimated())
    with pytest.raises(MedDenoiseError, match="no noise to read it from"):  # not a division by 0
        Denoiser("nlm", modality="other").denoise(Volume(np.full((2, 32, 32), 7, np.uint8)), NoiseSDMap.estimated())


def test_cli_noise_sd_map_auto_takes_a_folder_and_records_the_map(ramped, tmp_path):
    """``--noise-sd-map auto`` reads a map from each image of a folder; a level beside it is refused."""
    clean, noisy, sigma = ramped
    folder = tmp_path / "in"
    folder.mkdir()
    write_volume(noisy, folder / "a.nii.gz")
    write_volume(noisy, folder / "b.nii.gz")
    out = tmp_path / "out"
    assert (
        main(["denoise", str(folder), str(out), "--modality", "mr", "--model", "nlm", "--noise-sd-map", "auto", "-q"])
        == 0
    )
    expected = Denoiser("nlm", modality="mr").denoise(noisy, NoiseSDMap.estimated()).array
    for name in ("a.nii.gz", "b.nii.gz"):
        np.testing.assert_array_equal(read_volume(out / name).array, expected)
    report = tmp_path / "r.json"
    single = tmp_path / "single.nii.gz"
    assert (
        main(
            [
                "denoise",
                str(folder / "a.nii.gz"),
                str(single),
                "--modality",
                "mr",
                "--noise-sd-map",
                "auto",
                "--report",
                str(report),
                "-q",
            ]
        )
        == 0
    )
    assert json.loads(report.read_text())["noise_sd_map"] == "the noise SD map estimated from the image"
    assert (
        main(
            [
                "denoise",
                str(folder / "a.nii.gz"),
                str(tmp_path / "x.nii.gz"),
                "--noise-sd-map",
                "auto",
                "--noise-sd",
                "5",
                "-q",
            ]
        )
        != 0
    )


@pytest.mark.parametrize("method", ["nlm", "auto"])
def test_a_preview_under_a_map_is_the_slice_of_the_full_run(ramped, method):
    """A preview with a noise SD map (given to NLM; read by ``auto`` itself, the floor varying) is the full run's
    slice: the map is read on the whole volume and its slice multiplies the previewed one."""
    clean, noisy, sigma = ramped
    rng = np.random.default_rng(8)
    stack = np.concatenate([noisy.array * rng.uniform(0.97, 1.03) for _ in range(5)])  # (5, Y, X), each its own
    volume = Volume(stack.astype(np.float32), (1.0, 1.0, 3.0))
    given = NoiseSDMap(np.repeat(sigma.array, 5, axis=0)) if method == "nlm" else "auto"
    denoiser = Denoiser(method, modality="mr")
    full = denoiser.denoise(volume, given).array
    preview = denoiser.preview(volume, 2, given)
    assert denoiser.last_report.noise_sd_map and denoiser.last_report.preview
    assert preview.shape == (1, *stack.shape[1:])
    scale = float(np.percentile(stack, 99))
    assert np.abs(preview.array[0] - full[2]).max() < 0.01 * scale
