"""Runs a classical baseline (median, NLM, BM3D, BM4D, diffusion) over a normalized volume."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..baselines import BASELINES, BaselineSpec
from ..errors import OptionError
from ..transforms.estimate import NoiseEstimate
from .progress import Progress

__all__ = ["BaselineRunner", "ProgressFactory"]

#: ``factory(total_units) -> Progress``: the orchestrator owns the label, the bar and the callback.
ProgressFactory = Callable[[int], Progress]


class BaselineRunner:
    """One classical baseline, run per slice or (volumetric methods) on the whole volume.

    Args:
        name: a key of :data:`~meddenoiselib.baselines.BASELINES`.

    Raises:
        OptionError: the baseline needs an optional package that is not installed.
    """

    def __init__(self, name: str) -> None:
        self.spec: BaselineSpec = BASELINES[name]
        if not self.spec.available():
            raise OptionError(
                f"method '{name}' needs an optional package that is not installed ({self.spec.licence_note})",
                parameter="method",
            )

    @property
    def needs_sigma(self) -> bool:
        """Whether the baseline uses a noise level."""
        return self.spec.needs_sigma

    def run(
        self,
        normalized: np.ndarray,
        sigma: float,
        axis: int,
        estimate: NoiseEstimate | None,
        progress: ProgressFactory,
        check_cancel: Callable[[], None],
    ) -> np.ndarray:
        """Denoise a normalized volume.

        Args:
            normalized: ``(Z, Y, X)`` float32, nominally in [0, 1].
            sigma: noise standard deviation in the same normalized units.
            axis: the array axis along which per-slice methods run.
            estimate: the noise estimate; when it found correlated noise, methods that accept a noise power
                spectrum (BM3D) are given it for the slice shape.
            progress: makes the progress counter for a number of units.
            check_cancel: raises when the run was cancelled; called between slices.

        Returns:
            The denoised volume, same shape.
        """
        function = self.spec.function
        if self.spec.volumetric and normalized.shape[0] > 1:
            with progress(1) as counter:
                result = function(normalized, sigma)
                counter.update()
            return result
        moved = np.moveaxis(normalized, axis, 0)
        output = np.empty_like(moved)
        psd = (
            estimate.psd(moved.shape[1:])
            if self.spec.takes_psd and estimate is not None and estimate.correlated
            else None
        )
        with progress(moved.shape[0]) as counter:
            for k in range(moved.shape[0]):
                check_cancel()
                output[k] = function(moved[k], sigma) if psd is None else function(moved[k], sigma, psd=psd)
                counter.update()
        return np.moveaxis(output, 0, axis)
