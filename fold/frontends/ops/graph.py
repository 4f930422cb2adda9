"""foldscope's graph (``fold.core.graph``) of an op-level model, written once: ops as nodes,
tensors as edges, constants as the weights of the ops that read them, each BatchNorm chain marked
as one BN (or, when it is no BN, as one other affine map; a bias add stays an add)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import networkx as nx

from fold.core.graph import mark_bn
from fold.errors import at
from fold.frontends.ops.chains import Chain
from fold.frontends.ops.view import Op, OpView, input_op


def op_graph(view: OpView, chains: Sequence[Chain], *, name: str, frontend: str, inputs: Sequence[tuple[str, str]],
             outputs: Sequence[str], config: Callable[[Op], dict], weights: Callable[[Op], dict],
             hidden: Callable[[Op], bool] = lambda op: False) -> nx.DiGraph:
    """The graph of ``view``: ``inputs`` are (node id, tensor) of the model inputs, ``outputs`` the
    output tensors; ``config`` and ``weights`` say what a node shows; ``hidden`` ops (constants
    computed in the graph) are left out, their outputs becoming the weights of their readers."""
    graph = nx.DiGraph(name=name, frontend=frontend, inputs=[node for node, _ in inputs], outputs=[])
    producer: dict[str, str] = {}
    ids = {op.id for op in view.ops}
    for node, tensor in inputs:
        if node not in ids:  # an input that is no op of the model (ONNX) gets a node of its own
            graph.add_node(node, op=input_op(view), role="input", config={}, weights={}, calls=1, tensor=view.name(tensor))
        producer[tensor] = node
    vocab = view.vocabulary
    for op in view.ops:
        with at(op.place):
            if hidden(op):
                continue
            graph.add_node(op.id, op=op.type, role=vocab.role(op.type, view.kind(op) is not None), config=config(op),
                           weights=weights(op), calls=1, tensor=view.name(op.output) if op.output else op.id)
            for t in dict.fromkeys(t for t in op.inputs if t):
                if t in producer:
                    graph.add_edge(producer[t], op.id, shape=view.shape(t))
            producer.update({t: op.id for t in op.outputs if t})
    graph.graph["outputs"] = [producer[t] for t in outputs if t in producer]
    for chain in chains:
        if chain.axis is not None and chain.axis != view.default_axis(len(view.shape(chain.source) or ())):
            for op in chain.removed:  # its channels sit where the format's layout does not put them
                graph.nodes[op.id]["channel_axis"] = chain.axis
        if chain.form == "bias" or (len(chain.removed) == 1 and chain.tail.type in vocab.bns):
            continue  # a bias add is an add; a BN op is already one
        mark_bn(graph, [o.id for o in chain.removed], "bn" if chain.form == "bn" else "affine")
    return graph
