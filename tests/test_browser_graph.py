"""The graph in a real browser. DenseNet121 (429 layers) opens with its blocks closed, a block
opens, every block opens; a node's panel; Find ringing a BatchNorm. Measured on the page as drawn,
in the light and the dark theme: no label overlapping another, none leaving its node, no node
hidden under another (DenseNet121 closed and every block open, FER's classifier, PaddleOCR's
detector, the Check view of a broken fold, the seed), each screenshot in artifacts/graph/. The
Check view rings the failing layer with its counterpart; a copied link reopens the same model and
node; the tooltips read in both themes. The server, chromium and pages are the browser tests'
shared fixtures (tests/browser_fixtures.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from browser.page import MAX_ABS_DIFF, RUN_MS, choose_option, choose_source, fold_panel, fold_text, sidebar, wait_for_app
from browser.svg_graph import (
    bring_into_view, click_node, drawn, find_layer, geometry, graph, hover_node, in_view, marked, pair_to_inspect,
    scene, tooltip, wait_for_nodes,
)
from tests.browser_support import ARTIFACTS, check_uploads, open_app, upload, wait_for_graph
from tests.real_models import broken_copy, real_model

pytestmark = pytest.mark.browser

FIRST_PAIR = "conv1_conv → conv1_bn (folded)"
THEMES = ("light", "dark")
SHOTS = ARTIFACTS / "graph"


def open_densenet(page) -> None:
    open_app(page)
    choose_source(page, "Model zoo")
    wait_for_app(page, sidebar=["Architecture"], fold=[MAX_ABS_DIFF], what="the Model zoo source")
    choose_option(page, sidebar(page), "Architecture", "DenseNet121")
    wait_for_app(page, sidebar=["DenseNet121"], fold=[MAX_ABS_DIFF, "conv1_conv → conv1_bn", "Open blocks"],
                 timeout_ms=3 * RUN_MS, what="DenseNet121")
    wait_for_graph(page)
    wait_for_nodes(page, "[conv1]")  # the new model's graph, not the last one's
    graph(page).scroll_into_view_if_needed()


def every_block_open(page) -> None:
    fold_panel(page).get_by_text("Every block open").click()
    wait_for_nodes(page, "conv4_block12_1_conv", "[conv4]", timeout_ms=RUN_MS)
    wait_for_app(page, fold=[MAX_ABS_DIFF], what="every block open")


def theme_of(request) -> str:
    """The theme a ``themed_page`` test runs in."""
    return request.node.callspec.params["themed_page"]


def _rgb(css: str) -> tuple[float, ...]:
    return tuple(float(v) for v in re.findall(r"[\d.]+", css)[:3])


def contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """WCAG's contrast ratio of two sRGB colours (0-255 each)."""
    def luminance(rgb):
        linear = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def legibility_faults(page, index: int = 0) -> list[str]:
    """What a user would find hard to read in the graph as the browser drew it: a label line
    leaving its node's box or drawn in letters too close to its face's colour (WCAG's 4.5:1), two
    nodes' boxes overlapping (a label over another, a node hidden). Boxes in page pixels at the
    current zoom (overlap does not depend on it)."""
    faults = []
    for pane, drawn_ in geometry(page, index).items():
        nodes = drawn_["nodes"]
        for node, x, y, w, h, ink, face in drawn_["labels"]:
            nx, ny, nw, nh = nodes[node]
            if x < nx - 0.5 or y < ny - 0.5 or x + w > nx + nw + 0.5 or y + h > ny + nh + 0.5:
                faults.append(f"{pane}: a label of {node} leaves its box")
            if face.startswith("rgb(") and contrast(_rgb(ink), _rgb(face)) < 4.5:  # (a ghost's face is see-through)
                faults.append(f"{pane}: a label of {node} is {ink} on {face}")
        items = sorted(nodes.items(), key=lambda item: item[1][0])
        for i, (a, (ax, ay, aw, ah)) in enumerate(items):
            for b, (bx, by, bw, bh) in items[i + 1:]:
                if bx >= ax + aw - 0.01:
                    break
                if bx < ax + aw - 0.01 and ax < bx + bw - 0.01 and by < ay + ah - 0.01 and ay < by + bh - 0.01:
                    faults.append(f"{pane}: {a} overlaps {b}")
    return faults


def shoot(page, name: str, theme: str) -> Path:
    """The graph as the user sees it now, into artifacts/graph/."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}-{theme}.png"
    page.mouse.move(0, 0)
    graph(page).screenshot(path=str(path), animations="disabled")
    return path


# --- DenseNet121: blocks, panel, Find ---------------------------------------------------------


def test_densenet_opens_with_its_blocks_closed_and_a_block_opens(page):
    open_densenet(page)
    nodes = drawn(page)
    assert {"[conv1]", "[conv2]", "[pool2]", "[conv3]", "[conv4]", "[conv5]"} <= set(nodes) and len(nodes) < 30, nodes
    assert "conv3_block1_1_conv" not in nodes
    labels = graph(page).locator(".fsg-pane[data-pane=before] .fsg-node[data-id='[conv3]'] text").all_text_contents()
    assert labels == ["conv3", "block of 84 layers ▸"]  # a closed block names itself and its size
    box = fold_panel(page).get_by_test_id("stMultiSelect").filter(has_text="Open blocks")
    box.click()
    page.keyboard.type("conv3: 84")
    page.get_by_role("option", name=re.compile(r"^conv3: 84 layers, 24 BatchNorms: 12 folded, 12 skipped")).click()
    page.keyboard.press("Escape")
    wait_for_nodes(page, "[conv3_block1]", "[conv3]")
    nodes = drawn(page)
    assert [f"[conv3_block{i}]" for i in range(1, 13)] == [n for n in nodes if n.startswith("[conv3_")], nodes
    assert "[conv2]" in nodes and "[conv4]" in nodes  # the other blocks stay closed
    assert marked(page, "before", ".fsg-group") == ["conv3"]  # the open block: a frame around its members
    every_block_open(page)
    assert len(drawn(page)) == 429


def test_a_clicked_node_opens_its_panel(page):
    open_densenet(page)
    click_node(page, "before", "[conv2]")
    wait_for_app(page, fold=["Node panel: block conv2", "Open this block"], what="the block's panel")
    assert "42 layers, 12 BatchNorms: 6 folded, 6 skipped" in fold_text(page)
    fold_panel(page).get_by_role("button", name="Open this block").click()
    wait_for_nodes(page, "[conv2_block1]", "[conv2]")
    wait_for_app(page, fold=[MAX_ABS_DIFF], what="conv2 opened")
    click_node(page, "before", "[conv2_block1]")
    wait_for_app(page, fold=["Node panel: block conv2_block1"], what="the unit's panel")
    fold_panel(page).get_by_role("button", name="Open this block").click()
    wait_for_nodes(page, "conv2_block1_1_conv", "[conv2_block1]")
    wait_for_app(page, fold=[MAX_ABS_DIFF], what="conv2_block1 opened")
    click_node(page, "before", "conv2_block1_1_conv")
    wait_for_app(page, fold=["Node panel: conv2_block1_1_conv", "kernel, folded"], what="conv2_block1_1_conv's panel")
    text = fold_text(page)
    for part in ("Conv2D", "1×1×64×128", "mean |w|", "folded: conv2_block1_1_bn is folded into it",
                 "PASS: conv2_block1_1_conv fed"):
        assert part in text, (part, text[text.index("Node panel"):][:1500])
    assert pair_to_inspect(page) == "conv2_block1_1_conv → conv2_block1_1_bn (folded)"


def test_find_rings_a_batchnorm_and_inspects_its_pair(page):
    open_densenet(page)
    assert pair_to_inspect(page) == FIRST_PAIR
    find_layer(page, "conv4_block3_1_bn")  # inside the closed conv4: found as that block, then opened
    wait_for_app(page, fold=["Node panel: conv4_block3_1_bn"], what="finding conv4_block3_1_bn")
    wait_for_nodes(page, "conv4_block3_1_bn")
    assert pair_to_inspect(page) == "conv4_block3_1_conv → conv4_block3_1_bn (folded)"
    nodes = drawn(page)
    assert "[conv4_block2]" in nodes and "[conv3]" in nodes  # only its block opened
    assert marked(page, "before", ".fsg-ring") == ["conv4_block3_1_bn"]
    assert marked(page, "after", ".fsg-ring") == ["conv4_block3_1_bn"]  # its ghost, where it was
    assert in_view(page, "before", "conv4_block3_1_bn")
    assert "folded away into conv4_block3_1_conv" in fold_text(page)


# --- legible, in both themes ---------------------------------------------------------------------


@pytest.mark.parametrize("themed_page", THEMES, indirect=True)
def test_densenet_closed_and_every_block_open_overlaps_nothing(themed_page, request):
    page, theme = themed_page, theme_of(request)
    open_densenet(page)
    assert legibility_faults(page) == []
    shoot(page, "densenet121-closed", theme)
    every_block_open(page)
    assert len(drawn(page)) == 429 and legibility_faults(page) == []
    bring_into_view(page, "before", "conv4_block12_1_conv")
    shoot(page, "densenet121-every-block-open", theme)


@pytest.mark.parametrize("themed_page", THEMES, indirect=True)
def test_the_seed_fer_and_paddleocr_overlap_nothing(themed_page, request, tmp_path):
    page, theme = themed_page, theme_of(request)
    open_app(page)
    wait_for_graph(page)
    assert drawn(page) == ["x", "tconv", "bn"] and legibility_faults(page) == []
    assert graph(page).locator(".fsg-ghost text").first.text_content() == "bn"  # the ghost BN is named
    assert graph(page).bounding_box()["height"] < 420  # three nodes: a short graph
    shoot(page, "seed", theme)
    fer = tmp_path / "emotion_model.hdf5"
    fer.write_bytes(real_model("fer_h5").read_bytes())
    upload(page, fer, fold=[MAX_ABS_DIFF, "conv2d_1"], what="FER's classifier")
    wait_for_nodes(page, "separable_conv2d_1")
    assert legibility_faults(page) == []
    bring_into_view(page, "before", "separable_conv2d_1")
    shoot(page, "fer-classifier", theme)
    det = tmp_path / "ppocr_det.onnx"  # (a long name is cut in the sidebar)
    det.write_bytes(real_model("ppocr_det").read_bytes())
    sidebar(page).locator('input[type="file"]').first.set_input_files(str(det))  # in place of FER's
    wait_for_app(page, sidebar=[det.name], fold=[MAX_ABS_DIFF, "p2o.ConvTranspose.0"], timeout_ms=2 * RUN_MS,
                 what="PaddleOCR's detector")
    wait_for_nodes(page, "p2o.ConvTranspose.0")
    assert legibility_faults(page) == []
    bring_into_view(page, "before", "p2o.ConvTranspose.0")
    shoot(page, "paddleocr-detector", theme)


@pytest.fixture(scope="module")
def broken_detector(tmp_path_factory) -> tuple[Path, Path]:
    """PaddleOCR v4's detector, and foldscope's fold of it with ConvTranspose.0's channel 0 5 % off."""
    from fold.engine.pipeline import fold_file

    original = real_model("ppocr_det")
    folder = tmp_path_factory.mktemp("broken")
    result = fold_file(original)
    result.frontend.write(result.folded, folder / "det_folded.onnx")
    (folder / "det.onnx").write_bytes(original.read_bytes())
    return folder / "det.onnx", broken_copy(folder / "det_folded.onnx", folder / "det_broken.onnx",
                                            "p2o.ConvTranspose.0", 1)


@pytest.mark.parametrize("themed_page", THEMES, indirect=True)
def test_the_check_view_rings_the_failing_layer_with_its_counterpart(themed_page, request, broken_detector):
    page, theme = themed_page, theme_of(request)
    open_app(page)
    check_uploads(page, *broken_detector, fold=["FAIL", "Where each BatchNorm went"], what="checking the broken fold")
    wait_for_graph(page)
    graph(page).scroll_into_view_if_needed()
    for pane in ("original", "candidate"):
        assert marked(page, pane, ".fsg-ring") == ["p2o.ConvTranspose.0"]
        assert in_view(page, pane, "p2o.ConvTranspose.0")
        # drawn on top: the last node of its pane, so that hovering it shows it and no other
        last = graph(page).locator(f".fsg-pane[data-pane={pane}] .fsg-nodes > .fsg-node").last
        assert last.get_attribute("data-id") == "p2o.ConvTranspose.0"
    hover_node(page, "candidate", "p2o.ConvTranspose.0")
    text = tooltip(page)
    assert text.startswith("p2o.ConvTranspose.0") and "FAIL" in text, text
    assert "p2o.ConvTranspose.0" in marked(page, "original", ".fsg-linked")
    assert legibility_faults(page) == []
    shoot(page, "check-broken-fold", theme)
    find_layer(page, "p2o.Conv.30")
    wait_for_app(page, fold=["Node panel: p2o.Conv.30"], what="finding p2o.Conv.30 in the Check view")


@pytest.mark.parametrize("themed_page", THEMES, indirect=True)
def test_tooltips_and_pane_titles_read_in_the_theme(themed_page, request):
    page = themed_page
    open_app(page)
    wait_for_graph(page)
    hover_node(page, "before", "tconv")
    colours = graph(page).evaluate("""(root) => {
        const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
        const tip = getComputedStyle(root.querySelector('.fsg-tip'));
        const title = getComputedStyle(root.querySelector('.fsg-title'));
        const page = getComputedStyle(document.querySelector('[data-testid=stApp]'));
        return {tip: [rgb(tip.color), rgb(tip.backgroundColor)], title: [rgb(title.color), rgb(title.backgroundColor)],
                page: rgb(page.backgroundColor)}; }""")

    assert contrast(*colours["tip"]) > 7 and contrast(*colours["title"]) > 7, colours  # WCAG AAA
    dark = contrast(colours["page"], (0, 0, 0)) < 3
    assert dark == (theme_of(request) == "dark")
    assert (contrast(colours["tip"][1], (0, 0, 0)) < 3) == dark  # the tooltip's face follows the theme
    corner = fold_panel(page).locator('[data-testid="stImage"] img').last.evaluate("""(img) => {
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0); return [...g.getImageData(2, 2, 1, 1).data].slice(0, 3); }""")
    assert (contrast(tuple(corner), (0, 0, 0)) < 3) == dark, corner  # the outputs' heatmaps too


# --- links and the report ----------------------------------------------------------------------


def test_a_copied_link_reopens_the_same_model_and_node(page, browser):
    open_app(page)
    choose_source(page, "Model zoo")
    wait_for_app(page, sidebar=["Architecture"], fold=[MAX_ABS_DIFF], what="the Model zoo source")
    choose_option(page, sidebar(page), "Architecture", "U-Net (skip connections)")
    wait_for_app(page, sidebar=["U-Net"], fold=[MAX_ABS_DIFF, "up1_tconv → up1_tbn"], what="the U-Net")
    click_node(page, "before", "down1_bn1")
    wait_for_app(page, fold=["Node panel: down1_bn1"], what="the clicked node's panel")
    page.wait_for_function("() => location.search.includes('node=down1_bn1')", timeout=RUN_MS)
    link = page.url
    assert "source=Model+zoo" in link and "pair=down1_conv1" in link, link
    other = browser.new_context(viewport=page.viewport_size).new_page()
    try:
        other.goto(link)
        wait_for_app(other, sidebar=["U-Net"], fold=[MAX_ABS_DIFF, "Node panel: down1_bn1"], timeout_ms=2 * RUN_MS,
                     what="the copied link")
        assert pair_to_inspect(other) == "down1_conv1 → down1_bn1 (folded)"
        assert scene(other)["view"]["found"] == "down1_bn1" and in_view(other, "before", "down1_bn1")
    finally:
        other.context.close()


def test_a_link_into_a_closed_block_opens_it(page, server):
    page.goto(f"{server.url}/?source=Model+zoo&model=DenseNet121&node=conv4_block12_1_conv")
    wait_for_app(page, sidebar=["DenseNet121"], fold=[MAX_ABS_DIFF, "Node panel: conv4_block12_1_conv"],
                 timeout_ms=3 * RUN_MS, what="a link to a layer of DenseNet121")
    wait_for_nodes(page, "conv4_block12_1_conv")
    assert "[conv4_block11]" in drawn(page) and in_view(page, "before", "conv4_block12_1_conv")
    assert marked(page, "before", ".fsg-ring") == ["conv4_block12_1_conv"]


def test_the_offline_report_draws_the_page_s_graph(page, browser, tmp_path):
    open_app(page)
    choose_source(page, "Model zoo")
    wait_for_app(page, sidebar=["Architecture"], fold=[MAX_ABS_DIFF], what="the Model zoo source")
    choose_option(page, sidebar(page), "Architecture", "U-Net (skip connections)")
    wait_for_app(page, sidebar=["U-Net"], fold=[MAX_ABS_DIFF, "up1_tconv → up1_tbn"], what="the U-Net")
    wait_for_graph(page)
    on_page = scene(page)
    with page.expect_download(timeout=RUN_MS) as info:
        fold_panel(page).get_by_role("button", name="Download this tab as one HTML file").click()
    report = tmp_path / "report.html"
    info.value.save_as(report)
    offline = browser.new_context(viewport=page.viewport_size, offline=True).new_page()
    try:
        offline.goto(report.as_uri())
        offline.locator(".graph[data-ready='1']").first.wait_for(timeout=60_000)
        in_report = scene(offline)
        for mine, theirs in zip(on_page["panes"], in_report["panes"]):
            assert [(n["id"], n["box"], n["fill"]) for n in mine["nodes"]] == \
                [(n["id"], n["box"], n["fill"]) for n in theirs["nodes"]]
            assert mine["edges"] == theirs["edges"]
        assert legibility_faults(offline) == []
        find_layer(offline, "logits")
        assert marked(offline, "before", ".fsg-ring") == ["logits"] and in_view(offline, "before", "logits")
    finally:
        offline.context.close()
