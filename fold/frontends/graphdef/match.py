"""GraphDef frontend, matching: the graph's BN chains as candidates, and its graph, on the shared
op-graph layer (``fold.frontends.ops``) through the GraphDef view (``fold.frontends.graphdef.view``).

Recognised after ``Conv2D``, ``Conv2DBackpropInput``, ``DepthwiseConv2dNative`` and ``MatMul``,
through ``Identity`` ops and reshapes that keep the channel axis (the ``ExpandDims -> Conv2D ->
Squeeze`` of a Conv1D) and an optional per-channel constant ``BiasAdd``/``Add``/``AddV2``: a
``FusedBatchNorm*``, or a constant ``Mul`` then ``Add`` (a BN as Keras and converters write it:
gamma = m, beta = a, mean = 0, variance = 1, epsilon = 0). "Constant" means computed from
``Const`` ops alone, so the ``Identity`` / ``Rsqrt`` / ``Mul`` sub-graphs of a frozen Keras model count.
"""

from __future__ import annotations

import networkx as nx
import tensorflow as tf

from fold.frontends.graphdef.view import GraphDefView, node_of
from fold.frontends.ops.candidates import OpCandidate, op_candidate
from fold.frontends.ops.chains import candidate_chains, find_chains
from fold.frontends.ops.op_graph import op_graph as ops_graph

_CONFIG_ATTRS = ("strides", "padding", "data_format", "dilations", "epsilon", "is_training",
                 "transpose_a", "transpose_b", "dtype", "shape")


def candidates(view: GraphDefView) -> list[OpCandidate]:
    """Every BN chain of the graph as a candidate, in graph order."""
    found = []
    for chain in candidate_chains(view):
        c = op_candidate(view, chain)
        c.output_node = chain.tail.id  # the folded chain ends in a bias add named like it
        if c.kind is not None:
            c.compute_dtype = view.compute_dtype(chain.producer)
        found.append(c)
    return found


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


def op_graph(view: GraphDefView, inputs: list[str], outputs: list[str], name: str = "graph",
             show_consts: bool = False) -> nx.DiGraph:
    """foldscope's graph of the ops; constants (ops computed from Const ops alone) become
    ``weights`` of their readers unless ``show_consts``."""
    hidden = (lambda op: False) if show_consts else (lambda op: view.constant_op(op.id))  # noqa: E731
    weights = lambda op: {view.name(t): view.shape(t) for t in op.inputs if hidden(view.by_name[node_of(t)])}  # noqa: E731
    config = lambda op: {k: _attr_value(view.node(op).attr[k]) for k in _CONFIG_ATTRS if k in view.node(op).attr}  # noqa: E731
    return ops_graph(view, find_chains(view), name=name, frontend="graphdef",
                     inputs=[(node_of(t), t) for t in inputs], outputs=list(outputs), config=config,
                     weights=weights, hidden=hidden)
