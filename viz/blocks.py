"""Blocks of a model graph: its nodes grouped by their names, as Model Explorer groups them into
namespaces, so that a 400-layer graph can be read one block at a time. Pure networkx.

A node's blocks, outermost first, come from its id: every "/" scope ("inner/d" is in "inner", an
opened nested model; "/layer1/layer1.0/conv1/Conv" is in "/layer1", then "/layer1/layer1.0", ...),
and within each part of the id the stage and block prefixes Keras applications name their layers
with ("conv2_block1_0_bn" is in "conv2", then "conv2_block1"; "block_3_expand" in "block_3").
A block of one node is no block, a block holding what its parent holds adds nothing, and one
holding nearly the whole graph (a "model/" scope around every op) collapses nothing worth it:
those are dropped.

A collapsed block is drawn as one node, ``block_node(block)``, with the edges its members had to
the rest of the graph.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import networkx as nx

#: Graphs with more nodes than this open with their blocks collapsed (as many as name every node).
COLLAPSE_ABOVE = 200
#: A block with this share of the graph's nodes or more is a wrapper, not a block.
_WRAPPER_SHARE = 0.9
_STAGE = re.compile(r"([A-Za-z]+\d+)_")  # conv2_..., pool3_..., down0_...
_BLOCK = re.compile(r"([A-Za-z]+\d+_block_?\d+[a-z]?)_|(block_?\d+[a-z]?)_")  # conv2_block1_..., block_3_..., block2a_...


@dataclass(frozen=True)
class Block:
    """A group of nodes: ``id`` (its place in the names, unique), ``parent`` (the enclosing block,
    None at the top), ``members`` (every node inside, nested blocks' too, in graph order)."""

    id: str
    parent: str | None
    members: tuple[str, ...]

    @property
    def label(self) -> str:
        """The block's own name, without the scopes around it."""
        return self.id.rstrip("/").rsplit("/", 1)[-1] or self.id


def _name_prefixes(part: str) -> list[str]:
    """The stage and block prefixes of one part of a node id, outermost first."""
    found = []
    stage = _STAGE.match(part)
    if stage:
        found.append(stage.group(1))
    block = _BLOCK.match(part)
    if block:
        found.append(block.group(1) or block.group(2))
    return [p for p in found if p != part]


def block_path(node: str) -> list[str]:
    """Every block ``node``'s id puts it in, outermost first, before any is dropped."""
    parts = str(node).split("/")
    path = []
    for i, part in enumerate(parts):
        base = "/".join(parts[:i]) + "/" if i else ""
        path += [base + prefix for prefix in _name_prefixes(part)]
        if i < len(parts) - 1 and part:
            path.append("/".join(parts[: i + 1]))
    return path


def find_blocks(graph: nx.DiGraph) -> dict[str, Block]:
    """The blocks of ``graph``, by id, outermost first (``block_path``, less the blocks that add nothing)."""
    paths = {n: block_path(n) for n in graph}
    members: dict[str, list[str]] = {}
    for node, path in paths.items():
        for block in path:
            members.setdefault(block, []).append(node)
    wrapper = max(2, _WRAPPER_SHARE * len(graph)) if len(graph) >= 20 else len(graph) + 1
    kept: set[str] = set()
    for node, path in paths.items():
        parent_size = len(graph)
        for block in path:
            size = len(members[block])
            if block not in kept and (size < 2 or size >= wrapper or size == parent_size):
                continue
            kept.add(block)
            parent_size = size
    # a block kept through one node's path is kept for all: recompute parents over the kept ones
    blocks: dict[str, Block] = {}
    for node, path in paths.items():
        parent = None
        for block in (b for b in path if b in kept):
            if block not in blocks:
                blocks[block] = Block(block, parent, tuple(members[block]))
            parent = block
    return blocks


def block_node(block: str) -> str:
    """The id of the node a collapsed block is drawn as."""
    return f"[{block}]"


def block_of(node: str, blocks: Mapping[str, Block]) -> str | None:
    """The block a drawn node stands for (None for a layer)."""
    node = str(node)
    inner = node[1:-1] if node.startswith("[") and node.endswith("]") else None
    return inner if inner in blocks else None


def ancestors(block: str, blocks: Mapping[str, Block]) -> list[str]:
    """The blocks around ``block``, innermost first."""
    found, parent = [], blocks[block].parent
    while parent is not None:
        found.append(parent)
        parent = blocks[parent].parent
    return found


def open_with_parents(opened: Collection[str], blocks: Mapping[str, Block]) -> set[str]:
    """The ``opened`` blocks and every block around them (opening an inner block opens its parents)."""
    found = set()
    for block in opened:
        if block in blocks:
            found.add(block)
            found.update(ancestors(block, blocks))
    return found


def shown_as(graph: nx.DiGraph, blocks: Mapping[str, Block], opened: Collection[str] | None) -> dict[str, str]:
    """Node -> the node that draws it: itself, or its outermost closed block's node. ``opened``:
    the blocks open (their parents open with them); None: all of them."""
    if opened is None:
        return {n: n for n in graph}
    is_open = open_with_parents(opened, blocks)
    shown = {}
    for node in graph:
        closed = next((b for b in block_path(node) if b in blocks and b not in is_open), None)
        shown[node] = node if closed is None else block_node(closed)
    return shown


def collapse(graph: nx.DiGraph, blocks: Mapping[str, Block], opened: Collection[str] | None) -> nx.DiGraph:
    """``graph`` with every closed block (``shown_as``) drawn as one node: op "block", role
    "block", ``block`` its id and ``layers`` how many of the graph's nodes it holds; the edges
    its members had to the rest of the graph, once each. ``graph`` is not changed."""
    if opened is None:
        return graph
    shown = shown_as(graph, blocks, opened)
    out = nx.DiGraph(**graph.graph)
    layers: dict[str, int] = {}
    for node, data in graph.nodes(data=True):
        target = shown[node]
        if target == node:
            out.add_node(node, **data)
        else:
            layers[target] = layers.get(target, 0) + 1
    for target, count in layers.items():
        block = target[1:-1]
        out.add_node(target, op="block", role="block", block=block, layers=count, config={}, weights={},
                     namespace=blocks[block].parent or "")
    for u, v, data in graph.edges(data=True):
        su, sv = shown[u], shown[v]
        if su != sv and not out.has_edge(su, sv):
            out.add_edge(su, sv, **data)
    return out


@dataclass(frozen=True)
class BlockSummary:
    """What a block holds: its layers, its BatchNorms (one made of several ops counts once) and
    how many of them the fold folded and skipped."""

    layers: int
    bns: int
    folded: int
    skipped: int

    def text(self) -> str:
        bns = f"{self.bns} BatchNorm{'s' * (self.bns != 1)}"
        fate = f": {self.folded} folded, {self.skipped} skipped" if self.bns else ""
        return f"{self.layers} layers, {bns}{fate}"


def summarise(block: Block, graph: nx.DiGraph, folded_bns: Collection[str],
              skipped_bns: Collection[str]) -> BlockSummary:
    """The summary of ``block`` in ``graph`` (the graph before folding): ``folded_bns`` and
    ``skipped_bns`` are the BN nodes of the folded and the skipped pairs."""
    groups: dict[str, list[str]] = {}
    for node in block.members:
        data = graph.nodes[node]
        if data.get("role") == "bn":
            groups.setdefault(data.get("bn_group", node), []).append(node)
    folded, skipped = set(folded_bns), set(skipped_bns)
    return BlockSummary(len(block.members), len(groups),
                        sum(any(n in folded for n in parts) for parts in groups.values()),
                        sum(any(n in skipped for n in parts) for parts in groups.values()))
