"""The strength slider: re-blend a finished result with its input, live, without denoising again.

A run always computes the full-strength result. :class:`LiveBlend` keeps it with a copy of the input and writes
``meddenoiselib.blend.blend(input, result, strength)`` into the output node(s) (and input minus output into the
residual node(s), its local standard deviation into the noise map node(s)) whenever the strength changes.
``meddenoiselib.blend`` and ``meddenoiselib.noise_map`` are numpy and scipy only, so moving the slider never loads
torch into Slicer. The copies are released with :meth:`LiveBlend.release` (new run, scene close).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import slicer

__all__ = ["LiveBlend"]


class LiveBlend:
    """Input and full-strength result of one run, and the nodes that show their blend.

    Args:
        noisy: the input voxels, one array per output node (one per frame for a sequence).
        denoised: the full-strength result, same shapes and dtypes.
        outputs: the nodes that show the blend (output volume, or the items of the output sequence).
        residuals: nodes for input minus output (float32), or None.
        noise_maps: nodes for the local standard deviation of input minus output (float32), or None. The blend's
            residual is ``strength`` times the full one, so its map is ``strength`` times the full map, computed
            once here.
        after_update: called after the nodes changed (e.g. refresh a sequence browser's proxies).
    """

    def __init__(
        self,
        noisy: list[np.ndarray],
        denoised: list[np.ndarray],
        outputs: list,
        residuals: list | None = None,
        after_update: Callable[[], None] | None = None,
        noise_maps: list | None = None,
    ) -> None:
        if not (len(noisy) == len(denoised) == len(outputs)) or any(
            extra and len(extra) != len(outputs) for extra in (residuals, noise_maps)
        ):
            raise ValueError("one input, result and output node per frame")
        self.noisy = noisy
        self.denoised = denoised
        self.outputs = outputs
        self.residuals = residuals
        self.noise_maps = noise_maps
        self.full_maps = None
        if noise_maps:
            from meddenoiselib.blend import residual
            from meddenoiselib.noise_map import residual_noise_map

            # Slicer arrays are (Z, Y, X) or (Z, Y, X, C) for vector volumes
            self.full_maps = [
                residual_noise_map(residual(n, d), components=n.ndim == 4) for n, d in zip(noisy, denoised)
            ]
        self.after_update = after_update
        self.strength: float | None = None

    @property
    def released(self) -> bool:
        return self.noisy is None

    def apply(self, strength: float) -> None:
        """Write the blend at ``strength`` (0 = input, 1 = full denoising) into the output and residual nodes."""
        from meddenoiselib.blend import blend, residual

        if self.released:
            return
        for index, (noisy, full, node) in enumerate(zip(self.noisy, self.denoised, self.outputs)):
            blended = blend(noisy, full, strength)
            slicer.util.updateVolumeFromArray(node, blended)
            if self.residuals:
                slicer.util.updateVolumeFromArray(self.residuals[index], residual(noisy, blended))
            if self.noise_maps:
                slicer.util.updateVolumeFromArray(self.noise_maps[index], np.float32(strength) * self.full_maps[index])
        self.strength = float(strength)
        if self.after_update is not None:
            self.after_update()

    def release(self) -> None:
        """Drop the kept copies (the nodes keep showing the last blend)."""
        self.noisy = self.denoised = self.full_maps = None
