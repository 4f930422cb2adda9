"""A fold's and a check's tables and figures as data, what the HTML report (``fold.outputs.html``) and the
page (``foldscope_app``) both show: the candidate pairs with each folded layer's own check, why pairs
were left alone, a folded pair's per-channel numbers and figure, both models' outputs, and a check's two
graphs on one layout (the failing layer ringed with its counterpart, the blocks) with where each
BatchNorm went. Logic only: the figures are drawn by ``viz``."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
from matplotlib.figure import Figure

from fold.core.affine import per_channel_range
from fold.core.graph import flatten
from fold.core.result import FoldResult
from fold.core.rules import Decision
from fold.core.verdict import TensorCheck
from fold.core.verification import OutputSpec, Verification
from fold.outputs.report import FORMS, layer_verdict
from fold.tools.check import CheckResult, check_notes
from viz import plot_channels, plot_heatmaps, plot_vectors, select_slice
from viz.blocks import find_blocks, summarise
from viz.channels import channels_data
from viz.fold_graph import BlockView, block_view, drawn
from viz.interactive import before_after_figure, with_view

# -- a fold --------------------------------------------------------------------------------------

def decision_rows(decisions: Sequence[Decision]) -> list[dict]:
    """One row per candidate pair (``Decision.to_dict``), every row with every column, "" where empty;
    what each chain is ("is", after the BN) only when not every pair is a BatchNorm, as the command
    line shows it."""
    mixed = any(d.form != "bn" for d in decisions)
    rows = []
    for d in decisions:
        row = d.to_dict()
        form = row.pop("form")
        cells = list(row.items())
        if mixed:
            cells.insert(2, ("is", FORMS[form]))
        rows.append(dict(cells))
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return [{key: "" if row.get(key) is None else row[key] for key in columns} for row in rows]


def pairs_table(result: FoldResult, verification: Verification) -> list[dict]:
    """The candidate pairs with, after their layer, BN, kind and status, each folded layer's verdict
    and max rel diff (the layer fed what the original layer received, against the BN's output)."""
    checks = {c.layer: c for c in verification.folded_layers}
    rows = []
    for decision, row in zip(result.decisions, decision_rows(result.decisions)):
        check = checks.get(decision.layer)
        cells = list(row.items())
        after = list(row).index("status") + 1
        cells[after:after] = [("check", layer_verdict(check, decision, verification)),
                      ("layer max rel diff", None if check is None else check.max_rel_diff)]
        rows.append(dict(cells))
    return rows


def skip_reasons(decisions: Sequence[Decision]) -> dict[str, list[str]]:
    """Each reason a pair was left alone, with the layers it was given for, in table order."""
    found: dict[str, list[str]] = {}
    for d in decisions:
        if not d.folded:
            found.setdefault(d.reason or "", []).append(d.layer)
    return found


def pair_label(decision: Decision) -> str:
    return f"{decision.layer} → {decision.bn} ({decision.status})"


def first_pair(result: FoldResult) -> int:
    """The pair a view opens on: the first transposed convolution's (the fold foldscope exists to show),
    else the first pair."""
    return next((i for i, d in enumerate(result.decisions) if d.family == "transpose"), 0)


@dataclass
class PairDetail:
    """Per-channel numbers of one folded pair, for the channel plots (ranges when known)."""

    scale: np.ndarray
    shift: np.ndarray
    range_before: np.ndarray | None = None
    range_after: np.ndarray | None = None


def pair_detail(result: FoldResult, decision: Decision) -> PairDetail | None:
    """Scale, shift and kernel ranges before and after of a folded pair; None for a skipped one."""
    if not decision.folded or decision.affine is None:
        return None
    ranges = []
    for model in (result.original, result.folded):
        found = result.frontend.kernel(model, decision.layer)
        ranges.append(per_channel_range(found.kernel, found.kind, found.groups))
    return PairDetail(decision.affine.scale, decision.affine.shift, *ranges)


def channel_figure(result: FoldResult, index: int) -> Figure:
    """The per-channel scale, shift and kernel ranges of candidate pair ``index`` (a folded one)."""
    return plot_channels(**_channels(result, index))


def channel_chart(result: FoldResult, index: int) -> dict:
    """``channel_figure``'s panels as numbers the browser draws (``viz.channels.channels_data``)."""
    return channels_data(**_channels(result, index))


def _channels(result: FoldResult, index: int) -> dict:
    decision = result.decisions[index]
    detail = pair_detail(result, decision)
    return {"scale": detail.scale, "shift": detail.shift, "range_before": detail.range_before,
            "range_after": detail.range_after, "title": f"{decision.layer} ← {decision.bn}"}


def output_figure(outputs: Sequence[OutputSpec], reference: Sequence[np.ndarray], folded: Sequence[np.ndarray],
                  index: int, sample: int, channel: int | None) -> Figure:
    """Both models' output ``index``: a curve per sample for vectors (Dense, softmax, ``channel`` None),
    else the heatmaps of one channel with their difference."""
    name, ref, got = outputs[index].name, reference[index], folded[index]
    if channel is None:
        return plot_vectors(np.ravel(ref[sample]), np.ravel(got[sample]), title=f"{name}, sample {sample}")
    axis = outputs[index].channel_axis
    return plot_heatmaps(select_slice(ref, sample, channel, axis), select_slice(got, sample, channel, axis),
                         title=f"{name}, sample {sample}, channel {channel}")


# -- a check of another tool's fold --------------------------------------------------------------

#: A check's panes' names (the scene's, the rings').
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


def check_figure(result: CheckResult, graphs: tuple[nx.DiGraph, nx.DiGraph, dict[str, str]],
                 blocks: BlockView | None = None) -> dict:
    """A check's two graphs side by side: the layers a BN went into outlined, the BNs it removed as ghosts,
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


def check_view(scene: dict, result: CheckResult, graphs: tuple[nx.DiGraph, nx.DiGraph, dict[str, str]], *,
               blocks: BlockView | None = None, selected: str | None = None, center: str | None = None,
               found: str | None = None, revision: str = "check") -> dict:
    """A check's scene opening on ``center`` (by default the failing layer), with the failing layer
    ringed in the candidate's pane and its counterpart in the original's, both drawn on top."""
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
