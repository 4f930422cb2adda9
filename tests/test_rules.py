"""A negative test (*_neg) for every skip reason, and the registry itself."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fold.api import fold_model
from fold.kinds import KERAS_KINDS
from fold.rules import RULES, Candidate, decide
from tests.helpers import assert_folds_exactly, randomize_bn

L = keras.layers


def _only_decision(model: keras.Model):
    result = assert_folds_exactly(model, expect_folded=0)
    (decision,) = result.decisions
    assert decision.status == "skipped" and decision.reason
    assert result.bn_after == result.bn_before == 1
    return decision


def test_registry_names_are_unique_and_documented():
    names = [r.name for r in RULES]
    assert len(names) == len(set(names))
    assert all(r.summary for r in RULES)


def test_nonlinear_activation_neg():
    inp = keras.Input((8, 7, 3))
    model = randomize_bn(keras.Model(inp, L.BatchNormalization()(L.Conv2D(5, 3, activation="relu")(inp))))
    d = _only_decision(model)
    assert d.rule == "linear-activation" and "relu" in d.reason


def test_output_feeds_another_layer_neg():
    inp = keras.Input((8, 7, 3))
    x = L.Conv2DTranspose(5, 3, strides=2, name="tconv")(inp)
    out = L.Add()([L.BatchNormalization()(x), x])
    d = _only_decision(randomize_bn(keras.Model(inp, out)))
    assert d.rule == "single-consumer" and "tconv" in d.reason


def test_output_is_also_a_model_output_neg():
    inp = keras.Input((8, 7, 3))
    x = L.Conv2D(5, 3)(inp)
    d = _only_decision(randomize_bn(keras.Model(inp, [L.BatchNormalization()(x), x])))
    assert d.rule == "single-consumer"


def test_bn_on_other_axis_neg():
    inp = keras.Input((8, 7, 3))
    d = _only_decision(randomize_bn(keras.Model(inp, L.BatchNormalization(axis=1)(L.Conv2D(5, 3)(inp)))))
    assert d.rule == "channel-axis" and "axis [1]" in d.reason


@pytest.mark.parametrize("field,value", [("moving_variance", np.nan), ("gamma", np.inf), ("beta", -np.inf),
                                         ("moving_mean", np.nan)])
def test_non_finite_parameter_neg(field, value):
    inp = keras.Input((8, 7, 3))
    bn = L.BatchNormalization()
    model = randomize_bn(keras.Model(inp, bn(L.Conv2D(5, 3)(inp))))
    values = np.array(getattr(bn, field).numpy())
    values[2] = value
    getattr(bn, field).assign(values)
    result = fold_model(model)
    assert result.decisions[0].rule == "finite-parameters" and result.bn_after == 1


def test_zero_variance_with_zero_epsilon_neg():
    inp = keras.Input((8, 7, 3))
    bn = L.BatchNormalization(epsilon=0.0)
    model = randomize_bn(keras.Model(inp, bn(L.Conv2D(5, 3)(inp))))
    bn.moving_variance.assign(np.array([1, 1, 0, 1, 1], dtype="float32"))
    d = fold_model(model).decisions[0]
    assert d.rule == "finite-parameters" and "channel 2" in d.reason


def test_unsupported_kind_neg():
    inp = keras.Input((8, 7, 3))
    x = L.Add()([L.Conv2D(5, 3)(inp), L.Conv2D(5, 3)(inp)])
    d = _only_decision(randomize_bn(keras.Model(inp, L.BatchNormalization()(x))))
    assert d.rule == "supported-kind" and "Add" in d.reason


def test_bn_on_model_input_neg():
    inp = keras.Input((8, 7, 3))
    d = _only_decision(randomize_bn(keras.Model(inp, L.Conv2D(5, 3)(L.BatchNormalization()(inp)))))
    assert d.rule == "supported-kind" and "model input" in d.reason


def test_training_true_neg():
    inp = keras.Input((8, 7, 3))
    bn = L.BatchNormalization()
    model = randomize_bn(keras.Model(inp, bn(L.Conv2D(5, 3)(inp), training=True)))
    d = fold_model(model).decisions[0]
    assert d.rule == "inference-mode"


def test_shared_layer_neg():
    a, b = keras.Input((8, 7, 3)), keras.Input((8, 7, 3))
    conv, bn = L.Conv2D(5, 3), L.BatchNormalization()
    model = randomize_bn(keras.Model([a, b], [bn(conv(a)), bn(conv(b))]))
    result = fold_model(model)
    assert {d.rule for d in result.decisions} == {"not-shared"} and result.bn_after == 1


def test_float16_overflow_neg():
    keras.config.set_dtype_policy("mixed_float16")  # float32 variables, float16 compute
    try:
        inp = keras.Input((8, 7, 3))
        bn = L.BatchNormalization(epsilon=0.0)
        model = keras.Model(inp, bn(L.Conv2D(5, 3)(inp)))
    finally:
        keras.config.set_dtype_policy("float32")
    randomize_bn(model)
    bn.moving_variance.assign(np.array([1, 1, 1e-12, 1, 1], dtype=bn.moving_variance.dtype))
    d = fold_model(model).decisions[0]
    assert d.rule == "fits-dtype" and "float16" in d.reason


def test_first_objection_decides():
    c = Candidate(layer="c", bn="bn", op="Conv2D", kind=KERAS_KINDS["Conv2D"], activation="relu",
                  consumers=3, channel_axis=3, bn_axes=(3,), mean=np.zeros(2), variance=np.ones(2))
    assert decide(c).rule == "linear-activation"
    c.activation = None
    assert decide(c).rule == "single-consumer"
    c.consumers = 1
    d = decide(c)
    assert d.status == "folded" and d.affine is not None
