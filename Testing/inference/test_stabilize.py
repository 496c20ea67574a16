"""``stabilize``: NLM / BM3D / BM4D run under the generalized Anscombe transform where the noise of an X-ray or
other image grows with the signal (photon counting); on the CLI ``--stabilize``, in the bundle ``stabilize``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from meddenoiselib.cli import main
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import Volume, read_volume, write_volume
from meddenoiselib.transforms.noise import samplers


def _psnr(clean: np.ndarray, result: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(result, np.float64) - clean) ** 2)))


@pytest.fixture(scope="module")
def radiograph(xray_png):
    """``(clean, photon-noisy, Gaussian-noisy)`` volumes: the central 256x256 of the test data's chest radiograph,
    scaled to [0, 1] (float32, no modality), with Poisson-Gaussian noise of 30 counts at intensity 1 (1 count of
    read noise) and with white Gaussian noise of sigma 25 / 255."""
    volume = read_volume(xray_png)
    image = volume.array[:, 128:384, 128:384].astype(np.float32)
    clean = (image - image.min()) / np.ptp(image)
    generator = torch.Generator().manual_seed(3)
    photons = samplers.poisson_gaussian(torch.from_numpy(clean), 30.0, 1.0, generator).float().numpy()
    gaussian = clean + np.random.default_rng(3).normal(0, 25 / 255, clean.shape).astype(np.float32)
    return clean, Volume(photons), Volume(gaussian)


def test_nlm_on_photon_noise_gains_under_the_transform(radiograph):
    """Photon noise of 30 counts: NLM with one estimated sigma leaves the bright lungs' noise; under the transform
    it gains more than 2 dB, and the report says what it fitted."""
    clean, photons, _ = radiograph
    plain = Denoiser("nlm", stabilize="off")
    stabilized = Denoiser("nlm")
    psnr_plain = _psnr(clean, plain.denoise(photons).array)
    psnr_stabilized = _psnr(clean, stabilized.denoise(photons).array)
    assert psnr_stabilized > psnr_plain + 2.0
    assert plain.last_report.stabilized == ""
    assert stabilized.last_report.stabilized.startswith("photon noise, variance ")
    assert "generalized Anscombe" in stabilized.last_report.stabilized


def test_nothing_changes_where_the_transform_does_not_apply(radiograph):
    """White Gaussian noise (no signal dependence), a sigma given, a modality with a noise model of its own
    (ultrasound), a method that is not a local mean (median): the output is the plain method's, exactly."""
    _, photons, gaussian = radiograph
    np.testing.assert_array_equal(
        Denoiser("nlm").denoise(gaussian).array, Denoiser("nlm", stabilize="off").denoise(gaussian).array
    )
    for method, options, kwargs in (("nlm", {}, {"sigma": 0.05}), ("nlm", {"modality": "us"}, {}), ("median", {}, {})):
        auto = Denoiser(method, **options)
        np.testing.assert_array_equal(
            auto.denoise(photons, **kwargs).array,
            Denoiser(method, stabilize="off", **options).denoise(photons, **kwargs).array,
        )
        assert auto.last_report.stabilized == ""


def test_in_memory_path_takes_the_transform_too(radiograph):
    """``denoise_array`` (the evaluation tools' path) on the normalized photon-noisy image: the same gain."""
    clean, photons, _ = radiograph
    noisy = photons.array[0]
    gain = _psnr(clean[0], Denoiser("nlm").denoise_array(noisy)) - _psnr(
        clean[0], Denoiser("nlm", stabilize="off").denoise_array(noisy)
    )
    assert gain > 2.0


def test_cli_stabilize_equals_the_library(radiograph, tmp_path):
    """``denoise --model nlm`` on a photon-noisy file equals the library and records the transform in the report;
    ``--stabilize off`` equals the library's ``off``; a bad value exits 2."""
    _, photons, _ = radiograph
    source, report = tmp_path / "noisy.nii.gz", tmp_path / "report.json"
    write_volume(photons, source)
    for option, name in (("auto", "auto.nii.gz"), ("off", "off.nii.gz")):
        extra = ["--report", str(report)] if option == "auto" else []
        assert main(["denoise", str(source), str(tmp_path / name), "--model", "nlm", "--stabilize", option, "-q",
                     *extra]) == 0  # fmt: skip
        expected = Denoiser("nlm", stabilize=option).denoise(read_volume(source)).array
        np.testing.assert_allclose(read_volume(tmp_path / name).array, expected, rtol=0, atol=1e-4)
    assert json.loads(report.read_text())["variance_stabilization"].startswith("photon noise, variance ")
    assert main(["denoise", str(source), str(tmp_path / "bad.nii.gz"), "--stabilize", "on"]) == 2
    assert not (tmp_path / "bad.nii.gz").exists()


def test_unknown_setting_is_refused():
    from meddenoiselib import MedDenoiseError

    with pytest.raises(MedDenoiseError, match="stabilize must be one of auto, off"):
        Denoiser("nlm", stabilize="yes")


def test_a_preview_is_the_whole_volumes_slice(radiograph):
    """A 3-slice photon-noisy volume: the previewed middle slice is the whole run's, exactly (the transform's scale
    and noise level are the whole volume's, not the slab's)."""
    _, photons, _ = radiograph
    image = photons.array[0]
    volume = Volume(np.stack([image, image[::-1], image[:, ::-1]]))
    denoiser = Denoiser("nlm")
    whole = denoiser.denoise(volume).array
    preview = denoiser.preview(volume, 1)
    assert denoiser.last_report.stabilized
    np.testing.assert_array_equal(preview.array[0], whole[1])
