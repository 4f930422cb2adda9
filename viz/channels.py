"""One folded pair per output channel: the BN's scale and shift, and the kernel's range before and after folding.

A tiny moving variance shows up here as one channel whose scale, and folded kernel range,
is orders of magnitude above the others; ``yscale="auto"`` then switches to symlog.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

SCALE_COLOR = "#1f77b4"
SHIFT_COLOR = "#ff7f0e"
BEFORE_COLOR = "#7f7f7f"
AFTER_COLOR = "#d62728"
_OUTLIER_RATIO = 1e3  # max |v| / median |v| beyond which "auto" picks symlog
#: Channels beyond which a bar per channel is unreadable: each panel becomes a sorted curve.
WIDE_CHANNELS = 256


def _finite(values: np.ndarray) -> np.ndarray:
    """float64 copy with NaN where values are not finite (matplotlib leaves those bars out)."""
    array = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(array), array, np.nan)


def _check_shapes(scale: np.ndarray, shift: np.ndarray, ranges: dict[str, np.ndarray]) -> None:
    if scale.ndim != 1 or shift.shape != scale.shape:
        raise ValueError(f"scale and shift must both have shape (C,). Received: {scale.shape} and {shift.shape}")
    for name, r in ranges.items():
        if r.shape != (scale.shape[0], 2):
            raise ValueError(f"`range_{name}` must have shape ({scale.shape[0]}, 2). Received: {r.shape}")


def _pick_yscale(values: np.ndarray) -> tuple[str, dict]:
    """symlog when a few values dwarf the rest (linear up to the median's decade, so ticks
    stay on powers of ten); else linear."""
    magnitude = np.abs(values[np.isfinite(values) & (values != 0)])
    if magnitude.size and magnitude.max() > _OUTLIER_RATIO * np.median(magnitude):
        return "symlog", {"linthresh": float(10.0 ** np.floor(np.log10(np.median(magnitude))))}
    return "linear", {}


def _apply_yscale(ax: Axes, values: np.ndarray, yscale: str) -> None:
    name, kwargs = _pick_yscale(values) if yscale == "auto" else (yscale, {})
    ax.set_yscale(name, **kwargs)
    ax.autoscale_view()


def _add_bars(ax: Axes, x: np.ndarray, bottom: np.ndarray, height: np.ndarray, width: float, color: str,
              label: str) -> None:
    """Finite bars as one PolyCollection with gid ``label``: ``ax.bar`` makes an artist per bar,
    which takes seconds for 2048 channels."""
    keep = np.isfinite(bottom) & np.isfinite(height)
    left, low, high = x[keep] - width / 2, bottom[keep], bottom[keep] + height[keep]
    corners = [(left, low), (left + width, low), (left + width, high), (left, high)]
    verts = np.stack([np.stack(corner, axis=1) for corner in corners], axis=1)  # (bars, 4, 2)
    ax.add_collection(PolyCollection(verts, facecolors=color, edgecolors="none", label=label, gid=label))


def _value_bars(ax: Axes, values: np.ndarray, label: str, color: str, yscale: str) -> None:
    _add_bars(ax, np.arange(values.shape[0], dtype=float), np.zeros_like(values), values, 0.8, color, label)
    ax.axhline(0.0, color="0.4", linewidth=0.6)
    ax.set_ylabel(label, fontsize=8)
    _apply_yscale(ax, values, yscale)


def _range_bars(ax: Axes, ranges: dict[str, np.ndarray], yscale: str) -> None:
    """Each channel's (min, max) as a floating bar, one bar per range side by side."""
    width = 0.8 / len(ranges)
    colors = {"before": BEFORE_COLOR, "after": AFTER_COLOR}
    for k, (name, r) in enumerate(ranges.items()):
        x = np.arange(r.shape[0]) - 0.4 + width * (k + 0.5)
        _add_bars(ax, x, r[:, 0], r[:, 1] - r[:, 0], width, colors[name], f"kernel {name} folding")
        # End marks keep a constant kernel (min == max, like the seed's all-ones one) visible.
        ends = np.concatenate([r[:, 0], r[:, 1]])
        ax.scatter(np.tile(x, 2), ends, marker="_", s=60, color=colors[name], linewidths=1.5)
    ax.axhline(0.0, color="0.4", linewidth=0.6)
    ax.set_ylabel("kernel range", fontsize=8)
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, frameon=False)
    _apply_yscale(ax, np.concatenate(list(ranges.values())).ravel(), yscale)


def _sorted_curve(ax: Axes, values: np.ndarray, label: str, color: str, yscale: str) -> None:
    """A wide layer's values sorted, one point per channel, the extreme channels named: what a bar
    per channel of 2048 cannot show (the shape of the spread, and which channel stands out)."""
    finite = np.flatnonzero(np.isfinite(values))
    order = finite[np.argsort(values[finite], kind="stable")]
    ax.plot(np.arange(order.size), values[order], color=color, linewidth=1.2, label=label, gid=label)
    for rank in dict.fromkeys((0, order.size - 1)) if order.size else ():
        channel = int(order[rank])
        ax.annotate(f"ch {channel}: {values[channel]:.3g}", (rank, values[channel]), fontsize=7, color=color,
                    xytext=(4 if rank == 0 else -4, 0), textcoords="offset points",
                    ha="left" if rank == 0 else "right", va="center")
    ax.axhline(0.0, color="0.4", linewidth=0.6)
    ax.set_ylabel(label, fontsize=8)
    _apply_yscale(ax, values, yscale)


def _sorted_ranges(ax: Axes, ranges: dict[str, np.ndarray], yscale: str) -> None:
    """A wide layer's kernel ranges as each channel's largest |weight|, sorted, before and after."""
    colors = {"before": BEFORE_COLOR, "after": AFTER_COLOR}
    for name, r in ranges.items():
        _sorted_curve(ax, np.nanmax(np.abs(r), axis=1), f"kernel {name} folding", colors[name], yscale)
    ax.set_ylabel("max |kernel|", fontsize=8)
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, frameon=False)


def _panels(count: int, channels: int, axes: Sequence[Axes] | None) -> list[Axes]:
    if axes is not None:
        if len(axes) != count:
            raise ValueError(f"This plot needs {count} axes. Received: {len(axes)}")
        return list(axes)
    width = 8 if channels > WIDE_CHANNELS else min(6 + channels / 40, 14)
    fig = Figure(figsize=(width, 2.0 * count + 0.6), layout="constrained")
    return list(fig.subplots(count, 1, sharex=True, squeeze=False)[:, 0])


def plot_channels(scale: np.ndarray, shift: np.ndarray, range_before: np.ndarray | None = None,
                  range_after: np.ndarray | None = None, *, title: str | None = None, yscale: str = "auto",
                  axes: Sequence[Axes] | None = None) -> Figure:
    """Per output channel: scale s = gamma/sqrt(var+eps), shift t = beta - mean*s, and the kernel's
    (min, max) range before / after folding when given ((C, 2) arrays).

    One panel each, stacked (pass that many ``axes`` to draw elsewhere). ``yscale`` is
    "linear", "symlog" or "auto". The bars of a panel are one PolyCollection whose gid is
    its label ("scale s", "shift t", "kernel before folding", "kernel after folding");
    non-finite values are left out. Beyond ``WIDE_CHANNELS`` channels each panel is a sorted curve
    (a Line2D of that gid) with its smallest and largest channel named.
    """
    s, t = _finite(scale), _finite(shift)
    ranges = {name: _finite(r) for name, r in (("before", range_before), ("after", range_after)) if r is not None}
    _check_shapes(s, t, ranges)
    panels = _panels(2 + bool(ranges), s.shape[0], axes)
    if s.shape[0] > WIDE_CHANNELS:
        _sorted_curve(panels[0], s, "scale s", SCALE_COLOR, yscale)
        _sorted_curve(panels[1], t, "shift t", SHIFT_COLOR, yscale)
        if ranges:
            _sorted_ranges(panels[2], ranges, yscale)
        panels[-1].set_xlabel(f"{s.shape[0]} output channels, each panel sorted by its value", fontsize=8)
        if title:
            panels[0].figure.suptitle(title, fontsize=10)
        return panels[0].figure
    _value_bars(panels[0], s, "scale s", SCALE_COLOR, yscale)
    _value_bars(panels[1], t, "shift t", SHIFT_COLOR, yscale)
    if ranges:
        _range_bars(panels[2], ranges, yscale)
    panels[-1].set_xlim(-0.6, s.shape[0] - 0.4)
    panels[-1].xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True, min_n_ticks=1))
    panels[-1].set_xlabel("output channel", fontsize=8)
    fig = panels[0].figure
    if title:
        fig.suptitle(title, fontsize=10)
    return fig



def channels_data(scale: np.ndarray, shift: np.ndarray, range_before: np.ndarray | None = None,
                  range_after: np.ndarray | None = None, *, title: str | None = None) -> dict:
    """``plot_channels``' panels as plain numbers, for ``viz/assets/channels.js`` to draw as SVG in the
    browser (the HTML report's chart: making it costs what its lists cost, where rendering the picture
    costs 0.4 s).

    ``{"title", "axis": the x axis' label, "panels": [{"label", "series": [{"name", "color", "kind",
    "channel", "low", "high"}]}]}``: one panel per ``plot_channels`` panel, each series named as its
    artist's gid. A "bar" series has a bar per channel from ``low`` (0 when None) to ``high``;
    beyond ``WIDE_CHANNELS`` channels a series is a "curve" of the panel's values sorted, ``channel``
    naming each point's channel (the script names the first and the last). Non-finite values are None
    (left out); ``title`` is text, shown as typed."""
    s, t = _finite(scale), _finite(shift)
    ranges = {name: _finite(r) for name, r in (("before", range_before), ("after", range_after)) if r is not None}
    _check_shapes(s, t, ranges)
    wide = s.shape[0] > WIDE_CHANNELS
    colors = {"before": BEFORE_COLOR, "after": AFTER_COLOR}
    panels = [{"label": "scale s", "series": [_series(s, "scale s", SCALE_COLOR, wide)]},
              {"label": "shift t", "series": [_series(t, "shift t", SHIFT_COLOR, wide)]}]
    if ranges:
        panels.append({"label": "max |kernel|" if wide else "kernel range",
                       "series": [_range_series(r, f"kernel {name} folding", colors[name], wide)
                                  for name, r in ranges.items()]})
    axis = f"{s.shape[0]} output channels, each panel sorted by its value" if wide else "output channel"
    return {"title": title or "", "axis": axis, "panels": panels}


def _listed(values: np.ndarray) -> list:
    """Floats for JSON, a non-finite one as None (left out of the chart)."""
    return [float(v) if np.isfinite(v) else None for v in values]


def _series(values: np.ndarray, name: str, color: str, wide: bool, low: np.ndarray | None = None) -> dict:
    """A bar per channel (from ``low``, else 0), or (wide) the finite values sorted as a curve."""
    if not wide:
        return {"name": name, "color": color, "kind": "bar", "channel": list(range(values.shape[0])),
                "low": None if low is None else _listed(low), "high": _listed(values)}
    finite = np.flatnonzero(np.isfinite(values))
    order = finite[np.argsort(values[finite], kind="stable")]
    return {"name": name, "color": color, "kind": "curve", "channel": order.tolist(), "low": None,
            "high": _listed(values[order])}


def _range_series(ranges: np.ndarray, name: str, color: str, wide: bool) -> dict:
    """Each channel's (min, max) kernel value as a floating bar (wide: its largest |weight|, sorted)."""
    if wide:
        return _series(np.nanmax(np.abs(ranges), axis=1), name, color, True)
    return _series(ranges[:, 1], name, color, False, low=ranges[:, 0])


@cache
def chart_script() -> str:
    """The script that draws every ``channels_data`` chart of an HTML report when it is first shown."""
    return (Path(__file__).with_name("assets") / "channels.js").read_text(encoding="utf-8")
