"""foldscope's model graph: a networkx DiGraph that every frontend produces and every view reads.

Schema (frontend-neutral, so a Keras model, a TensorFlow GraphDef, a TFLite flatbuffer or an
ONNX model all produce it):

Graph attributes
    ``name``      model name.
    ``frontend``  "keras", "graphdef", "tflite", "onnx", "circle".
    ``inputs``    node ids of the model inputs, in order.
    ``outputs``   node ids producing the model outputs, in order.
    ``channels_first`` True when the format lays its tensors out channels first (ONNX: NCHW); absent
                  when it lays them out channels last, as the others do (a node may still say otherwise).

Node id: the layer or op name (unique within one graph). Node attributes
    ``op``       layer class or op type ("Conv2DTranspose", "BatchNormalization", "ReLU").
    ``role``     one of ROLES, for colouring and for counting BatchNorms ("bn") and other affine
                 maps the fold absorbs ("affine": a scalar Mul/Add block, a bias add).
    ``config``   short dict of the settings worth showing (filters, kernel_size, strides, ...).
    ``weights``  dict weight name -> shape tuple.
    ``calls``    how many times the layer is applied (shared layers have more than one).
    ``tensor``   the name of the tensor the node produces (its first output), when it is not the
                 node id: an ONNX node's output, a GraphDef op's "op:0", a TFLite tensor's name.
    ``bn_group`` for a BatchNorm made of several ops (Mul then Add): the id of its last op,
                 on each of them, so that it counts once (``count_bns``).
    ``channel_axis`` the axis of the node's output that holds the channels, when the graph knows it
                 apart from its format's layout: a BN after a TRANSPOSE back to NCHW in a
                 channels-last format (index from 0).
    ``subgraph`` for a nested model only: its own graph, same schema (``role`` "model").

Edge (u, v): a tensor produced by u and consumed by v. Edge attributes
    ``shape``    tensor shape, a tuple with None for unknown dimensions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import networkx as nx


ROLES = ("input", "linear", "bn", "affine", "activation", "model", "other")


@dataclass(frozen=True)
class Vocabulary:
    """A format's op (or layer class) names by role: what its graph shows as an input, a BatchNorm,
    an activation (and which activations are positively homogeneous, f(a x) = a f(x) for a > 0,
    which cross-layer equalization may step over), a nested model; for op-level formats also its
    binary Mul and Add ops, the ops that only pass a tensor on (identities) or reshape it, the ops
    that move elements without mixing channels, whose view says where the channel axis goes
    (relayouts: a TRANSPOSE, a SLICE of other axes), the reductions a normalization computes its
    run-time statistics with (a LayerNorm's mean), its concatenations and the ops that read only
    their input's shape (what a dynamic reshape reads). Each frontend owns its vocabulary; the core
    knows none."""

    inputs: frozenset[str] = frozenset()
    bns: frozenset[str] = frozenset()
    activations: frozenset[str] = frozenset()
    homogeneous: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()
    muls: frozenset[str] = frozenset()
    adds: frozenset[str] = frozenset()
    identities: frozenset[str] = frozenset()
    reshapes: frozenset[str] = frozenset()
    relayouts: frozenset[str] = frozenset()
    reductions: frozenset[str] = frozenset()
    concats: frozenset[str] = frozenset()
    shapes: frozenset[str] = frozenset()

    def role(self, op: str, linear: bool = False) -> str:
        """The display and rule role of an op type (``linear``: it is a kind foldscope folds into)."""
        if op in self.inputs:
            return "input"
        if linear:
            return "linear"
        if op in self.bns:
            return "bn"
        if op in self.activations:
            return "activation"
        if op in self.models:
            return "model"
        return "other"


def mark_bn(graph: nx.DiGraph, parts: Iterable[str], role: str = "bn") -> None:
    """Mark the ops of one BatchNorm (one op, or a Mul then an Add) as a single BN, or, with
    ``role`` "affine", as one other affine map; a group of several ops counts once."""
    parts = [p for p in parts if p in graph]
    for node in parts:
        graph.nodes[node]["role"] = role
        if len(parts) > 1:
            graph.nodes[node]["bn_group"] = parts[-1]


def node_tensor(graph: nx.DiGraph, node: str) -> str:
    """The name of the tensor ``node`` produces (its ``tensor``, else the node id)."""
    return graph.nodes[node].get("tensor", node)


def count_role(graph: nx.DiGraph, role: str) -> int:
    """Number of nodes with ``role``, nested models included."""
    return sum(data.get("role") == role for _, data in walk(graph))


def count_bns(graph: nx.DiGraph, role: str = "bn") -> int:
    """Number of BatchNorms (``role`` "affine": of other affine maps), nested models included; one
    made of several ops counts once."""
    groups = {data.get("bn_group", node) for node, data in graph.nodes(data=True) if data.get("role") == role}
    return len(groups) + sum(count_bns(data["subgraph"], role) for _, data in graph.nodes(data=True)
                             if "subgraph" in data)


def walk(graph: nx.DiGraph, prefix: str = "") -> Iterator[tuple[str, dict]]:
    """Every node as (path, attributes), nested models' nodes as "outer/inner"."""
    for node, data in graph.nodes(data=True):
        path = f"{prefix}{node}"
        yield path, data
        if "subgraph" in data:
            yield from walk(data["subgraph"], f"{path}/")


def flatten(graph: nx.DiGraph, expand: Iterable[str] | None = None, prefix: str = "") -> nx.DiGraph:
    """The graph with nested models opened: node "m" holding a subgraph becomes its nodes "m/...".

    ``expand`` names the nested nodes to open (None: all, recursively). An edge into an opened
    node goes to its subgraph's inputs, an edge out of it leaves from its subgraph's outputs;
    the opened nodes keep their attributes, with ``namespace`` set to the nested node's path.
    """
    opened = None if expand is None else set(expand)
    flat = nx.DiGraph(**graph.graph)
    ends: dict[str, tuple[list[str], list[str]]] = {}  # opened node -> (its inputs, its outputs)
    for node, data in graph.nodes(data=True):
        path = f"{prefix}{node}"
        sub = data.get("subgraph")
        if sub is None or (opened is not None and path not in opened):
            flat.add_node(path, **{**{k: v for k, v in data.items() if k != "subgraph"},
                                   "namespace": prefix.rstrip("/"), "collapsed": sub is not None})
            continue
        inner = flatten(sub, None if opened is None else opened, f"{path}/")
        flat.add_nodes_from(inner.nodes(data=True))
        flat.add_edges_from(inner.edges(data=True))
        ends[path] = ([f"{path}/{n}" for n in sub.graph.get("inputs", [])],
                      [f"{path}/{n}" for n in sub.graph.get("outputs", [])])
    for u, v, data in graph.edges(data=True):
        sources = ends.get(f"{prefix}{u}", (None, [f"{prefix}{u}"]))[1]
        targets = ends.get(f"{prefix}{v}", ([f"{prefix}{v}"], None))[0]
        flat.add_edges_from(((s, t, data) for s in sources for t in targets if s in flat and t in flat))
    return flat

