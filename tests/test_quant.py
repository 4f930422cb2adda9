"""The quantization view: int8 weight math checked by hand, what one tiny BN variance does to a
folded kernel, cross-layer equalization, end-to-end figures against an independent float64
computation; Keras and ONNX, through the library, the command line and the figures."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import onnx
import pytest

from fold.core.affine import constant_response, input_rows, scale_kernel
from fold.core.kinds import KERAS_KINDS, ONNX_KINDS
from fold.core.quant import (
    HIGH_BIAS_SIGMAS, QMAX, SQNR_CAP, absorb_high_bias, channel_peaks, channel_sqnr, equalize, output_sqnr, quantize,
    range_ratio, sqnr,
)
from fold.core.verification import sample_inputs
from fold.engine.pipeline import fold, run, verify
from fold.frontends.onnx.io import prepare
from fold.tools.quantization import cle_pairs, quant_report
from foldscope_app.examples.onnx_zoo import Graph
from tests.helpers import GRAPHDEF, KERAS, ONNX, TFLITE, randomize_bn, run_cli

ROOT = Path(__file__).resolve().parents[1]
L = keras.layers
DENSE = KERAS_KINDS["Dense"]


# -- the math, by hand ---------------------------------------------------------------------------

# A Dense kernel (in 2, out 2): output channel 0 reads [1.0, 0.25], channel 1 reads [0.1, -0.3].
TINY = np.array([[1.0, 0.1], [0.25, -0.3]])


def test_per_tensor_int8_of_a_tiny_kernel_by_hand():
    # One scale, 1/127: 1.0 -> 127 exactly, 0.25 -> 31.75 -> 32, 0.1 -> 12.7 -> 13, -0.3 -> -38.1 -> -38.
    q = quantize(TINY, DENSE)
    np.testing.assert_allclose(q * QMAX, [[127, 13], [32, -38]], atol=1e-9)
    # Channel 0: signal 1 + 0.0625, noise (0.25/127)^2. Channel 1: signal 0.01 + 0.09, noise (0.3^2 + 0.1^2)/127^2.
    expected = [10 * np.log10(1.0625 / (0.0625 / 127**2)), 10 * np.log10(0.1 / (0.1 / 127**2))]
    np.testing.assert_allclose(channel_sqnr(TINY, q, DENSE), expected, rtol=1e-9)
    assert expected == pytest.approx([54.381, 42.076], abs=1e-3)
    figure = sqnr(TINY, q, DENSE)
    assert figure.mean == pytest.approx(np.mean(expected)) and figure.worst == pytest.approx(expected[1])
    assert figure.worst_channel == 1


def test_per_channel_int8_of_a_tiny_kernel_by_hand():
    # Channel 1's own scale, 0.3/127: -0.3 -> -127 exactly, 0.1 -> 42.33 -> 42, an error of 0.1/127.
    q = quantize(TINY, DENSE, per_channel=True)
    np.testing.assert_allclose(q[:, 1], [42 * 0.3 / 127, -0.3], rtol=1e-12)
    np.testing.assert_allclose(channel_sqnr(TINY, q, DENSE)[1], 10 * np.log10(0.1 / (0.01 / 127**2)), rtol=1e-9)
    assert range_ratio(TINY, DENSE) == pytest.approx(1.0 / 0.3)


def test_exact_and_empty_channels():
    w = np.array([[1.0, 0.0], [-1.0, 0.0]])  # channel 0 is two int8 levels exactly, channel 1 is all zeros
    per_channel = channel_sqnr(w, quantize(w, DENSE), DENSE)
    assert per_channel[0] == SQNR_CAP and np.isnan(per_channel[1])
    assert sqnr(w, quantize(w, DENSE), DENSE).mean == SQNR_CAP  # the empty channel is left out of the mean
    assert range_ratio(np.zeros((2, 3)), DENSE) is None
    assert output_sqnr([np.ones(4)], [np.ones(4)]) == SQNR_CAP
    assert output_sqnr([np.ones(4)], [np.zeros(4)]) == pytest.approx(0.0)


@pytest.mark.parametrize("frontend_kind, shape, groups", [
    (KERAS_KINDS["Conv2D"], (3, 3, 4, 6), 1),
    (KERAS_KINDS["Conv2DTranspose"], (3, 3, 6, 4), 1),
    (KERAS_KINDS["DepthwiseConv2D"], (3, 3, 3, 2), 1),
    (ONNX_KINDS["ConvTranspose"], (8, 3, 2, 2), 4),
    (ONNX_KINDS["Gemm/transB"], (6, 5), 1),
])
def test_per_channel_scales_commute_with_folding(frontend_kind, shape, groups):
    """q(W * s) == q(W) * s channel by channel: per-channel int8 loses nothing by folding, along
    every layout's output-channel axes (the axes are right, or this fails)."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=shape)
    channels = channel_peaks(w, frontend_kind, groups).shape[0]
    s = np.exp(rng.normal(0, 3, channels))
    folded = scale_kernel(w, s, frontend_kind, groups)
    expected = scale_kernel(quantize(w, frontend_kind, groups, per_channel=True), s, frontend_kind, groups)
    np.testing.assert_allclose(quantize(folded, frontend_kind, groups, per_channel=True), expected, rtol=1e-9)
    assert not np.allclose(quantize(folded, frontend_kind, groups), expected)  # one scale per tensor does lose


def test_equalize_a_dense_pair_by_hand():
    # Layer 1 (Dense 2 -> 2): output ranges r1 = [4, 1]. Layer 2 (Dense 2 -> 1): input ranges r2 = [1, 4].
    w1, b1 = np.array([[4.0, -1.0], [2.0, 0.5]]), np.array([1.0, 2.0])
    w2 = np.array([[1.0], [-4.0]])
    w1e, b1e, w2e, s = equalize(w1, b1, DENSE, 1, w2, DENSE)
    np.testing.assert_allclose(s, [2.0, 0.5])  # sqrt(r1 * r2) / r2 = [2/1, 2/4]
    np.testing.assert_allclose(w1e, [[2.0, -2.0], [1.0, 1.0]])
    np.testing.assert_allclose(b1e, [0.5, 4.0])
    np.testing.assert_allclose(w2e, [[2.0], [-2.0]])
    np.testing.assert_allclose(channel_peaks(w1e, DENSE), [2, 2])  # both ranges are now sqrt(r1 * r2)
    x = np.random.default_rng(1).normal(size=(5, 2))
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    np.testing.assert_allclose(relu(x @ w1e + b1e) @ w2e, relu(x @ w1 + b1) @ w2, rtol=1e-12)


def test_equalize_grouped_onnx_conv_as_the_second_layer():
    """An ONNX depthwise Conv (group = C_in, W (C_in * M, 1, k, k)) reads input channel i in rows i*M..i*M+M-1."""
    rng = np.random.default_rng(2)
    w1 = rng.normal(size=(3, 2, 1, 1))  # Conv 2 -> 3
    w2 = rng.normal(size=(6, 1, 3, 3))  # depthwise, multiplier 2
    kind = ONNX_KINDS["Conv"]
    rows = input_rows(w2, kind, groups=3)
    np.testing.assert_array_equal(rows[1], w2[2:4, 0].ravel())
    _, _, w2e, s = equalize(w1, None, kind, 1, w2, kind, groups2=3)
    np.testing.assert_allclose(w2e, w2 * np.repeat(s, 2)[:, None, None, None])
    with pytest.raises(ValueError, match="3 output channels but layer 2 reads 1"):
        equalize(w1, None, kind, 1, w2, kind, groups2=1)


@pytest.mark.parametrize("layer, groups", [
    (lambda: L.Conv2D(6, 3, strides=2, padding="same"), 1),
    (lambda: L.DepthwiseConv2D(3, depth_multiplier=2, padding="valid"), 1),
    (lambda: L.Dense(5), 1),
], ids=["conv-stride-2-same", "depthwise-valid", "dense"])
def test_a_constant_input_gives_the_constant_response_away_from_the_borders(layer, groups):
    """Keras runs the layer on an input that is c_i on every element of channel i (4 channels in,
    in != out): an interior element of its output is constant_response + bias."""
    layer = layer()
    c = np.array([0.5, 2.0, -1.0, 3.0])
    x = np.broadcast_to(c, (1, 9, 9, 4) if not isinstance(layer, L.Dense) else (1, 4)).astype(np.float32)
    y = np.asarray(layer(x), dtype=np.float64)
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
    interior = y[0, 2, 2] if y.ndim == 4 else y[0]
    np.testing.assert_allclose(constant_response(kernel, c, KERAS_KINDS[type(layer).__name__], groups) + bias,
                               interior, rtol=1e-5, atol=1e-5)


def test_constant_response_of_a_grouped_onnx_conv_by_hand():
    """ONNX Conv W (C_out, C_in/group, k, k), group 2: output channel o reads input channels
    g(o) * 3 .. g(o) * 3 + 2; a Keras grouped kernel, whose input axis does not say the group, is refused."""
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 3, 2, 2))  # 6 in, 4 out, 2 groups
    c = rng.normal(size=6)
    by_hand = [sum(w[o, j].sum() * c[(o // 2) * 3 + j] for j in range(3)) for o in range(4)]
    np.testing.assert_allclose(constant_response(w, c, ONNX_KINDS["Conv"], groups=2), by_hand, rtol=1e-12)
    with pytest.raises(ValueError, match="grouped"):
        constant_response(rng.normal(size=(3, 3, 2, 6)), np.ones(4), KERAS_KINDS["Conv2D"], groups=2)


def test_high_bias_absorption_of_a_dense_pair_by_hand():
    """c = max(0, beta - 3 gamma): layer 1's bias loses c, layer 2's gains W2 c; where every input of the
    ReLU is above c, relu(h) W2 + b2 is unchanged, and the ReLU's output range shrinks by c."""
    beta, gamma = np.array([10.0, 0.5, 4.0]), np.array([1.0, 1.0, 2.0])
    w2, b2 = np.array([[1.0, -2.0], [0.5, 0.25], [3.0, 1.0]]), np.array([0.1, -0.2])
    b1 = beta.copy()  # a folded layer's bias is its BN's mean output
    b1a, b2a, c = absorb_high_bias(b1, beta, gamma, w2, b2, DENSE)
    assert HIGH_BIAS_SIGMAS == 3.0
    np.testing.assert_allclose(c, [7.0, 0.0, 0.0])
    np.testing.assert_allclose(b1a, [3.0, 0.5, 4.0])
    np.testing.assert_allclose(b2a, b2 + 7.0 * w2[0])
    h = beta + gamma * np.random.default_rng(0).normal(size=(1000, 3))
    h = h[(h >= c).all(axis=1)]
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    np.testing.assert_allclose(relu(h - c) @ w2 + b2a, relu(h) @ w2 + b2, rtol=1e-12)
    assert relu(h - c)[:, 0].max() == pytest.approx(relu(h)[:, 0].max() - 7.0)


# -- a conv with one tiny-variance channel ---------------------------------------------------------

def tiny_variance_keras(variance: float = 1e-4, depthwise: bool = False, seed: int = 0) -> keras.Model:
    """Conv2D (3 -> 6, stride 2, SAME, no bias) -> BN (channel 0's variance tiny) -> ReLU ->
    [DepthwiseConv2D -> BN -> ReLU ->] Conv2D (-> 5, VALID, bias)."""
    rng = np.random.default_rng(seed)
    x = keras.Input((9, 9, 3), name="x")
    bn = L.BatchNormalization(epsilon=1e-6, name="bn")
    y = L.ReLU(name="relu")(bn(L.Conv2D(6, 3, strides=2, padding="same", use_bias=False, name="conv")(x)))
    if depthwise:
        y = L.ReLU(name="dw_relu")(L.BatchNormalization(name="dw_bn")(L.DepthwiseConv2D(3, padding="same",
                                                                                          name="dw")(y)))
    model = keras.Model(x, L.Conv2D(5, 3, padding="valid", name="next")(y), name="tiny_variance")
    for layer in model.layers:
        for w in layer.weights if not isinstance(layer, L.BatchNormalization) else []:
            w.assign(rng.normal(0, 0.5, w.shape))
        if isinstance(layer, L.BatchNormalization):
            var = rng.uniform(0.5, 2, 6)
            var[0] = variance if layer.name == "bn" else var[0]
            layer.set_weights([rng.normal(1, 0.2, 6), rng.normal(0, 0.5, 6), rng.normal(0, 0.5, 6), var])
    return model


def tflite_with_bns(model: keras.Model):
    """``tiny_variance_keras()`` as a TFLite model that keeps its BN as MUL -> ADD(RELU), built op by op
    (TensorFlow's converter folds it): CONV_2D (zero bias) -> MUL -> ADD -> CONV_2D, same weights."""
    from fold.frontends.tflite.io import model_from_bytes
    from tests.tflite_support import ACT, Net, binary, conv_options

    conv, bn, nxt = (model.get_layer(n) for n in ("conv", "bn", "next"))
    gamma, beta, mean, var = (np.asarray(w, dtype=np.float64) for w in bn.get_weights())
    scale = gamma / np.sqrt(var + bn.epsilon)
    net = Net()
    x = net.input("x", [1, 9, 9, 3])
    w1 = np.transpose(conv.kernel.numpy(), (3, 0, 1, 2)).astype(np.float32)
    y = net.op("CONV_2D", [x, net.const("conv_w", w1), net.const("conv_b", np.zeros(6, np.float32))], [1, 5, 5, 6],
               conv_options(2, "SAME"))
    y = binary(net, "ADD", binary(net, "MUL", y, scale), beta - mean * scale, ACT.RELU)
    w2 = np.transpose(nxt.kernel.numpy(), (3, 0, 1, 2)).astype(np.float32)
    out = net.op("CONV_2D", [y, net.const("next_w", w2), net.const("next_b", nxt.bias.numpy().astype(np.float32))],
                 [1, 3, 3, 5], conv_options(1, "VALID"))
    return model_from_bytes(net.build(out), "tiny_variance.tflite")


def tiny_variance_onnx(variance: float = 1e-4) -> onnx.ModelProto:
    """The same story in ONNX, NCHW: Conv (3 -> 6, stride 2, bias) -> BN -> Relu -> depthwise Conv
    (group 6, 6 -> 12, bias) -> BN -> Relu -> Conv 1x1 (12 -> 5)."""
    g = Graph(seed=3)
    x = g.input("x", ["N", 3, 9, 9])
    h = g.conv(x, 3, 6, 3, "conv", stride=2, pad=1, bias=True)
    h = g.node("Relu", [g.bn(h, 6, "bn", var_range=(0.5, 2.0))], "relu")
    h = g.conv(h, 6, 12, 3, "dw", pad=1, group=6, bias=True)
    h = g.node("Relu", [g.bn(h, 12, "dw_bn")], "dw_relu")
    out = g.conv(h, 12, 5, 1, "pw")
    model = g.model([out], "tiny_variance")
    var = next(t for t in model.graph.initializer if t.name == "bn.var")
    values = onnx.numpy_helper.to_array(var).copy()
    values[0] = variance
    var.CopyFrom(onnx.numpy_helper.from_array(values, "bn.var"))
    return model


def assert_the_story(result, report, layer: str) -> None:
    """Per tensor collapses after folding, per channel loses nothing (it is the unfolded kernel's
    own per-channel figure), CLE recovers at least 15 dB, and the equalized model computes what
    the folded one does."""
    (found,) = [q for q in report.layers if q.layer == layer]
    db = {k: v.mean for k, v in found.sqnr.items()}
    assert db["per_tensor_after"] <= db["per_tensor_before"] - 20, db
    w = result.frontend.kernel(result.original, layer)
    unfolded = sqnr(w.kernel, quantize(w.kernel, w.kind, w.groups, per_channel=True), w.kind, w.groups).mean
    assert db["per_channel_after"] == pytest.approx(unfolded, abs=0.05), db
    assert db["per_tensor_after_cle"] >= db["per_tensor_after"] + 15, db
    assert found.range_ratio_after > 100
    assert found.sqnr["per_tensor_after"].worst < 3  # a crushed channel: barely a level or two left
    assert report.equalized_check.max_rel_diff < 1e-5, report.equalized_check


def test_keras_tiny_variance_channel_collapses_per_tensor_and_cle_recovers_it():
    result = fold(KERAS, tiny_variance_keras())
    report = quant_report(result, samples=4)
    assert report.pairs == [("conv", "next")]
    assert_the_story(result, report, "conv")
    out = report.output_sqnr_db
    assert set(out) == {"original_per_tensor", "folded_per_tensor", "folded_per_channel", "folded_cle_per_tensor"}
    assert all(10 < v < 80 for v in out.values()), out


def test_keras_depthwise_in_either_place_of_a_pair():
    result = fold(KERAS, tiny_variance_keras(depthwise=True))
    report = quant_report(result, samples=4)
    assert report.pairs == [("conv", "dw"), ("dw", "next")]
    assert_the_story(result, report, "conv")
    (dw,) = [q for q in report.layers if q.layer == "dw"]
    assert dw.sqnr["per_tensor_after_cle"] is not None and dw.peaks_cle is not None


def test_onnx_tiny_variance_with_a_depthwise_conv_between():
    result = fold(ONNX, prepare(tiny_variance_onnx(), "tiny.onnx"))
    report = quant_report(result, samples=4)
    assert report.pairs == [("conv", "dw"), ("dw", "pw")]
    assert_the_story(result, report, "conv")
    onnx.checker.check_model(report.equalized.proto, full_check=True)
    assert result.folded.proto.SerializeToString() != report.equalized.proto.SerializeToString()


def test_the_users_models_are_untouched():
    model = tiny_variance_keras()
    result = fold(KERAS, model)
    weights = [w.copy() for w in result.folded.get_weights()]
    originals = [w.copy() for w in model.get_weights()]
    quant_report(result, samples=2)
    for before, after in zip(originals + weights, model.get_weights() + result.folded.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_layers_of_a_nested_model_are_quantized_and_no_model_is_changed():
    inner_in = keras.Input((8, 8, 4))
    inner = keras.Model(inner_in, L.BatchNormalization(name="ibn")(L.Conv2D(4, 3, padding="same", name="iconv")(
        inner_in)), name="block")
    x = keras.Input((8, 8, 3))
    h = L.ReLU()(L.BatchNormalization(name="bn")(L.Conv2D(4, 3, padding="same", name="conv")(x)))
    model = randomize_bn(keras.Model(x, L.Conv2D(2, 1, name="head")(inner(h))))
    originals = [w.copy() for w in model.get_weights()]
    result = fold(KERAS, model)
    folded = [w.copy() for w in result.folded.get_weights()]
    report = quant_report(result, samples=2)
    assert [q.layer for q in report.layers] == ["conv", "block/iconv"]
    assert report.pairs == []  # the nested model is not a linear layer: nothing to equalize with
    assert report.output_sqnr_db["folded_per_tensor"] is not None
    for before, after in zip(originals + folded, model.get_weights() + result.folded.get_weights()):
        np.testing.assert_array_equal(before, after)


# -- end to end, against an independent float64 computation -----------------------------------------

def dense_pair(seed: int = 0) -> keras.Model:
    """Dense (4 -> 6, bias) -> BN (channel 0's variance tiny) -> ReLU -> Dense (6 -> 3, bias)."""
    rng = np.random.default_rng(seed)
    x = keras.Input((4,), name="x")
    bn = L.BatchNormalization(epsilon=1e-3, name="bn")
    model = keras.Model(x, L.Dense(3, name="second")(L.ReLU(name="relu")(bn(L.Dense(6, name="first")(x)))))
    for name in ("first", "second"):
        for w in model.get_layer(name).weights:
            w.assign(rng.normal(0, 0.5, w.shape))
    var = rng.uniform(0.5, 2, 6)
    var[0] = 1e-6
    bn.set_weights([rng.normal(1, 0.2, 6), rng.normal(0, 0.5, 6), rng.normal(0, 0.5, 6), var])
    return model


def _q(w: np.ndarray, per_channel: bool) -> np.ndarray:
    """Symmetric int8 of a (in, out) kernel, written out again: scale max|w| / 127, round, clip."""
    peak = np.abs(w).max(axis=0, keepdims=True) if per_channel else np.abs(w).max()
    scale = peak / 127
    return np.clip(np.round(w / scale), -127, 127) * scale


def _db(reference: np.ndarray, other: np.ndarray) -> float:
    return 10 * np.log10(np.sum(reference**2) / np.sum((reference - other) ** 2))


def test_end_to_end_figures_match_a_float64_computation():
    model = dense_pair()
    result = fold(KERAS, model)
    x = sample_inputs(KERAS.inputs(model), 16, 0)
    report = quant_report(result, verify(result, inputs=x))
    w1, b1 = (v.astype(np.float64) for v in model.get_layer("first").get_weights())
    w2, b2 = (v.astype(np.float64) for v in model.get_layer("second").get_weights())
    gamma, beta, mean, var = (v.astype(np.float64) for v in model.get_layer("bn").get_weights())
    s = gamma / np.sqrt(var + 1e-3)
    t = beta - mean * s
    x64 = x[0].astype(np.float64)

    def net(k1, c1, k2):
        return np.maximum(x64 @ k1 + c1, 0) @ k2 + b2

    reference = net(w1 * s, b1 * s + t, w2)
    np.testing.assert_allclose(run(KERAS, model, x)[0], reference, rtol=1e-4, atol=1e-4)
    # CLE of the pair, written out: r1 per output channel of W1 * s, r2 per input row of W2.
    r1, r2 = np.abs(w1 * s).max(axis=0), np.abs(w2).max(axis=1)
    e = np.sqrt(r1 * r2) / r2
    expected = {
        "original_per_tensor": _db(reference, np.maximum((x64 @ _q(w1, False) + b1) * s + t, 0) @ _q(w2, False) + b2),
        "folded_per_tensor": _db(reference, net(_q(w1 * s, False), b1 * s + t, _q(w2, False))),
        "folded_per_channel": _db(reference, net(_q(w1 * s, True), b1 * s + t, _q(w2, True))),
        "folded_cle_per_tensor": _db(reference, net(_q(w1 * s / e, False), (b1 * s + t) / e,
                                                    _q(w2 * e[:, None], False))),
    }
    for key, value in expected.items():
        assert report.output_sqnr_db[key] == pytest.approx(value, abs=0.05), (key, report.output_sqnr_db)
    # ... and the per-layer figures.
    (layer,) = report.layers
    per_channel = lambda w, q: 10 * np.log10(np.sum(w**2, axis=0) / np.sum((w - q) ** 2, axis=0))  # noqa: E731
    ws = w1 * s
    assert layer.sqnr["per_tensor_before"].mean == pytest.approx(np.mean(per_channel(ws, _q(w1, False) * s)), abs=0.01)
    assert layer.sqnr["per_tensor_after"].mean == pytest.approx(np.mean(per_channel(ws, _q(ws, False))), abs=0.01)
    assert layer.sqnr["per_channel_after"].mean == pytest.approx(np.mean(per_channel(ws, _q(ws, True))), abs=0.01)
    assert layer.sqnr["per_tensor_after_cle"].mean == pytest.approx(
        np.mean(per_channel(ws / e, _q(ws / e, False))), abs=0.01)
    assert layer.range_ratio_after == pytest.approx(r1.max() / r1.min(), rel=1e-5)


# -- where cross-layer equalization does not apply -------------------------------------------------

def _chain(activation, branch: bool = False) -> keras.Model:
    x = keras.Input((6, 6, 3))
    y = L.BatchNormalization(name="bn")(L.Conv2D(4, 3, name="conv")(x))
    y = activation(y) if activation is not None else y
    out = L.Conv2D(2, 1, name="next")(y)
    return keras.Model(x, [out, L.Conv2D(2, 1, name="other")(y)] if branch else out)


@pytest.mark.parametrize("activation, pairs", [
    (None, [("conv", "next")]),
    (lambda y: L.ReLU(name="relu")(y), [("conv", "next")]),
    (lambda y: L.LeakyReLU(0.1, name="leaky")(y), [("conv", "next")]),
    (lambda y: L.ReLU(6.0, name="relu6")(y), []),  # clipped at 6: scaling the input does not scale the output
    (lambda y: L.Activation("sigmoid", name="sigmoid")(y), []),
])
def test_cle_steps_over_positively_homogeneous_activations_only(activation, pairs):
    assert cle_pairs(fold(KERAS, _chain(activation))) == pairs


def test_cle_needs_a_layer_that_alone_reads_the_first():
    assert cle_pairs(fold(KERAS, _chain(None, branch=True))) == []


@pytest.mark.parametrize("fmt", ["graphdef", "tflite"])
def test_op_level_formats_get_end_to_end_figures_and_cle(fmt):
    """A .pb and a .tflite of the tiny-variance model: the same layer figures as the Keras model, and
    (every frontend edits weights) end-to-end figures and an equalized model that computes the same."""
    model = tiny_variance_keras()
    if fmt == "graphdef":
        from fold.frontends.graphdef.io import graph_def_from_keras, graph_model

        result = fold(GRAPHDEF, graph_model(graph_def_from_keras(model), "net"))
    else:
        result = fold(TFLITE, tflite_with_bns(model))
    report = quant_report(result, samples=2)
    keras_figures = quant_report(fold(KERAS, model), samples=2).layers[0].sqnr
    (conv,) = [q for q in report.layers if q.sqnr["per_tensor_after"].mean < 20]
    assert conv.sqnr["per_tensor_after"].mean == pytest.approx(keras_figures["per_tensor_after"].mean, abs=0.01)
    assert report.pairs and report.equalized is not None and report.equalized_check.passed
    assert all(v is not None for v in report.output_sqnr_db.values())
    assert conv.sqnr["per_tensor_after_cle"].mean >= conv.sqnr["per_tensor_after"].mean + 10


# -- the command line ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["keras", "onnx"])
def test_command_line_writes_the_quant_report_and_the_equalized_model(tmp_path, fmt):
    path = tmp_path / f"net.{fmt}"
    if fmt == "keras":
        tiny_variance_keras().save(path)
    else:
        onnx.save(tiny_variance_onnx(), path)
    proc = run_cli(path, "-o", tmp_path / f"out.{fmt}", "--quant-report", tmp_path / "q.json", "--cle")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "equalized model written to" in proc.stdout and "per tensor folded" in proc.stdout
    report = json.loads((tmp_path / "q.json").read_text())
    assert set(report) == {"layers", "output_sqnr_db"}
    figures = {"per_tensor_before", "per_tensor_after", "per_channel_after", "per_tensor_after_cle"}
    for layer in report["layers"]:
        assert set(layer) == {"layer", "bn", "channels", "range_ratio_after", "sqnr_db", "worst_channel_sqnr_db"}
        assert set(layer["sqnr_db"]) == set(layer["worst_channel_sqnr_db"]) == figures
    conv = report["layers"][0]
    assert conv["layer"] == "conv" and conv["channels"] == 6
    assert conv["sqnr_db"]["per_tensor_after"] <= conv["sqnr_db"]["per_tensor_before"] - 20
    assert set(report["output_sqnr_db"]) == {"original_per_tensor", "folded_per_tensor", "folded_per_channel",
                                             "folded_cle_per_tensor"}
    equalized_path = tmp_path / f"out_cle.{fmt}"
    frontend = KERAS if fmt == "keras" else ONNX
    folded, equalized = (frontend.load(p) for p in (tmp_path / f"out.{fmt}", equalized_path))
    inputs = sample_inputs(frontend.inputs(folded), 3, 0)
    (a,), (b,) = run(frontend, folded, inputs), run(frontend, equalized, inputs)
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * np.abs(a).max())
    found = frontend.kernel(equalized, "conv")
    assert range_ratio(found.kernel, found.kind, found.groups) < conv["range_ratio_after"] / 5


def test_command_line_equalizes_a_frozen_graph(tmp_path):
    from fold.frontends.graphdef.io import graph_def_from_keras, read_graph_def

    path = tmp_path / "net.pb"
    path.write_bytes(graph_def_from_keras(tiny_variance_keras()).SerializeToString())
    proc = run_cli(path, "-o", tmp_path / "out.pb", "--cle", "--quant-report", tmp_path / "q.json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "q.json").read_text())
    assert report["layers"] and all(v is not None for v in report["output_sqnr_db"].values())
    assert read_graph_def(tmp_path / "out_cle.pb").node
