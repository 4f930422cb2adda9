"""The single-file HTML report (``--html``, the page's download): what it holds, that it loads
nothing from anywhere, that a model's names cannot run as script in it, and, in headless chromium
opened from disk with the network cut, that its graph draws, hovers and finds a node, in the
system's light and dark mode."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import onnx
import pytest

from fold.outputs.html.document import Details, Graph, Metrics, Picture, Section, Table, Text, report_html
from foldscope_app.examples import onnx_zoo
from tests.helpers import run_cli
from viz import plot_channels, plot_vectors
from viz.pictures import COMPACT_ERROR, compact_png, picture, smallest

#: Node names a report must show as text, never run: a script, an image whose error runs script.
SCRIPT_NAME = "<script>alert(1)</script>"
IMG_NAME = "<img src=x onerror=alert(2)>"


class _Page(HTMLParser):
    """What a browser would fetch (every src and href), the text shown, the names the graphs' Find knows."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.shown: list[str] = []
        self.tags: list[str] = []
        self._script = False
        self.feed(text)
        blob = re.search(r'<script id="graphs" type="application/json">(.*?)</script>', text, re.S)
        self.scenes = json.loads(blob.group(1)) if blob else []
        self.names = [name for scene in self.scenes for name in scene["find"]]

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        self.links += [attrs[a] for a in ("src", "href") if a in attrs]
        self._script = tag in ("script", "style")

    def handle_endtag(self, tag):
        self._script = False

    def handle_data(self, data):
        if not self._script:
            self.shown.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.shown).split())


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> dict:
    """The zoo's text detector head (ONNX) folded with --html and --report, and its fold checked with --html."""
    tmp = tmp_path_factory.mktemp("html")
    onnx.save(onnx_zoo.text_detector_head(), tmp / "head.onnx")
    fold = run_cli(tmp / "head.onnx", "-o", tmp / "head_folded.onnx", "--html", tmp / "head.html",
                   "--report", tmp / "head.json")
    check = run_cli("check", tmp / "head.onnx", tmp / "head_folded.onnx", "--html", tmp / "check.html",
                    "--report", tmp / "check.json")
    return {"dir": tmp, "fold": fold, "check": check}


def test_the_fold_report_holds_the_verdict_every_pair_its_reason_and_the_node_names(head):
    assert head["fold"].returncode == 0, head["fold"].stderr
    assert f"HTML report written to {head['dir'] / 'head.html'}" in head["fold"].stdout
    report = json.loads((head["dir"] / "head.json").read_text())
    page = _Page((head["dir"] / "head.html").read_text())
    assert "PASS." in page.text and _words(report["verification"]["reason"]) in page.text
    assert "BatchNorms: 3 before, 0 after" in page.text
    for pair in report["pairs"]:
        assert pair["layer"] in page.text and pair["bn"] in page.text
        assert pair["reason"] is None or _words(pair["reason"]) in page.text
    assert {"head_conv", "head_bn", "up0", "up1_bn", "probability"} <= set(page.names)
    assert page.tags.count("img") == 1  # the one output's heatmaps
    charts = _charts((head["dir"] / "head.html").read_text())  # and a chart of each folded pair
    assert [c["title"] for c in charts] == [f"{p['layer']} ← {p['bn']}" for p in report["pairs"]
                                            if p["status"] == "folded"]
    assert all([s["name"] for p in c["panels"] for s in p["series"]] == [
        "scale s", "shift t", "kernel before folding", "kernel after folding"] for c in charts)


def _charts(text: str) -> list[dict]:
    """The numbers of a report's charts, in the order their places appear."""
    blob = re.search(r'<script id="charts" type="application/json">(.*?)</script>', text, re.S).group(1)
    figures = json.loads(blob)
    assert re.findall(r'class=chart id="chart-(\d+)"', text) == [str(k) for k in range(len(figures))]
    return figures


def test_the_check_report_holds_where_each_batchnorm_went(head):
    assert head["check"].returncode == 0, head["check"].stderr
    report = json.loads((head["dir"] / "check.json").read_text())
    page = _Page((head["dir"] / "check.html").read_text())
    assert "PASS." in page.text and "Where each BatchNorm went" in page.text
    assert [p["bn"] for p in report["pairs"]] == ["head_bn", "up0_bn", "up1_bn"]
    for pair in report["pairs"]:
        assert f"{pair['bn']} {pair['source']} folded {pair['layer']} PASS" in page.text
    assert "head_conv" in page.names


def test_a_report_loads_nothing_from_anywhere(head):
    """Every src and href is inline (data:), there is no <link> or <iframe>, and no web address
    (the graph's script names only the SVG namespace, which a browser does not fetch)."""
    for name in ("head.html", "check.html"):
        text = (head["dir"] / name).read_text()
        page = _Page(text)
        assert page.links and all(link.startswith("data:image/") for link in page.links), page.links
        assert not {"link", "iframe", "object", "embed"} & set(page.tags)
        assert set(re.findall(r"https?://[^'\"\s]*", text)) <= {"http://www.w3.org/2000/svg"}, name


def test_the_report_is_what_the_page_downloads(head):
    """The page's upload of the same file builds the same bytes the command line wrote."""
    from foldscope_app.workbench.workbench import upload_workbench

    wb = upload_workbench("head.onnx", (head["dir"] / "head.onnx").read_bytes())
    assert wb.html_report() is wb.html_report()  # built once per workbench
    assert wb.html_report() == (head["dir"] / "head.html").read_bytes()


def test_a_keras_report_has_a_channel_plot_per_folded_pair(tmp_path):
    from foldscope_app.examples import model_zoo

    model_zoo.dcgan_generator().save(tmp_path / "dcgan.keras")
    proc = run_cli(tmp_path / "dcgan.keras", "--html", tmp_path / "dcgan.html", "--report", tmp_path / "r.json",
                   "--samples", "2")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    page = _Page((tmp_path / "dcgan.html").read_text())
    folded = [p for p in report["pairs"] if p["status"] == "folded"]
    assert folded and page.text.count("(folded)") == len(folded)
    assert page.tags.count("img") == 1 and len(_charts((tmp_path / "dcgan.html").read_text())) == len(folded)
    assert {p["layer"] for p in report["pairs"]} <= set(page.names)


def _xss_model() -> onnx.ModelProto:
    """Conv -> BN -> Relu, every one named as markup."""
    g = onnx_zoo.Graph(0)
    x = g.input("x", ["N", 3, 8, 8])
    x = g.node("Relu", [g.bn(g.conv(x, 3, 4, 3, SCRIPT_NAME, pad=1), 4, IMG_NAME)], "<b>bold</b>")
    return g.model([x], "markup", [["N", 4, 8, 8]])


@pytest.fixture(scope="module")
def xss_report(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("xss")
    onnx.save(_xss_model(), tmp / "markup.onnx")
    proc = run_cli(tmp / "markup.onnx", "--html", tmp / "markup.html")
    assert proc.returncode == 0, proc.stderr
    return tmp / "markup.html"


def test_markup_in_node_names_stays_text(xss_report):
    text = xss_report.read_text()
    assert SCRIPT_NAME not in text and IMG_NAME not in text
    page = _Page(text)
    assert SCRIPT_NAME in page.text and IMG_NAME in page.text  # shown, escaped, in the pair table
    assert {SCRIPT_NAME, IMG_NAME} <= set(page.names)
    assert page.tags.count("script") == 5  # the charts' JSON and script, the scenes' JSON, the graph's script, the theme's
    assert all(link.startswith("data:image/") for link in page.links)
    (chart,) = _charts(text)
    assert chart["title"] == f"{SCRIPT_NAME} ← {IMG_NAME}" and SCRIPT_NAME not in text.split('id="charts"')[1]


# -- the writer and the pictures, headless --------------------------------------------------------

def test_the_writer_escapes_every_part_and_inlines_pictures():
    png = picture(plot_vectors(np.arange(3.0), np.arange(3.0)))
    text = report_html("<b>t</b>", [Section("<h>", [
        Text("a <i>", tone="fail"), Text("<pre>", pre=True), Metrics([("<m>", "1 < 2")]),
        Table(("<c>",), [["<td>"], [1.5e-7], [None]]), Details("<s>", [Picture(png, "image/png", "<alt>")], open=True)])])
    page = _Page(text)
    for shown in ("<b>t</b>", "<h>", "a <i>", "<pre>", "<m>", "1 < 2", "<c>", "<td>", "1.500e-07", "<s>"):
        assert shown in page.text, shown
    assert not {"h", "i", "m", "c", "s"} & set(page.tags) and page.tags.count("pre") == 1
    assert page.links == [f"data:image/png;base64,{base64.b64encode(png).decode()}"]
    assert 'id="graphs"' not in text and "foldscopeGraph" not in text  # no graph, no script
    with pytest.raises(ValueError, match="mime"):
        report_html("t", [Section("s", [Picture(b"", "image/gif", "x")])])
    with pytest.raises(ValueError, match="tone"):
        report_html("t", [Section("s", [Text("x", tone="green")])])


def test_figure_json_cannot_close_its_script():
    import networkx as nx

    from viz.interactive import before_after_figure

    graph = nx.DiGraph()
    graph.add_edge("</script><script>alert(3)</script>", "b")
    text = report_html("t", [Section("graph", [Graph(before_after_figure(graph, graph))])])
    assert "</script><script>alert(3)" not in text
    assert "</script><script>alert(3)</script>" in _Page(text).names


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def test_a_compact_png_looks_the_same_and_is_smaller():
    rng = np.random.default_rng(0)
    s, t = rng.normal(1, 0.5, 64), rng.normal(0, 0.5, 64)
    ranges = np.sort(rng.normal(0, 1, (64, 2)), axis=1)
    png = picture(plot_channels(s, t, ranges, ranges * s[:, None]))
    small = compact_png(png)
    assert len(small) < 0.7 * len(png)
    assert np.abs(_pixels(small) - _pixels(png)).max() <= COMPACT_ERROR
    data, mime = smallest(plot_channels(s, t, ranges, ranges * s[:, None]))
    assert (data, mime) == (small, "image/png")
    # a long curve is smaller as vectors: then the SVG, when it is the smaller
    figure = plot_vectors(rng.normal(size=1000), rng.normal(size=1000))
    data, mime = smallest(figure)
    assert len(data) == min(len(compact_png(picture(figure))), len(picture(figure, "svg")))


# -- in a real browser, from disk, offline ------------------------------------------------------

@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_report_draws_hovers_and_finds_offline(browser, xss_report, head, scheme):
    """Opened as a file with every other request aborted: the graph draws, a node's tooltip names it
    (markup in the name shown as text, no dialog), "Find" ("/" focuses it) centres the view on a node
    and rings it; the page follows the system's light or dark mode."""
    from browser.svg_graph import find_layer, graph, hover_node, in_view, marked, tooltip

    context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme=scheme)
    asked: list[str] = []

    def only_the_file(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            asked.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_file)
    page = context.new_page()
    requests, dialogs, errors = [], [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(xss_report.as_uri())
        page.locator(".graph[data-ready='1'] .fsg-node").first.wait_for(timeout=30_000)
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert (background == "rgb(255, 255, 255)") == (scheme == "light"), background
        hover_node(page, "before", SCRIPT_NAME)
        assert tooltip(page).startswith(SCRIPT_NAME), tooltip(page)
        hover_node(page, "before", IMG_NAME)
        assert tooltip(page).startswith(IMG_NAME), tooltip(page)
        names = graph(page).locator(".fsg-pane[data-pane=before] .fsg-name").all_text_contents()
        assert IMG_NAME in names and "<b>bold</b>" in names, names  # drawn as typed
        page.wait_for_function("() => document.getElementById('chart-0').dataset.ready === '1'", timeout=10_000)
        title = page.evaluate("() => document.querySelector('#chart-0 svg > text').textContent")
        assert title == f"{SCRIPT_NAME} ← {IMG_NAME}", title  # the pair's chart, its title as typed
        assert page.evaluate("() => document.querySelectorAll('#chart-0 svg img, #chart-0 svg script').length") == 0

        page.goto((head["dir"] / "head.html").as_uri())
        page.locator(".graph[data-ready='1'] .fsg-node").first.wait_for(timeout=30_000)
        # the open pair's chart is drawn, a closed one's when its pair is opened
        drawn = "() => [...document.querySelectorAll('.chart')].map(e => e.dataset.ready === '1')"
        assert page.evaluate(drawn) == [False, True, False], page.evaluate(drawn)  # open on the first ConvTranspose
        page.locator("details:has(#chart-0) > summary").click()
        page.wait_for_function("() => document.getElementById('chart-0').dataset.ready === '1'", timeout=10_000)
        bars = page.locator('#chart-0 g[data-name="scale s"] rect')
        channels = len(_charts((head["dir"] / "head.html").read_text())[0]["panels"][0]["series"][0]["high"])
        assert bars.count() == channels > 0  # a bar per channel, each value on hover
        tip = page.evaluate("() => document.querySelector('#chart-0 g[data-name=\"kernel after folding\"] rect title')"
                            ".textContent")
        assert re.fullmatch(r"channel 0\nkernel after folding: \S+ to \S+", tip), tip
        graph(page).evaluate("(root) => root.view.centerOn(-5000, -5000)")  # far from every node
        page.mouse.click(5, 5)
        page.keyboard.press("/")
        page.keyboard.type("up1_bn")
        page.keyboard.press("Enter")
        assert graph(page).locator(".fsg-said").text_content() == "Found up1_bn."
        assert in_view(page, "before", "up1_bn") and in_view(page, "after", "up1_bn")
        assert marked(page, "before", ".fsg-ring") == marked(page, "after", ".fsg-ring") == ["up1_bn"]  # its ghost too
        find_layer(page, "no such layer")
        assert graph(page).locator(".fsg-said").text_content() == 'No node named "no such layer".'
    finally:
        context.close()
    assert not asked, f"the report asked the network for {asked}"
    assert all(url.startswith(("file://", "data:")) for url in requests), requests
    assert not dialogs, f"a node's name ran as script: {dialogs}"
    assert not errors, errors


def test_the_fold_tab_offers_the_report_without_building_it():
    """The page's download is the report of its workbench, built when clicked, not on a rerun."""
    from streamlit.testing.v1 import AppTest

    from foldscope_app.sections import sources

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=240).run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [b.label for b in at.get("download_button")]
    assert "Download this tab as one HTML file" in labels, labels
    wb = sources.seed_workbench()  # the page's own, from its cache
    memo = wb.memos.of("html_report", 1)
    assert len(memo) == 0  # the run did not build it
    page = _Page(wb.html_report().decode())
    assert len(memo) == 1 and "seed" in page.text and "PASS." in page.text


def _chain(n: int):
    """A chain of ``n`` nodes as the page's scene opening at its top (``with_view``)."""
    import networkx as nx

    from viz.interactive import before_after_figure, with_view

    graph = nx.DiGraph()
    nx.add_path(graph, [f"layer{i}" for i in range(n)])
    return with_view(before_after_figure(graph, graph), center="layer0")


@pytest.mark.browser
def test_find_reaches_a_node_far_down_a_large_graph(browser, tmp_path):
    """Every node is named wherever the view is; Find takes the first name containing what was
    typed, case apart, and moves the view to it."""
    from browser.svg_graph import find_layer, in_view

    path = tmp_path / "chain.html"
    path.write_text(report_html("chain", [Section("graph", [Graph(_chain(260))])]))
    page = browser.new_page()
    try:
        page.goto(path.as_uri())
        page.locator(".graph[data-ready='1'] .fsg-node").first.wait_for(timeout=30_000)
        assert in_view(page, "before", "layer0") and not in_view(page, "before", "layer250")
        find_layer(page, "LAYER250")  # no exact match: the first name containing it, case apart
        assert in_view(page, "before", "layer250") and not in_view(page, "before", "layer0")
        assert page.locator(".fsg-pane[data-pane=before] .fsg-node").count() == 260
    finally:
        page.close()
