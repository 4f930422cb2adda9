"""GraphDef frontend, matching: find (linear op -> BatchNorm) chains, make their candidates, and
draw the op graph.

Two shapes of BatchNorm are recognised after a ``Conv2D``, ``Conv2DBackpropInput``,
``DepthwiseConv2dNative`` or ``MatMul`` (optionally followed by a per-channel constant
``BiasAdd``/``Add``/``AddV2``)::

    fused:        linear -> [bias add] -> FusedBatchNorm(V3)(scale, offset, mean, variance)
    decomposed:   linear -> [bias add] -> Mul(m) -> Add(a)      (what converters emit)

The decomposed form is BN with gamma = m, beta = a, mean = 0, variance = 1, epsilon = 0,
so both reach the shared math and the shared rules through one ``Candidate``. Checks that
only make sense on ops (filter not a constant, filter shared, an intermediate read
elsewhere) are the frontend's own rules (``fold.frontends.graphdef.rules``). "Constant" means: computed from ``Const`` ops alone (no placeholder, no
stateful op), so the ``Identity`` / ``Rsqrt`` / ``Mul`` sub-graphs of a frozen Keras model
count; only the filter must be a ``Const`` itself (behind ``Identity`` ops), since the
rewrite replaces its value in place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2, node_def_pb2
from tensorflow.python.framework import op_def_registry, tensor_util

from fold.core.graph import mark_bn, role_of
from fold.core.kinds import GRAPHDEF_KINDS, Kind
from fold.core.rules import Candidate

_NO_OUTPUT_OPS = ("Const", "NoOp", "Assert")
_CONFIG_ATTRS = ("strides", "padding", "data_format", "dilations", "epsilon", "is_training",
                 "transpose_a", "transpose_b", "dtype", "shape")
BN_OPS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
ADD_OPS = ("BiasAdd", "Add", "AddV2")
FILTER_INPUT = 1  # the filter is input 1 of all four linear ops
_SOURCE_OPS = ("Placeholder", "PlaceholderWithDefault")


def tensor_name(ref: str) -> str:
    """A data input reference as a full tensor name: "conv" -> "conv:0"."""
    return ref if ":" in ref else f"{ref}:0"


def node_of(ref: str) -> str:
    return ref.lstrip("^").split(":")[0]


class OpIndex:
    """Lookups over one GraphDef: producers, data consumers, constant-ness and constant values."""

    def __init__(self, graph_def: graph_pb2.GraphDef, outputs: tuple[str, ...] = ()):
        self.graph_def = graph_def
        self.nodes: dict[str, node_def_pb2.NodeDef] = {n.name: n for n in graph_def.node}
        self.fetched = {tensor_name(o) for o in outputs}
        self.users: dict[str, list[str]] = {}  # tensor -> names of nodes reading it as data
        self.control_users: dict[str, list[str]] = {}
        for node in graph_def.node:
            for ref in node.input:
                if ref.startswith("^"):
                    self.control_users.setdefault(ref[1:], []).append(node.name)
                else:
                    self.users.setdefault(tensor_name(ref), []).append(node.name)
        self.tensors_of: dict[str, set[str]] = {}  # node -> its tensors that are read or fetched
        for tensor in [*self.users, *self.fetched]:
            self.tensors_of.setdefault(node_of(tensor), set()).add(tensor)
        self._constant: dict[str, bool] = {}
        self._values: dict[str, np.ndarray] = {}
        self._session: tf.compat.v1.Session | None = None

    def data_inputs(self, name: str) -> list[str]:
        return [tensor_name(r) for r in self.nodes[name].input if not r.startswith("^")]

    def readers(self, tensor: str) -> list[str]:
        """Who reads ``tensor``: node names, plus "<output>" when it is fetched."""
        return self.users.get(tensor, []) + (["<output>"] if tensor in self.fetched else [])

    def node_readers(self, name: str, skip_first: bool = False) -> list[str]:
        """Readers of the outputs of node ``name`` (of outputs 1, 2, ... only with ``skip_first``)."""
        tensors = sorted(self.tensors_of.get(name, set()), key=lambda t: int(t.split(":")[1]))
        return [r for t in tensors if not (skip_first and t.endswith(":0")) for r in self.readers(t)]

    def is_constant(self, name: str) -> bool:
        """True when node ``name`` is computed from Const ops alone (iterative: graphs can be deep)."""
        stack, visiting = [name], set()
        while stack:
            top = stack[-1]
            if top in self._constant:
                stack.pop()
                continue
            node = self.nodes.get(top)
            op_def = op_def_registry.get(node.op) if node is not None else None
            if node is None or op_def is None or op_def.is_stateful or node.op in _SOURCE_OPS:
                self._constant[top] = False
                stack.pop()
                continue
            inputs = [node_of(t) for t in self.data_inputs(top)]
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

    def value(self, tensor: str) -> np.ndarray:
        """The value of a constant tensor (Const nodes read directly, others evaluated once)."""
        if tensor not in self._values:
            node = self.nodes[node_of(tensor)]
            if node.op == "Const":
                self._values[tensor] = tensor_util.MakeNdarray(node.attr["value"].tensor)
            else:
                self._values[tensor] = np.asarray(self._run(tensor))
        return self._values[tensor]

    def _run(self, tensor: str) -> np.ndarray:
        if self._session is None:
            graph = tf.Graph()
            with graph.as_default():
                tf.graph_util.import_graph_def(self.graph_def, name="")
            self._session = tf.compat.v1.Session(graph=graph)
        return self._session.run(tensor)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def filter_source(self, tensor: str) -> tuple[str | None, list[str]]:
        """The Const behind ``tensor`` through Identity ops (None if there is none) and the chain's nodes."""
        chain = []
        node = self.nodes.get(node_of(tensor))
        while node is not None and node.op == "Identity":
            chain.append(node.name)
            node = self.nodes.get(node_of(self.data_inputs(node.name)[0]))
        if node is None or node.op != "Const":
            return None, chain
        return node.name, [node.name, *chain]


@dataclass
class Chain:
    """The nodes of one (linear op -> BatchNorm) chain in a GraphDef.

    linear: the producer; bias: its bias-add node or None; bias_const: that node's constant
    input tensor; removed: the BN nodes (["bn"] or ["mul", "add"]); out: the last of them,
    whose name the folded BiasAdd takes; params: the BN's constant input tensors by name.
    """

    linear: str
    bias: str | None
    bias_const: str | None
    removed: list[str]
    form: str  # "fused" | "decomposed"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def out(self) -> str:
        return self.removed[-1]


@dataclass
class OpCandidate(Candidate):
    """A Candidate with what the op-level rules and the rewrite need.

    filter_const:    the Const node holding the filter (None when the filter is not a Const).
    filter_readers:  other nodes reading that Const or its Identity chain.
    nonconstant:     BN or bias parameters that are not constants.
    extra_readers:   "node -> reader" for intermediates of the chain read outside it.
    kernel:          the filter's value.
    data_format:     of the linear op ("NHWC", "NCHW").
    """

    chain: Chain | None = None
    filter_const: str | None = None
    filter_readers: list[str] = field(default_factory=list)
    nonconstant: list[str] = field(default_factory=list)
    extra_readers: list[str] = field(default_factory=list)
    kernel: np.ndarray | None = None
    data_format: str = "NHWC"


def _attr_str(node: node_def_pb2.NodeDef, key: str, default: str) -> str:
    return node.attr[key].s.decode() if key in node.attr else default


def _kind(node: node_def_pb2.NodeDef) -> Kind | None:
    if node.op == "MatMul" and node.attr["transpose_b"].b:
        return GRAPHDEF_KINDS["MatMul/transpose_b"]  # b is stored (out, in)
    return GRAPHDEF_KINDS.get(node.op)


def _rank(node: node_def_pb2.NodeDef) -> int:
    return 2 if node.op == "MatMul" else 4


def _channel_axis(node: node_def_pb2.NodeDef) -> int:
    rank = _rank(node)
    return 1 if _attr_str(node, "data_format", "NHWC").startswith("NC") else rank - 1


def _broadcast_axes(node: node_def_pb2.NodeDef, value: np.ndarray, rank: int) -> tuple[int, ...] | None:
    """Axes of a rank-``rank`` activation along which ``node`` applies ``value`` (None: it changes the rank)."""
    if node.op == "BiasAdd":
        return (1,) if _attr_str(node, "data_format", "NHWC").startswith("NC") else (rank - 1,)
    if value.ndim > rank:
        return None
    padded = (1,) * (rank - value.ndim) + value.shape
    return tuple(i for i, n in enumerate(padded) if n != 1)


def _channel_vector(value: np.ndarray, axes: tuple[int, ...] | None, channel_axis: int,
                    channels: int) -> np.ndarray | None:
    """``value`` as a (channels,) float64 vector when it is a scalar or varies along ``channel_axis`` only."""
    if axes not in ((), (channel_axis,)) or value.size not in (1, channels):
        return None
    return np.broadcast_to(np.asarray(value, dtype=np.float64).reshape(-1), (channels,)).copy()


def _const_operand(ix: OpIndex, node: str) -> tuple[str, str] | None:
    """(constant input, other input) of a binary op with exactly one constant operand."""
    inputs = ix.data_inputs(node)
    if len(inputs) != 2:
        return None
    flags = [ix.is_constant(node_of(t)) for t in inputs]
    if flags.count(True) != 1:
        return None
    return (inputs[0], inputs[1]) if flags[0] else (inputs[1], inputs[0])


def _through_bias(ix: OpIndex, tensor: str) -> tuple[str, str | None, str | None]:
    """(producer, bias node, bias constant): step over a per-channel constant add after a linear op."""
    producer = node_of(tensor)
    node = ix.nodes[producer]
    split = _const_operand(ix, producer) if node.op in ADD_OPS and tensor.endswith(":0") else None
    if split is None:
        return producer, None, None
    const, other = split
    linear = ix.nodes[node_of(other)]
    if linear.op not in GRAPHDEF_KINDS or not other.endswith(":0"):
        return producer, None, None
    axes = _broadcast_axes(node, ix.value(const), _rank(linear))
    if axes not in ((), (_channel_axis(linear),)):
        return producer, None, None  # not a bias: it varies along other axes
    return linear.name, producer, const


def _fused_chain(ix: OpIndex, bn: str) -> Chain:
    x, scale, offset, mean, variance = ix.data_inputs(bn)[:5]
    linear, bias, bias_const = _through_bias(ix, x)
    params = {"gamma": scale, "beta": offset, "mean": mean, "variance": variance}
    return Chain(linear, bias, bias_const, [bn], "fused", params)


def _decomposed_chain(ix: OpIndex, mul: str) -> Chain | None:
    split = _const_operand(ix, mul)
    if split is None:
        return None
    m, x = split
    linear, bias, bias_const = _through_bias(ix, x)
    if ix.nodes[linear].op not in GRAPHDEF_KINDS:
        return None
    for add in ix.users.get(f"{mul}:0", []):
        add_split = _const_operand(ix, add) if ix.nodes[add].op in ADD_OPS else None
        if add_split is not None and add_split[1] == f"{mul}:0":
            return Chain(linear, bias, bias_const, [mul, add], "decomposed", {"gamma": m, "beta": add_split[0]})
    return None


def find_chains(ix: OpIndex) -> list[Chain]:
    """Every fused BN, and every linear -> Mul -> Add by constants, in graph order."""
    chains = []
    for node in ix.graph_def.node:
        if node.op in BN_OPS:
            chains.append(_fused_chain(ix, node.name))
        elif node.op == "Mul":
            chain = _decomposed_chain(ix, node.name)
            if chain is not None:
                chains.append(chain)
    return chains


def _extra_readers(ix: OpIndex, chain: Chain) -> list[str]:
    """Intermediates after the linear op read outside the chain (the linear op itself is ``consumers``)."""
    inside = [chain.bias] if chain.bias else []
    inside += chain.removed[:-1]
    found = []
    for name in inside:
        found += [f"{name} -> {r}" for r in ix.node_readers(name) if r not in chain.removed]
    if chain.form == "fused":
        found += [f"{chain.out} (side output) -> {r}" for r in ix.node_readers(chain.out, skip_first=True)]
    return found


def _fill_bn(ix: OpIndex, c: OpCandidate, chain: Chain, linear: node_def_pb2.NodeDef) -> None:
    """Set the BN fields of ``c`` from the chain's attributes and constants."""
    if chain.form == "fused":
        bn = ix.nodes[chain.out]
        c.bn_training = bn.attr["is_training"].b
        c.epsilon = float(bn.attr["epsilon"].f)
        c.bn_axes = (_channel_axis(bn),)
    c.nonconstant = [f"{k} ({t})" for k, t in chain.params.items() if not ix.is_constant(node_of(t))]
    if chain.bias_const is not None and not ix.is_constant(node_of(chain.bias_const)):
        c.nonconstant.append(f"bias ({chain.bias_const})")
    if c.nonconstant or c.bn_training:
        return
    if chain.form == "fused":
        for key, tensor in chain.params.items():
            setattr(c, key, ix.value(tensor).astype(np.float64).reshape(-1))
        return
    channels = c.channels or 0
    values = [ix.value(chain.params[k]) for k in ("gamma", "beta")]
    axes = [_broadcast_axes(ix.nodes[n], v, _rank(linear)) for n, v in zip(chain.removed, values)]
    spread = sorted({a for ax in axes for a in ((-1,) if ax is None else ax)})
    c.bn_axes = tuple(spread) or (c.channel_axis,)
    c.set_scale_shift(*(_channel_vector(v, ax, c.channel_axis, channels) for v, ax in zip(values, axes)))


def candidate(ix: OpIndex, chain: Chain) -> OpCandidate:
    """The Candidate of one chain, with every field the shared and op-level rules read."""
    linear = ix.nodes[chain.linear]
    kind = _kind(linear)
    c = OpCandidate(layer=chain.linear, bn=chain.out, op=linear.op, kind=kind, chain=chain, output_node=chain.out)
    c.consumers = len(ix.readers(f"{chain.linear}:0"))
    c.extra_readers = _extra_readers(ix, chain)
    if kind is None:
        return c
    c.channel_axis = _channel_axis(linear)
    c.data_format = _attr_str(linear, "data_format", "NHWC")
    c.compute_dtype = tf.dtypes.as_dtype(linear.attr["T"].type).name
    c.filter_const, nodes = ix.filter_source(ix.data_inputs(chain.linear)[FILTER_INPUT])
    c.filter_readers = [r for n in nodes for r in ix.node_readers(n) if r not in nodes and r != chain.linear]
    if c.filter_const is not None:
        c.kernel = ix.value(f"{c.filter_const}:0")
        c.set_kernel(c.kernel)
    _fill_bn(ix, c, chain, linear)
    if chain.bias_const is not None and not (c.nonconstant or c.bn_training) and c.channels:
        bias = ix.value(chain.bias_const)
        c.bias = _channel_vector(bias, _broadcast_axes(ix.nodes[chain.bias], bias, _rank(linear)),
                                 c.channel_axis, c.channels)
        # _through_bias checked the axes; a wrong size would not pass TensorFlow's own shape checks
        assert c.bias is not None, (chain.bias_const, bias.shape, c.channels)
    return c


def find_inputs(graph_def: graph_pb2.GraphDef) -> list[str]:
    """Placeholders without inputs, as tensor names."""
    return [f"{n.name}:0" for n in graph_def.node if n.op == "Placeholder" and not n.input]


def find_outputs(graph_def: graph_pb2.GraphDef) -> list[str]:
    """Output 0 of every op nobody reads (data or control) that depends on an input."""
    ix = OpIndex(graph_def)
    read = {node_of(t) for t in ix.users} | set(ix.control_users)
    return [f"{n.name}:0" for n in graph_def.node
            if n.name not in read and n.op not in _NO_OUTPUT_OPS and not ix.is_constant(n.name)]


def candidates(graph_def: graph_pb2.GraphDef, outputs: tuple[str, ...] = ()) -> list[OpCandidate]:
    """Every BN chain of the graph as a candidate; ``outputs`` are fetched tensors (they count as readers)."""
    ix = OpIndex(graph_def, outputs)
    try:
        return [candidate(ix, chain) for chain in find_chains(ix)]
    finally:
        ix.close()


# -- foldscope's graph -------------------------------------------------------------------------

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
    return "linear" if op in GRAPHDEF_KINDS else role_of(op)


def op_graph(graph_def: graph_pb2.GraphDef, show_consts: bool = False, *, inputs: Iterable[str] | None = None,
             outputs: Iterable[str] | None = None, name: str = "graph") -> nx.DiGraph:
    """foldscope's graph of the ops; constants become ``weights`` of their readers unless ``show_consts``.

    Constants are the ops computed from Const ops alone (a frozen Keras model's Identity and
    Rsqrt sub-graphs too). The ops of every BN chain are marked as one BatchNorm each (a
    decomposed BN's Mul and Add together). ``inputs`` and ``outputs`` (tensor names) default
    to the ones ``find_inputs`` and ``find_outputs`` find.
    """
    inputs = find_inputs(graph_def) if inputs is None else list(inputs)
    outputs = tuple(find_outputs(graph_def) if outputs is None else outputs)
    ix = OpIndex(graph_def, outputs)
    shapes = _shapes(graph_def)
    hidden = set() if show_consts else {n.name for n in graph_def.node if ix.is_constant(n.name)}
    g = nx.DiGraph(name=name, frontend="graphdef", inputs=[node_of(t) for t in inputs],
                   outputs=[node_of(t) for t in outputs])
    for node in graph_def.node:
        if node.name in hidden:
            continue
        weights = {(node_of(t) if t.endswith(":0") else t): shapes.get(t)
                   for t in ix.data_inputs(node.name) if node_of(t) in hidden}
        g.add_node(node.name, op=node.op, role=_role(node.op), config=_config(node), weights=weights, calls=1,
                   tensor=f"{node.name}:0")
    for node in graph_def.node:
        if node.name in hidden:
            continue
        for t in ix.data_inputs(node.name):
            if node_of(t) not in hidden:
                g.add_edge(node_of(t), node.name, shape=shapes.get(t))
    try:
        for chain in find_chains(ix):
            mark_bn(g, chain.removed)
    finally:
        ix.close()
    return g


def bias_of(ix: OpIndex, layer: str) -> tuple[str | None, str | None]:
    """(bias add, its constant tensor) when the op's output feeds only a per-channel constant add."""
    readers = ix.readers(f"{layer}:0")
    if len(readers) != 1 or readers[0] not in ix.nodes:
        return None, None
    _, add, const = _through_bias(ix, f"{readers[0]}:0")
    return (add, const) if add is not None else (None, None)


def filter_value(graph_def: graph_pb2.GraphDef, layer: str) -> tuple[np.ndarray, Kind]:
    """The constant filter of linear op ``layer`` and its kind; ValueError if it has none."""
    ix = OpIndex(graph_def)
    try:
        node = ix.nodes.get(layer)
        kind = _kind(node) if node is not None else None
        const = ix.filter_source(ix.data_inputs(layer)[FILTER_INPUT])[0] if kind is not None else None
        if const is None:
            raise ValueError(f"'{layer}' is not a linear op with a constant filter.")
        return ix.value(f"{const}:0"), kind
    finally:
        ix.close()
