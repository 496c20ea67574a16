"""A simple PET simulator, and the test suite's simulated PET volume: ``Testing/data/pet_chest_phantom_crop.nii.gz``.

A PET whose background must not be read as an MR noise floor. An activity map (here FDG-like, from a CT slice's
tissue classes, or any map) is forward-projected with attenuation (``skimage.transform.radon``, 160 angles over
180 degrees, parallel beam), given Poisson counts plus a flat randoms / scatter background (30 % of the mean true
counts), reconstructed by MLEM with a Gaussian post-filter and scaled to Bq/ml. The fixture: four slices (058-061)
of the ITKElastix chest CT (training split, Apache-2.0), lungs 0.15, soft tissue 1, bone 0.6, two hot spheres;
3e5 counts per slice, 30 iterations, a 2-pixel post-filter, cropped to the inside of the body (90 x 90 of 128 x 128
pixels of 2.8 mm), as a PET is often cropped before analysis. Its darkest tiles are then the lungs, whose median /
MAD fits a 6-coil magnitude floor. ``benchmarks/modality_guess.py`` uses the same simulator.

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
RANDOMS_FRACTION = 0.3
#: water's linear attenuation at 511 keV (1/mm)
MU_WATER = 0.0096
#: activity of 1.0 in Bq/ml
BQ_PER_ML = 5000.0
FIXTURE_CROP = np.s_[19:109, 19:109]


def chest_slices(series: Path, first: int, count: int) -> np.ndarray:
    """``count`` slices of a CT series folder from the ``first`` file on, in HU, resized to ``(count, SIZE, SIZE)``."""
    files = sorted(series.glob("*.dcm"))[first : first + count]
    slices = [sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[0].astype(np.float64) for path in files]
    return np.stack([resize(hu, (SIZE, SIZE), order=1, anti_aliasing=True) for hu in slices])


def activity_from_ct(hu: np.ndarray) -> np.ndarray:
    """An FDG-like activity map (relative units) of a ``(SIZE, SIZE)`` CT slice in HU, with two hot spheres."""
    activity = np.select([hu > 300, hu > -300, hu > -950], [0.6, 1.0, 0.15], 0.0)
    rows, cols = np.mgrid[: hu.shape[0], : hu.shape[1]]
    for row, col, radius, factor in [(60, 50, 4, 6.0), (70, 80, 3, 8.0)]:
        activity[(rows - row) ** 2 + (cols - col) ** 2 < radius**2] *= factor
    return activity * ndimage.binary_fill_holes(hu > -500)


def attenuation_from_ct(hu: np.ndarray) -> np.ndarray:
    """Linear attenuation at 511 keV per pixel of a CT slice in HU (air 0)."""
    return np.where(hu > -950, np.maximum(MU_WATER * (1 + hu / 1000) * PIXEL_MM, 0.0), 0.0)


def mlem(counts: np.ndarray, attenuation: np.ndarray, randoms: np.ndarray, iterations: int) -> np.ndarray:
    """MLEM reconstruction ``(SIZE, SIZE)`` of a sinogram ``(detectors, angles)`` with attenuation factors and an
    additive background."""

    def back(sinogram: np.ndarray) -> np.ndarray:
        return iradon(sinogram, theta=ANGLES, filter_name=None, output_size=SIZE, circle=True)

    sensitivity = np.maximum(back(attenuation), 1e-9)
    image = np.ones((SIZE, SIZE))
    for _ in range(iterations):
        expected = attenuation * radon(image, theta=ANGLES, circle=True) + randoms
        image = np.maximum(image / sensitivity * back(attenuation * counts / np.maximum(expected, 1e-9)), 0.0)
    return image


def simulate_pet_slice(
    activity: np.ndarray,
    mu: np.ndarray,
    counts: float,
    iterations: int,
    post_filter_px: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A reconstructed PET slice in Bq/ml of an activity map and its attenuation map (both ``(SIZE, SIZE)``).

    Args:
        activity: relative activity, >= 0.
        mu: linear attenuation per pixel.
        counts: true counts in the slice's sinogram.
        iterations: MLEM iterations.
        post_filter_px: FWHM of the Gaussian post-filter in pixels (0: none).
        rng: the Poisson counts' generator.
    """
    attenuation = np.exp(-radon(mu, theta=ANGLES, circle=True))
    projected = attenuation * radon(activity, theta=ANGLES, circle=True)
    scale = counts / max(float(projected.sum()), 1e-12)
    randoms = np.full_like(projected, RANDOMS_FRACTION * projected.mean() * scale)
    measured = rng.poisson(projected * scale + randoms).astype(np.float64)
    image = mlem(measured, attenuation, randoms, iterations) / scale
    if post_filter_px:
        image = ndimage.gaussian_filter(image, post_filter_px / 2.355)
    return image * BQ_PER_ML


def save_nifti(volume: np.ndarray, path: Path, spacing: tuple[float, float, float]) -> Path:
    """Write a ``(Z, Y, X)`` float32 volume as NIfTI (nibabel's ``(x, y, z)`` order) with the given spacing (mm)."""
    affine = np.diag([spacing[0], spacing[1], spacing[2], 1.0])
    nib.save(nib.Nifti1Image(np.ascontiguousarray(volume.astype(np.float32).transpose(2, 1, 0)), affine), str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("series", type=Path, help="the ITKElastix chest CT series folder")
    parser.add_argument("out", type=Path, help="the folder to write pet_chest_phantom_crop.nii.gz into")
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    hu = chest_slices(args.series, 20, 4)
    volume = np.stack([simulate_pet_slice(activity_from_ct(s), attenuation_from_ct(s), 3e5, 30, 2.0, rng) for s in hu])
    args.out.mkdir(parents=True, exist_ok=True)
    target = save_nifti(volume[(slice(None), *FIXTURE_CROP)], args.out / "pet_chest_phantom_crop.nii.gz", (2.8, 2.8, 3))
    print(f"{target}: {volume.shape}, {volume.min():.0f}-{volume.max():.0f} Bq/ml")


if __name__ == "__main__":
    main()
