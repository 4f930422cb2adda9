"""The fold report: one JSON-ready dict and a plain-text table, shared by the command line and the app."""

from __future__ import annotations

from collections.abc import Sequence

from fold.core.result import FoldResult
from fold.core.rules import Decision
from fold.core.verification import LayerDiff, Verification


def report_dict(input_path: str, output_path: str | None, result: FoldResult,
                verification: Verification | None, per_layer: Sequence[LayerDiff] | None = None) -> dict:
    """The ``--report`` JSON (keys are a contract other tools rely on); ``per_layer`` is null
    unless the layer outputs were compared."""
    return {
        "input": input_path,
        "output": output_path,
        "pairs": [d.to_dict() for d in result.decisions],
        "folded": len(result.folded_pairs),
        "skipped": len(result.skipped_pairs),
        "bn_before": result.bn_before,
        "bn_after": result.bn_after,
        "verification": verification.to_dict() if verification else None,
        "per_layer": None if per_layer is None else [d.to_dict() for d in per_layer],
        "timings_s": {k: round(v, 4) for k, v in result.timings_s.items()},
    }


def pairs_table(decisions: list[Decision]) -> str:
    """One row per candidate pair: layer, BN, kind, status, reason."""
    rows = [(d.layer, d.bn, d.op, d.status, d.reason or "") for d in decisions]
    if not rows:
        return "No BatchNormalization layers found: nothing to fold."
    return table(("layer", "bn", "kind", "status", "reason"), rows)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns under a dashed rule; the last column is not padded."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join(["-" * w for w in widths] + ["-" * len(header[-1])]))
    return "\n".join(lines)


def verification_text(v: Verification) -> str:
    """The verification figures, whole model then per output."""
    verdict = "PASS" if v.passed else "FAIL"
    lines = [
        f"verification ({v.samples} samples{'' if v.seed is None else f', seed {v.seed}'}): {verdict}",
        f"  max abs diff  {v.max_abs_diff:.3e}   (atol {v.atol:.3e})",
        f"  mean abs diff {v.mean_abs_diff:.3e}",
        f"  max rel diff  {v.max_rel_diff:.3e}",
    ]
    for out in v.per_output:
        worst = max(range(len(out.per_channel_max_abs_diff)), key=out.per_channel_max_abs_diff.__getitem__)
        lines.append(
            f"  output '{out.name}' {list(out.shape)} {out.dtype}: max abs diff {out.max_abs_diff:.3e}, "
            f"mean {out.mean_abs_diff:.3e}, worst channel {worst}"
        )
    return "\n".join(lines)


def per_layer_text(diffs: Sequence[LayerDiff], top: int = 5) -> str:
    """Where the error enters: the layers whose outputs moved most, relative to their own size."""
    if not diffs:
        return "per layer: no layer output could be compared."
    worst = sorted(diffs, key=lambda d: d.max_rel_diff, reverse=True)[:top]
    lines = [f"per layer ({len(diffs)} layers compared on one sample), largest relative diffs:"]
    lines += [f"  {d.layer:<30} max rel diff {d.max_rel_diff:.3e}  max abs diff {d.max_abs_diff:.3e}" for d in worst]
    return "\n".join(lines)


def _db(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def quant_text(report) -> str:
    """The quantization view as text: per folded layer its range ratio and four SQNRs, then the
    end-to-end figures (``report``: a ``fold.quantization.QuantReport``)."""
    lines = ["int8 weights (symmetric, round to nearest), SQNR in dB, the mean over output channels: per tensor "
             "with the BN in float, per tensor folded, per channel folded, per tensor folded + CLE"]
    rows = [(q.layer, q.bn, str(q.channels), "n/a" if q.range_ratio_after is None else f"{q.range_ratio_after:.3g}",
             *(_db(q.mean_db(figure)) for figure in q.sqnr)) for q in report.layers]
    if rows:
        lines.append(table(("layer", "bn", "channels", "range ratio", "BN in float", "folded", "per channel",
                            "folded + CLE"), rows))
    out = report.output_sqnr_db
    lines.append("output SQNR (dB) against the float original, int8 weights, float activations: "
                 f"BN in float {_db(out['original_per_tensor'])}, folded per tensor {_db(out['folded_per_tensor'])}, "
                 f"folded per channel {_db(out['folded_per_channel'])}, folded + CLE {_db(out['folded_cle_per_tensor'])}")
    return "\n".join(lines)
