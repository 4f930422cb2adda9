"""foldscope's model graph: a networkx DiGraph that every frontend produces and every view reads.

Schema (frontend-neutral, so a Keras model, a TensorFlow GraphDef or a TFLite flatbuffer can
all produce it):

Graph attributes
    ``name``      model name.
    ``frontend``  "keras", "graphdef", "tflite", ...
    ``inputs``    node ids of the model inputs, in order.
    ``outputs``   node ids producing the model outputs, in order.

Node id: the layer or op name (unique within one graph). Node attributes
    ``op``       layer class or op type ("Conv2DTranspose", "BatchNormalization", "ReLU").
    ``role``     one of ROLES, for colouring and for the rules.
    ``config``   short dict of the settings worth showing (filters, kernel_size, strides, ...).
    ``weights``  dict weight name -> shape tuple.
    ``calls``    how many times the layer is applied (shared layers have more than one).
    ``subgraph`` for a nested model only: its own graph, same schema (``role`` "model").

Edge (u, v): a tensor produced by u and consumed by v. Edge attributes
    ``shape``    tensor shape, a tuple with None for unknown dimensions.
"""

from __future__ import annotations

from collections.abc import Iterator

import networkx as nx

from fold.kinds import KERAS_KINDS

ROLES = ("input", "linear", "bn", "activation", "model", "other")

_BN_OPS = {"BatchNormalization", "FusedBatchNorm", "FusedBatchNormV3"}
_ACTIVATION_OPS = {
    "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "ThresholdedReLU",
    "Relu", "Relu6", "Elu", "Selu", "Sigmoid", "Tanh", "RELU", "RELU6", "LOGISTIC", "TANH",
}
_MODEL_OPS = {"Functional", "Sequential", "Model"}


def role_of(op: str) -> str:
    """The display and rule role of a layer class or op type."""
    if op in ("InputLayer", "Placeholder"):
        return "input"
    if op in KERAS_KINDS:
        return "linear"
    if op in _BN_OPS:
        return "bn"
    if op in _ACTIVATION_OPS:
        return "activation"
    if op in _MODEL_OPS:
        return "model"
    return "other"


def count_role(graph: nx.DiGraph, role: str) -> int:
    """Number of nodes with ``role``, nested models included."""
    total = 0
    for _, data in graph.nodes(data=True):
        if data.get("role") == role:
            total += 1
        if "subgraph" in data:
            total += count_role(data["subgraph"], role)
    return total


def walk(graph: nx.DiGraph, prefix: str = "") -> Iterator[tuple[str, dict]]:
    """Every node as (path, attributes), nested models' nodes as "outer/inner"."""
    for node, data in graph.nodes(data=True):
        path = f"{prefix}{node}"
        yield path, data
        if "subgraph" in data:
            yield from walk(data["subgraph"], f"{path}/")
