"""Reading and driving the page in a real browser, as a user sees it: Streamlit's data-testid
attributes and the open tab's text.

Streamlit marks a script run in three ways on the page: `data-test-script-state` on the
app root (the attribute Streamlit's own browser tests wait on), the "Running..." status
widget (`stStatusWidget`, shown only after a short delay) and `data-stale="true"` on
elements left over from the previous run. The app has finished when the state is
"notRunning", the other two are gone and the elements a caller expects are on the page.
"""

from __future__ import annotations

from collections.abc import Sequence

from playwright.sync_api import Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

RUN_MS = 120_000   # one script run: folding a zoo model, drawing its graph
MAX_ABS_DIFF = "max abs diff (outputs)"
FOLD_PANEL = '[data-testid="stTabPanel"] >> nth=0'


# --- reading the page ------------------------------------------------------------------------

# The text a user reads in an element: its rendered text plus the values of its inputs
# (a selectbox shows its choice as an <input value>, which innerText leaves out).
_TEXT_OF_JS = """const textOf = (e) => !e ? '' : [e.innerText, ...[...e.querySelectorAll(
    'input:not([type="radio"]):not([type="checkbox"]):not([type="file"])')].map(i => i.value)].join('\\n');"""

# The tab panel on show (the others stay in the page, hidden, and empty once left: only the open tab runs).
_OPEN_PANEL_JS = """const openPanel = () => [...document.querySelectorAll('[data-testid="stTabPanel"]')]
    .find(p => p.offsetParent !== null) || document.querySelector('[data-testid="stTabPanel"]');"""

ERRORS_JS = """() => [...document.querySelectorAll(
    '[data-testid="stException"], [data-testid="stAlertContentError"], [data-testid="stAlertContentWarning"]')]
    .filter(e => e.closest('[data-stale="true"]') === null)
    .map(e => e.dataset.testid + ': ' + e.innerText.trim())"""


def page_errors(page: Page) -> list[str]:
    """Text of every exception, error and warning box on the page."""
    return page.evaluate(ERRORS_JS)


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

# The figures of a fold: the interactive graph's nodes drawn, every picture of the open tab loaded.
_FIGURES_JS = """const figuresShown = (panel) => {
    // the graph component draws into a shadow root
    const hosts = [...(panel?.querySelectorAll('div') || [])].filter(e => e.shadowRoot);
    if (!hosts.some(e => e.shadowRoot.querySelector('[data-testid=foldscope-graph] .fsg-node'))) return false;
    const imgs = [...panel.querySelectorAll('[data-testid="stImage"] img')];
    return imgs.length > 0 && imgs.every(e => e.complete && e.naturalWidth > 0);
};"""

DONE_JS = """({sidebar, fold, changed, unlike, figures}) => {
    """ + _TEXT_OF_JS + _OPEN_PANEL_JS + _FIGURES_JS + """
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
    return !figures || figuresShown(panel);
}"""


def done_arg(sidebar: Sequence[str] = (), fold: Sequence[str] = (), changed: tuple[str, str] | None = None,
             unlike: str | None = None, figures: bool = False) -> dict:
    """``DONE_JS``'s argument: what the finished run shows (``wait_for_app`` says what each means)."""
    return {"sidebar": list(sidebar), "fold": list(fold),
            "changed": {"label": changed[0], "value": changed[1]} if changed else None, "unlike": unlike,
            "figures": figures}


def wait_for_app(page: Page, *, sidebar: Sequence[str] = (), fold: Sequence[str] = (),
                 changed: tuple[str, str] | None = None, unlike: str | None = None, figures: bool = False,
                 timeout_ms: int = RUN_MS, what: str = "the app") -> None:
    """Wait until the script run is over and the sidebar / the open tab (``fold``: the Fold tab,
    unless another was opened) show the given texts.

    A finished *new* run looks like the previous one still on the page until it shows
    something new, so after an action say what is new: texts, ``changed=(label, old_value)``
    for a metric showing a new value, or ``unlike=fold_text(page)`` taken before the action;
    ``figures``: the open tab's graph is drawn and its pictures loaded too.
    Then assert there is no exception element.
    """
    arg = done_arg(sidebar, fold, changed, unlike, figures)
    try:
        page.wait_for_function(DONE_JS, arg=arg, timeout=timeout_ms, polling=200)
    except PlaywrightTimeout:
        shown = {k: v for k, v in arg.items() if v and k not in ("unlike", "figures")}
        raise AssertionError(f"{what} did not finish within {timeout_ms / 1000:.0f} s showing {shown}"
                             f"{' and a changed tab' if unlike is not None else ''}"
                             f"{' and its figures' if figures else ''}.\n"
                             f"{page_state(page)}") from None
    assert_no_exception(page)


def fold_text(page: Page) -> str:
    """The open tab's text (the Fold tab's, unless another was opened) as the waits read it."""
    return page.evaluate("() => {" + _TEXT_OF_JS + _OPEN_PANEL_JS + " return textOf(openPanel()); }")


def assert_no_exception(page: Page) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"exception on the page: {exceptions.all_inner_texts()}"


# --- driving the sidebar ---------------------------------------------------------------------

def sidebar(page: Page) -> Locator:
    return page.get_by_test_id("stSidebar")


def fold_panel(page: Page) -> Locator:
    return page.locator(FOLD_PANEL)


# The locators are built alike in Playwright's sync and async APIs (browser.sessions drives many
# pages at once with the async one): only the actions on them differ.

def source_radio(page: Page, source: str) -> Locator:
    """The sidebar's radio button of model source ``source``."""
    return sidebar(page).get_by_test_id("stRadio").get_by_text(source, exact=True)


def select_box(scope: Locator, label: str) -> Locator:
    """The selectbox labelled ``label`` inside ``scope``."""
    return scope.get_by_test_id("stSelectbox").filter(has_text=label)


def list_option(page: Page, option: str) -> Locator:
    """``option`` in the open selectbox list."""
    return page.get_by_role("option", name=option, exact=True)


def choose_source(page: Page, source: str) -> None:
    source_radio(page, source).click()


def choose_option(page: Page, scope: Locator, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` inside ``scope``."""
    select_box(scope, label).click()
    list_option(page, option).click()


def set_number(scope: Locator, label: str, value: int) -> None:
    field = scope.get_by_test_id("stNumberInput").filter(has_text=label).locator("input")
    field.fill(str(value))
    field.press("Enter")
