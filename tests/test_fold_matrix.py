"""Every layer kind x stride x padding x dilation x output_padding x bias x BN scale/center x
data_format x depth multiplier x groups, always with in-channels != out-channels, folded and
checked against the float64 reference of the unfolded model."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from fold.engine.pipeline import fold, run
from tests.helpers import KERAS, assert_keras_folds, assert_skipped, float64_twin, randomize_biases, randomize_bn

CIN = 3


def _spatial(rank: int) -> tuple[int, ...]:
    # Distinct sizes per axis, none equal to a channel count, so a wrong axis cannot hide.
    return (11, 9, 8)[:rank]


def _build(layer: keras.layers.Layer, input_shape: tuple[int, ...], bn_axis: int, scale: bool, center: bool):
    inp = keras.Input(input_shape)
    x = layer(inp)
    out = keras.layers.BatchNormalization(axis=bn_axis, scale=scale, center=center, epsilon=1e-3)(x)
    model = keras.Model(inp, out)
    return randomize_biases(randomize_bn(model, seed=len(layer.name)))


def _input_shape(rank: int, data_format: str, channels: int = CIN) -> tuple[int, ...]:
    spatial = _spatial(rank)
    return (channels, *spatial) if data_format == "channels_first" else (*spatial, channels)


CONV = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}
TCONV = {1: keras.layers.Conv1DTranspose, 2: keras.layers.Conv2DTranspose, 3: keras.layers.Conv3DTranspose}
DEPTHWISE = {1: keras.layers.DepthwiseConv1D, 2: keras.layers.DepthwiseConv2D}
SEPARABLE = {1: keras.layers.SeparableConv1D, 2: keras.layers.SeparableConv2D}

# (stride, padding, dilation) combinations valid for every conv kind (Keras refuses
# stride > 1 together with dilation > 1).
GEOMETRY = [(1, "valid", 1), (2, "same", 1), (2, "valid", 1), (1, "same", 2)]
BN_MODES = [(True, True), (False, True), (True, False), (False, False)]


def conv_cases():
    for rank, (stride, padding, dilation), use_bias, groups in itertools.product(
            (1, 2, 3), GEOMETRY, (True, False), (1, 3)):
        scale, center = BN_MODES[(rank + stride + groups + use_bias) % 4]
        yield pytest.param(rank, stride, padding, dilation, use_bias, groups, scale, center,
                           id=f"conv{rank}d-s{stride}-{padding}-d{dilation}-bias{int(use_bias)}-g{groups}-bn{int(scale)}{int(center)}")


@pytest.mark.parametrize("rank,stride,padding,dilation,use_bias,groups,scale,center", conv_cases())
def test_conv(rank, stride, padding, dilation, use_bias, groups, scale, center):
    cin = 6 if groups > 1 else CIN  # in=6, out=9 with 3 groups; in=3, out=5 otherwise
    layer = CONV[rank](9 if groups > 1 else 5, 3, strides=stride, padding=padding, dilation_rate=dilation,
                       groups=groups, use_bias=use_bias)
    model = _build(layer, _input_shape(rank, "channels_last", cin), -1, scale, center)
    assert_keras_folds(model, 1)


# TensorFlow's CPU kernels refuse transposed convolutions with dilation > 1
# ("Current CPU implementations do not yet support dilation rates larger than 1"), so no
# model with one can run here; the fold itself does not depend on dilation.
TCONV_GEOMETRY = [g for g in GEOMETRY if g[2] == 1]


def tconv_cases():
    for rank, (stride, padding, dilation), use_bias in itertools.product((1, 2, 3), TCONV_GEOMETRY, (True, False)):
        output_paddings = [None] + ([1] if stride == 2 else [])
        for output_padding in output_paddings:
            scale, center = BN_MODES[(rank + stride + use_bias + (output_padding or 0)) % 4]
            yield pytest.param(rank, stride, padding, dilation, output_padding, use_bias, scale, center,
                               id=f"tconv{rank}d-s{stride}-{padding}-d{dilation}-op{output_padding}-bias{int(use_bias)}")


@pytest.mark.parametrize("rank,stride,padding,dilation,output_padding,use_bias,scale,center", tconv_cases())
def test_transposed_conv(rank, stride, padding, dilation, output_padding, use_bias, scale, center):
    layer = TCONV[rank](5, 3, strides=stride, padding=padding, dilation_rate=dilation,
                        output_padding=output_padding, use_bias=use_bias)
    model = _build(layer, _input_shape(rank, "channels_last"), -1, scale, center)
    assert_keras_folds(model, 1)


@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("multiplier", [1, 3])
@pytest.mark.parametrize("stride,padding,dilation", GEOMETRY[:3])
@pytest.mark.parametrize("use_bias", [True, False])
def test_depthwise(rank, multiplier, stride, padding, dilation, use_bias):
    layer = DEPTHWISE[rank](3, strides=stride, padding=padding, dilation_rate=dilation,
                            depth_multiplier=multiplier, use_bias=use_bias)
    model = _build(layer, _input_shape(rank, "channels_last"), -1, *BN_MODES[(multiplier + stride) % 4])
    assert_keras_folds(model, 1)


@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("stride,padding", [(1, "valid"), (2, "same")])
@pytest.mark.parametrize("use_bias", [True, False])
def test_separable(rank, multiplier, stride, padding, use_bias):
    layer = SEPARABLE[rank](7, 3, strides=stride, padding=padding, depth_multiplier=multiplier, use_bias=use_bias)
    model = _build(layer, _input_shape(rank, "channels_last"), -1, *BN_MODES[(multiplier + stride) % 4])
    assert_keras_folds(model, 1)


@pytest.mark.parametrize("input_shape", [(6,), (4, 6), (3, 4, 6)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense(input_shape, use_bias):
    model = _build(keras.layers.Dense(5, use_bias=use_bias), input_shape, -1, True, True)
    assert_keras_folds(model, 1)


# channels_first: the BN must normalize axis 1. TensorFlow's CPU kernels refuse NCHW
# convolutions, so the folded weights are checked through a channels_last twin: Keras
# kernels have the same layout in both formats, so the channels_first fold, loaded into
# the channels_last architecture, must reproduce the channels_last original.
CHANNELS_FIRST = {
    "conv2d": (lambda f: keras.layers.Conv2D(5, 3, strides=2, padding="same", data_format=f), 2),
    "conv1d": (lambda f: keras.layers.Conv1D(5, 3, data_format=f, use_bias=False), 1),
    "tconv2d": (lambda f: keras.layers.Conv2DTranspose(5, 3, strides=2, padding="same", data_format=f), 2),
    "tconv1d": (lambda f: keras.layers.Conv1DTranspose(5, 3, use_bias=False, data_format=f), 1),
    "depthwise2d": (lambda f: keras.layers.DepthwiseConv2D(3, depth_multiplier=2, data_format=f), 2),
    "separable2d": (lambda f: keras.layers.SeparableConv2D(7, 3, depth_multiplier=2, data_format=f), 2),
}


@pytest.mark.parametrize("name", sorted(CHANNELS_FIRST))
def test_channels_first(name):
    make, rank = CHANNELS_FIRST[name]
    first = _build(make("channels_first"), _input_shape(rank, "channels_first"), 1, True, True)
    result = fold(KERAS, first)
    assert [d.status for d in result.decisions] == ["folded"] and result.bn_after == 0
    assert result.folded.layers[1].get_config()["data_format"] == "channels_first"

    last = _build(make("channels_last"), _input_shape(rank, "channels_last"), -1, True, True)
    last.set_weights(first.get_weights())
    reference = fold(KERAS, last).folded  # the channels_last architecture after folding
    reference.set_weights(result.folded.get_weights())
    x = np.random.default_rng(0).standard_normal((3, *_input_shape(rank, "channels_last"))).astype("float32")
    expected = run(KERAS, float64_twin(last), [x.astype(np.float64)])[0]
    got = run(KERAS, reference, [x])[0]
    assert np.max(np.abs(got - expected)) <= 2e-5 * max(1.0, np.max(np.abs(expected)))


def test_channel_axis_channels_first_with_bn_on_last_axis_NEG():
    model = _build(keras.layers.Conv2D(5, 3, data_format="channels_first"), (3, 9, 5), -1, True, True)
    decision = fold(KERAS, model).decisions[0]  # TensorFlow's CPU cannot run it, so no output check
    assert decision.status == "skipped" and decision.rule == "channel-axis"
    assert_skipped(KERAS, model, "channel-axis", "axis [3]", check_outputs=False)


def test_tiny_variance_folds_exactly_but_blows_up_the_kernel_range():
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same")(inp)
    bn = keras.layers.BatchNormalization(epsilon=0.0)
    model = keras.Model(inp, bn(x))
    randomize_bn(model)
    bn.moving_variance.assign(np.array([1e-14, 1.0, 1.0, 1.0], dtype=np.float32))
    result = assert_keras_folds(model, 1, rtol=1e-5)
    scale = result.decisions[0].affine.scale
    assert abs(scale[0]) > 1e5 * abs(scale[1])
