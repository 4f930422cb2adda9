"""The page in a real browser: `streamlit run app.py` driven by Playwright through Debian's chromium.

One server and one browser for the test process (tests/browser_fixtures.py; pytest-xdist's --dist
loadfile keeps the file in one worker); every test opens a fresh page, i.e. a fresh Streamlit session, and leaves a
full-page screenshot in artifacts/<test>.png. The seed, playground, zoo and "Why it works"
tests also take the README's screenshots once their checks pass: into artifacts/docs/, and into
docs/screenshots/ only when asked (``make screenshots``), so that a test run changes no tracked file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from browser import sessions
from browser.page import (
    MAX_ABS_DIFF, RUN_MS, assert_no_exception, choose_option, choose_source, fold_panel, fold_text, page_errors,
    page_state, set_number, sidebar, wait_for_app,
)
from browser.svg_graph import (
    click_node, find_layer, graph, hover_node, hovers, in_view, marked, node, pair_to_inspect, tooltip,
)
from tests.browser_support import (
    ARTIFACTS, VIEWPORT, assert_fold_page, assert_no_errors, check_uploads, choose_upload, docs_screenshot,
    images_by_section, metric_value, metrics, open_app, screenshot, upload, wait_for_graph, wait_for_images,
)

pytestmark = pytest.mark.browser

#: Zoo entry -> (the pair the "Pair to inspect" box opens on, BatchNorms metric): the first transposed
#: convolution's where there is one (``browser.sessions.ZOO`` knows every zoo model's).
ZOO = {name: (sessions.ZOO[name].pair, bns) for name, bns in {
    "DCGAN generator": "3 → 0",
    "U-Net (skip connections)": "12 → 0",
    "MobileNetV2": "52 → 0",
}.items()}


# --- fixtures (the server, chromium and a page: tests/browser_fixtures.py) ------------------

@pytest.fixture(scope="module")
def keras_file(tmp_path_factory) -> Path:
    """A small model to upload: Conv2DTranspose -> BN -> Conv2D -> BN, random BN statistics."""
    from fold.core.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    from foldscope_app.examples.model_zoo import randomize_bn

    inp = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2DTranspose(6, 3, strides=2, padding="same", name="up")(inp)
    x = keras.layers.BatchNormalization(name="up_bn")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(x)
    x = keras.layers.BatchNormalization(name="conv_bn")(x)
    model = randomize_bn(keras.Model(inp, x, name="tiny_upload"), seed=3)
    path = tmp_path_factory.mktemp("upload") / "tiny_upload.keras"
    model.save(path)
    return path


def count_bn(model) -> int:
    from foldscope_app.examples.model_zoo import all_layers

    return sum(type(layer).__name__ == "BatchNormalization" for layer in all_layers(model))


# --- tests -----------------------------------------------------------------------------------

def test_seed_page_loads(page):
    open_app(page)
    shown = assert_fold_page(page, max_diff=1e-5, tables=2)  # the seed's three results + the pairs
    assert shown["BatchNorms"] == "1 → 0", shown
    assert shown["pairs folded"] == "1 / 1", shown
    docs_screenshot(page, "seed.png")


def test_playground_renders(page):
    open_app(page)
    choose_source(page, "Playground")
    wait_for_app(page, sidebar=["Layer kind", "Channels out"], fold=[MAX_ABS_DIFF, "layer → bn"],
                 what="the Playground source")
    shown = assert_fold_page(page)
    assert shown["BatchNorms"] == "1 → 0", shown
    docs_screenshot(page, "playground.png")


def test_seed_as_tensorflow_ops_renders(page):
    open_app(page)
    seed_page = fold_text(page)
    choose_source(page, "The seed, as TensorFlow ops")
    wait_for_app(page, fold=[MAX_ABS_DIFF, "FusedBatchNormV3 (folded)"], unlike=seed_page,
                 what="the seed as TensorFlow ops")
    shown = assert_fold_page(page, max_diff=1e-5)
    assert shown["BatchNorms"].endswith("→ 0"), shown


@pytest.mark.parametrize("name", list(ZOO))
def test_model_zoo(page, name):
    open_app(page)
    choose_source(page, "Model zoo")
    first = next(iter(ZOO))
    wait_for_app(page, sidebar=["Architecture", first], fold=[MAX_ABS_DIFF, ZOO[first][0]],
                 what=f"the Model zoo source ({first})")
    if name != first:
        choose_option(page, sidebar(page), "Architecture", name)
        wait_for_app(page, sidebar=[name], fold=[MAX_ABS_DIFF, ZOO[name][0]], timeout_ms=RUN_MS,
                     what=f"folding {name}")
    shown = assert_fold_page(page)
    assert shown["BatchNorms"] == ZOO[name][1], shown
    if name == "U-Net (skip connections)":
        docs_screenshot(page, "zoo.png")


def test_playground_widget_updates_metric(page):
    open_app(page)
    choose_source(page, "Playground")
    wait_for_app(page, sidebar=["Channels out"], fold=[MAX_ABS_DIFF, "layer → bn"], what="the Playground source")
    panel = fold_panel(page)
    before = metric_value(panel, MAX_ABS_DIFF)
    for label, value in (("Channels out", 7), ("Stride", 1)):
        old = metric_value(panel, MAX_ABS_DIFF)
        set_number(sidebar(page), label, value)
        wait_for_app(page, changed=(MAX_ABS_DIFF, old), what=f"the playground after {label} = {value}")
        assert_fold_page(page)
        field = sidebar(page).get_by_test_id("stNumberInput").filter(has_text=label).locator("input")
        assert field.input_value() == str(value)
    assert metric_value(panel, MAX_ABS_DIFF) != before


def test_upload_folds_a_keras_file(page, keras_file):
    open_app(page)
    upload(page, keras_file, fold=[MAX_ABS_DIFF, "up → up_bn"], what=f"folding the upload {keras_file.name}")
    shown = assert_fold_page(page)
    assert shown["BatchNorms"] == "2 → 0", shown
    assert shown["pairs folded"] == "2 / 2", shown


def test_upload_accepts_a_keras_2_hdf5_file(page, keras_file, tmp_path):
    """A trained Keras 2 model is often saved as model.hdf5; the uploader takes every suffix the library reads."""
    from fold.frontends.keras.io import load_model

    path = tmp_path / "model.hdf5"
    load_model(keras_file).save(tmp_path / "model.h5")
    (tmp_path / "model.h5").rename(path)
    open_app(page)
    upload(page, path, fold=[MAX_ABS_DIFF, "up → up_bn"], what="folding the upload model.hdf5")
    shown = assert_fold_page(page)
    assert shown["BatchNorms"] == "2 → 0", shown


def test_upload_folds_an_onnx_file_and_shows_the_onnx_tools(page, tmp_path):
    import onnx

    from foldscope_app.examples.onnx_zoo import text_detector_head

    path = tmp_path / "detector_head.onnx"
    onnx.save(text_detector_head(), path)
    open_app(page)
    upload(page, path, fold=[MAX_ABS_DIFF, "up0 → up0_bn", "What the ONNX tools did", "BN left: onnxsim"],
           what="folding the upload detector_head.onnx")
    shown = assert_fold_page(page, tables=2)  # the pairs and the ONNX tools
    assert shown["BatchNorms"] == "3 → 0", shown
    assert shown["BN left: foldscope"] == "0 of 3", shown
    button = fold_panel(page).get_by_role("button", name="Download the folded model (.onnx)")
    with page.expect_download(timeout=60_000) as info:
        button.click()
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    folded = onnx.load(saved)
    onnx.checker.check_model(folded, full_check=True)
    assert "BatchNormalization" not in {n.op_type for n in folded.graph.node}


def test_upload_folds_a_circle_file_and_shows_the_tconv_with_its_new_bias(page, tmp_path):
    """The seed note's question, answered on the page: a circle file as ONE writes a TConv + BN (a
    TRANSPOSE_CONV without bias -> MUL -> ADD with RELU6), folded; the graph after shows the TConv with
    the bias it gained and the RELU6 kept as its own op, and its node panel the folded bias's values."""
    from fold.frontends.circle.model import CIRCLE_SCHEMA
    from tests.tflite_support import TConvCase, tconv_bn

    path = tmp_path / "tconv_bn.circle"
    path.write_bytes(tconv_bn(TConvCase(cin=3, cout=2, stride=2, padding="SAME", act="RELU6"), flat=CIRCLE_SCHEMA)[0])
    open_app(page)
    upload(page, path, fold=[MAX_ABS_DIFF, "TRANSPOSE_CONV:0 → MUL:1+ADD:2"], what="folding the upload tconv_bn.circle")
    shown = assert_fold_page(page)
    assert shown["BatchNorms"] == "1 → 0", shown
    assert "tico 0.3.0's reference runtime" in fold_text(page)
    wait_for_graph(page)
    before, after = hovers(page, "before"), hovers(page, "after")
    assert {"TRANSPOSE_CONV:0", "MUL:1", "ADD:2"} <= set(before), before
    assert {"TRANSPOSE_CONV:0", "RELU6:0/activation"} <= set(after) and "MUL:1" not in after, after
    assert "bias" not in before["TRANSPOSE_CONV:0"] and "bias: 2" in after["TRANSPOSE_CONV:0"], after
    find_layer(page, "TRANSPOSE_CONV:0")  # (a click would unselect it: the view opens on its pair)
    wait_for_app(page, fold=["Node panel: TRANSPOSE_CONV:0", "bias, folded"], what="the TConv's node panel")
    screenshot(page, ARTIFACTS / "circle_upload.png")


def test_upload_corrupt_file_shows_error(page, tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    open_app(page)
    choose_upload(page, bad)
    error = page.get_by_test_id("stAlertContentError")
    error.wait_for(timeout=RUN_MS)
    wait_for_app(page, sidebar=["bad.keras"], what="the corrupt upload")
    assert_no_exception(page)
    assert error.count() == 1, page_errors(page)
    assert "not a valid .keras file" in error.inner_text(), page_state(page)
    assert fold_panel(page).get_by_test_id("stMetric").count() == 0, "a corrupt file must not show results"


def test_the_first_screen_says_what_foldscope_is_and_shows_the_verdict(page):
    """A newcomer reads what the tool does and what to try first, and the verdict with its inputs,
    without hovering anything."""
    open_app(page)
    main = page.get_by_test_id("stMain")
    intro = main.get_by_test_id("stMarkdown").first.inner_text()
    assert "folds every BatchNorm into the layer before it" in intro and "Why it works" in intro, intro
    verdict = fold_panel(page).get_by_test_id("stAlertContentSuccess").first.inner_text()
    assert verdict.startswith("PASS. Every folded layer computes what its BN computed"), verdict
    assert "Verified on 1 sample(s)" in fold_text(page) and "x 1×2×2×1" in fold_text(page), fold_text(page)
    assert "The seed note computed one TConv" in fold_text(page) and "three ways" in fold_text(page)


def test_a_refused_upload_is_said_in_the_main_area_in_plain_words(page, tmp_path):
    """A truncated HDF5 file: one sentence where the eye is, not HDF5's internals in the sidebar."""
    good = tmp_path / "net.h5"
    from fold.core.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    inp = keras.Input((4, 4, 2))
    keras.Model(inp, keras.layers.BatchNormalization()(keras.layers.Conv2D(3, 1)(inp))).save(good)
    bad = tmp_path / "cut.h5"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    open_app(page)
    choose_upload(page, bad)
    error = page.get_by_test_id("stMain").get_by_test_id("stAlertContentError")
    error.wait_for(timeout=RUN_MS)
    assert_no_exception(page)
    text = error.inner_text()
    assert "Cannot load 'cut.h5': the file is truncated" in text and "sblock" not in text, text
    assert sidebar(page).get_by_test_id("stAlertContentError").count() == 0, page_state(page)
    limits = sidebar(page).get_by_test_id("stFileUploaderDropzoneInstructions").all_inner_texts()
    assert limits and all("500MB per file" in t for t in limits), limits  # the library's limit, as each says it


def test_the_playground_offers_only_what_the_layer_accepts(page):
    """Output padding below the stride, dilation only at stride 1: nothing offered is refused."""
    open_app(page)
    choose_source(page, "Playground")
    wait_for_app(page, sidebar=["Layer kind", "Channels out"], fold=[MAX_ABS_DIFF], what="the Playground source")
    side = sidebar(page)
    dilation = side.get_by_test_id("stNumberInput").filter(has_text="Dilation").locator("input")
    assert dilation.is_disabled()  # the default is a Conv2DTranspose with stride 2
    side.get_by_test_id("stSelectbox").filter(has_text="Output padding").click()
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    assert options == ["auto", "0", "1"], options  # stride 2: 0 or 1
    choose_option(page, side, "Layer kind", "Conv2D")
    unlike = fold_text(page)
    set_number(side, "Stride", 1)
    wait_for_app(page, unlike=unlike, what="the playground at stride 1")
    assert not dilation.is_disabled()
    assert side.get_by_test_id("stSelectbox").filter(has_text="Output padding").locator("input").is_disabled()


def test_download_returns_folded_model(page, keras_file, tmp_path):
    from fold.core.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    open_app(page)
    upload(page, keras_file, fold=[MAX_ABS_DIFF, "up → up_bn"], what=f"folding the upload {keras_file.name}")
    button = fold_panel(page).get_by_role("button", name="Download the folded model (.keras)")
    with page.expect_download(timeout=60_000) as info:
        button.click()
    download = info.value
    assert download.failure() is None, download.failure()
    assert download.suggested_filename.endswith(".keras"), download.suggested_filename
    path = tmp_path / download.suggested_filename
    download.save_as(path)

    original = keras.saving.load_model(keras_file, safe_mode=True)
    folded = keras.saving.load_model(path, safe_mode=True)
    assert count_bn(folded) < count_bn(original), (count_bn(folded), count_bn(original))
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(folded.predict(x, verbose=0), original.predict(x, verbose=0), atol=1e-4)


def test_why_it_works_tab(page):
    open_app(page)
    page.get_by_test_id("stTab").filter(has_text="Why it works").click()
    panel = page.get_by_role("tabpanel")
    panel.get_by_role("heading", name="Why a BatchNorm folds into a transposed convolution").wait_for()
    wait_for_images(page, panel, ["1. A TConv scatters", "2. The same TConv", "3. Inference BN",
                                  "4. Two linear maps", "5. Where it stops working"])
    assert_no_exception(page)
    diffs = {label: value for label, value in
             ((m.get_by_test_id("stMetricLabel").inner_text(), m.get_by_test_id("stMetricValue").inner_text())
              for m in panel.get_by_test_id("stMetric").all())}
    equalities = [float(v) for k, v in diffs.items() if "naive" not in k]
    assert len(equalities) == 4 and max(equalities) < 1e-9, diffs
    relu = panel.get_by_text("ReLU is not linear")
    assert "clips s·y + t instead of y" in relu.inner_text()
    assert panel.locator("em").count() == 0, "a '*' in the walkthrough's text was read as Markdown italics"
    docs_screenshot(page, "why.png")


def test_quantization_tab_shows_the_collapse_in_one_click(page):
    """Playground, Quantization tab, tick "Tiny variance": the per-tensor SQNR after folding drops,
    per channel and CLE stay high; the CLE toggle redraws the ranges."""
    open_app(page)
    choose_source(page, "Playground")
    wait_for_app(page, sidebar=["Tiny variance"], fold=[MAX_ABS_DIFF, "layer → bn"], what="the Playground source")
    page.get_by_test_id("stTab").filter(has_text="Quantization").click()
    wait_for_app(page, fold=["What int8 weights lose after folding", "per tensor, folded"],
                 what="the Quantization tab")
    panel = page.get_by_role("tabpanel")
    calm = metrics(panel)["per tensor, folded"]
    sidebar(page).get_by_test_id("stCheckbox").filter(has_text="Tiny variance").click()
    wait_for_app(page, changed=("per tensor, folded", calm), what="the playground with a tiny variance")
    db = {label: float(value.split()[0]) for label, value in metrics(panel).items() if value.endswith(" dB")}
    assert db["per tensor, folded"] <= db["per tensor, BN in float"] - 20, db
    assert db["per channel, folded"] >= db["per tensor, BN in float"] - 1, db
    assert db["per tensor, folded + CLE"] >= db["per tensor, folded"] + 10, db
    assert "output, folded per tensor" in db, db
    ranges = panel.get_by_test_id("stImage").last.locator("img").get_attribute("src")
    panel.get_by_text("Apply cross-layer equalization").click()
    page.wait_for_function("""(old) => {
        const imgs = [...document.querySelectorAll('[role="tabpanel"] [data-testid="stImage"] img')]
            .filter(e => e.offsetParent !== null);
        const last = imgs[imgs.length - 1];
        return last && last.getAttribute('src') !== old && last.complete && last.naturalWidth > 0;
    }""", arg=ranges, timeout=RUN_MS)
    assert_no_exception(page)
    wait_for_images(page, panel, ["What int8 weights lose after folding"])
    docs_screenshot(page, "quantization.png")


def test_two_sessions_at_once_keep_their_own_results(browser, server):
    """Two browser sessions fold different models at the same time; neither sees the other's."""
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(2)]
    try:
        a, b = (context.new_page() for context in contexts)
        for page in (a, b):
            page.goto(server.url)
            open_app(page)
        choose_source(a, "Playground")
        choose_source(b, "Model zoo")  # both script runs are now in flight on the server
        wait_for_app(a, sidebar=["Channels out"], fold=[MAX_ABS_DIFF, "layer → bn"], what="session A")
        wait_for_app(b, sidebar=["Architecture"], fold=[MAX_ABS_DIFF, ZOO["DCGAN generator"][0]], what="session B")
        old = metric_value(fold_panel(a), MAX_ABS_DIFF)
        set_number(sidebar(a), "Channels out", 6)
        choose_option(b, sidebar(b), "Architecture", "U-Net (skip connections)")
        wait_for_app(a, changed=(MAX_ABS_DIFF, old), what="session A after Channels out = 6")
        wait_for_app(b, fold=[ZOO["U-Net (skip connections)"][0]], what="session B after picking the U-Net")
        shown_a, shown_b = assert_fold_page(a), assert_fold_page(b)
        assert shown_a["BatchNorms"] == "1 → 0" and "U-Net" not in fold_text(a), shown_a
        assert shown_b["BatchNorms"] == ZOO["U-Net (skip connections)"][1], shown_b
        screenshot(a, ARTIFACTS / "test_two_sessions_a.png")
        screenshot(b, ARTIFACTS / "test_two_sessions_b.png")
    finally:
        for context in contexts:
            context.close()


@pytest.mark.slow
def test_eight_sessions_at_once_on_different_big_models_each_get_their_verdict(browser, server):
    """A room opens the page at once, each on another model of the zoo, the big ones included: every
    session shows its own model's verdict and figures, none an error (Keras models built side by
    side once collided: "The name "input_layer" is used 4 times in the model")."""
    from foldscope_app.examples.model_zoo import ZOO as MODELS

    assert set(sessions.ZOO) == set(MODELS)
    choices = [c for c in sessions.ZOO.values() if c != sessions.FIRST[sessions.ZOO_SOURCE]]
    assert len(choices) == 8 and {"ResNet50", "DenseNet121", "ONNX: ResNet-50"} <= {c.model for c in choices}
    # Eight pages of one browser context are eight sessions of the page (one websocket each); sharing
    # the context's cache spares chromium a third of its work on the cores the server needs.
    context = browser.new_context(viewport=VIEWPORT)
    try:
        pages = [context.new_page() for _ in choices]
        for page in pages:
            page.goto(server.url)
        # Each picks as soon as the page offers it, as people do (the runs they cut short are rerun):
        # the eight models are built, folded and verified while the other sessions' runs come and go.
        for page in pages:
            choose_source(page, sessions.ZOO_SOURCE)
        for page, choice in zip(pages, choices):
            choose_option(page, sidebar(page), "Architecture", choice.model)
        for page, choice in zip(pages, choices):
            wait_for_app(page, sidebar=[choice.model], fold=[MAX_ABS_DIFF, choice.pair], figures=True,
                         timeout_ms=4 * RUN_MS, what=f"the session on {choice.model}")
            assert_no_errors(page)
            verdict = fold_panel(page).get_by_test_id("stAlertContentSuccess").first.inner_text()
            assert verdict.startswith("PASS."), (choice.model, verdict)
        screenshot(pages[-1], ARTIFACTS / "test_eight_sessions_last.png")
    finally:
        context.close()


# --- the interactive graph ---------------------------------------------------------------------

def open_unet(page) -> None:
    open_app(page)
    choose_source(page, "Model zoo")
    first = next(iter(ZOO))
    wait_for_app(page, sidebar=["Architecture"], fold=[MAX_ABS_DIFF, ZOO[first][0]], what="the Model zoo source")
    choose_option(page, sidebar(page), "Architecture", "U-Net (skip connections)")
    wait_for_app(page, sidebar=["U-Net"], fold=[MAX_ABS_DIFF, ZOO["U-Net (skip connections)"][0]], what="the U-Net")
    wait_for_graph(page)
    graph(page).scroll_into_view_if_needed()


def test_graph_hover_shows_the_layer_why_it_folded_and_its_counterpart(page):
    open_unet(page)
    hover_node(page, "before", "up1_tbn")  # the graph opens on the first TConv's pair
    text = tooltip(page)
    assert text.startswith("up1_tbn") and "BatchNormalization" in text and "folded away into up1_tconv" in text, text
    assert "up1_tconv" in marked(page, "after", ".fsg-linked")  # the layer it went into, in the other pane
    assert marked(page, "after", ".fsg-ghost.fsg-linked") == ["up1_tbn"]  # and its own ghost


def test_graph_click_on_a_batchnorm_picks_its_pair(page):
    open_unet(page)
    assert pair_to_inspect(page) == "up1_tconv → up1_tbn (folded)"  # it opens on the first TConv
    click_node(page, "before", "down1_bn1")
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stSelectbox] input')]"
                           ".some(i => i.value === 'down1_conv1 → down1_bn1 (folded)')", timeout=RUN_MS)
    wait_for_app(page, fold=[MAX_ABS_DIFF, "Node panel: down1_bn1"], what="the page after the click")
    channel_plot = images_by_section(fold_panel(page))["Candidate pairs"]
    assert channel_plot and all(i["ok"] for i in channel_plot)
    assert marked(page, "before", ".fsg-selmark") == ["down1_bn1"]
    screenshot(page, ARTIFACTS / "graph_click.png")


def test_graph_find_centres_and_rings_a_layer_and_slash_focuses_it(page):
    open_unet(page)
    assert not in_view(page, "before", "logits")
    page.mouse.click(5, 5)
    page.keyboard.press("/")
    assert graph(page).locator(".fsg-find").evaluate("(e) => e === e.getRootNode().activeElement")
    page.keyboard.type("logits")
    page.keyboard.press("Enter")
    wait_for_app(page, fold=[MAX_ABS_DIFF, "Node panel: logits"], what="the page after finding 'logits'")
    wait_for_graph(page)
    assert in_view(page, "before", "logits") and in_view(page, "after", "logits")
    assert marked(page, "before", ".fsg-ring") == marked(page, "after", ".fsg-ring") == ["logits"]


def test_graph_colours_each_layers_check(page):
    open_unet(page)
    fold_panel(page).get_by_text("Colour by each layer's check").click()
    graph(page).locator(".fsg-scale").wait_for(timeout=RUN_MS)
    wait_for_app(page, fold=[MAX_ABS_DIFF], what="colouring by each layer's check")
    assert graph(page).locator(".fsg-scale").count() == 1
    graph(page).scroll_into_view_if_needed()  # the rerun may have scrolled it away
    node(page, "after", "up1_conv0").first.scroll_into_view_if_needed()
    hover_node(page, "after", "up1_conv0")
    assert "check: pass" in tooltip(page)
    docs_screenshot(page, "graph.png", graph(page))


def test_graph_downloads_the_model_explorer_files(page, tmp_path):
    import json
    import zipfile

    open_unet(page)
    button = fold_panel(page).get_by_role("button", name="Open in Model Explorer (.zip)")
    with page.expect_download(timeout=60_000) as info:
        button.click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    with zipfile.ZipFile(path) as archive:
        before = json.loads(archive.read("before.json"))
        mapping = json.loads(archive.read("mapping.json"))
    assert {n["id"] for n in before["graphs"][0]["nodes"]} >= {"up0_tconv", "up0_tbn"}
    assert {"leftNodeIds": ["up0_tconv", "up0_tbn"], "rightNodeIds": ["up0_tconv"]} in mapping["mappingEntries"]


def test_check_a_fold_made_elsewhere_from_two_uploads(page, tmp_path):
    """The original and onnxsim's fold of it: the verdict, where each BN went, both graphs."""
    import onnx

    from fold.frontends.onnx.peers import onnxsim_simplify
    from foldscope_app.examples.onnx_zoo import dcgan_generator

    proto = dcgan_generator()
    onnx.save(proto, tmp_path / "generator.onnx")
    onnx.save(onnxsim_simplify(proto), tmp_path / "generator_sim.onnx")
    open_app(page)
    check_uploads(page, tmp_path / "generator.onnx", tmp_path / "generator_sim.onnx",
                  fold=["PASS.", "Where each BatchNorm went", "up0_bn"], what="checking onnxsim's fold")
    assert_no_errors(page)
    shown = metrics(fold_panel(page))
    assert shown["BatchNorms"] == "3 → 2" and shown["folded by the candidate"] == "1", shown
    wait_for_graph(page)
    text = fold_text(page)
    assert "Worst layer: 'up0' (up0_bn)" in text, text
    assert set(marked(page, "candidate", ".fsg-node:not(.fsg-ghost)")) <= set(marked(page, "original", ".fsg-node"))
