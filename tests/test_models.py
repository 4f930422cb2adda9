"""Whole models: DCGAN generator, U-Net, MobileNetV2, nested models, several inputs and outputs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fold.engine.pipeline import fold, verify
from foldscope_app.examples import model_zoo
from tests.helpers import KERAS, assert_keras_folds, randomize_bn, twin

L = keras.layers


def test_dcgan_generator_folds_every_bn():
    model = model_zoo.dcgan_generator()
    result = assert_keras_folds(model, 3)
    assert result.bn_after == 0
    kinds = {d.op for d in result.decisions}
    assert kinds == {"Dense", "Conv2DTranspose"}


def test_unet_keeps_skip_connections():
    model = model_zoo.unet()
    result = assert_keras_folds(model)
    assert result.bn_after == 0 and len(result.folded_pairs) == result.bn_before
    concat = result.graph_after.in_edges("up0_concat")
    assert {u for u, _ in concat} == {"up0_tconv", "down0_relu1"}


def test_names_configs_and_untouched_weights_survive():
    model = model_zoo.unet()
    result = fold(KERAS, model)
    before = {layer.name: layer for layer in model.layers}
    for layer in result.folded.layers:
        original = before[layer.name]
        if not any(d.layer == layer.name for d in result.folded_pairs):
            assert layer.get_config() == original.get_config()
            for a, b in zip(layer.get_weights(), original.get_weights()):
                assert (a == b).all()


@pytest.mark.slow
def test_mobilenet_v2_with_random_statistics():
    model = model_zoo.application("MobileNetV2", input_size=96)
    result = assert_keras_folds(model, samples=2, rtol=1e-4)
    assert result.bn_before == 52 and result.bn_after == 0
    assert len(model.layers) - len(result.folded.layers) == 52


def test_nested_models_fold_inside():
    inner = keras.Sequential([keras.Input((6,)), L.Dense(4, name="d"), L.BatchNormalization(name="bn")], name="inner")
    inp = keras.Input((8, 7, 3))
    x = L.Conv2D(6, 3, name="conv")(inp)
    x = L.BatchNormalization(name="outer_bn")(x)
    x = L.GlobalAveragePooling2D()(x)
    model = randomize_bn(keras.Model(inp, inner(x)))
    result = assert_keras_folds(model, 2)
    assert {d.layer for d in result.decisions} == {"conv", "inner/d"}
    assert result.bn_after == 0 and "subgraph" in result.graph_before.nodes["inner"]


def test_several_inputs_and_outputs():
    a, b = keras.Input((9, 8, 3), name="a"), keras.Input((9, 8, 2), name="b")
    x = L.BatchNormalization(name="bn_a")(L.Conv2D(4, 3, padding="same", name="ca")(a))
    y = L.BatchNormalization(name="bn_b")(L.Conv2DTranspose(4, 3, padding="same", name="cb")(b))
    s = L.Add(name="sum")([x, y])
    head = L.BatchNormalization(name="bn_head")(L.Dense(3, name="head")(L.GlobalAveragePooling2D()(s)))
    model = randomize_bn(keras.Model({"a": a, "b": b}, {"map": s, "head": head}))
    result = assert_keras_folds(model, 3)
    check = verify(result, samples=2).verification
    assert check.passed and len(check.per_output) == 2


def test_sequential_model():
    model = randomize_bn(keras.Sequential([
        keras.Input((10, 3)), L.Conv1D(5, 3, use_bias=False), L.BatchNormalization(), L.ReLU(),
        L.Conv1DTranspose(4, 3, strides=2), L.BatchNormalization(),
    ]))
    result = assert_keras_folds(model, 2)
    assert isinstance(result.folded, keras.Sequential)


@pytest.mark.parametrize("policy", ["float16", "mixed_float16"])
def test_half_precision_models_fold_in_float64_and_cast_back(policy):
    keras.config.set_dtype_policy(policy)
    try:
        inp = keras.Input((9, 8, 3))
        x = L.BatchNormalization()(L.Conv2DTranspose(5, 3, strides=2, padding="same")(inp))
        model = randomize_bn(keras.Model(inp, L.BatchNormalization()(L.Conv2D(4, 3)(x))))
    finally:
        keras.config.set_dtype_policy("float32")
    result = fold(KERAS, model)
    assert result.bn_after == 0
    tconv = result.folded.layers[1]
    assert tconv.kernel.dtype == model.layers[1].kernel.dtype and tconv.compute_dtype == "float16"
    check = verify(result, samples=2).verification
    (out,) = check.per_output
    assert out.dtype == "float16" and check.passed and len(check.folded_layers) == 2
    float32 = verify(fold(KERAS, twin(model, "float32")), samples=2).verification
    # each folded layer is judged against float16's own rounding: a tolerance far above float32's
    for half, single in zip(check.folded_layers, float32.folded_layers):
        assert half.atol > 100 * single.atol, (half, single)
