"""Annotated heatmaps for the "Why it works" walkthrough (tiny grids, every value written in its cell)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

_PANEL = 2.2  # inches per panel side


class Walkthrough(Protocol):
    """What the step figures read (``foldscope_app.workbench.why_math.Walkthrough`` has it): the input, each step's
    arrays, (H, W, C) per image, and the max abs diff of each claimed equality."""

    x: np.ndarray
    padding: str
    crops: tuple[tuple[int, int], tuple[int, int]]
    stamps: np.ndarray
    scatter_output: np.ndarray
    conv_input: np.ndarray
    conv_kernel: np.ndarray
    conv_output: np.ndarray
    diff_scatter_vs_conv: float
    bn_output: np.ndarray
    bn_kernel: np.ndarray
    bn_bias: np.ndarray
    bn_1x1_output: np.ndarray
    diff_bn_vs_1x1: float
    folded_kernel: np.ndarray
    folded_bias: np.ndarray
    folded_output: np.ndarray
    diff_folded_vs_bn: float


class Counterexample(Protocol):
    """What a counter-example figure reads: the true output, the naive fold's, their max abs diff."""

    reference: np.ndarray
    naive: np.ndarray
    max_abs_diff: float


class BnBeforeCounterexample(Counterexample, Protocol):
    """A BN before the TConv, with the tap count of each output pixel and the shift it receives."""

    tap_count: np.ndarray
    shift_map: np.ndarray


class PaddedCounterexample(Counterexample, Protocol):
    """A BN before a zero-padded convolution, with the taps that read the input at each pixel and the
    shift's response the padding takes away."""

    real_taps: np.ndarray
    border: np.ndarray


def annotated_grid(ax: Axes, array: np.ndarray, title: str, fmt: str = "{:.3g}") -> Figure:
    """Draw a 2-D array as a diverging heatmap with each value written in its cell."""
    grid = np.atleast_2d(np.asarray(array, dtype=np.float64))
    if grid.ndim != 2:
        raise ValueError(f"Expected a 2-D array to draw. Received: shape={grid.shape}")
    limit = float(np.max(np.abs(grid))) or 1.0
    ax.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit)
    for (i, j), value in np.ndenumerate(grid):
        # Dark text on pale cells, white on saturated ones.
        color = "white" if abs(value) > 0.6 * limit else "black"
        # Rounding noise (1e-15 next to values of order 1) reads as zero, not as a long number.
        text = "0" if abs(value) < 1e-9 * limit else fmt.format(value)
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax.figure


def _axes(count: int, axes: Sequence[Axes] | None, ncols: int) -> list[Axes]:
    """The caller's axes (exactly ``count``), or a new Figure's grid of ``count`` panels."""
    if axes is not None:
        if len(axes) != count:
            raise ValueError(f"This figure needs {count} axes. Received: {len(axes)}")
        return list(axes)
    ncols = max(1, min(ncols, count))
    nrows = -(-count // ncols)
    fig = Figure(figsize=(_PANEL * ncols, _PANEL * nrows), layout="constrained")
    return [fig.add_subplot(nrows, ncols, n + 1) for n in range(count)]


def stamps_figure(w: Walkthrough, out_channel: int = 0, axes: Sequence[Axes] | None = None) -> Figure:
    """Step 1: one stamp per input pixel and channel, their sum on the full canvas (TF's crop
    window outlined), and the cropped TConv output."""
    h, wd, cin = w.x.shape
    panels = _axes(h * wd * cin + 2, axes, ncols=max(h * wd, 2))
    for n, (i, j, c) in enumerate(np.ndindex(h, wd, cin)):
        annotated_grid(panels[n], w.stamps[i, j, c, :, :, out_channel], f"x[{i},{j},{c}]={w.x[i, j, c]:.3g} · W")
    canvas = w.stamps.sum(axis=(0, 1, 2))[:, :, out_channel]
    annotated_grid(panels[-2], canvas, "sum of stamps")
    (top, _), (left, _) = w.crops
    out_h, out_w = w.scatter_output.shape[:2]
    panels[-2].add_patch(
        Rectangle((left - 0.5, top - 0.5), out_w, out_h, fill=False, edgecolor="black", linewidth=2, linestyle="--")
    )
    annotated_grid(panels[-1], w.scatter_output[:, :, out_channel], f"TConv output ({w.padding}, crop)")
    return panels[0].figure


def conv_figure(w: Walkthrough, out_channel: int = 0, axes: Sequence[Axes] | None = None) -> Figure:
    """Step 2: zero-inserted, padded input and flipped kernel per input channel, and the conv result."""
    cin = w.x.shape[2]
    panels = _axes(2 * cin + 1, axes, ncols=2 * cin + 1)
    for c in range(cin):
        annotated_grid(panels[2 * c], w.conv_input[:, :, c], f"zero-inserted, padded x[..., {c}]")
        annotated_grid(panels[2 * c + 1], w.conv_kernel[:, :, c, out_channel], f"flipped W[..., {out_channel}, {c}]")
    annotated_grid(panels[-1], w.conv_output[:, :, out_channel], f"conv = scatter (diff {w.diff_scatter_vs_conv:.1e})")
    return panels[0].figure


def bn_1x1_figure(w: Walkthrough, out_channel: int = 0, axes: Sequence[Axes] | None = None) -> Figure:
    """Step 3: BN as a 1x1 conv: the diagonal kernel diag(s), the bias t, and the result."""
    panels = _axes(3, axes, ncols=3)
    annotated_grid(panels[0], w.bn_kernel[0, 0], "1x1 kernel diag(s)")
    annotated_grid(panels[1], w.bn_bias[None, :], "bias t")
    annotated_grid(panels[2], w.bn_1x1_output[:, :, out_channel], f"1x1 conv = BN (diff {w.diff_bn_vs_1x1:.1e})")
    return panels[0].figure


def fold_figure(w: Walkthrough, out_channel: int = 0, axes: Sequence[Axes] | None = None) -> Figure:
    """Step 4: folded kernel (per input channel) and bias, folded output, TConv -> BN output, |diff|."""
    cin = w.x.shape[2]
    panels = _axes(cin + 4, axes, ncols=cin + 4)
    for c in range(cin):
        annotated_grid(panels[c], w.folded_kernel[:, :, out_channel, c], f"W·s [..., {out_channel}, {c}]")
    annotated_grid(panels[cin], w.folded_bias[None, :], "b·s + t")
    annotated_grid(panels[cin + 1], w.folded_output[:, :, out_channel], "folded TConv")
    annotated_grid(panels[cin + 2], w.bn_output[:, :, out_channel], "TConv -> BN")
    diff = np.abs(w.folded_output - w.bn_output)[:, :, out_channel]
    annotated_grid(panels[cin + 3], diff, f"|diff| (max {w.diff_folded_vs_bn:.1e})", fmt="{:.0e}")
    return panels[0].figure


def counterexample_figure(c: Counterexample, out_channel: int = 0, axes: Sequence[Axes] | None = None) -> Figure:
    """Step 5: the true output, the naive fold's output, and |diff|."""
    panels = _axes(3, axes, ncols=3)
    _draw_counterexample(panels, c, out_channel)
    return panels[0].figure


def bn_before_figure(c: BnBeforeCounterexample, out_channel: int = 0, axes: Sequence[Axes] | None = None) -> Figure:
    """Step 5, BN before the TConv: the tap-count map, the shift it produces, then as ``counterexample_figure``."""
    panels = _axes(5, axes, ncols=5)
    annotated_grid(panels[0], c.tap_count, "taps reaching each pixel")
    annotated_grid(panels[1], c.shift_map[:, :, out_channel], "TConv(shift t)")
    _draw_counterexample(panels[2:], c, out_channel)
    return panels[0].figure


def padding_figure(c: PaddedCounterexample, out_channel: int = 0, axes: Sequence[Axes] | None = None) -> Figure:
    """Step 5, BN before a zero-padded convolution: how many taps read the input at each pixel, what the
    padding takes away of the shift's response (zero inside), then as ``counterexample_figure``."""
    panels = _axes(5, axes, ncols=5)
    annotated_grid(panels[0], c.real_taps, "taps reading the input")
    annotated_grid(panels[1], c.border[:, :, out_channel], "W·t on padded taps")
    _draw_counterexample(panels[2:], c, out_channel)
    return panels[0].figure


def _draw_counterexample(panels: Sequence[Axes], c: Counterexample, out_channel: int) -> None:
    annotated_grid(panels[0], c.reference[:, :, out_channel], "true output")
    annotated_grid(panels[1], c.naive[:, :, out_channel], "naive fold")
    annotated_grid(panels[2], np.abs(c.reference - c.naive)[:, :, out_channel], f"|diff| (max {c.max_abs_diff:.3g})")
