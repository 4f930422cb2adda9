"""The page's Fold tab as data: the table of candidate pairs with each folded layer's own check, the
seed's three results side by side, and what the ONNX tools did beside foldscope. Logic only; the
page lays the rows out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from demo import seed as seed_note
from fold.core.result import FoldResult
from fold.core.rules import Decision
from fold.core.verification import Verification
from fold.report import FORMS, layer_verdict

if TYPE_CHECKING:  # demo.peers imports onnx, which a page of another format need not load
    from demo.peers import PeerRun


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


def pairs_widths(decisions: Sequence[Decision]) -> dict[str, str]:
    """The pair table's text columns' widths ("small", "medium", "large"): the layer and BN names
    room for their length (not cut to "conv1_co"), the reason wide only when some pair has one."""
    def fit(names: Sequence[str]) -> str:
        longest = max((len(n) for n in names), default=0)
        return "small" if longest <= 8 else "medium" if longest <= 24 else "large"

    return {"layer": fit([d.layer for d in decisions]), "bn": fit([d.bn for d in decisions]),
            "reason": "large" if any(d.reason for d in decisions) else "small"}


def pair_label(decision: Decision) -> str:
    return f"{decision.layer} → {decision.bn} ({decision.status})"


@dataclass(frozen=True)
class SeedResults:
    """The seed note's three printed results, one column each (by pixel), and how far apart they are."""

    columns: dict[str, np.ndarray]
    numpy_vs_folded: float
    tensorflow_vs_folded: float


def seed_results(reference: Sequence[np.ndarray], folded: Sequence[np.ndarray]) -> SeedResults:
    """The note's ``batch_norm`` in NumPy, TensorFlow's BN (the original model's output) and the folded
    TConv (the folded model's), for the seed workbench's outputs."""
    numpy_bn = seed_note.numpy_batch_norm()[:, :, 0]
    tf_bn = reference[0][0, :, :, 0]
    tconv = folded[0][0, :, :, 0]
    rows, cols = np.indices(numpy_bn.shape)
    columns = {"row": rows.ravel(), "col": cols.ravel(), "numpy batch_norm": numpy_bn.ravel(),
               "tensorflow batch_norm": tf_bn.ravel(), "folded tconv": tconv.ravel(),
               "|tensorflow - folded|": np.abs(tf_bn - tconv).ravel()}
    return SeedResults(columns, float(np.max(np.abs(numpy_bn - tconv))), float(np.max(np.abs(tf_bn - tconv))))


def peers_table(result: FoldResult, verification: Verification, runs: Sequence[PeerRun]) -> list[dict]:
    """foldscope's fold and each ONNX tool's, a row each: BatchNorms left of the original's (one count for
    all, ``count_bns``), max abs diff against the original, seconds, the error if the tool failed."""
    before = result.bn_before
    rows = [{"tool": "foldscope", "action": "fold every pair the rules allow",
             "BatchNormalization left": f"{result.bn_after} of {before}",
             "max abs diff": f"{verification.max_abs_diff:.3e}", "seconds": round(result.timings_s["fold"], 3),
             "error": ""}]
    rows += [{"tool": r.tool, "action": r.action,
              "BatchNormalization left": "" if r.bn_left is None else f"{r.bn_left} of {before}",
              "max abs diff": "" if r.max_abs_diff is None else f"{r.max_abs_diff:.3e}",
              "seconds": round(r.seconds, 3), "error": r.error or ""} for r in runs]
    return rows
