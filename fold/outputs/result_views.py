"""The page's view of a fold another tool made: the two graphs drawn on one layout (the candidate's
nodes renamed after the original's they line up with), and where each BatchNorm went."""

from __future__ import annotations

import networkx as nx

from fold.core.graph import flatten
from fold.tools.check import CheckResult, check_notes
from viz.interactive import before_after_figure


def aligned_graphs(result: CheckResult) -> tuple[nx.DiGraph, nx.DiGraph, dict[str, str]]:
    """Both graphs (nested models opened), the candidate's nodes named as the original's nodes they
    line up with (a folded layer as the original layer, a shared tensor as itself), so that the
    layout keeps them in place; and candidate id -> shown id."""
    before, after = flatten(result.original.graph), flatten(result.candidate.graph)
    corr_pairs = {f.into: f.layer for f in result.fates if f.status == "folded" and f.into}
    shared = {c: o for o, c in _shared(result)}
    names: dict[str, str] = {}
    for node in after:
        shown = corr_pairs.get(node) or shared.get(node) or node
        if shown in names.values() or (shown == node and node in before and node not in shared):
            shown = f"{node} (candidate)"
        names[node] = shown
    return before, nx.relabel_nodes(after, names), names


def _shared(result: CheckResult) -> list[tuple[str, str]]:
    """(original, candidate) node pairs compared end to end."""
    return [(c.tensor, c.layer) for c in result.checked.verification.layers if c.role == "shared"]


def figure(result: CheckResult) -> dict:
    """The two graphs side by side: the layers a BN went into outlined, the BNs it removed as ghosts,
    every compared node coloured by its check."""
    before, after, names = aligned_graphs(result)
    folded = [f.layer for f in result.fates if f.status == "folded" and f.into]
    removed = [bn for f in result.fates if f.status == "folded" for bn in f.bn.split("+")]
    margins = {names.get(c.layer, c.layer): c.margin for c in result.checked.verification.layers}
    return before_after_figure(before, after, folded_layers=folded, removed_bns=removed,
                               notes=check_notes(result.fates), diffs=margins).to_dict()


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
