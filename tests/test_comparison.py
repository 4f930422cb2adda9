"""The verification engine (fold.engine.comparison) on every format: a correct fold passes with every folded
layer judged at its own scale, and a fold made wrong by 1-3 % in one channel of one layer fails and
names that layer, even where the outputs saturate."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fold.engine.pipeline import fold, verify
from fold.frontends.graphdef.io import graph_def_from_keras, graph_model
from fold.frontends.onnx.io import prepare
from fold.frontends.tflite.io import model_from_bytes
from fold.outputs.report import verification_text
from foldscope_app.examples import onnx_zoo, model_zoo
from tests.helpers import GRAPHDEF, KERAS, ONNX, TFLITE, assert_caught, mutated, randomize_bn, verdict_of
from tests.tflite_support import TConvCase, tconv_bn

L = keras.layers


def _passes(result, samples: int = 4):
    v = verify(result, samples).verification
    assert v.passed, v.to_dict()
    assert {c.layer for c in v.folded_layers} == {d.layer for d in result.folded_pairs}  # every one checked alone
    # each judged on what the original layer received and on a synthetic batch (rule 2)
    assert all(c.mode == "own and synthetic inputs" and c.margin < 0.5 for c in v.folded_layers), v.folded_layers
    assert not v.output_only
    return v


# -- Keras ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def unet():
    return fold(KERAS, model_zoo.unet())


def test_keras_every_folded_layer_is_checked_on_its_own_inputs(unet):
    v = _passes(unet)
    tconv = next(c for c in v.folded_layers if c.layer == "up0_tconv")
    assert tconv.bn == "up0_tbn" and tconv.tensor == "up0_tbn" and tconv.exercised == tconv.channels
    assert {c.role for c in v.layers} == {"folded", "output", "shared"}


@pytest.mark.parametrize("how,layer,channel", [("kernel", "up1_conv0", 2), ("bias", "down1_conv0", 1),
                                               ("wrong-axis", "up0_tconv", 3), ("kernel", "up0_tconv", 1)])
def test_keras_a_fold_wrong_in_one_channel_is_caught_at_its_layer(unet, how, layer, channel):
    v = assert_caught(unet, mutated(KERAS, unet.folded, layer, how, channel, 1.02), layer)
    assert next(c for c in v.folded_layers if c.layer == layer).margin > 5


def test_keras_an_error_does_not_travel_to_the_layers_after_it(unet):
    v = verdict_of(unet, mutated(KERAS, unet.folded, "down0_conv0", "kernel", 0, 1.03))
    downstream = [c for c in v.folded_layers if c.layer != "down0_conv0"]
    assert downstream and all(c.passed for c in downstream)  # fed the original's inputs, not the broken ones
    assert not next(c for c in v.layers if c.role == "output").passed


def test_keras_a_non_folded_layer_that_changed_fails_as_a_shared_tensor():
    inp = keras.Input((8, 8, 3))
    x = L.ReLU(name="relu")(L.BatchNormalization(name="bn")(L.Conv2D(4, 3, name="conv")(inp)))
    model = randomize_bn(keras.Model(inp, L.Conv2D(5, 3, name="plain")(x)))
    result = fold(KERAS, model)
    v = verdict_of(result, mutated(KERAS, result.folded, "plain", "kernel", 2, 1.001))
    assert v.verdict == "fail" and "'plain'" in v.reason and all(c.passed for c in v.folded_layers)


def saturating_sigmoid() -> keras.Model:
    """A detector-like head whose output is a sigmoid of about -14 on the recipe's inputs: every
    output is near 1e-6, far below any absolute tolerance tied to 1."""
    inp = keras.Input((16, 16, 8))
    x = L.ReLU()(L.BatchNormalization(name="bn0")(L.Conv2D(8, 3, padding="same", name="conv0")(inp)))
    x = L.ReLU()(L.BatchNormalization(name="bn1")(L.Conv2DTranspose(4, 2, strides=2, name="tconv")(x)))
    prob = L.Conv2D(1, 1, activation="sigmoid", name="prob")(x)
    model = randomize_bn(keras.Model(inp, prob), seed=3)
    head = model.get_layer("prob")
    head.bias.assign(np.array([-14.0], np.float32))
    head.kernel.assign(head.kernel.numpy() * 0.05)
    return model


def test_a_saturated_sigmoid_output_cannot_hide_a_broken_layer():
    result = fold(KERAS, saturating_sigmoid())
    v = _passes(result)
    assert v.per_output[0].max_abs < 1e-4  # the outputs are all close to 0
    for layer in ("conv0", "tconv"):
        bad = assert_caught(result, mutated(KERAS, result.folded, layer, "kernel", 1, 1.03), layer)
        assert bad.max_abs_diff < 1e-4  # an absolute tolerance of 1e-4 would have passed it


def test_nested_models_are_checked_inside():
    inner = keras.Sequential([keras.Input((6,)), L.Dense(4, name="d"), L.BatchNormalization(name="bn")], name="inner")
    inp = keras.Input((6,))
    model = randomize_bn(keras.Model(inp, inner(L.Dense(6, name="pre")(inp))))
    result = fold(KERAS, model)
    v = _passes(result)
    assert [c.layer for c in v.folded_layers] == ["inner/d"]
    assert_caught(result, mutated(KERAS, result.folded, "inner/d", "kernel", 2, 1.02), "inner/d")


def _dead_input_model() -> keras.Model:
    """conv -> BN behind a ReLU whose input is always -1: every input channel of 'conv' is 0 on any input."""
    inp = keras.Input((8, 8, 3))
    dead = L.ReLU(name="dead")(L.Conv2D(4, 1, name="off")(inp))
    x = L.BatchNormalization(name="bn")(L.Conv2D(5, 3, name="conv")(dead))
    model = randomize_bn(keras.Model(inp, x))
    off = model.get_layer("off")
    off.kernel.assign(np.zeros(off.kernel.shape, np.float32))
    off.bias.assign(-np.ones(4, np.float32))
    return model


def test_a_layer_the_inputs_leave_dead_is_judged_on_a_synthetic_batch():
    """W'x + b' = BN(Wx + b) for any x: the synthetic batch exercises every channel the model's inputs
    leave at zero, so the verdict is conclusive with the default inputs, and it says which channels only
    the synthetic batch exercised."""
    result = fold(KERAS, _dead_input_model())
    v = verify(result, 4).verification
    assert v.passed, v.to_dict()
    (conv,) = v.folded_layers
    assert conv.mode == "own and synthetic inputs" and conv.exercised == 5 and conv.synthetic == [0, 1, 2, 3, 4]
    assert conv.to_dict()["synthetic"] == [0, 1, 2, 3, 4]
    assert "only it exercised channels of 1: 'conv' (5 of 5)" in verification_text(v)
    # and its kernel, which no input of the model's reaches, is still checked: 1 % off in one channel fails
    assert_caught(result, mutated(KERAS, result.folded, "conv", "kernel", 3, 1.01), "conv")


def test_a_channel_with_an_all_zero_kernel_does_not_make_it_inconclusive():
    inp = keras.Input((8, 8, 3))
    model = randomize_bn(keras.Model(inp, L.BatchNormalization(name="bn")(L.Conv2D(5, 3, name="conv")(inp))))
    conv = model.get_layer("conv")
    kernel = conv.kernel.numpy()
    kernel[..., 1] = 0.0
    conv.kernel.assign(kernel)
    v = verify(fold(KERAS, model), 4).verification
    (check,) = v.folded_layers
    assert v.passed and check.not_exercised == [] and check.exercised == 4
    everything = L.Conv2D(3, 3, kernel_initializer="zeros", name="zero")
    zero = randomize_bn(keras.Model(inp, L.BatchNormalization(name="bn")(everything(inp))))
    assert verify(fold(KERAS, zero), 4).verification.passed  # nothing to exercise: its bias is checked


# -- TensorFlow GraphDef ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def traced():
    return fold(GRAPHDEF, graph_model(graph_def_from_keras(model_zoo.dcgan_generator(base=16)), "dcgan"))


def test_graphdef_each_folded_op_is_fed_what_the_original_op_read(traced):
    v = _passes(traced)
    assert {c.tensor for c in v.folded_layers} == {d.bn_nodes[-1] for d in traced.folded_pairs}  # the BN tails
    tconvs = [d.layer for d in traced.folded_pairs if d.op == "Conv2DBackpropInput"]
    assert tconvs  # the op whose filter input comes second and whose output shape is computed


@pytest.mark.parametrize("how", ["kernel", "bias", "wrong-axis"])
def test_graphdef_a_wrong_fold_is_caught_at_its_op(traced, how):
    layer = next(d.layer for d in traced.folded_pairs if d.op == "Conv2DBackpropInput")
    assert_caught(traced, mutated(GRAPHDEF, traced.folded, layer, how, 3, 1.02), layer)


# -- TFLite ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tflite_tconv():
    data, _ = tconv_bn(TConvCase(cin=3, cout=5, stride=2, padding="SAME", bias=True, act="RELU", hw=(5, 4)))
    return fold(TFLITE, model_from_bytes(data, "tconv.tflite"))


def test_tflite_the_folded_op_is_run_alone_with_its_fused_activation(tflite_tconv):
    v = _passes(tflite_tconv, samples=3)
    (check,) = v.folded_layers
    assert check.layer == "TRANSPOSE_CONV:0" and check.bn == "MUL:1+ADD:2"


@pytest.mark.parametrize("how", ["kernel", "bias", "wrong-axis"])
def test_tflite_a_wrong_fold_is_caught_at_its_op(tflite_tconv, how):
    assert_caught(tflite_tconv, mutated(TFLITE, tflite_tconv.folded, "TRANSPOSE_CONV:0", how, 2, 1.02),
                  "TRANSPOSE_CONV:0")


# -- ONNX -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def detector_head():
    return fold(ONNX, prepare(onnx_zoo.text_detector_head(), "head.onnx"))


def test_onnx_every_folded_node_is_checked_alone(detector_head):
    v = _passes(detector_head)
    assert [c.layer for c in v.folded_layers] == ["head_conv", "up0", "up1"]


@pytest.mark.parametrize("how,layer", [("kernel", "up1"), ("bias", "up0"), ("wrong-axis", "up1"),
                                       ("kernel", "head_conv")])
def test_onnx_a_wrong_fold_is_caught_at_its_node(detector_head, how, layer):
    assert_caught(detector_head, mutated(ONNX, detector_head.folded, layer, how, 1, 1.02), layer)


def test_onnx_a_grouped_transposed_convolution_is_checked_and_caught():
    result = fold(ONNX, prepare(onnx_zoo.dcgan_generator(base=16), "g.onnx"))
    _passes(result)
    assert_caught(result, mutated(ONNX, result.folded, "up1", "kernel", 5, 1.02), "up1")


def test_onnx_matmul_compares_the_add_that_took_the_bn_name():
    g = onnx_zoo.Graph(seed=1)
    x = g.input("x", ["N", 6])
    y = g.bn(g.node("MatMul", [x, g.const("w", g.glorot((6, 4), 6, 4))], "mm"), 4, "bn")
    result = fold(ONNX, prepare(g.model([y], "mm", [["N", 4]]), "mm.onnx"))
    v = _passes(result)
    assert result.folded_pairs[0].output_node == "bn" and v.folded_layers[0].tensor == "bn"
