"""Errors in words: a FoldError is its own sentence; any other failure says where it happened, never
Python's exception name or a framework's message."""

from __future__ import annotations

import numpy as np
import pytest

from fold.errors import FoldError, describe, in_words, one_line, raised_in, unexpected


def _raised(action) -> BaseException:
    with pytest.raises(Exception) as info:
        action()
    return info.value


def _keras_refuses():
    import keras

    x = keras.Input((4,), name="x")
    keras.Model(x, keras.layers.Dense(2, name="twice")(keras.layers.Dense(3, name="twice")(x)))


def _tensorflow_refuses():
    import tensorflow as tf

    tf.reshape(tf.zeros(3), (4,))


def _foldscope_fails():
    return {}["a key foldscope forgot"]


@pytest.mark.parametrize("action, where", [(_keras_refuses, "Keras"), (_tensorflow_refuses, "TensorFlow"),
                                           (_foldscope_fails, None)])
def test_an_unexpected_error_says_where_it_happened_in_words(action, where):
    exc = _raised(action)
    assert raised_in(exc) == where
    said = unexpected(exc)
    assert said == (f"{where} failed on it in a way foldscope did not expect" if where else
                    "foldscope itself failed on it, in a way it should not (a bug)")
    assert type(exc).__name__ not in said and one_line(exc)[:20] not in said
    assert in_words(exc) == said


def test_running_out_of_memory_is_said_so():
    assert unexpected(MemoryError()) == "there was not enough memory for it"
    exc = _raised(lambda: np.ones(2**62, dtype=np.uint8))  # NumPy's own refusal to allocate
    assert unexpected(exc) == "there was not enough memory for it"


def test_a_fold_error_is_its_own_sentence_and_another_tools_failure_its_own_words():
    error = FoldError("'model.onnx' is empty.")
    assert in_words(error) == describe(error) == "'model.onnx' is empty."
    other = _raised(_tensorflow_refuses)
    assert describe(other).startswith("InvalidArgumentError: ")  # a peer's row quotes the tool
