"""The page's Fold tab as data, beyond what the HTML report shows too (``fold.outputs.result_views``): the
seed's three results side by side, what the ONNX tools did beside foldscope, and the pair table's column
widths. Logic only; the page
lays the rows out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fold.core.result import FoldResult
from fold.core.rules import Decision
from fold.core.verification import Verification
from fold.tools.peer_runs import PeerRun
from foldscope_app.examples import seed as seed_note


def pairs_widths(decisions: Sequence[Decision]) -> dict[str, str]:
    """The pair table's text columns' widths ("small", "medium", "large"): the layer and BN names
    room for their length (not cut to "conv1_co"), the reason wide only when some pair has one."""
    def fit(names: Sequence[str]) -> str:
        longest = max((len(n) for n in names), default=0)
        return "small" if longest <= 8 else "medium" if longest <= 24 else "large"

    return {"layer": fit([d.layer for d in decisions]), "bn": fit([d.bn for d in decisions]),
            "reason": "large" if any(d.reason for d in decisions) else "small"}


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
