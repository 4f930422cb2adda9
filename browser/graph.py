"""Helpers for the interactive graph in a real browser: Plotly's own state on the page (the
chart's ``data`` and ``_fullLayout``), node positions in pixels, hover and click."""

from __future__ import annotations

from playwright.sync_api import Page

from browser.page import list_option, select_box

#: The graph: the first Plotly plot with a "nodes before" trace (a report's charts are plots too).
_PLOT = ("[...document.querySelectorAll('.js-plotly-plot')].find(gd => (gd.data || []).some(t => t.name === "
         "'nodes before'))")


def graph_ready(page: Page, nodes: int | None = None) -> bool:
    """The graph is drawn (with ``nodes`` nodes in the "before" pane, when given)."""
    return bool(page.evaluate(f"""(nodes) => {{
        const gd = {_PLOT};
        if (!gd || !gd._fullLayout || !gd.querySelector('.scatterlayer .point')) return false;
        const before = (gd.data || []).find(t => t.name === 'nodes before');
        return !!before && (nodes === null || before.customdata.length === nodes);
    }}""", nodes))


def node_positions(page: Page, pane: str) -> dict[str, tuple[float, float]]:
    """Node id -> its centre on the page, in pixels, for pane "before" or "after"."""
    found = page.evaluate(f"""(pane) => {{
        const gd = {_PLOT};
        const trace = gd.data.find(t => t.name === 'nodes ' + pane);
        const full = gd._fullLayout, box = gd.getBoundingClientRect();
        const xa = pane === 'before' ? full.xaxis : full.xaxis2, ya = pane === 'before' ? full.yaxis : full.yaxis2;
        return trace.customdata.map((n, i) => [n, box.left + xa._offset + xa.l2p(trace.x[i]),
                                               box.top + ya._offset + ya.l2p(trace.y[i])]);
    }}""", pane)
    return {name: (x, y) for name, x, y in found}


def view_range(page: Page) -> tuple[float, float]:
    """The y range the graph shows now."""
    low, high = page.evaluate(f"() => {_PLOT}._fullLayout.yaxis.range")
    return float(low), float(high)


def hover_node(page: Page, position: tuple[float, float]) -> None:
    page.mouse.move(*position)


def click_node(page: Page, position: tuple[float, float], node: str | None = None) -> None:
    """Point at a node as a user does, then click it: Plotly clicks the point it hovers, so the
    hover (its tooltip naming ``node``, when given) comes first."""
    page.mouse.move(*position)
    if node is not None:
        page.wait_for_function("(n) => [...document.querySelectorAll('.hoverlayer .hovertext')]"
                               ".some(e => e.textContent.startsWith(n))", arg=node, timeout=10_000)
    page.mouse.down()
    page.mouse.up()


def tooltip(page: Page) -> str:
    """The text of the hover label shown now ("" when none is)."""
    labels = page.locator(".hoverlayer .hovertext")
    return labels.first.text_content() or "" if labels.count() else ""


def pair_to_inspect(page: Page) -> str:
    """The pair the "Pair to inspect" box shows."""
    box = select_box(page, "Pair to inspect")
    return box.locator("input").input_value() if box.count() else ""


def type_into(page: Page, label: str, text: str) -> None:
    """Type into the selectbox labelled ``label`` (a long list shows only the options near the
    top until typing filters it)."""
    field = select_box(page, label).locator("input")
    field.click()
    field.fill(text)
    list_option(page, text).wait_for()


def pick(page: Page, option: str) -> None:
    """Pick ``option`` in the open selectbox list."""
    list_option(page, option).click()


def type_and_pick(page: Page, label: str, option: str) -> None:
    type_into(page, label, option)
    pick(page, option)


def find_layer(page: Page, name: str) -> None:
    type_and_pick(page, "Find a layer", name)
