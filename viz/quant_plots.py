"""The quantization view's figures: per-layer SQNR bars and per-channel weight ranges with the int8 step.

Data in, ``matplotlib.figure.Figure`` out; no Streamlit, no Keras.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

#: The four per-layer figures, their legend labels and colours, in the order drawn.
SERIES = (
    ("per_tensor_before", "per tensor, BN in float", "#7f7f7f"),
    ("per_tensor_after", "per tensor, folded", "#d62728"),
    ("per_channel_after", "per channel, folded", "#2ca02c"),
    ("per_tensor_after_cle", "per tensor, folded + CLE", "#1f77b4"),
)
SCALE_SETTER = "#d62728"
QMAX = 127


def plot_sqnr(layers: Sequence[str], sqnr_db: Mapping[str, Sequence[float | None]], *, ax: Axes | None = None,
              title: str | None = None) -> Figure:
    """Grouped bars: the mean per-channel SQNR (dB) of each layer's int8 kernel, four ways.

    A figure that does not apply (None) leaves its bar out.
    """
    if ax is None:
        fig = Figure(figsize=(max(7.0, 0.9 * len(layers) + 2), 3.8))
        ax = fig.add_subplot()
    x = np.arange(len(layers))
    width = 0.8 / len(SERIES)
    for k, (key, label, color) in enumerate(SERIES):
        values = np.array([np.nan if v is None else v for v in sqnr_db.get(key, [None] * len(layers))], dtype=float)
        given = ~np.isnan(values)
        if not given.any():
            continue
        bars = ax.bar(x[given] + (k - (len(SERIES) - 1) / 2) * width, values[given], width, label=label, color=color,
                      gid=key)
        if len(layers) <= 8:
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    ax.set_xticks(x, [str(n) for n in layers], rotation=30 if len(layers) > 4 else 0, ha="right" if len(layers) > 4
                  else "center", fontsize=8)
    ax.set_ylabel("SQNR (dB), mean over channels")
    ax.axhline(0, color="0.3", linewidth=0.8)
    _legend_and_title(ax, title)
    return ax.figure


def _legend_and_title(ax: Axes, title: str | None) -> None:
    """The title above the axes, the legend in one row above the title's line (never over the bars)."""
    entries = len(ax.get_legend_handles_labels()[0])
    if entries:
        ax.legend(fontsize=7, ncol=entries if entries <= 4 else 3, loc="lower left", bbox_to_anchor=(0, 1.0),
                  frameon=False)
    if title:
        ax.figure.suptitle(title, fontsize=9)
    ax.figure.tight_layout()


def plot_ranges(peaks: np.ndarray, equalized: np.ndarray | None = None, *, ax: Axes | None = None,
                title: str | None = None) -> Figure:
    """Each output channel's max |w| of the folded kernel (log scale), with the channels that set
    the per-tensor int8 scale marked and the height of one int8 step (a channel whose weights
    all lie under half a step quantizes to zeros). ``equalized`` adds the same after
    cross-layer equalization. Up to ``BAR_CHANNELS`` channels are bars, more are dots."""
    peaks = np.asarray(peaks, dtype=np.float64)
    if ax is None:
        fig = Figure(figsize=(min(14.0, max(7.0, 0.12 * peaks.size + 2)), 3.4))
        ax = fig.add_subplot()
    channels = np.arange(peaks.size)
    setters = peaks >= peaks.max() * (1 - 1e-12) if peaks.size else np.zeros(0, bool)
    pair = equalized is not None
    _channels(ax, channels[~setters], peaks[~setters], "#9ecae1", "max |w| per channel, folded", "peaks",
              peaks.size, pair, 0)
    _channels(ax, channels[setters], peaks[setters], SCALE_SETTER, "sets the per-tensor scale", "setters",
              peaks.size, pair, 0)
    if peaks.size and peaks.max() > 0:
        ax.axhline(peaks.max() / QMAX, color=SCALE_SETTER, linestyle="--", linewidth=1,
                   label="one int8 step (per tensor)")
    if pair:
        eq = np.asarray(equalized, dtype=np.float64)
        _channels(ax, channels, eq, "#1f77b4", "after cross-layer equalization", "equalized", peaks.size, pair, 1)
        if eq.size and eq.max() > 0:
            ax.axhline(eq.max() / QMAX, color="#1f77b4", linestyle=":", linewidth=1, label="one int8 step after CLE")
    if np.any(peaks > 0):
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("output channel")
    ax.set_ylabel("max |w|")
    _legend_and_title(ax, title)
    return ax.figure


#: Above this many channels, a range plot draws dots instead of bars (bars would be thinner than a pixel).
BAR_CHANNELS = 96


def _channels(ax: Axes, x: np.ndarray, heights: np.ndarray, color: str, label: str, gid: str, total: int,
              pair: bool, slot: int) -> None:
    """One series of per-channel heights: bars (two side by side per channel when ``pair``), or dots."""
    if total > BAR_CHANNELS:
        size = 8 if gid == "setters" else 3 if slot == 0 else 2
        ax.plot(x, heights, ".", markersize=size, color=color, label=label, gid=gid)
        return
    width = 0.4 if pair else 0.8
    offset = (slot - 0.5) * width if pair else 0.0
    ax.bar(x + offset, heights, width, color=color, label=label, gid=gid)
