"""Keras frontend, input and output: load and save model files safely, describe and run a model.

Loading never executes code from the file: Keras ``safe_mode`` stays on, so a ``Lambda``
layer or an unknown custom class is refused with a "cannot load safely" message. When Keras
refuses a file, its config is read as JSON (``model_config`` of an .h5, ``config.json`` of a
.keras; no Keras, no code) to say in one sentence which layers it refuses and why: a name Keras 3
does not allow (a Keras 2 name with a '/'), a class Keras does not have (custom code).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from fold.core.errors import FoldError, UnsafeModelError, listed, one_line
from fold.core.quiet import quiet_stdout, quiet_warnings
from fold.core.verification import InputSpec, OutputSpec
from fold.frontends.formats import MAX_MODEL_BYTES, LayerRunner, Tap, check_model_file


def load_model(path: str | os.PathLike, max_bytes: int = MAX_MODEL_BYTES) -> keras.Model:
    """Check a file (``fold.frontends.formats.check_model_file``) and read it as a Keras model (``read_model``)."""
    fmt = check_model_file(path, max_bytes)
    if fmt.name != "keras":
        raise FoldError(f"'{Path(path).name}' is a {fmt.label} file, not a Keras model (.keras, .h5 or .hdf5).")
    return read_model(path)


def read_model(path: str | os.PathLike) -> keras.Model:
    """Read a .keras, .h5 or .hdf5 file already checked, with safe_mode on; any failure is one
    FoldError sentence."""
    name = Path(path).name
    with tempfile.TemporaryDirectory() as tmp, quiet_warnings():  # the failure, if any, is one sentence
        source = Path(path)
        if source.suffix != source.suffix.lower():  # Keras accepts only lower-case suffixes
            source = Path(tmp) / f"model{source.suffix.lower()}"
            source.symlink_to(Path(path).resolve())
        try:
            model = keras.saving.load_model(source, compile=False, safe_mode=True)
        except Exception as exc:
            refused = refused_layers(Path(path))
            if refused is not None:
                error = UnsafeModelError if refused[1] else FoldError
                raise error(f"Cannot load '{name}': {refused[0]}") from exc
            unsafe = _unsafe_reason(exc)
            if unsafe:
                raise UnsafeModelError(f"Cannot load '{name}' safely: {unsafe}") from exc
            message = _plain(one_line(exc).replace(str(source), name).replace(str(Path(path)), name))
            raise FoldError(f"Cannot load '{name}': {message}") from exc
    if not isinstance(model, keras.Model):
        raise FoldError(f"'{name}' holds a {type(model).__name__}, not a Keras model.")
    return model


_TRUNCATED = re.compile(r"truncated file: eof = (\d+).*stored_eof = (\d+)")


def _plain(message: str) -> str:
    """HDF5's own words for a damaged file, said plainly (a truncated file: how much of it is there)."""
    found = _TRUNCATED.search(message)
    if found:
        return f"the file is truncated ({int(found.group(1)):,} of its {int(found.group(2)):,} bytes are there)."
    if "file signature not found" in message or "Unable to synchronously open file" in message:
        return "it is not a readable HDF5 file (damaged, or another kind of file)."
    return message


#: The model classes Keras 3 rebuilds besides its layers (a Keras 2 file says "Model").
_MODELS = frozenset({"Functional", "Sequential", "Model"})
#: The keys under which a saved config holds layers (a model's list, a wrapper's layer).
_LAYER_KEYS = frozenset({"layers", "layer", "forward_layer", "backward_layer"})


#: The most of a .keras file's config.json read to say why Keras refused it (a bomb reads no further).
MAX_CONFIG_BYTES = 64 * 2**20


def saved_config(path: Path) -> dict | None:
    """A Keras file's model config as JSON, read without Keras (None when there is none to read, or it
    cannot be read: it only explains a refusal, so it never raises)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive, archive.open("config.json") as member:
                text = member.read(MAX_CONFIG_BYTES + 1)
            if len(text) > MAX_CONFIG_BYTES:
                return None
        else:
            import h5py

            with h5py.File(path, "r") as f:
                text = f.attrs.get("model_config")
        config = None if text is None else json.loads(text.decode() if isinstance(text, bytes) else text)
    except Exception:  # noqa: BLE001 - an encrypted member, an unknown compression, JSON nested past the stack
        return None
    return config if isinstance(config, dict) else None


def _layers(config: dict):
    """(class name, layer name) of every layer in a saved config, nested models' and wrappers' included
    (iterative: a crafted config may nest deeper than the stack)."""
    stack = [(config.get("config"), False)]
    while stack:
        node, is_layer = stack.pop()
        if isinstance(node, list):
            stack.extend((item, is_layer) for item in reversed(node))
        elif isinstance(node, dict):
            inner = node.get("config")
            if is_layer and isinstance(node.get("class_name"), str) and isinstance(inner, dict):
                yield node["class_name"], str(inner.get("name", "?"))
            stack.extend((value, key in _LAYER_KEYS) for key, value in reversed(list(node.items())))


def refused_layers(path: Path) -> tuple[str, bool] | None:
    """What in the file's config Keras 3 refuses, as the end of one sentence, and whether custom code is
    among it; None when its config names no such layer (the reason is elsewhere)."""
    config = saved_config(path)
    if config is None:
        return None
    layers = list(_layers(config))
    if config.get("class_name") not in _MODELS and isinstance(config.get("class_name"), str):
        layers.insert(0, (config["class_name"], str((config.get("config") or {}).get("name", "?"))))
    slashed = [f"'{n}' ({c})" for c, n in layers if "/" in n]
    custom = [f"'{n}' ({c})" for c, n in layers if c not in _MODELS and not hasattr(keras.layers, c)]
    parts = []
    if slashed:
        parts.append(f"layer {listed(slashed, 3)} has a name Keras 3 refuses (no '/' in a Keras 3 name)" if
                     len(slashed) == 1 else f"layers {listed(slashed, 3)} have names Keras 3 refuses (no '/' in a "
                     "Keras 3 name)")
    if custom:
        parts.append(f"layer {listed(custom, 3)} needs custom code (its class is not part of Keras)"
                     if len(custom) == 1 else
                     f"layers {listed(custom, 3)} need custom code (their classes are not part of Keras)")
    if not parts:
        return None
    if custom:
        fix = "export the model to ONNX (tf2onnx) or TFLite where that code is, and fold that file"
    else:
        fix = (f"rename {'it' if len(slashed) == 1 else 'them'} where the model was made and save it again, or "
               "export the model to ONNX (tf2onnx) or TFLite there, and fold that file")
    never = ", which foldscope never runs" if custom else ""
    return f"{', and '.join(parts)}{never}; {fix}.", bool(custom)


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


def to_bytes(model: keras.Model) -> bytes:
    """The .keras file of ``model``, as bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        return save_model(model, Path(tmp) / "model.keras").read_bytes()


def input_specs(model: keras.Model) -> list[InputSpec]:
    """The model's inputs: name, shape (batch axis free) and dtype."""
    return [InputSpec(t.name, (None, *(None if d is None else int(d) for d in t.shape[1:])),
                      keras.backend.standardize_dtype(t.dtype)) for t in model.inputs]


def _output_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers producing the model's outputs, in the order ``run`` returns them."""
    try:
        return [t._keras_history[0] for t in keras.tree.flatten(model.output)]
    except AttributeError:  # a Sequential model that was built but never called
        if isinstance(model, keras.Sequential) and model.layers:
            return [model.layers[-1]]
        raise


def output_specs(model: keras.Model) -> list[OutputSpec]:
    """Name and channel axis of each output: 1 after a channels_first layer, else the last axis."""
    return [OutputSpec(layer.name, 1 if getattr(layer, "data_format", None) == "channels_first" else -1)
            for layer in _output_layers(model)]


def run(model: keras.Model, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The model's outputs (flattened, in ``model.outputs`` order) on one batch, in inference mode."""
    out = model(_structure(model, inputs), training=False)
    return [np.asarray(o) for o in keras.tree.flatten(out)]


def _only_node(layer: keras.layers.Layer):
    """The layer's one call in its model (None for a shared or never-called layer)."""
    nodes = getattr(layer, "_inbound_nodes", None) or []
    return nodes[0] if len(nodes) == 1 else None


def _call_output(layer: keras.layers.Layer):
    """The first output tensor of the layer's (only) call in its model, or None."""
    node = _only_node(layer)
    outputs = keras.tree.flatten(node.output_tensors) if node is not None else []
    return outputs[0] if outputs else None


def _call_inputs(layer: keras.layers.Layer) -> list | None:
    """The tensors the layer's (only) call received, or None."""
    node = _only_node(layer)
    return None if node is None else list(keras.tree.flatten(node.input_tensors))


def _layer(model: keras.Model, name: str) -> keras.layers.Layer | None:
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def tapper(model: keras.Model, nodes=(), feeds=()) -> Callable[[list[np.ndarray]], Tap]:
    """One multi-output model over the same layers: the outputs, the output of each named layer and
    the inputs of each fed layer. A path into a nested model ("outer/inner") is tapped inside it,
    fed what the nested model receives; shared layers are left out."""
    inputs = list(model.inputs)
    ids = {id(t): i for i, t in enumerate(inputs)}
    tensors: list = list(model.outputs)

    def slot(tensor) -> tuple[str, int]:  # where a tensor's value comes from: a model input or the tap
        if id(tensor) in ids:
            return "input", ids[id(tensor)]
        tensors.append(tensor)
        return "tap", len(tensors) - 1

    own: dict[str, tuple[str, int]] = {}
    fed: dict[str, list[tuple[str, int]]] = {}
    nested: dict[str, tuple[list[str], list[str]]] = {}
    for kind, paths in (("node", nodes), ("feed", feeds)):
        for path in paths:
            head, _, rest = path.partition("/")
            if rest:
                inner = nested.setdefault(head, ([], []))
                inner[0 if kind == "node" else 1].append(rest)
                continue
            layer = _layer(model, head)
            if layer is None:
                continue
            if kind == "node":
                if isinstance(layer, keras.layers.InputLayer):
                    tensor = layer.output
                else:
                    tensor = _call_output(layer)
                if tensor is not None:
                    own[path] = slot(tensor)
            else:
                found = _call_inputs(layer)
                if found is not None:
                    fed[path] = [slot(t) for t in found]
    inner_taps = {}
    for head, (inner_nodes, inner_feeds) in nested.items():
        layer = _layer(model, head)
        if isinstance(layer, keras.Model) and _call_inputs(layer) is not None and getattr(layer, "inputs", None):
            fed.setdefault(head, [slot(t) for t in _call_inputs(layer)])
            inner_taps[head] = tapper(layer, inner_nodes, inner_feeds)
    tap = keras.Model(inputs, tensors)
    n_out = len(model.outputs)

    def run(xs: list[np.ndarray]) -> Tap:
        values = [np.asarray(v) for v in keras.tree.flatten(tap(list(xs), training=False))]

        def value(where: tuple[str, int]) -> np.ndarray:
            return np.asarray(xs[where[1]]) if where[0] == "input" else values[where[1]]

        found = Tap(values[:n_out], {p: value(w) for p, w in own.items()},
                    {p: [value(w) for w in ws] for p, ws in fed.items() if p in feeds})
        for head, inner in inner_taps.items():
            sub = inner([value(w) for w in fed[head]])
            found.nodes.update({f"{head}/{p}": v for p, v in sub.nodes.items()})
            found.feeds.update({f"{head}/{p}": v for p, v in sub.feeds.items()})
        return found

    return run


def zeroed(config: dict) -> dict:
    """A layer's config whose weight initializers draw zeros: for a copy whose weights are set right
    after, where drawing random ones (a glorot 3x3x512x512 kernel) costs more than the rest of it."""
    return {k: "zeros" if k.endswith("_initializer") and v is not None else v for k, v in config.items()}


def copy_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """``keras.models.clone_model``'s copy of one layer, its weights not drawn (the caller sets them)."""
    config = layer.get_config()
    return type(layer).from_config(config if isinstance(layer, keras.Model) else zeroed(config))


def _twin(layer: keras.layers.Layer, magnitude: bool, name: str) -> keras.layers.Layer:
    """A copy of the layer named ``name`` (not called in any model, its weights not drawn but set): the
    same weights, or, with ``magnitude``, |weights|, no bias and no activation, which computes Σ|W||x|
    on |x| (a partial fold's Rescaling: no offset)."""
    config = zeroed({**layer.get_config(), "name": name})
    if magnitude and "activation" in config:
        config["activation"] = "linear"
    if magnitude and isinstance(layer, keras.layers.Rescaling):
        config["offset"] = 0.0
    twin = type(layer).from_config(config)
    twin.build(tuple(_call_inputs(layer)[0].shape))
    by_name = {w.name: w for w in layer.weights}
    for weight in twin.weights:
        value = np.asarray(by_name[weight.name].numpy())
        if magnitude:
            value = np.zeros_like(value) if weight.name == "bias" else np.abs(value)
        weight.assign(value)
    return twin


#: Layers a path run alone holds at most (a layer and the BatchNormalizations after it).
MAX_PATH = 8


def _path(model: keras.Model, path: str, until: str) -> list[keras.layers.Layer] | None:
    """The layers from ``path`` to ``until`` (graph paths), each the only caller of the output of the one
    before, called once with one input; None when there is no such path."""
    from fold.frontends.keras.match import layer_at

    try:
        first, last = layer_at(model, path), layer_at(model, until)
    except ValueError:
        return None
    found = [last]
    while found[0] is not first:
        fed = _call_inputs(found[0])
        if fed is None or len(fed) != 1 or len(found) >= MAX_PATH:
            return None
        history = getattr(fed[0], "_keras_history", None)
        if history is None or _call_output(history[0]) is not fed[0]:
            return None
        found.insert(0, history[0])
    fed = _call_inputs(first)
    return found if fed is not None and len(fed) == 1 else None


def layer_runner(model: keras.Model, layers, magnitude: bool = False) -> LayerRunner:
    """Each path from a layer through ``until``, on an input of its own, each layer reading the one before
    (a layer and its BatchNorms; or, for a forward fold, the Flatten or Rescaling before it from where the
    BN was). The model's own layers are called, eagerly (an eager call adds nothing to the model, and
    copies nothing). With ``magnitude`` a path runs through its first layer with a kernel only, in copies
    held by one model called once per batch, that layer with |weights|, no bias, no activation.

    Every layer of that model is named here: Keras' automatic names come from counters that
    ``keras.backend.clear_session`` resets in every thread at once (Streamlit calls it after each
    script run), so two automatic "input_layer"s of one model could meet; two nested models'
    layers may share a name too."""
    from fold.core.kinds import KERAS_KINDS

    chains: dict[str, list[keras.layers.Layer]] = {}
    for path, until in layers:
        found = _path(model, path, until)
        linear = [k for k, layer in enumerate(found or []) if type(layer).__name__ in KERAS_KINDS]
        if linear:
            chains[path] = found[:linear[0] + 1] if magnitude else found
    names = list(chains)
    if not magnitude:
        def run(feeds, _inputs) -> dict[str, np.ndarray]:
            found = {}
            for name, chain in chains.items():
                y = feeds[name][0]
                for layer in chain:
                    y = layer(y, training=False)
                found[name] = np.asarray(y)
            return found

        return LayerRunner(frozenset(names), run)

    inputs, outputs = [], []
    for i, chain in enumerate(chains.values()):
        fed = _call_inputs(chain[0])
        x = keras.Input(tuple(fed[0].shape)[1:], dtype=fed[0].dtype, name=f"alone{i}_input")
        inputs.append(x)
        y = x
        for k, layer in enumerate(chain):
            y = _twin(layer, type(layer).__name__ in KERAS_KINDS or isinstance(layer, keras.layers.Rescaling),
                      f"alone{i}_{k}")(y)
        outputs.append(y)
    alone = keras.Model(inputs, outputs) if names else None

    def run_magnitude(feeds, _inputs) -> dict[str, np.ndarray]:
        values = alone([feeds[n][0] for n in names], training=False)
        return {n: np.asarray(v) for n, v in zip(names, keras.tree.flatten(values))}

    return LayerRunner(frozenset(names), run_magnitude)


def to_tflite(model: keras.Model) -> bytes:
    """Convert with TensorFlow's TFLite converter (float32, default optimizations off)."""
    import tensorflow as tf

    # Keras' export prints the traced signature on stdout; the command line owns stdout.
    with quiet_stdout():
        try:
            return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        except Exception as exc:
            raise FoldError(f"TensorFlow's converter cannot convert '{model.name}': {one_line(exc)}") from exc


def _structure(model: keras.Model, flat: list[np.ndarray]):
    """Arrange flat inputs the way the model was built (one tensor, a list or a dict)."""
    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, dict):
        return keras.tree.pack_sequence_as(struct, flat)
    return flat[0] if len(flat) == 1 else flat
