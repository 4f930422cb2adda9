"""The op-graph layer (``fold.frontends.ops``).

Property tests: random op graphs of every op-level format (``tests/op_graphs.py``: tensors of rank 0
to 5, empty ones, 1-D and 5-D layers, ops with no output or an omitted first one) go through the
fold, a recount of the folded file and the verification. A model its runtime runs is folded; what
foldscope refuses is one FoldError sentence; a correct fold never fails its check; the folded file
holds exactly the BatchNorms the report says are left. Nothing but a FoldError ever escapes.

Then the rule that says what a BatchNorm is (``fold.frontends.ops.chains``), on twins of the files
that fooled the old one: a Swish's x * 1.0 reading a folded layer, a LayerNorm's gamma and beta, a
scalar Mul named like a BN; and the BNs it must still see (after an activation, a pooling, a gate).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings

from demo.onnx_zoo import Graph
from fold.errors import FoldError
from fold.frontends.tflite.model import interpreter
from fold.pipeline import fold_file, verify
from tests.helpers import recount
from tests.op_graphs import Program, graphdef_model, onnx_model, programs, tflite_model


def _settings(examples: int) -> settings:
    """Derandomized (the same graphs on every run and machine), no example database written."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _zeros(shapes: list) -> list[np.ndarray]:
    return [np.zeros([int(d) for d in shape], np.float32) for shape in shapes]


def _onnx_runs(proto: onnx.ModelProto) -> bool:
    try:
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        session.run(None, {i.name: x for i, x in zip(session.get_inputs(),
                                                      _zeros([i.shape for i in session.get_inputs()]))})
    except Exception:  # noqa: BLE001 - any refusal: the model does not run
        return False
    return True


def _tflite_runs(data: bytes) -> bool:
    try:
        found = interpreter(data)
        for detail, x in zip(found.get_input_details(), _zeros([d["shape"] for d in found.get_input_details()])):
            found.set_tensor(detail["index"], x)
        found.invoke()
    except Exception:  # noqa: BLE001
        return False
    return True


def _graphdef_runs(graph_def) -> bool:
    import tensorflow as tf

    try:
        with tf.Graph().as_default() as graph:
            tf.graph_util.import_graph_def(graph_def, name="")
            x = graph.get_tensor_by_name("x:0")
            with tf.compat.v1.Session(graph=graph) as session:
                session.run([n.name + ":0" for n in graph_def.node if n.op == "Identity"][-1:],
                            {x: np.zeros(x.shape.as_list(), np.float32)})
    except Exception:  # noqa: BLE001
        return False
    return True


def _through_foldscope(path, program: Program, runs: bool, folder) -> list[str]:
    """Fold, recount and verify the model at ``path`` (see the module docstring); what happened:
    "refused" (a FoldError), "folded" / "skipped" (pairs), "verified" or "unverified" (a FoldError)."""
    try:
        result = fold_file(path)
    except FoldError as exc:
        assert not runs, f"{program}: a model its runtime runs was refused: {exc}"
        assert "\n" not in str(exc) and path.stem in str(exc), f"{program}: {exc}"
        return ["refused"]
    seen = sorted({"folded" if d.folded else "skipped" for d in result.decisions})
    assert recount(result, folder) == (result.bn_after, result.affine_after), program
    try:
        v = verify(result, samples=2).verification
    except FoldError as exc:  # an input no sample can be drawn for (a scalar, a batch of 0 rows), a runtime's refusal
        assert "\n" not in str(exc) and len(str(exc)) < 400, f"{program}: {exc}"
        return [*seen, "unverified"]
    assert v.verdict != "fail", f"{program}: {v.reason}"
    return [*seen, "verified"]


def _random_graphs(tmp_path, build, suffix: str, runs, examples: int) -> Counter:
    """``examples`` random programs built by ``build`` into ``suffix`` files, each through foldscope;
    how often each outcome came."""
    seen: Counter = Counter()

    @_settings(examples)
    @given(programs())
    def one(program):
        made = build(program)
        path = tmp_path / f"random{suffix}"
        path.write_bytes(made if isinstance(made, bytes) else made.SerializeToString())
        seen.update(_through_foldscope(path, program, runs(made), tmp_path))

    one()
    return seen


# Derandomized, so each run draws the same graphs; the floors say the draws keep exercising folds,
# refusals and verdicts (about 70 % of what hypothesis 6.170 draws).
def test_random_onnx_graphs(tmp_path):
    seen = _random_graphs(tmp_path, onnx_model, ".onnx", _onnx_runs, 200)
    assert seen["folded"] >= 50 and seen["skipped"] >= 12 and seen["verified"] >= 90, seen


def test_random_tflite_graphs(tmp_path):
    seen = _random_graphs(tmp_path, tflite_model, ".tflite", _tflite_runs, 150)
    assert seen["folded"] >= 15 and seen["skipped"] >= 40 and seen["verified"] >= 75, seen


def test_random_graphdef_graphs(tmp_path):
    seen = _random_graphs(tmp_path, graphdef_model, ".pb", _graphdef_runs, 80)
    assert seen["folded"] >= 5 and seen["skipped"] >= 10 and seen["verified"] >= 40, seen


# -- what a BatchNorm is: structure, not names -------------------------------------------------------

def _onnx_file(tmp_path, g: Graph, out: str, name: str = "twin"):
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(g.model([out], name).SerializeToString())
    return path


def _folded(path, tmp_path):
    """The fold of ``path``, its recount equal to its report, and its verdict."""
    result = fold_file(path)
    assert recount(result, tmp_path) == (result.bn_after, result.affine_after)
    assert verify(result, samples=2).verification.passed
    return result


def test_a_swish_reading_a_folded_layer_is_no_bn_and_no_pair(tmp_path):
    """paddle2onnx's Conv -> BN -> Swish, the BN's output named "batch_norm_3.tmp_2": after the fold
    the Conv writes that name and the Swish's x * 1.0 reads it, beside the Swish's own Mul."""
    g = Graph(seed=1)
    x = g.conv(g.input("x", [1, 3, 6, 6]), 3, 4, 3, "conv", pad=1)
    y = g.bn(x, 4, "batch_norm_3.tmp_2")
    scaled = g.node("Mul", [y, g.const("swish.beta", np.float32(1.0))], "swish_scale")
    out = g.node("Mul", [y, g.node("Sigmoid", [scaled], "sigmoid")], "swish")
    result = _folded(_onnx_file(tmp_path, g, out), tmp_path)
    assert [(d.status, d.form) for d in result.decisions] == [("folded", "bn")]
    assert (result.bn_before, result.bn_after, result.affine_before, result.affine_after) == (1, 0, 0, 0)
    again = fold_file(tmp_path / f"{result.name}_recount.onnx")
    assert again.decisions == [], [d.to_dict() for d in again.decisions]


def _layernorm_onnx(g: Graph, x: str, width: int) -> str:
    """LayerNorm over the last axis as torch.onnx writes it (ReduceMean, Sub, Pow, ..., Div, Mul, Add)."""
    mean = g.node("ReduceMean", [x], "mean", axes=[-1], keepdims=1)
    centred = g.node("Sub", [x, mean], "sub")
    var = g.node("ReduceMean", [g.node("Pow", [centred, g.const("two", np.float32(2))], "pow")], "var",
                 axes=[-1], keepdims=1)
    std = g.node("Sqrt", [g.node("Add", [var, g.const("eps", np.float32(1e-5))], "add_eps")], "sqrt")
    normed = g.node("Div", [centred, std], "div")
    gamma = g.const("model.2.weight", g.rng.normal(1, 0.2, width).astype(np.float32))
    return g.node("Add", [g.node("Mul", [normed, gamma], "mul"),
                          g.const("model.2.bias", g.rng.normal(0, 0.2, width).astype(np.float32))], "add")


def test_a_layernorm_is_no_bn_in_onnx(tmp_path):
    """openWakeWord's Gemm -> LayerNorm -> ReLU: gamma and beta hold one value per feature, as a BN's
    would, but they scale data its own statistics have just normalized."""
    g = Graph(seed=2)
    x = g.node("Gemm", [g.input("x", [1, 12]), g.const("W", g.rng.normal(0, 0.5, (8, 12)).astype(np.float32)),
                        g.const("B", g.rng.normal(0, 0.1, 8).astype(np.float32))], "gemm", transB=1)
    out = g.node("Relu", [_layernorm_onnx(g, x, 8)], "relu")
    result = _folded(_onnx_file(tmp_path, g, out), tmp_path)
    assert result.decisions == [] and result.bn_before == result.affine_before == 0


@pytest.mark.parametrize("fmt", ["tflite", "pb"])
def test_a_layernorm_is_no_bn_as_tensorflow_writes_it(tmp_path, fmt):
    """Keras' Dense -> LayerNormalization -> ReLU, through TensorFlow's converter (MEAN, SUB, RSQRT,
    MUL, then MUL(gamma), ADD(beta)) and frozen to a GraphDef; a Dense -> BN beside it still folds."""
    import keras
    import tensorflow as tf

    from fold.frontends.graphdef.io import graph_def_from_keras
    from tests.helpers import randomize_bn

    inp = keras.Input((12,), batch_size=1)
    x = keras.layers.ReLU()(keras.layers.LayerNormalization()(keras.layers.Dense(8)(inp)))
    x = keras.layers.BatchNormalization()(keras.layers.Dense(6)(x))
    model = randomize_bn(keras.Model(inp, x))
    model.layers[2].set_weights([np.linspace(0.5, 2, 8), np.linspace(-1, 1, 8)])  # gamma, beta
    path = tmp_path / f"ln.{fmt}"
    if fmt == "tflite":
        path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    else:
        path.write_bytes(graph_def_from_keras(model).SerializeToString())
    result = _folded(path, tmp_path)
    # TensorFlow writes the LayerNorm as x * (gamma * rsqrt(var)) + (beta - mean * ...): no constant Mul
    # to mistake; the converter folds the BN into its FULLY_CONNECTED itself, the GraphDef keeps it
    expected = [("folded", "bn", "MatMul")] if fmt == "pb" else []
    assert [(d.status, d.form, d.op) for d in result.decisions] == expected
    assert (result.bn_before, result.bn_after) == (len(expected), 0)


def test_a_layernorm_is_no_bn_in_tflite_as_onnx2tf_writes_it(tmp_path):
    """openWakeWord's .tflite: FULLY_CONNECTED, MEAN, SUB, MUL, MEAN, ADD, RSQRT, MUL, then MUL(gamma)
    and ADD(beta) of one value per feature: the tail of a LayerNorm, not a BN."""
    from ai_edge_litert import schema_py_generated as schema

    from tests.tflite_support import Net, _options, binary

    rng = np.random.default_rng(5)
    net = Net()
    x = net.input("x", [1, 12])
    x = net.op("FULLY_CONNECTED", [x, net.const("w", rng.normal(0, 0.5, (8, 12)).astype(np.float32)),
                                   net.const("b", rng.normal(0, 0.1, 8).astype(np.float32))], [1, 8],
               _options(schema.FullyConnectedOptionsT))
    axis = net.const("axis", np.array([-1], np.int32))
    mean = net.op("MEAN", [x, axis], [1, 1], _options(schema.ReducerOptionsT, keepDims=True))
    centred = net.op("SUB", [x, mean], [1, 8], _options(schema.SubOptionsT))
    var = net.op("MEAN", [net.op("MUL", [centred, centred], [1, 8], _options(schema.MulOptionsT)), axis], [1, 1],
                 _options(schema.ReducerOptionsT, keepDims=True))
    inv = net.op("RSQRT", [binary(net, "ADD", var, np.float32(1e-5))], [1, 1])
    normed = net.op("MUL", [centred, inv], [1, 8], _options(schema.MulOptionsT))
    out = binary(net, "ADD", binary(net, "MUL", normed, rng.normal(1, 0.2, 8)), rng.normal(0, 0.2, 8))
    path = tmp_path / "wakeword.tflite"
    path.write_bytes(net.build(net.op("RELU", [out], [1, 8])))
    result = _folded(path, tmp_path)
    assert result.decisions == [] and result.bn_before == 0


def test_a_scalar_mul_named_like_a_bn_is_no_bn(tmp_path):
    """A scalar Mul -> Add named "batch_norm" after a 4-channel Conv: names alone do not make a BN when
    the shape does not fit (one value for four channels): it is another affine map, and folds as one."""
    g = Graph(seed=3)
    x = g.conv(g.input("x", [1, 3, 5, 5]), 3, 4, 1, "conv")
    x = g.node("Mul", [x, g.const("batch_norm_0.w", np.float32(1.7))], "batch_norm_0.mul")
    out = g.node("Add", [x, g.const("batch_norm_0.b", np.float32(-0.3))], "batch_norm_0.add")
    result = _folded(_onnx_file(tmp_path, g, out), tmp_path)
    assert [(d.status, d.form) for d in result.decisions] == [("folded", "affine")]
    assert (result.bn_before, result.affine_before, result.affine_after) == (0, 1, 0)


@pytest.mark.parametrize("before", ["relu", "pool", "gate", "named"])
def test_a_bn_in_decomposed_form_is_seen_wherever_it_sits(tmp_path, before):
    """A per-channel Mul then Add is a BN after a ReLU, a global pooling (a reduction that normalizes
    nothing), a squeeze-and-excitation gate (a product of two computed tensors whose mean lies behind a
    layer); a lone per-channel Mul named like a BN (a BN without centre) is one too. None follows a
    layer, so each is listed, counted, and left with its reason."""
    g = Graph(seed=4)
    x = g.conv(g.input("x", [1, 3, 5, 5]), 3, 4, 3, "conv", pad=1)
    if before == "relu" or before == "named":
        x = g.node("Relu", [x], "relu")
    elif before == "pool":
        x = g.node("GlobalAveragePool", [x], "pool")
    else:
        gate = g.node("Sigmoid", [g.conv(g.node("GlobalAveragePool", [x], "squeeze"), 4, 4, 1, "excite")], "gate")
        x = g.node("Mul", [x, gate], "scale")
    scale, shift = (g.rng.uniform(0.5, 2, (1, 4, 1, 1)).astype(np.float32) for _ in range(2))
    x = g.node("Mul", [x, g.const("m", scale)], "bn.mul" if before == "named" else "mul")
    out = x if before == "named" else g.node("Add", [x, g.const("a", shift)], "add")
    result = _folded(_onnx_file(tmp_path, g, out), tmp_path)
    assert [(d.status, d.form) for d in result.decisions] == [("skipped", "bn")]
    assert result.bn_before == result.bn_after == 1
