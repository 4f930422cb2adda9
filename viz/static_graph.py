"""The model graph before and after folding, drawn with matplotlib on foldscope's layered layout
(``viz.layout``: inputs at the top, edges pointing down, long edges in their own lanes).

Drawn content is inspectable: per axes, the nodes are one PathCollection with gid "nodes"
(offsets and colours in ``graph.nodes`` order), the edges one LineCollection with gid "edges".
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

import networkx as nx
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.path import Path

from viz.layout import Bends, Node, Point, before_after_positions, layout_with_bends, neighbourhood
from viz.palette import FOLDED_COLOR, REMOVED_COLOR, ROLE_COLORS, ROLE_LABELS

_FONT = 6.5  # points
_MAX_CHARS = 26  # longer names are cut with an ellipsis
_SHAPE_LIMIT = 80  # graphs with at most this many nodes show output shapes under the op
_MAX_INCHES = 300.0  # 30 000 px at dpi 100; Agg refuses images beyond 65 536 px
_LEGEND_BAND = 1.0  # inches above the drawing for the title and the legend (3 rows)
_LEGEND_COLUMNS = 3
_MIN_PANEL_WIDTH = 4.6  # inches: room for the legend's three columns
_MARGIN = 0.2  # inches around and between panels


@dataclass(frozen=True)
class _Box:
    """Node box size in points, fitted to the longest label; it sets the grid spacing in inches."""

    width: float
    height: float

    @classmethod
    def around(cls, labels: Iterable[str]) -> _Box:
        lines = [label.split("\n") for label in labels] or [[""]]
        chars = max(len(line) for label in lines for line in label)
        rows = max(len(label) for label in lines)
        return cls(width=chars * _FONT * 0.62 + 10, height=rows * _FONT * 1.3 + 6)

    @property
    def x_unit(self) -> float:
        return self.width / 72 + 0.3

    @property
    def y_unit(self) -> float:
        return self.height / 72 + 0.3

    def marker(self) -> tuple[Path, float]:
        """A rectangle marker of this box's aspect and its scatter size (the longer side, squared)."""
        w, h = self.width / 2, self.height / 2
        path = Path([(-w, -h), (w, -h), (w, h), (-w, h), (-w, -h)], closed=True)
        return path, max(self.width, self.height) ** 2


def _label(graph: nx.DiGraph, node: Node, show_shape: bool) -> str:
    """'name', 'op' (or 'op, N layers' for a nested model) and, if asked, the output shape."""
    data = graph.nodes[node]
    name = str(node) if len(str(node)) <= _MAX_CHARS else str(node)[: _MAX_CHARS - 1] + "…"
    op = str(data.get("op", "?"))
    if "subgraph" in data:
        op = f"{op}, {len(data['subgraph'])} layers"
    lines = [name, op]
    if show_shape:
        shapes = [s for *_, s in graph.out_edges(node, data="shape") if s is not None]
        lines += ["×".join("?" if d is None else str(d) for d in shape) for shape in shapes[:1]]
    return "\n".join(lines)


@dataclass(frozen=True)
class _Frame:
    """What the panels of one figure share: node box, edge bends and axis limits."""

    box: _Box
    bends: Bends
    xlim: tuple[float, float]
    ylim: tuple[float, float]

    @classmethod
    def around(cls, points: Iterable[Point], labels: Iterable[str], bends: Bends) -> _Frame:
        xy = np.array([*points, *(p for route in bends.values() for p in route)], dtype=float).reshape(-1, 2)
        if not len(xy):
            xy = np.zeros((1, 2))
        low, high = xy.min(axis=0) - 0.6, xy.max(axis=0) + 0.6
        return cls(_Box.around(labels), bends, (low[0], high[0]), (low[1], high[1]))

    def size(self, panels: int) -> tuple[float, float]:
        """Figure inches so one layout unit is one box plus a gap, capped at ``_MAX_INCHES``."""
        panel_w = max((self.xlim[1] - self.xlim[0]) * self.box.x_unit, _MIN_PANEL_WIDTH)
        panel_h = (self.ylim[1] - self.ylim[0]) * self.box.y_unit
        return (min(panels * panel_w + (panels + 1) * _MARGIN, _MAX_INCHES),
                min(panel_h + _LEGEND_BAND + _MARGIN, _MAX_INCHES))


def _node_style(graph: nx.DiGraph, folded: Collection, removed: Collection) -> dict[str, list]:
    """Per-node scatter style, in ``graph.nodes`` order."""
    style: dict[str, list] = {"c": [], "edgecolors": [], "linewidths": [], "linestyles": []}
    for node, role in graph.nodes(data="role"):
        face = to_rgba(ROLE_COLORS.get(role, ROLE_COLORS["other"]), alpha=0.35 if node in removed else 1.0)
        edge, width, dash = "0.3", 0.8, "solid"
        if node in folded:
            edge, width = FOLDED_COLOR, 3.0
        if node in removed:
            edge, width, dash = REMOVED_COLOR, 1.8, "dashed"
        for key, value in zip(style, (face, edge, width, dash)):
            style[key].append(value)
    return style


def _draw_panel(ax: Axes, graph: nx.DiGraph, pos: dict[Node, Point], labels: dict[Node, str], frame: _Frame,
                folded: Collection, removed: Collection) -> None:
    """Edges, node boxes and labels of one graph onto ``ax``."""
    routes = [[pos[u], *frame.bends.get((u, v), []), pos[v]] for u, v in graph.edges]
    ax.add_collection(LineCollection(routes, colors="0.55", linewidths=0.8, zorder=1, gid="edges"))
    xy = np.array([pos[n] for n in graph], dtype=float).reshape(-1, 2)
    marker, size = frame.box.marker()
    nodes = ax.scatter(xy[:, 0], xy[:, 1], s=size, marker=marker, zorder=2, **_node_style(graph, folded, removed))
    nodes.set_gid("nodes")
    for node, (x, y) in zip(graph, xy):
        ax.text(x, y, labels[node], ha="center", va="center", fontsize=_FONT, zorder=3, clip_on=True)
    ax.set_xlim(frame.xlim)
    ax.set_ylim(frame.ylim)
    ax.set_axis_off()


def _legend(ax: Axes, graph: nx.DiGraph, folded: Collection, removed: Collection, title: str | None) -> None:
    """The roles and highlights present in ``graph``, above the axes; the title above them."""
    present = {role for _, role in graph.nodes(data="role")}
    handles = [Patch(facecolor=color, edgecolor="0.3", label=ROLE_LABELS[role])
               for role, color in ROLE_COLORS.items() if role in present]
    if any(n in graph for n in folded):
        handles.append(Patch(facecolor="white", edgecolor=FOLDED_COLOR, linewidth=2.5, label="BN folded into it"))
    if any(n in graph for n in removed):
        handles.append(Patch(facecolor="white", edgecolor=REMOVED_COLOR, linestyle="--", label="BN folded away"))
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=_LEGEND_COLUMNS, fontsize=7,
              frameon=False)
    rows = -(-len(handles) // _LEGEND_COLUMNS)
    ax.set_title(title or "", pad=rows * 11 + 6, fontsize=9)


def _new_figure(panels: int, frame: _Frame) -> list[Axes]:
    """``panels`` axes side by side in a new figure sized by ``frame``, under a band for the legend."""
    width, height = frame.size(panels)
    fig = Figure(figsize=(width, height))
    axes_w = (width - (panels + 1) * _MARGIN) / panels
    axes_h = height - _LEGEND_BAND - _MARGIN
    return [fig.add_axes((((i + 1) * _MARGIN + i * axes_w) / width, _MARGIN / height, axes_w / width,
                          axes_h / height)) for i in range(panels)]


def draw_graph(graph: nx.DiGraph, *, pos: dict[Node, Point] | None = None, folded_layers: Collection = (),
               removed_bns: Collection = (), title: str | None = None, ax: Axes | None = None) -> Figure:
    """One model graph, coloured by role; folded layers outlined, BNs that folding removes dashed.

    Without ``pos`` the graph gets ``layered_layout`` and its long edges follow their own lanes
    (with ``pos``, edges are straight). A new figure grows with the graph: deep models become
    a tall image to zoom into.
    """
    bends: Bends = {}
    if pos is None:
        pos, bends = layout_with_bends(graph)
    labels = {n: _label(graph, n, len(graph) <= _SHAPE_LIMIT) for n in graph}
    frame = _Frame.around((pos[n] for n in graph), labels.values(), bends)
    if ax is None:
        ax = _new_figure(1, frame)[0]
    _draw_panel(ax, graph, pos, labels, frame, folded_layers, removed_bns)
    _legend(ax, graph, folded_layers, removed_bns, title or graph.graph.get("name"))
    return ax.figure


def draw_before_after(before: nx.DiGraph, after: nx.DiGraph, *, folded_layers: Collection = (),
                      removed_bns: Collection = (), focus: Node | None = None, hops: int = 3) -> Figure:
    """Two panels, before and after folding, on the same axis limits; every node both graphs
    share keeps its position.

    With ``focus``, only the ``hops``-neighbourhood of that node in ``before`` is drawn, and the
    "after" panel shows what became of that same window.
    """
    if focus is not None:
        before = neighbourhood(before, focus, hops)
        after = after.subgraph([n for n in after if n in before]).copy()
    pos, after_pos, bends = before_after_positions(before, after)
    positions = (pos, after_pos)
    show_shapes = len(before) <= _SHAPE_LIMIT
    labels = [{n: _label(g, n, show_shapes) for n in g} for g in (before, after)]
    frame = _Frame.around([*positions[0].values(), *positions[1].values()],
                          [*labels[0].values(), *labels[1].values()], bends)
    axes = _new_figure(2, frame)
    for ax, graph, graph_pos, graph_labels, name in zip(axes, (before, after), positions, labels, ("before", "after")):
        _draw_panel(ax, graph, graph_pos, graph_labels, frame, folded_layers, removed_bns)
        _legend(ax, graph, folded_layers, removed_bns, f"{name}: {len(graph)} layers")
    return axes[0].figure
