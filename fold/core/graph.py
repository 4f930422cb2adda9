"""foldscope's model graph: a networkx DiGraph that every frontend produces and every view reads.

Schema (frontend-neutral, so a Keras model, a TensorFlow GraphDef, a TFLite flatbuffer or an
ONNX model all produce it):

Graph attributes
    ``name``      model name.
    ``frontend``  "keras", "graphdef", "tflite", "onnx".
    ``inputs``    node ids of the model inputs, in order.
    ``outputs``   node ids producing the model outputs, in order.

Node id: the layer or op name (unique within one graph). Node attributes
    ``op``       layer class or op type ("Conv2DTranspose", "BatchNormalization", "ReLU").
    ``role``     one of ROLES, for colouring and for counting BatchNorms.
    ``config``   short dict of the settings worth showing (filters, kernel_size, strides, ...).
    ``weights``  dict weight name -> shape tuple.
    ``calls``    how many times the layer is applied (shared layers have more than one).
    ``tensor``   the name of the tensor the node produces (its first output), when it is not the
                 node id: an ONNX node's output, a GraphDef op's "op:0", a TFLite tensor's name.
    ``bn_group`` for a BatchNorm made of several ops (Mul then Add): the id of its last op,
                 on each of them, so that it counts once (``count_bns``).
    ``subgraph`` for a nested model only: its own graph, same schema (``role`` "model").

Edge (u, v): a tensor produced by u and consumed by v. Edge attributes
    ``shape``    tensor shape, a tuple with None for unknown dimensions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import networkx as nx

from fold.core.kinds import LINEAR_OPS

ROLES = ("input", "linear", "bn", "activation", "model", "other")

#: Op names of model inputs in the frontends' graphs.
INPUT_OPS = frozenset({"InputLayer", "Placeholder", "INPUT", "Input"})
BN_OPS = frozenset({"BatchNormalization", "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})
ACTIVATION_OPS = frozenset({
    "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "ThresholdedReLU",
    "Relu", "Relu6", "Elu", "Selu", "Sigmoid", "Tanh", "RELU", "RELU6", "LOGISTIC", "TANH",
    "LeakyRelu", "Clip", "HardSigmoid", "HardSwish", "Softplus",
})
MODEL_OPS = frozenset({"Functional", "Sequential", "Model"})


def role_of(op: str) -> str:
    """The display and rule role of a layer class or op type."""
    if op in INPUT_OPS:
        return "input"
    if op in LINEAR_OPS:
        return "linear"
    if op in BN_OPS:
        return "bn"
    if op in ACTIVATION_OPS:
        return "activation"
    if op in MODEL_OPS:
        return "model"
    return "other"


def mark_bn(graph: nx.DiGraph, parts: Iterable[str]) -> None:
    """Mark the ops of one BatchNorm (one op, or a Mul then an Add) as a single BN."""
    parts = [p for p in parts if p in graph]
    for node in parts:
        graph.nodes[node]["role"] = "bn"
        if len(parts) > 1:
            graph.nodes[node]["bn_group"] = parts[-1]


def count_role(graph: nx.DiGraph, role: str) -> int:
    """Number of nodes with ``role``, nested models included."""
    return sum(data.get("role") == role for _, data in walk(graph))


def count_bns(graph: nx.DiGraph) -> int:
    """Number of BatchNorms, nested models included; a BN made of several ops counts once."""
    groups = {data.get("bn_group", node) for node, data in graph.nodes(data=True) if data.get("role") == "bn"}
    return len(groups) + sum(count_bns(data["subgraph"]) for _, data in graph.nodes(data=True)
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

