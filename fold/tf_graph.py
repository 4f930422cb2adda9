"""TensorFlow graph frontend: read, show, fold and verify frozen GraphDefs at the op level.

BEFORE                                        AFTER
    x -> Conv2DBackpropInput(filter=W)            x -> Conv2DBackpropInput(filter=W*s)
      -> [BiasAdd(b)]                               -> BiasAdd(b*s + t), named like the BN
      -> FusedBatchNormV3 "bn"  (or Mul -> Add)     -> consumers of "bn"
      -> consumers of "bn"

The filter ``Const`` gets the scaled value under its own name; one ``BiasAdd`` (with the
linear op's data_format) carrying the folded bias replaces the old bias add and the BN nodes
and *takes the name of the last BN node*, so that consumers, control dependencies and
fetch names ("bn", "bn:0") keep resolving without any rewiring. Constants that fed only the
removed nodes (the BN's statistics, Keras's Rsqrt sub-graph) are dropped; every other node
is kept. The input GraphDef is never modified. The chains and their rules live in
``fold.tf_rules``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.framework import graph_pb2, node_def_pb2
from tensorflow.python.framework import tensor_util
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from fold.affine import fold_kernel
from fold.errors import FoldError, one_line
from fold.graph import role_of
from fold.rules import Decision, FoldOutcome
from fold.tf_rules import TF_KINDS, OpCandidate, OpIndex, analyse, node_of, tensor_name
from fold.verification import Verification, compare

_NO_OUTPUT_OPS = ("Const", "NoOp", "Assert")
_CONFIG_ATTRS = ("strides", "padding", "data_format", "dilations", "epsilon", "is_training",
                 "transpose_a", "transpose_b", "dtype", "shape")


# -- files and sources ------------------------------------------------------------------------

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


def write_graph_def(graph_def: graph_pb2.GraphDef, path: str | os.PathLike) -> None:
    with open(path, "wb") as fh:
        fh.write(graph_def.SerializeToString())


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


def seed_graph_def() -> graph_pb2.GraphDef:
    """The seed's second example as ops: placeholder "Hole", conv2d_transpose, fused_batch_norm."""
    graph = tf.Graph()
    with graph.as_default():
        hole = tf.compat.v1.placeholder(tf.float32, shape=(1, 2, 2, 1), name="Hole")
        filter_ = tf.compat.v1.constant(np.ones(9).reshape((3, 3, 1, 1)), dtype=tf.float32)
        tconv = tf.compat.v1.nn.conv2d_transpose(hole, filter_, output_shape=(1, 4, 4, 1),
                                                 strides=[1, 1, 1, 1], padding="VALID")
        scale = tf.compat.v1.constant([1.0177339315414429], dtype=tf.float32)
        offset = tf.compat.v1.constant([0.015628524124622345], dtype=tf.float32)
        mean = tf.compat.v1.constant([1.027155211195349693], dtype=tf.float32)
        variance = tf.compat.v1.constant([0.25580066442489624], dtype=tf.float32)
        tf.compat.v1.nn.fused_batch_norm(tconv, scale, offset, mean=mean, variance=variance,
                                         epsilon=0.0010000000474974513, is_training=False)
    return graph.as_graph_def()


# -- inputs and outputs -----------------------------------------------------------------------

def find_inputs(graph_def: graph_pb2.GraphDef) -> list[str]:
    """Placeholders without inputs, as tensor names."""
    return [f"{n.name}:0" for n in graph_def.node if n.op == "Placeholder" and not n.input]


def find_outputs(graph_def: graph_pb2.GraphDef) -> list[str]:
    """Output 0 of every op nobody reads (data or control) that depends on an input."""
    ix = OpIndex(graph_def)
    read = {node_of(t) for t in ix.users} | set(ix.control_users)
    return [f"{n.name}:0" for n in graph_def.node
            if n.name not in read and n.op not in _NO_OUTPUT_OPS and not ix.is_constant(n.name)]


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
    for what, given, find in (("inputs", inputs, find_inputs), ("outputs", outputs, find_outputs)):
        names = _checked(graph_def, given, what) if given else find(graph_def)
        if not names:
            raise FoldError(f"Cannot tell the graph's {what}; give them explicitly (--{what} NAME,...).")
        result.append(names)
    return result[0], result[1]


# -- the op graph -----------------------------------------------------------------------------

def _shapes(graph_def: graph_pb2.GraphDef) -> dict[str, tuple]:
    """Tensor name -> static shape (None for unknown dims), from TensorFlow's shape inference."""
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    shapes = {}
    for op in graph.get_operations():
        for t in op.outputs:
            shapes[t.name] = tuple(t.shape.as_list()) if t.shape.rank is not None else None
    return shapes


def _attr_value(value) -> object:
    kind = value.WhichOneof("value")
    if kind == "s":
        return value.s.decode()
    if kind == "list":
        return list(value.list.i)
    if kind == "type":
        return tf.dtypes.as_dtype(value.type).name
    if kind == "shape":
        return str(tf.TensorShape(value.shape))
    return getattr(value, kind)


def _config(node: node_def_pb2.NodeDef) -> dict:
    return {key: _attr_value(node.attr[key]) for key in _CONFIG_ATTRS if key in node.attr}


def _role(op: str) -> str:
    return "linear" if op in TF_KINDS else role_of(op)


def op_graph(graph_def: graph_pb2.GraphDef, show_consts: bool = False, *, bn_nodes: Iterable[str] = (),
             outputs: Iterable[str] | None = None, name: str = "graph") -> nx.DiGraph:
    """foldscope's graph of the ops; constants become ``weights`` of their readers unless ``show_consts``.

    Constants are the ops computed from Const ops alone (a frozen Keras model's Identity and
    Rsqrt sub-graphs too). ``bn_nodes`` get role "bn" as well (the Mul and Add of a
    decomposed BatchNorm); ``outputs`` default to the ones ``find_outputs`` finds.
    """
    ix = OpIndex(graph_def)
    shapes = _shapes(graph_def)
    bn = set(bn_nodes)
    hidden = set() if show_consts else {n.name for n in graph_def.node if ix.is_constant(n.name)}
    g = nx.DiGraph(name=name, frontend="graphdef", inputs=[node_of(t) for t in find_inputs(graph_def)],
                   outputs=[node_of(t) for t in (outputs or find_outputs(graph_def))])
    for node in graph_def.node:
        if node.name in hidden:
            continue
        weights = {(node_of(t) if t.endswith(":0") else t): shapes.get(t)
                   for t in ix.data_inputs(node.name) if node_of(t) in hidden}
        g.add_node(node.name, op=node.op, role="bn" if node.name in bn else _role(node.op),
                   config=_config(node), weights=weights, calls=1)
    for node in graph_def.node:
        if node.name in hidden:
            continue
        for t in ix.data_inputs(node.name):
            if node_of(t) not in hidden:
                g.add_edge(node_of(t), node.name, shape=shapes.get(t))
    return g


# -- the rewrite ------------------------------------------------------------------------------

def _const_node(name: str, value: np.ndarray) -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name=name, op="Const")
    node.attr["dtype"].type = tf.dtypes.as_dtype(value.dtype).as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value))
    return node


def _unique(name: str, taken: set[str]) -> str:
    candidate, i = name, 1
    while candidate in taken:
        candidate, i = f"{name}_{i}", i + 1
    return candidate


def _bias_add(out: node_def_pb2.NodeDef, c: OpCandidate, bias_name: str,
              controls: list[str]) -> node_def_pb2.NodeDef:
    """The BiasAdd replacing the chain: the name and device of its last node, the linear op's format."""
    node = node_def_pb2.NodeDef(name=out.name, op="BiasAdd", device=out.device)
    node.input.extend([c.layer, bias_name, *controls])
    node.attr["T"].type = tf.dtypes.as_dtype(c.kernel.dtype).as_datatype_enum
    node.attr["data_format"].s = b"NCHW" if c.data_format.startswith("NC") else b"NHWC"
    return node


def _prune(graph_def: graph_pb2.GraphDef, pool: set[str], keep: set[str]) -> graph_pb2.GraphDef:
    """Drop the constant nodes of ``pool`` nobody reads any more; strip control inputs to them."""
    dropped: set[str] = set()
    while True:
        read = {node_of(r) for n in graph_def.node if n.name not in dropped
                for r in n.input if not r.startswith("^")}
        dead = {n for n in pool - dropped - keep if n not in read}
        if not dead:
            break
        dropped |= dead
    pruned = graph_pb2.GraphDef()
    pruned.CopyFrom(graph_def)
    del pruned.node[:]
    for node in graph_def.node:
        if node.name in dropped:
            continue
        kept = pruned.node.add()
        kept.CopyFrom(node)
        del kept.input[:]
        kept.input.extend(r for r in node.input if not (r.startswith("^") and r[1:] in dropped))
    return pruned


def _constant_ancestors(ix: OpIndex, names: Iterable[str]) -> set[str]:
    found, stack = set(), [node_of(t) for n in names for t in ix.data_inputs(n)]
    while stack:
        name = stack.pop()
        if name in found or name not in ix.nodes or not ix.is_constant(name):
            continue
        found.add(name)
        stack.extend(node_of(t) for t in ix.data_inputs(name))
    return found


def rewrite(graph_def: graph_pb2.GraphDef, pairs: list[tuple[OpCandidate, Decision]],
            keep: Iterable[str] = ()) -> graph_pb2.GraphDef:
    """A new GraphDef with every folded pair applied; ``graph_def`` is not modified."""
    folded = [c for c, d in pairs if d.status == "folded"]
    affines = {c.bn: d.affine for c, d in pairs if d.status == "folded"}
    ix = OpIndex(graph_def)
    new = graph_pb2.GraphDef()
    new.CopyFrom(graph_def)
    nodes = {n.name: n for n in new.node}
    taken = set(nodes)
    gone: set[str] = set()
    for c in folded:
        kernel, bias = fold_kernel(c.kernel, c.bias, affines[c.bn], c.kind.out_axes)
        filter_node = nodes[c.filter_const]
        filter_node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(kernel))
        bias_name = _unique(f"{c.bn}/folded_bias", taken)
        taken.add(bias_name)
        new.node.append(_const_node(bias_name, bias))
        chain = [*([c.chain.bias] if c.chain.bias else []), *c.chain.removed]
        controls = [r for n in chain for r in ix.nodes[n].input if r.startswith("^")]
        nodes[c.bn].CopyFrom(_bias_add(ix.nodes[c.bn], c, bias_name, controls))
        gone |= set(chain[:-1])
    kept = graph_pb2.GraphDef()
    kept.CopyFrom(new)
    del kept.node[:]
    kept.node.extend(n for n in new.node if n.name not in gone)
    chains = [n for c in folded for n in [*([c.chain.bias] if c.chain.bias else []), *c.chain.removed]]
    pool = _constant_ancestors(ix, chains)
    ix.close()
    return _prune(kept, pool, {node_of(k) for k in keep} | {c.filter_const for c in folded})


# -- folding and verification -----------------------------------------------------------------

@dataclass
class GraphFoldResult(FoldOutcome):
    """A folded GraphDef with everything needed to explain it (mirrors ``fold.api.FoldResult``).

    bn_before / bn_after count BatchNorms found (fused ops and decomposed Mul/Add pairs).
    """

    original: graph_pb2.GraphDef
    folded: graph_pb2.GraphDef
    decisions: list[Decision]
    graph_before: nx.DiGraph
    graph_after: nx.DiGraph
    bn_before: int
    bn_after: int
    inputs: list[str] | None = None
    outputs: list[str] | None = None
    timings_s: dict[str, float] = field(default_factory=dict)


def _bn_nodes(pairs: list[tuple[OpCandidate, Decision]]) -> list[str]:
    return [n for c, _ in pairs for n in c.chain.removed]


def fold_graph_def(graph_def: graph_pb2.GraphDef, inputs: Iterable[str] | None = None,
                   outputs: Iterable[str] | None = None) -> GraphFoldResult:
    """Decide every BN chain of ``graph_def`` and build the folded GraphDef.

    ``outputs`` (tensor names) are protected: a linear op that is fetched is not folded into.
    ``inputs`` are only checked to exist, so that a typo fails before the work.
    """
    start = time.perf_counter()
    given = _checked(graph_def, outputs, "outputs") if outputs else None
    input_names = _checked(graph_def, inputs, "inputs") if inputs else None
    pairs = analyse(graph_def, tuple(given or ()))
    folded = rewrite(graph_def, pairs, keep=given or ())
    after = analyse(folded, tuple(given or ()))
    return GraphFoldResult(
        original=graph_def, folded=folded, decisions=[d for _, d in pairs],
        graph_before=op_graph(graph_def, bn_nodes=_bn_nodes(pairs), outputs=given),
        graph_after=op_graph(folded, bn_nodes=_bn_nodes(after), outputs=given),
        bn_before=len(pairs), bn_after=len(after), inputs=input_names, outputs=given,
        timings_s={"fold": time.perf_counter() - start})


def sample_feeds(graph_def: graph_pb2.GraphDef, inputs: list[str], seed: int) -> dict[str, np.ndarray]:
    """One seeded random value per input; an unknown batch dimension becomes 1."""
    rng = np.random.default_rng(seed)
    nodes = {n.name: n for n in graph_def.node}
    feeds = {}
    for name in inputs:
        node = nodes[node_of(name)]
        dims = [d.size for d in node.attr["shape"].shape.dim]
        if node.attr["shape"].shape.unknown_rank or any(d < 0 for d in dims[1:]):
            raise FoldError(f"Input {name!r} has an unknown shape {dims}; foldscope needs every dimension "
                            "but the batch one to make sample inputs.")
        shape = [1 if i == 0 and d < 0 else d for i, d in enumerate(dims)]
        dtype = tf.dtypes.as_dtype(node.attr["dtype"].type)
        if dtype.is_floating:
            feeds[name] = rng.normal(size=shape).astype(dtype.as_numpy_dtype)
        elif dtype.is_integer:
            feeds[name] = rng.integers(0, 10, size=shape).astype(dtype.as_numpy_dtype)
        else:
            feeds[name] = rng.integers(0, 2, size=shape).astype(dtype.as_numpy_dtype)
    return feeds


def run_graph_def(graph_def: graph_pb2.GraphDef, feeds: dict[str, np.ndarray],
                  outputs: list[str]) -> list[np.ndarray]:
    """Run ``graph_def`` once in a fresh graph and session."""
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        return [np.asarray(v) for v in sess.run(outputs, feed_dict=feeds)]


def channel_axis(graph_def: graph_pb2.GraphDef, output: str) -> int:
    node = next(n for n in graph_def.node if n.name == node_of(output))
    fmt = node.attr["data_format"].s.decode() if "data_format" in node.attr else "NHWC"
    return 1 if fmt.startswith("NC") else -1


def verify_graph_defs(before: graph_pb2.GraphDef, after: graph_pb2.GraphDef,
                      inputs: Iterable[str] | None = None, outputs: Iterable[str] | None = None, *,
                      samples: int = 4, seed: int = 0, atol: float | None = None) -> Verification:
    """Run both graphs on the same seeded inputs (``samples`` runs) and compare their outputs."""
    input_names, output_names = io_names(before, inputs, outputs)
    runs = []
    for i in range(samples):
        feeds = sample_feeds(before, input_names, seed + i)
        runs.append((run_graph_def(before, feeds, output_names), run_graph_def(after, feeds, output_names)))
    refs = [np.concatenate([np.atleast_1d(r[0][k]) for r in runs]) for k in range(len(output_names))]
    others = [np.concatenate([np.atleast_1d(r[1][k]) for r in runs]) for k in range(len(output_names))]
    return compare(refs, others, output_names, channel_axes=[channel_axis(before, o) for o in output_names],
                   atol=atol, samples=samples, seed=seed)
