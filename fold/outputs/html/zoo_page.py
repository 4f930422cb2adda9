"""A zoo run as one self-contained HTML page (``python -m fold zoo DIR --html PATH``), written with the one
HTML writer (``fold.outputs.html.document``): the table of every model and tool, verdicts coloured, every
row that did not pass with its reason. No script, nothing fetched: it opens from disk, offline, in the
system's light or dark mode."""

from __future__ import annotations

from collections.abc import Sequence

from fold.outputs.html.document import Badge, Row, Section, Table, report_html
from fold.outputs.report import zoo_cells
from fold.tools.zoo import ZOO_VERDICTS, ModelRow, ToolRow, counts

COLUMNS = ("model", "tool", "BNs left", "verdict", "max abs diff", "fold time", "reason")


def _tool_row(model: ModelRow, tool: ToolRow, first: bool) -> Row:
    name, _, left, verdict, diff, seconds = zoo_cells(model.model, tool, model.bn_before)
    reason = "" if tool.verdict == "pass" else tool.reason
    cells = [name if first else "", tool.tool, left, Badge(tool.verdict, verdict), diff, seconds, reason]
    return Row(cells, {"model": model.model, "tool": tool.tool, "verdict": tool.verdict}, first)


def zoo_html(root: str, rows: Sequence[ModelRow], exit_status: int) -> str:
    """The page: a summary line, then one table row per model and tool (``data-model``, ``data-tool``
    and ``data-verdict`` on each), the reason beside every verdict that is not a pass."""
    n = counts(rows)
    summary = ", ".join(f"{count} {ZOO_VERDICTS[v].lower()}" for v, count in n.items() if count)
    table = Table(COLUMNS, [_tool_row(r, t, k == 0) for r in rows for k, t in enumerate((r.fold, *r.peers))],
                  numbers=("BNs left", "max abs diff", "fold time"), reasons=("reason",), whole=True)
    return report_html(f"foldscope zoo: {root}", [Section("Models and tools", [table])],
                       subtitle=f"{len(rows)} model(s): {summary}; exit status {exit_status}.", switch=False)
