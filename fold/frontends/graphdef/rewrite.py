"""GraphDef frontend, rewrite: a new GraphDef with every folded chain applied.

BEFORE                                        AFTER
    x -> Conv2DBackpropInput(filter=W)            x -> Conv2DBackpropInput(filter=W*s)
      -> [Identity, reshapes] -> [BiasAdd(b)]       -> [Identity, reshapes]
      -> FusedBatchNormV3 "bn"  (or Mul -> Add)     -> BiasAdd(b*s + t), named like the BN
      -> consumers of "bn"                          -> consumers of "bn"

The layer reads its folded filter from a new ``Const``; one ``BiasAdd`` (on the channel axis the
chain ends with: NHWC or NCHW, an ``AddV2`` of a broadcast constant otherwise) carrying the folded
bias replaces the old bias add and the BN ops and *takes the name of the last BN op*, so that
consumers, control dependencies and fetch names ("bn", "bn:0") keep resolving without any
rewiring. Constants that fed only what was removed (the BN's statistics, Keras's Rsqrt
sub-graph, the old filter and the Identity ops it was read through) are dropped; every other op is
kept. The input GraphDef is never modified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2, node_def_pb2
from tensorflow.python.framework import tensor_util

from fold.core.affine import fold_kernel
from fold.core.errors import at
from fold.core.rules import Decision
from fold.frontends.formats import LayerKernel
from fold.frontends.graphdef.view import FILTER_INPUT, GraphDefView, node_of, tensor_name
from fold.frontends.ops.candidates import OpCandidate
from fold.frontends.ops.names import Names


def const_node(name: str, value: np.ndarray) -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name=name, op="Const")
    node.attr["dtype"].type = tf.dtypes.as_dtype(value.dtype).as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value))
    return node


def _bias_node(view: GraphDefView, c: OpCandidate, source: str, bias_name: str, controls: list[str],
               dtype: np.dtype) -> node_def_pb2.NodeDef:
    """The add replacing the chain: the name and device of its last op, on the chain's channel axis."""
    tail = view.node(c.chain.tail)
    shape = view.shape(source)
    rank, axis = (len(shape), c.chain.axis) if shape is not None else (None, c.chain.axis)
    channels_first = rank is not None and rank > 2 and axis == 1
    if rank is None or axis in (rank - 1, -1) or channels_first:
        node = node_def_pb2.NodeDef(name=tail.name, op="BiasAdd", device=tail.device)
        node.attr["data_format"].s = b"NCHW" if channels_first else b"NHWC"
    else:
        node = node_def_pb2.NodeDef(name=tail.name, op="AddV2", device=tail.device)
    node.input.extend([source, bias_name, *controls])
    node.attr["T"].type = tf.dtypes.as_dtype(dtype).as_datatype_enum
    return node


def _bias_value(c: OpCandidate, view: GraphDefView, source: str, bias: np.ndarray) -> np.ndarray:
    """The folded bias shaped to broadcast on the chain's channel axis, when an AddV2 carries it."""
    shape = view.shape(source)
    if shape is None or c.chain.axis in (len(shape) - 1, -1) or (len(shape) > 2 and c.chain.axis == 1):
        return bias
    return bias.reshape((-1,) + (1,) * (len(shape) - 1 - c.chain.axis))


def prune(graph_def: graph_pb2.GraphDef, pool: set[str], keep: set[str]) -> graph_pb2.GraphDef:
    """Drop the constant ops of ``pool`` nobody reads any more; strip control inputs to them."""
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


def constant_ancestors(view: GraphDefView, names: Iterable[str]) -> set[str]:
    """The constant ops the named ops read, directly or through other constant ops."""
    found, stack = set(), [node_of(t) for n in names for t in view.by_name[n].inputs]
    while stack:
        name = stack.pop()
        if name in found or name not in view.by_name or not view.constant_op(name):
            continue
        found.add(name)
        stack.extend(node_of(t) for t in view.by_name[name].inputs)
    return found


def rewrite(view: GraphDefView, pairs: Sequence[tuple[OpCandidate, Decision]],
            keep: Iterable[str] = ()) -> graph_pb2.GraphDef:
    """A new GraphDef with every folded pair applied; the view's GraphDef is not modified."""
    new = graph_pb2.GraphDef()
    new.CopyFrom(view.graph_def)
    nodes = {n.name: n for n in new.node}
    names = Names(nodes)
    gone: set[str] = set()
    removed: list[str] = []
    for c, decision in pairs:
        if not decision.folded:
            continue
        with at(c.place):
            chain = c.chain
            kernel, bias = fold_kernel(c.kernel, c.bias, decision.affine, c.kind)
            filter_name = names.fresh(f"{c.layer}/folded_filter")
            new.node.append(const_node(filter_name, kernel))
            nodes[c.layer].input[FILTER_INPUT] = filter_name
            survivors = [chain.producer, *chain.between]
            for before, after in zip(survivors, survivors[1:]):
                nodes[after.id].input[0] = before.output
            source = survivors[-1].output
            bias_name = names.fresh(f"{c.bn.split('+')[-1]}/folded_bias")
            new.node.append(const_node(bias_name, _bias_value(c, view, source, bias)))
            controls = [r for o in chain.ops for r in view.node(o).input if r.startswith("^")]
            nodes[chain.tail.id].CopyFrom(_bias_node(view, c, source, bias_name, controls, kernel.dtype))
        gone |= {o.id for o in chain.ops[:-1]}
        removed += [o.id for o in chain.ops] + [c.layer]
    kept = graph_pb2.GraphDef()
    kept.CopyFrom(new)
    del kept.node[:]
    kept.node.extend(n for n in new.node if n.name not in gone)
    return prune(kept, constant_ancestors(view, removed), {node_of(k) for k in keep})


def with_kernels(view: GraphDefView, kernels: Mapping[str, LayerKernel]) -> graph_pb2.GraphDef:
    """A copy whose named ops read new filter values (and whose bias adds read new biases), each
    from a Const of its own, in the dtypes of the ones they replace; the constants they no longer
    read are dropped."""
    new = graph_pb2.GraphDef()
    new.CopyFrom(view.graph_def)
    nodes = {n.name: n for n in new.node}
    names = Names(nodes)
    pool: set[str] = set()
    for name, k in kernels.items():
        op = view.by_name[name]
        old = op.inputs[FILTER_INPUT]
        const = names.fresh(f"{name}/filter_edited")
        new.node.append(const_node(const, np.asarray(k.kernel).astype(view.value(old).dtype)))
        pool |= constant_ancestors(view, [name])
        nodes[name].input[FILTER_INPUT] = const
        if k.bias is None:
            continue
        found = view.bias_add_after(op)
        if found is None:
            raise ValueError(f"'{name}' has no bias add to write a bias into.")
        add, bias = found
        const = names.fresh(f"{name}/bias_edited")
        stored = view.value(bias)
        new.node.append(const_node(const, np.asarray(k.bias).astype(stored.dtype).reshape(stored.shape)))
        slot = [tensor_name(r) for r in nodes[add.id].input].index(bias)
        nodes[add.id].input[slot] = const
        pool |= constant_ancestors(view, [add.id])
    return prune(new, pool, set())
