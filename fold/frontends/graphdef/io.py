"""GraphDef frontend, input and output: read and write frozen GraphDefs, trace functions and
Keras models to them, find their inputs and outputs, run them in a TensorFlow session.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.framework import graph_pb2
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from fold.core.errors import FoldError, one_line
from fold.core.verification import InputSpec, OutputSpec, arrays_text
from fold.frontends.formats import LayerKernel, LayerRunner, Tap
from fold.frontends.graphdef.rewrite import with_kernels
from fold.frontends.graphdef.view import FILTER_INPUT, GraphDefView, node_of, tensor_name, view_of

@dataclass(eq=False)
class GraphModel:
    """A frozen GraphDef with the tensors it is fed and fetched by (``name:index``); compared and
    hashed by identity, so that the frontend can cache one view of each model."""

    graph_def: graph_pb2.GraphDef
    inputs: list[str]
    outputs: list[str]
    name: str = "graph"


def read_graph_def(path: str | os.PathLike) -> graph_pb2.GraphDef:
    """A frozen binary GraphDef from ``path``; a FoldError names the file when it is not one."""
    name = os.path.basename(os.fspath(path))
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise FoldError(f"Cannot read '{name}': {exc.strerror}.") from exc
    graph_def = graph_pb2.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except DecodeError as exc:
        raise FoldError(f"'{name}' is not a binary TensorFlow GraphDef ({one_line(exc)}).") from exc
    if not graph_def.node:
        raise FoldError(f"'{name}' holds no TensorFlow graph (no nodes).")
    try:
        with tf.Graph().as_default():
            tf.graph_util.import_graph_def(graph_def, name="")
    except Exception as exc:  # TensorFlow's own validation: unknown ops, bad inputs, bad attrs
        raise FoldError(f"'{name}' is not a valid TensorFlow graph: {one_line(exc, 160)}") from exc
    return graph_def


def graph_def_from_function(fn: Callable, *specs: tf.TensorSpec) -> graph_pb2.GraphDef:
    """The frozen GraphDef of a ``tf.function`` (traced with ``specs``) or of a concrete function."""
    concrete = fn if hasattr(fn, "structured_outputs") else fn.get_concrete_function(*specs)
    return convert_variables_to_constants_v2(concrete).graph.as_graph_def()


def _input_specs(model) -> list[tf.TensorSpec]:
    """The model's input signature: its Input tensors, or (subclassed models) the shapes it was built with."""
    if getattr(model, "inputs", None):
        return [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs]
    shapes = list((getattr(model, "_build_shapes_dict", None) or {}).values())
    if len(shapes) != 1:
        raise FoldError(f"Model '{model.name}' has no input signature; call it once on an input so that "
                        "foldscope can trace it.")
    return [tf.TensorSpec((None, *tuple(shapes[0])[1:]), tf.float32, name="input")]


def graph_def_from_keras(model) -> graph_pb2.GraphDef:
    """A Keras model traced in inference mode (``model(x, training=False)``) and frozen to ops."""
    specs = _input_specs(model)

    @tf.function
    def forward(*xs):
        return model(list(xs) if len(xs) > 1 else xs[0], training=False)

    return graph_def_from_function(forward, *specs)


def _checked(graph_def: graph_pb2.GraphDef, names: Iterable[str], what: str) -> list[str]:
    """``names`` as tensor names, each naming a node of the graph, or a FoldError."""
    nodes = {n.name for n in graph_def.node}
    tensors = [tensor_name(t) for t in names]
    missing = [t for t in tensors if node_of(t) not in nodes]
    if missing:
        raise FoldError(f"The graph has no tensor {missing[0]!r} (given in {what}).")
    return tensors


def io_names(graph_def: graph_pb2.GraphDef, inputs: Iterable[str] | None = None,
             outputs: Iterable[str] | None = None) -> tuple[list[str], list[str]]:
    """Input and output tensor names: the given ones checked, the others found; FoldError if neither."""
    result = []
    view = GraphDefView(graph_def)
    for what, given, find in (("inputs", inputs, view.find_inputs), ("outputs", outputs, view.find_outputs)):
        names = _checked(graph_def, given, what) if given else find()
        if not names:
            raise FoldError(f"Cannot tell the graph's {what}; give them explicitly (--{what} NAME,...).")
        result.append(names)
    return result[0], result[1]


def graph_model(graph_def: graph_pb2.GraphDef, name: str = "graph", inputs: Iterable[str] | None = None,
                outputs: Iterable[str] | None = None) -> GraphModel:
    """A GraphDef with its inputs and outputs: the given ones checked, the others found."""
    found_inputs, found_outputs = io_names(graph_def, inputs, outputs)
    return GraphModel(graph_def, found_inputs, found_outputs, name)


def input_specs(model: GraphModel) -> list[InputSpec]:
    """Each input placeholder's shape (None for an unknown dimension) and dtype."""
    nodes = {n.name: n for n in model.graph_def.node}
    specs = []
    for name in model.inputs:
        node = nodes[node_of(name)]
        shape = node.attr["shape"].shape
        if shape.unknown_rank:
            raise FoldError(f"Input {name!r} has an unknown rank; foldscope needs the rank to make sample inputs.")
        dims = tuple(None if d.size < 0 else int(d.size) for d in shape.dim)
        specs.append(InputSpec(name, dims, tf.dtypes.as_dtype(node.attr["dtype"].type).as_numpy_dtype.__name__))
    return specs


def channel_axis(graph_def: graph_pb2.GraphDef, output: str) -> int:
    node = next(n for n in graph_def.node if n.name == node_of(output))
    fmt = node.attr["data_format"].s.decode() if "data_format" in node.attr else "NHWC"
    return 1 if fmt.startswith("NC") else -1


def output_specs(model: GraphModel) -> list[OutputSpec]:
    return [OutputSpec(o, channel_axis(model.graph_def, o)) for o in model.outputs]


def runner(model: GraphModel) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    """One session on the graph; the returned function runs one batch of inputs through it."""
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(model.graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)

    def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(v) for v in _run(session, model, model.outputs, inputs)]

    return run


def _run(session: tf.compat.v1.Session, model: GraphModel, fetch: list[str], inputs: list[np.ndarray]) -> list:
    """``session.run`` of ``fetch`` on the model's inputs; TensorFlow's refusal of them is one FoldError
    naming the model and their shapes."""
    feeds = dict(zip(model.inputs, inputs))
    try:
        return session.run(fetch, feed_dict=feeds)
    except (tf.errors.OpError, ValueError) as exc:
        raise FoldError(f"TensorFlow cannot run '{model.name}' on {arrays_text(feeds)}: {one_line(exc, 200)}") from exc


def _session(graph_def: graph_pb2.GraphDef) -> tf.compat.v1.Session:
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    return tf.compat.v1.Session(graph=graph)


def _fetchable(session: tf.compat.v1.Session, names) -> list[str]:
    """The named ops that exist and have an output."""
    graph = session.graph
    ops = {op.name: op for op in graph.get_operations()}
    return [n for n in names if n in ops and ops[n].outputs]


def tapper(model: GraphModel, nodes=(), feeds=()) -> Callable[[list[np.ndarray]], Tap]:
    """One session: the outputs, output 0 of each named op and the data inputs of each fed op, in one run."""
    session = _session(model.graph_def)
    view = view_of(model)
    fed = {f: view.data_inputs(view.by_name[f]) for f in _fetchable(session, feeds)}
    taps = {n: f"{n}:0" for n in _fetchable(session, nodes)}
    fetch = list(dict.fromkeys([*model.outputs, *taps.values(), *(t for ts in fed.values() for t in ts)]))

    def run(xs: list[np.ndarray]) -> Tap:
        values = dict(zip(fetch, (np.asarray(v) for v in _run(session, model, fetch, xs))))
        return Tap([values[o] for o in model.outputs], {n: values[t] for n, t in taps.items()},
                   {f: [values[t] for t in ts] for f, ts in fed.items()})

    return run


def layer_runner(model: GraphModel, layers, magnitude: bool = False) -> LayerRunner:
    """Every op fed its data inputs (and the model inputs, which shape computations may read) and
    fetched at ``until``, in as few session runs as feeding allows (a tensor fed for one op cannot
    be fetched for another in the same run); with ``magnitude``, on a copy whose filters are
    |filters|, fetched at the op itself (no bias)."""
    view = view_of(model)
    graph_def = model.graph_def
    present = {name: until for name, until in layers if name in view.by_name and view.kind(view.by_name[name])}
    data = {name: view.data_inputs(view.by_name[name]) for name in present}
    if magnitude:
        graph_def = with_kernels(view, {n: LayerKernel(np.abs(view.value(view.by_name[n].inputs[FILTER_INPUT])), None,
                                                       view.kind(view.by_name[n])) for n in present})
    session = _session(graph_def)
    fetches = {name: f"{name if magnitude else until}:0" for name, until in present.items()}
    fed = {t for ts in data.values() for t in ts}
    together = [n for n in present if fetches[n] not in fed]
    runs = [together] if together else []
    runs += [[n] for n in present if fetches[n] in fed]

    def run(feeds, inputs) -> dict[str, np.ndarray]:
        found = {}
        for names in runs:
            feed = dict(zip(model.inputs, inputs))
            for name in names:
                feed.update(zip(data[name], feeds[name]))
            values = session.run([fetches[n] for n in names], feed_dict=feed)
            found.update({n: np.asarray(v) for n, v in zip(names, values)})
        return found

    return LayerRunner(frozenset(present), run)
