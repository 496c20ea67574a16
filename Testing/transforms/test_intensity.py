"""Intensity scaling: exact inverse, no clipping before the final integer cast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meddenoiselib.io import read_volume
from meddenoiselib.transforms import IntensityScaling, fit_scaling, sigma_from_255

CASES = [
    ("minmax", {}),
    ("percentile", {}),
    ("percentile", {"lower": 5, "upper": 95}),
    ("ct_window", {"center": 40, "width": 400}),
]


@pytest.mark.parametrize("mode, options", CASES)
def test_round_trip_of_real_ct_is_exact_to_half_a_step(ct_series_dir, mode, options):
    hu = read_volume(ct_series_dir).array  # int16 HU, -1024..2976
    scaling = fit_scaling(hu, mode, **options)
    normalized = scaling.apply(hu)
    assert normalized.dtype == np.float32
    restored = scaling.invert(normalized)
    assert restored.dtype == np.int16
    assert np.abs(restored.astype(np.int32) - hu).max() <= 0.5  # i.e. identical integers
    np.testing.assert_array_equal(restored, hu)


def test_normalization_never_clips_values_beyond_the_window(ct_series_dir):
    hu = read_volume(ct_series_dir).array
    scaling = fit_scaling(hu, "ct_window", center=40, width=400)  # -160..240 HU
    normalized = scaling.apply(hu)
    assert normalized.min() < -2 and normalized.max() > 3  # air (-1024 HU) and bone far outside [0, 1]
    np.testing.assert_array_equal(scaling.invert(normalized), hu)


def test_percentile_mode_is_robust_to_outliers():
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, size=(64, 64)).astype(np.float32)
    image[0, 0] = 1e6  # metal
    scaling = fit_scaling(image, "percentile")
    assert scaling.high < 200
    assert fit_scaling(image, "minmax").high == pytest.approx(1e6)
    np.testing.assert_allclose(scaling.invert(scaling.apply(image)), image, rtol=1e-6)


def test_only_the_final_integer_cast_clips():
    scaling = IntensityScaling(low=0.0, high=255.0, dtype="uint8")
    values = np.array([-0.5, 0.0, 0.5, 1.0, 1.5], dtype=np.float32)
    np.testing.assert_array_equal(scaling.invert(values), np.array([0, 0, 128, 255, 255], dtype=np.uint8))
    np.testing.assert_allclose(scaling.invert(values, dtype="float32"), [-127.5, 0, 127.5, 255, 382.5])


def test_uint16_and_torch_inputs_round_trip():
    data = np.array([[0, 1, 65535], [1234, 40000, 7]], dtype=np.uint16)
    scaling = fit_scaling(data, "minmax")
    np.testing.assert_array_equal(scaling.invert(scaling.apply(data)), data)
    tensor = torch.tensor([[-1024, 0], [3071, 12]], dtype=torch.int16)
    scaling = fit_scaling(tensor, "minmax")
    assert scaling.dtype == "int16"
    np.testing.assert_array_equal(scaling.invert(scaling.apply(tensor)), tensor.numpy())


def test_constant_image_and_serialisation():
    scaling = fit_scaling(np.full((4, 4), 7, np.int16), "minmax")
    assert scaling.high > scaling.low
    np.testing.assert_array_equal(scaling.invert(scaling.apply(np.full((4, 4), 7, np.int16))), 7)
    assert IntensityScaling.from_dict(scaling.to_dict()) == scaling
    assert sigma_from_255(25) == pytest.approx(25 / 255)
    levels = torch.tensor([0.0, 25.0, 50.0])  # a batch of training levels keeps its type and shape
    assert torch.allclose(sigma_from_255(levels), levels / 255)


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="`high` must exceed `low`"):
        IntensityScaling(low=1, high=1)
    with pytest.raises(ValueError, match="`width`"):
        fit_scaling(np.zeros(3), "ct_window", width=0)
    with pytest.raises(ValueError, match="mode='fixed'"):
        fit_scaling(np.zeros(3), "fixed")


def test_scale_to_unit_transforms_round_trip_a_ct_series_in_hu(ct_series_dir):
    from monai.data import MetaTensor

    from meddenoiselib.io import read_volume
    from meddenoiselib.transforms import RestoreUnitsd, ScaleToUnit, ScaleToUnitd

    volume = read_volume(ct_series_dir)  # int16 HU, air near -1000, bone above +1000
    image = MetaTensor(torch.from_numpy(volume.array), meta={"dtype": str(volume.array.dtype)})
    scaled, scaling = ScaleToUnit(mode="ct_window", center=40, width=400)(image)
    assert isinstance(scaled, MetaTensor) and scaled.dtype == torch.float32
    # the soft-tissue window maps -160..240 HU to 0..1 and nothing outside it is clipped
    assert float(scaled.min()) < -1.5 and float(scaled.max()) > 2.5
    assert scaling.to_dict()["low"] == -160 and scaling.to_dict()["high"] == 240
    data = ScaleToUnitd(keys="image", mode="ct_window", center=40, width=400)({"image": image})
    data["pred"] = data["image"]
    restored = RestoreUnitsd(keys="pred", scaling_key="image_scaling")(data)["pred"]
    assert restored.dtype == torch.int16  # the on-disk dtype comes back
    np.testing.assert_array_equal(restored.numpy(), volume.array)  # every HU value, bone and air included
