"""The fold report: one JSON-ready dict and plain-text tables (a fold's, a check's, a zoo run's), shared by
the command line and the app; ``fold_text`` and ``check_text`` are what ``foldscope INPUT`` and
``foldscope check`` print."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from fold.core.errors import listed
from fold.core.result import FoldResult
from fold.core.rules import Decision
from fold.core.verdict import VERDICTS, TensorCheck
from fold.core.verification import Verification
from fold.tools.zoo import ZOO_VERDICTS, ModelRow, ToolRow

if TYPE_CHECKING:
    from fold.tools.check import CheckResult
    from fold.engine.pipeline import FoldRun
#: A max rel diff above this is explained whenever it is printed beside PASS.
LARGE_REL_DIFF = 1e-3


def report_dict(input_path: str, output_path: str | None, result: FoldResult,
                verification: Verification | None, per_layer: bool = False) -> dict:
    """The ``--report`` JSON (keys are a contract other tools rely on); ``per_layer`` is null
    unless asked for (then every compared tensor's figures, as in ``verification.layers``)."""
    return {
        "input": input_path,
        "output": output_path,
        "pairs": [d.to_dict() for d in result.decisions],
        **result.counts(),
        "verification": verification.to_dict() if verification else None,
        "per_layer": None if not per_layer or verification is None else [
            {"layer": c.layer, "max_abs_diff": c.max_abs_diff, "max_rel_diff": c.max_rel_diff}
            for c in verification.layers],
        "timings_s": {k: round(v, 4) for k, v in result.timings_s.items()},
    }


#: How the pairs table and the counts name each form of chain (``Candidate.form``).
FORMS = {"bn": "BatchNorm", "affine": "affine", "bias": "bias add"}


def pairs_table(decisions: list[Decision], verification: Verification | None = None) -> str:
    """One row per candidate pair: layer, BN, kind, status, its own check, reason; and what the
    chain is ("is") when not every pair is a BatchNorm."""
    if not decisions:
        return "No BatchNormalization layers found: nothing to fold."
    by_layer = {c.layer: c for c in verification.folded_layers} if verification else {}
    forms = any(d.form != "bn" for d in decisions)
    rows = [(d.layer, d.bn, *((FORMS[d.form],) if forms else ()), d.op, status(d),
             layer_verdict(_worst([by_layer.get(layer) for layer in d.layers]), d, verification), d.reason or "")
            for d in decisions]
    return table(("layer", "bn", *(("is",) if forms else ()), "kind", "status", "check", "reason"), rows)


def status(d: Decision) -> str:
    """ "folded", "skipped", or how a map folded when not backward ("folded forward", "folded partial",
    "folded concat": split over the layers before its Concat)."""
    return f"folded {d.direction}" if d.folded and d.direction != "backward" else d.status


def _worst(checks: list[TensorCheck | None]) -> TensorCheck | None:
    """The check that decides a pair's word: a failed one, else one not exercised, else any (None: no check)."""
    found = [c for c in checks if c is not None]
    if len(found) < len(checks):
        return None
    return min(found, key=lambda c: (c.passed, c.conclusive), default=None)


def counts_text(result: FoldResult) -> str:
    """What the file held and what the fold removed, BatchNorms apart from other affine maps and
    bias merges (those two only when there are any)."""
    n = result.counts()
    parts = [f"BatchNorms: {n['bn_before']} before, {n['bn_after']} after"]
    if n["affine_before"] or n["affine_folded"]:
        parts.append(f"other affine maps (no BatchNorm): {n['affine_before']} before, {n['affine_after']} after")
    if n["bias_merges"]:
        parts.append(f"{n['bias_merges']} bias add(s) merged into their layer")
    moved = [f"{n[k]} {what}" for k, what in (("forward", "forward into the layer after them"),
                                              ("partial", f"partially ({n['shift_adds']} Add(s) of their shift left)"),
                                              ("concat", "split over a Concat")) if n[k]]
    if moved:
        parts.append("maps folded " + ", ".join(moved))
    return "; ".join(parts)


def unverified_text(input_path: str, output: str | None) -> str:
    """What a fold with --no-verify says instead of a verdict."""
    later = f"with 'foldscope check {input_path} {output}'" if output else "with 'foldscope check' once it is written"
    return f"not verified (--no-verify): neither model was run; verify the fold {later}"


def fold_text(run: FoldRun) -> str:
    """What ``foldscope INPUT`` prints: every pair with its own check, the counts, where the fold went, the verdict."""
    where = f"folded model written to {run.output}" if run.output else "folded model not written"
    verdict = verification_text(run.verification) if run.verification else unverified_text(run.input, run.output)
    return "\n".join([pairs_table(run.result.decisions, run.verification), "",
                      f"{counts_text(run.result)}; {where}", verdict])


def check_text(result: CheckResult) -> str:
    """What ``foldscope check ORIGINAL CANDIDATE`` prints: each BN of the original, what the candidate did
    with it and its layer's own check; the BatchNorms of both; the verdict."""
    check = result.checked.verification
    by_layer = {c.layer: c for c in check.folded_layers}
    rows = [(f.bn, f.layer, f.status, f.into or ("" if f.status == "kept" else "not lined up: checked at the outputs"),
             "" if f.into not in by_layer else ("PASS" if by_layer[f.into].passed else "FAIL"))
            for f in result.fates]
    fates = (table(("bn", "original layer", "status", "into", "check"), rows) if rows
             else f"'{result.original_name}' has no BatchNormalization to fold.")
    return "\n".join([fates, "", f"BatchNorms: {result.bn_original} in '{result.original_name}', "
                                 f"{result.bn_candidate} in '{result.candidate_name}'", verification_text(check)])


def layer_verdict(check: TensorCheck | None, decision: Decision | None = None,
                  verification: Verification | None = None) -> str:
    """A folded pair's own verdict in a word or two ("" for a skipped pair)."""
    if decision is not None and not decision.folded:
        return ""
    if check is None:
        return "at outputs" if verification is not None else ""
    if not check.passed:
        return "FAIL"
    return "PASS" if check.conclusive else "not exercised"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns under a dashed rule; the last column is not padded."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join(["-" * w for w in widths] + ["-" * len(header[-1])]))
    return "\n".join(lines)


def _inputs_text(v: Verification) -> str:
    shapes = ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in v.input_shapes.items())
    source = {"recipe": f"seed {v.seed}", "file": "from the inputs file", "given": "inputs given"}[v.inputs_source]
    return f"{v.samples} samples, {source}" + (f"; {shapes}" if shapes else "")


def verification_text(v: Verification) -> str:
    """The verdict and what decided it: the worst folded layer, then every output."""
    lines = [f"verification ({_inputs_text(v)}): {VERDICTS[v.verdict]}", f"  {v.reason}"]
    if v.runtimes:
        lines.append(f"  ran in       {runtimes_text(v.runtimes)}")
    worst = v.worst_layer()
    if worst is not None:
        lines.append(f"  worst layer  '{worst.layer}' ({worst.bn}): max rel diff {worst.max_rel_diff:.3e}, "
                     f"{worst.margin:.3g}x its float tolerance, channel {worst.worst_channel}"
                     + (f"; not exercised: {len(worst.not_exercised)} of {worst.channels} channels"
                        if worst.not_exercised else ""))
    quiet = [c for c in v.folded_layers if c.not_exercised and c is not worst]
    if quiet:
        lines.append(f"  {len(quiet)} more folded layer(s) have channels these inputs leave constant: "
                     + listed([f"'{c.layer}' ({len(c.not_exercised)} of {c.channels})" for c in quiet]))
    if v.output_only:
        lines.append(f"  checked at the outputs only: {', '.join(v.output_only)}")
    if (synthetic := synthetic_text(v)):
        lines.append(f"  {synthetic}")
    lines += [
        f"  max abs diff  {v.max_abs_diff:.3e}   (budget {v.atol:.3e})",
        f"  mean abs diff {v.mean_abs_diff:.3e}",
        f"  max rel diff  {v.max_rel_diff:.3e}   (a channel's max |diff| over its own max |output|)",
    ]
    for out in v.per_output:
        lines.append(f"  output '{out.name}' {list(out.shape)} {out.dtype}: max abs diff {out.max_abs_diff:.3e} "
                     f"(budget {out.atol:.3e}), max rel diff {out.max_rel_diff:.3e}, worst channel {out.worst_channel}")
    if v.passed and v.max_rel_diff > LARGE_REL_DIFF:
        lines.append(f"  (a max rel diff of {v.max_rel_diff:.1e} passes here because float error in the layers before "
                     "the outputs moves them as far: the nudged model shows it; each folded layer was judged at its "
                     "own scale above)")
    return "\n".join(lines)


def runtimes_text(runtimes: dict[str, str]) -> str:
    """What ran what, in words: one runtime for all, or each model's ("original in X, checked in Y")."""
    if len(set(runtimes.values())) == 1:
        return next(iter(runtimes.values()))
    return ", ".join(f"{what} in {ran}" for what, ran in runtimes.items())


def synthetic_text(v: Verification, top: int = 5) -> str:
    """Which folded layers were judged on a synthetic batch too, and whose channels only it exercised
    ("" when none was)."""
    judged = [c for c in v.folded_layers if c.mode == "own and synthetic inputs"]
    if not judged:
        return ""
    needed = [c for c in judged if c.synthetic]
    text = (f"{len(judged)} of {len(v.folded_layers)} folded layers were also judged on a synthetic batch "
            "(every input channel exercised)")
    if not needed:
        return text + "."
    shown = ", ".join(f"'{c.layer}' ({len(c.synthetic)} of {c.channels})" for c in needed[:top])
    more = f" and {len(needed) - top} more" if len(needed) > top else ""
    return f"{text}; only it exercised channels of {len(needed)}: {shown}{more}."


def per_layer_text(v: Verification, top: int = 5) -> str:
    """The compared tensors closest to their tolerance."""
    if not v.layers:
        return "per layer: no layer output could be compared."
    worst = sorted(v.layers, key=lambda c: c.margin, reverse=True)[:top]
    lines = [f"per layer ({len(v.layers)} tensors compared), closest to their tolerance:"]
    lines += [f"  {c.layer:<30} {c.role:<7} max rel diff {c.max_rel_diff:.3e}  max abs diff {c.max_abs_diff:.3e}  "
              f"{c.margin:.3g}x tolerance" for c in worst]
    return "\n".join(lines)


def _db(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def int8_text(report) -> str:
    """Real int8 as text: per folded layer its SQNR in every variant, the outputs', the layer that
    loses most, and the notes (``report``: a ``fold.tools.int8_report.Int8Report``)."""
    from fold.tools.int8_report import VARIANTS

    heads = {"original_per_tensor": "original", "folded_per_tensor": "folded", "folded_per_channel": "per channel",
             "folded_cle_per_tensor": "folded + CLE", "folded_cle_bias_per_tensor": "+ high bias + bias corr."}
    c = report.calibration
    lines = [f"real int8 in {report.runtime} {report.version} (int8 weights and activations, calibrated on "
             f"{c['samples']} samples, {c['source']}), SQNR in dB, a layer's the mean over its output channels"]
    rows = [(q.layer, q.bn, q.tensor, "n/a" if q.scale_spread is None else f"{q.scale_spread:.3g}",
             *(_db(q.sqnr_db[v]) for v in VARIANTS)) for q in report.layers]
    if rows:
        lines.append(table(("layer", "bn", "judged at", "BN scale spread", *(heads[v] for v in VARIANTS)), rows))
    lines.append("output SQNR (dB): " + ", ".join(f"{heads[v]} {_db(report.output_sqnr_db[v])}" for v in VARIANTS))
    worst = report.worst()
    if worst is not None:
        lines.append(f"loses most folded per tensor: '{worst.layer}' ({worst.bn}), "
                     f"{_db(worst.sqnr_db['folded_per_tensor'])} dB")
    if report.granularity:
        lines.append("folded transposed convolutions, int8 weights under each target's granularity (simulated, "
                     "weights only), SQNR in dB:")
        rows = [(g.layer, g.bn, *(_db(v) for v in g.weight_sqnr_db.values())) for g in report.granularity]
        lines.append(table(("layer", "bn", "per output channel", "per tensor (XNNPACK)",
                            "per input channel (TensorRT)"), rows))
        for g in report.granularity:
            lost = [name for name, ok in g.rescued_by_per_channel().items() if not ok]
            if lost:
                lines.append(f"'{g.layer}': per-channel quantization does not rescue this fold on a target that "
                             f"quantizes {' or '.join(n.replace('_', ' ') for n in lost)} (more than 6 dB lost)")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def quant_text(report) -> str:
    """The quantization view as text: per folded layer its range ratio and four SQNRs, then the
    end-to-end figures (``report``: a ``fold.tools.quantization.QuantReport``)."""
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


def zoo_cells(model: str, row: ToolRow, bn_before: int | None) -> tuple[str, ...]:
    """A zoo row's cells in words: model, tool, BatchNorms left (of the model's), verdict, max abs diff, time."""
    left = "" if row.bn_left is None else f"{row.bn_left} of {bn_before}" if bn_before is not None else str(row.bn_left)
    diff = "" if row.max_abs_diff is None else f"{row.max_abs_diff:.3e}"
    seconds = "" if row.seconds is None else f"{row.seconds:.2f} s"
    return model, row.tool, left, ZOO_VERDICTS[row.verdict], diff, seconds


def zoo_table(rows: Sequence[ModelRow]) -> str:
    """One line per model and tool: BatchNorms left, verdict, max abs diff, the tool's time to fold (its
    verification apart: the progress line's time is the model's whole run)."""
    lines = [zoo_cells(r.model, t, r.bn_before) for r in rows for t in (r.fold, *r.peers)]
    return table(("model", "tool", "BNs left", "verdict", "max abs diff", "fold time"), lines)
