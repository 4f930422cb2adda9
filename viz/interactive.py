"""The graph before and after folding as an interactive Plotly figure: pan, zoom, hover, click.

The two panes share foldscope's layered layout (``viz.layout``): every node both graphs share
keeps its position, and the panes' axes are linked, so panning or zooming one moves the
other. The "after" pane shows the BatchNorms folding removed as ghosts at their old places.
Nodes carry their id in ``customdata``, so a click tells the page which layer was picked;
hovering a node shows its class, name, output shape, weight shapes and fold status.

A collapsed block (``viz.blocks``) is one node of role "block", larger, with what it holds in
its hover. Shaded (``Shading``: by the checks, or by real int8 SQNR), both panes, the hover texts,
the colour bar and the legend say the same.

Figure content is inspectable: traces are named "edges before", "nodes before", "edges
after", "nodes after", "folded away", "found", "labels before", "labels after"; node traces list
nodes in graph order, with their labels in ``text``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import networkx as nx
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from viz.layout import Bends, Point, before_after_positions
from viz.palette import FOLDED_COLOR, FOUND_COLOR, REMOVED_COLOR, ROLE_COLORS, ROLE_LABELS

_LABEL_CHARS = 22
_NODE_SIZE, _BLOCK_SIZE = 14, 24
_LABEL_FONT = {"size": 11, "color": "#262626"}
#: Graphs with at most this many nodes have every node named; larger ones, the nodes near the view.
LABEL_ALL = 200
_NO_DIFF = "#d9d9d9"
#: A check's |diff| / tolerance is coloured on a log scale between these powers of ten (above 0: it fails).
DIFF_RANGE = (-3.0, 1.0)
#: The legend's error bands when coloured by the checks: (label, log10 |diff| / tolerance in the band).
DIFF_BANDS = (("|diff| under 1% of tolerance", -2.5), ("1% to 10%", -1.5), ("10% to 100%", -0.5),
              ("above tolerance: fails", 0.5))
#: The ring around the node "Find a layer" found.
FOUND_MARKER = {"symbol": "circle-open", "size": 34, "color": FOUND_COLOR, "line": {"width": 3}}


def _shape(shape) -> str:
    return "?" if shape is None else "×".join("?" if d is None else str(d) for d in shape)


@dataclass(frozen=True)
class Shading:
    """Node colours from one figure per node, the others grey: the "after" pane's nodes, and the "before"
    pane's nodes both graphs have.

    ``values``: node -> its figure; ``position``: a figure's place on the colour scale (None: grey);
    ``low``/``high``: the scale's ends; ``colorscale``: a Plotly scale name; ``title``: the colour bar's;
    ``bands``: the legend's (label, place) entries, ``missing`` its name for grey; ``describe``: a
    figure's line in a node's hover text (the second argument: the node is a closed block).
    """

    values: Mapping[str, float]
    position: Callable[[float], float | None]
    low: float
    high: float
    colorscale: str
    title: str
    bands: tuple[tuple[str, float], ...]
    missing: str
    describe: Callable[[float, bool], str]

    def color(self, node: str) -> str:
        """The node's colour: its figure's on the scale, or grey."""
        value = self.values.get(node)
        place = None if value is None else self.position(value)
        return _NO_DIFF if place is None else self.color_at(place)

    def color_at(self, place: float) -> str:
        """The scale's colour at ``place`` (clipped to its ends)."""
        t = (place - self.low) / (self.high - self.low)
        return sample_colorscale(self.colorscale, [min(max(t, 0.0), 1.0)])[0]

    def line(self, node: str, block: bool) -> str | None:
        value = self.values.get(node)
        return None if value is None else self.describe(value, block)

    def restricted(self, nodes: Collection) -> Shading:
        """The same shading over ``nodes`` only."""
        return Shading({n: v for n, v in self.values.items() if n in nodes}, self.position, self.low, self.high,
                       self.colorscale, self.title, self.bands, self.missing, self.describe)


def _check_line(diff: float, block: bool) -> str:
    verdict = "FAIL" if diff > 1 else "pass"
    return f"{'worst check inside' if block else 'check'}: {verdict}, |diff| at {diff:.2g} of its tolerance"


def check_shading(diffs: Mapping[str, float]) -> Shading:
    """Colours by each node's check: its |diff| / tolerance on a log scale (above 1: it fails)."""
    return Shading(diffs, _diff_color, *DIFF_RANGE, "YlOrRd", "log10 |diff| / tolerance<br>(above 0: fails)",
                   DIFF_BANDS, "not compared", _check_line)


#: Real int8 SQNR is coloured between these (dB): red where int8 loses the signal, green where it keeps it.
SQNR_RANGE = (10.0, 50.0)
SQNR_BANDS = (("under 20 dB", 15.0), ("20 to 30 dB", 25.0), ("30 to 40 dB", 35.0), ("40 dB and more", 45.0))


def sqnr_shading(sqnr_db: Mapping[str, float], what: str) -> Shading:
    """Colours by each node's int8 SQNR in dB (``what``: which int8 model, for the hover text)."""
    def describe(value: float, block: bool) -> str:
        return f"{'worst int8 SQNR inside' if block else 'real int8 SQNR'} ({what}): {value:.1f} dB"

    return Shading(sqnr_db, lambda v: v if math.isfinite(v) else None, *SQNR_RANGE, "RdYlGn",
                   f"int8 SQNR (dB)<br>{what}", SQNR_BANDS, "no int8 figure", describe)


def hover_text(graph: nx.DiGraph, node: str, note: str | None, shading: Shading | None = None) -> str:
    """What hovering a node says: class, name, output shape, weights, fold status, and its figure on
    the ``shading`` (its check, or its int8 SQNR)."""
    data = graph.nodes[node]
    block = data.get("role") == "block"
    figure = None if shading is None else shading.line(node, block)
    if block:
        lines = [f"<b>{html.escape(str(data['block']))}</b>",
                 f"block of {data['layers']} layers, collapsed (open it with 'Open blocks')"]
        return "<br>".join([*lines, *([_wrap(html.escape(note))] if note else []), *([figure] if figure else [])])
    lines = [f"<b>{html.escape(str(node))}</b>", html.escape(str(data.get("op", "?")))]
    shapes = [s for *_, s in graph.out_edges(node, data="shape")]
    if shapes:
        lines.append(f"output {_shape(shapes[0])}")
    for name, shape in list((data.get("weights") or {}).items())[:4]:
        lines.append(f"{html.escape(str(name))}: {_shape(shape)}")
    if data.get("collapsed"):
        lines.append("nested model (open it with 'Open nested models')")
    if note:
        lines.append(_wrap(html.escape(note)))
    if figure:
        lines.append(figure)
    return "<br>".join(lines)


def _wrap(text: str, width: int = 70) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + len(word) > width:
            lines.append(line)
            line = ""
        line = f"{line} {word}".strip()
    return "<br>".join([*lines, line])


def _label(graph: nx.DiGraph, node: str) -> str:
    """A node's name beside it, cut to ``_LABEL_CHARS``, escaped: Plotly reads tags in text (a layer
    named ``<b>x</b>`` would be drawn bold) and shows entities as their characters."""
    data = graph.nodes[node]
    if data.get("role") == "block":
        name = str(data["block"]).rstrip("/").rsplit("/", 1)[-1]
        cut = name if len(name) <= _LABEL_CHARS else name[: _LABEL_CHARS - 1] + "…"
        return f"{html.escape(cut, quote=False)} ▸ {data['layers']}"
    name = str(node).rsplit("/", 1)[-1] if "/" in str(node) and len(str(node)) > _LABEL_CHARS else str(node)
    return html.escape(name if len(name) <= _LABEL_CHARS else name[: _LABEL_CHARS - 1] + "…", quote=False)


def _edges(graph: nx.DiGraph, pos: Mapping[str, Point], bends: Bends) -> tuple[list, list]:
    xs, ys = [], []
    for u, v in graph.edges:
        route = [pos[u], *bends.get((u, v), []), pos[v]]
        xs += [p[0] for p in route] + [None]
        ys += [p[1] for p in route] + [None]
    return xs, ys


def _diff_color(diff: float | None) -> float | None:
    if diff is None or not math.isfinite(diff) or diff <= 0:
        return None
    return min(max(math.log10(diff), DIFF_RANGE[0]), DIFF_RANGE[1])


def _nodes(graph: nx.DiGraph, pos: Mapping[str, Point], pane: str, folded: Collection, removed: Collection,
           notes: Mapping[str, str], shading: Shading | None) -> go.Scatter:
    nodes = list(graph)
    blocks = [graph.nodes[n].get("role") == "block" for n in nodes]
    outline = [FOLDED_COLOR if n in folded else REMOVED_COLOR if n in removed else "#4d4d4d" for n in nodes]
    width = [3 if n in folded or n in removed else 1 for n in nodes]
    marker = dict(symbol="square", size=[_BLOCK_SIZE if b else _NODE_SIZE for b in blocks],
                  line=dict(color=outline, width=width))
    if shading is None:
        marker["color"] = [ROLE_COLORS.get(graph.nodes[n].get("role"), ROLE_COLORS["other"]) for n in nodes]
    else:  # colours mapped by hand: nodes without a figure stay grey, which a colorscale cannot say
        marker["color"] = [shading.color(n) for n in nodes]
    return go.Scatter(
        x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers", name=f"nodes {pane}",
        marker=marker, selected=dict(marker=dict(size=26)), unselected=dict(marker=dict(opacity=1)),
        customdata=nodes, text=[_label(graph, n) for n in nodes],
        hovertext=[hover_text(graph, n, notes.get(n), shading) for n in nodes],
        hoverinfo="text", showlegend=False)


def _window(xs: list[float], ys: list[float], y: float | None, rows: int) -> tuple[list[float], list[float]]:
    """Axis ranges: the whole width, and ``rows`` layers around height ``y`` (or from the top)."""
    xs, ys = xs or [0.0], ys or [0.0]
    x_range = [min(xs) - 0.8, max(xs) + 3.5]
    if max(ys) - min(ys) <= rows:
        return x_range, [min(ys) - 0.8, max(ys) + 0.8]
    top = min(max(ys) + 0.8, y + rows / 2 if y is not None else max(ys) + 0.8)
    return x_range, [top - rows, top]


def _title(graph: nx.DiGraph) -> str:
    """How many layers a pane holds (a closed block counts its layers), and the blocks drawn closed."""
    blocks = [n for n, role in graph.nodes(data="role") if role == "block"]
    layers = len(graph) - len(blocks) + sum(graph.nodes[n]["layers"] for n in blocks)
    return f"{layers} layers" + (f", {len(blocks)} blocks closed" if blocks else "")


def before_after_figure(before: nx.DiGraph, after: nx.DiGraph, *, folded_layers: Collection = (),
                        removed_bns: Collection = (), notes: Mapping[str, str] | None = None,
                        diffs: Mapping[str, float] | None = None, shading: Shading | None = None,
                        height: int = 720) -> go.Figure:
    """Two linked panes, before and after folding, on foldscope's layered layout.

    ``notes`` (node -> fold status text) go into the hover text; ``shading`` colours the nodes by a
    figure each (and says it in the hover text); ``diffs`` (node -> its check's |diff| / tolerance) is
    ``check_shading(diffs)``. ``with_view`` then picks what the view opens on and which node is
    ringed, without building the figure again.
    """
    notes = notes or {}
    if diffs is not None:
        shading = check_shading(diffs)
    pos, after_pos, bends = before_after_positions(before, after)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.01,
                        subplot_titles=(f"before: {_title(before)}", f"after: {_title(after)}"))
    for col, (graph, graph_pos, pane, graph_bends) in enumerate(((before, pos, "before", bends),
                                                                  (after, after_pos, "after", {})), start=1):
        # shaded, both panes say the same: a node of both is its folded model's node
        pane_shading = None if shading is None else shading if pane == "after" else shading.restricted(set(graph))
        xs, ys = _edges(graph, graph_pos, graph_bends)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#9e9e9e", width=1), hoverinfo="skip",
                                 name=f"edges {pane}", showlegend=False), row=1, col=col)
        fig.add_trace(_nodes(graph, graph_pos, pane, folded_layers, removed_bns if pane == "before" else (),
                             notes, pane_shading), row=1, col=col)
    ghosts = [n for n in removed_bns if n in pos and n not in after]
    fig.add_trace(go.Scatter(x=[pos[n][0] for n in ghosts], y=[pos[n][1] for n in ghosts], mode="markers",
                             name="folded away", customdata=ghosts, hoverinfo="text",
                             hovertext=[hover_text(before, n, notes.get(n)) for n in ghosts],
                             marker=dict(symbol="square-open", size=14, color=REMOVED_COLOR, opacity=0.45),
                             showlegend=False), row=1, col=2)
    axis = dict(showgrid=False, zeroline=False, showticklabels=False)
    fig.update_xaxes(**axis)
    fig.update_yaxes(**axis)
    fig.update_layout(xaxis2=dict(matches="x"), height=height, margin=dict(l=10, r=10, t=40, b=10),
                      dragmode="pan", hovermode="closest", clickmode="event+select",
                      plot_bgcolor="white", hoverlabel=dict(align="left", font_size=11))
    if shading is not None:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="diff scale", hoverinfo="skip",
                                 marker=dict(colorscale=shading.colorscale, cmin=shading.low, cmax=shading.high,
                                             color=[shading.low], showscale=True,
                                             colorbar=dict(title=shading.title, thickness=12, len=0.6)),
                                 showlegend=False), row=1, col=2)
    _legend(fig, before, bool(folded_layers), bool(removed_bns), shading)
    return fig


def _legend(fig: go.Figure, graph: nx.DiGraph, folded: bool, removed: bool, shading: Shading | None) -> None:
    """What the colours say as a legend (invisible points that only name a colour): the roles, or
    the shading's bands (the checks' error bands, int8 SQNR bands); then the outlines."""
    if shading is not None:
        entries = [(name, dict(symbol="square", color=shading.color_at(place), size=12))
                   for name, place in shading.bands]
        entries.append((shading.missing, dict(symbol="square", color=_NO_DIFF, size=12)))
    else:
        present = {r for _, r in graph.nodes(data="role")}
        entries = [(ROLE_LABELS[r], dict(symbol="square", color=c, size=12)) for r, c in ROLE_COLORS.items()
                   if r in present]
    if folded:
        entries.append(("BN folded into it", dict(symbol="square", color="white", size=12,
                                                  line=dict(color=FOLDED_COLOR, width=3))))
    if removed:
        entries.append(("BN folded away", dict(symbol="square-open", color=REMOVED_COLOR, size=12)))
    for name, marker in entries:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name, marker=marker, hoverinfo="skip",
                                 showlegend=True))
    fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.04, x=0, font_size=11))


def _labels(figure: dict, y_range: list[float], rows: int) -> list[dict]:
    """Text traces naming the nodes, to the right of their markers: all of them in a small graph;
    in a large one those within a view's height of the opening view (SVG text is most of what a
    large graph costs to draw; hovering names every node). Plotly does not set a text-only trace's
    "middle right" text off from anything, so each name starts after en spaces (half an em each,
    whatever the font) covering half its node's marker."""
    low, high = y_range[0] - rows, y_range[1] + rows
    traces = []
    for trace in figure["data"]:
        if not trace.get("name", "").startswith("nodes "):
            continue
        sizes = trace["marker"]["size"]
        sizes = sizes if isinstance(sizes, (list, tuple)) else [sizes] * len(trace["x"])
        few = len(trace["x"]) <= LABEL_ALL
        shown = [i for i, y in enumerate(trace["y"]) if few or low <= y <= high]
        traces.append({"type": "scatter", "mode": "text", "name": "labels " + trace["name"].split()[1],
                       "x": [trace["x"][i] for i in shown], "y": [trace["y"][i] for i in shown],
                       "text": [_indent(sizes[i]) + trace["text"][i] for i in shown],
                       "textposition": "middle right", "textfont": _LABEL_FONT, "hoverinfo": "skip",
                       "unselected": {"textfont": {"color": _LABEL_FONT["color"]}},
                       "showlegend": False, "xaxis": trace.get("xaxis", "x"), "yaxis": trace.get("yaxis", "y")})
    return traces


def all_labels(figure: dict) -> list[dict]:
    """The label traces of a figure naming every node, however large the graph (what ``with_view``
    names near its view, everywhere: for a view that moves without Python, as the HTML report's)."""
    return _labels(figure, [-math.inf, math.inf], 0)


def _indent(marker_size: float) -> str:
    """En spaces (half the label font's size each) past half a marker, and one more."""
    return "\u2002" * (math.ceil(marker_size / _LABEL_FONT["size"]) + 1)


def _node_points(figure: dict) -> dict[str, dict[str, tuple[float, float]]]:
    """Pane ("before"/"after") -> node -> position, read from a figure dict's node traces."""
    found: dict[str, dict[str, tuple[float, float]]] = {}
    for trace in figure["data"]:
        name = trace.get("name", "")
        if name.startswith("nodes "):
            found[name.split()[1]] = dict(zip(trace["customdata"], zip(trace["x"], trace["y"])))
    return found


def _found_ring(figure: dict, points: dict[str, dict[str, tuple[float, float]]], node: str) -> list[dict]:
    """A ring around ``node`` in each pane that has it (a BN folding removed: around its ghost):
    where "Find a layer" landed."""
    ghosts = next((t for t in figure["data"] if t.get("name") == "folded away"), {"customdata": []})
    ghost = {n: (x, y) for n, x, y in zip(ghosts["customdata"], ghosts.get("x", []), ghosts.get("y", []))}
    xs, ys, axes = [], [], []
    for pane, axis in (("before", ("x", "y")), ("after", ("x2", "y2"))):
        at = points.get(pane, {}).get(node) or (ghost.get(node) if pane == "after" else None)
        if at is not None:
            xs.append(at[0])
            ys.append(at[1])
            axes.append(axis)
    return [{"type": "scatter", "mode": "markers", "name": "found", "x": [x], "y": [y], "customdata": [node],
             "marker": FOUND_MARKER,
             "hoverinfo": "skip", "showlegend": False, "xaxis": xa, "yaxis": ya}
            for x, y, (xa, ya) in zip(xs, ys, axes)]


def with_view(figure: dict, *, selected: str | None = None, center: str | None = None, found: str | None = None,
              rows: int = 28, revision: str = "graph") -> dict:
    """A ``before_after_figure`` (as ``Figure.to_dict()``) opening on ``rows`` layers around
    ``center``, with ``selected`` drawn large in both panes (Plotly's own point selection, as
    a click makes it) and ``found`` ringed; the dict given is not changed. The user's zoom
    survives reruns until ``revision`` changes."""
    points = _node_points(figure)
    data = []
    for trace in figure["data"]:
        if trace.get("name", "").startswith("nodes "):
            nodes = list(trace["customdata"])
            trace = {**trace, "selectedpoints": [nodes.index(selected)] if selected in nodes else None}
        data.append(trace)
    every = {**points.get("after", {}), **points.get("before", {})}
    x_range, y_range = _window([x for x, _ in every.values()], [y for _, y in every.values()],
                               every[center][1] if center in every else None, rows)
    data += _labels(figure, y_range, rows)
    if found is not None:
        data += _found_ring(figure, points, found)
    layout = {**figure["layout"], "uirevision": revision,
              "xaxis": {**figure["layout"].get("xaxis", {}), "range": x_range},
              "yaxis": {**figure["layout"].get("yaxis", {}), "range": y_range},
              "yaxis2": {**figure["layout"].get("yaxis2", {}), "range": y_range}}
    return {**figure, "data": data, "layout": layout}
