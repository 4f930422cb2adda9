"""The model graph before and after folding, drawn with matplotlib on foldscope's layout
(``viz.layout``: ELK, each node a box as large as its label, edges routed around the boxes): the
static picture (PNG, SVG) the page offers to download.

One layout pixel is one point, so each label sits in its box in the font its box was measured in
(DejaVu Sans, matplotlib's default); a figure past ``_MAX_INCHES`` is scaled down whole, fonts
with it.

Drawn content is inspectable: per axes, the nodes are one PatchCollection with gid "nodes" (a
rectangle per node, in ``graph.nodes`` order), the edges one LineCollection with gid "edges" (a
route per edge, in ``graph.edges`` order), the labels the axes' texts (one per line of a label).
"""

from __future__ import annotations

from collections.abc import Collection

import networkx as nx
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from viz.layout import Layout, Node, layered_layout, neighbourhood, pane_layouts
from viz.palette import FOLDED_COLOR, REMOVED_COLOR, ROLE_COLORS, ROLE_LABELS
from viz.text import LINE_HEIGHT, PAD_Y, label_lines, label_size

_SHAPE_LIMIT = 80  # graphs with at most this many nodes show output shapes under the op
_MAX_INCHES = 300.0  # 30 000 px at dpi 100; Agg refuses images beyond 65 536 px
_LEGEND_BAND = 1.0  # inches above the drawing for the title and the legend (3 rows)
_LEGEND_COLUMNS = 3
_MIN_PANEL_WIDTH = 4.6  # inches: room for the legend's three columns
_MARGIN = 0.2  # inches around and between panels
_TEXT = "#1a1a1a"

Lines = dict[Node, list[tuple[str, float]]]


def _lines(graphs: Collection[nx.DiGraph], show_shapes: bool) -> Lines:
    return {n: label_lines(g, n, show_shapes) for g in graphs for n in g}


def _node_style(graph: nx.DiGraph, folded: Collection, removed: Collection) -> dict[str, list]:
    """Per-node patch style, in ``graph.nodes`` order."""
    style: dict[str, list] = {"facecolors": [], "edgecolors": [], "linewidths": [], "linestyles": []}
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


def _draw_panel(ax: Axes, graph: nx.DiGraph, layout: Layout, lines: Lines, scale: float, folded: Collection,
                removed: Collection) -> None:
    """Edges, node boxes and labels of one graph onto ``ax`` (y pointing down, as in the layout)."""
    ax.add_collection(LineCollection([layout.edges[e] for e in graph.edges if layout.edges.get(e)], colors="0.55",
                                     linewidths=0.8 * scale, zorder=1, gid="edges"))
    boxes = [layout.nodes[n] for n in graph]
    nodes = PatchCollection([Rectangle((b.x, b.y), b.w, b.h) for b in boxes], zorder=2,
                            **_node_style(graph, folded, removed))
    nodes.set_linewidths([w * scale for w in nodes.get_linewidths()])
    nodes.set_gid("nodes")
    ax.add_collection(nodes)
    for node, box in zip(graph, boxes):
        top = box.y + PAD_Y
        for text, size in lines[node]:
            ax.text(box.x + box.w / 2, top + size * LINE_HEIGHT / 2, text, ha="center", va="center_baseline",
                    fontsize=size * scale, color=_TEXT, zorder=3, clip_on=True)
            top += size * LINE_HEIGHT
    ax.set_xlim(0, max(layout.width, 1.0))
    ax.set_ylim(max(layout.height, 1.0), 0)
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


def _new_figure(panels: int, layout: Layout) -> tuple[list[Axes], float]:
    """``panels`` axes side by side in a new figure one point per layout pixel (scaled down past
    ``_MAX_INCHES``), under a band for the legend; and that scale."""
    panel_w, panel_h = layout.width / 72, layout.height / 72
    full_w = panels * max(panel_w, _MIN_PANEL_WIDTH) + (panels + 1) * _MARGIN
    full_h = panel_h + _LEGEND_BAND + _MARGIN
    scale = min(1.0, _MAX_INCHES / full_w, _MAX_INCHES / full_h)
    width, height = min(full_w, _MAX_INCHES), min(full_h, _MAX_INCHES)
    fig = Figure(figsize=(width, height))
    axes_w = (width - (panels + 1) * _MARGIN) / panels
    axes_h = height - _LEGEND_BAND - _MARGIN
    return [fig.add_axes((((i + 1) * _MARGIN + i * axes_w) / width, _MARGIN / height, axes_w / width,
                          axes_h / height)) for i in range(panels)], scale


def _sizes(lines: Lines) -> dict[Node, tuple[float, float]]:
    return {n: label_size(parts) for n, parts in lines.items()}


def draw_graph(graph: nx.DiGraph, *, folded_layers: Collection = (), removed_bns: Collection = (),
               title: str | None = None, ax: Axes | None = None) -> Figure:
    """One model graph, coloured by role; folded layers outlined, BNs that folding removes dashed.

    A new figure grows with the graph: deep models become a tall image to zoom into."""
    lines = _lines([graph], len(graph) <= _SHAPE_LIMIT)
    layout = layered_layout(graph, _sizes(lines))
    scale = 1.0
    if ax is None:
        (ax,), scale = _new_figure(1, layout)
    _draw_panel(ax, graph, layout, lines, scale, folded_layers, removed_bns)
    _legend(ax, graph, folded_layers, removed_bns, title or graph.graph.get("name"))
    return ax.figure


def draw_before_after(before: nx.DiGraph, after: nx.DiGraph, *, folded_layers: Collection = (),
                      removed_bns: Collection = (), focus: Node | None = None, hops: int = 3) -> Figure:
    """Two panels, before and after folding, on one layout (``viz.layout.pane_layouts``): every node
    both graphs share is at the same place in both.

    With ``focus``, only the ``hops``-neighbourhood of that node in ``before`` is drawn, and the
    "after" panel shows what became of that same window.
    """
    if focus is not None:
        before = neighbourhood(before, focus, hops)
        after = after.subgraph([n for n in after if n in before]).copy()
    lines = _lines([before, after], len(before) <= _SHAPE_LIMIT)
    layouts = pane_layouts(before, after, _sizes(lines))
    axes, scale = _new_figure(2, layouts[0])
    for ax, graph, layout, name in zip(axes, (before, after), layouts, ("before", "after")):
        _draw_panel(ax, graph, layout, lines, scale, folded_layers, removed_bns)
        _legend(ax, graph, folded_layers, removed_bns, f"{name}: {len(graph)} layers")
    return axes[0].figure

