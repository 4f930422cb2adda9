"""The HTML report of a fold or a check: what the page's Fold tab (or Check tab) shows, written as one
self-contained file by ``fold.outputs.html.document``.

The command line's ``--html`` and the page's download both call ``fold_report`` / ``check_report`` on
the same result, so they write the same bytes (the page keeps the report on its workbench, built
once and only when asked for).

It holds the verdict in the command line's words (``fold.outputs.report.verification_text``) and the
page's metrics, every candidate pair with its own check and its reason, each folded pair's
per-channel scale, offset and kernel range, the interactive graph before and after (the whole
graph, every nested model and block open, so that the search finds every node; opening on the
pair the page opens on), and both models' outputs with their difference, each picture as the
smaller of its PNG and SVG; the per-channel figures are interactive charts the browser draws when
their pair is opened (rendering 59 pictures took DenseNet121's report 25 s).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fold.core.result import FoldResult
from fold.core.verdict import VERDICTS
from fold.core.verification import OutputSpec, Verification
from fold.engine.pipeline import Checked
from fold.outputs import result_views
from fold.outputs.html.document import Chart, Details, Graph, Metrics, Picture, Section, Table, Text, report_html
from fold.outputs.report import counts_text, verification_text
from fold.tools.check import CheckResult
from viz import fold_graph
from viz.pictures import smallest

GRAPH_CAPTION = ("Drag to pan, scroll to zoom (both panes move together), hover a node for its details and its "
                 "counterpart in the other pane; press / to find a node; the strip on the right jumps through the whole "
                 "graph. Blue outline: a BN was folded into it; red: a BN folding removes (a ghost on the right); a "
                 "frame is a block; a pink ring marks the node found.")


def fold_report(result: FoldResult, checked: Checked) -> bytes:
    """The report of a fold and its verification, as UTF-8 HTML."""
    label = result.frontend.format.label
    article = "An" if label[:1] in "AEIOU" else "A"
    return report_html(f"foldscope: {result.name}", fold_sections(result, checked),
                       subtitle=f"{article} {label} model folded and verified by foldscope: what the app's Fold tab "
                                "shows.").encode("utf-8")


def check_report(result: CheckResult) -> bytes:
    """The report of a check of another tool's fold, as UTF-8 HTML."""
    return report_html(f"foldscope check: {result.candidate_name} against {result.original_name}",
                       check_sections(result),
                       subtitle="A fold another tool made, checked against its original by foldscope: what the app's "
                                "Check tab shows.").encode("utf-8")


def _verdict(v: Verification, metrics: list[tuple[str, str]], counts: str | None = None) -> Section:
    parts = [Text(f"{VERDICTS[v.verdict]}. {v.reason}", tone=v.verdict), Metrics(metrics)]
    if counts:
        parts.append(Text(counts + "."))
    parts.append(Text(verification_text(v), pre=True))
    return Section("Verdict", parts)


def _picture(figure, alt: str) -> Picture:
    data, mime = smallest(figure)
    return Picture(data, mime, alt)


def _outputs(outputs: Sequence[OutputSpec], reference: Sequence[np.ndarray], folded: Sequence[np.ndarray]) -> Section:
    """Each output of both models on the first sample (an image output: its first channel)."""
    parts = []
    for index, spec in enumerate(outputs):
        channel = None if reference[index].ndim <= 2 else 0
        parts.append(_picture(result_views.output_figure(outputs, reference, folded, index, 0, channel),
                              f"output {spec.name}: original, folded, difference"))
    return Section("Outputs: original vs folded (sample 0" + (", channel 0)" if any(
        r.ndim > 2 for r in reference) else ")"), parts)


def _table(rows: list[dict]) -> Table:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return Table(columns, [[row.get(c) for c in columns] for row in rows])


def fold_sections(result: FoldResult, checked: Checked) -> list[Section]:
    """What the report of a fold shows, section by section."""
    v, r = checked.verification, result
    decisions = r.decisions
    sections = [Section("Notice", [Text(r.notice)])] if r.notice else []
    sections.append(_verdict(v, [
        ("max abs diff (outputs)", f"{v.max_abs_diff:.3e}"), ("mean abs diff", f"{v.mean_abs_diff:.3e}"),
        ("max rel diff", f"{v.max_rel_diff:.3e}"), ("BatchNorms", f"{r.bn_before} → {r.bn_after}"),
        ("pairs folded", f"{len(r.folded_pairs)} / {len(decisions)}")], counts_text(r)))
    if not decisions:
        sections.append(Section("Candidate pairs", [Text("This model has no BatchNormalization layer: nothing to fold.")]))
    else:
        parts = [_table(result_views.pairs_table(r, v))]
        skipped = result_views.skip_reasons(decisions)
        if skipped:
            parts.append(Details(f"Why {sum(len(p) for p in skipped.values())} pair(s) were left alone", [
                Text(f"{', '.join(pairs)} ({len(pairs)}): {reason}") for reason, pairs in skipped.items()], open=True))
        sections.append(Section("Candidate pairs", parts))
        first = result_views.first_pair(r)
        channels = [Details(result_views.pair_label(d), [Chart(result_views.channel_chart(r, i),
                                                               f"per-channel figures of {d.layer}")],
                            open=i == first)
                    for i, d in enumerate(decisions) if result_views.pair_detail(r, d) is not None]
        if channels:
            sections.append(Section("Per-channel scale, offset and kernel range of each folded pair", channels))
    sections.append(Section("Graph before and after folding", [Graph(_graph(r), GRAPH_CAPTION)]))
    sections.append(_outputs(r.frontend.outputs(r.original), checked.original_outputs, checked.folded_outputs))
    sections.append(Section(f"What foldscope checks before folding (the {r.frontend.format.label} frontend's rules, "
                            "in order; the first objection decides)",
                            [Table(("rule", "condition"), [(rule.name, rule.summary) for rule in r.frontend.rules])]))
    return sections


def _graph(result: FoldResult) -> dict:
    """The page's figure of the whole graph, every nested model open, opening on the page's first pair."""
    graphs = fold_graph.open_graphs(result, fold_graph.nested_models(result.graph_before))
    decisions = result.decisions
    anchor = decisions[result_views.first_pair(result)].layer if decisions else None
    return fold_graph.view(fold_graph.figure(result, graphs=graphs), graphs[0], selected=anchor, center=anchor,
                           revision="report")


def check_sections(result: CheckResult) -> list[Section]:
    """What the report of a check shows, section by section."""
    r, v = result, result.checked.verification
    sections = [_verdict(v, [
        ("BatchNorms", f"{r.bn_original} → {r.bn_candidate}"), ("folded by the candidate", str(len(r.removed))),
        ("max abs diff (outputs)", f"{v.max_abs_diff:.3e}"), ("max rel diff", f"{v.max_rel_diff:.3e}")])]
    rows = result_views.fates_table(r)
    sections.append(Section("Where each BatchNorm went", [_table(rows) if rows else
                                                          Text(f"{r.original_name} has no BatchNormalization.")]))
    graphs = result_views.aligned_graphs(r)
    scene = result_views.check_view(result_views.check_figure(r, graphs), r, graphs, revision="report")
    sections.append(Section(f"{r.original_name} and {r.candidate_name}", [Graph(scene, (
        "The candidate's nodes sit where the original's they line up with are (by tensor name); a layer a BN went into "
        "is outlined, the BNs it removed are ghosts, every compared node is coloured by its check; the failing layer, "
        "if any, is ringed with its counterpart. ") + GRAPH_CAPTION)]))
    sections.append(_outputs(r.original.frontend.outputs(r.original.model), r.checked.original_outputs,
                             r.checked.folded_outputs))
    return sections
