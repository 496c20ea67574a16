"""Comparison figures (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["comparison_figure"]


def comparison_figure(
    panels: Sequence[tuple[str, np.ndarray]],
    path: str | Path,
    crop: tuple[slice, slice] | None = None,
    title: str = "",
    columns: int | None = None,
) -> Path:
    """Save a row (or grid) of grayscale panels with the same crop and the same display range.

    Args:
        panels: ``(label, 2D image in [0, 1])`` pairs, e.g. noisy, each method, clean.
        path: output PNG.
        crop: ``(rows, cols)`` slices applied to every panel. Defaults to the whole image.
        title: figure title. Defaults to none.
        columns: panels per row. Defaults to all in one row (up to 6).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(panels)
    columns = columns or min(count, 6)
    rows = int(np.ceil(count / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.8 * rows), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, (label, image) in zip(axes.ravel(), panels, strict=False):
        view = image[crop] if crop is not None else image
        axis.imshow(view, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        axis.set_title(label, fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    from ..io.atomic import atomic_file

    path = Path(path)
    try:
        with atomic_file(path, suffix=".png") as temporary:
            figure.savefig(temporary, dpi=110, format="png")
    finally:
        plt.close(figure)
    return path
