"""The interactive graph (viz.interactive) and the page's logic around it (viz.fold_graph,
fold.outputs.result_views), headless: the scene's data, not pixels.

"No label overlaps another, no node hides another" is measured on the scene every drawing reads
(``legibility_faults``): every pair of node boxes in each pane (ghosts included), every label line
inside its own box (widths in the graph's font, ``viz.text``), every block's name clear of the
nodes. The themes change colours only, never a font or a size, so one measurement holds for both;
the browser tests measure the drawn page too (tests/test_browser_graph.py)."""

from __future__ import annotations

import networkx as nx
import pytest

from fold.core.graph import flatten
from fold.core.rules import Decision
from fold.core.verdict import TensorCheck
from fold.engine.pipeline import fold, fold_file
from fold.outputs import result_views
from fold.tools.check import check_files
from foldscope_app.examples import model_zoo
from foldscope_app.examples.seed import keras_model as seed_model
from foldscope_app.workbench.node_panel import check_panel
from tests.helpers import KERAS, randomize_bn
from tests.real_models import broken_copy, real_model
from viz import fold_graph
from viz.interactive import RD_YL_GN, before_after_figure, ink, node_ids, sample, with_view
from viz.layout import Box
from viz.text import LINE_HEIGHT, PAD_X, PAD_Y, text_width


def _chain(n: int, prefix: str = "n") -> nx.DiGraph:
    g = nx.DiGraph(name="chain", inputs=[f"{prefix}0"], outputs=[f"{prefix}{n - 1}"])
    for i in range(n):
        g.add_node(f"{prefix}{i}", op="Conv2D" if i % 2 else "BatchNormalization", role="linear" if i % 2 else "bn",
                   config={}, weights={"kernel": (3, 3, 4, 4)}, calls=1)
    for i in range(n - 1):
        g.add_edge(f"{prefix}{i}", f"{prefix}{i + 1}", shape=(None, 8, 8, 4))
    return g


def _pane(scene: dict, name: str) -> dict:
    return next(p for p in scene["panes"] if p["name"] == name)


def _nodes(scene: dict, name: str, ghosts: bool = False) -> dict[str, dict]:
    return {n["id"]: n for n in _pane(scene, name)["nodes"] if n["ghost"] == ghosts}


def legibility_faults(scene: dict) -> list[str]:
    """What would make a scene hard to read: two node boxes of a pane overlapping (one label over
    another, a node hidden under another), a label line wider or taller than its box, a block's
    name over a node, a node outside the drawing."""
    width, height = scene["size"]
    faults = []
    for pane in scene["panes"]:
        boxes = {}
        for n in pane["nodes"]:
            box = Box(*n["box"])
            key = n["id"] + (" (ghost)" if n["ghost"] else "")
            boxes[key] = box
            wide = max(text_width(text, size) for text, size in n["lines"])
            tall = sum(size * LINE_HEIGHT for _, size in n["lines"])
            if wide > box.w - 2 * PAD_X + 1e-6 or tall > box.h - 2 * PAD_Y + 1e-6:
                faults.append(f"{pane['name']}: the label of {key} overruns its box")
            if box.w <= 0 or box.h <= 0 or box.x < 0 or box.y < 0 or box.right > width + 1e-6 \
                    or box.bottom > height + 1e-6:
                faults.append(f"{pane['name']}: {key} lies outside the drawing")
        for group in pane["groups"]:
            x, y, _, _ = group["box"]
            boxes[f"label of block {group['id']}"] = Box(x + 8, y + 3, text_width(group["label"], 11), 15)
        items = sorted(boxes.items(), key=lambda item: item[1].x)
        for i, (a, box) in enumerate(items):
            for b, other in items[i + 1:]:
                if other.x >= box.right:
                    break
                if box.overlaps(other):
                    faults.append(f"{pane['name']}: {a} overlaps {b}")
    return faults


# --- the scene ------------------------------------------------------------------------------


def test_both_panes_share_boxes_and_a_folded_bn_is_a_ghost_where_it_was():
    before = _chain(6)
    after = before.copy()
    after.remove_node("n2")
    after.add_edge("n1", "n3")
    scene = before_after_figure(before, after, folded_layers=["n1"], removed_bns=["n2"], links={"n2": ["n1"]})
    b, a = _nodes(scene, "before"), _nodes(scene, "after")
    assert set(b) - set(a) == {"n2"} and all(b[n]["box"] == a[n]["box"] for n in a)
    assert _nodes(scene, "after", ghosts=True)["n2"]["box"] == b["n2"]["box"]
    assert b["n1"]["stroke"] == a["n1"]["stroke"] != b["n0"]["stroke"] and b["n2"]["dash"]
    # hovering the BN marks the layer it went into, and back; a node both panes draw marks itself
    assert scene["links"]["before"]["n2"] == ["n1", "n2"] and "n2" in scene["links"]["after"]["n1"]
    assert scene["links"]["before"]["n4"] == ["n4"]
    assert legibility_faults(scene) == []


def test_hover_tells_class_name_shape_weights_and_status():
    before = _chain(3)
    scene = before_after_figure(before, before, notes={"n1": "folded: n2 is folded into it"})
    lines = _nodes(scene, "before")["n1"]["hover"]
    assert lines[0] == "n1"
    for part in ("Conv2D", "output ?×8×8×4", "kernel: 3×3×4×4", "folded: n2 is folded into it"):
        assert part in lines, (part, lines)


def test_a_view_opens_around_a_node_rings_and_marks_without_changing_the_scene():
    before = _chain(120)
    scene = before_after_figure(before, before)
    viewed = with_view(scene, selected="n100", center="n100", found="n7", rings=[("after", "n3")], revision="r1")
    assert viewed["view"] == {"center": "n100", "selected": "n100", "found": "n7", "rings": [["after", "n3"]],
                              "revision": "r1"}
    assert scene["view"]["center"] is None and viewed["panes"] is scene["panes"]


def test_labels_name_every_node_of_a_large_graph_each_in_its_own_box():
    graph = _chain(400)
    scene = before_after_figure(graph, graph)
    assert [lines[0][0] for lines in (n["lines"] for n in _pane(scene, "before")["nodes"])] == list(graph)
    assert legibility_faults(scene) == []


def test_a_long_name_is_cut_in_its_label_and_whole_in_its_hover():
    g = nx.DiGraph()
    name = "/backbone/stage4/very_long_block_name_that_goes_on_and_on/conv_with_a_long_name_too/Conv"
    g.add_node(name, op="Conv", role="linear")
    node = _nodes(before_after_figure(g, g), "before")[name]
    assert node["lines"][0][0] == "conv_with_a_long_name_too/Conv" and node["hover"][0] == name  # its last two parts
    longer = name.replace("too/", "too_and_longer_still/")
    g.add_node(longer, op="Conv", role="linear")
    label = _nodes(before_after_figure(g, g), "before")[longer]["lines"][0][0]
    assert label.startswith("…") and label.endswith("longer_still/Conv") and len(label) == 34


def test_checks_colour_the_after_pane_and_add_a_scale():
    before = _chain(4)
    scene = before_after_figure(before, before, diffs={"n1": 0.01, "n3": 3.0})
    colours = [n["fill"] for n in _pane(scene, "after")["nodes"]]
    assert colours[0] == colours[2] != colours[1] != colours[3]  # no diff: grey; two different diffs
    assert scene["scale"]["low"] == -3.0 and len(scene["scale"]["stops"]) == 9
    assert [e["label"] for e in scene["legend"]][:5] == ["|diff| under 1% of tolerance", "1% to 10%", "10% to 100%",
                                                         "above tolerance: fails", "not compared"]


def test_each_face_gets_the_ink_that_reads_on_it():
    assert ink("#ffffcc") == ink("#fdbf6f") == "#1a1a1a"  # pale yellow, the linear role's orange
    assert ink(sample(RD_YL_GN, 0.0)) == ink("#800026") == "#ffffff"  # dark red: white letters
    assert ink("transparent") is None


def test_pair_of_a_clicked_node():
    decisions = [Decision("conv", "bn", "Conv2D", "conv", "folded"),
                 Decision("pool", "mul+add", "MaxPool", None, "skipped", "why", "supported-kind")]
    assert fold_graph.pair_index(decisions, "bn") == 0 and fold_graph.pair_index(decisions, "add") == 1
    assert fold_graph.pair_index(decisions, "relu") is None


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
    scene = fold_graph.view(fold_graph.figure(result), closed, selected="inner/d", center="inner/d")
    assert scene["view"]["selected"] == scene["view"]["center"] == "inner"
    # the opened model is a frame around its layers
    frames = _pane(fold_graph.figure(result, graphs=fold_graph.open_graphs(result, ("inner",))), "before")["groups"]
    assert [g["id"] for g in frames] == ["inner"]


def test_flatten_keeps_every_node_and_edge_of_a_plain_graph():
    g = _chain(5)
    flat = flatten(g)
    assert set(flat) == set(g) and set(flat.edges) == set(g.edges)
    assert all(flat.nodes[n]["namespace"] == "" for n in flat)


def _check(layer: str, margin: float) -> TensorCheck:
    return TensorCheck(layer, None, layer, "shared", "end to end", 1e-7, 1e-7, 1e-6, margin <= 1, 0, 4, margin)


def test_figure_of_a_fold_marks_folded_layers_and_colours_by_its_checks():
    result = fold(KERAS, model_zoo.dcgan_generator(base=16))
    scene = fold_graph.figure(result, checks=[_check("up0", 0.1), _check("reshape", 5.0)])
    before, after = _nodes(scene, "before"), _nodes(scene, "after")
    assert before["up0"]["stroke"] != before["reshape"]["stroke"] and before["up0_bn"]["dash"]
    assert "folded away into up0" in before["up0_bn"]["hover"]
    assert "check: pass, |diff| at 0.1 of its tolerance" in after["up0"]["hover"]
    assert any("FAIL" in line for line in after["reshape"]["hover"])
    assert after["up0"]["fill"] != after["reshape"]["fill"] and after["up0_act"]["fill"] == "#d9d9d9"  # grey
    assert "up0" in scene["links"]["before"]["up0_bn"] and "up0_bn" in scene["links"]["after"]["up0"]
    assert legibility_faults(scene) == []


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


# --- the models the page shows, measured --------------------------------------------------


def _fold_scenes(result) -> dict[str, dict]:
    """The page's scenes of a fold: blocks closed as a large graph opens, and every block open."""
    graphs = fold_graph.open_graphs(result, ())
    closed = fold_graph.block_view(result, graphs, ())
    return {"blocks closed": fold_graph.figure(result, graphs=graphs, blocks=closed),
            "every block open": fold_graph.figure(result, graphs=graphs)}


def test_the_seed_is_small_and_its_ghost_bn_is_named():
    result = fold(KERAS, seed_model())
    scene = fold_graph.figure(result)
    ghost = _nodes(scene, "after", ghosts=True)
    assert list(ghost) == ["bn"] and ghost["bn"]["lines"][0][0] == "bn"
    assert scene["size"][1] < 300  # three nodes: a short drawing, not 800 px
    assert legibility_faults(scene) == []


@pytest.fixture(scope="module")
def densenet():
    return fold(KERAS, model_zoo.application("DenseNet121"))


@pytest.mark.slow
def test_densenet121_closed_and_every_block_open_has_no_overlap(densenet):
    scenes = _fold_scenes(densenet)
    assert len(node_ids(scenes["blocks closed"], "before")) < 30
    opened = scenes["every block open"]
    assert len(_nodes(opened, "before")) == len(densenet.graph_before) == 429
    assert {g["id"] for g in _pane(opened, "before")["groups"]} >= {"conv4", "conv4_block12"}
    for name, scene in scenes.items():
        assert legibility_faults(scene) == [], name


def test_fers_classifier_has_no_overlap_where_its_branches_run_side_by_side():
    result = fold_file(real_model("fer_h5"))
    scene = fold_graph.figure(result)
    boxes = {n: Box(*v["box"]) for n, v in _nodes(scene, "before").items()}
    assert not boxes["separable_conv2d_1"].overlaps(boxes["conv2d_3"])  # the first pile-up
    assert legibility_faults(scene) == []


@pytest.fixture(scope="module")
def detector_check(tmp_path_factory):
    """PaddleOCR v4's detector folded by foldscope, its ConvTranspose.0 then broken by 5 % in channel 0,
    and that broken fold checked against the original."""
    path = real_model("ppocr_det")
    result = fold_file(path)
    folder = tmp_path_factory.mktemp("det")
    result.frontend.write(result.folded, folder / "folded.onnx")
    return result, check_files(path, broken_copy(folder / "folded.onnx", folder / "broken.onnx", "p2o.ConvTranspose.0", 1))


def test_paddleocrs_detector_has_no_overlap(detector_check):
    result, _ = detector_check
    assert legibility_faults(fold_graph.figure(result)) == []


def test_the_check_view_rings_the_failing_layer_with_its_counterpart_and_overlaps_nothing(detector_check):
    _, checked = detector_check
    graphs = result_views.aligned_graphs(checked)
    scene = result_views.check_view(result_views.check_figure(checked, graphs), checked, graphs)
    assert scene["view"]["rings"] == [["candidate", "p2o.ConvTranspose.0"], ["original", "p2o.ConvTranspose.0"]]
    assert scene["view"]["center"] == "p2o.ConvTranspose.0"
    original, candidate = _nodes(scene, "original"), _nodes(scene, "candidate")
    assert original["p2o.ConvTranspose.0"]["box"] == candidate["p2o.ConvTranspose.0"]["box"]
    assert "p2o.BatchNormalization.2" in _nodes(scene, "candidate", ghosts=True)  # the BN it absorbed: a ghost
    assert "p2o.ConvTranspose.0" in scene["links"]["original"]["p2o.BatchNormalization.2"]
    # every candidate node lines up with an original one: nothing left over to sit apart
    assert set(candidate) <= set(original)
    assert legibility_faults(scene) == []
    panel = check_panel(checked, graphs, "p2o.ConvTranspose.0")
    assert panel.check.startswith("FAIL (folded") and "the candidate folded p2o.BatchNormalization.2" in panel.fold
