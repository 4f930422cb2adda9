"""The seed note's two worked examples, reproduced by the Keras fold (independently of
foldscope_app/examples/seed.py and foldscope_app/workbench/why_math.py: the numbers are the note's own,
from tests/seed_note.py), and foldscope_app/examples/seed.py held to the note's numbers."""

from __future__ import annotations

import keras
import numpy as np

from fold.engine.pipeline import fold, run, verify
from foldscope_app.examples import seed
from tests.helpers import KERAS
from tests.seed_note import EXAMPLE_2, FOLDED_TCONV, NUMPY_BN, OFFSET, SCALE, TCONV_OUT, X

def _seed_model(gamma, beta, mean, var, eps):
    inp = keras.Input((2, 2, 1))
    tconv = keras.layers.Conv2DTranspose(1, 3, padding="valid", use_bias=False)
    bn = keras.layers.BatchNormalization(epsilon=eps)
    model = keras.Model(inp, bn(tconv(inp)))
    tconv.kernel.assign(np.ones((3, 3, 1, 1), dtype="float32"))
    bn.set_weights([np.array([gamma]), np.array([beta]), np.array([mean]), np.array([var])])
    return model


def test_first_example_printed_numbers():
    model = _seed_model(SCALE, OFFSET, TCONV_OUT.mean(), TCONV_OUT.var(), 0.0)
    result = fold(KERAS, model)
    assert result.bn_after == 0
    folded = run(KERAS, result.folded, [X])[0][0, :, :, 0]
    np.testing.assert_allclose(folded, FOLDED_TCONV, atol=1e-5)
    np.testing.assert_allclose(folded, NUMPY_BN, atol=1e-5)
    assert verify(result, inputs=[X]).verification.max_abs_diff < 1e-5


def test_second_example_constants():
    gamma, beta, mean, var, eps = (EXAMPLE_2[k] for k in ("gamma", "beta", "mean", "var", "eps"))
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
    np.testing.assert_allclose(seed.numpy_batch_norm()[:, :, 0], NUMPY_BN, atol=1e-6)
    np.testing.assert_array_equal(seed.seed_batch(), X)
    model = seed.keras_model()
    np.testing.assert_allclose(run(KERAS, model, [X])[0][0, :, :, 0], NUMPY_BN, atol=1e-5)


def test_the_demo_holds_the_notes_constants():
    assert (seed.EXAMPLE_1.gamma, seed.EXAMPLE_1.beta, seed.EXAMPLE_1.epsilon) == (SCALE, OFFSET, 0.0)
    assert seed.EXAMPLE_1.mean is None and seed.EXAMPLE_1.variance is None  # the TConv output's own
    two = seed.EXAMPLE_2
    assert (two.gamma, two.beta, two.mean, two.variance, two.epsilon) == tuple(
        EXAMPLE_2[k] for k in ("gamma", "beta", "mean", "var", "eps"))
    np.testing.assert_array_equal(seed.seed_input()[0][:, :, 0], X[0, :, :, 0])
