"""The verification's inputs: the recipe, --input-shape, the size search, and inputs from a file."""

from __future__ import annotations

import io

import keras
import numpy as np
import pytest

from fold.core.errors import FoldError
from fold.core.verification import InputSpec, check_inputs, read_arrays, sample_inputs, sample_shape, synthetic_batch
from fold.engine.pipeline import fold, model_inputs, verify
from tests.helpers import KERAS, randomize_bn

L = keras.layers


def test_a_given_shape_fills_the_unknown_dimensions_and_must_keep_the_fixed_ones():
    spec = InputSpec("x", (None, 3, None, None), "float32")
    assert sample_shape(spec, 4) == [4, 3, 32, 32]
    assert sample_shape(spec, 4, (1, 3, 640, 480)) == [4, 3, 640, 480]  # rows are --samples, not the shape's batch
    with pytest.raises(ValueError, match="has 3 on axis 1"):
        sample_shape(spec, 1, (1, 4, 8, 8))
    with pytest.raises(ValueError, match="rank 4"):
        sample_shape(spec, 1, (1, 3, 8))
    (x,) = sample_inputs([spec], 2, 0, shapes={"x": (1, 3, 16, 8)})
    assert x.shape == (2, 3, 16, 8)


def test_arrays_from_a_file_are_checked_against_the_inputs():
    specs = [InputSpec("a", (None, 4), "float32"), InputSpec("b", (2, 2), "int64")]
    a, b = check_inputs(specs, {"a": np.ones((2, 4)), "b": np.ones((2, 2), np.int32)})
    assert a.dtype == np.float32 and b.dtype == np.int64
    for arrays, words in (({"a": np.ones((2, 4))}, "no array for input 'b'"),
                          ({"a": np.ones((2, 5)), "b": np.ones((2, 2))}, "has 4 on axis 1"),
                          ({"a": np.ones((2, 4)), "b": np.ones((4, 2))}, "different numbers of rows"),
                          ({"a": np.ones((3, 4)), "b": np.ones((3, 2))}, "batches of 2")):
        with pytest.raises(ValueError, match=words):
            check_inputs(specs, arrays)


def test_read_arrays_takes_npz_and_npy_and_never_a_pickle(tmp_path):
    buffer = io.BytesIO()
    np.savez(buffer, x=np.arange(3.0))
    assert list(read_arrays(buffer.getvalue())) == ["x"]
    np.save(tmp_path / "one.npy", np.zeros((2, 2)))
    assert list(read_arrays(tmp_path / "one.npy")) == [None]
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FoldError, match="'objects.npy' is not a .npz or .npy file"):
        read_arrays(tmp_path / "objects.npy")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(FoldError, match="'text.npz' is not a .npz or .npy file"):
        read_arrays(tmp_path / "text.npz")
    with pytest.raises(FoldError, match="No such inputs file"):
        read_arrays(tmp_path / "missing.npz")


def six_poolings() -> keras.Model:
    """A Keras 2-style audio model: a free time axis pooled six times by 2 (32 pools to 0)."""
    x = keras.Input((None, 8, 1), name="spectrogram")
    y = x
    for i in range(6):
        y = L.MaxPooling2D((2, 1), name=f"pool{i}")(L.BatchNormalization(name=f"bn{i}")(
            L.Conv2D(4, 3, padding="same", name=f"conv{i}")(y)))
    return randomize_bn(keras.Model(x, L.GlobalAveragePooling2D(name="gap")(y)))


def test_a_model_that_cannot_run_at_32_gets_the_next_size_that_runs():
    model = six_poolings()
    inputs, source = model_inputs(KERAS, model, 2, 0)
    assert source == "recipe" and inputs[0].shape == (2, 64, 8, 1)
    checked = verify(fold(KERAS, model), 2, 0)
    assert checked.verification.passed and checked.verification.input_shapes == {"spectrogram": [2, 64, 8, 1]}
    given = verify(fold(KERAS, model), 2, 0, shapes={"spectrogram": (1, 128, 8, 1)}).verification
    assert given.passed and given.input_shapes["spectrogram"] == [2, 128, 8, 1]


def test_a_model_that_runs_at_no_size_says_what_to_pass():
    x = keras.Input((None,), name="signal")
    model = keras.Model(x, L.Dense(2)(L.Reshape((3, 333))(x)))
    with pytest.raises(FoldError) as err:
        model_inputs(KERAS, model, 1, 0)
    message = str(err.value)
    assert "input 'signal' (?x?)" in message and "from 32 to 1024" in message
    assert "--input-shape signal=Nx" in message and "\n" not in message


def test_input_shape_naming_no_input_is_one_sentence():
    with pytest.raises(FoldError, match="--input-shape names 'y', which is not an input of the model"):
        model_inputs(KERAS, six_poolings(), 1, 0, shapes={"y": (1, 64, 8, 1)})


def test_a_npy_feeds_a_single_input_model_only():
    model = six_poolings()
    inputs, source = model_inputs(KERAS, model, arrays={None: np.ones((3, 64, 8, 1))})
    assert source == "file" and inputs[0].shape == (3, 64, 8, 1)
    a, b = keras.Input((2,), name="a"), keras.Input((2,), name="b")
    with pytest.raises(FoldError, match="A .npy file holds one array; the model has 2 inputs"):
        model_inputs(KERAS, keras.Model([a, b], L.Add()([a, b])), arrays={None: np.ones((1, 2))})


def test_the_synthetic_batch_exercises_every_input_channel_at_least_at_unit_scale():
    """Channels first: channel 0 dead (all 0), channel 1 live at RMS 1e-8, channel 2 at RMS 5: the batch has
    the recorded shape and dtype, each channel drawn at the larger of 1 and its RMS, times the gain."""
    rng = np.random.default_rng(0)
    x = np.zeros((4, 3, 8, 8), np.float32)
    x[:, 1] = 1e-8
    x[:, 2] = 5.0
    (made,) = synthetic_batch([x], 1, np.random.default_rng(1))
    assert made.shape == x.shape and made.dtype == np.float32
    rms = np.sqrt(np.mean(np.square(made.astype(np.float64)), axis=(0, 2, 3)))
    np.testing.assert_allclose(rms, [1.0, 1.0, 5.0], rtol=0.15)
    (loud,) = synthetic_batch([x.astype(np.float16)], 1, rng, gain=100.0)
    assert loud.dtype == np.float16 and 60 < np.sqrt(np.mean(np.square(loud[:, 0].astype(np.float64)))) < 140
    assert synthetic_batch([np.arange(4)], 0, rng) is None  # not a float: nothing to make
