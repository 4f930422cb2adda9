"""The Keras frontend's rules: a negative test (``*_NEG``) for every one of them."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from tests.helpers import KERAS, assert_skipped, randomize_bn

L = keras.layers


def _conv_bn(bn: keras.layers.Layer | None = None, **conv) -> keras.Model:
    inp = keras.Input((8, 7, 3))
    return randomize_bn(keras.Model(inp, (bn or L.BatchNormalization())(L.Conv2D(5, 3, **conv)(inp))))


def test_linear_activation_relu_inside_the_conv_NEG():
    assert_skipped(KERAS, _conv_bn(activation="relu"), "linear-activation", "relu")


def test_single_consumer_output_feeds_another_layer_NEG():
    inp = keras.Input((8, 7, 3))
    x = L.Conv2DTranspose(5, 3, strides=2, name="tconv")(inp)
    out = L.Add()([L.BatchNormalization()(x), x])
    assert_skipped(KERAS, randomize_bn(keras.Model(inp, out)), "single-consumer", "'tconv'")


def test_single_consumer_output_is_also_a_model_output_NEG():
    inp = keras.Input((8, 7, 3))
    x = L.Conv2D(5, 3)(inp)
    assert_skipped(KERAS, randomize_bn(keras.Model(inp, [L.BatchNormalization()(x), x])), "single-consumer")


def test_channel_axis_bn_on_another_axis_NEG():
    assert_skipped(KERAS, _conv_bn(L.BatchNormalization(axis=1)), "channel-axis", "axis [1]")


@pytest.mark.parametrize("field,value", [("moving_variance", np.nan), ("gamma", np.inf), ("beta", -np.inf),
                                         ("moving_mean", np.nan)])
def test_finite_parameters_non_finite_NEG(field, value):
    bn = L.BatchNormalization()
    model = _conv_bn(bn)
    values = np.array(getattr(bn, field).numpy())
    values[2] = value
    getattr(bn, field).assign(values)
    assert_skipped(KERAS, model, "finite-parameters", "non-finite")


def test_finite_parameters_zero_variance_with_zero_epsilon_NEG():
    bn = L.BatchNormalization(epsilon=0.0)
    model = _conv_bn(bn)
    bn.moving_variance.assign(np.array([1, 1, 0, 1, 1], dtype="float32"))
    assert_skipped(KERAS, model, "finite-parameters", "channel 2")


@pytest.mark.parametrize("weight", ["kernel", "bias"])
def test_finite_weights_nan_in_the_conv_NEG(weight):
    model = _conv_bn()
    variable = getattr(model.layers[1], weight)
    values = np.array(variable.numpy())
    values.flat[1] = np.nan
    variable.assign(values)
    assert_skipped(KERAS, model, "finite-weights", f"non-finite {weight}")


def test_supported_kind_bn_after_an_add_NEG():
    inp = keras.Input((8, 7, 3))
    x = L.Add()([L.Conv2D(5, 3)(inp), L.Conv2D(5, 3)(inp)])
    assert_skipped(KERAS, randomize_bn(keras.Model(inp, L.BatchNormalization()(x))), "supported-kind", "Add")


def test_supported_kind_bn_on_the_model_input_NEG():
    inp = keras.Input((8, 7, 3))
    model = randomize_bn(keras.Model(inp, L.Conv2D(5, 3)(L.Activation("sigmoid")(L.BatchNormalization()(inp)))))
    assert_skipped(KERAS, model, "supported-kind", "model input")  # and no layer after it to take it either


def test_inference_mode_training_true_NEG():
    inp = keras.Input((8, 7, 3))
    bn = L.BatchNormalization()
    model = randomize_bn(keras.Model(inp, bn(L.Conv2D(5, 3)(inp), training=True)))
    assert_skipped(KERAS, model, "inference-mode", "training=True")


def test_not_shared_layer_applied_twice_NEG():
    a, b = keras.Input((8, 7, 3)), keras.Input((8, 7, 3))
    conv, bn = L.Conv2D(5, 3), L.BatchNormalization()
    model = randomize_bn(keras.Model([a, b], [bn(conv(a)), bn(conv(b))]))
    assert_skipped(KERAS, model, "not-shared", "2 times")


def test_fits_dtype_float16_overflow_NEG():
    keras.config.set_dtype_policy("mixed_float16")  # float32 variables, float16 compute
    try:
        bn = L.BatchNormalization(epsilon=0.0)
        inp = keras.Input((8, 7, 3))
        model = keras.Model(inp, bn(L.Conv2D(5, 3)(inp)))
    finally:
        keras.config.set_dtype_policy("float32")
    randomize_bn(model)
    bn.moving_variance.assign(np.array([1, 1, 1e-12, 1, 1], dtype=bn.moving_variance.dtype))
    assert_skipped(KERAS, model, "fits-dtype", "float16")


def test_plain_kernel_quantized_dense_NEG():
    inp = keras.Input((6,))
    model = randomize_bn(keras.Model(inp, L.BatchNormalization()(L.Dense(4, name="dense")(inp))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Layer BatchNormalization does not have a `quantize` method"
        model.quantize("int8")
    assert_skipped(KERAS, model, "plain-kernel", "quantized (int8)")


def test_plain_kernel_lora_dense_NEG():
    inp = keras.Input((6,))
    dense = L.Dense(4, name="dense")
    model = randomize_bn(keras.Model(inp, L.BatchNormalization()(dense(inp))))
    dense.enable_lora(2)
    assert_skipped(KERAS, model, "plain-kernel", "LoRA")
