"""Many sessions on the page at once, as a room of people opens it: what a session asks for
(``Choice``) and one visit, from opening the page to its model's figures, as a coroutine of
Playwright's async API, so that one chromium drives them all (``bench/bench_load.py``).

A visit goes the way a user goes: the page opens on the seed example; a session that wants
another model picks its source in the sidebar, and, for the zoo, the model in "Architecture".
It ends when the model's Fold tab shows its verdict, its figures (the graph drawn, every picture
loaded) and no run is left, or when an error shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from playwright.async_api import Browser
from playwright.async_api import TimeoutError as PlaywrightTimeout

from browser.page import DONE_JS, ERRORS_JS, MAX_ABS_DIFF, done_arg, list_option, select_box, sidebar, source_radio

VIEWPORT = {"width": 1400, "height": 1000}
SEED_SOURCE, ZOO_SOURCE = "The seed example", "Model zoo"


@dataclass(frozen=True)
class Choice:
    """What a session asks for: a model ``source`` of the sidebar and, for the zoo, the ``model``
    it picks in "Architecture"; ``pair``: the pair its Fold tab opens on (how the page shows it is
    that model's)."""

    source: str
    pair: str
    model: str | None = None

    @property
    def label(self) -> str:
        return self.model or self.source


SEED = Choice(SEED_SOURCE, "tconv → bn")
PLAYGROUND = Choice("Playground", "layer → bn")
#: The zoo's models by name (``demo.zoo.ZOO``'s labels), each with the pair its page opens on.
ZOO = {name: Choice(ZOO_SOURCE, pair, name) for name, pair in {
    "DCGAN generator": "up0 → up0_bn",
    "U-Net (skip connections)": "up1_tconv → up1_tbn",
    "MobileNetV2": "Conv1 → bn_Conv1",
    "ResNet50": "conv1_conv → conv1_bn",
    "DenseNet121": "conv1_conv → conv1_bn",
    "ONNX: ResNet-50": "conv1 → bn1",
    "ONNX: DCGAN generator (grouped ConvTranspose)": "up0 → up0_bn",
    "ONNX: text detector head (paddle2onnx's ConvTranspose -> Add -> BN)": "up0 → up0_bn",
    "Seed TConv with both of the note's BNs (2 channels)": "tconv → bn",
}.items()}
#: What each source shows first, before a model of its list is picked.
FIRST = {SEED_SOURCE: SEED, "Playground": PLAYGROUND, ZOO_SOURCE: ZOO["DCGAN generator"]}


@dataclass
class Visit:
    """One session's visit: seconds from opening the page to its model's figures (None when it
    did not get there), the error it showed or why it stopped, every warning box it showed, the
    bytes the server sent it over its websocket (the page's elements, figures included) and the
    seconds at which each page on the way was shown (by its pair)."""

    choice: Choice
    seconds: float | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    received_bytes: int = 0
    steps: dict[str, float] = field(default_factory=dict)


async def visit(browser: Browser, url: str, choice: Choice, timeout_s: float = 600.0, poll_ms: int = 250) -> Visit:
    """Open the page in a fresh browser context (a new session), go to ``choice`` and wait for its
    figures, looking every ``poll_ms`` (each look reads the page's text: many sessions at once call
    for fewer looks); the context is closed at the end."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    start = time.perf_counter()
    result = Visit(choice)

    def count(frame: str | bytes) -> None:
        result.received_bytes += len(frame)

    page.on("websocket", lambda ws: ws.on("framereceived", count))
    step = "opening the page"
    page.set_default_timeout(timeout_s * 1000)  # a click waits as long as the visit may (the page may be busy)
    try:
        async def shown(target: Choice, figures: bool) -> bool:
            """Wait for ``target``'s Fold tab; False when an error shows instead."""
            left = timeout_s - (time.perf_counter() - start)
            arg = done_arg(sidebar=[target.model] if target.model else (), fold=[MAX_ABS_DIFF, target.pair],
                           figures=figures)
            await page.wait_for_function(DONE_JS, arg=arg, timeout=max(left, 1) * 1000, polling=poll_ms)
            found = await page.evaluate(ERRORS_JS)
            errors = [e for e in found if "stAlertContentWarning" not in e]
            result.warnings = [e for e in found if e not in errors]
            if errors:
                result.error = f"{step}: {'; '.join(errors)}"
            result.steps[target.label] = time.perf_counter() - start
            return not errors

        await page.goto(url)
        if not await shown(SEED, figures=choice == SEED):
            return result
        if choice.source != SEED_SOURCE:
            step = f"picking {choice.source}"
            await source_radio(page, choice.source).click()
            first = FIRST[choice.source]
            if not await shown(first, figures=first == choice):
                return result
            if first != choice:
                step = f"picking {choice.model}"
                await select_box(sidebar(page), "Architecture").click()
                await list_option(page, choice.model).click()
                if not await shown(choice, figures=True):
                    return result
        result.seconds = time.perf_counter() - start
    except PlaywrightTimeout:
        result.error = f"{step}: not done {time.perf_counter() - start:.0f} s after opening the page"
    finally:
        await context.close()
    return result
