"""How fast the page answers, measured through the real page: `streamlit run app.py` and headless
Debian chromium driven by Playwright (``browser/``, which the browser tests use too).

Every figure is wall-clock time from the user's action until the page shows its result:

* zoo -> DenseNet121: from picking it in the sidebar until the fold's metrics, the first
  pair and the graph's nodes are on the page (the fold, the verification and the page; the
  graph of more than 200 nodes opens with its blocks closed);
* every block open: from the "Every block open" toggle until Plotly has drawn all 429 + 370
  nodes (the whole graph laid out and drawn);
* whole graph: from asking for the whole graph (the graph's "Autoscale", which zooms out to
  all 429 + 370 nodes) until Plotly has drawn it;
* hover: from moving the mouse onto a node until its tooltip shows;
* click a BatchNorm: from the click until the "Pair to inspect" box shows its pair;
* find a layer: from picking a layer in "Find a layer" (typed in first) until the view is
  centred on it;
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

from browser.page import (  # noqa: E402
    MAX_ABS_DIFF, choose_option, choose_source, fold_panel, fold_text, sidebar, wait_for_app,
)
from browser.plotly_graph import (  # noqa: E402
    click_node, graph_ready, hover_node, node_positions, pair_to_inspect, pick, type_into, view_range,
)
from browser.server import StreamlitServer, launch_chromium  # noqa: E402

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


def run_once(browser, url: str) -> dict[str, float]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(url)
        wait_for_app(page, sidebar=["Model source"], fold=[MAX_ABS_DIFF, "tconv → bn"])
        choose_source(page, "Model zoo")
        wait_for_app(page, sidebar=["Architecture"], fold=[MAX_ABS_DIFF, "project → project_bn"])
        figures = {}

        def densenet_shown() -> bool:
            return FIRST_PAIR in fold_text(page) and graph_ready(page) and "[conv2]" in node_positions(page, "before")

        figures["zoo -> DenseNet121"] = _timed(lambda: choose_option(page, sidebar(page), "Architecture", ZOO_MODEL),
                                               densenet_shown)
        wait_for_app(page, sidebar=[ZOO_MODEL], fold=[MAX_ABS_DIFF, FIRST_PAIR])
        figures["every block open"] = _timed(lambda: fold_panel(page).get_by_text("Every block open").click(),
                                             lambda: graph_ready(page, nodes=429))
        wait_for_app(page, fold=[MAX_ABS_DIFF])
        plot = page.locator(".js-plotly-plot").first
        plot.scroll_into_view_if_needed()

        opening = view_range(page)

        def zoomed_out() -> bool:
            low, high = view_range(page)
            return high - low > 100
        figures["whole graph (autoscale)"] = _timed(
            lambda: page.locator('.js-plotly-plot .modebar-btn[data-title="Autoscale"]').first.click(), zoomed_out)
        _timed(lambda: page.locator('.js-plotly-plot .modebar-btn[data-title="Reset axes"]').first.click(),
               lambda: view_range(page) == opening)  # back to the opening view
        positions = node_positions(page, "before")

        def hover_shown() -> bool:
            return page.locator(".hoverlayer .hovertext").count() > 0
        figures["hover a node"] = _timed(lambda: hover_node(page, positions["conv1_relu"]), hover_shown)
        target = "conv2_block1_0_bn"
        figures["click a BatchNorm"] = _timed(lambda: click_node(page, positions[target], target),
                                              lambda: "conv2_block1_0_bn" in pair_to_inspect(page))
        wait_for_app(page, fold=[MAX_ABS_DIFF])
        before = view_range(page)

        def centred() -> bool:
            return view_range(page) != before and graph_ready(page, nodes=429)
        type_into(page, "Find a layer", "conv5_block16_2_conv")
        figures["find a layer"] = _timed(lambda: pick(page, "conv5_block16_2_conv"), centred)
        wait_for_app(page, fold=[MAX_ABS_DIFF])
        type_into(page, "Pair to inspect", "conv1_conv → conv1_bn (folded)")
        figures["pick a pair"] = _timed(
            lambda: pick(page, "conv1_conv → conv1_bn (folded)"),
            lambda: "conv1_conv" in pair_to_inspect(page) and page.locator(
                '[data-testid="stApp"][data-test-script-state="notRunning"]').count() == 1)
        figures["colour by each layer's check"] = _timed(
            lambda: fold_panel(page).get_by_text("Colour by each layer's check").click(),
            lambda: page.locator(".js-plotly-plot .colorbar").count() > 0)
        return figures
    finally:
        page.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh server + page runs (default 3)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            for k in range(args.repeats):
                server = StreamlitServer(Path(tmp) / f"streamlit{k}.log").start()
                try:  # a fresh server each time: nothing is cached yet
                    runs.append(run_once(browser, server.url))
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
