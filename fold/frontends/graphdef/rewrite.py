"""GraphDef frontend, rewrite: a new GraphDef with every folded chain applied.

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
is kept. The input GraphDef is never modified.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2, node_def_pb2
from tensorflow.python.framework import tensor_util

from fold.core.affine import fold_kernel
from fold.core.rules import Decision
from fold.frontends.graphdef.match import OpCandidate, OpIndex, node_of


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


def prune(graph_def: graph_pb2.GraphDef, pool: set[str], keep: set[str]) -> graph_pb2.GraphDef:
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
    folded = [c for c, d in pairs if d.folded]
    affines = {c.bn: d.affine for c, d in pairs if d.folded}
    ix = OpIndex(graph_def)
    new = graph_pb2.GraphDef()
    new.CopyFrom(graph_def)
    nodes = {n.name: n for n in new.node}
    taken = set(nodes)
    gone: set[str] = set()
    for c in folded:
        kernel, bias = fold_kernel(c.kernel, c.bias, affines[c.bn], c.kind)
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
    return prune(kept, pool, {node_of(k) for k in keep} | {c.filter_const for c in folded})
