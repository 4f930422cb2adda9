"""foldscope's layered layout of a model graph (inputs at the top, edges pointing down), which both
graph figures draw: the matplotlib picture (``viz.static_graph``) and the interactive Plotly one
(``viz.interactive``). Pure networkx and NumPy, no drawing.

A small Sugiyama pipeline: longest-path layers, virtual "bend" vertices where an edge skips
layers (so skip connections get their own lane), barycenter sweeps against crossings, then x
coordinates pulled towards neighbours with a minimum gap of 1. Coordinates: y = -layer
(sources at 0), x in node widths.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

import networkx as nx
import numpy as np

Node = Hashable
Point = tuple[float, float]
Bends = dict[tuple[Node, Node], list[Point]]

_SWEEPS = 4


@dataclass(frozen=True)
class _Bend:
    """A virtual vertex where the long edge (u, v) crosses a layer."""

    u: Node
    v: Node
    level: int


def layered_layout(graph: nx.DiGraph) -> dict[Node, Point]:
    """Deterministic layered positions: y = -depth (inputs at 0, every edge points down),
    x ordered against crossings and at least 1 apart within a layer."""
    return layout_with_bends(graph)[0]


def layout_with_bends(graph: nx.DiGraph) -> tuple[dict[Node, Point], Bends]:
    """Node positions and, for every edge skipping layers, the points where it crosses them."""
    level = _levels(graph)
    proper = _proper_graph(graph, level)
    layers = _initial_layers(proper, level)
    _reduce_crossings(layers, proper)
    x = _x_coordinates(layers, proper)
    pos = {n: (x[n], -float(level[n])) for n in graph}
    bends: Bends = {}
    for vertex in proper:
        if isinstance(vertex, _Bend):
            bends.setdefault((vertex.u, vertex.v), []).append((x[vertex], -float(vertex.level)))
    return pos, bends


def _forward_edges(graph: nx.DiGraph) -> list[tuple[Node, Node]]:
    """The edges that go forward in reverse DFS postorder: all of them for a DAG; cycles
    (a shared layer fed its own output) lose their back edges."""
    rank = {n: i for i, n in enumerate(reversed(list(nx.dfs_postorder_nodes(graph))))}
    return [(u, v) for u, v in graph.edges if rank[u] < rank[v]]


def _levels(graph: nx.DiGraph) -> dict[Node, int]:
    """Longest-path depth of every node from the sources."""
    dag = nx.DiGraph(_forward_edges(graph))
    dag.add_nodes_from(graph)
    level: dict[Node, int] = {}
    for n in nx.topological_sort(dag):
        level[n] = max((level[p] + 1 for p in dag.predecessors(n)), default=0)
    return level


def _proper_graph(graph: nx.DiGraph, level: dict[Node, int]) -> nx.DiGraph:
    """The layered graph whose edges all span one layer: long edges run through bends."""
    proper = nx.DiGraph()
    proper.add_nodes_from(graph)
    for u, v in graph.edges:
        if level[v] <= level[u]:
            continue  # a back edge of a cycle: drawn, but not laid out
        chain = [u, *(_Bend(u, v, k) for k in range(level[u] + 1, level[v])), v]
        proper.add_edges_from(zip(chain, chain[1:]))
    return proper


def _level_of(vertex: Node, level: dict[Node, int]) -> int:
    return vertex.level if isinstance(vertex, _Bend) else level[vertex]


def _initial_layers(proper: nx.DiGraph, level: dict[Node, int]) -> list[list[Node]]:
    """Vertices per layer in depth-first order, which keeps chains together from the start."""
    layers: list[list[Node]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for vertex in nx.dfs_preorder_nodes(proper):
        layers[_level_of(vertex, level)].append(vertex)
    return layers


def _reduce_crossings(layers: list[list[Node]], proper: nx.DiGraph) -> None:
    """Barycenter sweeps down and up; keeps the ordering with the fewest crossings (in place)."""
    best, fewest = [list(layer) for layer in layers], _crossings(layers, proper)
    for _ in range(_SWEEPS):
        for layer, above in zip(layers[1:], layers):
            _sort_by_barycenter(layer, above, proper.predecessors)
        for layer, below in zip(reversed(layers[:-1]), reversed(layers[1:])):
            _sort_by_barycenter(layer, below, proper.successors)
        count = _crossings(layers, proper)
        if count < fewest:
            best, fewest = [list(layer) for layer in layers], count
    layers[:] = best


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default


def _sort_by_barycenter(layer: list[Node], fixed: list[Node], neighbours: Callable) -> None:
    """Order ``layer`` by the mean index of each vertex's neighbours in the ``fixed`` layer
    (a vertex without any keeps its relative place)."""
    index = {v: i for i, v in enumerate(fixed)}
    own = {v: i * len(fixed) / len(layer) for i, v in enumerate(layer)}
    layer.sort(key=lambda v: _mean([index[n] for n in neighbours(v)], own[v]))


def _crossings(layers: list[list[Node]], proper: nx.DiGraph) -> int:
    """Number of edge crossings between consecutive layers."""
    total = 0
    for upper, lower in zip(layers, layers[1:]):
        index = {v: i for i, v in enumerate(lower)}
        ends = np.array([(i, index[w]) for i, v in enumerate(upper) for w in proper.successors(v)]).reshape(-1, 2)
        a, b = ends[:, 0], ends[:, 1]
        total += int(np.sum((a[:, None] < a[None, :]) & (b[:, None] > b[None, :])))
    return total


def _x_coordinates(layers: list[list[Node]], proper: nx.DiGraph) -> dict[Node, float]:
    """x per vertex: start centred, then alternately pull each layer towards the layer above / below."""
    x = {v: i - (len(layer) - 1) / 2 for layer in layers for i, v in enumerate(layer)}
    for _ in range(_SWEEPS):
        for layer in layers[1:]:
            _pull(layer, proper.predecessors, x)
        for layer in reversed(layers[:-1]):
            _pull(layer, proper.successors, x)
    return x


def _pull(layer: list[Node], neighbours: Callable, x: dict[Node, float]) -> None:
    """Move each vertex to the mean x of its neighbours, keeping the order and a gap of 1."""
    wanted = [_mean([x[n] for n in neighbours(v)], x[v]) for v in layer]
    for v, value in zip(layer, _separate(wanted)):
        x[v] = value


def _separate(wanted: list[float]) -> list[float]:
    """Closest-to-``wanted`` increasing positions at least 1 apart: the mean of pushing right and pushing left."""
    right = list(wanted)
    for i in range(1, len(right)):
        right[i] = max(right[i], right[i - 1] + 1)
    left = list(wanted)
    for i in range(len(left) - 2, -1, -1):
        left[i] = min(left[i], left[i + 1] - 1)
    return [(r + l) / 2 for r, l in zip(right, left)]


def neighbourhood(graph: nx.DiGraph, node: Node, hops: int) -> nx.DiGraph:
    """The subgraph of nodes within ``hops`` edges of ``node``, edge direction ignored."""
    if node not in graph:
        raise ValueError(f"Node {node!r} is not in graph {graph.graph.get('name', '')!r}.")
    near = nx.single_source_shortest_path_length(graph.to_undirected(as_view=True), node, cutoff=hops)
    return graph.subgraph(near).copy()


def _with_new_nodes(pos: dict[Node, Point], graph: nx.DiGraph) -> dict[Node, Point]:
    """Positions for ``graph``: nodes in ``pos`` keep theirs; others get a column each to the right,
    at their depth in ``graph``."""
    new = [n for n in graph if n not in pos]
    if not new:
        return {n: pos[n] for n in graph}
    right = max((x for x, _ in pos.values()), default=-1.0) + 1
    own = layered_layout(graph)
    placed = {n: (right + i, own[n][1]) for i, n in enumerate(new)}
    return {n: pos[n] if n in pos else placed[n] for n in graph}


def before_after_positions(before: nx.DiGraph, after: nx.DiGraph) -> tuple[dict, dict, Bends]:
    """Positions of both graphs on one layout: ``before``'s layered layout (with the bends of its
    long edges), and the same positions for every node ``after`` shares with it."""
    pos, bends = layout_with_bends(before)
    return pos, _with_new_nodes(pos, after), bends
