"""The GraphDef frontend: every rule folds or refuses, checked against float64 NumPy references."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.framework import dtypes, tensor_util  # noqa: E402
from tensorflow.python.tools import optimize_for_inference_lib  # noqa: E402

from fold.core.errors import FoldError  # noqa: E402
from fold.engine.pipeline import fold, verify, verify_models  # noqa: E402
from fold.frontends.graphdef.io import (  # noqa: E402
    graph_def_from_function, graph_def_from_keras, graph_model, io_names, read_graph_def,
)
from foldscope_app.examples.seed import graph_def as seed_graph_def  # noqa: E402
from tests.helpers import GRAPHDEF, assert_folds, assert_skipped  # noqa: E402
from tests.seed_note import EXAMPLE_2, X  # noqa: E402

v1 = tf.compat.v1
EPS = 1e-3


# -- float64 NumPy references (share no code with fold/) ------------------------------------

def np_conv2d(x, w, stride=1, padding="VALID"):
    """NHWC x, HWIO w."""
    n, h, wd, _ = x.shape
    kh, kw, _, co = w.shape
    if padding == "SAME":
        oh, ow = -(-h // stride), -(-wd // stride)
        ph, pw = max((oh - 1) * stride + kh - h, 0), max((ow - 1) * stride + kw - wd, 0)
    else:
        oh, ow, ph, pw = (h - kh) // stride + 1, (wd - kw) // stride + 1, 0, 0
    xp = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    out = np.zeros((n, oh, ow, co))
    for i in range(kh):
        for j in range(kw):
            out += xp[:, i:i + (oh - 1) * stride + 1:stride, j:j + (ow - 1) * stride + 1:stride, :] @ w[i, j]
    return out


def np_conv2d_transpose(x, w, out_hw, stride=1):
    """NHWC x, HWOI w: scatter every input pixel, then crop TensorFlow's padding."""
    n, h, wd, _ = x.shape
    kh, kw, co, _ = w.shape
    full = np.zeros((n, (h - 1) * stride + kh, (wd - 1) * stride + kw, co))
    for i in range(kh):
        for j in range(kw):
            full[:, i:i + (h - 1) * stride + 1:stride, j:j + (wd - 1) * stride + 1:stride, :] += x @ w[i, j].T
    top, left = (full.shape[1] - out_hw[0]) // 2, (full.shape[2] - out_hw[1]) // 2
    return full[:, top:top + out_hw[0], left:left + out_hw[1], :]


def np_depthwise(x, w, stride=1, padding="VALID"):
    kh, kw, ci, m = w.shape
    full = np.zeros((kh, kw, ci, ci * m))
    for c in range(ci):
        full[:, :, c, c * m:(c + 1) * m] = w[:, :, c, :]
    return np_conv2d(x, full, stride, padding)


def np_bn(y, p, axis=-1):
    shape = [1] * y.ndim
    shape[axis] = -1
    g, b, m, v = (np.asarray(p[k], np.float64).reshape(shape) for k in ("gamma", "beta", "mean", "var"))
    return (y - m) / np.sqrt(v + p.get("eps", EPS)) * g + b


# -- graph builders ----------------------------------------------------------------------------

def build(body):
    """GraphDef of the ops ``body(rng)`` creates in a fresh v1 graph; also returns body's result."""
    graph = tf.Graph()
    with graph.as_default():
        extra = body(np.random.default_rng(0))
    return graph.as_graph_def(), extra


def bn_params(rng, c):
    return {"gamma": rng.uniform(0.5, 2, c), "beta": rng.normal(0, 1, c), "mean": rng.normal(0, 1, c),
            "var": rng.uniform(0.1, 2, c)}


def fused_bn(y, p, name="bn", data_format="NHWC", is_training=False):
    consts = [v1.constant(p[k], tf.float32) for k in ("gamma", "beta", "mean", "var")]
    out, _, _ = v1.nn.fused_batch_norm(y, *consts[:2], mean=consts[2], variance=consts[3], epsilon=EPS,
                                       data_format=data_format, is_training=is_training, name=name)
    return out


def const(value):
    return v1.constant(np.asarray(value, np.float32))


def ops_of(graph_def):
    return [n.op for n in graph_def.node]


def node(graph_def, name):
    return next(n for n in graph_def.node if n.name == name)


def value_of(graph_def, name):
    return tensor_util.MakeNdarray(node(graph_def, name).attr["value"].tensor)


def gm(graph_def, outputs=None):
    """The GraphDef frontend's model: the graph with its inputs (found) and outputs (found or given)."""
    return graph_model(graph_def, "graph", outputs=outputs)


def run_graph_def(graph_def, feeds, outputs):
    """Run a GraphDef in a fresh session (independent of the frontend's runner)."""
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    with v1.Session(graph=graph) as sess:
        return [np.asarray(v) for v in sess.run(list(outputs), feed_dict=feeds)]


def folds(graph_def, expect_folded, reference=None, feeds=None, outputs=None, tol=2e-5):
    """``assert_folds`` on a GraphDef; ``reference`` is the float64 output for ``feeds`` (one input)."""
    model = gm(graph_def, outputs)
    before = graph_def.SerializeToString(deterministic=True)
    given = None if reference is None else ([feeds[model.inputs[0]]], [reference])
    result = assert_folds(GRAPHDEF, model, expect_folded, reference=given, samples=2, rtol=tol)
    assert graph_def.SerializeToString(deterministic=True) == before
    return result


# -- the seed ----------------------------------------------------------------------------------

def test_seed_graph_folds_to_a_biasadd_with_the_bn_name():
    gd = seed_graph_def()
    result = folds(gd, 1)
    folded = result.folded.graph_def
    assert "FusedBatchNormV3" not in ops_of(folded)
    assert node(folded, "FusedBatchNormV3").op == "BiasAdd"
    assert result.decisions[0].op == "Conv2DBackpropInput"
    tconv = np_conv2d_transpose(X.astype(np.float64), np.ones((3, 3, 1, 1)), (4, 4))
    p = {k: v if k == "eps" else [v] for k, v in EXAMPLE_2.items()}  # the note's second listing
    got = run_graph_def(folded, {"Hole:0": X}, ["FusedBatchNormV3:0"])[0]
    assert np.max(np.abs(got - np_bn(tconv, p))) < 1e-5
    check = verify(result, samples=3, seed=1).verification
    assert check.max_abs_diff < 1e-5 and check.samples == 3  # batch 1, run three times


# -- each rule, positive -----------------------------------------------------------------------

def test_conv2d_stride2_same_with_biasadd_in_ne_out():
    x = np.random.default_rng(5).normal(size=(2, 7, 7, 3))

    def body(rng):
        w, b, p = rng.normal(size=(3, 3, 3, 5)), rng.normal(size=5), bn_params(rng, 5)
        inp = v1.placeholder(tf.float32, (None, 7, 7, 3), name="x")
        y = tf.nn.bias_add(v1.nn.conv2d(inp, const(w), [1, 2, 2, 1], "SAME"), const(b), name="bias")
        fused_bn(y, p)
        return np_bn(np_conv2d(x, w, 2, "SAME") + b, p)

    gd, ref = build(body)
    result = folds(gd, 1, ref, {"x:0": x.astype(np.float32)})
    assert "bias" not in {n.name for n in result.folded.graph_def.node}  # the old bias is absorbed
    assert ops_of(result.folded.graph_def).count("BiasAdd") == 1


def test_tconv_stride2_same_in_ne_out_with_add_bias():
    x = np.random.default_rng(5).normal(size=(2, 4, 4, 3))

    def body(rng):
        w, b, p = rng.normal(size=(3, 3, 5, 3)), rng.normal(size=5), bn_params(rng, 5)
        inp = v1.placeholder(tf.float32, (2, 4, 4, 3), name="x")
        y = v1.nn.conv2d_transpose(inp, const(w), (2, 8, 8, 5), [1, 2, 2, 1], "SAME") + const(b)
        fused_bn(y, p)
        return np_bn(np_conv2d_transpose(x, w, (8, 8), 2) + b, p)

    gd, ref = build(body)
    folds(gd, 1, ref, {"x:0": x.astype(np.float32)})


def test_depthwise_multiplier_2():
    x = np.random.default_rng(5).normal(size=(1, 6, 6, 3))

    def body(rng):
        w, p = rng.normal(size=(3, 3, 3, 2)), bn_params(rng, 6)
        inp = v1.placeholder(tf.float32, (None, 6, 6, 3), name="x")
        fused_bn(v1.nn.depthwise_conv2d(inp, const(w), [1, 1, 1, 1], "VALID"), p)
        return np_bn(np_depthwise(x, w), p)

    gd, ref = build(body)
    result = folds(gd, 1, ref, {"x:0": x.astype(np.float32)})
    assert result.decisions[0].family == "depthwise"


@pytest.mark.parametrize("transpose_b", [False, True])
def test_matmul_then_decomposed_bn(transpose_b):
    x = np.random.default_rng(5).normal(size=(4, 3))

    def body(rng):
        w, p = rng.normal(size=(3, 5)), bn_params(rng, 5)
        inp = v1.placeholder(tf.float32, (None, 3), name="x")
        y = tf.matmul(inp, const(w.T if transpose_b else w), transpose_b=transpose_b)
        s = p["gamma"] / np.sqrt(p["var"] + EPS)
        tf.add(y * const(s), const(p["beta"] - p["mean"] * s), name="out")
        return np_bn(x @ w, p)

    gd, ref = build(body)
    result = folds(gd, 1, ref, {"x:0": x.astype(np.float32)})
    folded = result.folded.graph_def
    assert node(folded, "out").op == "BiasAdd" and "Mul" not in ops_of(folded)


def test_conv2d_then_mul_add_with_scalar_and_broadcast_constants():
    x = np.random.default_rng(5).normal(size=(1, 5, 5, 2))

    def body(rng):
        w, b = rng.normal(size=(3, 3, 2, 4)), rng.normal(size=4)
        inp = v1.placeholder(tf.float32, (None, 5, 5, 2), name="x")
        y = tf.nn.bias_add(v1.nn.conv2d(inp, const(w), 1, "VALID"), const(b))
        tf.add(y * const(0.5), const(b.reshape(1, 1, 1, 4)), name="out")
        return (np_conv2d(x, w) + b) * 0.5 + b

    gd, ref = build(body)
    folds(gd, 1, ref, {"x:0": x.astype(np.float32)})


def test_keras_model_traced_to_ops_folds_every_bn():
    import keras

    inp = keras.Input((8, 8, 3))
    y = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3, use_bias=False)(inp))
    y = keras.layers.BatchNormalization()(keras.layers.Conv2DTranspose(5, 3, strides=2, padding="same")(y))
    y = keras.layers.BatchNormalization()(keras.layers.Dense(6)(keras.layers.Flatten()(y)))
    model = keras.Model(inp, y)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2, w.shape) for w in layer.get_weights()])
    gd = graph_def_from_keras(model)
    result = folds(gd, 3)
    assert "Rsqrt" not in ops_of(result.folded.graph_def)  # the BN's constant sub-graphs are dropped
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    got = run_graph_def(result.folded.graph_def, {io_names(gd)[0][0]: x}, io_names(gd)[1])[0]
    np.testing.assert_allclose(got, model(x, training=False).numpy(), atol=1e-4)
    roles = [r for _, r in result.graph_before.nodes(data="role")]
    assert roles.count("linear") == 3
    assert sum(r == "bn" for _, r in result.graph_before.nodes(data="role")) == 6  # 3 x (Mul, Add)


def test_tf_function_is_frozen_and_folds():
    w = tf.Variable(np.random.default_rng(0).normal(size=(3, 3, 2, 4)).astype(np.float32))
    p = {k: tf.constant(v.astype(np.float32)) for k, v in bn_params(np.random.default_rng(1), 4).items()}

    @tf.function
    def f(x):
        y = tf.nn.conv2d(x, w, 1, "SAME")
        return tf.compat.v1.nn.fused_batch_norm(y, p["gamma"], p["beta"], p["mean"], p["var"],
                                                epsilon=EPS, is_training=False)[0]

    gd = graph_def_from_function(f, tf.TensorSpec((None, 6, 6, 2), tf.float32))
    folds(gd, 1)


def test_several_folds_in_one_graph():
    x = np.random.default_rng(5).normal(size=(1, 6, 6, 2))

    def body(rng):
        w1, w2, w3 = rng.normal(size=(3, 3, 2, 3)), rng.normal(size=(3, 3, 4, 3)), rng.normal(size=(3, 3, 4, 2))
        p1, p2, p3 = bn_params(rng, 3), bn_params(rng, 4), bn_params(rng, 8)
        inp = v1.placeholder(tf.float32, (1, 6, 6, 2), name="x")
        y = tf.nn.relu(fused_bn(v1.nn.conv2d(inp, const(w1), 1, "SAME"), p1, "bn1"))
        y = tf.nn.relu(fused_bn(v1.nn.conv2d_transpose(y, const(w2), (1, 12, 12, 4), [1, 2, 2, 1], "SAME"), p2, "bn2"))
        fused_bn(v1.nn.depthwise_conv2d(y, const(w3), [1, 1, 1, 1], "VALID"), p3, "bn3")
        r = np.maximum(np_bn(np_conv2d(x, w1, 1, "SAME"), p1), 0)
        r = np.maximum(np_bn(np_conv2d_transpose(r, w2, (12, 12), 2), p2), 0)
        return np_bn(np_depthwise(r, w3), p3)

    gd, ref = build(body)
    result = folds(gd, 3, ref, {"x:0": x.astype(np.float32)})
    assert result.bn_before == 3 and result.bn_after == 0


# -- NCHW --------------------------------------------------------------------------------------
# TensorFlow's CPU kernels cannot run an NCHW Conv2D, so the NCHW fold is checked by its
# constants: they must equal the float64 NumPy fold and the constants of the NHWC twin,
# whose graph does run and verify.

def _conv_bn(data_format, bn_format=None, hw=6):
    def body(rng):
        w, p = rng.normal(size=(3, 3, 3, 5)), bn_params(rng, 5)
        shape = (1, 3, hw, hw) if data_format == "NCHW" else (1, hw, hw, 3)
        inp = v1.placeholder(tf.float32, shape, name="x")
        y = v1.nn.conv2d(inp, const(w), 1, "VALID", data_format=data_format, name="conv")
        fused_bn(y, p, data_format=bn_format or data_format)
        return w, p
    return build(body)


def test_nchw_conv2d_folds_same_constants_as_nhwc():
    (nchw, (w, p)), (nhwc, _) = _conv_bn("NCHW"), _conv_bn("NHWC")
    result = fold(GRAPHDEF, gm(nchw, outputs=["bn"]))
    a, b = result.folded.graph_def, folds(nhwc, 1).folded.graph_def
    assert [d.status for d in result.decisions] == ["folded"]
    assert node(a, "bn").attr["data_format"].s == b"NCHW"
    s = p["gamma"] / np.sqrt(p["var"] + EPS)
    filter_name = node(a, "conv").input[1]
    np.testing.assert_allclose(value_of(a, filter_name), w * s, rtol=1e-6)
    np.testing.assert_allclose(value_of(a, "bn/folded_bias"), p["beta"] - p["mean"] * s, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(value_of(a, filter_name), value_of(b, filter_name))


def test_channel_axis_nchw_conv_with_nhwc_bn_NEG():
    gd, _ = _conv_bn("NCHW", bn_format="NHWC", hw=7)  # output (1, 5, 5, 5): the BN's last axis is W
    # TensorFlow's CPU kernels cannot run NCHW convolutions: no output check.
    assert_skipped(GRAPHDEF, gm(gd, outputs=["bn"]), "channel-axis", check_outputs=False)


def test_nchw_mul_add_needs_constants_along_axis_1():
    def graph(shape):
        def body(rng):
            inp = v1.placeholder(tf.float32, (1, 3, 4, 4), name="x")
            y = v1.nn.conv2d(inp, const(rng.normal(size=(1, 1, 3, 4))), 1, "VALID", data_format="NCHW")
            tf.add(y * const(rng.uniform(1, 2, shape)), const(np.ones(shape)), name="out")
        return build(body)[0]

    result = fold(GRAPHDEF, gm(graph((4, 1, 1)), outputs=["out"]))
    assert [d.status for d in result.decisions] == ["folded"]
    assert node(result.folded.graph_def, "out").attr["data_format"].s == b"NCHW"
    along_w = fold(GRAPHDEF, gm(graph((4,)), outputs=["out"]))  # constants along W: no BN, no candidate
    assert along_w.decisions == [] and along_w.bn_before == 0


# -- each rule, negative -----------------------------------------------------------------------

def _conv_then(bn_body):
    """A GraphDef model: placeholder x (1, 4, 4, 2) -> 1x1 Conv2D to 3 channels -> ``bn_body(y, rng)``."""
    def body(rng):
        inp = v1.placeholder(tf.float32, (1, 4, 4, 2), name="x")
        bn_body(v1.nn.conv2d(inp, const(rng.normal(size=(1, 1, 2, 3))), 1, "VALID", name="conv"), rng)
    return gm(build(body)[0])


def test_inference_mode_bn_in_training_mode_NEG():
    model = _conv_then(lambda y, rng: v1.nn.fused_batch_norm(y, const(np.ones(3)), const(np.zeros(3)), epsilon=EPS,
                                                             is_training=True))
    assert_skipped(GRAPHDEF, model, "inference-mode")


def test_constant_weights_filter_from_a_placeholder_NEG():
    def body(rng):
        inp = v1.placeholder(tf.float32, (1, 4, 4, 2), name="x")
        w = v1.placeholder(tf.float32, (1, 1, 2, 3), name="w")
        fused_bn(v1.nn.conv2d(inp, w, 1, "VALID"), bn_params(rng, 3))
    # the filter placeholder has no batch axis for the sample recipe: no output check
    assert_skipped(GRAPHDEF, gm(build(body)[0]), "constant-weights", "not a constant", check_outputs=False)


def test_unshared_weights_filter_read_by_two_convs_NEG():
    def body(rng):
        inp = v1.placeholder(tf.float32, (1, 4, 4, 2), name="x")
        w = const(rng.normal(size=(1, 1, 2, 2)))
        fused_bn(v1.nn.conv2d(inp, w, 1, "VALID"), bn_params(rng, 2))
        v1.nn.conv2d(inp, w, 1, "VALID", name="other")
    assert_skipped(GRAPHDEF, gm(build(body)[0]), "unshared-weights", "'other'")


def test_single_consumer_conv_output_used_twice_NEG():
    model = _conv_then(lambda y, rng: tf.nn.relu(fused_bn(y, bn_params(rng, 3)) + y))
    assert_skipped(GRAPHDEF, model, "single-consumer")


def test_single_consumer_fetched_conv_output_counts_as_a_use_NEG():
    gd, _ = _conv_bn("NHWC")
    assert_skipped(GRAPHDEF, gm(gd, outputs=["bn", "conv"]), "single-consumer", "'conv'")


def test_single_use_chain_bias_add_read_elsewhere_NEG():
    def bias_then_bn(y, rng):
        y = tf.nn.bias_add(y, const(np.ones(3)))
        tf.nn.relu(fused_bn(y, bn_params(rng, 3)) + y)
    assert_skipped(GRAPHDEF, _conv_then(bias_then_bn), "single-use-chain")


def test_single_use_chain_bn_side_output_read_NEG():
    def bn_with_side_output(y, rng):
        c = [const(v) for v in (np.ones(3), np.zeros(3), np.zeros(3), np.ones(3))]
        out, mean, _ = v1.nn.fused_batch_norm(y, c[0], c[1], mean=c[2], variance=c[3], is_training=False)
        tf.identity(mean, name="mean_out")
        tf.identity(out, name="out")
    assert_skipped(GRAPHDEF, _conv_then(bn_with_side_output), "single-use-chain", "side output")


def test_supported_kind_relu_between_conv_and_bn_NEG():
    decision = assert_skipped(GRAPHDEF, _conv_then(lambda y, rng: fused_bn(tf.nn.relu(y), bn_params(rng, 3))),
                              "supported-kind", "Relu")
    assert decision.op == "Relu"


def test_supported_kind_bn_on_a_placeholder_NEG():
    def body(rng):
        fused_bn(v1.placeholder(tf.float32, (1, 4, 4, 3), name="x"), bn_params(rng, 3))
    assert_skipped(GRAPHDEF, gm(build(body)[0]), "supported-kind", "model input")


def test_finite_parameters_nan_variance_NEG():
    model = _conv_then(lambda y, rng: fused_bn(y, {**bn_params(rng, 3), "var": np.array([1.0, np.nan, 1.0])}))
    assert_skipped(GRAPHDEF, model, "finite-parameters", "non-finite variance")


def test_finite_weights_nan_in_the_filter_NEG():
    def body(rng):
        inp = v1.placeholder(tf.float32, (1, 4, 4, 2), name="x")
        w = rng.normal(size=(1, 1, 2, 3))
        w[0, 0, 1, 2] = np.nan
        fused_bn(v1.nn.conv2d(inp, const(w), 1, "VALID"), bn_params(rng, 3))
    assert_skipped(GRAPHDEF, gm(build(body)[0]), "finite-weights", "non-finite kernel")


def test_fits_dtype_half_precision_overflow_NEG():
    def body(rng):
        inp = v1.placeholder(tf.float16, (1, 4, 4, 2), name="x")
        y = v1.nn.conv2d(inp, tf.constant(np.full((1, 1, 2, 3), 2.0), tf.float16), 1, "VALID")
        s = tf.constant(np.array([1.0, 5e4, 1.0]), tf.float16)  # 2 * 5e4 is beyond float16's 65504
        tf.add(y * s, tf.constant(np.zeros(3), tf.float16), name="out")
    assert_skipped(GRAPHDEF, gm(build(body)[0]), "fits-dtype", "float16")


def test_constant_weights_statistics_from_a_placeholder_NEG():
    def body(rng):
        inp = v1.placeholder(tf.float32, (1, 4, 4, 2), name="x")
        mean = v1.placeholder(tf.float32, (3,), name="mean")
        y = v1.nn.conv2d(inp, const(rng.normal(size=(1, 1, 2, 3))), 1, "VALID")
        v1.nn.fused_batch_norm(y, const(np.ones(3)), const(np.zeros(3)), mean=mean, variance=const(np.ones(3)),
                               epsilon=EPS, is_training=False)
    # the statistics placeholder has no batch axis for the sample recipe: no output check
    assert_skipped(GRAPHDEF, gm(build(body)[0]), "constant-weights", "mean", check_outputs=False)


def test_a_skipped_graph_is_written_back_byte_for_byte():
    gd = build(lambda rng: fused_bn(tf.nn.relu(v1.nn.conv2d(v1.placeholder(tf.float32, (1, 4, 4, 2), name="x"),
                                                            const(np.ones((1, 1, 2, 3))), 1, "VALID")),
                                    bn_params(rng, 3)))[0]
    folded = fold(GRAPHDEF, gm(gd)).folded.graph_def
    assert folded.SerializeToString(deterministic=True) == gd.SerializeToString(deterministic=True)


def test_lone_mul_after_a_conv_folds_and_counts_as_an_affine_map_not_a_bn():
    model = _conv_then(lambda y, rng: y * const(np.array([1.0, 2.0, 3.0])))
    result = assert_folds(GRAPHDEF, model, 1)
    assert [d.form for d in result.decisions] == ["affine"]
    assert (result.bn_before, result.affine_before, result.affine_after) == (0, 1, 0)


# -- TensorFlow's optimize_for_inference -------------------------------------------------------

def _ofi(gd, inputs, outputs):
    return optimize_for_inference_lib.optimize_for_inference(gd, inputs, outputs, dtypes.float32.as_datatype_enum)


def test_same_numbers_as_optimize_for_inference_on_conv2d():
    gd, _ = _conv_bn("NHWC")
    theirs, ours = _ofi(gd, ["x"], ["bn"]), fold(GRAPHDEF, gm(gd)).folded.graph_def
    assert "FusedBatchNormV3" not in ops_of(theirs) and "FusedBatchNormV3" not in ops_of(ours)
    x = {"x:0": np.random.default_rng(3).normal(size=(1, 6, 6, 3)).astype(np.float32)}
    a, b = run_graph_def(theirs, x, ["bn:0"])[0], run_graph_def(ours, x, ["bn:0"])[0]
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(value_of(theirs, node(theirs, "conv").input[1]),
                               value_of(ours, node(ours, "conv").input[1]), rtol=1e-6)


def test_tconv_that_optimize_for_inference_leaves_unfolded():
    gd = seed_graph_def()
    theirs = _ofi(gd, ["Hole"], ["FusedBatchNormV3"])
    assert "FusedBatchNormV3" in ops_of(theirs)
    ours = folds(gd, 1).folded.graph_def
    assert "FusedBatchNormV3" not in ops_of(ours)


# -- files, names and the op graph -------------------------------------------------------------

def test_pb_round_trip(tmp_path):
    gd = seed_graph_def()
    path = tmp_path / "seed.pb"
    result = fold(GRAPHDEF, gm(gd))
    GRAPHDEF.write(result.folded, path)
    back = GRAPHDEF.load(path)
    assert back.inputs == ["Hole:0"] and back.outputs == ["FusedBatchNormV3:0"]
    assert verify_models(GRAPHDEF, gm(gd), back).verification.max_abs_diff < 1e-5


@pytest.mark.parametrize("content", [b"", b"\xff\xfe not a protobuf \x00" * 3, b"\x0a\x03\x0a\x01x"])
def test_bad_pb_is_one_sentence(tmp_path, content):
    path = tmp_path / "bad.pb"
    path.write_bytes(content)
    with pytest.raises(FoldError, match="bad.pb") as info:
        read_graph_def(path)
    assert "\n" not in str(info.value)


def test_missing_pb(tmp_path):
    with pytest.raises(FoldError, match="Cannot read 'nope.pb'"):
        read_graph_def(tmp_path / "nope.pb")


def test_io_names_found_or_asked_for():
    assert io_names(seed_graph_def()) == (["Hole:0"], ["FusedBatchNormV3:0"])
    no_input, _ = build(lambda rng: fused_bn(v1.nn.conv2d(const(np.ones((1, 2, 2, 1))), const(np.ones((1, 1, 1, 1))),
                                                          1, "VALID"), bn_params(rng, 1)))
    with pytest.raises(FoldError, match="--inputs"):
        io_names(no_input)
    with pytest.raises(FoldError, match="'nope:0'"):
        io_names(seed_graph_def(), outputs=["nope"])


def test_op_graph_attaches_constants_unless_asked():
    gd = seed_graph_def()
    g = GRAPHDEF.graph(gm(gd))
    assert set(g.nodes) == {"Hole", "conv2d_transpose", "FusedBatchNormV3"}
    assert g.nodes["conv2d_transpose"]["role"] == "linear" and g.nodes["FusedBatchNormV3"]["role"] == "bn"
    assert g.nodes["conv2d_transpose"]["weights"]["Const"] == (3, 3, 1, 1)
    assert g.edges["conv2d_transpose", "FusedBatchNormV3"]["shape"] == (1, 4, 4, 1)
    assert g.graph["inputs"] == ["Hole"] and g.graph["outputs"] == ["FusedBatchNormV3"]
    shown = GRAPHDEF.graph(gm(gd), show_consts=True)
    assert shown.nodes["Const"]["op"] == "Const" and ("Const", "conv2d_transpose") in shown.edges
