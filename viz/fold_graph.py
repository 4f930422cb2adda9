"""The graph of a fold as the page and the HTML report draw it: what each node's hover says, which
nested models and blocks are open, where the view opens, which pair a click picks, what Find knows,
and the static picture. The scene is built by ``viz.interactive`` (blocks grouped by ``viz.blocks``)
and drawn by its script, in the page and in the HTML report."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import networkx as nx

from fold.core.graph import flatten
from fold.core.result import FoldResult
from fold.core.rules import Decision, fold_notes
from fold.core.verdict import TensorCheck
from viz.blocks import COLLAPSE_ABOVE, Block, BlockSummary, block_node, collapse, find_blocks, shown_as, summarise
from viz.interactive import Shading, before_after_figure, check_shading, scene_layouts, sqnr_shading, with_view
from viz.pictures import picture
from viz.static_graph import draw_before_after


def nested_models(graph: nx.DiGraph) -> list[str]:
    """The nested models of a graph (paths, outermost first), which the view can open."""
    found = []
    for node, data in graph.nodes(data=True):
        if "subgraph" in data:
            found.append(node)
            found += [f"{node}/{inner}" for inner in nested_models(data["subgraph"])]
    return found


def open_graphs(result: FoldResult, expanded: Collection[str]) -> tuple[nx.DiGraph, nx.DiGraph]:
    """Both graphs with the ``expanded`` nested models opened (the others stay one node each)."""
    return flatten(result.graph_before, expanded), flatten(result.graph_after, expanded)


def visible(node: str, graph: nx.DiGraph) -> str | None:
    """The node of ``graph`` that shows ``node``: itself, or the closed nested model holding it."""
    parts = node.split("/")
    for k in range(len(parts), 0, -1):
        if "/".join(parts[:k]) in graph:
            return "/".join(parts[:k])
    return None


def collapsed_at_first(graph: nx.DiGraph) -> bool:
    """Whether the view of ``graph`` opens with its blocks closed: above ``COLLAPSE_ABOVE`` nodes."""
    return len(graph) > COLLAPSE_ABOVE


@dataclass(frozen=True)
class BlockView:
    """Both open graphs (``open_graphs``) with some blocks closed, as the figure draws them.

    blocks:    every block of the graph before folding, by id (``viz.blocks.find_blocks``).
    summaries: each block's layers and BatchNorms, folded and skipped.
    before, after: the graphs drawn, a closed block one node (``viz.blocks.block_node``).
    shown, shown_after: node of each open graph -> the node that draws it.
    """

    blocks: dict[str, Block]
    summaries: dict[str, BlockSummary]
    before: nx.DiGraph
    after: nx.DiGraph
    shown: dict[str, str]
    shown_after: dict[str, str]


def block_summaries(result: FoldResult, before: nx.DiGraph, blocks: Mapping[str, Block]) -> dict[str, BlockSummary]:
    folded = [bn for d in result.folded_pairs for bn in d.bn_nodes]
    skipped = [bn for d in result.decisions if not d.folded for bn in d.bn_nodes]
    return {b: summarise(block, before, folded, skipped) for b, block in blocks.items()}


def block_view(result: FoldResult | None, graphs: tuple[nx.DiGraph, nx.DiGraph], opened: Collection[str] | None,
               blocks: Mapping[str, Block] | None = None,
               summaries: Mapping[str, BlockSummary] | None = None) -> BlockView:
    """The ``graphs`` (``open_graphs``) with every block closed but the ``opened`` ones (None: all
    open); ``blocks``, ``summaries``: the before graph's, when the caller has them already (``result``, the
    fold, is read only to summarise the blocks)."""
    before, after = graphs
    blocks = dict(blocks if blocks is not None else find_blocks(before))
    summaries = dict(summaries if summaries is not None else block_summaries(result, before, blocks))
    return BlockView(blocks, summaries, collapse(before, blocks, opened), collapse(after, blocks, opened),
                     shown_as(before, blocks, opened), shown_as(after, blocks, opened))


def drawn_graphs(graphs: tuple[nx.DiGraph, nx.DiGraph],
                 blocks: BlockView | None) -> tuple[nx.DiGraph, nx.DiGraph, dict[str, Block]]:
    """The graphs a view draws (``graphs``, or with ``blocks`` closed) and the blocks it frames."""
    if blocks is None:
        return graphs[0], graphs[1], find_blocks(graphs[0])
    return blocks.before, blocks.after, blocks.blocks


def layouts(graphs: tuple[nx.DiGraph, nx.DiGraph], blocks: BlockView | None = None) -> tuple:
    """The layout of a view (``viz.interactive.scene_layouts``), whatever it is coloured by."""
    return scene_layouts(*drawn_graphs(graphs, blocks))


def figure(result: FoldResult, *, expanded: Collection[str] = (), checks: Sequence[TensorCheck] | None = None,
           int8: tuple[Mapping[str, float], str] | None = None, graphs: tuple[nx.DiGraph, nx.DiGraph] | None = None,
           blocks: BlockView | None = None, laid_out: tuple | None = None) -> dict:
    """The interactive before/after scene of a fold (``viz.interactive.with_view`` then picks the view);
    ``checks`` (the verification's) colour the nodes by |diff| / tolerance, ``int8`` (folded layer -> its
    real int8 SQNR in dB, and which int8 model that is) by SQNR. ``graphs``: ``open_graphs(result,
    expanded)``, when the caller has them already; ``blocks``: the blocks to draw closed, each one node
    saying what it holds (its worst figure colours it, a blue outline says a BN was folded inside);
    the open ones are frames around their members; ``laid_out``: ``layouts(graphs, blocks)``, when the
    caller has it (a view drawn in several colourings is laid out once). Hovering a BN marks the layer
    it went into in the other pane, and back; Find knows every layer, one inside a closed block found
    as that block."""
    graphs = graphs or open_graphs(result, expanded)
    before, after, every = drawn_graphs(graphs, blocks)
    shown, shown_after, notes = {n: n for n in before}, {n: n for n in after}, fold_notes(result.decisions)
    if blocks is not None:
        shown, shown_after = blocks.shown, blocks.shown_after
        notes = {**notes, **{block_node(b): s.text() for b, s in blocks.summaries.items()}}
    folded = [shown.get(d.layer, d.layer) for d in result.folded_pairs]
    removed = [bn for d in result.folded_pairs for bn in d.bn_nodes if shown.get(bn, bn) == bn]
    links: dict[str, set[str]] = {}
    for d in result.folded_pairs:
        for bn in d.bn_nodes:
            links.setdefault(shown.get(bn, bn), set()).add(shown_after.get(d.layer, d.layer))
        links.setdefault(shown.get(d.layer, d.layer), set()).update(shown.get(bn, bn) for bn in d.bn_nodes)
    shading: Shading | None = None
    if checks is not None:
        shading = check_shading(_by_node(result, {c.layer: c.margin for c in checks}, shown_after, max))
    elif int8 is not None:
        shading = sqnr_shading(_by_node(result, int8[0], shown_after, min), int8[1])
    return before_after_figure(before, after, folded_layers=folded, removed_bns=removed, notes=notes,
                               shading=shading, blocks=every, links=links, find={**shown, **shown_after},
                               layouts=laid_out)


def _by_node(result: FoldResult, by_layer: Mapping[str, float], shown_after: Mapping[str, str],
             worst: Callable[[float, float], float]) -> dict[str, float]:
    """A figure per layer as a figure per drawn node: a folded layer's also on the node that gives its
    output (a GraphDef's BiasAdd named like the BN), and a closed block's the ``worst`` of those inside."""
    found = dict(by_layer)
    found.update({d.output_node: found[d.layer] for d in result.folded_pairs if d.layer in found and d.output_node})
    for node, value in list(found.items()):
        target = shown_after.get(node, node)
        if target != node:
            found[target] = worst(found[target], value) if target in found else value
    return found


def drawn(target: str, before: nx.DiGraph, blocks: BlockView | None = None) -> str | None:
    """The node of the figure that shows ``target``: a layer itself, or the closed nested model or
    block holding it; a block id: its node when closed, else its first layer (or the closed block
    inside holding that). ``before``: the figure's open "before" graph (``open_graphs``)."""
    if blocks is not None and target in blocks.blocks and target not in before:
        return blocks.shown[blocks.blocks[target].members[0]]
    node = visible(target, before)
    return node if blocks is None or node is None else blocks.shown.get(node, node)


def view(figure_: dict, before: nx.DiGraph, *, selected: str | None = None, center: str | None = None,
         found: str | None = None, blocks: BlockView | None = None, revision: str = "graph") -> dict:
    """The scene opening around ``center`` with ``selected`` marked and ``found`` ringed (each a layer or
    a block id, shown by the node that draws it: ``drawn``)."""
    def node(target: str | None) -> str | None:
        return drawn(target, before, blocks) if target else None

    return with_view(figure_, selected=node(selected), center=node(center), found=node(found), revision=revision)


def pair_index(decisions: Sequence[Decision], node: str) -> int | None:
    """The candidate pair a clicked node belongs to (as its layer or one of its BN nodes), if any."""
    for i, d in enumerate(decisions):
        if node == d.layer or node in d.bn_nodes or node == d.output_node:
            return i
    return None




def static_picture(result: FoldResult, fmt: str) -> bytes:
    """The whole before/after graph as a PNG or an SVG (the matplotlib drawing)."""
    return picture(draw_before_after(result.graph_before, result.graph_after,
                                     folded_layers=[d.layer for d in result.folded_pairs],
                                     removed_bns=[bn for d in result.folded_pairs for bn in d.bn_nodes]), fmt)
