"""foldscope's one HTML writer: a document of sections (text, tables, pictures, interactive Plotly graphs)
as one file that opens anywhere, offline, every byte inlined, with one stylesheet. The report of a fold
or a check (``fold.outputs.html.fold_page``) and a zoo run's table (``fold.outputs.html.zoo_page``) are
written with it.

Plotly's library is most of the file (4.8 MB as ``plotly.min.js``), so it is inlined gzipped and
base64-encoded (1.9 MB) and the browser inflates it with ``DecompressionStream('gzip')`` before it
draws the graphs; the figures go in as JSON, the pictures as ``data:`` URIs. A chart (a folded pair's
per-channel figures, ``viz.channels.channels_data``) goes in as its numbers and is drawn as SVG by
``viz/assets/channels.js``, inlined, when it is first shown. Nothing is fetched: no ``src`` or ``href``
leads off the file.

Everything that comes from a model (its node names above all) is user data: text and table cells
are HTML-escaped, and JSON inside ``<script>`` has ``<``, ``>`` and ``&`` written as ``\\u003c``...,
so a node named ``</script><script>alert(1)</script>`` stays a name.

A graph (a ``viz.interactive.before_after_figure``, as a dict) comes with a search box that finds a
node by name (exact, else the first whose name contains what was typed, case apart), centres both
panes on it and rings it (``FOUND_MARKER``), as the page's "Find a layer" does; in a graph too
large to name every node, the names follow the view (those near it, as ``with_view`` opens it).
"""

from __future__ import annotations

import base64
import gzip
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

import plotly.io as pio

from viz.channels import chart_script
from viz.interactive import FOUND_MARKER, LABEL_ALL, all_labels


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
    """An interactive figure (``before_after_figure(...).to_dict()``, maybe through ``with_view``)."""

    figure: Mapping
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


def report_html(title: str, sections: Sequence[Section], *, subtitle: str = "") -> str:
    """The whole report as one self-contained HTML document."""
    found: list[Graph | Chart] = []
    body = "\n".join(_section(s, found) for s in sections)
    graphs = [g for g in found if isinstance(g, Graph)]
    charts = [c.data for c in found if isinstance(c, Chart)]
    scripts = ""
    if charts:
        scripts += (f'<script id="charts" type="application/json">{_script_json(charts)}</script>\n'
                    f"<script>{chart_script()}</script>\n")
    if graphs:
        data = [_graph_data(g) for g in graphs]
        scripts += (f'<script id="plotly-gz" type="application/octet-stream">{_plotly_gz()}</script>\n'
                    f'<script id="graphs" type="application/json">{_script_json(data)}</script>\n'
                    f"<script>{_SCRIPT}</script>")
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f"<header><h1>{_e(title)}</h1>{f'<p class=sub>{_e(subtitle)}</p>' if subtitle else ''}</header>\n"
            f"{body}\n{scripts}\n</body>\n</html>\n")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _section(section: Section, graphs: list[Graph | Chart]) -> str:
    return f"<section><h2>{_e(section.heading)}</h2>\n{_parts(section.parts, graphs)}</section>"


def _parts(parts: Sequence[Part], graphs: list[Graph | Chart]) -> str:
    return "\n".join(_part(p, graphs) for p in parts)


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


def _part(part: Part, graphs: list[Graph | Chart]) -> str:
    """One part as HTML; a graph or a chart is also added to ``graphs`` (its figure goes in as JSON)."""
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
                f"{_parts(part.parts, graphs)}</details>")
    if isinstance(part, Chart):
        graphs.append(part)
        k = sum(isinstance(g, Chart) for g in graphs) - 1
        return (f"<div class=chart id=\"chart-{k}\" role=img aria-label=\"{_e(part.alt)}\">"
                "<svg aria-hidden=true></svg></div>")  # the script fills it when the chart is first shown
    if isinstance(part, Graph):
        graphs.append(part)
        k = sum(isinstance(g, Graph) for g in graphs) - 1
        caption = f"<p class=caption>{_e(part.caption)}</p>" if part.caption else ""
        return (f"<div class=find><label for=\"find-{k}\">Find a node</label>"
                f"<input id=\"find-{k}\" list=\"names-{k}\" placeholder=\"type a node's name, then Enter\">"
                f"<button type=button id=\"find-go-{k}\">Find</button><span id=\"find-said-{k}\" "
                f"class=said></span><datalist id=\"names-{k}\">"
                + "".join(f"<option value=\"{_e(n)}\">" for n in _names(part.figure)) + "</datalist></div>"
                f"{caption}<div class=graph id=\"graph-{k}\"><p class=loading>Drawing the graph...</p></div>")
    raise TypeError(f"A report part is one of Text, Metrics, Table, Picture, Details, Graph, Chart. Received: "
                    f"{type(part)}")


def _names(figure: Mapping) -> list[str]:
    """Every node of a figure, in graph order (before, then after), once."""
    found = {}
    for trace in figure["data"]:
        if str(trace.get("name", "")).startswith("nodes ") or trace.get("name") == "folded away":
            found.update(dict.fromkeys(str(n) for n in trace.get("customdata") or ()))
    return list(found)


def _graph_data(graph: Graph) -> dict:
    """What the script draws: the figure, and every node's label when the figure names only some."""
    # Plotly's own template, whatever the process's default (Streamlit makes its own the default), so
    # that the page's download and the command line's file are the same bytes
    layout = {**graph.figure.get("layout", {}), "template": pio.templates["plotly"].to_plotly_json()}
    figure = {"data": list(graph.figure["data"]), "layout": layout}
    nodes = [t for t in figure["data"] if str(t.get("name", "")).startswith("nodes ")]
    labelled = {t.get("name") for t in figure["data"] if str(t.get("name", "")).startswith("labels ")}
    labels = None
    if labelled and any(len(t["x"]) > LABEL_ALL for t in nodes):
        labels = {t["name"]: {"x": t["x"], "y": t["y"], "text": t["text"]} for t in all_labels(graph.figure)}
    return {"figure": figure, "labels": labels, "ring": FOUND_MARKER}


def _script_json(value: object) -> str:
    """JSON that cannot end its ``<script>`` element or open a comment inside it."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=_plain)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _plain(value: object) -> object:
    """NumPy numbers and arrays in a figure dict (Plotly keeps them so) as JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


@cache
def _plotly_gz() -> str:
    """Plotly's library, gzipped and base64-encoded (computed once per process: about 0.3 s)."""
    from plotly.offline import get_plotlyjs

    return base64.b64encode(gzip.compress(get_plotlyjs().encode("utf-8"), 9, mtime=0)).decode("ascii")


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1400px;
  padding: 0 24px 48px; color: #262626; line-height: 1.45; }
header { border-bottom: 1px solid #ddd; margin-bottom: 8px; }
h1 { font-size: 1.6em; margin: 18px 0 4px; }
.sub { color: #666; margin: 0 0 12px; }
h2 { font-size: 1.25em; margin: 28px 0 8px; }
pre { background: #f6f6f6; padding: 10px 12px; border-radius: 6px; overflow-x: auto; font-size: 12.5px;
  white-space: pre; }
pre.pass, p.pass { border-left: 5px solid #2e7d32; }
pre.fail, p.fail { border-left: 5px solid #c62828; }
pre.inconclusive, p.inconclusive { border-left: 5px solid #ef6c00; }
p.pass, p.fail, p.inconclusive { padding-left: 10px; }
.metrics { display: flex; flex-wrap: wrap; gap: 12px 32px; margin: 12px 0; }
.metrics div { display: flex; flex-direction: column; }
.metrics span { font-size: 12.5px; color: #555; }
.metrics b { font-size: 1.5em; font-weight: 500; }
.table { max-height: 480px; overflow: auto; border: 1px solid #e3e3e3; border-radius: 6px; }
.table.whole { max-height: none; }
table { border-collapse: collapse; font-size: 12.5px; width: 100%; }
th, td { padding: 4px 8px; text-align: left; vertical-align: top; border-bottom: 1px solid #eee; }
th { position: sticky; top: 0; background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.reason { max-width: 48em; color: #444; }
tr.first td { border-top: 2px solid #bbb; }
.v { font-weight: 600; padding: 1px 6px; border-radius: 3px; }
.v-pass { background: #d7f5dd; color: #11602a; }
.v-fail { background: #fbd5d5; color: #8a1111; }
.v-inconclusive { background: #fdf0c4; color: #6b5200; }
.v-error { background: #e6d5f7; color: #4b1a7a; }
img { max-width: 100%; display: block; margin: 8px 0; }
details { margin: 4px 0; }
summary { cursor: pointer; }
.find { display: flex; gap: 8px; align-items: center; margin: 8px 0; }
.find input { width: 340px; padding: 4px 6px; }
.said { color: #555; font-size: 12.5px; }
.caption { color: #555; font-size: 12.5px; margin: 4px 0; }
.graph { border: 1px solid #e3e3e3; border-radius: 6px; min-height: 200px; }
.loading { color: #888; padding: 12px; }
.chart { margin: 8px 0; min-height: 120px; }
.chart svg { display: block; width: 100%; height: auto; font-size: 11px; }
"""

# The graphs: Plotly inflated from the file itself, then each figure drawn with the page's own
# config; "Find" centres both panes on a node (the view's height kept) and rings it; in a graph
# whose labels are windowed, the labels near the view follow it.
_SCRIPT = r"""
(async () => {
  const said = (k, text) => { document.getElementById('find-said-' + k).textContent = text; };
  let graphs;
  try {
    const b64 = document.getElementById('plotly-gz').textContent.trim();
    const raw = atob(b64), bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    const code = await new Response(stream).text();
    const script = document.createElement('script');
    script.textContent = code;
    document.head.appendChild(script);
    graphs = JSON.parse(document.getElementById('graphs').textContent);
  } catch (err) {
    document.querySelectorAll('.graph .loading').forEach(e => {
      e.textContent = 'This browser cannot inflate the inlined Plotly library (DecompressionStream): ' + err; });
    return;
  }
  const MAX_LABELS = 400;
  graphs.forEach((g, k) => {
    const gd = document.getElementById('graph-' + k);
    gd.textContent = '';
    Plotly.newPlot(gd, g.figure.data, g.figure.layout, {scrollZoom: true, displaylogo: false, responsive: true});
    const where = name => {  // [x, y, xaxis, yaxis] of each pane that draws the node (a folded BN: its ghost)
      const found = [];
      for (const [trace, axes] of [['nodes before', ['x', 'y']], ['nodes after', ['x2', 'y2']],
                                   ['folded away', ['x2', 'y2']]]) {
        const t = gd.data.find(d => d.name === trace);
        const i = t && t.customdata ? t.customdata.indexOf(name) : -1;
        if (i >= 0 && !found.some(f => f[2] === axes[0])) found.push([t.x[i], t.y[i], ...axes]);
      }
      return found;
    };
    const names = [...document.getElementById('names-' + k).options].map(o => o.value);
    const relabel = () => {
      if (!g.labels) return;
      const r = gd._fullLayout.yaxis.range, span = Math.abs(r[1] - r[0]);
      const low = Math.min(r[0], r[1]) - span, high = Math.max(r[0], r[1]) + span;
      const picked = Object.entries(g.labels).map(([name, l]) => {
        const keep = l.y.map((y, i) => (y >= low && y <= high ? i : -1)).filter(i => i >= 0);
        return [name, keep.length > MAX_LABELS ? [] : keep, l];
      });
      for (const [name, keep, l] of picked) {
        const index = gd.data.findIndex(d => d.name === name);
        if (index >= 0) Plotly.restyle(gd, {x: [keep.map(i => l.x[i])], y: [keep.map(i => l.y[i])],
                                            text: [keep.map(i => l.text[i])]}, [index]);
      }
    };
    gd.on('plotly_relayout', relabel);
    const find = async () => {
      const typed = document.getElementById('find-' + k).value.trim();
      if (!typed) return;
      const lower = typed.toLowerCase();
      const name = names.includes(typed) ? typed : names.find(n => n.toLowerCase().includes(lower));
      if (name === undefined) { said(k, 'No node named "' + typed + '".'); return; }
      const at = where(name);
      const [x, y] = at[0];
      const full = gd._fullLayout, yr = full.yaxis.range, xr = full.xaxis.range;
      const half = (yr[1] - yr[0]) / 2, update = {'yaxis.range': [y - half, y + half],
                                                  'yaxis2.range': [y - half, y + half]};
      if (x < Math.min(...xr) || x > Math.max(...xr)) {
        const w = (xr[1] - xr[0]) / 2;
        update['xaxis.range'] = [x - w, x + w];
      }
      const old = gd.data.map((d, i) => (d.name === 'found' ? i : -1)).filter(i => i >= 0);
      if (old.length) await Plotly.deleteTraces(gd, old);
      await Plotly.addTraces(gd, at.map(([px, py, xa, ya]) => ({type: 'scatter', mode: 'markers', name: 'found',
        x: [px], y: [py], customdata: [name], marker: g.ring, hoverinfo: 'skip', showlegend: false,
        xaxis: xa, yaxis: ya})));
      await Plotly.relayout(gd, update);
      said(k, 'Found ' + name + '.');
    };
    document.getElementById('find-go-' + k).addEventListener('click', find);
    document.getElementById('find-' + k).addEventListener('keydown', e => { if (e.key === 'Enter') find(); });
    gd.dataset.ready = '1';
  });
})();
"""
