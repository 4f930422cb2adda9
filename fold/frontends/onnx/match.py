"""ONNX frontend, matching: the model's BN chains as candidates, and its graph, on the shared
op-graph layer (``fold.frontends.ops``) through the ONNX view (``fold.frontends.onnx.view``).

Recognised after ``Conv``, ``ConvTranspose`` (any group, 1D/2D/3D), ``Gemm`` and ``MatMul``, through
``Identity`` nodes and reshapes that keep the channel axis and an optional per-channel bias ``Add``
(the bias paddle2onnx writes as a node of its own): a ``BatchNormalization``, or a per-channel
constant ``Mul`` and/or ``Add`` (a BN as converters write it). Weights and parameters may be
initializers, ``Constant`` nodes or constants behind ``Cast``, reshapes, ``Transpose`` or
``DequantizeLinear``. Node ids are the node names, made unique and non-empty when the model is read.
"""

from __future__ import annotations

import functools

import networkx as nx
import onnx

from fold.frontends.onnx.view import OnnxView
from fold.frontends.ops.candidates import OpCandidate, op_candidate
from fold.frontends.ops.chains import candidate_chains, find_chains
from fold.frontends.ops.directions import alternatives
from fold.frontends.ops.op_graph import op_graph as ops_graph

#: Attributes worth showing in the graph.
_CONFIG_ATTRS = ("kernel_shape", "strides", "pads", "auto_pad", "dilations", "group", "output_padding",
                 "output_shape", "transA", "transB", "alpha", "beta", "epsilon", "momentum", "training_mode",
                 "axis", "perm", "mode")


def candidates(view: OnnxView) -> list[OpCandidate]:
    """Every chain of the model as a candidate, in graph order; its other directions are built only when it
    does not fold backward (they read the weights of the layers around it)."""
    found = []
    for chain in candidate_chains(view):
        c = op_candidate(view, chain)
        if c.kind is not None and chain.producer.type == "MatMul":
            c.output_node = chain.tail.id  # the Add the rewrite puts after it takes the chain's last node's name
        if chain.form != "bias":
            c.alternatives = functools.partial(_alternatives, view, c)
        found.append(c)
        _release(view)
    return found


def _alternatives(view: OnnxView, c: OpCandidate) -> list[OpCandidate]:
    found = alternatives(view, c)
    _release(view)
    return found


def _release(view: OnnxView) -> None:
    """One candidate's weights in memory at a time (a model with external data)."""
    if view.model.external is not None:
        view.model.external.release()


def _config(node: onnx.NodeProto) -> dict:
    config = {}
    for attr in node.attribute:
        if attr.name in _CONFIG_ATTRS:
            value = onnx.helper.get_attribute_value(attr)
            config[attr.name] = value.decode() if isinstance(value, bytes) else value
    if node.domain not in ("", "ai.onnx"):
        config["domain"] = node.domain
    return config


def op_graph(view: OnnxView) -> nx.DiGraph:
    """The model as foldscope's graph (see fold.core.graph): nodes as nodes, tensors as edges.

    Constants (initializers, Constant nodes and what is computed from them) become ``weights`` of
    the nodes that read them; a custom-domain op or a model function is a node like any other.
    """
    model = view.model
    hidden = lambda op: bool(op.outputs) and all(view.is_constant(t) for t in op.outputs if t)  # noqa: E731
    weights = lambda op: {t: model.shapes.get(t) for t in op.inputs if t and view.is_constant(t)}  # noqa: E731
    return ops_graph(view, find_chains(view), name=model.stem, frontend="onnx",
                     inputs=[(name, name) for name in view.feeds], outputs=[v.name for v in model.graph.output],
                     config=lambda op: _config(view.node(op)), weights=weights, hidden=hidden,
                     channels_first=True)
