"""Write the test suite's simulated PET volume: ``Testing/data/pet_chest_phantom_crop.nii.gz``.

A PET whose background must not be read as an MR noise floor. Four slices of the ITKElastix chest CT (training
split, Apache-2.0) are turned into an FDG-like activity map (lungs 0.15, soft tissue 1, bone 0.6, two hot spheres),
forward-projected with attenuation (``skimage.transform.radon``, 160 angles), given Poisson counts (3e5 per slice)
plus a flat 30 % randoms / scatter background, reconstructed by 30 MLEM iterations with a 2-pixel Gaussian
post-filter, scaled to Bq/ml and cropped to the inside of the body (90 x 90 of 128 x 128 pixels of 2.8 mm), as a
PET is often cropped before analysis. Its darkest tiles are then the lungs, whose median / MAD fits a 3-coil
magnitude floor.

    python scripts/make_pet_phantom.py ../shared/data/ct/itkelastix_chest_ct_series00 Testing/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage.transform import iradon, radon, resize

SIZE = 128
PIXEL_MM = 2.8
ANGLES = np.linspace(0.0, 180.0, 160, endpoint=False)
COUNTS_PER_SLICE = 3e5
RANDOMS_FRACTION = 0.3
ITERATIONS = 30
POST_FILTER_PX = 2.0
CROP = np.s_[19:109, 19:109]
#: water's linear attenuation at 511 keV (1/mm)
MU_WATER = 0.0096


def activity_of(hu: np.ndarray) -> np.ndarray:
    """An FDG-like activity map (relative units) of a CT slice in HU, with two hot spheres."""
    activity = np.select([hu > 300, hu > -300, hu > -950], [0.6, 1.0, 0.15], 0.0)
    rows, cols = np.mgrid[: hu.shape[0], : hu.shape[1]]
    for row, col, radius, factor in [(60, 50, 4, 6.0), (70, 80, 3, 8.0)]:
        activity[(rows - row) ** 2 + (cols - col) ** 2 < radius**2] *= factor
    return activity * ndimage.binary_fill_holes(hu > -500)


def mlem(counts: np.ndarray, attenuation: np.ndarray, randoms: np.ndarray) -> np.ndarray:
    """MLEM reconstruction of a sinogram ``(detectors, angles)`` with attenuation factors and an additive background."""

    def back(sinogram: np.ndarray) -> np.ndarray:
        return iradon(sinogram, theta=ANGLES, filter_name=None, output_size=SIZE, circle=True)

    sensitivity = np.maximum(back(attenuation), 1e-9)
    image = np.ones((SIZE, SIZE))
    for _ in range(ITERATIONS):
        expected = attenuation * radon(image, theta=ANGLES, circle=True) + randoms
        image = np.maximum(image / sensitivity * back(attenuation * counts / np.maximum(expected, 1e-9)), 0.0)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("series", type=Path, help="the ITKElastix chest CT series folder")
    parser.add_argument("out", type=Path, help="the folder to write pet_chest_phantom_crop.nii.gz into")
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    files = sorted(args.series.glob("*.dcm"))[20:24]
    slices = []
    for path in files:
        image = sitk.ReadImage(str(path))
        hu = resize(sitk.GetArrayFromImage(image)[0].astype(np.float64), (SIZE, SIZE), order=1, anti_aliasing=True)
        activity = activity_of(hu)
        mu = np.where(hu > -950, MU_WATER * (1 + hu / 1000) * PIXEL_MM, 0.0)
        attenuation = np.exp(-radon(np.maximum(mu, 0.0), theta=ANGLES, circle=True))
        projected = attenuation * radon(activity, theta=ANGLES, circle=True)
        scale = COUNTS_PER_SLICE / projected.sum()
        randoms = np.full_like(projected, RANDOMS_FRACTION * projected.mean() * scale)
        counts = rng.poisson(projected * scale + randoms).astype(np.float64)
        reconstruction = ndimage.gaussian_filter(mlem(counts, attenuation, randoms) / scale, POST_FILTER_PX / 2.355)
        slices.append(reconstruction[CROP])
    volume = (np.stack(slices) * 5000.0).astype(np.float32)  # Bq/ml
    affine = np.diag([PIXEL_MM, PIXEL_MM, 3.0, 1.0])
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "pet_chest_phantom_crop.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(volume.transpose(2, 1, 0)), affine), str(target))
    print(f"{target}: {volume.shape}, {volume.min():.0f}-{volume.max():.0f} Bq/ml")


if __name__ == "__main__":
    main()
