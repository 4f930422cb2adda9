"""The page's view of a fold another tool made: the two graphs side by side on one layout (the
candidate's nodes named after the original's they line up with), where each BatchNorm went, the
failing layer ringed with its counterpart, what a node's panel says, and the blocks."""

from __future__ import annotations

from collections.abc import Collection

import networkx as nx

from demo.graph_view import BlockView, block_view, drawn
from demo.node_panel import NodePanel, block_attributes, layer_attributes, weight_shapes
from fold.check import CheckResult, check_notes
from fold.core.graph import flatten
from fold.core.verdict import TensorCheck
from viz.blocks import block_of, find_blocks, summarise
from viz.interactive import before_after_figure, with_view

#: The panes' names (the scene's, the rings').
PANES = ("original", "candidate")


def aligned_graphs(result: CheckResult) -> tuple[nx.DiGraph, nx.DiGraph, dict[str, str]]:
    """Both graphs (nested models opened), the candidate's nodes named as the original's nodes they
    line up with (a folded layer as the original layer, a shared tensor as itself, a node of the same
    name and op as that node), so that the layout keeps them in place; and candidate id -> shown id.
    A candidate node lining up with nothing keeps its name ("(candidate)" added where the original
    has that name for another op): the layout places it among its own graph's neighbours."""
    before, after = flatten(result.original.graph), flatten(result.candidate.graph)
    corr_pairs = {f.into: f.layer for f in result.fates if f.status == "folded" and f.into}
    shared = {c: o for o, c in _shared(result)}
    names: dict[str, str] = {}
    taken: set[str] = set()
    for node in after:
        shown = corr_pairs.get(node) or shared.get(node)
        if shown is None and node in before and before.nodes[node].get("op") == after.nodes[node].get("op"):
            shown = node
        if shown is None or shown in taken:
            shown = f"{node} (candidate)" if node in before or node in taken else node
        taken.add(shown)
        names[node] = shown
    return before, nx.relabel_nodes(after, names), names


def _shared(result: CheckResult) -> list[tuple[str, str]]:
    """(original, candidate) node pairs compared end to end."""
    return [(c.tensor, c.layer) for c in result.checked.verification.layers if c.role == "shared"]


def check_blocks(result: CheckResult, graphs: tuple[nx.DiGraph, nx.DiGraph], opened: Collection[str] | None,
                 every: BlockView | None = None) -> BlockView:
    """The aligned graphs with every block closed but the ``opened`` ones (None: all open); a block's
    summary counts the BatchNorms the candidate folded and those it kept."""
    before = graphs[0]
    if every is None:
        blocks = find_blocks(before)
        folded = [bn for f in result.fates if f.status == "folded" for bn in f.bn.split("+")]
        kept = [bn for f in result.fates if f.status == "kept" for bn in f.bn.split("+")]
        summaries = {b: summarise(block, before, folded, kept) for b, block in blocks.items()}
    else:
        blocks, summaries = every.blocks, every.summaries
    return block_view(None, graphs[:2], opened, blocks, summaries)


def failing(result: CheckResult) -> TensorCheck | None:
    """The layer to look at first: the worst folded layer that failed, else the worst failing
    tensor; None when every check passed."""
    v = result.checked.verification
    worst = v.worst_layer()
    if worst is not None and not worst.passed:
        return worst
    worst = v.worst()
    return worst if worst is not None and not worst.passed else None


def figure(result: CheckResult, graphs: tuple[nx.DiGraph, nx.DiGraph, dict[str, str]],
           blocks: BlockView | None = None) -> dict:
    """The two graphs side by side: the layers a BN went into outlined, the BNs it removed as ghosts,
    every compared node coloured by its check; a node and its counterpart marked together on hover.
    ``blocks``: the blocks to draw closed (``check_blocks``); the open ones are frames."""
    before, after, names = graphs
    every = find_blocks(before) if blocks is None else blocks.blocks
    shown = {n: n for n in before} if blocks is None else blocks.shown
    shown_after = {n: n for n in after} if blocks is None else blocks.shown_after
    if blocks is not None:
        before, after = blocks.before, blocks.after
    fates = [f for f in result.fates if f.status == "folded"]
    folded = [shown.get(f.layer, f.layer) for f in fates if f.into]
    removed = [bn for f in fates for bn in f.bn.split("+") if shown.get(bn, bn) == bn]
    margins: dict[str, float] = {}
    for c in result.checked.verification.layers:
        node = shown_after.get(names.get(c.layer, c.layer), names.get(c.layer, c.layer))
        margins[node] = max(margins.get(node, 0.0), c.margin)
    links: dict[str, set[str]] = {}
    for f in fates:
        into = shown_after.get(f.layer, f.layer) if f.into else None
        for bn in f.bn.split("+"):
            links.setdefault(shown.get(bn, bn), set()).update([into] if into else [])
    for c in result.checked.verification.layers:  # a compared tensor: the candidate's node and the original's
        links.setdefault(shown.get(c.tensor, c.tensor), set()).add(shown_after.get(names.get(c.layer, c.layer),
                                                                                   names.get(c.layer, c.layer)))
    notes = check_notes(result.fates)
    if blocks is not None:
        notes = {**notes, **{f"[{b}]": s.text() for b, s in blocks.summaries.items()}}
    return before_after_figure(before, after, folded_layers=folded, removed_bns=removed, notes=notes, diffs=margins,
                               blocks=every, links=links, find={**shown, **shown_after}, names=PANES,
                               titles=(f"original ({result.original_name})", f"candidate ({result.candidate_name})"))


def view(scene: dict, result: CheckResult, graphs: tuple[nx.DiGraph, nx.DiGraph, dict[str, str]], *,
         blocks: BlockView | None = None, selected: str | None = None, center: str | None = None,
         found: str | None = None, revision: str = "check") -> dict:
    """The scene opening on ``center`` (by default the failing layer), with the failing layer ringed in
    the candidate's pane and its counterpart in the original's, both drawn on top."""
    before, _, names = graphs
    worst = failing(result)
    rings = []
    if worst is not None:
        layer = names.get(worst.layer, worst.layer)
        counterpart = layer if layer in before else worst.tensor
        rings = [(PANES[1], drawn_node(layer, before, blocks)), (PANES[0], drawn_node(counterpart, before, blocks))]
        center = center or rings[0][1]
    return with_view(scene, selected=drawn_node(selected, before, blocks), center=drawn_node(center, before, blocks),
                     found=drawn_node(found, before, blocks), rings=[r for r in rings if r[1]], revision=revision)


def drawn_node(target: str | None, before: nx.DiGraph, blocks: BlockView | None) -> str | None:
    """The node of the scene that draws ``target``: a node of either graph, or the closed block holding it."""
    if target is None:
        return None
    if blocks is not None and target in blocks.shown_after:
        return blocks.shown_after[target]
    return drawn(target, before, blocks) or target


def panel(result: CheckResult, graphs: tuple[nx.DiGraph, nx.DiGraph, dict[str, str]], node: str,
          blocks: BlockView | None = None) -> NodePanel | None:
    """What the node panel says about a drawn node: a layer of either model (its attributes in the
    original where it has them, else in the candidate), what the candidate did with it and its own
    check; a closed block's summary."""
    before, after, names = graphs
    block = block_of(node, blocks.blocks) if blocks is not None else None
    if block is not None:
        return NodePanel(f"block {block}", block_attributes(blocks, block), [], blocks.summaries[block].text(),
                         block=block)
    graph = before if node in before else after if node in after else None
    if graph is None:
        return None
    shown = {v: k for k, v in names.items()}
    checks = [c for c in result.checked.verification.layers if names.get(c.layer, c.layer) == node or c.tensor == node]
    check = "; ".join(f"{'PASS' if c.passed else 'FAIL'} ({c.role}, {c.mode}): the candidate's {c.layer} against the "
                      f"original's {c.tensor}, |diff| at {c.margin:.2g} of its tolerance, max abs diff "
                      f"{c.max_abs_diff:.2e}" for c in checks)
    where = "in both models" if node in before and node in after else \
        "in the original only" if node in before else f"in the candidate only (named {shown.get(node, node)} there)"
    return NodePanel(str(node), [*layer_attributes(graph, node), ("drawn", where)], weight_shapes(graph, node),
                     check_notes(result.fates).get(node, ""), check)


def fates_table(result: CheckResult) -> list[dict]:
    """One row per BatchNorm of the original: what the candidate did with it, and its check."""
    checks = {c.layer: c for c in result.checked.verification.folded_layers}
    rows = []
    for f in result.fates:
        check = checks.get(f.into) if f.status == "folded" else None
        rows.append({
            "bn": f.bn, "original layer": f.layer, "status": f.status,
            "into": f.into or ("" if f.status == "kept" else "not lined up"),
            "check": "" if f.status == "kept" else ("at outputs" if check is None else
                                                   "PASS" if check.passed else "FAIL"),
            "layer max rel diff": None if check is None else check.max_rel_diff,
        })
    return rows
