"""ONNX frontend, input and output: read .onnx files safely, describe them, run them with onnxruntime.

Reading: ``onnx.load`` without external data first, so that a tensor stored outside the
model's own folder (an absolute ``location``, or one that climbs out with ``..``) is refused
before anything is read; uploads may carry no external data at all. Then ``onnx.checker``,
an opset check (9 up to the newest the installed ``onnx`` knows) and shape inference. A model
with external data is never loaded whole (``fold.frontends.onnx.external``): its graph is
checked from its path, its tensors stay in their files, and onnxruntime reads them itself.
Custom-domain ops and model functions are shown in the graph and run by onnxruntime only:
a model onnxruntime cannot load is refused here, with its reason.

Running: onnxruntime on the CPU with every graph optimization off (``ORT_DISABLE_ALL``), so
that onnxruntime's own fusions (Conv + BatchNormalization among them) cannot hide an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np
import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from fold.core.errors import FoldError, one_line
from fold.core.verification import InputSpec, OutputSpec, arrays_text
from fold.frontends.formats import LayerRunner, Tap
from fold.frontends.onnx.external import ExternalData, held_tensor, is_external, is_held, model_tensors
from fold.frontends.onnx.model import OnnxModel, onnx_model
from fold.frontends.onnx.view import OnnxView, view_of
from fold.frontends.ops.view import values_read

#: Opsets foldscope reads: BatchNormalization took its inference form in opset 9.
MIN_OPSET = 9


def load_model(path: str | os.PathLike, external_data: bool = True) -> OnnxModel:
    """Read, check and prepare an .onnx file; any problem is one FoldError sentence naming the file.

    ``external_data`` False refuses a model whose tensors live in other files (an upload is
    one file). A model with external data is read without it: its tensors stay in their files
    (``fold.frontends.onnx.external``), whatever their size.
    """
    p = Path(path)
    try:
        proto = onnx.load_model(str(p), load_external_data=False)
    except DecodeError as exc:  # the parser's own words ("Wire format was corrupt") say nothing to a user
        raise FoldError(f"'{p.name}' is not a valid ONNX model: its bytes do not parse as one (a truncated or "
                        "damaged file?).") from exc
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        raise FoldError(f"'{p.name}' is not a valid ONNX model ({one_line(exc, 160)}).") from exc
    except OSError as exc:
        raise FoldError(f"Cannot read '{p.name}': {exc.strerror}.") from exc
    locations = external_locations(proto)
    if not locations:
        return prepare(proto, p.name)
    if not external_data:
        raise FoldError(f"'{p.name}' keeps tensors in other files ('{locations[0]}'); an uploaded model "
                        "must hold all its data.")
    _check_locations(p, locations)
    external = ExternalData(p.parent, p.name)
    for tensor in model_tensors(proto):
        if is_external(tensor):
            external.source(tensor)  # every range is inside its file, before anything is read
    return prepare(proto, p.name, external)


def external_locations(proto: onnx.ModelProto) -> list[str]:
    """The ``location`` of every tensor stored outside the model file (model functions included)."""
    return [entry.value for tensor in model_tensors(proto) if is_external(tensor)
            for entry in tensor.external_data if entry.key == "location"]


def _check_locations(path: Path, locations: list[str]) -> None:
    """Every external location is a relative path inside the model's folder."""
    for location in locations:
        parts = PurePosixPath(location.replace("\\", "/"))
        if parts.is_absolute() or Path(location).is_absolute() or ".." in parts.parts or ":" in location:
            raise FoldError(f"'{path.name}' refers to external data '{location}' outside its own folder; "
                            "foldscope reads only files beside the model.")


def prepare(proto: onnx.ModelProto, name: str = "model.onnx", external: ExternalData | None = None) -> OnnxModel:
    """Check a model (structure, opset, onnxruntime can load it) and wrap it with its shapes.

    A model with ``external`` data is checked from its file (``onnx.checker`` with the path, which
    sees that its data files exist without reading them) and is loaded by onnxruntime only when
    it runs: loading gigabytes of weights is what a fold without verification must not do.
    """
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        raise FoldError(f"'{name}' imports no version of the default ONNX opset.")
    if opset < MIN_OPSET or opset > newest:
        raise FoldError(f"'{name}' uses opset {opset}; foldscope reads opsets {MIN_OPSET} to {newest} "
                        f"(the newest onnx {onnx.__version__} knows).")
    try:
        onnx.checker.check_model(proto if external is None else str(external.folder / name))
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise FoldError(f"'{name}' is not a valid ONNX model: {one_line(exc, 160)}") from exc
    model = onnx_model(proto, name, external)
    if external is None:
        session(model)  # a model onnxruntime cannot load is a bad input, named here
    return model


class Session:
    """An onnxruntime session, with the initializers it is fed at every run (``ExternalData.fed``)."""

    def __init__(self, found: ort.InferenceSession, fed: dict[str, np.ndarray]):
        self.found, self.fed = found, fed

    def run(self, fetch: list[str], feeds: dict[str, np.ndarray]) -> list:
        return self.found.run(fetch, {**feeds, **self.fed})


def session(model: OnnxModel) -> Session:
    """An onnxruntime CPU session with every graph optimization off. A model with external data is
    handed over without it: onnxruntime maps the tensors in the model's folder itself, and is fed
    those of the scratch file (views of its map) and those the model holds in memory at each run,
    as inputs (``ExternalData.fed``): an initializer handed over any other way is copied."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    proto, fed = model.proto, {}
    if model.external is not None:
        options.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                         str(model.external.folder.resolve()))
        fed = model.external.fed(model.proto, model.arrays)
        if fed:
            proto = _as_inputs(model.proto, fed)
    try:
        found = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for every refusal
        raise FoldError(f"onnxruntime cannot run '{model.name}': {one_line(exc, 200)}") from exc
    return Session(found, fed)


def _as_inputs(proto: onnx.ModelProto, names) -> onnx.ModelProto:
    """A copy of ``proto`` whose initializers of ``names`` are graph inputs instead."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    graph = copy.graph
    moved = [t for t in graph.initializer if t.name in names]
    kept = [t for t in graph.initializer if t.name not in names]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    listed = {v.name for v in graph.input}
    graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                       for t in moved if t.name not in listed)
    return copy


def _run(found: Session, name: str, fetch: list[str], feeds: dict[str, np.ndarray]) -> list:
    """``found.run``; onnxruntime's refusal of these inputs is one FoldError naming the model and their shapes."""
    try:
        return found.run(fetch, feeds)
    except Exception as exc:  # onnxruntime raises its own exception types for every refusal
        raise FoldError(f"onnxruntime cannot run '{name}' on {arrays_text(feeds)}: {one_line(exc, 200)}") from exc


def _dtype(elem_type: int) -> str:
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name


def input_specs(model: OnnxModel) -> list[InputSpec]:
    """The graph inputs that are not initializers: name, shape (None for a symbolic or missing
    dimension) and dtype."""
    specs = []
    for value in model.feeds:
        dims = value.type.tensor_type.shape.dim
        shape = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)
        specs.append(InputSpec(value.name, shape, _dtype(value.type.tensor_type.elem_type)))
    return specs


def output_specs(model: OnnxModel) -> list[OutputSpec]:
    """The graph outputs; ONNX tensors are channels-first, so the channels are on axis 1."""
    return [OutputSpec(value.name, 1 if len(value.type.tensor_type.shape.dim) != 1 else -1)
            for value in model.proto.graph.output]


def runner(model: OnnxModel) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    """One onnxruntime session for the model; the returned function runs one batch through it."""
    found = session(model)
    names = [v.name for v in model.feeds]
    outputs = [v.name for v in model.proto.graph.output]

    def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(v) for v in _run(found, model.name, outputs, dict(zip(names, inputs)))]

    return run


def to_bytes(model: OnnxModel) -> bytes:
    """The model as one file's bytes; a model with external data has no such form."""
    if model.external is not None:
        raise FoldError(f"'{model.name}' keeps its tensors in external data; write it to a file instead.")
    return model.proto.SerializeToString()


def write(model: OnnxModel, path: str | os.PathLike) -> None:
    """The model at ``path``; one with external data gets ``path.data`` beside it (``ExternalData.write``)."""
    if model.external is None:
        Path(path).write_bytes(model.proto.SerializeToString())
    elif not model.arrays:
        model.external.write(model.proto, Path(path))
    else:  # what the model holds in memory goes to the scratch file first, then with the rest
        proto = onnx.ModelProto()
        proto.CopyFrom(model.proto)
        for tensor in proto.graph.initializer:
            if tensor.name in model.arrays and is_held(tensor):
                tensor.CopyFrom(model.external.store(model.arrays[tensor.name], tensor.name))
        model.external.write(proto, Path(path))


def _data_inputs(view: OnnxView, op) -> list[str]:
    """The activation a linear op reads (its kind's data input), else every input that is not a constant."""
    kind = view.kind(op)
    if kind is not None:
        return [op.inputs[kind.data_input]]
    return [t for t in op.inputs if t and not view.is_constant(t)]


def tapper(model: OnnxModel, nodes=(), feeds=()) -> Callable[[list[np.ndarray]], Tap]:
    """One session on a copy of the model that also outputs every tapped tensor (optimizations off)."""
    view = view_of(model)
    by_name = view.by_name
    fed = view.feeds
    outputs = [v.name for v in model.proto.graph.output]
    node_tensors = {n: by_name[n].output for n in nodes if n in by_name and by_name[n].output}
    node_tensors |= {n: n for n in nodes if n in fed}  # a graph input's node is the input itself
    feed_tensors = {f: _data_inputs(view, by_name[f]) for f in feeds if f in by_name}
    extra = [t for t in dict.fromkeys([*node_tensors.values(), *(t for ts in feed_tensors.values() for t in ts)])
             if t not in fed and t not in outputs]
    tapped = onnx.ModelProto()
    tapped.CopyFrom(model.proto)
    tapped.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in extra)
    found = session(OnnxModel(tapped, model.name, model.shapes, model.external, model.arrays))
    fetch = [*outputs, *extra]

    def run(xs: list[np.ndarray]) -> Tap:
        values = dict(zip(fetch, (np.asarray(v) for v in _run(found, model.name, fetch, dict(zip(fed, xs))))))
        values.update(zip(fed, (np.asarray(x) for x in xs)))
        return Tap([values[o] for o in outputs], {n: values[t] for n, t in node_tensors.items()},
                   {f: [values[t] for t in ts] for f, ts in feed_tensors.items()})

    return run


#: Ops a path run alone holds at most (a forward fold's map, reshapes, activation, layer and the maps after it).
MAX_PATH = 16


def _path(view: OnnxView, layer, until: str) -> list | None:
    """The ops from ``layer`` to ``until``, each the only reader of the one before (None if there is no such path)."""
    path = [layer]
    while path[-1].id != until:
        readers = values_read(view, path[-1].output)
        if len(readers) != 1 or len(path) > MAX_PATH:
            return None
        path.append(readers[0])
    return path


def _linear(view: OnnxView, path: list):
    """The path's layer: its first op with a kind and a constant weight (None when it has none)."""
    return next((op for op in path if view.kind(op) is not None and view.is_constant(op.inputs[1])), None)


def _constant(model: OnnxModel, view: OnnxView, tensor: str, value: np.ndarray, name: str,
              held: dict[str, np.ndarray]) -> onnx.TensorProto:
    """``value`` (of ``tensor``) as initializer ``name`` of a model of its own: for a model with external
    data, the same bytes of the same file when it is an external initializer of a file unchanged, else
    an array that model holds (put in ``held``)."""
    if model.external is None:
        return numpy_helper.from_array(np.asarray(value), name)
    stored = view.initializers.get(tensor)
    if stored is not None and is_external(stored) and not is_held(stored) and view.producer(tensor) is None and \
            value is view.value(tensor):
        same = onnx.TensorProto()
        same.CopyFrom(stored)
        same.name = name
        return same
    held[name] = np.ascontiguousarray(value)
    return held_tensor(held[name], name)


def _alone(model: OnnxModel, view: OnnxView, paths: dict[str, list], magnitude: bool
           ) -> tuple[onnx.ModelProto, dict[str, tuple[list[str], str]], dict[str, np.ndarray]]:
    """One model holding each path alone, its tensors renamed apart ("<layer>::<tensor>"): the first
    op's data inputs become graph inputs, every constant an initializer (magnitude: |weight|, zero
    bias and zero added constants; what reshapes read stays). Returns it, layer -> (its graph inputs, its graph
    output) and the arrays it holds (a model with external data: ``_constant``)."""
    nodes, inputs, outputs, inits, ends, held = [], [], [], [], {}, {}
    for name, path in paths.items():
        layer = _linear(view, path)
        elem = onnx.helper.np_dtype_to_tensor_dtype(view.value(layer.inputs[1]).dtype)
        renamed = {t: f"{name}::{t}" for op in path for t in [*op.inputs, *op.outputs] if t}
        for op in path:
            for slot, t in enumerate(op.inputs):
                if t and view.is_constant(t):
                    value = view.value(t)
                    if magnitude and op is layer:
                        value = np.abs(value) if slot == 1 else np.zeros_like(value)
                    elif magnitude and op.type in view.vocabulary.adds:
                        value = np.zeros_like(value)  # a reshape's shape, a Squeeze's axes stay
                    inits.append(_constant(model, view, t, value, renamed[t], held))
                    if model.external is not None:
                        model.external.release()  # the pages |weight| read: one layer's at a time
            copy = onnx.NodeProto()
            copy.CopyFrom(view.node(op))
            copy.name = f"{name}::{op.id}"
            copy.input[:] = [renamed.get(t, t) for t in op.inputs]
            copy.output[:] = [renamed.get(t, t) for t in op.outputs]
            nodes.append(copy)
        fed = [renamed[t] for t in _data_inputs(view, path[0])]
        inputs += [onnx.helper.make_tensor_value_info(t, elem, None) for t in fed]
        out = renamed[path[-1].output]
        outputs.append(onnx.helper.make_tensor_value_info(out, elem, None))
        ends[name] = (fed, out)
    graph = onnx.helper.make_graph(nodes, "layers_alone", inputs, outputs, inits)
    alone = onnx.helper.make_model(graph, opset_imports=list(model.proto.opset_import))
    alone.ir_version = model.proto.ir_version
    return alone, ends, held


def layer_runner(model: OnnxModel, layers, magnitude: bool = False) -> LayerRunner:
    """Every path from a node through ``until`` (a layer and the ops after it; or, for a forward fold, the
    ops before it from where the map was) in one model of its own in onnxruntime (``magnitude``: the
    layer's |weights|, no bias, no added constants). A layer whose output has no batch axis apart from
    its channels (a MatMul of a vector) is left out: its samples cannot be told apart, so it is checked
    at the outputs."""
    view = view_of(model)
    paths = {}
    for name, until in layers:
        op = view.by_name.get(name)
        path = None if op is None else _path(view, op, until)
        layer = None if path is None else _linear(view, path)
        if layer is None:
            continue
        shape = view.shape(layer.output)
        if shape is not None and len(shape) < 2:
            continue
        paths[name] = path
    if not paths:
        return LayerRunner(frozenset(), lambda feeds, inputs: {})
    made: list = []

    def build() -> tuple[Session, dict]:
        alone, ends, held = _alone(model, view, paths, magnitude)
        return session(OnnxModel(alone, model.name, external=model.external, arrays=held)), ends

    if model.external is None:
        made.append(build())

    def run(feeds, _inputs) -> dict[str, np.ndarray]:
        if not made:  # with external data, built when first run: its weights in memory only while it lives
            made.append(build())
        found, ends = made[0]
        given = {t: x for name, (fed, _) in ends.items() for t, x in zip(fed, feeds[name])}
        values = found.run([out for _, out in ends.values()], given)
        return {name: np.asarray(v) for name, v in zip(ends, values)}

    return LayerRunner(frozenset(paths), run)
