"""Helpers for the browser tests beyond driving the page (``browser``): checks of the Fold tab as
the user sees it, and screenshots."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from playwright.sync_api import Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from browser.page import MAX_ABS_DIFF, assert_no_exception, fold_panel, page_errors, page_state
from browser.server import ROOT

ARTIFACTS = ROOT / "artifacts"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1400, "height": 1000}
MAX_SCREENSHOT_HEIGHT = 9000  # px; a taller page is cut (keeps PNGs small)
IMAGE_MS = 30_000  # images arrive after the run, from /media


def assert_no_errors(page: Page) -> None:
    errors = page_errors(page)
    assert not errors, f"error boxes on the page: {errors}"


# --- checking the Fold tab -------------------------------------------------------------------

def metrics(panel: Locator) -> dict[str, str]:
    """Label -> value text of every metric in ``panel``."""
    out = {}
    for m in panel.get_by_test_id("stMetric").all():
        out[m.get_by_test_id("stMetricLabel").inner_text().strip()] = \
            m.get_by_test_id("stMetricValue").inner_text().strip()
    return out


def metric_value(panel: Locator, label_part: str) -> str:
    found = {k: v for k, v in metrics(panel).items() if label_part in k}
    assert len(found) == 1, f"expected one metric labelled '{label_part}', got {metrics(panel)}"
    return next(iter(found.values()))


def metric_number(panel: Locator, label_part: str) -> float:
    text = metric_value(panel, label_part)
    try:
        return float(text.split()[0])
    except ValueError:
        raise AssertionError(f"metric '{label_part}' is not a number: {text!r}") from None


_SECTIONS_JS = """(panel) => {
    // Images by subheader: each image counts under the last h2/h3 before it (document order).
    const out = {}; let heading = '(top)';
    for (const e of panel.querySelectorAll('h2, h3, [data-testid="stImage"] img')) {
        if (e.tagName !== 'IMG') { heading = e.innerText.trim(); out[heading] = out[heading] || []; continue; }
        (out[heading] = out[heading] || []).push({ok: e.complete && e.naturalWidth > 0,
            w: e.naturalWidth, h: e.naturalHeight, src: e.currentSrc.slice(0, 80)});
    }
    return out;
}"""


def images_by_section(panel: Locator) -> dict[str, list[dict]]:
    return panel.evaluate(_SECTIONS_JS)


def wait_for_images(page: Page, panel: Locator, sections: Sequence[str], timeout_ms: int = IMAGE_MS) -> dict:
    """Wait until each named section has at least one image and every image has loaded."""
    handle = panel.element_handle()
    try:
        page.wait_for_function(
            """([panel, sections]) => {
                const imgs = [...panel.querySelectorAll('[data-testid="stImage"] img')];
                if (!imgs.length || !imgs.every(e => e.complete && e.naturalWidth > 0)) return false;
                const heads = [...panel.querySelectorAll('h2, h3')].map(h => h.innerText.trim());
                return sections.every(s => heads.some(h => h.startsWith(s)));
            }""", arg=[handle, list(sections)], timeout=timeout_ms, polling=200)
    except PlaywrightTimeout:
        pass  # the assertions below say what is missing
    found = images_by_section(panel)
    for section in sections:
        images = next((v for k, v in found.items() if k.startswith(section)), None)
        assert images, f"no image under '{section}': {found}"
        assert all(i["ok"] for i in images), f"image under '{section}' did not load: {images}"
    return found


def wait_for_graph(page: Page, timeout_ms: int = IMAGE_MS) -> None:
    """Wait until the interactive graph has drawn its nodes."""
    try:
        page.locator("[data-testid=foldscope-graph] .fsg-pane .fsg-node").first.wait_for(timeout=timeout_ms)
    except PlaywrightTimeout:
        raise AssertionError(f"the graph was not drawn within {timeout_ms / 1000:.0f} s.\n{page_state(page)}") from None


def assert_fold_page(page: Page, *, max_diff: float = 1e-3, tables: int = 1) -> dict[str, str]:
    """The Fold tab of a folded model: metrics, pair table, graph and heatmap images, no errors."""
    assert_no_exception(page)
    assert_no_errors(page)
    panel = fold_panel(page)
    shown = metrics(panel)
    diff = metric_number(panel, MAX_ABS_DIFF)
    assert diff < max_diff, f"{MAX_ABS_DIFF} = {diff} >= {max_diff}; metrics: {shown}"
    frames = panel.get_by_test_id("stDataFrame")
    try:  # data frames are laid out after the run's last message: wait for it, then assert
        page.wait_for_function("""(n) => { const frames = [...document.querySelectorAll(
                '[data-testid="stTabPanel"] [data-testid="stDataFrame"]')];
            return frames.length >= n && frames.every(f => { const b = f.getBoundingClientRect();
                return b.width > 100 && b.height > 50; }); }""", arg=tables, timeout=IMAGE_MS, polling=200)
    except PlaywrightTimeout:
        pass  # the assertions below say what is missing
    assert frames.count() >= tables, f"expected {tables} data frame(s), found {frames.count()}"
    for frame in frames.all():
        box = frame.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50, f"data frame not laid out: {box}"
    # Images: the first pair's channel plot and the heatmaps; the graph is drawn by its own script.
    wait_for_images(page, panel, ["Candidate pairs", "Outputs: original vs folded"])
    wait_for_graph(page)
    assert panel.get_by_test_id("stDownloadButton").filter(has_text="Download the folded model").count() == 1
    assert panel.get_by_test_id("stDownloadButton").filter(has_text="Static picture").count() == 2
    assert panel.get_by_test_id("stDownloadButton").filter(has_text="Open in Model Explorer").count() == 1
    return shown


# --- screenshots -----------------------------------------------------------------------------

def screenshot(page: Page, path: Path) -> Path:
    """A screenshot of the whole app: Streamlit scrolls inside its own containers, so the
    viewport is made as tall as their content first (then restored)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or VIEWPORT
    needed = page.evaluate("""() => Math.max(window.innerHeight, ...[...document.querySelectorAll('*')]
        .filter(e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowY) && e.scrollHeight > e.clientHeight)
        .map(e => e.scrollHeight + (window.innerHeight - e.clientHeight)))""")
    page.set_viewport_size({"width": size["width"], "height": min(int(needed) + 20, MAX_SCREENSHOT_HEIGHT)})
    try:
        page.screenshot(path=str(path), full_page=True, animations="disabled")
    finally:
        page.set_viewport_size(size)
    return path


def docs_screenshot(page: Page, name: str, element: Locator | None = None) -> Path:
    """A README screenshot of the page (or of one ``element``), called once the test's checks
    have passed: into artifacts/docs/, and into docs/screenshots/ only when
    FOLDSCOPE_SCREENSHOTS=1 (``make screenshots``)."""
    page.evaluate("() => document.activeElement?.blur()")  # no focus ring on the last widget used
    if element is None:
        page.mouse.move(0, 0)
        path = screenshot(page, ARTIFACTS / "docs" / name)
    else:
        path = ARTIFACTS / "docs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        element.screenshot(path=str(path), animations="disabled")
    if os.environ.get("FOLDSCOPE_SCREENSHOTS") != "1":
        return path
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(path, DOCS_SCREENSHOTS / name))


def open_app(page: Page) -> None:
    """Wait for the first run: the seed example, folded."""
    from browser.page import wait_for_app

    wait_for_app(page, sidebar=["Model source"], fold=[MAX_ABS_DIFF, "tconv → bn"], what="the first page load")



def choose_upload(page: Page, path: Path) -> None:
    """Pick the Upload source and upload ``path``."""
    from browser.page import choose_source, sidebar, wait_for_app

    choose_source(page, "Upload")
    wait_for_app(page, fold=["Pick a model source"], what="the Upload source")
    sidebar(page).locator('input[type="file"]').first.set_input_files(str(path))


def upload(page: Page, path: Path, *, fold: list[str], what: str) -> None:
    """Upload ``path`` and wait for its page (``fold``: texts its Fold tab shows)."""
    from browser.page import sidebar, wait_for_app

    choose_upload(page, path)
    wait_for_app(page, sidebar=[path.name], fold=fold, what=what)


def check_uploads(page: Page, original: Path, candidate: Path, *, fold: list[str], what: str) -> None:
    """Pick the Check source and upload an original and another tool's fold of it."""
    from browser.page import choose_source, sidebar, wait_for_app

    choose_source(page, "Check a fold made elsewhere")
    wait_for_app(page, fold=["Pick a model source"], what="the check source")
    fields = sidebar(page).locator('input[type="file"]')
    fields.nth(0).set_input_files(str(original))
    wait_for_app(page, sidebar=[original.name], what="the original's upload")
    fields.nth(1).set_input_files(str(candidate))
    wait_for_app(page, sidebar=[candidate.name], fold=fold, timeout_ms=3 * 120_000, what=what)
