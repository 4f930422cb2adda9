"""The interactive graph (viz.interactive) and the page's logic around it (viz.fold_graph), headless:
Plotly figure data, not pixels."""

from __future__ import annotations

import networkx as nx
import pytest

from fold.core.graph import flatten
from fold.core.rules import Decision
from fold.core.verdict import TensorCheck
from fold.engine.pipeline import fold
from foldscope_app.examples import model_zoo
from tests.helpers import KERAS, randomize_bn
from viz import fold_graph
from viz.interactive import LABEL_ALL, before_after_figure, with_view


def _chain(n: int, prefix: str = "n") -> nx.DiGraph:
    g = nx.DiGraph(name="chain", inputs=[f"{prefix}0"], outputs=[f"{prefix}{n - 1}"])
    for i in range(n):
        g.add_node(f"{prefix}{i}", op="Conv2D" if i % 2 else "BatchNormalization", role="linear" if i % 2 else "bn",
                   config={}, weights={"kernel": (3, 3, 4, 4)}, calls=1)
    for i in range(n - 1):
        g.add_edge(f"{prefix}{i}", f"{prefix}{i + 1}", shape=(None, 8, 8, 4))
    return g


def _trace(fig: dict, name: str) -> dict:
    return next(t for t in fig["data"] if t.get("name") == name)


def test_both_panes_share_positions_and_their_axes_move_together():
    before = _chain(6)
    after = before.copy()
    after.remove_node("n2")
    after.add_edge("n1", "n3")
    fig = before_after_figure(before, after, folded_layers=["n1"], removed_bns=["n2"]).to_dict()
    b, a = _trace(fig, "nodes before"), _trace(fig, "nodes after")
    pb = dict(zip(b["customdata"], zip(b["x"], b["y"])))
    pa = dict(zip(a["customdata"], zip(a["x"], a["y"])))
    assert set(pb) - set(pa) == {"n2"} and all(pb[n] == pa[n] for n in pa)
    assert fig["layout"]["xaxis2"]["matches"] == "x" and fig["layout"]["yaxis2"]["matches"] == "y"
    assert fig["layout"]["dragmode"] == "pan"
    ghost = _trace(fig, "folded away")
    assert ghost["customdata"] == ["n2"] and ghost["xaxis"] == "x2"


def test_hover_tells_class_name_shape_weights_and_status():
    before = _chain(3)
    fig = before_after_figure(before, before, notes={"n1": "folded: n2 is folded into it"}).to_dict()
    text = dict(zip(_trace(fig, "nodes before")["customdata"], _trace(fig, "nodes before")["hovertext"]))["n1"]
    for part in ("<b>n1</b>", "Conv2D", "output ?×8×8×4", "kernel: 3×3×4×4", "folded: n2 is folded into it"):
        assert part in text, (part, text)


def test_a_view_opens_around_a_node_and_rings_the_selection():
    before = _chain(120)
    fig = before_after_figure(before, before).to_dict()
    viewed = with_view(fig, selected="n100", center="n100", rows=20, revision="r1")
    y = dict(zip(_trace(fig, "nodes before")["customdata"], _trace(fig, "nodes before")["y"]))["n100"]
    low, high = viewed["layout"]["yaxis"]["range"]
    assert low < y < high and high - low == 20
    nodes = _trace(viewed, "nodes before")
    assert nodes["selectedpoints"] == [nodes["customdata"].index("n100")]
    assert viewed["layout"]["uirevision"] == "r1"
    assert "selectedpoints" not in _trace(fig, "nodes before")  # the cached figure is not changed


def test_large_graphs_name_the_nodes_near_the_view_small_ones_all():
    small, large = _chain(20), _chain(LABEL_ALL + 100)
    for graph, everything in ((small, True), (large, False)):
        fig = with_view(before_after_figure(graph, graph).to_dict(), center="n1", rows=20)
        labels = _trace(fig, "labels before")["text"]
        assert (len(labels) == len(graph)) is everything
        assert "n1" in [text.strip() for text in labels]  # an en space keeps the name off its marker


def test_checks_colour_the_after_pane_and_add_a_scale():
    before = _chain(4)
    fig = before_after_figure(before, before, diffs={"n1": 0.01, "n3": 3.0}).to_dict()
    colours = _trace(fig, "nodes after")["marker"]["color"]
    assert colours[0] == colours[2] != colours[1] != colours[3]  # no diff: grey; two different diffs
    assert any(t.get("name") == "diff scale" for t in fig["data"])


def test_pair_of_a_clicked_node_and_the_click_itself():
    decisions = [Decision("conv", "bn", "Conv2D", "conv", "folded"),
                 Decision("pool", "mul+add", "MaxPool", None, "skipped", "why", "supported-kind")]
    assert fold_graph.pair_index(decisions, "bn") == 0 and fold_graph.pair_index(decisions, "add") == 1
    assert fold_graph.pair_index(decisions, "relu") is None
    event = {"selection": {"points": [{"customdata": "relu"}, {"customdata": "add"}]}}
    assert fold_graph.clicked_node(event) == "add"
    assert fold_graph.clicked_node({"selection": {"points": []}}) is None and fold_graph.clicked_node(None) is None


def _nested_model():
    import keras

    L = keras.layers
    inner = keras.Sequential([keras.Input((6,)), L.Dense(4, name="d"), L.BatchNormalization(name="bn")], name="inner")
    inp = keras.Input((8, 7, 3))
    x = L.GlobalAveragePooling2D(name="pool")(L.BatchNormalization(name="outer_bn")(L.Conv2D(6, 3, name="conv")(inp)))
    return randomize_bn(keras.Model(inp, inner(x)))


def test_nested_models_stay_one_node_until_opened():
    result = fold(KERAS, _nested_model())
    assert fold_graph.nested_models(result.graph_before) == ["inner"]
    closed = fold_graph.open_graphs(result, ())[0]
    opened = fold_graph.open_graphs(result, ("inner",))[0]
    assert "inner" in closed and "inner/d" not in closed
    assert "inner" not in opened and {"inner/d", "inner/bn"} <= set(opened)
    assert opened.has_edge("pool", next(n for n in opened if n.startswith("inner/") and opened.in_degree(n) == 1
                                        and "pool" in opened.predecessors(n)))
    assert fold_graph.visible("inner/bn", closed) == "inner" and fold_graph.visible("inner/bn", opened) == "inner/bn"
    fig = fold_graph.view(fold_graph.figure(result), closed, selected="inner/d", center="inner/d")
    nodes = _trace(fig, "nodes before")
    assert nodes["selectedpoints"] == [nodes["customdata"].index("inner")]


def test_flatten_keeps_every_node_and_edge_of_a_plain_graph():
    g = _chain(5)
    flat = flatten(g)
    assert set(flat) == set(g) and set(flat.edges) == set(g.edges)
    assert all(flat.nodes[n]["namespace"] == "" for n in flat)


def _check(layer: str, margin: float) -> TensorCheck:
    return TensorCheck(layer, None, layer, "shared", "end to end", 1e-7, 1e-7, 1e-6, margin <= 1, 0, 4, margin)


def test_figure_of_a_fold_marks_folded_layers_and_colours_by_its_checks():
    result = fold(KERAS, model_zoo.dcgan_generator(base=16))
    fig = fold_graph.figure(result, checks=[_check("up0", 0.1), _check("reshape", 5.0)])
    outline = dict(zip(_trace(fig, "nodes before")["customdata"],
                       _trace(fig, "nodes before")["marker"]["line"]["color"]))
    assert outline["up0"] != outline["reshape"] and outline["up0_bn"] not in (outline["up0"], outline["reshape"])
    hover = dict(zip(_trace(fig, "nodes before")["customdata"], _trace(fig, "nodes before")["hovertext"]))
    assert "folded away into up0" in hover["up0_bn"]
    after = dict(zip(_trace(fig, "nodes after")["customdata"], _trace(fig, "nodes after")["hovertext"]))
    assert "pass, |diff| at 0.1 of its tolerance" in after["up0"] and "FAIL" in after["reshape"]
    colour = dict(zip(_trace(fig, "nodes after")["customdata"], _trace(fig, "nodes after")["marker"]["color"]))
    assert colour["up0"] != colour["reshape"] and colour["up0_act"] == "#d9d9d9"  # no check: grey


@pytest.mark.parametrize("fmt,magic", [("png", b"\x89PNG"), ("svg", b"<?xml")])
def test_the_static_picture_is_still_there(fmt, magic):
    result = fold(KERAS, model_zoo.dcgan_generator(base=16))
    assert fold_graph.static_picture(result, fmt).startswith(magic)


def test_the_model_explorer_download_holds_every_file():
    import io
    import zipfile

    from fold.outputs.model_explorer import export_zip

    result = fold(KERAS, model_zoo.dcgan_generator(base=16))
    names = zipfile.ZipFile(io.BytesIO(export_zip(result))).namelist()
    assert sorted(names) == ["after.json", "after_fold.json", "before.json", "before_fold.json", "mapping.json"]
