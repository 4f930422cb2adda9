"""Helpers for the interactive graph (``viz/assets/graph.js``) in a real browser, on the page or in
the HTML report: the nodes each pane draws, their boxes and labels in pixels, hover, click, Find.
Playwright's CSS locators reach into the page component's shadow root."""

from __future__ import annotations

from playwright.sync_api import Locator, Page

from browser.page import select_box

GRAPH = "[data-testid=foldscope-graph]"


def graph(page: Page, index: int = 0) -> Locator:
    """The ``index``-th graph on the page."""
    return page.locator(GRAPH).nth(index)


def pane(page: Page, name: str, index: int = 0) -> Locator:
    return graph(page, index).locator(f".fsg-pane[data-pane='{name}']")


def node(page: Page, pane_name: str, node_id: str, index: int = 0) -> Locator:
    """The node ``node_id`` of a pane (its ghost, for a BN the "after" pane draws folded away)."""
    return pane(page, pane_name, index).locator(f".fsg-node[data-id={_css(node_id)}]")


def _css(text: str) -> str:
    """``text`` as a CSS string (a node's name may hold quotes and backslashes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def scene(page: Page, index: int = 0) -> dict:
    """The scene the graph draws now (``viz.interactive``)."""
    return graph(page, index).evaluate("(root) => root.scene")


def hovers(page: Page, pane_name: str, index: int = 0) -> dict[str, str]:
    """Node id -> what hovering it in a pane says (its lines joined), ghosts left out."""
    shown = next(p for p in scene(page, index)["panes"] if p["name"] == pane_name)
    return {n["id"]: "\n".join(n["hover"]) for n in shown["nodes"] if not n["ghost"]}


def drawn(page: Page, pane_name: str = "before", index: int = 0) -> list[str]:
    """The nodes a pane draws (ghosts left out), in drawing order."""
    return pane(page, pane_name, index).locator(".fsg-node:not(.fsg-ghost)").evaluate_all(
        "(nodes) => nodes.map(n => n.getAttribute('data-id'))")


def graph_ready(page: Page, nodes: int | None = None, index: int = 0) -> bool:
    """The graph is drawn (with ``nodes`` nodes in its first pane, when given)."""
    count = len(drawn(page, _first_pane(page, index), index)) if graph(page, index).count() else 0
    return count > 0 and (nodes is None or count == nodes)


def _first_pane(page: Page, index: int = 0) -> str:
    return graph(page, index).locator(".fsg-pane").first.get_attribute("data-pane") or "before"


def wait_for_nodes(page: Page, present: str, absent: str | None = None, pane_name: str = "before",
                   timeout_ms: float = 60_000, index: int = 0) -> None:
    """Wait until a pane draws ``present`` (and no longer ``absent``)."""
    node(page, pane_name, present, index).first.wait_for(timeout=timeout_ms)
    if absent is not None:
        node(page, pane_name, absent, index).first.wait_for(state="detached", timeout=timeout_ms)


def geometry(page: Page, index: int = 0) -> dict:
    """Every drawn node's box and every label's box, in page pixels, per pane: what a user sees.

    ``{pane: {"nodes": {id: [x, y, w, h]}, "labels": [[id, x, y, w, h, ink, face]...], "view": [x, y, w, h]}}``;
    a label is one line of text (its glyphs' extent, as the browser laid them out), with the colours
    its letters and its node's face are drawn in (CSS ``rgb(...)``)."""
    return graph(page, index).evaluate("""(root) => {
        const box = (r) => [r.left, r.top, r.width, r.height];
        const found = {};
        for (const pane of root.querySelectorAll('.fsg-pane')) {
            const nodes = {}, labels = [];
            for (const g of pane.querySelectorAll('.fsg-node')) {
                const id = g.getAttribute('data-id') + (g.classList.contains('fsg-ghost') ? ' (ghost)' : '');
                const rect = g.querySelector('rect'), face = getComputedStyle(rect).fill;
                nodes[id] = box(rect.getBoundingClientRect());
                for (const t of g.querySelectorAll('text')) {
                    labels.push([id, ...box(t.getBoundingClientRect()), getComputedStyle(t).fill, face]);
                }
            }
            found[pane.getAttribute('data-pane')] = {nodes, labels,
                view: box(pane.querySelector('svg').getBoundingClientRect())};
        }
        return found;
    }""")


def hover_node(page: Page, pane_name: str, node_id: str, index: int = 0) -> None:
    bring_into_view(page, pane_name, node_id, index)
    node(page, pane_name, node_id, index).first.hover()


def bring_into_view(page: Page, pane_name: str, node_id: str, index: int = 0) -> None:
    """Pan the graph so that the node is in the middle of its pane (as a user drags it there), and
    scroll the page to the graph."""
    graph(page, index).scroll_into_view_if_needed()
    if not in_view(page, pane_name, node_id, index):
        graph(page, index).evaluate("""(root, id) => { const [x, y, w, h] = root.view.boxOf(id);
            root.view.centerOn(x + w / 2, y + h / 2); }""", node_id)


def click_node(page: Page, pane_name: str, node_id: str, index: int = 0) -> None:
    """Point at a node as a user does (panning to it first), then click it."""
    bring_into_view(page, pane_name, node_id, index)
    target = node(page, pane_name, node_id, index).first
    target.hover()
    target.click()


def tooltip(page: Page, index: int = 0) -> str:
    """The text of the hover label shown now ("" when none is)."""
    tip = graph(page, index).locator(".fsg-tip")
    return (tip.text_content() or "") if tip.count() and tip.is_visible() else ""


def marked(page: Page, pane_name: str, css: str, index: int = 0) -> list[str]:
    """The nodes of a pane carrying ``css`` (e.g. ".fsg-linked"), or the ids a pane's rings mark (".fsg-ring")."""
    return pane(page, pane_name, index).locator(css).evaluate_all(
        "(found) => found.map(n => n.getAttribute('data-id'))")


def in_view(page: Page, pane_name: str, node_id: str, index: int = 0) -> bool:
    """Whether the node's box lies inside its pane's drawing area."""
    return node(page, pane_name, node_id, index).first.evaluate("""(g) => {
        const r = g.getBoundingClientRect(), v = g.ownerSVGElement.getBoundingClientRect();
        return r.left >= v.left && r.right <= v.right && r.top >= v.top && r.bottom <= v.bottom; }""")


def find_layer(page: Page, name: str, index: int = 0) -> None:
    """Find ``name`` with the graph's Find box, as a user types it."""
    box = graph(page, index).locator(".fsg-find")
    box.fill(name)
    box.press("Enter")


def pair_to_inspect(page: Page) -> str:
    """The pair the "Pair to inspect" box shows."""
    box = select_box(page, "Pair to inspect")
    return box.locator("input").input_value() if box.count() else ""
