"""ONNX frontend, matching: find (linear node -> BatchNorm) chains, make their candidates, draw the graph.

Recognised after ``Conv``, ``ConvTranspose`` (any group, 1D/2D/3D), ``Gemm`` and ``MatMul``
with a constant weight, optionally through a constant per-channel ``Add`` (the bias
exporters such as paddle2onnx write as a node of its own)::

    bn:      linear -> [Add(bias)] -> BatchNormalization(scale, B, mean, var)
    affine:  linear -> [Add(bias)] -> Mul(s) -> [Add(t)]      (BN as converters emit it)
             linear -> Add(t)                                   (a lone per-channel bias)

A constant is per-channel when, broadcast against the linear node's output, it varies
along the channel axis only (axis 1 for Conv, ConvTranspose and Gemm, the last axis for
MatMul): ``[C]`` after a Gemm, ``[C,1,1]`` or ``[1,C,1,1]`` after a 2D convolution. "Constant"
means an initializer or a ``Constant`` node's value. Node ids are the node names, made
unique and non-empty when the model is read, so that an id means the same node before and
after folding.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np
import onnx
from onnx import numpy_helper

from fold.core.graph import mark_bn, role_of
from fold.core.kinds import ONNX_KINDS, Kind
from fold.core.rules import Candidate

LINEAR_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
_WEIGHT = {"Conv": "W", "ConvTranspose": "W", "Gemm": "B", "MatMul": "B"}
_BIAS = {"Conv": "B", "ConvTranspose": "B", "Gemm": "C"}
_BN_PARAMS = ("gamma", "beta", "mean", "variance")  # BatchNormalization inputs 1..4
#: Attributes worth showing in the graph.
_CONFIG_ATTRS = ("kernel_shape", "strides", "pads", "auto_pad", "dilations", "group", "output_padding",
                 "output_shape", "transA", "transB", "alpha", "beta", "epsilon", "momentum", "training_mode",
                 "axis", "perm", "mode")


@dataclass
class OnnxModel:
    """A model read by foldscope: the proto (nodes named uniquely), its file name, and the shape
    of every tensor shape inference could tell (None for an unknown dimension)."""

    proto: onnx.ModelProto
    name: str
    shapes: dict[str, tuple | None] = field(default_factory=dict)

    @property
    def graph(self) -> onnx.GraphProto:
        return self.proto.graph

    @property
    def stem(self) -> str:
        return Path(self.name).stem if self.name.lower().endswith(".onnx") else self.name

    @property
    def feeds(self) -> list[onnx.ValueInfoProto]:
        """The graph inputs a caller feeds (initializers listed as inputs are not)."""
        constant = {t.name for t in self.graph.initializer}
        return [v for v in self.graph.input if v.name not in constant]


def _named(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose nodes all have distinct, non-empty names ("OpType_i" where one is missing)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    taken = Counter(n.name for n in copy.graph.node if n.name)
    for i, node in enumerate(copy.graph.node):
        if not node.name or taken[node.name] > 1:
            taken[node.name] -= 1
            name, k = f"{node.op_type}_{i}", 1
            while name in taken:
                name, k = f"{node.op_type}_{i}_{k}", k + 1
            node.name = name
            taken[name] += 1
    return copy


def _shape(value: onnx.ValueInfoProto) -> tuple | None:
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return tuple(int(d.dim_value) if d.HasField("dim_value") else None for d in tensor.shape.dim)


def tensor_shapes(proto: onnx.ModelProto) -> dict[str, tuple | None]:
    """Tensor name -> shape, from ONNX shape inference (what it cannot tell is left out)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # inference is a display aid; a model it trips on is still folded
        inferred = proto
    graph = inferred.graph
    shapes = {v.name: _shape(v) for v in (*graph.input, *graph.value_info, *graph.output)}
    shapes.update({t.name: tuple(t.dims) for t in graph.initializer})
    return shapes


def onnx_model(proto: onnx.ModelProto, name: str = "model.onnx") -> OnnxModel:
    """Wrap a model for foldscope (the caller's proto is copied, never changed)."""
    named = _named(proto)
    return OnnxModel(named, name, tensor_shapes(named))


class Index:
    """Lookups over one graph: producers, readers, constants and their values."""

    def __init__(self, model: OnnxModel):
        self.model = model
        graph = model.graph
        self.nodes = list(graph.node)
        self.producer: dict[str, int] = {t: i for i, n in enumerate(self.nodes) for t in n.output if t}
        self.readers: dict[str, list[int]] = {}
        for i, node in enumerate(self.nodes):
            for t in dict.fromkeys(node.input):
                if t:
                    self.readers.setdefault(t, []).append(i)
        self.outputs = {v.name for v in graph.output}
        self.initializers = {t.name: t for t in graph.initializer}
        self.constant_nodes = {n.output[0]: n for n in self.nodes if n.op_type == "Constant" and n.output}
        self._values: dict[str, np.ndarray] = {}

    def is_constant(self, tensor: str) -> bool:
        return tensor in self.initializers or tensor in self.constant_nodes

    def value(self, tensor: str) -> np.ndarray:
        """The value of a constant tensor (an initializer or a Constant node's)."""
        if tensor not in self._values:
            if tensor in self.initializers:
                self._values[tensor] = numpy_helper.to_array(self.initializers[tensor])
            else:
                self._values[tensor] = _constant_value(self.constant_nodes[tensor])
        return self._values[tensor]

    def uses(self, tensor: str) -> int:
        """How many nodes read ``tensor``, plus one if it is a graph output."""
        return len(self.readers.get(tensor, [])) + (tensor in self.outputs)

    def rank(self, tensor: str) -> int | None:
        shape = self.model.shapes.get(tensor)
        return None if shape is None else len(shape)


def _constant_value(node: onnx.NodeProto) -> np.ndarray:
    attr = node.attribute[0]
    if attr.name == "value":
        return numpy_helper.to_array(attr.t)
    if attr.name in ("value_float", "value_int"):
        return np.asarray(onnx.helper.get_attribute_value(attr))
    return np.asarray(onnx.helper.get_attribute_value(attr))


def attribute(node: onnx.NodeProto, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def channel_axis(node: onnx.NodeProto, rank: int | None) -> int | None:
    """Axis of a linear node's output holding its channels (None when the rank is unknown)."""
    if node.op_type in ("Conv", "ConvTranspose", "Gemm"):
        return 1
    return None if rank is None else rank - 1


def broadcast_axes(value: np.ndarray, rank: int | None) -> tuple[int, ...] | None:
    """Axes of a rank-``rank`` tensor along which a broadcast constant varies (None: it cannot broadcast)."""
    if rank is None or value.ndim > rank:
        return None
    padded = (1,) * (rank - value.ndim) + value.shape
    return tuple(i for i, n in enumerate(padded) if n != 1)


def per_channel(value: np.ndarray, rank: int | None, axis: int | None) -> bool:
    """Whether ``value``, broadcast against the output, varies along ``axis`` only."""
    axes = broadcast_axes(value, rank)
    return axis is not None and axes is not None and axes in ((), (axis,))


def channel_vector(value: np.ndarray, channels: int) -> np.ndarray:
    """A per-channel constant as a (channels,) float64 vector."""
    return np.broadcast_to(np.asarray(value, dtype=np.float64).reshape(-1), (channels,)).copy()


@dataclass(frozen=True)
class Chain:
    """Node indices of one (linear -> BatchNorm) chain.

    linear: the producer (None when the BN reads a graph input); bias: a constant Add between
    them; removed: the BN, or the Mul and/or Add; source: the tensor the first of the chain
    (bias Add or BN) reads; form: "bn" or "affine".
    """

    linear: int | None
    bias: int | None
    removed: tuple[int, ...]
    source: str
    form: str

    @property
    def out(self) -> int:
        return self.removed[-1]

    @property
    def nodes(self) -> tuple[int, ...]:
        return (*((self.bias,) if self.bias is not None else ()), *self.removed)


def _const_operand(ix: Index, i: int) -> tuple[str, str] | None:
    """(constant input, other input) of a binary node with exactly one constant operand."""
    node = ix.nodes[i]
    if len(node.input) != 2:
        return None
    flags = [ix.is_constant(t) for t in node.input]
    if flags.count(True) != 1:
        return None
    return (node.input[0], node.input[1]) if flags[0] else (node.input[1], node.input[0])


def _linear(ix: Index, tensor: str) -> int | None:
    """The linear node producing ``tensor`` (its first output), if it is one."""
    i = ix.producer.get(tensor)
    if i is None or ix.nodes[i].op_type not in LINEAR_OPS or ix.nodes[i].output[0] != tensor:
        return None
    return i


def _per_channel_after(ix: Index, linear: int, const: str) -> bool:
    node = ix.nodes[linear]
    rank = ix.rank(node.output[0])
    return per_channel(ix.value(const), rank, channel_axis(node, rank))


def _through_bias(ix: Index, tensor: str) -> tuple[int | None, int | None]:
    """(producer, bias Add): step over a per-channel constant Add right after a linear node."""
    producer = ix.producer.get(tensor)
    if producer is None:
        return None, None
    node = ix.nodes[producer]
    split = _const_operand(ix, producer) if node.op_type == "Add" else None
    linear = None if split is None else _linear(ix, split[1])
    if linear is None or not _per_channel_after(ix, linear, split[0]):
        return producer, None
    return linear, producer


def find_chains(ix: Index) -> list[Chain]:
    """Every BatchNormalization, every per-channel Mul (then Add) and every lone per-channel Add
    after a linear node, in graph order; a node belongs to one chain at most."""
    chains: list[Chain] = []
    claimed: set[int] = set()
    for i, node in enumerate(ix.nodes):
        if node.op_type == "BatchNormalization":
            linear, bias = _through_bias(ix, node.input[0])
            chains.append(Chain(linear, bias, (i,), node.input[0], "bn"))
    for chain in chains:
        claimed.update(chain.nodes)
    for i, node in enumerate(ix.nodes):
        if i in claimed or node.op_type != "Mul":
            continue
        split = _const_operand(ix, i)
        linear, bias = _through_bias(ix, split[1]) if split else (None, None)
        if linear is None or ix.nodes[linear].op_type not in LINEAR_OPS or not _per_channel_after(ix, linear, split[0]):
            continue
        add = _following_add(ix, i, linear)
        chains.append(Chain(linear, bias, (i,) if add is None else (i, add), split[1], "affine"))
        claimed.update(chains[-1].nodes)
    for i, node in enumerate(ix.nodes):
        split = _const_operand(ix, i) if node.op_type == "Add" and i not in claimed else None
        linear = None if split is None else _linear(ix, split[1])
        if linear is not None and _per_channel_after(ix, linear, split[0]):
            chains.append(Chain(linear, None, (i,), split[1], "affine"))
    return sorted(chains, key=lambda c: c.nodes[0])


def _following_add(ix: Index, mul: int, linear: int) -> int | None:
    """The per-channel constant Add that alone reads the Mul's output, if any."""
    out = ix.nodes[mul].output[0]
    after = ix.readers.get(out, [])
    if len(after) != 1 or out in ix.outputs or ix.nodes[after[0]].op_type != "Add":
        return None
    split = _const_operand(ix, after[0])
    if split is None or split[1] != out or not _per_channel_after(ix, linear, split[0]):
        return None
    return after[0]


# -- candidates --------------------------------------------------------------------------------

@dataclass
class OnnxCandidate(Candidate):
    """A Candidate plus what only an ONNX graph can get wrong (each a list of descriptions).

    not_constant:  weights or parameters that are not initializers or Constant nodes.
    shared:        initializers of the layer also read by other nodes.
    extra_readers: intermediates of the chain read outside it, or graph outputs.
    layer_bias:    why the layer's own bias is not a per-channel vector, or None.
    """

    chain: Chain | None = None
    not_constant: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)
    extra_readers: list[str] = field(default_factory=list)
    layer_bias: str | None = None


def kind_of(node: onnx.NodeProto) -> Kind | None:
    if node.op_type == "Gemm" and attribute(node, "transB", 0):
        return ONNX_KINDS["Gemm/transB"]
    return ONNX_KINDS.get(node.op_type)


def _extra_readers(ix: Index, chain: Chain) -> list[str]:
    """Intermediates after the linear node read outside the chain (the linear output is ``consumers``)."""
    inside = set(chain.nodes)
    found = []
    for i in chain.nodes[:-1]:
        out = ix.nodes[i].output[0]
        found += [f"'{out}' -> '{ix.nodes[r].name}'" for r in ix.readers.get(out, []) if r not in inside]
        found += [f"'{out}' is a graph output"] if out in ix.outputs else []
    for extra in ix.nodes[chain.out].output[1:]:
        if extra and ix.uses(extra):
            found.append(f"'{extra}' (a side output of '{ix.nodes[chain.out].name}') is read")
    return found


def _bn_parameters(ix: Index, c: OnnxCandidate, node: onnx.NodeProto) -> None:
    """Set the BN fields of ``c`` from a BatchNormalization node."""
    c.bn_axes = (1,)
    c.bn_training = attribute(node, "training_mode", 0) == 1
    c.epsilon = float(attribute(node, "epsilon", 1e-5))
    params = dict(zip(_BN_PARAMS, node.input[1:5]))
    c.not_constant += [f"the {k} of '{node.name}' ('{t}')" for k, t in params.items() if not ix.is_constant(t)]
    if not c.not_constant and not c.bn_training:
        for key, tensor in params.items():
            setattr(c, key, ix.value(tensor).astype(np.float64).reshape(-1))


def _affine_parameters(ix: Index, c: OnnxCandidate, chain: Chain) -> None:
    """Set the BN fields of ``c`` from a per-channel Mul and/or Add."""
    scale = shift = None
    for i in chain.removed:
        const, _ = _const_operand(ix, i)
        value = channel_vector(ix.value(const), c.channels)
        if ix.nodes[i].op_type == "Mul":
            scale = value
        else:
            shift = value
    c.bn_axes = (c.channel_axis,)
    c.set_scale_shift(scale, shift)


def _layer_bias(ix: Index, c: OnnxCandidate, node: onnx.NodeProto, bias: str | None) -> np.ndarray | None:
    """The layer's own bias as a (C,) vector (Gemm's beta applied); records why it is not one."""
    if bias is None:
        return None
    value = ix.value(bias).astype(np.float64)
    if node.op_type == "Gemm":
        if not per_channel(value, 2, 1):
            c.layer_bias = f"its C input has shape {list(value.shape)}, not [N] or [1, N]"
            return None
        value = value * float(attribute(node, "beta", 1.0))
    return channel_vector(value, c.channels)


def candidate(ix: Index, chain: Chain) -> OnnxCandidate:
    """The Candidate of one chain, with every field the shared and ONNX rules read."""
    ids = [ix.nodes[i].name for i in chain.removed]
    c = OnnxCandidate(layer=chain.source, bn="+".join(ids), op="Input", kind=None, chain=chain)
    c.consumers = ix.uses(chain.source)
    c.extra_readers = _extra_readers(ix, chain)
    if chain.linear is None:
        return c
    node = ix.nodes[chain.linear]
    c.layer, c.op, c.kind = node.name, node.op_type, kind_of(node)
    if node.op_type == "MatMul":  # the Add the rewrite puts after it takes the chain's last node's name
        c.output_node = ix.nodes[chain.out].name
    c.consumers = ix.uses(node.output[0])
    if c.kind is None:
        return c
    rank = ix.rank(node.output[0])
    c.channel_axis = channel_axis(node, rank)
    c.groups = int(attribute(node, "group", 1)) if node.op_type == "ConvTranspose" else 1
    weight = node.input[1]
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    constants = [(f"the {_WEIGHT[node.op_type]} of '{node.name}'", weight)]
    constants += [(f"the {_BIAS[node.op_type]} of '{node.name}'", bias)] if bias else []
    c.not_constant = [f"{what} ('{t}')" for what, t in constants if not ix.is_constant(t)]
    c.shared = [f"'{t}' (also read by '{ix.nodes[r].name}')" for _, t in constants if t in ix.initializers
                for r in ix.readers.get(t, []) if r != chain.linear][:1]
    if chain.form == "bn":
        _bn_parameters(ix, c, ix.nodes[chain.out])
    if c.not_constant or c.bn_training:
        return c
    kernel = ix.value(weight)
    c.compute_dtype = kernel.dtype.name
    c.set_kernel(kernel)
    own = _layer_bias(ix, c, node, bias)
    added = None if chain.bias is None else channel_vector(ix.value(_const_operand(ix, chain.bias)[0]), c.channels)
    if own is not None or added is not None:
        c.bias = sum(v for v in (own, added) if v is not None)
    if chain.form == "affine":
        _affine_parameters(ix, c, chain)
    return c


def candidates(model: OnnxModel) -> list[OnnxCandidate]:
    """Every chain of the model as a candidate, in graph order."""
    ix = Index(model)
    return [candidate(ix, chain) for chain in find_chains(ix)]


# -- foldscope's graph -------------------------------------------------------------------------

def _config(node: onnx.NodeProto) -> dict:
    config = {}
    for attr in node.attribute:
        if attr.name in _CONFIG_ATTRS:
            value = onnx.helper.get_attribute_value(attr)
            config[attr.name] = value.decode() if isinstance(value, bytes) else value
    if node.domain not in ("", "ai.onnx"):
        config["domain"] = node.domain
    return config


def op_graph(model: OnnxModel) -> nx.DiGraph:
    """The model as foldscope's graph (see fold.core.graph): nodes as nodes, tensors as edges.

    Constants (initializers and Constant nodes) become ``weights`` of the nodes that read
    them; a custom-domain op or a model function is a node like any other.
    """
    ix = Index(model)
    feeds = [v.name for v in model.feeds]
    graph = nx.DiGraph(name=model.stem, frontend="onnx", inputs=feeds, outputs=[])
    producer: dict[str, str] = {}
    for name in feeds:
        graph.add_node(name, op="Input", role="input", config={}, weights={}, calls=1, tensor=name)
        producer[name] = name
    for node in ix.nodes:
        if node.op_type == "Constant":
            continue
        weights = {t: model.shapes.get(t) for t in node.input if t and ix.is_constant(t)}
        graph.add_node(node.name, op=node.op_type, role=role_of(node.op_type), config=_config(node),
                       weights=weights, calls=1, tensor=node.output[0] if node.output else node.name)
        for t in node.input:
            if t in producer:
                graph.add_edge(producer[t], node.name, shape=model.shapes.get(t))
        producer.update({t: node.name for t in node.output if t})
    graph.graph["outputs"] = [producer[v.name] for v in model.graph.output if v.name in producer]
    for chain in find_chains(ix):
        if chain.form == "affine" and len(chain.removed) == 2:
            mark_bn(graph, [ix.nodes[i].name for i in chain.removed])
    return graph
