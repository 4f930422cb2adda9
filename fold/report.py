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
    header = ("layer", "bn", "kind", "status", "reason")
    rows = [(d.layer, d.bn, d.op, d.status, d.reason or "") for d in decisions]
    if not rows:
        return "No BatchNormalization layers found: nothing to fold."
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = []
    for row in [header, *rows]:
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        lines.append("  ".join(cells + [row[4]]).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths) + "  ------")
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
