"""The seed note's two worked examples, reproduced by the Keras fold (independently of demo/seed.py
and demo/explain.py: the constants below are the note's own printed numbers)."""

from __future__ import annotations

import keras
import numpy as np

from demo import seed
from fold.pipeline import fold, run, verify
from tests.helpers import KERAS

SEED_FOLDED = np.array([
    [-1.6051569, -0.9045485, -0.9045485, -1.2548528],
    [-0.5542443, 1.5475811, 1.5475811, 0.1463641],
    [-0.5542443, 1.5475811, 1.5475811, 0.1463641],
    [-0.9045485, 0.49666822, 0.49666822, -0.5542443],
])
SEED_NUMPY_BN = np.array([
    [-1.6051569, -0.90454847, -0.90454847, -1.2548528],
    [-0.5542443, 1.5475807, 1.5475807, 0.14636408],
    [-0.5542443, 1.5475807, 1.5475807, 0.14636408],
    [-0.90454847, 0.49666822, 0.49666822, -0.5542443],
])


def _seed_model(gamma, beta, mean, var, eps):
    inp = keras.Input((2, 2, 1))
    tconv = keras.layers.Conv2DTranspose(1, 3, padding="valid", use_bias=False)
    bn = keras.layers.BatchNormalization(epsilon=eps)
    model = keras.Model(inp, bn(tconv(inp)))
    tconv.kernel.assign(np.ones((3, 3, 1, 1), dtype="float32"))
    bn.set_weights([np.array([gamma]), np.array([beta]), np.array([mean]), np.array([var])])
    return model


X = np.arange(1, 5, dtype="float32").reshape(1, 2, 2, 1)
TCONV_OUT = np.array([[1, 3, 3, 2], [4, 10, 10, 6], [4, 10, 10, 6], [3, 7, 7, 4]], dtype=np.float64)


def test_first_example_printed_numbers():
    model = _seed_model(1.05, 0.015, TCONV_OUT.mean(), TCONV_OUT.var(), 0.0)
    result = fold(KERAS, model)
    assert result.bn_after == 0
    folded = run(KERAS, result.folded, [X])[0][0, :, :, 0]
    np.testing.assert_allclose(folded, SEED_FOLDED, atol=1e-5)
    np.testing.assert_allclose(folded, SEED_NUMPY_BN, atol=1e-5)
    assert verify(result, inputs=[X]).verification.max_abs_diff < 1e-5


def test_second_example_constants():
    gamma, beta = 1.0177339315414429, 0.015628524124622345
    mean, var, eps = 1.027155211195349693, 0.25580066442489624, 0.0010000000474974513
    model = _seed_model(gamma, beta, mean, var, eps)
    result = fold(KERAS, model)
    folded = run(KERAS, result.folded, [X])[0][0, :, :, 0]
    expected = (TCONV_OUT - mean) / np.sqrt(var + np.float64(np.float32(eps))) * gamma + beta
    np.testing.assert_allclose(folded, expected, atol=1e-5)
    kernel, bias = result.folded.layers[1].get_weights()
    s = gamma / np.sqrt(var + np.float32(eps))
    np.testing.assert_allclose(kernel[..., 0, 0], np.full((3, 3), s), rtol=1e-6)
    np.testing.assert_allclose(bias, [beta - mean * s], rtol=1e-6)


def test_the_demo_builds_the_notes_example():
    np.testing.assert_array_equal(seed.tconv_output()[:, :, 0], TCONV_OUT)
    np.testing.assert_allclose(seed.numpy_batch_norm()[:, :, 0], SEED_NUMPY_BN, atol=1e-6)
    np.testing.assert_array_equal(seed.seed_batch(), X)
    model = seed.keras_model()
    np.testing.assert_allclose(run(KERAS, model, [X])[0][0, :, :, 0], SEED_NUMPY_BN, atol=1e-5)
