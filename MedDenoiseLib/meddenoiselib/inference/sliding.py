"""Receptive-field-aware sliding-window inference on MONAI's ``SlidingWindowInferer``.

A window's prediction is exact only where the network sees the same context it would see in the whole image.
MONAI cuts windows without context, so near a window's interior edges the prediction differs from a
whole-image pass and tiles can show seams. :class:`HaloPredictor` fixes this at the source: MONAI still places
the windows and blends them (Gaussian weights), but for each window the predictor runs the network on the window
*grown by a halo* of half the receptive field (clipped at the image border, where the image edge is the true
context) and returns only the window itself. For networks with a finite receptive field (DnCNN, RDN, DRAN's
convolutions) every window is then exact and the stitched result equals the whole-image result; for U-Nets,
whose receptive field is unbounded, the halo removes visible seams.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.inferers import SlidingWindowInferer

from ..errors import OptionError

__all__ = ["HaloPredictor", "build_inferer", "count_windows", "halo_for"]


def halo_for(receptive_field: int | None, roi_size: Sequence[int]) -> int:
    """Context to add around each window: half the receptive field, or an eighth of the window when unbounded."""
    if receptive_field:
        return int(receptive_field) // 2 + 1
    return max(8, min(int(s) for s in roi_size) // 8)


class HaloPredictor:
    """Predict a window from the window plus ``halo`` voxels of real image context on every side.

    Args:
        network: maps ``(N, C_in, *window)`` to ``(N, C_out, *window)``.
        inputs: the full input ``(B, C_in, *spatial)`` that the inferer is sliding over (the same tensor).
        halo: context width in voxels.
        on_window: called with the number of windows after each forward pass (progress reporting).
    """

    def __init__(
        self,
        network: Callable[[torch.Tensor], torch.Tensor],
        inputs: torch.Tensor,
        halo: int,
        on_window: Callable[[int], None] | None = None,
    ) -> None:
        self.network = network
        self.inputs = inputs
        self.halo = int(halo)
        self.on_window = on_window

    def __call__(self, window: torch.Tensor, locations: Sequence[Sequence[slice]]) -> torch.Tensor:
        spatial = self.inputs.shape[2:]
        grown, crops = [], []
        for location in locations:
            batch_slice, spatial_slices = location[0], location[2:]
            big, crop = [batch_slice, slice(None)], [slice(None), slice(None)]
            for s, size in zip(spatial_slices, spatial, strict=True):
                start, stop = max(s.start - self.halo, 0), min(s.stop + self.halo, size)
                big.append(slice(start, stop))
                crop.append(slice(s.start - start, s.start - start + (s.stop - s.start)))
            grown.append(self.inputs[tuple(big)])
            crops.append(tuple(crop))
        outputs: list[torch.Tensor | None] = [None] * len(grown)
        # windows away from the border share one grown shape: run those together
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, tensor in enumerate(grown):
            groups.setdefault(tuple(tensor.shape[2:]), []).append(index)
        for indices in groups.values():
            batch = torch.cat([grown[i] for i in indices]).to(window.device)
            prediction = self.network(batch)
            for row, i in enumerate(indices):
                outputs[i] = prediction[row : row + 1][crops[i]]
        if self.on_window is not None:
            self.on_window(len(locations))
        return torch.cat(outputs)  # type: ignore[arg-type]


def build_inferer(
    image_size: Sequence[int],
    roi_size: Sequence[int],
    overlap: float,
    sw_batch_size: int,
    size_multiple: int = 1,
    sw_device: torch.device | str | None = None,
    device: torch.device | str | None = None,
) -> SlidingWindowInferer:
    """A Gaussian-blending ``SlidingWindowInferer`` whose ROI fits inside the image.

    Args:
        image_size: spatial size of the images it will run on.
        roi_size: requested window size per axis; clamped to the image size, so MONAI never pads a window
            (padding would change the border context).
        overlap: fractional overlap in [0, 1).
        sw_batch_size: windows per forward pass.
        size_multiple: windows smaller than the image are rounded down to this multiple (for networks that pad
            to a multiple internally). Defaults to 1.
        sw_device: where windows are computed. Defaults to the input's device.
        device: where the full-size output is stitched. Defaults to the input's device.
    """
    if not 0 <= overlap < 1:
        raise OptionError(f"`overlap` must be in [0, 1), got {overlap}.", parameter="overlap")
    roi = []
    for image_edge, requested in zip(image_size, roi_size, strict=True):
        edge = min(int(requested), int(image_edge))
        if size_multiple > 1 and size_multiple <= edge < image_edge:
            edge -= edge % size_multiple
        roi.append(max(edge, 1))
    return SlidingWindowInferer(
        roi_size=roi,
        sw_batch_size=sw_batch_size,
        overlap=overlap,
        mode="gaussian",
        sw_device=sw_device,
        device=device,
        with_coord=True,
    )


def count_windows(image_size: Sequence[int], roi_size: Sequence[int], overlap: float) -> int:
    """How many windows MONAI places for this image, ROI and overlap (same rule as its scan interval)."""
    from monai.data.utils import dense_patch_slices

    interval = [
        int(roi) if int(roi) == int(size) else max(int(int(roi) * (1 - overlap)), 1)
        for size, roi in zip(image_size, roi_size, strict=True)
    ]
    return len(dense_patch_slices(tuple(int(s) for s in image_size), tuple(int(r) for r in roi_size), interval))
