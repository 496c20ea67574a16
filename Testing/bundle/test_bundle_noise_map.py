"""The bundle's noise map (``save_noise_map: true``): the CLI's ``--noise-map`` through MONAI's postprocessing.

In process (MONAI's ``ConfigParser`` and the config's own evaluator): the subprocess runs in test_bundle_run.py
already show that ``python -m monai.bundle run`` resolves the config the same way.
"""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor

from meddenoiselib.bundle.noise_map import NoiseMapd
from meddenoiselib.evaluation import noise_map_volume, residual_volume
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume

from .conftest import bundle_config


def _parser(**overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(bundle_config())
    for key, value in overrides.items():
        parser[key] = value
    return parser


def test_noise_map_of_known_noise_reads_its_sigma_in_the_input_units():
    """pred = a smooth volume, image = pred + white noise of 20 units: the map reads ~20 everywhere and keeps pred's
    metadata (affine) for SaveImaged."""
    rng = np.random.default_rng(3)
    i, j, k = np.meshgrid(np.arange(48), np.arange(40), np.arange(3), indexing="ij")
    smooth = (100.0 + 2.0 * i + 1.5 * j + 10.0 * k)[np.newaxis].astype(np.float32)  # (C, I, J, K)
    affine = torch.diag(torch.tensor([0.7, 0.7, 2.5, 1.0], dtype=torch.float64))
    pred = MetaTensor(torch.from_numpy(smooth), affine=affine)
    image = MetaTensor(torch.from_numpy(smooth + rng.normal(0, 20.0, smooth.shape).astype(np.float32)), affine=affine)
    out = NoiseMapd()({"image": image, "pred": pred})["noise_map"]
    assert tuple(out.shape) == tuple(smooth.shape) and out.dtype == torch.float32
    assert abs(float(out.median()) - 20.0) < 1.5
    assert torch.equal(out.affine, affine)


def test_default_config_writes_no_noise_map():
    transforms = _parser().get_parsed_content("postprocessing").transforms
    # only the denoised image's SaveImaged, the diffusion gradient table's copy and the NIfTI's sidecar (nothing for
    # other inputs)
    assert [type(t).__name__ for t in transforms] == ["SaveImaged", "GradientTabled", "Sidecard"]


def test_save_noise_map_writes_the_cli_map_beside_the_output(bundle_data, tmp_path):
    """The CT crop (64x64x4 int16 HU) through the config's evaluator with ``save_noise_map`` (as ``--save_noise_map
    true`` gives it from the command line): ``ct_crop_noise_map.nii.gz`` on the input's grid, float32 HU, equal to
    the library's noise map of the library's result, and ~ the noise that was added where the tissue is flat."""
    case = bundle_data.cases["ct_crop"]
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(bundle_data.dataset_dir / case.name, data / case.name)
    out = tmp_path / "out"
    parser = _parser(dataset_dir=str(data), output_dir=str(out), save_noise_map="true", device="cpu")
    parser.get_parsed_content("evaluator").run()
    assert sorted(p.name for p in out.iterdir()) == ["ct_crop_denoised.nii.gz", "ct_crop_noise_map.nii.gz"]

    written = nib.load(str(out / "ct_crop_noise_map.nii.gz"))
    assert written.get_data_dtype() == np.float32
    np.testing.assert_allclose(written.affine, case.affine, atol=1e-4)
    volume = read_volume(data / case.name)
    expected = noise_map_volume(residual_volume(volume, Denoiser().denoise(volume))).array.transpose(2, 1, 0)
    np.testing.assert_allclose(np.asarray(written.dataobj), expected, atol=1e-3)
    added = float(np.std(case.noisy.astype(np.float32) - case.clean))
    assert 0.5 * added < float(np.median(expected)) < 1.5 * added


def test_noise_sd_reaches_the_inferer_in_image_units():
    """``--noise_sd 25`` (HU for CT): the inferer hands the Denoiser a NoiseSD, which it converts per scaling; by
    default the sigma stays ``auto``."""
    from meddenoiselib.transforms import NoiseSD

    assert _parser().get_parsed_content("inferer").sigma == "auto"
    assert _parser(noise_sd=25).get_parsed_content("inferer").sigma == NoiseSD(25.0)
    assert _parser(noise_sd="12.5").get_parsed_content("inferer").sigma == NoiseSD(12.5)
