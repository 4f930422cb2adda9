"""GraphDef frontend, the view the shared op-graph layer reads (``fold.frontends.ops.view``): nodes
as ops, "node:k" tensor names as tensor ids, data inputs only (control inputs are not tensors).

A tensor is a constant when its op is computed from ``Const`` ops alone (no placeholder, no
stateful op), so the ``Identity`` / ``Rsqrt`` / ``Mul`` sub-graphs of a frozen Keras model count.
A ``Const`` is read directly; anything else is evaluated once, in one session the view keeps.
"""

from __future__ import annotations

import threading
import weakref
from functools import cached_property

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2, node_def_pb2
from tensorflow.python.framework import op_def_registry, tensor_util

from fold.core.graph import Vocabulary
from fold.core.kinds import GRAPHDEF_KINDS, Kind
from fold.frontends.ops.chains import MAX_BETWEEN, broadcast_axes, kept_axis, per_channel, position
from fold.frontends.ops.view import BnOp, Op

VOCABULARY = Vocabulary(
    inputs=frozenset({"Placeholder"}),
    bns=frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"}),
    activations=frozenset({"Relu", "Relu6", "Elu", "Selu", "Sigmoid", "Tanh", "LeakyRelu", "Softplus", "Softmax"}),
    homogeneous=frozenset({"Relu", "LeakyRelu"}),
    muls=frozenset({"Mul"}),
    adds=frozenset({"BiasAdd", "Add", "AddV2"}),
    identities=frozenset({"Identity"}),
    reshapes=frozenset({"Reshape", "Squeeze", "ExpandDims"}),
    reductions=frozenset({"Mean", "Sum"}),
    concats=frozenset({"ConcatV2"}),
    shapes=frozenset({"Shape", "Size"}),
)
#: Ops a weight is looked through to the Const it was read from (for the pair's notes).
VALUE_OPS = frozenset({"Identity", "Cast", "Reshape", "ExpandDims", "Squeeze", "Transpose"})
_NO_OUTPUT_OPS = ("Const", "NoOp", "Assert")
_SOURCE_OPS = ("Placeholder", "PlaceholderWithDefault")
FILTER_INPUT = 1  # the filter is input 1 of all four linear ops


def tensor_name(ref: str) -> str:
    """A data input reference as a full tensor name: "conv" -> "conv:0"."""
    return ref if ":" in ref else f"{ref}:0"


def node_of(ref: str) -> str:
    return ref.lstrip("^").split(":")[0]


def attr_str(node: node_def_pb2.NodeDef, key: str, default: str) -> str:
    return node.attr[key].s.decode() if key in node.attr else default


def kind_of(node: node_def_pb2.NodeDef) -> Kind | None:
    if node.op == "MatMul" and node.attr["transpose_b"].b:
        return GRAPHDEF_KINDS["MatMul/transpose_b"]  # b is stored (out, in)
    return GRAPHDEF_KINDS.get(node.op)


def _channels_first(node: node_def_pb2.NodeDef) -> bool:
    return attr_str(node, "data_format", "NHWC").startswith("NC")


class GraphDefView:
    """``OpView`` of one GraphDef and the tensors it is fetched by (built once per model)."""

    vocabulary = VOCABULARY

    def __init__(self, graph_def: graph_pb2.GraphDef, outputs: tuple[str, ...] = ()):
        self.graph_def = graph_def
        self.nodes = list(graph_def.node)
        self.by_node = {n.name: n for n in self.nodes}
        self.fetched = {tensor_name(o) for o in outputs}
        read: dict[str, set[int]] = {}
        for node in self.nodes:
            for ref in node.input:
                if not ref.startswith("^"):
                    t = tensor_name(ref)
                    read.setdefault(node_of(t), set()).add(int(t.split(":")[1]))
        for t in self.fetched:
            read.setdefault(node_of(t), set()).add(int(t.split(":")[1]))
        self.control_read = {r[1:] for n in self.nodes for r in n.input if r.startswith("^")}
        self.ops = [Op(i, n.name, n.op, [tensor_name(r) for r in n.input if not r.startswith("^")],
                       [f"{n.name}:{k}" for k in range(max(read.get(n.name, {0})) + 1)])
                    for i, n in enumerate(self.nodes)]
        self.by_name = {op.id: op for op in self.ops}
        self._readers: dict[str, list[Op]] = {}
        for op in self.ops:
            for t in dict.fromkeys(op.inputs):
                self._readers.setdefault(t, []).append(op)
        self._constant: dict[str, bool] = {}
        self._values: dict[str, np.ndarray] = {}
        self._session: tf.compat.v1.Session | None = None
        self._session_lock = threading.Lock()  # sessions of the page may ask for it at once: one is made
        weakref.finalize(self, _close, self.__dict__)

    def node(self, op: Op) -> node_def_pb2.NodeDef:
        return self.nodes[op.index]

    def producer(self, tensor: str) -> Op | None:
        op = self.by_name.get(node_of(tensor))
        return op if op is not None and tensor in op.outputs else None

    def readers(self, tensor: str) -> list[Op]:
        return self._readers.get(tensor, [])

    def is_output(self, tensor: str) -> bool:
        return tensor in self.fetched

    def constant_op(self, name: str) -> bool:
        """Whether node ``name`` is computed from Const ops alone (iterative: graphs can be deep)."""
        stack, visiting = [name], set()
        while stack:
            top = stack[-1]
            if top in self._constant:
                stack.pop()
                continue
            node = self.by_node.get(top)
            op_def = op_def_registry.get(node.op) if node is not None else None
            if node is None or op_def is None or op_def.is_stateful or node.op in _SOURCE_OPS:
                self._constant[top] = False
                stack.pop()
                continue
            inputs = [node_of(r) for r in node.input if not r.startswith("^")]
            pending = [n for n in inputs if n not in self._constant]
            if not pending:
                self._constant[top] = all(self._constant[n] for n in inputs)
                stack.pop()
            elif top in visiting:  # back on top with inputs still open: a loop, not a constant
                self._constant[top] = False
                stack.pop()
            else:
                visiting.add(top)
                stack.extend(pending)
        return self._constant[name]

    def is_constant(self, tensor: str) -> bool:
        return bool(tensor) and self.constant_op(node_of(tensor))

    def value(self, tensor: str) -> np.ndarray:
        if tensor not in self._values:
            node = self.by_node[node_of(tensor)]
            if node.op == "Const":
                self._values[tensor] = tensor_util.MakeNdarray(node.attr["value"].tensor)
            else:
                self._values[tensor] = np.asarray(self.session.run(tensor))
        return self._values[tensor]

    @property
    def session(self) -> tf.compat.v1.Session:
        with self._session_lock:
            if self._session is None:
                graph = tf.Graph()
                with graph.as_default():
                    tf.graph_util.import_graph_def(self.graph_def, name="")
                self._session = tf.compat.v1.Session(graph=graph)
            return self._session

    @cached_property
    def shapes(self) -> dict[str, tuple | None]:
        """Tensor name -> static shape (None for unknown dims), from TensorFlow's shape inference."""
        graph = tf.Graph()
        with graph.as_default():
            tf.graph_util.import_graph_def(self.graph_def, name="")
        return {t.name: (tuple(t.shape.as_list()) if t.shape.rank is not None else None)
                for op in graph.get_operations() for t in op.outputs}

    def shape(self, tensor: str) -> tuple | None:
        return self.shapes.get(tensor)

    def name(self, tensor: str) -> str:
        return tensor[:-2] if tensor.endswith(":0") else tensor

    def kind(self, op: Op) -> Kind | None:
        return kind_of(self.node(op))

    def slots(self, op: Op) -> tuple[int, int | None]:
        return FILTER_INPUT, None

    def groups(self, op: Op) -> int:
        return 1

    def channel_axis(self, op: Op) -> int | None:
        rank = 2 if op.type == "MatMul" else 4
        return 1 if _channels_first(self.node(op)) else rank - 1

    def default_axis(self, rank: int | None) -> int | None:
        return position(-1, rank)

    def bn(self, op: Op) -> BnOp | None:
        if op.type not in VOCABULARY.bns:
            return None
        node = self.node(op)
        params = dict(zip(("gamma", "beta", "mean", "variance"), op.inputs[1:5]))
        return BnOp(0, params, float(node.attr["epsilon"].f), node.attr["is_training"].b,
                    1 if _channels_first(node) else 3)

    def operand_axes(self, op: Op, tensor: str, rank: int) -> tuple[int, ...] | None:
        if op.type == "BiasAdd":
            return (1,) if _channels_first(self.node(op)) else (rank - 1,)
        return broadcast_axes(np.asarray(self.value(tensor)), rank)

    def activation(self, op: Op) -> str | None:
        return None

    def bias_value(self, op: Op, value: np.ndarray) -> tuple[np.ndarray, str | None]:
        return value, None

    def padding(self, op: Op) -> str | None:
        node = self.node(op)
        if op.type not in ("Conv2D", "DepthwiseConv2dNative"):
            return None
        mode = attr_str(node, "padding", "VALID")
        if mode == "EXPLICIT":
            pads = list(node.attr["explicit_paddings"].list.i)
            return f"explicit paddings {pads}" if any(pads) else None
        if mode != "SAME":
            return None
        shape, kernel = self.shape(op.inputs[0]), self.shape(op.inputs[FILTER_INPUT])
        spatial = slice(2, 4) if _channels_first(node) else slice(1, 3)
        if shape is None or kernel is None or any(d is None for d in shape[spatial]):
            return "padding SAME"
        strides, dilations = list(node.attr["strides"].list.i)[spatial], list(node.attr["dilations"].list.i)[spatial]
        dilations = dilations or [1, 1]
        total = sum(max(0, (-(-n // s) - 1) * s + (k - 1) * d + 1 - n)
                    for n, k, s, d in zip(shape[spatial], kernel[:2], strides, dilations))
        return "padding SAME" if total else None

    def input_layout(self, op: Op) -> tuple[tuple[int, ...] | None, int]:
        if op.type == "MatMul":
            return None, 0 if self.node(op).attr["transpose_a"].b else -1
        return None, 1 if _channels_first(self.node(op)) else -1

    def weight_gain(self, op: Op) -> float:
        return 1.0

    def concat_axis(self, op: Op) -> int | None:
        if op.type != "ConcatV2" or not op.inputs or not self.is_constant(op.inputs[-1]):
            return None
        shape = self.shape(op.output)
        return position(int(np.asarray(self.value(op.inputs[-1]))), None if shape is None else len(shape))

    def looked_through(self, tensor: str) -> list[Op]:
        found, t = [], tensor
        while (op := self.producer(t)) is not None and op.type in VALUE_OPS and op.inputs:
            found.append(op)
            t = op.inputs[0]
        return found

    def stored_dtype(self, tensor: str) -> str:
        return np.asarray(self.value(tensor)).dtype.name

    def compute_dtype(self, op: Op) -> str:
        return tf.dtypes.as_dtype(self.node(op).attr["T"].type).name

    def find_inputs(self) -> list[str]:
        """Placeholders without inputs, as tensor names."""
        return [f"{n.name}:0" for n in self.nodes if n.op == "Placeholder" and not n.input]

    def find_outputs(self) -> list[str]:
        """Output 0 of every op nobody reads (data or control) that depends on an input."""
        read = {node_of(t) for t in self._readers} | self.control_read
        return [f"{n.name}:0" for n in self.nodes
                if n.name not in read and n.op not in _NO_OUTPUT_OPS and not self.constant_op(n.name)]

    def data_inputs(self, op: Op) -> list[str]:
        """The activation a linear op reads (its kind's data input), else every input that is not a constant."""
        kind = self.kind(op)
        if kind is not None:
            return [op.inputs[kind.data_input]]
        return [t for t in op.inputs if not self.is_constant(t)]

    def bias_add_after(self, op: Op) -> tuple[Op, str] | None:
        """(bias add, its constant tensor) when the op's output feeds only a per-channel constant add,
        directly or through the Identity and channel-keeping reshapes a fold looks through (the
        Squeeze of a Conv1D, after which a folded chain's bias add sits)."""
        axis, t = self.channel_axis(op), op.output
        for _ in range(MAX_BETWEEN + 1):
            readers = self.readers(t)
            if len(readers) != 1 or self.is_output(t):
                return None
            after = readers[0]
            if after.type in VOCABULARY.adds and len(after.inputs) == 2:
                const = next((x for x in after.inputs if x != t), None)
                if const is None or not self.is_constant(const):
                    return None
                shape = self.shape(after.output)
                rank = len(shape) if shape is not None else (2 if op.type == "MatMul" else 4)
                return (after, const) if per_channel(self.operand_axes(after, const, rank), axis, rank) else None
            if after.type not in VOCABULARY.identities and after.type not in VOCABULARY.reshapes:
                return None
            axis, t = kept_axis(self, after, axis) if after.type in VOCABULARY.reshapes else axis, after.output
        return None


def _close(state: dict) -> None:
    if state.get("_session") is not None:
        state["_session"].close()


_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def view_of(model) -> GraphDefView:
    """The one view of a ``GraphModel`` (built on first use, dropped with the model)."""
    found = _VIEWS.get(model)
    if found is None:
        found = _VIEWS[model] = GraphDefView(model.graph_def, tuple(model.outputs))
    return found
