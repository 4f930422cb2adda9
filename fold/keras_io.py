"""Keras frontend, part 3: load and save model files safely, make inputs, run a model.

Loading never executes code from the file: Keras ``safe_mode`` stays on, so a ``Lambda``
layer or an unknown custom class is refused with a "cannot load safely" message.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path

import keras
import numpy as np

from fold.errors import FoldError, UnsafeModelError, one_line
from fold.files import MAX_MODEL_BYTES, check_model_file

#: Size used for an input dimension the model leaves unknown (other than the batch).
FREE_DIM = 32


def load_model(path: str | os.PathLike, max_bytes: int = MAX_MODEL_BYTES) -> keras.Model:
    """Load a .keras or .h5 model with safe_mode on; any failure is one FoldError sentence."""
    fmt = check_model_file(path, max_bytes)
    name = Path(path).name
    if fmt not in ("keras", "h5"):
        raise FoldError(f"'{name}' is a .{fmt} file, not a Keras model (.keras or .h5).")
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the failure, if any, is reported as one sentence
        source = Path(path)
        if source.suffix != source.suffix.lower():  # Keras accepts only lower-case suffixes
            source = Path(tmp) / f"model{source.suffix.lower()}"
            source.symlink_to(Path(path).resolve())
        try:
            model = keras.saving.load_model(source, compile=False, safe_mode=True)
        except Exception as exc:
            unsafe = _unsafe_reason(exc)
            if unsafe:
                raise UnsafeModelError(f"Cannot load '{name}' safely: {unsafe}") from exc
            message = one_line(exc).replace(str(source), name).replace(str(Path(path)), name)
            raise FoldError(f"Cannot load '{name}': {message}") from exc
    if not isinstance(model, keras.Model):
        raise FoldError(f"'{name}' holds a {type(model).__name__}, not a Keras model.")
    return model


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _unsafe_reason(exc: BaseException) -> str | None:
    """Why Keras refused to load in safe mode, if that is why loading failed."""
    for link in _chain(exc):
        text = str(link)
        if "Lambda" in text or "lambda" in text and "safe_mode" in text:
            return "it contains a Lambda layer (Python code), which foldscope never executes."
        if "Could not locate" in text or "Unknown layer" in text or "register_keras_serializable" in text:
            found = re.search(r"(?:Could not locate (?:class|function)|Unknown layer:?) '?([\w.>]+)'?", text)
            what = f" ('{found.group(1)}')" if found else ""
            return (f"it needs custom code{what} that is not part of Keras; foldscope never imports "
                    "or runs code from a model file.")
    return None


def save_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save as .keras (the suffix is required by Keras 3)."""
    p = Path(path)
    if p.suffix != ".keras":
        raise FoldError(f"The folded model is written as .keras; got '{p.name}'.")
    p.parent.mkdir(parents=True, exist_ok=True)
    model.save(p)
    return p


def sample_inputs(model: keras.Model, samples: int = 4, seed: int = 0) -> list[np.ndarray]:
    """Seeded standard-normal inputs (uniform integers for integer inputs), one per model input."""
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = [samples] + [FREE_DIM if d is None else int(d) for d in tensor.shape[1:]]
        dtype = np.dtype(keras.backend.standardize_dtype(tensor.dtype))
        if dtype.kind in "iu":
            arrays.append(rng.integers(0, 10, size=shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.integers(0, 2, size=shape).astype(bool))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays


def _output_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers producing the model's outputs, in the order ``run`` returns them."""
    return [t._keras_history[0] for t in keras.tree.flatten(model.output)]


def output_names(model: keras.Model) -> list[str]:
    return [layer.name for layer in _output_layers(model)]


def output_channel_axes(model: keras.Model) -> list[int]:
    """Channel axis of each output: 1 after a channels_first layer, else the last axis."""
    return [1 if getattr(layer, "data_format", None) == "channels_first" else -1
            for layer in _output_layers(model)]


def run(model: keras.Model, inputs: list[np.ndarray], batch_size: int = 32) -> list[np.ndarray]:
    """The model's outputs (flattened, in ``model.outputs`` order) on ``inputs``, in inference mode."""
    n = inputs[0].shape[0]
    chunks: list[list[np.ndarray]] = []
    for start in range(0, n, batch_size):
        batch = [x[start:start + batch_size] for x in inputs]
        out = model(_structure(model, batch), training=False)
        chunks.append([np.asarray(o) for o in keras.tree.flatten(out)])
    return [np.concatenate(parts, axis=0) for parts in zip(*chunks)]


def _structure(model: keras.Model, flat: list[np.ndarray]):
    """Arrange flat inputs the way the model was built (one tensor, a list or a dict)."""
    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, dict):
        return keras.tree.pack_sequence_as(struct, flat)
    return flat[0] if len(flat) == 1 else flat
