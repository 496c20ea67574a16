"""Metrics in physical units (``evaluate --noise``, benchmarks/real_noise.py); numpy and scipy only.

CT (values in HU): body RMSE, PSNR and SSIM in the soft-tissue window W400/L40 over the body, the noise left in
the body, the noise in a flat ROI (water phantom), and a resolution check: the 10-90 % rise distance of the
air-skin edge, from edge profiles normal to the body outline, aligned on the clean edge and averaged.
MR (magnitude): PSNR/SSIM over the head and the bias in the background. Ultrasound: PSNR/SSIM over the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "BODY_HU",
    "SOFT_TISSUE_WINDOW",
    "EdgeSampler",
    "body_mask",
    "edge_levels",
    "edge_sampler",
    "edge_width_mm",
    "head_mask",
    "masked_psnr",
    "masked_ssim",
    "outline_mask",
    "phantom_roi",
    "rmse",
    "window_psnr",
    "window_ssim",
]

#: voxels of the clean image above this are body (soft tissue, fat, bone; not lung or air)
BODY_HU = -500.0
#: soft-tissue window W400/L40: HU -160 ... 240
SOFT_TISSUE_WINDOW = (-160.0, 240.0)


def body_mask(clean_hu: np.ndarray) -> np.ndarray:
    """Body voxels: ``clean > -500 HU`` (lungs and air excluded)."""
    return np.asarray(clean_hu) > BODY_HU


def rmse(clean: np.ndarray, test: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root-mean-square difference, over ``mask`` when given (units of the images)."""
    diff = np.asarray(test, dtype=np.float64) - np.asarray(clean, dtype=np.float64)
    if mask is not None:
        diff = diff[mask]
    return float(np.sqrt(np.mean(diff**2)))


def masked_psnr(clean: np.ndarray, test: np.ndarray, mask: np.ndarray | None, data_range: float) -> float:
    """``10 log10(data_range² / MSE)`` with the MSE over ``mask`` (all voxels when None)."""
    error = rmse(clean, test, mask)
    return float("inf") if error == 0 else float(20 * np.log10(data_range / error))


def _ssim_map_2d(x: np.ndarray, y: np.ndarray, data_range: float) -> np.ndarray:
    """SSIM map (Wang et al. 2004): 11x11 Gaussian window of sigma 1.5, K1 0.01, K2 0.03, reflected borders."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(a, 1.5, truncate=3.5, mode="reflect")  # radius 5: 11 taps

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))


def masked_ssim(clean: np.ndarray, test: np.ndarray, mask: np.ndarray | None, data_range: float) -> float:
    """Mean SSIM over ``mask``: the 2D SSIM map of every slice of a ``(Z, Y, X)`` volume, averaged over the mask."""
    clean = np.asarray(clean, dtype=np.float64).reshape(-1, *np.shape(clean)[-2:])
    test = np.asarray(test, dtype=np.float64).reshape(clean.shape)
    mask = np.ones(clean.shape, bool) if mask is None else np.asarray(mask, bool).reshape(clean.shape)
    total, count = 0.0, 0
    for c, t, m in zip(clean, test, mask, strict=True):
        if m.any():
            total += float(_ssim_map_2d(c, t, data_range)[m].sum())
            count += int(m.sum())
    return total / count if count else float("nan")


def _window(image: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    return np.clip(np.asarray(image, dtype=np.float64), window[0], window[1])


def window_psnr(
    clean_hu: np.ndarray, test_hu: np.ndarray, mask: np.ndarray, window: tuple[float, float] = SOFT_TISSUE_WINDOW
) -> float:
    """PSNR in a display window: both images clipped to the window, data range = window width, over ``mask``."""
    return masked_psnr(_window(clean_hu, window), _window(test_hu, window), mask, window[1] - window[0])


def window_ssim(
    clean_hu: np.ndarray, test_hu: np.ndarray, mask: np.ndarray, window: tuple[float, float] = SOFT_TISSUE_WINDOW
) -> float:
    """SSIM in a display window (both clipped to it, data range = width), averaged over ``mask``."""
    return masked_ssim(_window(clean_hu, window), _window(test_hu, window), mask, window[1] - window[0])


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = ndimage.sum(mask, labels, index=np.arange(1, count + 1))
    return labels == (1 + int(np.argmax(sizes)))


def outline_mask(image: np.ndarray, threshold: float) -> np.ndarray:
    """The object of one 2D slice: above ``threshold``, holes filled, largest connected component."""
    return _largest_component(ndimage.binary_fill_holes(np.asarray(image) > threshold))


def head_mask(clean: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """MR head (object) mask per slice: above ``fraction`` of the volume's 99th percentile, filled, largest part."""
    clean = np.asarray(clean, dtype=np.float32)
    threshold = fraction * float(np.percentile(clean, 99))
    return np.stack([outline_mask(s, threshold) for s in clean.reshape(-1, *clean.shape[-2:])]).reshape(clean.shape)


def phantom_roi(clean_hu_slice: np.ndarray, pixel_mm: float, radius_mm: float = 40.0) -> np.ndarray:
    """A disc of ``radius_mm`` at the centroid of the object (the water phantom's centre), one 2D slice."""
    obj = outline_mask(clean_hu_slice, BODY_HU)
    cy, cx = ndimage.center_of_mass(obj)
    yy, xx = np.mgrid[: obj.shape[0], : obj.shape[1]]
    return ((yy - cy) ** 2 + (xx - cx) ** 2) * pixel_mm**2 <= radius_mm**2


@dataclass(frozen=True)
class EdgeSampler:
    """Edge profiles of one volume: where to sample, found once on the clean image.

    Attributes:
        t_mm: ``(T,)`` positions along each profile in mm, negative outside (air), 0 at the clean edge's half
            height, positive inside the body.
        slices: ``(P,)`` slice index of each profile.
        rows: ``(P, T)`` row coordinates (pixels) of the samples.
        cols: ``(P, T)`` column coordinates.
    """

    t_mm: np.ndarray
    slices: np.ndarray
    rows: np.ndarray
    cols: np.ndarray

    @property
    def count(self) -> int:
        """Number of profiles."""
        return int(self.slices.size)

    def mean_profile(self, volume: np.ndarray) -> np.ndarray:
        """The edge spread function: the mean profile of ``volume`` (``(Z, Y, X)``, same grid as the clean one)."""
        volume = np.asarray(volume, dtype=np.float64).reshape(-1, *np.shape(volume)[-2:])
        total = np.zeros(self.t_mm.size)
        for k in np.unique(self.slices):
            pick = self.slices == k
            values = ndimage.map_coordinates(volume[k], [self.rows[pick], self.cols[pick]], order=1)
            total += values.sum(axis=0)
        return total / max(self.count, 1)


def _crossing(t: np.ndarray, profile: np.ndarray, level: float) -> float:
    """First position (from the low, outside end) where ``profile`` reaches ``level``, linearly interpolated."""
    above = np.nonzero(profile >= level)[0]
    if not above.size or above[0] == 0:
        return float("nan")
    i = int(above[0])
    p0, p1 = profile[i - 1], profile[i]
    return float(t[i - 1] + (level - p0) / (p1 - p0) * (t[i] - t[i - 1]))


def edge_levels(
    t_mm: np.ndarray,
    profile: np.ndarray,
    low_range: tuple[float, float] = (-6.0, -3.5),
    high_range: tuple[float, float] = (1.5, 3.0),
) -> tuple[float, float]:
    """The 0 % and 100 % levels of an edge profile: its means over ``low_range`` (outside) and ``high_range``
    (inside), in mm."""
    t_mm, profile = np.asarray(t_mm, dtype=np.float64), np.asarray(profile, dtype=np.float64)
    low = profile[(t_mm >= low_range[0]) & (t_mm <= low_range[1])].mean()
    high = profile[(t_mm >= high_range[0]) & (t_mm <= high_range[1])].mean()
    return float(low), float(high)


def edge_width_mm(t_mm: np.ndarray, profile: np.ndarray, levels: tuple[float, float] | None = None) -> float:
    """10-90 % rise distance (mm) of a rising edge profile.

    Args:
        t_mm: positions along the profile (mm), increasing from outside to inside.
        profile: the values.
        levels: the 0 % and 100 % values; defaults to :func:`edge_levels` of this profile. Give the clean
            profile's levels to measure a denoised profile at the same HU thresholds.

    Returns:
        The distance between the first 10 % and the first 90 % crossing (NaN when the edge does not rise).
    """
    t_mm, profile = np.asarray(t_mm, dtype=np.float64), np.asarray(profile, dtype=np.float64)
    low, high = edge_levels(t_mm, profile) if levels is None else levels
    if not high > low:
        return float("nan")
    return _crossing(t_mm, profile, low + 0.9 * (high - low)) - _crossing(t_mm, profile, low + 0.1 * (high - low))


def edge_sampler(
    clean_hu: np.ndarray,
    pixel_mm: float,
    half_length_mm: float = 6.0,
    step_mm: float = 0.05,
    max_per_slice: int = 400,
    air: tuple[float, float] = (-1100.0, -850.0),
) -> EdgeSampler:
    """Air-skin edge profiles normal to the body outline of a clean CT volume.

    Per slice: the body (``> -500 HU``, filled, largest component), its outline pixels, the inward normal from the
    gradient of the smoothed body mask. A profile is kept when the clean values outside it are air (mean within
    ``air``; no constant padding or field-of-view cut, where the clean values do not vary at all), the inside is
    soft tissue (no bone within 4 mm) and the whole profile lies in the image. Each profile is then shifted along
    its normal so that the clean edge's half height (between the air and tissue levels) sits at 0, so the mean
    profile is not widened by the pixel grid.

    Args:
        clean_hu: ``(Z, Y, X)`` or ``(Y, X)`` clean CT in HU.
        pixel_mm: in-plane pixel spacing (mm).
        half_length_mm: profiles run from ``-half_length_mm`` (air) to ``+half_length_mm`` (body). Defaults to 6.
        step_mm: sample spacing along the profile. Defaults to 0.05 mm.
        max_per_slice: the most profiles per slice, evenly spread along the outline. Defaults to 400.
        air: accepted range of the clean mean HU outside the edge. Defaults to (-1100, -850).

    Returns:
        The :class:`EdgeSampler` (possibly with no profiles).
    """
    clean = np.asarray(clean_hu, dtype=np.float64).reshape(-1, *np.shape(clean_hu)[-2:])
    search = half_length_mm + 2.0  # room to re-centre each profile by up to 2 mm
    t_search = np.arange(-search, search + step_mm / 2, step_mm)
    t_mm = np.arange(-half_length_mm, half_length_mm + step_mm / 2, step_mm)
    margin = int(np.ceil(search / pixel_mm)) + 2
    slices, rows, cols = [], [], []
    for k, image in enumerate(clean):
        body = outline_mask(image, BODY_HU)
        if body.sum() < 100:
            continue
        smooth = ndimage.gaussian_filter(body.astype(np.float64), 2.0)
        gy, gx = np.gradient(smooth)
        edge = body & ~ndimage.binary_erosion(body)
        ys, xs = np.nonzero(edge)
        inside = (ys >= margin) & (ys < image.shape[0] - margin) & (xs >= margin) & (xs < image.shape[1] - margin)
        ys, xs = ys[inside], xs[inside]
        norm = np.hypot(gy[ys, xs], gx[ys, xs])
        ys, xs, norm = ys[norm > 1e-3], xs[norm > 1e-3], norm[norm > 1e-3]
        if not ys.size:
            continue
        pick = np.unique(np.linspace(0, ys.size - 1, min(ys.size, max_per_slice)).round().astype(int))
        ys, xs, norm = ys[pick], xs[pick], norm[pick]
        ny, nx = gy[ys, xs] / norm, gx[ys, xs] / norm  # unit normal pointing into the body
        steps = t_search / pixel_mm
        py = ys[:, None] + ny[:, None] * steps[None, :]
        px = xs[:, None] + nx[:, None] * steps[None, :]
        profiles = ndimage.map_coordinates(image, [py, px], order=1)
        outside = profiles[:, t_search <= -2.0]
        tissue = profiles[:, (t_search >= 1.5) & (t_search <= 3.0)]
        near = profiles[:, (t_search >= 0.0) & (t_search <= 4.0)]
        air_level = outside.mean(axis=1)
        tissue_level = tissue.mean(axis=1)
        good = (
            (air_level >= air[0])
            & (air_level <= air[1])
            & (outside.std(axis=1) > 0.5)
            & (outside.max(axis=1) < -600)
            & (tissue_level > -300)
            & (near.max(axis=1) < 300)
        )
        for i in np.nonzero(good)[0]:
            centre = _crossing(t_search, profiles[i], 0.5 * (air_level[i] + tissue_level[i]))
            if not np.isfinite(centre) or abs(centre) > 2.0:
                continue
            slices.append(k)
            rows.append(ys[i] + ny[i] * (t_mm + centre) / pixel_mm)
            cols.append(xs[i] + nx[i] * (t_mm + centre) / pixel_mm)
    shape = (len(slices), t_mm.size)
    return EdgeSampler(
        t_mm, np.asarray(slices, dtype=int), np.asarray(rows).reshape(shape), np.asarray(cols).reshape(shape)
    )
