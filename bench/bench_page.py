"""How fast the page answers, measured through the real page: `streamlit run app.py` and headless
Debian chromium driven by Playwright (``browser/``, which the browser tests use too).

Every figure is wall-clock time from the user's action until the page shows its result:

* zoo -> DenseNet121: from picking it in the sidebar until the fold's metrics, the first
  pair and the graph's nodes are on the page (the fold, the verification and the page; the
  graph of more than 200 nodes opens with its blocks closed);
* every block open: from the "Every block open" toggle until the graph has drawn all 429 + 370
  nodes (the whole graph laid out by ELK, every block a frame, and drawn), the toggle clicked
  ``--read-s`` seconds after DenseNet121 appeared, as a user who reads its closed view first (the
  page lays the whole graph out in the background meanwhile; 0 measures the click at once);
* whole graph: from the graph's "Whole graph" button (zoom out to all 429 + 370 nodes) until it
  is drawn so;
* hover: from moving the mouse onto a node until its tooltip shows;
* click a BatchNorm: from the click until the "Pair to inspect" box shows its pair;
* find a layer: from typing a layer's name into the graph's Find and Enter until the page has
  run and the layer is in view, ringed;
* pick a pair: from choosing another pair in "Pair to inspect" until the page has run;
* colour by each layer's check: from the toggle until the nodes are coloured (the checks the
  verification already made: no model runs).

Run from the repository root (needs /usr/bin/chromium):

    .venv/bin/python bench/bench_page.py
    .venv/bin/python bench/bench_page.py --repeats 3 --json page.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from browser.page import list_option, select_box  # noqa: E402
from browser.page import (  # noqa: E402
    MAX_ABS_DIFF, choose_option, choose_source, fold_panel, fold_text, sidebar, wait_for_app,
)
from browser.server import StreamlitServer, launch_chromium  # noqa: E402
from browser.svg_graph import (  # noqa: E402
    bring_into_view, click_node, drawn, find_layer, graph, graph_ready, hover_node, in_view, marked, pair_to_inspect,
    tooltip,
)

ZOO_MODEL, FIRST_PAIR = "DenseNet121", "conv1_conv → conv1_bn"


def _timed(action, done, timeout_s: float = 120.0, poll_s: float = 0.02) -> float:
    """Seconds from ``action()`` until ``done()`` is true."""
    start = time.perf_counter()
    action()
    while not done():
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError(f"no result within {timeout_s} s")
        time.sleep(poll_s)
    return time.perf_counter() - start


def run_once(browser, url: str, read_s: float = 5.0) -> dict[str, float]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(url)
        wait_for_app(page, sidebar=["Model source"], fold=[MAX_ABS_DIFF, "tconv → bn"])
        choose_source(page, "Model zoo")
        wait_for_app(page, sidebar=["Architecture"], fold=[MAX_ABS_DIFF, "up0 → up0_bn"])  # the first TConv's pair
        figures = {}

        def densenet_shown() -> bool:
            return FIRST_PAIR in fold_text(page) and graph_ready(page) and "[conv2]" in drawn(page)

        figures["zoo -> DenseNet121"] = _timed(lambda: choose_option(page, sidebar(page), "Architecture", ZOO_MODEL),
                                               densenet_shown)
        wait_for_app(page, sidebar=[ZOO_MODEL], fold=[MAX_ABS_DIFF, FIRST_PAIR])
        time.sleep(read_s)  # a user reading the closed view (a pause, not a synchronisation)
        figures["every block open"] = _timed(lambda: fold_panel(page).get_by_text("Every block open").click(),
                                             lambda: graph_ready(page, nodes=429))
        wait_for_app(page, fold=[MAX_ABS_DIFF])
        graph(page).scroll_into_view_if_needed()
        zoom = "(root) => root.view.t.k"
        opening = graph(page).evaluate(zoom)
        figures["whole graph"] = _timed(lambda: graph(page).get_by_role("button", name="Whole graph").click(),
                                        lambda: graph(page).evaluate(zoom) < opening / 5)
        graph(page).get_by_role("button", name="Back to start").click()
        bring_into_view(page, "before", "conv1_relu")
        figures["hover a node"] = _timed(lambda: hover_node(page, "before", "conv1_relu"),
                                         lambda: tooltip(page).startswith("conv1_relu"))
        target = "conv2_block1_0_bn"
        bring_into_view(page, "before", target)
        figures["click a BatchNorm"] = _timed(lambda: click_node(page, "before", target),
                                              lambda: target in pair_to_inspect(page))
        wait_for_app(page, fold=[MAX_ABS_DIFF])
        found = "conv5_block16_2_conv"
        figures["find a layer"] = _timed(
            lambda: find_layer(page, found),
            lambda: marked(page, "before", ".fsg-ring") == [found] and in_view(page, "before", found) and page.locator(
                '[data-testid="stApp"][data-test-script-state="notRunning"]').count() == 1)
        wait_for_app(page, fold=[MAX_ABS_DIFF])
        box = select_box(page, "Pair to inspect").locator("input")
        box.click()
        box.fill("conv1_conv → conv1_bn (folded)")
        list_option(page, "conv1_conv → conv1_bn (folded)").wait_for()
        figures["pick a pair"] = _timed(
            lambda: list_option(page, "conv1_conv → conv1_bn (folded)").click(),
            lambda: "conv1_conv" in pair_to_inspect(page) and page.locator(
                '[data-testid="stApp"][data-test-script-state="notRunning"]').count() == 1)
        figures["colour by each layer's check"] = _timed(
            lambda: fold_panel(page).get_by_text("Colour by each layer's check").click(),
            lambda: graph(page).locator(".fsg-scale").count() > 0)
        return figures
    finally:
        page.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh server + page runs (default 3)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--read-s", type=float, default=5.0,
                        help="seconds between DenseNet121 appearing and the 'Every block open' toggle (default 5)")
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            for k in range(args.repeats):
                server = StreamlitServer(Path(tmp) / f"streamlit{k}.log").start()
                try:  # a fresh server each time: nothing is cached yet
                    runs.append(run_once(browser, server.url, args.read_s))
                finally:
                    server.stop()
        finally:
            browser.close()
    print(f"Through the real page (streamlit + headless chromium), median (min, max) of {args.repeats} fresh "
          "servers:\n")
    print("| action | seconds |")
    print("|---|--:|")
    for name in runs[0]:
        values = [r[name] for r in runs]
        print(f"| {name} | {statistics.median(values):.2f} ({min(values):.2f}, {max(values):.2f}) |")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
