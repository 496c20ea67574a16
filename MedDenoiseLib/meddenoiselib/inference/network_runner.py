"""Runs a trained network over a normalized volume: slices or 3D windows, bursts, noise map, halos, ensemble."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError, OptionError
from .allocator import freed_memory_kept
from .baseline_runner import ProgressFactory
from .device import autocast_dtype, autocast_forward
from .sliding import HaloPredictor, build_inferer, count_windows, halo_for

__all__ = ["NetworkRunner", "GEOMETRIC_TRANSFORMS", "load_network"]

#: the in-plane (flip last axis?, quarter turns) views of the self-ensemble in the order they are used:
#: 2 = identity + half turn, 4 = the four rotations, 8 = the four rotations with and without a flip.
GEOMETRIC_TRANSFORMS = ((False, 0), (False, 2), (False, 1), (False, 3), (True, 0), (True, 2), (True, 1), (True, 3))


def load_network(name: str, weights: str | Path | None, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Load a shipped model by name, or ``weights`` (a ``.safetensors`` file with its card), onto ``device``.

    Returns:
        ``(model in eval mode, model card)``.

    Raises:
        OptionError: ``name`` is not a shipped model (the message lists the choices) or has no shipped weights.
    """
    from ..baselines import BASELINES
    from ..networks import get_network_spec
    from ..weights import list_shipped_weights, load_pretrained

    if weights is None and name not in list_shipped_weights():
        try:
            get_network_spec(name)
        except ValueError:
            choices = ", ".join(list_shipped_weights() + sorted(BASELINES))
            raise OptionError(f"unknown model '{name}'; choose one of: {choices}", parameter="method") from None
        raise OptionError(
            f"model '{name}' has no shipped weights; train it and give its .safetensors file as weights, or pick a "
            "shipped model",
            parameter="method",
        )
    return load_pretrained(weights if weights is not None else name, device=device)


class NetworkRunner:
    """A loaded network and how to run it: sliding windows with real-image halos over slices (2D models, with the
    adjacent slices as a burst where the model takes one) or over the volume (3D models).

    Args:
        model: the network, in eval mode on ``device``.
        card: its model card (``architecture``: ``spatial_dims``, ``burst``, ``noise_map``, ``network``).
        device: where windows are computed.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (see :func:`~.device.autocast_dtype`).
        roi_size: window edge per axis, or None for the network's preset.
        overlap: window overlap fraction in [0, 1).
        sw_batch_size: windows per forward pass.
        batch_slices: slices per batch for 2D models.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        card: dict[str, Any],
        device: torch.device,
        precision: str = "auto",
        roi_size: int | tuple[int, ...] | None = None,
        overlap: float = 0.25,
        sw_batch_size: int = 4,
        batch_slices: int = 2,
    ) -> None:
        self.model, self.card, self.device = model, card, device
        architecture = card["architecture"]
        self.spatial_dims = int(architecture.get("spatial_dims", 2))
        self.burst = int(architecture.get("burst", 1))
        self.noise_map = bool(architecture.get("noise_map", False))
        self.receptive_field = getattr(model, "receptive_field", None)
        self.size_multiple = int(getattr(model, "size_multiple", 1))
        self.autocast = autocast_dtype(device, precision)
        self.roi_size, self.overlap = roi_size, float(overlap)
        self.sw_batch_size, self.batch_slices = int(sw_batch_size), int(batch_slices)

    @property
    def needs_sigma(self) -> bool:
        """Whether the network takes a noise-level map (else it is blind)."""
        return self.noise_map

    def run(
        self,
        normalized: np.ndarray,
        sigma: float | None,
        axis: int,
        progress: ProgressFactory,
        check_cancel: Callable[[], None],
        burst: np.ndarray | None = None,
        views: int = 1,
        neighbour_shift: tuple[float, float] | None = None,
    ) -> np.ndarray:
        """Denoise a normalized volume.

        Args:
            normalized: ``(Z, Y, X)`` float32, nominally in [0, 1] (a single slice is ``(1, Y, X)``).
            sigma: noise level for noise-map networks (normalized units), else ignored.
            axis: the array axis along which a 2D network runs.
            progress: makes the progress counter for a number of units (slices, or 3D windows).
            check_cancel: raises when the run was cancelled; called between batches and windows.
            burst: ``(B, Z, Y, X)`` frames to give a burst model instead of the adjacent slices (the same slice
                of adjacent frames of a 4D series). Defaults to None.
            views: geometric views averaged (1, 2, 4 or 8; the caller's self-ensemble). Defaults to 1.
            neighbour_shift: for a burst model reading adjacent slices along ``axis`` 0 of a sheared grid (a CT
                taken on a tilted gantry), the in-plane part of the step from one slice to the next, in pixels (rows,
                columns): the slice ``d`` steps away is moved by ``d`` times it, in whole pixels, so that each pixel
                of the burst's frames lies on the centre slice pixel's normal, as on an orthogonal grid (no
                interpolation: the noise stays as it is). None: the slices as stored.

        Returns:
            The denoised volume, float32, same shape.

        Raises:
            InputError: a 3D network was given a single slice.
        """
        if self.spatial_dims == 3:
            if min(normalized.shape) < 2:
                name = self.card.get("name", "this model")
                raise InputError(f"model '{name}' is a 3D network; it cannot denoise a 2D image")
            return self._run_3d(normalized, sigma, progress, check_cancel, views)
        shift = neighbour_shift if axis == 0 and burst is None and self.burst > 1 else None
        return self._run_2d(normalized, sigma, axis, progress, check_cancel, burst, views, shift)

    def forward(self, views: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
        """The window forward: autocast + channels-last, averaged over ``views`` geometric views."""
        model, device, dtype = self.model, self.device, self.autocast

        def forward_once(batch: torch.Tensor) -> torch.Tensor:
            return autocast_forward(model, batch, device, dtype)

        if views == 1:
            return forward_once
        transforms = GEOMETRIC_TRANSFORMS[:views]

        def forward(batch: torch.Tensor) -> torch.Tensor:
            total = None
            for flip, turns in transforms:
                view = torch.rot90(batch.flip(-1) if flip else batch, turns, dims=(-2, -1))
                result = torch.rot90(forward_once(view), -turns, dims=(-2, -1))
                result = result.flip(-1) if flip else result
                total = result if total is None else total + result
            return total / len(transforms)

        return forward

    def roi(self, dims: int) -> tuple[int, ...]:
        """The window size for ``dims`` spatial dimensions (the network's preset when ``roi_size`` is None)."""
        if self.roi_size is None:
            from ..networks import get_network_spec

            try:
                default = get_network_spec(self.card["architecture"]["network"]).default_roi
                edge = default[0] if dims == 2 else default[1]
            except (KeyError, ValueError):
                edge = 512 if dims == 2 else 64
            return (edge,) * dims
        if isinstance(self.roi_size, (int, np.integer)):
            return (int(self.roi_size),) * dims
        roi = tuple(int(v) for v in self.roi_size)
        if len(roi) == 1:
            return roi * dims
        if len(roi) != dims:
            raise OptionError(
                f"roi_size needs 1 or {dims} values for this {dims}D model, got {len(roi)}", parameter="roi_size"
            )
        return roi

    def inputs(self, slices: np.ndarray, sigma: float | None) -> torch.Tensor:
        """A batch's channels ``(N, burst [+ 1], *spatial)``: the burst frames (or the slice), then the noise map."""
        channels = [torch.from_numpy(np.ascontiguousarray(slices))]
        if self.noise_map:
            level = 0.0 if sigma is None else float(sigma)
            channels.append(torch.full_like(channels[0][:, :1], level))
        return torch.cat(channels, dim=1)

    def _inferer(self, shape: tuple[int, ...], dims: int):
        return build_inferer(
            shape,
            self.roi(dims),
            self.overlap,
            self.sw_batch_size,
            self.size_multiple,
            sw_device=self.device,
            device="cpu",
        )

    def _run_2d(self, normalized, sigma, axis, progress, check_cancel, burst, views, shift=None) -> np.ndarray:
        moved = np.moveaxis(normalized, axis, 0)
        burst_moved = None if burst is None else np.moveaxis(burst, axis + 1, 1)  # (B, slices, H, W)
        count = moved.shape[0]
        output = np.empty_like(moved)
        inferer = self._inferer(moved.shape[1:], 2)
        halo = halo_for(self.receptive_field, inferer.roi_size)
        half = self.burst // 2
        forward = self.forward(views)
        with progress(count) as counter, torch.inference_mode(), freed_memory_kept():
            for start in range(0, count, self.batch_slices):
                check_cancel()
                stop = min(start + self.batch_slices, count)
                if burst_moved is not None:
                    # the same slice of adjacent frames (4D series) as channels, centre frame in the middle
                    frames = np.ascontiguousarray(np.moveaxis(burst_moved[:, start:stop], 0, 1))
                elif self.burst > 1:
                    # adjacent slices as channels, centre slice in the middle; the volume's ends repeat
                    frames = np.stack([_adjacent_slices(moved, k, half, shift) for k in range(start, stop)])
                else:
                    frames = moved[start:stop, np.newaxis]
                inputs = self.inputs(frames, sigma)
                result = inferer(inputs, HaloPredictor(forward, inputs, halo))
                output[start:stop] = result[:, 0].cpu().numpy()
                counter.update(stop - start)
        return np.moveaxis(output, 0, axis)

    def _run_3d(self, normalized, sigma, progress, check_cancel, views) -> np.ndarray:
        inputs = self.inputs(normalized[np.newaxis, np.newaxis], sigma)
        inferer = self._inferer(normalized.shape, 3)
        windows = count_windows(normalized.shape, inferer.roi_size, inferer.overlap)
        halo = halo_for(self.receptive_field, inferer.roi_size)
        with progress(windows) as counter, torch.inference_mode(), freed_memory_kept():

            def on_window(units: int) -> None:
                check_cancel()
                counter.update(units)

            result = inferer(inputs, HaloPredictor(self.forward(views), inputs, halo, on_window=on_window))
        return result[0, 0].cpu().numpy()


def _adjacent_slices(slices: np.ndarray, k: int, half: int, shift: tuple[float, float] | None) -> np.ndarray:
    """``(2 * half + 1, H, W)``: slices ``k - half .. k + half`` of ``(Z, H, W)`` (the ends repeated), each moved by
    its offset from ``k`` times ``shift`` (rows, columns per slice; rounded to whole pixels, edges repeated): the
    pixel on the normal of slice ``k``'s pixel ``(j, i)`` in the slice ``d`` away is its ``(j - d * rows, i - d *
    columns)``."""
    indices = np.clip(np.arange(k - half, k + half + 1), 0, slices.shape[0] - 1)
    if shift is None:
        return slices[indices]
    frames = []
    for index in indices:
        rows, columns = (int(round((index - k) * step)) for step in shift)
        frames.append(_moved(slices[index], rows, columns))
    return np.stack(frames)


def _moved(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """``image`` ``(H, W)`` moved by whole pixels: ``out[j, i] = image[j - rows, i - columns]``, edges repeated."""
    if rows == 0 and columns == 0:
        return image
    height, width = image.shape
    padded = np.pad(image, ((max(rows, 0), max(-rows, 0)), (max(columns, 0), max(-columns, 0))), mode="edge")
    top, left = max(-rows, 0), max(-columns, 0)
    return padded[top : top + height, left : left + width]
