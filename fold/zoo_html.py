"""A zoo run as one self-contained HTML page (``python -m fold zoo DIR --html PATH``): the table of
every model and tool, verdicts coloured, every row that did not pass with its reason. Inline CSS, no
script, nothing fetched: it opens from disk, offline."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from fold.zoo import ZOO_VERDICTS, ModelRow, ToolRow, counts

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.first td { border-top: 2px solid #bbb; }
.v { font-weight: 600; padding: 1px 6px; border-radius: 3px; }
.v-pass { background: #d7f5dd; color: #11602a; }
.v-fail { background: #fbd5d5; color: #8a1111; }
.v-inconclusive { background: #fdf0c4; color: #6b5200; }
.v-error { background: #e6d5f7; color: #4b1a7a; }
td.reason { max-width: 48em; color: #444; }
"""


def _tool_row(model: ModelRow, tool: ToolRow, first: bool) -> str:
    left = "" if tool.bn_left is None else f"{tool.bn_left} of {model.bn_before}" if model.bn_before is not None \
        else str(tool.bn_left)
    diff = "" if tool.max_abs_diff is None else f"{tool.max_abs_diff:.3e}"
    seconds = "" if tool.seconds is None else f"{tool.seconds:.2f} s"
    reason = "" if tool.verdict == "pass" else tool.reason
    cells = [f'<td class="model">{escape(model.model) if first else ""}</td>', f'<td class="tool">{escape(tool.tool)}</td>',
             f'<td class="num">{escape(left)}</td>',
             f'<td><span class="v v-{tool.verdict}">{ZOO_VERDICTS[tool.verdict]}</span></td>',
             f'<td class="num">{diff}</td>', f'<td class="num">{seconds}</td>', f'<td class="reason">{escape(reason)}</td>']
    attrs = ' class="first"' if first else ""
    return (f'<tr{attrs} data-model="{escape(model.model, quote=True)}" data-tool="{escape(tool.tool, quote=True)}" '
            f'data-verdict="{tool.verdict}">' + "".join(cells) + "</tr>")


def zoo_html(root: str, rows: Sequence[ModelRow], exit_status: int) -> str:
    """The page: a summary line, then one table row per model and tool (``data-model``, ``data-tool``
    and ``data-verdict`` on each), the reason beside every verdict that is not a pass."""
    n = counts(rows)
    summary = ", ".join(f"{count} {ZOO_VERDICTS[v].lower()}" for v, count in n.items() if count)
    body = "\n".join(_tool_row(r, t, k == 0) for r in rows for k, t in enumerate((r.fold, *r.peers)))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>foldscope zoo: {escape(root)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>foldscope zoo: {escape(root)}</h1>
<p class="summary">{len(rows)} model(s): {escape(summary)}; exit status {exit_status}.</p>
<table>
<thead><tr><th>model</th><th>tool</th><th>BNs left</th><th>verdict</th><th>max abs diff</th><th>fold time</th><th>reason</th></tr></thead>
<tbody>
{body}
</tbody>
</table>
</body>
</html>
"""
