"""Helpers for the browser tests: a `streamlit run` server, a headless Debian chromium, and waits
and checks written against the page the user sees (Streamlit's data-testid attributes).

Streamlit marks a script run in three ways on the page: `data-test-script-state` on the
app root (the attribute Streamlit's own browser tests wait on), the "Running..." status
widget (`stStatusWidget`, shown only after a short delay) and `data-stale="true"` on
elements left over from the previous run. The app has finished when the state is
"notRunning", the other two are gone and the elements a test expects are on the page.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from playwright.sync_api import Locator, Page, Playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("FOLDSCOPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1400, "height": 1000}
MAX_SCREENSHOT_HEIGHT = 9000  # px; a taller page is cut (keeps PNGs small)

STARTUP_S = 120
RUN_MS = 120_000   # one script run: folding a zoo model, drawing its graph
IMAGE_MS = 30_000  # images arrive after the run, from /media

MAX_ABS_DIFF = "max abs diff (outputs)"
FOLD_PANEL = '[data-testid="stTabPanel"] >> nth=0'


# --- the server ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    """`streamlit run app.py` on a free localhost port, its output in a log file."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = STARTUP_S) -> StreamlitServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        # No file watcher: other people editing the sources during a run must not put a
        # "Source file changed" prompt into the status widget the waits watch.
        cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
               "--server.port", str(self.port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {self.proc.returncode}:\n{self.log_tail()}")
            if self._healthy():
                return self
            time.sleep(0.25)  # polling interval of the health check, not a synchronisation
        self.stop()
        raise RuntimeError(f"streamlit was not healthy at {self.url} after {timeout_s:.0f} s:\n{self.log_tail()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                return response.read().strip() == b"ok"
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def launch_chromium(playwright: Playwright):
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"No chromium at {CHROMIUM}: install Debian's (apt-get install chromium), "
                           "as .ci/run does; Playwright's browser download does not work here.")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


# --- reading the page ------------------------------------------------------------------------

# The text a user reads in an element: its rendered text plus the values of its inputs
# (a selectbox shows its choice as an <input value>, which innerText leaves out).
_TEXT_OF_JS = """const textOf = (e) => !e ? '' : [e.innerText, ...[...e.querySelectorAll(
    'input:not([type="radio"]):not([type="checkbox"]):not([type="file"])')].map(i => i.value)].join('\\n');"""

# The tab panel on show (the others stay in the page, hidden, and empty once left: only the open tab runs).
_OPEN_PANEL_JS = """const openPanel = () => [...document.querySelectorAll('[data-testid="stTabPanel"]')]
    .find(p => p.offsetParent !== null) || document.querySelector('[data-testid="stTabPanel"]');"""

_ERRORS_JS = """() => [...document.querySelectorAll(
    '[data-testid="stException"], [data-testid="stAlertContentError"], [data-testid="stAlertContentWarning"]')]
    .filter(e => e.closest('[data-stale="true"]') === null)
    .map(e => e.dataset.testid + ': ' + e.innerText.trim())"""


def page_errors(page: Page) -> list[str]:
    """Text of every exception, error and warning box on the page."""
    return page.evaluate(_ERRORS_JS)


def page_state(page: Page) -> str:
    """A short description of the page for failure messages."""
    try:
        return page.evaluate("""() => {
            const status = document.querySelector('[data-testid="stStatusWidget"]');
            const app = document.querySelector('[data-testid="stApp"]');
            const stale = document.querySelectorAll('[data-testid="stElementContainer"][data-stale="true"]').length;
            """ + _TEXT_OF_JS + _OPEN_PANEL_JS + """
            const side = textOf(document.querySelector('[data-testid="stSidebar"]'));
            const main = textOf(openPanel());
            return `script: ${app?.dataset.testScriptState}; connection: ${app?.dataset.testConnectionState}; `
                + `status widget: ${status ? JSON.stringify(status.innerText) : 'none'}; stale elements: ${stale}`
                + `\\n--- sidebar:\\n${side.slice(0, 600)}\\n--- open tab:\\n${main.slice(0, 1500)}`;
        }""") + f"\n--- errors on the page: {page_errors(page)}"
    except Exception as exc:  # the page itself is gone: say so rather than hide the first failure
        return f"(page unreadable: {exc})"


# --- waiting for a run -----------------------------------------------------------------------

_DONE_JS = """({sidebar, fold, changed, unlike}) => {
    """ + _TEXT_OF_JS + _OPEN_PANEL_JS + """
    const app = document.querySelector('[data-testid="stApp"]');
    if (app?.dataset.testScriptState !== 'notRunning' || app?.dataset.testConnectionState !== 'CONNECTED') return false;
    if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
    if (document.querySelector('[data-testid="stElementContainer"][data-stale="true"]')) return false;
    // A finished run that failed: stop waiting, the caller's assertions report the error.
    if (document.querySelector('[data-testid="stException"], [data-testid="stAlertContentError"]')) return true;
    const side = textOf(document.querySelector('[data-testid="stSidebar"]'));
    const panel = openPanel();
    const main = textOf(panel);
    if (!sidebar.every(t => side.includes(t)) || !fold.every(t => main.includes(t))) return false;
    if (unlike !== null && main === unlike) return false;
    if (changed) {
        const m = [...(panel?.querySelectorAll('[data-testid="stMetric"]') || [])]
            .find(e => e.innerText.includes(changed.label));
        if (!m || m.querySelector('[data-testid="stMetricValue"]').innerText.trim() === changed.value) return false;
    }
    return true;
}"""


def wait_for_app(page: Page, *, sidebar: Sequence[str] = (), fold: Sequence[str] = (),
                 changed: tuple[str, str] | None = None, unlike: str | None = None, timeout_ms: int = RUN_MS,
                 what: str = "the app") -> None:
    """Wait until the script run is over and the sidebar / the open tab (``fold``: the Fold tab,
    unless another was opened) show the given texts.

    A finished *new* run looks like the previous one still on the page until it shows
    something new, so after an action say what is new: texts, ``changed=(label, old_value)``
    for a metric showing a new value, or ``unlike=fold_text(page)`` taken before the action.
    Then assert there is no exception element.
    """
    arg = {"sidebar": list(sidebar), "fold": list(fold),
           "changed": {"label": changed[0], "value": changed[1]} if changed else None, "unlike": unlike}
    try:
        page.wait_for_function(_DONE_JS, arg=arg, timeout=timeout_ms, polling=200)
    except PlaywrightTimeout:
        shown = {k: v for k, v in arg.items() if v and k != "unlike"}
        raise AssertionError(f"{what} did not finish within {timeout_ms / 1000:.0f} s showing {shown}"
                             f"{' and a changed tab' if unlike is not None else ''}.\n"
                             f"{page_state(page)}") from None
    assert_no_exception(page)


def fold_text(page: Page) -> str:
    """The open tab's text (the Fold tab's, unless another was opened) as the waits read it."""
    return page.evaluate("() => {" + _TEXT_OF_JS + _OPEN_PANEL_JS + " return textOf(openPanel()); }")


def assert_no_exception(page: Page) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"exception on the page: {exceptions.all_inner_texts()}"


def assert_no_errors(page: Page) -> None:
    errors = page_errors(page)
    assert not errors, f"error boxes on the page: {errors}"


# --- driving the sidebar ---------------------------------------------------------------------

def sidebar(page: Page) -> Locator:
    return page.get_by_test_id("stSidebar")


def fold_panel(page: Page) -> Locator:
    return page.locator(FOLD_PANEL)


def choose_source(page: Page, source: str) -> None:
    sidebar(page).get_by_test_id("stRadio").get_by_text(source, exact=True).click()


def choose_option(page: Page, scope: Locator, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` inside ``scope``."""
    box = scope.get_by_test_id("stSelectbox").filter(has_text=label)
    box.click()
    page.get_by_role("option", name=option, exact=True).click()


def set_number(scope: Locator, label: str, value: int) -> None:
    field = scope.get_by_test_id("stNumberInput").filter(has_text=label).locator("input")
    field.fill(str(value))
    field.press("Enter")


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
        page.wait_for_function("""() => { const gd = document.querySelector('.js-plotly-plot');
            return !!gd && !!gd._fullLayout && !!gd.querySelector('.scatterlayer .point')
                && (gd.data || []).some(t => t.name === 'nodes before'); }""", timeout=timeout_ms, polling=200)
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
    # Images: the first pair's channel plot and the heatmaps; the graph is an interactive Plotly chart.
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
