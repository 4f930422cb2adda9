"""The graph before and after folding as an interactive view: a *scene* (plain data, JSON-ready) that
one script draws (``viz/assets/graph.js`` with ``viz/assets/graph.css``: pan, zoom, hover, click,
Find with "/", an overview to jump by, linked panes, light and dark themes), in the page (a
Streamlit component) and in the HTML report (inlined), so both show the same picture.

Both panes stand on one layout (``viz.layout.pane_layouts``, ELK): a node both graphs have is at
the same place in both, the "after" pane draws the BatchNorms folding removed as ghosts where they
were, and panning or zooming one pane moves the other. Hovering or selecting a node marks its
counterparts in the other pane: the same node, and the ``links`` given (a BN and the layer it was
folded into). Open blocks (``viz.blocks``) are frames around their members; a closed block is one
node saying how many layers it holds.

A scene::

    {"panes": [{"name", "title", "nodes": [node...], "edges": [[[x, y], ...]...], "groups": [group...]}, ...],
     "size": [width, height], "legend": [{"label", "fill", "stroke", "dash"}...],
     "scale": None or {"title", "low", "high", "stops": [[t, colour]...]},
     "links": {pane name: {node: [nodes of the other pane]}}, "find": {name: the node drawing it},
     "view": {"center", "selected", "found", "rings": [[pane, node]...], "revision"}}
    node:  {"id", "lines": [[text, px]...], "box": [x, y, w, h], "fill", "stroke", "width", "dash",
            "ghost", "block", "hover": [line...]}
    group: {"id", "label", "box"}

Every text in it is data, never markup: the script sets it as text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import networkx as nx

from viz.blocks import Block, block_path
from viz.layout import Layout, pane_layouts
from viz.palette import FOLDED_COLOR, FOUND_COLOR, REMOVED_COLOR, ROLE_COLORS, ROLE_LABELS
from viz.text import label_lines, label_size, shape_text

_OUTLINE = "#4d4d4d"
_NO_DIFF = "#d9d9d9"
#: A check's |diff| / tolerance is coloured on a log scale between these powers of ten (above 0: it fails).
DIFF_RANGE = (-3.0, 1.0)
#: The legend's error bands when coloured by the checks: (label, log10 |diff| / tolerance in the band).
DIFF_BANDS = (("|diff| under 1% of tolerance", -2.5), ("1% to 10%", -1.5), ("10% to 100%", -0.5),
              ("above tolerance: fails", 0.5))
#: ColorBrewer's scales (as Plotly and matplotlib name them), low to high.
YL_OR_RD = ("#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#bd0026", "#800026")
RD_YL_GN = ("#a50026", "#d73027", "#f46d43", "#fdae61", "#fee08b", "#ffffbf", "#d9ef8b", "#a6d96a", "#66bd63",
            "#1a9850", "#006837")
#: The colour of the ring around a node found or a failing layer.
RING_COLOR = FOUND_COLOR
_ASSETS = Path(__file__).with_name("assets")


@cache
def script() -> str:
    """The script that draws a scene (``foldscopeGraph(element, scene, hooks)``)."""
    return (_ASSETS / "graph.js").read_text(encoding="utf-8")


@cache
def stylesheet() -> str:
    """The scene's stylesheet: Streamlit's theme colours where the page sets them, the report's own elsewhere."""
    return (_ASSETS / "graph.css").read_text(encoding="utf-8")


def _mix(a: str, b: str, t: float) -> str:
    ra, ga, ba = (int(a[i:i + 2], 16) for i in (1, 3, 5))
    rb, gb, bb = (int(b[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in ((ra, rb), (ga, gb), (ba, bb)))


def sample(scale: tuple[str, ...], t: float) -> str:
    """The colour at ``t`` (0 to 1, clipped) of a scale given by evenly spaced stops."""
    t = min(max(t, 0.0), 1.0) * (len(scale) - 1)
    i = min(int(t), len(scale) - 2)
    return _mix(scale[i], scale[i + 1], t - i)


def ink(fill: str) -> str | None:
    """The text colour on a face of colour ``fill``: near-black on a light face, white on a dark one
    (WCAG's relative luminance: past 0.179 black contrasts more than white); None on a transparent face (the page's own text colour)."""
    if not fill.startswith("#"):
        return None
    linear = [(c / 255 / 12.92) if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4
              for c in (int(fill[i:i + 2], 16) for i in (1, 3, 5))]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#1a1a1a" if luminance > 0.179 else "#ffffff"


@dataclass(frozen=True)
class Shading:
    """Node colours from one figure per node, the others grey: the "after" pane's nodes, and the "before"
    pane's nodes both graphs have.

    ``values``: node -> its figure; ``position``: a figure's place on the colour scale (None: grey);
    ``low``/``high``: the scale's ends; ``colorscale``: its stops, low to high; ``title``: the colour
    bar's; ``bands``: the legend's (label, place) entries, ``missing`` its name for grey; ``describe``: a
    figure's line in a node's hover text (the second argument: the node is a closed block).
    """

    values: Mapping[str, float]
    position: Callable[[float], float | None]
    low: float
    high: float
    colorscale: tuple[str, ...]
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
        return sample(self.colorscale, (place - self.low) / (self.high - self.low))

    def line(self, node: str, block: bool) -> str | None:
        value = self.values.get(node)
        return None if value is None else self.describe(value, block)

    def restricted(self, nodes: Collection) -> Shading:
        """The same shading over ``nodes`` only."""
        return Shading({n: v for n, v in self.values.items() if n in nodes}, self.position, self.low, self.high,
                       self.colorscale, self.title, self.bands, self.missing, self.describe)

    def bar(self) -> dict:
        """The colour bar: its title, ends and stops."""
        return {"title": self.title, "low": self.low, "high": self.high,
                "stops": [[i / (len(self.colorscale) - 1), c] for i, c in enumerate(self.colorscale)]}


def _check_line(diff: float, block: bool) -> str:
    verdict = "FAIL" if diff > 1 else "pass"
    return f"{'worst check inside' if block else 'check'}: {verdict}, |diff| at {diff:.2g} of its tolerance"


def _diff_color(diff: float | None) -> float | None:
    if diff is None or not math.isfinite(diff) or diff <= 0:
        return None
    return min(max(math.log10(diff), DIFF_RANGE[0]), DIFF_RANGE[1])


def check_shading(diffs: Mapping[str, float]) -> Shading:
    """Colours by each node's check: its |diff| / tolerance on a log scale (above 1: it fails)."""
    return Shading(diffs, _diff_color, *DIFF_RANGE, YL_OR_RD, "log10 |diff| / tolerance (above 0: fails)",
                   DIFF_BANDS, "not compared", _check_line)


#: Real int8 SQNR is coloured between these (dB): red where int8 loses the signal, green where it keeps it.
SQNR_RANGE = (10.0, 50.0)
SQNR_BANDS = (("under 20 dB", 15.0), ("20 to 30 dB", 25.0), ("30 to 40 dB", 35.0), ("40 dB and more", 45.0))


def sqnr_shading(sqnr_db: Mapping[str, float], what: str) -> Shading:
    """Colours by each node's int8 SQNR in dB (``what``: which int8 model, for the hover text)."""
    def describe(value: float, block: bool) -> str:
        return f"{'worst int8 SQNR inside' if block else 'real int8 SQNR'} ({what}): {value:.1f} dB"

    return Shading(sqnr_db, lambda v: v if math.isfinite(v) else None, *SQNR_RANGE, RD_YL_GN,
                   f"int8 SQNR (dB), {what}", SQNR_BANDS, "no int8 figure", describe)


def hover_text(graph: nx.DiGraph, node: str, note: str | None, shading: Shading | None = None) -> list[str]:
    """What hovering a node says, line by line (the first is its name): class, output shape, weights,
    fold status, and its figure on the ``shading`` (its check, or its int8 SQNR)."""
    data = graph.nodes[node]
    block = data.get("role") == "block"
    figure = None if shading is None else shading.line(node, block)
    if block:
        lines = [str(data["block"]), f"block of {data['layers']} layers, closed (click it, then 'Open this block')"]
    else:
        lines = [str(node), str(data.get("op", "?"))]
        shapes = [s for *_, s in graph.out_edges(node, data="shape")]
        if shapes:
            lines.append(f"output {shape_text(shapes[0])}")
        lines += [f"{name}: {shape_text(shape)}" for name, shape in list((data.get("weights") or {}).items())[:4]]
        if data.get("collapsed"):
            lines.append("nested model (open it with 'Open nested models')")
    return [*lines, *([note] if note else []), *([figure] if figure else [])]


def _title(graph: nx.DiGraph, name: str) -> str:
    """A pane's name, how many layers it holds (a closed block counts its layers), and the blocks drawn closed."""
    blocks = [n for n, role in graph.nodes(data="role") if role == "block"]
    layers = len(graph) - len(blocks) + sum(graph.nodes[n]["layers"] for n in blocks)
    return f"{name}: {layers} layers" + (f", {len(blocks)} blocks closed" if blocks else "")


def frames(graphs: Collection[nx.DiGraph], blocks: Mapping[str, Block]) -> tuple[dict, dict]:
    """The open block each drawn node sits in (innermost), and the block around each block."""
    group_of = {}
    for graph in graphs:
        for node, data in graph.nodes(data=True):
            if data.get("role") == "block":
                group_of[node] = blocks[data["block"]].parent if data["block"] in blocks else None
            else:
                inside = [b for b in block_path(node) if b in blocks]
                group_of[node] = inside[-1] if inside else None
    return {n: g for n, g in group_of.items() if g is not None}, {b: blocks[b].parent for b in blocks}


def _node(graph: nx.DiGraph, node: str, layout: Layout, lines: list, style: tuple[str, str, float, bool],
          hover: list[str], ghost: bool = False) -> dict:
    fill, stroke, width, dash = style
    return {"id": str(node), "lines": [[t, s] for t, s in lines], "box": layout.nodes[node].as_list(), "fill": fill,
            "ink": ink(fill), "stroke": stroke, "width": width, "dash": dash, "ghost": ghost,
            "block": graph.nodes[node].get("role") == "block", "hover": hover}


def _lines(before: nx.DiGraph, after: nx.DiGraph) -> list[dict]:
    """Each pane's labels (a closed block counts its own pane's layers)."""
    return [{n: label_lines(g, n) for n in g} for g in (before, after)]


def scene_layouts(before: nx.DiGraph, after: nx.DiGraph, blocks: Mapping[str, Block] | None = None) -> tuple[Layout, Layout]:
    """The layout ``before_after_figure`` draws both panes on: each node's box as large as its larger
    label, ``blocks`` as frames. Colours do not move anything: a caller drawing one view in several
    colourings lays it out once and hands it over (``layouts``)."""
    sizes: dict = {}
    for pane_lines in _lines(before, after):
        for n, parts in pane_lines.items():
            w, h = label_size(parts)
            sizes[n] = (max(w, sizes.get(n, (0, 0))[0]), max(h, sizes.get(n, (0, 0))[1]))
    group_of, parent_group = frames((before, after), blocks or {})
    return pane_layouts(before, after, sizes, group_of, parent_group)


def before_after_figure(before: nx.DiGraph, after: nx.DiGraph, *, folded_layers: Collection = (),
                        removed_bns: Collection = (), notes: Mapping[str, str] | None = None,
                        diffs: Mapping[str, float] | None = None, shading: Shading | None = None,
                        blocks: Mapping[str, Block] | None = None, links: Mapping[str, Collection[str]] | None = None,
                        find: Mapping[str, str] | None = None, names: tuple[str, str] = ("before", "after"),
                        titles: tuple[str, str] | None = None, layouts: tuple[Layout, Layout] | None = None) -> dict:
    """The scene of two linked panes, ``before`` and ``after`` (called ``names``), on one layout.

    ``folded_layers`` are outlined, ``removed_bns`` dashed in the first pane and drawn as ghosts in
    the second; ``notes`` (node -> fold status text) go into the hover text; ``shading`` colours the
    nodes by a figure each (and says it in the hover text); ``diffs`` (node -> its check's |diff| /
    tolerance) is ``check_shading(diffs)``; ``blocks``: the blocks drawn open, as frames; ``links``:
    first-pane node -> its counterparts in the second beside itself; ``find``: what Find knows (name ->
    the node drawing it; by default every node drawn); ``titles``: what the panes' titles call them
    (by default their ``names``); ``layouts``: ``scene_layouts(before, after, blocks)``, when the caller
    has it already. ``with_view`` then picks what the view opens on
    and which nodes are ringed, without laying the graphs out again.
    """
    notes = notes or {}
    if diffs is not None:
        shading = check_shading(diffs)
    folded, removed = set(folded_layers), set(removed_bns)
    ghosts = [n for n in before if n in removed and n not in after]
    lines = _lines(before, after)
    group_of, parent_group = frames((before, after), blocks or {})
    layouts = layouts or scene_layouts(before, after, blocks)
    panes = []
    for index, (graph, layout, name) in enumerate(zip((before, after), layouts, names)):
        # shaded, both panes say the same: a node of both is its folded model's node
        pane_shading = None if shading is None else shading if index == 1 else shading.restricted(set(graph))
        nodes = []
        for node, role in graph.nodes(data="role"):
            fill = ROLE_COLORS.get(role, ROLE_COLORS["other"]) if pane_shading is None else pane_shading.color(node)
            stroke, width, dash = _OUTLINE, 1.0, False
            if node in folded:
                stroke, width = FOLDED_COLOR, 3.0
            elif node in removed and index == 0:
                stroke, width, dash = REMOVED_COLOR, 2.0, True
            nodes.append(_node(graph, node, layout, lines[index][node], (fill, stroke, width, dash),
                               hover_text(graph, node, notes.get(node), pane_shading)))
        if index == 1:
            nodes += [_node(before, n, layouts[0], lines[0][n], ("transparent", REMOVED_COLOR, 1.5, True),
                            hover_text(before, n, notes.get(n)), ghost=True) for n in ghosts]
        edges = [[list(p) for p in layout.edges[e]] for e in graph.edges if layout.edges.get(e)]
        used = {group_of.get(n) for n in graph}
        for group in list(used):
            while group is not None and (group := parent_group.get(group)) is not None:
                used.add(group)
        groups = [{"id": g, "label": (blocks or {})[g].label, "box": box.as_list()}
                  for g, box in layout.groups.items() if g in used]
        title = _title(graph, name if titles is None else titles[index])
        panes.append({"name": name, "title": title, "nodes": nodes, "edges": edges, "groups": groups})
    drawn_after = {str(m) for m in after} | {str(m) for m in ghosts}
    pairs = {str(n): sorted(({str(n)} | {str(m) for m in (links or {}).get(n, ())}) & drawn_after) for n in before}
    back: dict[str, set[str]] = {}
    for n, others in pairs.items():
        for m in others:
            back.setdefault(m, set()).add(n)
    known = {str(n): str(n) for g in (before, after) for n in g}
    return {"panes": panes, "size": [round(layouts[0].width, 2), round(layouts[0].height, 2)],
            "legend": _legend(before, bool(folded), bool(ghosts), shading),
            "scale": None if shading is None else shading.bar(),
            "links": {names[0]: {n: m for n, m in pairs.items() if m}, names[1]: {n: sorted(m) for n, m in back.items()}},
            "find": {**known, **{str(k): str(v) for k, v in (find or {}).items()}},
            "view": {"center": None, "selected": None, "found": None, "rings": [], "revision": ""}}


def _legend(graph: nx.DiGraph, folded: bool, removed: bool, shading: Shading | None) -> list[dict]:
    """What the colours say: the roles, or the shading's bands (the checks' error bands, int8 SQNR
    bands); then the outlines."""
    if shading is not None:
        entries = [{"label": name, "fill": shading.color_at(place), "stroke": _OUTLINE, "dash": False}
                   for name, place in shading.bands]
        entries.append({"label": shading.missing, "fill": _NO_DIFF, "stroke": _OUTLINE, "dash": False})
    else:
        present = {r for _, r in graph.nodes(data="role")}
        entries = [{"label": ROLE_LABELS[r], "fill": c, "stroke": _OUTLINE, "dash": False}
                   for r, c in ROLE_COLORS.items() if r in present]
    if folded:
        entries.append({"label": "BN folded into it", "fill": "transparent", "stroke": FOLDED_COLOR, "dash": False})
    if removed:
        entries.append({"label": "BN folded away", "fill": "transparent", "stroke": REMOVED_COLOR, "dash": True})
    return entries


def with_view(scene: dict, *, selected: str | None = None, center: str | None = None, found: str | None = None,
              rings: Collection[tuple[str, str]] = (), revision: str = "graph") -> dict:
    """A scene (``before_after_figure``) opening centred on ``center``, with ``selected`` marked in both
    panes, ``found`` ringed in every pane drawing it (a BN folding removed: its ghost) and each of
    ``rings`` ((pane, node) pairs: a failing layer and its counterpart) ringed and drawn on top; the
    scene given is not changed. The user's pan and zoom survive until ``revision`` changes."""
    return {**scene, "view": {"center": center, "selected": selected, "found": found,
                              "rings": [list(r) for r in rings], "revision": revision}}


def node_ids(scene: dict, pane: str) -> list[str]:
    """The nodes a pane draws (its ghosts included), in drawing order."""
    return [n["id"] for p in scene["panes"] if p["name"] == pane for n in p["nodes"]]
