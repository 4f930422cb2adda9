"""The graph of a large model in a real browser: DenseNet121 (429 layers) opens with its blocks
closed; a block opened; a node's panel; "Find a layer" ringing a BatchNorm and making its pair the
one inspected. The server, chromium and page are the browser tests' shared fixtures
(tests/browser_fixtures.py)."""

from __future__ import annotations

import re

import pytest

from browser.page import MAX_ABS_DIFF, RUN_MS, choose_option, choose_source, fold_panel, fold_text, sidebar, wait_for_app
from browser.plotly_graph import click_node, find_layer, graph_ready, node_positions, pair_to_inspect
from tests.browser_support import open_app, wait_for_graph

pytestmark = pytest.mark.browser


FIRST_PAIR = "conv1_conv → conv1_bn (folded)"
_NODES = "(pane) => document.querySelector('.js-plotly-plot').data.find(t => t.name === 'nodes ' + pane).customdata"


def open_densenet(page) -> None:
    open_app(page)
    choose_source(page, "Model zoo")
    wait_for_app(page, sidebar=["Architecture"], fold=[MAX_ABS_DIFF], what="the Model zoo source")
    choose_option(page, sidebar(page), "Architecture", "DenseNet121")
    wait_for_app(page, sidebar=["DenseNet121"], fold=[MAX_ABS_DIFF, "conv1_conv → conv1_bn", "Open blocks"],
                 timeout_ms=3 * RUN_MS, what="DenseNet121")
    wait_for_graph(page)
    wait_for_nodes(page, "[conv1]")  # the new model's figure, not the last one's
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()


def positions_in_view(page) -> dict[str, tuple[float, float]]:
    """The "before" nodes' centres once the graph is scrolled into the viewport (a click elsewhere
    on the page may have scrolled it away)."""
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    return node_positions(page, "before")


def drawn(page) -> list[str]:
    return page.evaluate(_NODES, "before")


def wait_for_nodes(page, present: str, absent: str | None = None) -> None:
    page.wait_for_function(f"""([present, absent]) => {{ const gd = document.querySelector('.js-plotly-plot');
        const t = gd && gd.data && gd.data.find(t => t.name === 'nodes before');
        return !!t && t.customdata.includes(present) && (absent === null || !t.customdata.includes(absent))
            && !!gd.querySelector('.scatterlayer .point'); }}""", arg=[present, absent], timeout=RUN_MS)


def test_densenet_opens_with_its_blocks_closed_and_a_block_opens(page):
    open_densenet(page)
    nodes = drawn(page)
    assert {"[conv1]", "[conv2]", "[pool2]", "[conv3]", "[conv4]", "[conv5]"} <= set(nodes) and len(nodes) < 30, nodes
    assert "conv3_block1_1_conv" not in nodes
    hover_labels = page.evaluate("() => document.querySelector('.js-plotly-plot').data"
                                 ".find(t => t.name === 'labels before').text")
    assert "conv3 ▸ 84" in [t.strip() for t in hover_labels], hover_labels  # a closed block names itself and its size
    box = fold_panel(page).get_by_test_id("stMultiSelect").filter(has_text="Open blocks")
    box.click()
    page.keyboard.type("conv3: 84")
    page.get_by_role("option", name=re.compile(r"^conv3: 84 layers, 24 BatchNorms: 12 folded, 12 skipped")).click()
    page.keyboard.press("Escape")
    wait_for_nodes(page, "[conv3_block1]", "[conv3]")
    nodes = drawn(page)
    assert [f"[conv3_block{i}]" for i in range(1, 13)] == [n for n in nodes if n.startswith("[conv3_")], nodes
    assert "[conv2]" in nodes and "[conv4]" in nodes  # the other blocks stay closed
    fold_panel(page).get_by_text("Every block open").click()
    page.wait_for_function("() => { const gd = document.querySelector('.js-plotly-plot');"
                           " const t = gd.data.find(t => t.name === 'nodes before'); return t.customdata.length === 429; }",
                           timeout=RUN_MS)
    assert graph_ready(page, nodes=429)


def _label_clears_marker(page, node: str) -> None:
    """The name of ``node`` (in the "before" pane, drawn first) starts right of its marker, not under it."""
    x, _ = positions_in_view(page)[node]
    left, size = page.evaluate("""(node) => { const gd = document.querySelector('.js-plotly-plot');
        const nodes = gd.data.find(t => t.name === 'nodes before');
        const size = nodes.marker.size[nodes.customdata.indexOf(node)];
        const text = [...gd.querySelectorAll('.textpoint text')].find(e => e.textContent.trim() === node);
        const spaces = text.textContent.length - text.textContent.trimStart().length;
        const glyph = text.getExtentOfChar(spaces), m = text.getScreenCTM();  // the name's first letter
        return [glyph.x * m.a + m.e, size]; }""", node)
    assert left > x + size / 2, f"the label of {node} starts at {left:.1f} px, under its marker ({x:.1f} ± {size / 2})"


def test_a_clicked_node_opens_its_panel(page):
    # (not the first pair's block: the view opens with it selected, and a click on a selected point unselects it)
    open_densenet(page)
    positions = positions_in_view(page)
    click_node(page, positions["[conv2]"], "conv2")
    wait_for_app(page, fold=["Node panel: block conv2", "Open this block"], what="the block's panel")
    assert "42 layers, 12 BatchNorms: 6 folded, 6 skipped" in fold_text(page)
    fold_panel(page).get_by_role("button", name="Open this block").click()
    wait_for_nodes(page, "[conv2_block1]", "[conv2]")
    wait_for_app(page, fold=[MAX_ABS_DIFF], what="conv2 opened")
    wait_for_graph(page)
    positions = positions_in_view(page)
    click_node(page, positions["[conv2_block1]"], "conv2_block1")
    wait_for_app(page, fold=["Node panel: block conv2_block1"], what="the unit's panel")
    fold_panel(page).get_by_role("button", name="Open this block").click()
    wait_for_nodes(page, "conv2_block1_1_conv", "[conv2_block1]")
    wait_for_app(page, fold=[MAX_ABS_DIFF], what="conv2_block1 opened")
    wait_for_graph(page)
    _label_clears_marker(page, "conv2_block1_1_conv")
    positions = positions_in_view(page)
    click_node(page, positions["conv2_block1_1_conv"], "conv2_block1_1_conv")
    wait_for_app(page, fold=["Node panel: conv2_block1_1_conv", "kernel, folded"], what="conv2_block1_1_conv's panel")
    text = fold_text(page)
    for part in ("Conv2D", "1×1×64×128", "mean |w|", "folded: conv2_block1_1_bn is folded into it",
                 "PASS: conv2_block1_1_conv fed"):
        assert part in text, (part, text[text.index("Node panel"):][:1500])
    assert pair_to_inspect(page) == "conv2_block1_1_conv → conv2_block1_1_bn (folded)"


def test_find_rings_a_batchnorm_and_inspects_its_pair(page):
    open_densenet(page)
    assert pair_to_inspect(page) == FIRST_PAIR
    find_layer(page, "conv4_block3_1_bn")
    wait_for_app(page, fold=["Node panel: conv4_block3_1_bn"], what="finding conv4_block3_1_bn")
    page.wait_for_function("() => { const gd = document.querySelector('.js-plotly-plot');"
                           " const r = gd.data.find(t => t.name === 'found');"
                           " return !!r && r.customdata[0] === 'conv4_block3_1_bn'; }", timeout=RUN_MS)
    assert pair_to_inspect(page) == "conv4_block3_1_conv → conv4_block3_1_bn (folded)"
    nodes = drawn(page)
    assert "conv4_block3_1_bn" in nodes and "[conv4_block2]" in nodes and "[conv3]" in nodes  # only its block opened
    ring = page.evaluate("() => document.querySelector('.js-plotly-plot').data.filter(t => t.name === 'found')"
                         ".map(t => [t.x[0], t.y[0], t.xaxis])")
    positions = page.evaluate("""() => { const gd = document.querySelector('.js-plotly-plot');
        const t = gd.data.find(t => t.name === 'nodes before'); const i = t.customdata.indexOf('conv4_block3_1_bn');
        return [t.x[i], t.y[i]]; }""")
    assert [ring[0][0], ring[0][1]] == positions and {r[2] for r in ring} == {"x", "x2"}
    low, high = page.evaluate("() => document.querySelector('.js-plotly-plot')._fullLayout.yaxis.range")
    assert low < positions[1] < high
    assert "folded away into conv4_block3_1_conv" in fold_text(page)
