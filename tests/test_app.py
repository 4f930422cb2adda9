"""The page, run headless by Streamlit's AppTest for every model source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.seed_note import FOLDED_TCONV, NUMPY_BN

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 240


def run_app(source: str | None = None, **select) -> AppTest:
    """The page, then the source labelled ``source`` picked in the sidebar."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if source is not None:
        pick_source(at, source)
    return at


def pick_source(at: AppTest, label: str) -> None:
    at.sidebar.radio[0].set_value(label).run()


def metric(at: AppTest, label_part: str) -> float:
    (m,) = [m for m in at.metric if label_part in m.label]
    return float(m.value.split()[0])


def toggle(at: AppTest, label_start: str):
    return next(t for t in at.toggle if t.label.startswith(label_start))


def assert_page_ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert any(s.value.startswith("**PASS.**") for s in at.success), [s.value for s in at.success]
    assert metric(at, "max abs diff (outputs)") < 1e-3
    assert metric(at, "mean abs diff") <= metric(at, "max abs diff (outputs)")
    assert len(at.dataframe) >= 1


def test_seed_example_reproduces_the_note():
    at = run_app()
    assert_page_ok(at)
    assert metric(at, "max abs diff (outputs)") < 1e-5
    table = at.dataframe[0].value
    assert list(table.columns[2:5]) == ["numpy batch_norm", "tensorflow batch_norm", "folded tconv"]
    top_left = table[(table.row == 0) & (table.col == 0)].iloc[0]
    assert top_left["folded tconv"] == pytest.approx(FOLDED_TCONV[0, 0], abs=1e-5)  # -1.6051569
    assert top_left["numpy batch_norm"] == pytest.approx(NUMPY_BN[0, 0], abs=1e-5)
    pairs = at.dataframe[1].value
    assert list(pairs.status) == ["folded"]


def test_playground_widgets_change_the_fold():
    at = run_app("Playground")
    assert_page_ok(at)
    first = metric(at, "max abs diff (outputs)")
    next(w for w in at.sidebar.number_input if w.label == "Stride").set_value(1).run()
    assert_page_ok(at)
    next(w for w in at.sidebar.number_input if w.label == "Channels out").set_value(7).run()
    assert_page_ok(at)
    assert metric(at, "max abs diff (outputs)") != first  # a different model was folded
    next(w for w in at.sidebar.selectbox if w.label == "Activation").set_value(
        "ReLU inside the layer (the BN cannot fold into it)").run()
    assert not at.exception
    pairs = at.dataframe[0].value  # the 1x1 Conv2D after the BN takes it forward
    assert (list(pairs.status), list(pairs.direction), list(pairs.layer)) == (["folded"], ["forward"], ["next"])
    assert "relu" in pairs.not_backward[0]
    next(w for w in at.sidebar.checkbox if w.label == "Then a 1x1 Conv2D").uncheck().run()
    pairs = at.dataframe[0].value
    assert list(pairs.status) == ["skipped"] and "relu" in pairs.reason[0]
    assert next(m.value for m in at.metric if m.label == "BatchNorms") == "1 → 1"


@pytest.mark.parametrize("kind", ["Conv2D", "DepthwiseConv2D", "Conv2DTranspose", "SeparableConv2D", "Dense"])
def test_playground_every_kind_folds(kind):
    at = run_app("Playground")
    next(w for w in at.sidebar.selectbox if w.label == "Layer kind").set_value(kind).run()
    assert_page_ok(at)
    assert list(at.dataframe[0].value.status) == ["folded"]


def test_playground_tiny_variance_still_folds_exactly():
    at = run_app("Playground")
    next(w for w in at.sidebar.checkbox if "Tiny variance" in w.label).check().run()
    assert_page_ok(at)


@pytest.mark.parametrize("name", ["DCGAN generator", "U-Net (skip connections)", "MobileNetV2"])
def test_model_zoo(name):
    at = run_app("Model zoo")
    at.sidebar.selectbox[0].set_value(name).run()
    assert_page_ok(at)
    assert "→ 0" in next(m.value for m in at.metric if m.label == "BatchNorms")


def test_upload_without_file_asks_for_one():
    at = run_app("Upload")
    assert not at.exception
    assert any("Pick a model source" in i.value for i in at.info)
    assert any(".hdf5" in i.value for i in at.info)  # the suffixes come from fold.frontends.formats.FRONTENDS


def test_rules_shown_are_the_frontends_own():
    at = run_app("The seed, as TensorFlow ops")
    rules = list(at.table[-1].value["rule"])
    assert "constant-weights" in rules and "not-shared" not in rules


def test_why_it_works_tab_shows_each_equality():
    at = open_tab(run_app(), "Why it works")
    assert not [m for m in at.metric if m.label.startswith("max abs diff (outputs")]  # the Fold tab did not run
    diffs = {m.label: float(m.value) for m in at.metric if m.label.startswith("max abs diff:")}
    equalities = [v for k, v in diffs.items() if "naive" not in k]
    counterexamples = [v for k, v in diffs.items() if "naive" in k]
    assert len(equalities) == 4 and max(equalities) < 1e-9
    assert len(counterexamples) == 4 and min(counterexamples) > 1e-3
    relu = [m.value for m in at.markdown if "ReLU is not linear" in m.value]
    assert relu and "s·y + t" in relu[0] and "*" not in relu[0].replace("**", "")


def test_seed_as_tensorflow_ops():
    at = run_app("The seed, as TensorFlow ops")
    assert_page_ok(at)
    assert metric(at, "max abs diff (outputs)") < 1e-5
    pairs = at.dataframe[0].value
    assert list(pairs.kind) == ["Conv2DBackpropInput"] and list(pairs.status) == ["folded"]


def test_op_view_and_converter_comparison_for_a_keras_model():
    at = run_app("Model zoo")
    at.sidebar.selectbox[0].set_value("DCGAN generator").run()
    toggle(at, "Op view").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    op_pairs = at.dataframe[-1].value
    assert "Conv2DBackpropInput" in set(op_pairs.kind) and set(op_pairs.status) == {"folded"}
    images = len(at.get("image"))
    next(c for c in at.checkbox if "Const ops" in c.label).check().run()
    assert not at.exception and len(at.get("image")) == images + 1
    toggle(at, "What TensorFlow's TFLite converter did").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    converter = [float(m.value) for m in at.metric if m.label.startswith("max abs diff vs Keras")]
    assert len(converter) == 2 and max(converter) < 1e-4


def test_onnx_zoo_model_with_what_the_onnx_tools_did():
    at = run_app("Model zoo")
    at.sidebar.selectbox[0].set_value("ONNX: DCGAN generator (grouped ConvTranspose)").run()
    assert_page_ok(at)
    left = {m.label.removeprefix("BN left: ").split()[0]: m.value for m in at.metric if m.label.startswith("BN left")}
    assert left["foldscope"] == "0 of 3" and left["onnxoptimizer"] == "3 of 3" and left["onnxslim"] == "1 of 3"
    assert set(left) == {"foldscope", "onnxsim", "onnxslim", "onnxoptimizer", "onnxruntime"}


def graph_scene(at: AppTest, index: int = 0) -> dict:
    """The scene the page hands its graph component (``viz.interactive``)."""
    return json.loads(at.get("bidi_component")[index].proto.json)


def _pane_nodes(scene: dict, name: str) -> dict[str, dict]:
    return {n["id"]: n for p in scene["panes"] if p["name"] == name for n in p["nodes"] if not n["ghost"]}


def test_the_graph_is_an_interactive_component_and_can_colour_by_layer_diffs():
    at = run_app("Model zoo")
    at.sidebar.selectbox[0].set_value("U-Net (skip connections)").run()
    assert_page_ok(at)
    scene = graph_scene(at)
    assert [p["name"] for p in scene["panes"]] == ["before", "after"] and "logits" in scene["find"]
    assert scene["view"]["center"] == "up1_tconv"  # the first TConv's pair
    table = at.dataframe[0].value
    assert (table["layer max rel diff"].dropna() < 1e-5).all() and table["layer max rel diff"].notna().sum() == 12
    assert set(table["check"]) == {"PASS"}
    toggle(at, "Colour by each layer's check").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert graph_scene(at)["scale"]["title"].startswith("log10 |diff| / tolerance")


def open_tab(at: AppTest, label: str) -> AppTest:
    """Switch tabs as a click does: only the open tab's content runs."""
    at.session_state["tab"] = label
    return at.run()


def images(at: AppTest) -> list[str]:
    """The media URL of every image on the page (the URL names the image's bytes)."""
    return [e.proto.imgs[0].url for e in at.main if type(e).__name__ == "Image"]


def test_quantization_tab_tells_the_tiny_variance_story_in_one_click():
    at = run_app("Playground")
    open_tab(at, "Quantization")
    assert not at.exception and not at.error
    assert not [m for m in at.metric if m.label.startswith("max abs diff")]  # the Fold tab did not run
    next(w for w in at.sidebar.checkbox if "Tiny variance" in w.label).check().run()
    assert not at.exception and not at.error
    db = {m.label: float(m.value.split()[0]) for m in at.metric if m.value.endswith(" dB")}
    assert db["per tensor, folded"] <= db["per tensor, BN in float"] - 20, db
    assert db["per channel, folded"] >= db["per tensor, BN in float"] - 1, db
    assert db["per tensor, folded + CLE"] >= db["per tensor, folded"] + 10, db
    assert {"output, BN in float", "output, folded per tensor", "output, folded per channel",
            "output, folded + CLE"} <= set(db)
    assert float(next(m.value for m in at.metric if m.label == "range ratio after folding")) > 100
    assert any("Equalized 1 pair(s): layer → next" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert list(table.layer) == ["layer"]
    assert table["per tensor after"][0] == pytest.approx(db["per tensor, folded"], abs=0.05)
    before = images(at)
    cle = next(t for t in at.toggle if t.label == "Apply cross-layer equalization")
    assert not cle.disabled
    cle.set_value(True).run()
    assert not at.exception
    after = images(at)
    assert after[0] == before[0] and after[1] != before[1]  # the SQNR bars stay, the ranges now show CLE


def test_quantization_tab_without_a_next_layer_says_why_and_a_frozen_graph_gets_every_figure():
    at = run_app("Playground")
    next(w for w in at.sidebar.checkbox if w.label == "Then a 1x1 Conv2D").uncheck().run()
    open_tab(at, "Quantization")
    assert not at.exception and not at.error
    assert next(m.value for m in at.metric if m.label == "output, folded + CLE") == "n/a"
    assert next(t for t in at.toggle if t.label == "Apply cross-layer equalization").disabled
    pick_source(at, "The seed, as TensorFlow ops")
    assert not at.exception and not at.error
    assert [m.value for m in at.metric if m.label == "per tensor, folded"]
    assert next(m.value for m in at.metric if m.label == "output, folded per tensor").endswith(" dB")


def test_quantization_tab_of_an_onnx_model():
    at = run_app("Model zoo")
    at.sidebar.selectbox[0].set_value("ONNX: DCGAN generator (grouped ConvTranspose)").run()
    open_tab(at, "Quantization")
    assert not at.exception and not at.error
    assert list(at.dataframe[0].value.layer) == ["project", "up0", "up1"]
    assert any("up0 → up1" in c.value for c in at.caption)
    open_tab(at, "Fold")
    assert_page_ok(at)


def test_quantization_tab_real_int8_in_one_click():
    """The runtime's own int8 models: per-layer SQNRs of the variants, the layer that loses most, and
    where per-channel quantization does not rescue a folded TConv; a .pb is told why not."""
    at = run_app("Model zoo")
    at.sidebar.selectbox[0].set_value("U-Net (skip connections)").run()
    open_tab(at, "Quantization")
    next(r for r in at.radio if r.label == "View").set_value("real int8 (the runtime's own models)").run()
    assert not at.exception and not at.error
    db = {m.label: float(m.value.split()[0]) for m in at.metric if m.value.endswith(" dB")}
    assert {"output: original", "output: folded per tensor", "output: folded per channel",
            "output: folded + CLE"} <= set(db), db
    table = at.dataframe[0].value
    assert len(table) == 12 and table["folded per tensor"].notna().all()
    assert any(w.value.startswith("Loses most, folded per tensor:") for w in at.warning)
    assert any("'up1_tconv': per-channel quantization does not rescue this fold" in w.value for w in at.warning)
    assert list(at.dataframe[1].value.layer) == ["up1_tconv", "up0_tconv"]
    scene = graph_scene(at)  # the graph coloured by the SQNR of the folded per-tensor int8 model
    nodes = _pane_nodes(scene, "after")
    worst = next(w.value for w in at.warning if w.value.startswith("Loses most")).split("'")[1]
    assert any(line.startswith("real int8 SQNR (folded per tensor): ") for line in nodes[worst]["hover"])
    assert len({nodes[q]["fill"] for q in table.layer}) > 1 and nodes[worst]["fill"] != "#d9d9d9"
    assert scene["view"]["found"] == scene["view"]["center"] == worst
    pick_source(at, "The seed, as TensorFlow ops")
    next(r for r in at.radio if r.label == "View").set_value("real int8 (the runtime's own models)").run()
    assert not at.exception and not at.error
    assert any("for a TensorFlow GraphDef (frozen) file it is not built yet" in i.value for i in at.info)


# --- sessions side by side, failures in words -------------------------------------------------

def _duplicate_names():
    """A model Keras itself refuses to build: two layers named alike (how colliding sessions failed)."""
    import keras

    x = keras.Input((4,), name="x")
    return keras.Model(x, keras.layers.Dense(2, name="twice")(keras.layers.Dense(3, name="twice")(x)))


def test_a_model_that_cannot_be_built_is_said_in_words(monkeypatch, caplog):
    from foldscope_app.examples import model_zoo

    monkeypatch.setitem(model_zoo.ZOO, "Broken", model_zoo.ZooEntry("keras", _duplicate_names))
    at = run_app("Model zoo")
    at.sidebar.selectbox[0].set_value("Broken").run()
    assert not at.exception, [e.value for e in at.exception]
    (error,) = [e.value for e in at.error]
    assert error == ("Could not fold this model: Keras failed on it in a way foldscope did not expect; the server's "
                     "log has the details."), error
    assert "ValueError" not in error and "twice" not in error
    # the details are not lost: they are in the server's log, with the traceback
    assert any("The name \"twice\" is used 2 times" in r.getMessage() + str(r.exc_info and r.exc_info[1])
               for r in caplog.records), caplog.text


def test_a_run_of_the_page_leaves_keras_state_to_the_other_sessions():
    """Streamlit clears Keras' session after every run, resetting the layer names of a model another
    session is building at that moment; the page's runs leave it alone (``foldscope_app.sections.server``)."""
    import keras

    before = keras.backend.get_uid("foldscope-probe")
    assert_page_ok(run_app())
    assert keras.backend.get_uid("foldscope-probe") == before + 1  # this thread's counter, not reset


def test_a_link_reopens_its_source_model_pair_and_node():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(source="Model zoo", model="U-Net (skip connections)", pair="down1_conv1", node="down1_bn1")
    at.run()
    assert_page_ok(at)
    assert at.sidebar.radio[0].value == "Model zoo" and at.sidebar.selectbox[0].value == "U-Net (skip connections)"
    pair = next(s for s in at.selectbox if s.label == "Pair to inspect")
    assert pair.format_func(pair.value) == "down1_conv1 → down1_bn1 (folded)"
    assert any(m.value == "**Node panel: down1_bn1**" for m in at.markdown)
    view = graph_scene(at)["view"]
    assert view["found"] == view["center"] == view["selected"] == "down1_bn1"
    assert at.query_params["node"] == "down1_bn1" and at.query_params["pair"] == "down1_conv1"


def test_an_upload_says_a_link_cannot_carry_its_file():
    at = run_app("Upload")
    assert any("a file cannot travel in a URL" in c.value for c in at.sidebar.caption)


def test_the_zoo_says_how_each_entry_was_made_and_the_pair_table_fits_its_names():
    from foldscope_app.examples import model_zoo

    at = run_app("Model zoo")
    assert at.sidebar.caption[0].value == model_zoo.caption(model_zoo.ZOO["DCGAN generator"])
    at.sidebar.selectbox[0].set_value("ONNX: DCGAN generator (grouped ConvTranspose)").run()
    assert not at.exception
    assert "keras.applications" not in at.sidebar.caption[0].value and "ONNX" in at.sidebar.caption[0].value
    columns = json.loads(at.dataframe[0].proto.columns)
    widths = {name: column.get("width") for name, column in columns.items()}
    assert widths["reason"] == "small"  # every pair folded: no reason to give room to
    assert widths["layer"] in ("medium", "large") or len(max(at.dataframe[0].value.layer, key=len)) <= 8
