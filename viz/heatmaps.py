"""One output slice of the original and the folded model side by side, and where they differ."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def select_slice(output: np.ndarray, sample: int = 0, channel: int = 0, channel_axis: int = -1) -> np.ndarray:
    """One sample's channel of a batched output as a 2-D array.

    (N, W, C) gives a (1, W) row, (N, H, W, C) an (H, W) image, (N, D, H, W, C) the middle
    depth slice. A Dense output (N, C) gives the sample's whole channel vector as a (1, C) row,
    since one value is no picture. ``channel_axis`` says where C is (1 for channels_first).
    """
    array = np.asarray(output)
    if array.ndim < 2:
        raise ValueError(f"Expected a batched output of rank 2 to 5. Received: shape={array.shape}")
    if array.ndim == 2:
        return array[sample][None, :]
    picked = np.moveaxis(array, channel_axis, -1)[sample, ..., channel]
    while picked.ndim > 2:
        picked = picked[picked.shape[0] // 2]
    return np.atleast_2d(picked)


def _as_image(array: np.ndarray, name: str) -> np.ndarray:
    """A scalar, (W,) or (H, W) array as a float64 image."""
    image = np.atleast_2d(np.asarray(array, dtype=np.float64))
    if image.ndim != 2:
        raise ValueError(f"`{name}` must be a scalar, (W,) or (H, W) array; use select_slice first. "
                         f"Received: shape={np.shape(array)}")
    return image


def _aspect(shape: tuple[int, int]) -> str:
    """Square pixels unless the image is a strip, which would then be a sliver."""
    return "equal" if max(shape) <= 4 * min(shape) else "auto"


def _panels(axes: Sequence[Axes] | None) -> list[Axes]:
    if axes is not None:
        if len(axes) != 3:
            raise ValueError(f"plot_heatmaps draws 3 panels. Received: {len(axes)} axes")
        return list(axes)
    return list(Figure(figsize=(12, 3.8), layout="constrained").subplots(1, 3))


def plot_heatmaps(original: np.ndarray, folded: np.ndarray, *, title: str | None = None,
                  axes: Sequence[Axes] | None = None) -> Figure:
    """Original and folded output on one shared colour scale, then |original - folded| on its own."""
    a, b = _as_image(original, "original"), _as_image(folded, "folded")
    if a.shape != b.shape:
        raise ValueError(f"original and folded must have the same shape. Received: {a.shape} and {b.shape}")
    diff = np.abs(a - b)
    worst = float(np.nanmax(diff)) if diff.size else 0.0
    vmin, vmax = float(np.nanmin([a, b])), float(np.nanmax([a, b]))
    left, middle, right = _panels(axes)
    for ax, image, name in ((left, a, "original"), (middle, b, "folded")):
        shared = ax.imshow(image, cmap="viridis", vmin=vmin, vmax=vmax, aspect=_aspect(image.shape))
        ax.set_title(name, fontsize=9)
    for ax in (left, middle, right):
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    # A zero difference still needs a non-empty colour range.
    spread = right.imshow(diff, cmap="magma", vmin=0.0, vmax=max(worst, np.finfo(np.float64).tiny),
                          aspect=_aspect(diff.shape))
    right.set_title(f"|original − folded|, max {worst:.3g}", fontsize=9)
    fig = left.figure
    fig.colorbar(shared, ax=[left, middle], shrink=0.85)
    fig.colorbar(spread, ax=right, shrink=0.85)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_vectors(original: np.ndarray, folded: np.ndarray, *, title: str | None = None,
                 axes: Sequence[Axes] | None = None) -> Figure:
    """A 1-D output (Dense, softmax) of both models as curves on one axis, then |original - folded|."""
    a, b = np.ravel(np.asarray(original, dtype=np.float64)), np.ravel(np.asarray(folded, dtype=np.float64))
    if a.shape != b.shape:
        raise ValueError(f"original and folded must have the same shape. Received: {a.shape} and {b.shape}")
    if axes is None:
        fig = Figure(figsize=(9, 4.2), layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True)
    else:
        top, bottom = axes
    x = np.arange(a.size)
    top.plot(x, a, color="#1f77b4", linewidth=1.2, label="original", gid="original")
    top.plot(x, b, color="#ff7f0e", linewidth=1.0, linestyle="--", label="folded", gid="folded")
    top.legend(fontsize=8, loc="upper right")
    diff = np.abs(a - b)
    bottom.plot(x, diff, color="#d62728", linewidth=1.0, gid="difference")
    bottom.set_title(f"|original − folded|, max {float(np.max(diff)) if diff.size else 0.0:.3g}", fontsize=9)
    bottom.set_xlabel("channel", fontsize=8)
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    fig = top.figure
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
