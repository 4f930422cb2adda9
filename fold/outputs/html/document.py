"""foldscope's one HTML writer: a document of sections (text, tables, pictures, interactive graphs) as
one file that opens anywhere, offline, every byte inlined, with one stylesheet. The report of a fold or
a check (``fold.outputs.html.fold_page``) and a zoo run's table (``fold.outputs.html.zoo_page``) are
written with it.

A graph is a scene (``viz.interactive``) drawn by the page's own script and stylesheet
(``viz/assets/graph.js``, ``graph.css``): the same picture as the page, with hover, Find ("/"
focuses it), the overview and linked panes; the scenes go in as JSON, the pictures as ``data:``
URIs. Nothing is fetched: no ``src`` or ``href`` leads off the file. The report follows the
system's light or dark mode, and a button switches it. A chart (a folded pair's per-channel figures,
``viz.channels.channels_data``) goes in as its numbers and is drawn as SVG by ``viz/assets/channels.js``,
inlined, when it is first shown.

Everything that comes from a model (its node names above all) is user data: text and table cells
are HTML-escaped, JSON inside ``<script>`` has ``<``, ``>`` and ``&`` written as ``\\u003c``..., and
the graph's script sets every name as text, so a node named ``</script><script>alert(1)</script>``
stays a name.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from viz.channels import chart_script
from viz.interactive import script, stylesheet


#: How a verdict is coloured (``Text.tone``): pass, fail, inconclusive.
TONES = ("pass", "fail", "inconclusive")
#: The verdicts a table cell can show as a coloured badge (``Badge``): a zoo row's "error" too.
BADGES = (*TONES, "error")
#: Picture types a report inlines.
MIMES = ("image/png", "image/svg+xml")


@dataclass(frozen=True)
class Text:
    """A paragraph; ``pre``: kept as typed (the command line's text); ``tone``: a verdict's colour."""

    text: str
    pre: bool = False
    tone: str | None = None


@dataclass(frozen=True)
class Metrics:
    """(label, value) pairs shown as a row of figures."""

    items: Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Badge:
    """A verdict in a table cell, coloured by it (``verdict``: one of ``BADGES``)."""

    verdict: str
    text: str


@dataclass(frozen=True)
class Row:
    """A table row with what a reader of the file can pick it by: ``data`` as ``data-*`` attributes;
    ``first`` opens a group of rows (a rule above it)."""

    cells: Sequence[object]
    data: Mapping[str, str] = field(default_factory=dict)
    first: bool = False


@dataclass(frozen=True)
class Table:
    """Rows of cells (or ``Row``) under ``columns``: floats in 3-digit scientific notation, None as empty,
    a ``Badge`` as a coloured verdict. ``numbers``: the columns aligned as figures; ``reasons``: the
    columns of long text; ``whole``: the table shown whole, not in a box that scrolls."""

    columns: Sequence[str]
    rows: Sequence[Sequence[object] | Row]
    numbers: Sequence[str] = ()
    reasons: Sequence[str] = ()
    whole: bool = False


@dataclass(frozen=True)
class Picture:
    """An image file's bytes (``MIMES``) with what it shows."""

    data: bytes
    mime: str
    alt: str


@dataclass(frozen=True)
class Details:
    """A group that opens and closes: ``summary`` always shown, ``parts`` when open."""

    summary: str
    parts: Sequence[Part]
    open: bool = False


@dataclass(frozen=True)
class Graph:
    """An interactive graph: a scene (``viz.interactive.before_after_figure``, maybe through ``with_view``)."""

    scene: Mapping
    caption: str = ""


@dataclass(frozen=True)
class Chart:
    """A folded pair's per-channel figures as numbers (``viz.channels.channels_data``), drawn by the
    browser when first shown (inside a closed ``Details``: when that opens); ``alt``: what it shows."""

    data: Mapping
    alt: str


Part = Text | Metrics | Table | Picture | Details | Graph | Chart


@dataclass(frozen=True)
class Section:
    heading: str
    parts: Sequence[Part] = field(default_factory=tuple)


def report_html(title: str, sections: Sequence[Section], *, subtitle: str = "", switch: bool = True) -> str:
    """The whole report as one self-contained HTML document; ``switch``: a button (a script) switches
    between light and dark, else the system's mode alone rules."""
    drawn: list[Graph | Chart] = []
    body = "\n".join(_section(s, drawn) for s in sections)
    graphs = [g for g in drawn if isinstance(g, Graph)]
    charts = [c.data for c in drawn if isinstance(c, Chart)]
    scripts = ""
    if charts:
        scripts += (f'<script id="charts" type="application/json">{_script_json(charts)}</script>\n'
                    f"<script>{chart_script()}</script>\n")
    if graphs:
        scripts += (f'<script id="graphs" type="application/json">{_script_json([g.scene for g in graphs])}</script>\n'
                    f"<script>{script()}\n{_SCRIPT}</script>\n")
    button = ("<button type=button id=theme class=theme title=\"Switch between light and dark\">Dark</button>"
              if switch else "")
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(title)}</title>\n<style>{_STYLE}{stylesheet() if graphs else ''}</style>\n</head>\n<body>\n"
            f"<header>{button}<h1>{_e(title)}</h1>{f'<p class=sub>{_e(subtitle)}</p>' if subtitle else ''}</header>\n"
            f"{body}\n{scripts}{f'<script>{_THEME}</script>' if switch else ''}\n</body>\n</html>\n")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _section(section: Section, drawn: list[Graph | Chart]) -> str:
    return f"<section><h2>{_e(section.heading)}</h2>\n{_parts(section.parts, drawn)}</section>"


def _parts(parts: Sequence[Part], drawn: list[Graph | Chart]) -> str:
    return "\n".join(_part(p, drawn) for p in parts)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3e}"
    return str(value)


def _td(value: object, css: str | None) -> str:
    kind = f" class={css}" if css else ""
    if isinstance(value, Badge):
        if value.verdict not in BADGES:
            raise ValueError(f"Invalid value for argument `verdict`: one of {BADGES}. Received: {value.verdict!r}")
        return f"<td{kind}><span class=\"v v-{value.verdict}\">{_e(value.text)}</span></td>"
    return f"<td{kind}>{_e(_cell(value))}</td>"


def _table(table: Table) -> str:
    classes = [("num" if c in table.numbers else "reason" if c in table.reasons else None) for c in table.columns]
    head = "".join(f"<th>{_e(c)}</th>" for c in table.columns)
    rows = []
    for row in table.rows:
        row = row if isinstance(row, Row) else Row(row)
        data = "".join(f" data-{_e(k)}=\"{_e(v)}\"" for k, v in row.data.items())
        attrs = (" class=first" if row.first else "") + data
        rows.append(f"<tr{attrs}>" + "".join(_td(v, css) for v, css in zip(row.cells, classes)) + "</tr>")
    box = "table whole" if table.whole else "table"
    return f"<div class=\"{box}\"><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"


def _part(part: Part, drawn: list[Graph | Chart]) -> str:
    """One part as HTML; a graph or a chart is also added to ``drawn``, what the browser draws (its scene
    or its numbers go in as JSON)."""
    if isinstance(part, Text):
        if part.tone is not None and part.tone not in TONES:
            raise ValueError(f"Invalid value for argument `tone`: one of {TONES}. Received: {part.tone!r}")
        tone = f" class=\"{part.tone}\"" if part.tone else ""
        return f"<pre{tone}>{_e(part.text)}</pre>" if part.pre else f"<p{tone}>{_e(part.text)}</p>"
    if isinstance(part, Metrics):
        return "<div class=metrics>" + "".join(f"<div><span>{_e(label)}</span><b>{_e(value)}</b></div>"
                                               for label, value in part.items) + "</div>"
    if isinstance(part, Table):
        return _table(part)
    if isinstance(part, Picture):
        if part.mime not in MIMES:
            raise ValueError(f"Invalid value for argument `mime`: one of {MIMES}. Received: {part.mime!r}")
        data = base64.b64encode(part.data).decode("ascii")
        return f"<img alt=\"{_e(part.alt)}\" src=\"data:{part.mime};base64,{data}\">"
    if isinstance(part, Details):
        return (f"<details{' open' if part.open else ''}><summary>{_e(part.summary)}</summary>\n"
                f"{_parts(part.parts, drawn)}</details>")
    if isinstance(part, Chart):
        drawn.append(part)
        k = sum(isinstance(g, Chart) for g in drawn) - 1
        return (f"<div class=chart id=\"chart-{k}\" role=img aria-label=\"{_e(part.alt)}\">"
                "<svg aria-hidden=true></svg></div>")  # the script fills it when the chart is first shown
    if isinstance(part, Graph):
        drawn.append(part)
        k = sum(isinstance(g, Graph) for g in drawn) - 1
        caption = f"<p class=caption>{_e(part.caption)}</p>" if part.caption else ""
        return f"{caption}<div class=graph id=\"graph-{k}\"><p class=loading>Drawing the graph...</p></div>"
    raise TypeError(f"A report part is one of Text, Metrics, Table, Picture, Details, Graph, Chart. Received: "
                    f"{type(part)}")


def _script_json(value: object) -> str:
    """JSON that cannot end its ``<script>`` element or open a comment inside it."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=_plain)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _plain(value: object) -> object:
    """NumPy numbers and arrays in a scene as JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


_STYLE = """
:root{--report-text:#262626;--report-bg:#ffffff;--report-panel:#f4f5f7;--report-muted:#5c5c5c;--report-rule:#dddddd;
color-scheme:light}
@media (prefers-color-scheme:dark){:root:not([data-theme=light]){--report-text:#e8e8ea;--report-bg:#0e1117;
--report-panel:#1c1f26;--report-muted:#a8acb5;--report-rule:#3a3f4a;color-scheme:dark}}
:root[data-theme=dark]{--report-text:#e8e8ea;--report-bg:#0e1117;--report-panel:#1c1f26;--report-muted:#a8acb5;
--report-rule:#3a3f4a;color-scheme:dark}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1400px;padding:0 24px 48px;
color:var(--report-text);background:var(--report-bg);line-height:1.45}
header{border-bottom:1px solid var(--report-rule);margin-bottom:8px}h1{font-size:1.6em;margin:18px 0 4px}
.theme{float:right;margin-top:20px;font:inherit;padding:3px 10px;border-radius:6px;cursor:pointer;
color:var(--report-text);background:var(--report-panel);border:1px solid var(--report-rule)}
.sub{color:var(--report-muted);margin:0 0 12px}h2{font-size:1.25em;margin:28px 0 8px}
pre{background:var(--report-panel);padding:10px 12px;border-radius:6px;overflow-x:auto;font-size:12.5px;white-space:pre}
pre.pass,p.pass{border-left:5px solid #2e7d32}pre.fail,p.fail{border-left:5px solid #c62828}
pre.inconclusive,p.inconclusive{border-left:5px solid #ef6c00}p.pass,p.fail,p.inconclusive{padding-left:10px}
.metrics{display:flex;flex-wrap:wrap;gap:12px 32px;margin:12px 0}.metrics div{display:flex;flex-direction:column}
.metrics span{font-size:12.5px;color:var(--report-muted)}.metrics b{font-size:1.5em;font-weight:500}
.table{max-height:480px;overflow:auto;border:1px solid var(--report-rule);border-radius:6px}.table.whole{max-height:none}
table{border-collapse:collapse;font-size:12.5px;width:100%}th,td{padding:4px 8px;text-align:left;vertical-align:top;
border-bottom:1px solid var(--report-rule)}th{position:sticky;top:0;background:var(--report-panel)}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.reason{max-width:48em;color:var(--report-muted)}
tr.first td{border-top:2px solid var(--report-rule)}.v{font-weight:600;padding:1px 6px;border-radius:3px}
.v-pass{background:#d7f5dd;color:#11602a}.v-fail{background:#fbd5d5;color:#8a1111}
.v-inconclusive{background:#fdf0c4;color:#6b5200}.v-error{background:#e6d5f7;color:#4b1a7a}
img{max-width:100%;display:block;margin:8px 0;background:#ffffff;border-radius:4px}details{margin:4px 0}
summary{cursor:pointer}.caption{color:var(--report-muted);font-size:12.5px;margin:4px 0}
.graph{min-height:200px}.loading{color:var(--report-muted);padding:12px}
.chart{margin:8px 0;min-height:120px;background:#ffffff;border-radius:4px}
.chart svg{display:block;width:100%;height:auto;font-size:11px}
"""

# The graphs: each scene drawn by the page's own script; the theme: the system's, or the button's.
_SCRIPT = r"""
(() => {
  const scenes = JSON.parse(document.getElementById('graphs').textContent);
  scenes.forEach((scene, k) => {
    const host = document.getElementById('graph-' + k);
    host.textContent = '';
    foldscopeGraph(host, scene, {});
    host.dataset.ready = '1';
  });
})();
"""
_THEME = r"""
(() => {
  const root = document.documentElement, button = document.getElementById('theme');
  const dark = () => root.dataset.theme ? root.dataset.theme === 'dark'
                                        : matchMedia('(prefers-color-scheme: dark)').matches;
  const label = () => { button.textContent = dark() ? 'Light' : 'Dark'; };
  button.addEventListener('click', () => { root.dataset.theme = dark() ? 'light' : 'dark'; label(); });
  label();
})();
"""
