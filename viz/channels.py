"""One folded pair per output channel: the BN's scale and shift, and the kernel's range before and after folding.

A tiny moving variance shows up here as one channel whose scale, and folded kernel range,
is orders of magnitude above the others; ``yscale="auto"`` then switches to symlog.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

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


def channels_chart(scale: np.ndarray, shift: np.ndarray, range_before: np.ndarray | None = None,
                   range_after: np.ndarray | None = None, *, title: str | None = None) -> dict:
    """``plot_channels``' panels as an interactive Plotly figure, in its JSON form (a dict the browser
    draws: building it costs what building its lists does, where rendering the picture costs 0.4 s).

    The same traces by the same names, one panel each, stacked on a shared x axis: "scale s" and
    "shift t" as a bar per channel, "kernel before folding" and "kernel after folding" as each
    channel's (min, max) as a floating bar, side by side; beyond ``WIDE_CHANNELS`` channels, each
    panel's values sorted as a curve, its first and last channel named. Every value shows on hover,
    non-finite ones are left out; the axes are linear (Plotly has no symlog): a channel orders of
    magnitude above the others is one tall bar, its value on hover. ``title`` is shown as typed."""
    s, t = _finite(scale), _finite(shift)
    ranges = {name: _finite(r) for name, r in (("before", range_before), ("after", range_after)) if r is not None}
    _check_shapes(s, t, ranges)
    wide = s.shape[0] > WIDE_CHANNELS
    colors = {"before": BEFORE_COLOR, "after": AFTER_COLOR}
    panels = [[_chart_trace(s, "scale s", SCALE_COLOR, wide)], [_chart_trace(t, "shift t", SHIFT_COLOR, wide)]]
    if ranges:
        panels.append([_chart_range(r, f"kernel {name} folding", colors[name], wide) for name, r in ranges.items()])
    count = len(panels)
    labels = ["scale s", "shift t", "max |kernel|" if wide else "kernel range"][:count]
    data, layout = [], {"height": 170 * count + 90, "margin": {"l": 70, "r": 20, "t": 50 if title else 20, "b": 45},
                        "barmode": "group", "bargap": 0.2, "showlegend": bool(ranges), "hovermode": "closest",
                        "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0}}
    gap = 0.06
    height = (1 - gap * (count - 1)) / count
    for k, traces in enumerate(panels):
        suffix = "" if k == 0 else str(k + 1)
        for trace in traces:
            data.append({**trace, "xaxis": "x" + suffix, "yaxis": "y" + suffix})
        top = 1 - k * (height + gap)
        layout["yaxis" + suffix] = {"domain": [top - height, top], "title": {"text": labels[k], "font": {"size": 11}},
                                    "zeroline": True}
        layout["xaxis" + suffix] = {"anchor": "y" + suffix, "matches": None if k == 0 else "x",
                                    "showticklabels": k == count - 1}
    layout["xaxis" + ("" if count == 1 else str(count))]["title"] = {
        "text": f"{s.shape[0]} output channels, each panel sorted by its value" if wide else "output channel",
        "font": {"size": 11}}
    if title:  # Plotly reads tags in text: a layer's name is shown as typed
        layout["title"] = {"text": html.escape(title, quote=False), "font": {"size": 13}, "x": 0.5}
    return {"data": data, "layout": layout}


def _listed(values: np.ndarray) -> list:
    """Floats for JSON, a non-finite one as None (left out of the figure)."""
    return [float(v) if np.isfinite(v) else None for v in values]


def _chart_trace(values: np.ndarray, name: str, color: str, wide: bool) -> dict:
    """One panel's trace: a bar per channel, or (wide) the values sorted as a curve, each point
    carrying its channel, the first and last named."""
    if not wide:
        return {"type": "bar", "name": name, "x": list(range(values.shape[0])), "y": _listed(values),
                "marker": {"color": color}, "hovertemplate": f"channel %{{x}}<br>{name} %{{y:.4g}}<extra></extra>"}
    finite = np.flatnonzero(np.isfinite(values))
    order = finite[np.argsort(values[finite], kind="stable")]
    named = {0, order.size - 1} if order.size else set()
    return {"type": "scatter", "mode": "lines+text", "name": name, "x": list(range(order.size)),
            "y": _listed(values[order]), "customdata": order.tolist(), "line": {"color": color, "width": 1.5},
            "text": [f"ch {int(order[i])}: {values[order[i]]:.3g}" if i in named else "" for i in range(order.size)],
            "textposition": "middle right", "textfont": {"size": 10, "color": color},
            "hovertemplate": f"channel %{{customdata}}<br>{name} %{{y:.4g}}<extra></extra>"}


def _chart_range(ranges: np.ndarray, name: str, color: str, wide: bool) -> dict:
    """Each channel's (min, max) kernel value as a floating bar (wide: its largest |weight|, sorted)."""
    if wide:
        return _chart_trace(np.nanmax(np.abs(ranges), axis=1), name, color, True)
    low, high = ranges[:, 0], ranges[:, 1]
    return {"type": "bar", "name": name, "x": list(range(ranges.shape[0])), "base": _listed(low),
            "y": _listed(high - low), "customdata": _listed(high), "marker": {"color": color},
            "hovertemplate": f"channel %{{x}}<br>{name}: %{{base:.4g}} to %{{customdata:.4g}}<extra></extra>"}
