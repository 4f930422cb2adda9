"""The HTML report of a fold or a check: what the page's Fold tab (or Check tab) shows, gathered from
its workbench and written as one self-contained file by ``viz.report_html``.

The command line's ``--html`` and the page's download both call ``fold_report`` / ``check_report``
on a workbench, so they write the same bytes; the report is built once per workbench (kept in its
memos, as everything the page derives from a model) and only when asked for.

It holds the verdict in the command line's words (``fold.report.verification_text``) and the
page's metrics, every candidate pair with its own check and its reason, each folded pair's
per-channel scale, offset and kernel range, the interactive graph before and after (the whole
graph, every nested model and block open, so that the search finds every node; opening on the
pair the page opens on), and both models' outputs with their difference, each picture as the
smaller of its PNG and SVG; the per-channel figures are interactive charts the browser draws when
their pair is opened (rendering 59 pictures took DenseNet121's report 25 s).
"""

from __future__ import annotations

from demo import fold_view, graph_view
from demo.pictures import smallest
from demo.workbench import CheckBench, Workbench
from fold.core.verification import Verification
from fold.report import VERDICTS, counts_text, verification_text
from viz.report_html import Chart, Details, Graph, Metrics, Picture, Section, Table, Text, report_html

GRAPH_CAPTION = ("Drag to pan, scroll to zoom (both panes move together), hover a node for its details. Blue outline: "
                 "a BN was folded into it; red: a BN folding removes (a ghost on the right); a pink ring marks the "
                 "node found.")


def fold_report(wb: Workbench) -> bytes:
    """The report of a workbench's fold, as UTF-8 HTML (built once per workbench)."""
    return wb.memos.of("html_report", 1).get((), lambda: _fold_html(wb).encode("utf-8"))


def check_report(cb: CheckBench) -> bytes:
    """The report of a check of another tool's fold, as UTF-8 HTML (built once per check)."""
    return cb.memos.of("html_report", 1).get((), lambda: _check_html(cb).encode("utf-8"))


def _verdict(v: Verification, metrics: list[tuple[str, str]], counts: str | None = None) -> Section:
    parts = [Text(f"{VERDICTS[v.verdict]}. {v.reason}", tone=v.verdict), Metrics(metrics)]
    if counts:
        parts.append(Text(counts + "."))
    parts.append(Text(verification_text(v), pre=True))
    return Section("Verdict", parts)


def _picture(figure, alt: str) -> Picture:
    data, mime = smallest(figure)
    return Picture(data, mime, alt)


def _outputs(bench: Workbench | CheckBench) -> Section:
    """Each output of both models on the first sample (an image output: its first channel)."""
    parts = []
    for index, name in enumerate(bench.output_names):
        channel = None if bench.reference[index].ndim <= 2 else 0
        parts.append(_picture(bench.output_figure(index, 0, channel), f"output {name}: original, folded, difference"))
    return Section("Outputs: original vs folded (sample 0" + (", channel 0)" if any(
        r.ndim > 2 for r in bench.reference) else ")"), parts)


def _table(rows: list[dict]) -> Table:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return Table(columns, [[row.get(c) for c in columns] for row in rows])


def fold_sections(wb: Workbench) -> list[Section]:
    """What the report of a fold shows, section by section."""
    v, r = wb.verification, wb.result
    decisions = r.decisions
    sections = [Section("Notice", [Text(wb.notice)])] if wb.notice else []
    sections.append(_verdict(v, [
        ("max abs diff (outputs)", f"{v.max_abs_diff:.3e}"), ("mean abs diff", f"{v.mean_abs_diff:.3e}"),
        ("max rel diff", f"{v.max_rel_diff:.3e}"), ("BatchNorms", f"{r.bn_before} → {r.bn_after}"),
        ("pairs folded", f"{len(r.folded_pairs)} / {len(decisions)}")], counts_text(r)))
    if not decisions:
        sections.append(Section("Candidate pairs", [Text("This model has no BatchNormalization layer: nothing to fold.")]))
    else:
        parts = [_table(wb.pairs_table())]
        skipped = fold_view.skip_reasons(decisions)
        if skipped:
            parts.append(Details(f"Why {sum(len(p) for p in skipped.values())} pair(s) were left alone", [
                Text(f"{', '.join(pairs)} ({len(pairs)}): {reason}") for reason, pairs in skipped.items()], open=True))
        sections.append(Section("Candidate pairs", parts))
        channels = [Details(fold_view.pair_label(d), [Chart(wb.channel_chart(i), f"per-channel figures of {d.layer}")],
                            open=i == wb.first_pair)
                    for i, d in enumerate(decisions) if wb.detail(d) is not None]
        if channels:
            sections.append(Section("Per-channel scale, offset and kernel range of each folded pair", channels))
    sections.append(Section("Graph before and after folding", [Graph(_graph(wb), GRAPH_CAPTION)]))
    sections.append(_outputs(wb))
    sections.append(Section(f"What foldscope checks before folding (the {wb.frontend.format.label} frontend's rules, "
                            "in order; the first objection decides)",
                            [Table(("rule", "condition"), [(rule.name, rule.summary) for rule in wb.frontend.rules])]))
    return sections


def _graph(wb: Workbench) -> dict:
    """The page's figure of the whole graph, every nested model open, opening on the page's first pair."""
    nested = wb.nested_models("fold")
    decisions = wb.result.decisions
    anchor = decisions[wb.first_pair].layer if decisions else None
    return graph_view.view(wb.graph_figure("fold", nested, False, None), wb.graphs("fold", nested)[0],
                           selected=anchor, center=anchor, revision="report")


def _fold_html(wb: Workbench) -> str:
    fmt = wb.frontend.format
    return report_html(f"foldscope: {wb.name}", fold_sections(wb),
                       subtitle=f"A {fmt.label} model folded and verified by foldscope: what the app's Fold tab shows.")


def check_sections(cb: CheckBench) -> list[Section]:
    """What the report of a check shows, section by section."""
    r, v = cb.result, cb.verification
    sections = [_verdict(v, [
        ("BatchNorms", f"{r.bn_original} → {r.bn_candidate}"), ("folded by the candidate", str(len(r.removed))),
        ("max abs diff (outputs)", f"{v.max_abs_diff:.3e}"), ("max rel diff", f"{v.max_rel_diff:.3e}")])]
    rows = cb.fates_table()
    sections.append(Section("Where each BatchNorm went", [_table(rows) if rows else
                                                          Text(f"{r.original_name} has no BatchNormalization.")]))
    sections.append(Section(f"{r.original_name} and {r.candidate_name}", [Graph(cb.figure(), (
        "The candidate's nodes sit where the original's they line up with are (by tensor name); a layer a BN went into "
        "is outlined, the BNs it removed are ghosts, every compared node is coloured by its check. ") + GRAPH_CAPTION)]))
    sections.append(_outputs(cb))
    return sections


def _check_html(cb: CheckBench) -> str:
    r = cb.result
    return report_html(f"foldscope check: {r.candidate_name} against {r.original_name}", check_sections(cb),
                       subtitle="A fold another tool made, checked against its original by foldscope: what the app's "
                                "Check tab shows.")
