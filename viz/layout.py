"""foldscope's layout of a model graph: ELK's layered algorithm (``viz.elk``) on boxes as large as
their labels, blocks as compound nodes drawn around their members, edges routed orthogonally
around the nodes. Every drawing of the graph reads it: the interactive one (``viz.interactive``,
the page's and the HTML report's) and the static picture (``viz.static_graph``).

Inputs are at the top and edges point down. Coordinates are pixels of the drawing at zoom 1, x to
the right, y down, (0, 0) the top-left corner; a ``Box`` is its left, top, width and height.

Two graphs drawn side by side (before and after a fold, an original and another tool's fold of
it) share one layout (``pane_layouts``): their union is laid out once, each pane draws its own
nodes where the union put them, so a node both have sits at the same place in both panes.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass

import networkx as nx

from viz.elk import elk_layout

Node = Hashable
Point = tuple[float, float]
Edge = tuple[Node, Node]

#: ELK's options: layered, downwards, blocks laid out with their members (not one by one).
#: Thoroughness 1 and no greedy switch keep a 429-node graph under half a second; the crossings
#: they would save are few in a network's mostly linear graph.
OPTIONS = {
    "elk.algorithm": "layered",
    "elk.direction": "DOWN",
    "elk.hierarchyHandling": "INCLUDE_CHILDREN",
    "elk.edgeRouting": "ORTHOGONAL",
    "elk.layered.thoroughness": "1",
    "elk.layered.crossingMinimization.greedySwitch.type": "OFF",
    "elk.spacing.nodeNode": "18",
    "elk.layered.spacing.nodeNodeBetweenLayers": "26",
    "elk.spacing.edgeNode": "10",
    "elk.layered.spacing.edgeNodeBetweenLayers": "10",
    "elk.spacing.edgeEdge": "6",
    "elk.layered.spacing.edgeEdgeBetweenLayers": "6",
    "elk.padding": "[top=12,left=12,bottom=12,right=12]",
}
#: Room inside a block's frame: its name above its members.
GROUP_PADDING = {"top": 24, "left": 10, "bottom": 10, "right": 10}


@dataclass(frozen=True)
class Box:
    """A rectangle: left ``x``, top ``y``, width ``w``, height ``h``."""

    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    @property
    def center(self) -> Point:
        return self.x + self.w / 2, self.y + self.h / 2

    def overlaps(self, other: Box) -> bool:
        """Whether the two rectangles share more than an edge."""
        return self.x < other.right and other.x < self.right and self.y < other.bottom and other.y < self.bottom

    def contains(self, other: Box) -> bool:
        return self.x <= other.x and self.y <= other.y and other.right <= self.right and other.bottom <= self.bottom

    def as_list(self) -> list[float]:
        return [round(self.x, 2), round(self.y, 2), round(self.w, 2), round(self.h, 2)]


@dataclass(frozen=True)
class Layout:
    """Where everything is drawn: ``nodes`` (node -> its box), ``edges`` ((u, v) -> the points of its
    route, from u's border to v's), ``groups`` (block -> its frame, members inside), and the size."""

    nodes: dict[Node, Box]
    edges: dict[Edge, tuple[Point, ...]]
    groups: dict[str, Box]
    width: float
    height: float


def layered_layout(graph: nx.DiGraph, sizes: Mapping[Node, tuple[float, float]],
                   group_of: Mapping[Node, str] | None = None,
                   parent_group: Mapping[str, str | None] | None = None) -> Layout:
    """ELK's layout of ``graph``: each node a box of its ``sizes`` (width, height); ``group_of``: the
    innermost block a node is drawn in (none: at the top), ``parent_group``: the block around each
    block (a block missing from it: at the top). A block holding no node is not drawn."""
    group_of, parent_group = dict(group_of or {}), dict(parent_group or {})
    nodes = list(graph)
    ids = {n: f"n{i}" for i, n in enumerate(nodes)}
    groups = _used_groups(group_of, parent_group)
    gids = {g: f"g{i}" for i, g in enumerate(groups)}
    elk_nodes = {ids[n]: {"id": ids[n], "width": float(sizes[n][0]), "height": float(sizes[n][1])} for n in nodes}
    elk_nodes.update({gids[g]: {"id": gids[g], "children": [], "layoutOptions": {"elk.padding": _padding()}}
                      for g in groups})
    root: list[dict] = []
    for n in nodes:
        _child_list(group_of.get(n), gids, elk_nodes, root).append(elk_nodes[ids[n]])
    for g in groups:
        _child_list(parent_group.get(g), gids, elk_nodes, root).append(elk_nodes[gids[g]])
    edges = [(u, v) for u, v in graph.edges if u != v]
    elk = {"id": "root", "layoutOptions": OPTIONS, "children": root,
           "edges": [{"id": f"e{i}", "sources": [ids[u]], "targets": [ids[v]]} for i, (u, v) in enumerate(edges)]}
    laid = elk_layout(elk)
    boxes, origin = _boxes(laid)
    names = {**{ids[n]: n for n in nodes}}
    group_names = {gids[g]: g for g in groups}
    routes = _routes(laid, origin)
    return Layout({names[i]: b for i, b in boxes.items() if i in names},
                  {edges[int(i[1:])]: r for i, r in routes.items()},
                  {group_names[i]: b for i, b in boxes.items() if i in group_names},
                  float(laid.get("width", 0.0)), float(laid.get("height", 0.0)))


def _padding() -> str:
    return "[" + ",".join(f"{side}={value}" for side, value in GROUP_PADDING.items()) + "]"


def _used_groups(group_of: Mapping[Node, str], parent_group: Mapping[str, str | None]) -> list[str]:
    """The blocks holding a node, with every block around them, outermost first, in first-use order."""
    found: dict[str, None] = {}
    for group in dict.fromkeys(g for g in group_of.values() if g is not None):
        chain = []
        while group is not None and group not in found and group not in chain:
            chain.append(group)
            group = parent_group.get(group)
        found.update(dict.fromkeys(reversed(chain)))
    return list(found)


def _child_list(group: str | None, gids: Mapping[str, str], elk_nodes: Mapping[str, dict], root: list) -> list:
    return root if group is None or group not in gids else elk_nodes[gids[group]]["children"]


def _boxes(graph: dict) -> tuple[dict[str, Box], dict[str, Point]]:
    """Every node's box in the root's coordinates, and every node's origin (what its children and
    the edges it contains are placed against)."""
    boxes: dict[str, Box] = {}
    origin: dict[str, Point] = {"root": (0.0, 0.0)}

    def visit(node: dict, ox: float, oy: float) -> None:
        for child in node.get("children", ()):
            x, y = ox + child.get("x", 0.0), oy + child.get("y", 0.0)
            boxes[child["id"]] = Box(x, y, child.get("width", 0.0), child.get("height", 0.0))
            origin[child["id"]] = (x, y)
            visit(child, x, y)

    visit(graph, 0.0, 0.0)
    return boxes, origin


def _routes(graph: dict, origin: Mapping[str, Point]) -> dict[str, tuple[Point, ...]]:
    """Edge id -> the points of its route in the root's coordinates (ELK places an edge's sections
    against its container: the innermost node holding both ends)."""
    found: dict[str, tuple[Point, ...]] = {}

    def visit(node: dict) -> None:
        for edge in node.get("edges", ()):
            ox, oy = origin.get(edge.get("container", "root"), (0.0, 0.0))
            points: list[Point] = []
            for section in edge.get("sections", ()):
                for p in (section["startPoint"], *section.get("bendPoints", ()), section["endPoint"]):
                    point = (round(ox + p["x"], 2), round(oy + p["y"], 2))
                    if not points or points[-1] != point:
                        points.append(point)
            found[edge["id"]] = tuple(points)
        for child in node.get("children", ()):
            visit(child)

    visit(graph)
    return found


def pane_layouts(before: nx.DiGraph, after: nx.DiGraph, sizes: Mapping[Node, tuple[float, float]],
                 group_of: Mapping[Node, str] | None = None,
                 parent_group: Mapping[str, str | None] | None = None) -> tuple[Layout, Layout]:
    """Both graphs on one layout: their union laid out once (``layered_layout``); each pane gets its
    own nodes' boxes and its own edges' routes, the blocks' frames alike.

    An edge of ``after`` that ``before`` draws as a path through nodes ``after`` lacks (the BN a
    fold removed, whose ghost the "after" pane draws where it was) follows that path, so the union
    gets no edge of its own for it. ``sizes`` covers both graphs' nodes."""
    union = nx.DiGraph()
    union.add_nodes_from(before)
    union.add_nodes_from(after)
    union.add_edges_from(before.edges)
    through = {}
    for u, v in after.edges:
        if before.has_edge(u, v):
            continue
        path = _path_through(before, u, v, set(after))
        if path is None:
            union.add_edge(u, v)
        else:
            through[(u, v)] = path
    laid = layered_layout(union, sizes, group_of, parent_group)

    def pane(graph: nx.DiGraph) -> Layout:
        edges = {}
        for u, v in graph.edges:
            path = through.get((u, v)) if graph is after else None
            if path is None:
                edges[(u, v)] = laid.edges.get((u, v), ())
            else:
                edges[(u, v)] = tuple(p for a, b in zip(path, path[1:]) for p in laid.edges.get((a, b), ()))
        return Layout({n: laid.nodes[n] for n in graph}, edges, laid.groups, laid.width, laid.height)

    return pane(before), pane(after)


def _path_through(graph: nx.DiGraph, u: Node, v: Node, kept: Collection[Node]) -> list[Node] | None:
    """A shortest path u -> ... -> v in ``graph`` whose inner nodes are all missing from ``kept``."""
    if u not in graph or v not in graph:
        return None
    parents: dict[Node, Node] = {u: u}
    frontier = [u]
    while frontier:
        following = []
        for node in frontier:
            for nxt in graph.successors(node):
                if nxt in parents:
                    continue
                if nxt == v:
                    path = [v, node]
                    while path[-1] != u:
                        path.append(parents[path[-1]])
                    return path[::-1]
                if nxt not in kept:
                    parents[nxt] = node
                    following.append(nxt)
        frontier = following
    return None


def neighbourhood(graph: nx.DiGraph, node: Node, hops: int) -> nx.DiGraph:
    """The subgraph of nodes within ``hops`` edges of ``node``, edge direction ignored."""
    if node not in graph:
        raise ValueError(f"Node {node!r} is not in graph {graph.graph.get('name', '')!r}.")
    near = nx.single_source_shortest_path_length(graph.to_undirected(as_view=True), node, cutoff=hops)
    return graph.subgraph(near).copy()
