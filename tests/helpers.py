"""Model helpers for tests: randomized BN statistics and an independent float64 reference.

The reference is the *original* (unfolded) architecture rebuilt with every layer in
float64 and the same weights: it computes conv-then-BN explicitly in double precision and
shares no code with the folding math.
"""

from __future__ import annotations

import keras
import numpy as np

from fold import keras_io
from fold.api import fold_model
from fold.graph import count_role
from fold.zoo import all_layers, randomize_bn  # noqa: F401  (re-exported for tests)


def randomize_biases(model: keras.Model, seed: int = 1) -> keras.Model:
    """Non-zero biases, so that a fold that forgets the existing bias is caught."""
    rng = np.random.default_rng(seed)
    for layer in all_layers(model):
        bias = getattr(layer, "bias", None)
        if bias is not None and not isinstance(layer, keras.layers.BatchNormalization):
            bias.assign(rng.normal(0, 0.5, bias.shape).astype(bias.dtype))
    return model


def _to_float64(value):
    if isinstance(value, dict):
        if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and "config" in value:
            return {**value, "config": {**value["config"], "name": "float64"}}
        out = {k: _to_float64(v) for k, v in value.items()}
        if out.get("class_name") == "__keras_tensor__":
            out["config"] = {**out["config"], "dtype": "float64"}
        if "dtype" in out and isinstance(out["dtype"], str) and "float" in out["dtype"]:
            out["dtype"] = "float64"
        return out
    if isinstance(value, list):
        return [_to_float64(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_float64(v) for v in value)
    return value


def float64_twin(model: keras.Model) -> keras.Model:
    """The same architecture and weights, every layer computing in float64."""
    ser = keras.saving.serialize_keras_object(model)
    ser.pop("compile_config", None)
    twin = keras.saving.deserialize_keras_object(_to_float64(ser), safe_mode=True)
    for src, dst in zip(model.weights, twin.weights):
        dst.assign(np.asarray(src.numpy(), dtype=np.float64))
    return twin


def assert_folds_exactly(model: keras.Model, *, samples: int = 3, seed: int = 0, rtol: float = 2e-5,
                         expect_folded: int | None = None):
    """The one helper every fold test goes through.

    Folds ``model``; asserts no foldable BN is left (every pair the rules allow was folded
    and the folded graph has exactly the skipped BNs left), that the user's model is
    untouched, and that the folded float32 model matches the float64 reference of the
    original to float32 rounding. Returns the FoldResult.
    """
    weights_before = [np.array(w.numpy()) for w in model.weights]
    result = fold_model(model)
    folded = [d for d in result.decisions if d.status == "folded"]
    if expect_folded is not None:
        assert len(folded) == expect_folded, [d.to_dict() for d in result.decisions]
    assert count_role(result.graph_after, "bn") == result.bn_before - len(folded)
    for before, w in zip(weights_before, model.weights):
        np.testing.assert_array_equal(before, w.numpy())

    inputs = keras_io.sample_inputs(model, samples, seed)
    reference = keras_io.run(float64_twin(model), [x.astype(np.float64) if x.dtype.kind == "f" else x for x in inputs])
    got = keras_io.run(result.folded, inputs)
    original = keras_io.run(model, inputs)
    for ref, out, orig in zip(reference, got, original):
        scale = max(1.0, float(np.max(np.abs(ref))))
        err_folded = float(np.max(np.abs(out - ref)))
        err_original = float(np.max(np.abs(orig - ref)))
        assert err_folded <= rtol * scale, (err_folded, err_original, scale)
    return result
