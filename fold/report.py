"""The fold report: one JSON-ready dict and a plain-text table, shared by the command line and the app."""

from __future__ import annotations

from fold.core.result import FoldResult
from fold.core.rules import Decision
from fold.core.verification import Verification


def report_dict(input_path: str, output_path: str | None, result: FoldResult,
                verification: Verification | None) -> dict:
    """The ``--report`` JSON (keys are a contract other tools rely on)."""
    return {
        "input": input_path,
        "output": output_path,
        "pairs": [d.to_dict() for d in result.decisions],
        "folded": len(result.folded_pairs),
        "skipped": len(result.skipped_pairs),
        "bn_before": result.bn_before,
        "bn_after": result.bn_after,
        "verification": verification.to_dict() if verification else None,
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
