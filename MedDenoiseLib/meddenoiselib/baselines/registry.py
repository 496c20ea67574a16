"""Classical baselines behind one call signature: ``fn(image, sigma) -> denoised``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import OptionError
from .bm3d import bm3d_available, bm3d_denoise, bm4d_available, bm4d_denoise
from .diffusion import diffusion_denoise
from .median import median_denoise
from .nlm import nlm_denoise
from .srad import srad3d_denoise, srad_denoise

__all__ = ["BaselineSpec", "BASELINES", "get_baseline", "list_baselines"]


@dataclass(frozen=True)
class BaselineSpec:
    """A classical denoiser.

    Attributes:
        name: the method name used by the CLI (``--model median``).
        function: ``function(image, sigma) -> denoised`` on normalized float32 arrays, 2D ``(Y, X)`` or 3D.
        description: one line.
        volumetric: True if the method filters a whole volume at once (else the Denoiser runs it per slice).
        needs_sigma: True if the method uses the noise level (then ``--sigma auto`` estimates it).
        available: returns whether its (optional) dependency is installed.
        takes_psd: ``function`` also accepts ``psd=`` (the noise power spectrum of a slice, for correlated noise).
        stabilizes: the method estimates a local mean, so that photon noise can be made white for it by the
            generalized Anscombe transform and its result mapped back by the transform's unbiased inverse (the
            Denoiser's ``stabilize``).
        licence_note: a note shown where the licence matters.
    """

    name: str
    function: Callable[[np.ndarray, float], np.ndarray]
    description: str
    volumetric: bool = False
    needs_sigma: bool = True
    available: Callable[[], bool] = lambda: True
    licence_note: str = ""
    takes_psd: bool = False
    stabilizes: bool = False


BASELINES: dict[str, BaselineSpec] = {
    spec.name: spec
    for spec in (
        BaselineSpec("median", median_denoise, "Median filter, 5x5 (3x3 below sigma 10/255), per slice"),
        BaselineSpec(
            "nlm", nlm_denoise, "Non-local means (scikit-image, fast mode, h = 0.8 sigma), per slice", stabilizes=True
        ),
        BaselineSpec(
            "bm3d",
            bm3d_denoise,
            "BM3D collaborative filtering (optional bm3d package), per slice",
            available=bm3d_available,
            licence_note="bm3d package: non-commercial licence",
            takes_psd=True,
            stabilizes=True,
        ),
        BaselineSpec(
            "bm4d",
            bm4d_denoise,
            "BM4D volumetric collaborative filtering (optional bm4d package)",
            volumetric=True,
            available=bm4d_available,
            licence_note="bm4d package: non-commercial licence",
            stabilizes=True,
        ),
        BaselineSpec(
            "diffusion",
            diffusion_denoise,
            "Curvature anisotropic diffusion (SimpleITK), per slice",
        ),
        BaselineSpec(
            "srad",
            srad_denoise,
            "Speckle reducing anisotropic diffusion (Yu & Acton) for ultrasound, speckle scale read from the image, "
            "per slice",
            needs_sigma=False,
        ),
        BaselineSpec(
            "srad3d",
            srad3d_denoise,
            "Speckle reducing anisotropic diffusion of a whole volume (3D ultrasound, near-isotropic voxels)",
            volumetric=True,
            needs_sigma=False,
        ),
    )
}


def list_baselines() -> list[BaselineSpec]:
    """All classical baselines, installed or not."""
    return list(BASELINES.values())


def get_baseline(name: str) -> BaselineSpec:
    """The baseline called ``name``.

    Raises:
        OptionError: unknown name (the message lists the valid ones); also a ValueError.
    """
    try:
        return BASELINES[name]
    except KeyError:
        raise OptionError(
            f"unknown baseline {name!r}; choose one of {sorted(BASELINES)}.", parameter="method"
        ) from None
