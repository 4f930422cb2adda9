"""Where the error enters (fold.pipeline.per_layer) for every frontend, and the Model Explorer export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dacite
import numpy as np
import onnx
import pytest
from model_explorer import graph_builder as gb
from model_explorer import node_data_builder as nd
from onnx import numpy_helper

from demo import onnx_zoo, zoo
from fold.core.verification import LayerDiff
from fold.frontends.graphdef.io import graph_def_from_keras, graph_model
from fold.frontends.keras.io import to_tflite
from fold.frontends.onnx.io import prepare
from fold.frontends.tflite import TfliteFrontend
from fold.frontends.tflite.io import model_from_bytes
from fold.model_explorer import export, mapping
from fold.pipeline import fold, per_layer
from tests.helpers import GRAPHDEF, KERAS, ONNX

ROOT = Path(__file__).resolve().parents[1]


def _by_layer(diffs: list[LayerDiff]) -> dict[str, LayerDiff]:
    return {d.layer: d for d in diffs}


def test_keras_every_folded_layer_matches_its_bn_and_an_error_shows_where_it_enters():
    model = zoo.unet()
    result = fold(KERAS, model)
    diffs = _by_layer(per_layer(result))
    assert {d.layer for d in result.folded_pairs} <= set(diffs)
    assert all(d.max_rel_diff < 1e-5 for d in diffs.values())
    assert diffs["up0_tconv"].reference == "up0_tbn"  # a folded layer is compared with the BN it absorbed
    broken = result.folded.get_layer("up1_conv0")
    kernel = broken.kernel.numpy()
    kernel[..., 0] *= 1.5
    broken.kernel.assign(kernel)  # an error enters at up1_conv0 ...
    bad = _by_layer(per_layer(result))
    assert bad["up1_conv0"].max_rel_diff > 1e-2
    assert bad["up1_tconv"].max_rel_diff < 1e-5 and bad["down1_conv1"].max_rel_diff < 1e-5  # ... not before it
    assert bad["logits"].max_rel_diff > 1e-3  # and reaches the output


def test_graphdef_compares_the_biasadd_that_took_the_bn_name():
    model = graph_model(graph_def_from_keras(zoo.dcgan_generator(base=16)), "dcgan")
    result = fold(GRAPHDEF, model)
    diffs = per_layer(result)
    folded = {d.layer for d in result.folded_pairs}
    by_layer = _by_layer(diffs)
    assert folded <= set(by_layer) and all(by_layer[n].max_rel_diff < 1e-5 for n in folded)
    assert all(by_layer[d.layer].reference == d.bn for d in result.folded_pairs)


def test_tflite_with_an_activation_kept_as_its_own_op():
    import keras

    L = keras.layers
    inp = keras.Input((6, 6, 3))
    out = L.ReLU()(L.BatchNormalization()(L.Conv2DTranspose(4, 3, strides=2, padding="same")(inp)))
    data = to_tflite(zoo.randomize_bn(keras.Model(inp, out)))
    frontend = TfliteFrontend(split_activation=True)
    model = model_from_bytes(data, "net.tflite")
    result = fold(frontend, model)
    diffs = per_layer(result)
    assert all(d.max_rel_diff < 1e-5 for d in diffs) and diffs


def test_onnx_an_error_in_one_folded_weight_enters_there():
    model = prepare(onnx_zoo.dcgan_generator(base=16), "g.onnx")
    result = fold(ONNX, model)
    assert all(d.max_rel_diff < 1e-5 for d in per_layer(result))
    node = next(n for n in result.folded.graph.node if n.name == "up1")
    weight = next(t for t in result.folded.graph.initializer if t.name == node.input[1])
    value = numpy_helper.to_array(weight).copy()
    value[0] += 0.5
    weight.CopyFrom(numpy_helper.from_array(value, weight.name))
    bad = _by_layer(per_layer(result))
    assert bad["up0"].max_rel_diff < 1e-5 and bad["up1"].max_rel_diff > 1e-2 and bad["image"].max_rel_diff > 1e-3


# -- Model Explorer ----------------------------------------------------------------------------

def _load(path: Path, cls):
    """A file through Model Explorer's own dataclasses, strictly (an unknown key or a wrong type fails)."""
    return dacite.from_dict(cls, json.loads(path.read_text()), config=dacite.Config(strict=True))


def test_model_explorer_files_load_through_its_own_classes(tmp_path):
    model = zoo.dcgan_generator(base=16)
    result = fold(KERAS, model)
    diffs = per_layer(result)
    written = export(result, tmp_path, diffs)
    assert sorted(p.name for p in written) == ["after.json", "after_fold.json", "after_layer_diff.json", "before.json",
                                               "before_fold.json", "mapping.json"]
    before, after = _load(tmp_path / "before.json", gb.GraphCollection), _load(tmp_path / "after.json", gb.GraphCollection)
    ids = {n.id for n in before.graphs[0].nodes}
    assert ids == set(result.graph_before) and {n.id for n in after.graphs[0].nodes} == set(result.graph_after)
    up0 = next(n for n in before.graphs[0].nodes if n.id == "up0")
    assert [e.sourceNodeId for e in up0.incomingEdges] == ["reshape"] and up0.label == "Conv2DTranspose"
    assert any(a.key == "fold" and "up0_bn" in a.value for a in up0.attrs)
    status = _load(tmp_path / "before_fold.json", nd.GraphNodeData)
    assert status.results["up0_bn"].value == 2 and status.results["up0"].value == 1 and status.thresholds
    layer_diff = _load(tmp_path / "after_layer_diff.json", nd.GraphNodeData)
    assert layer_diff.results["up0"].value == pytest.approx(_by_layer(diffs)["up0"].max_rel_diff)
    entries = json.loads((tmp_path / "mapping.json").read_text())["mappingEntries"]
    assert {"leftNodeIds": ["up0", "up0_bn"], "rightNodeIds": ["up0"]} in entries
    assert all(set(e) == {"leftNodeIds", "rightNodeIds"} for e in entries)


def test_model_explorer_namespaces_from_nested_models():
    import keras

    L = keras.layers
    inner = keras.Sequential([keras.Input((6,)), L.Dense(4, name="d"), L.BatchNormalization(name="bn")], name="inner")
    inp = keras.Input((6,))
    result = fold(KERAS, zoo.randomize_bn(keras.Model(inp, inner(L.Dense(6, name="pre")(inp)))))
    from fold.model_explorer import me_graph

    graph = me_graph(result.graph_before, "before", {})
    by_id = {n.id: n for n in graph.nodes}
    assert by_id["inner/d"].namespace == "inner" and by_id["pre"].namespace == ""
    assert {"leftNodeIds": ["inner/d", "inner/bn"], "rightNodeIds": ["inner/d"]} in mapping(result)["mappingEntries"]


def test_command_line_per_layer_and_model_explorer(tmp_path):
    path = tmp_path / "gen.onnx"
    onnx.save(onnx_zoo.dcgan_generator(base=16), path)
    proc = subprocess.run([sys.executable, "-m", "fold", str(path), "-o", str(tmp_path / "out.onnx"), "--report",
                           str(tmp_path / "r.json"), "--per-layer", "--model-explorer", str(tmp_path / "me")],
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["per_layer"] and set(report["per_layer"][0]) == {"layer", "max_abs_diff", "max_rel_diff"}
    assert "per_layer" in report["timings_s"]
    assert "largest relative diffs" in proc.stdout and "Model Explorer files written" in proc.stdout
    assert (tmp_path / "me" / "after_layer_diff.json").exists()
    assert np.isfinite([d["max_rel_diff"] for d in report["per_layer"]]).all()
