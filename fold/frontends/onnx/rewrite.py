"""ONNX frontend, rewrite: a copy of the model with every folded chain applied.

    BEFORE                                         AFTER
      X -> ConvTranspose(W, [B]) -> t                X -> ConvTranspose(W*s, B') -> y
        -> [Identity, reshapes] -> [Add(b)]            -> [Identity, reshapes]
        -> BatchNormalization -> y                     -> consumers of y
        -> consumers of y

    W' = W * s along the output channels (ConvTranspose: c = g * (C_out/group) + j)
    B' = (B + b) * s + t,  s = scale / sqrt(var + epsilon),  t = B_bn - mean * s

The BN, the bias ``Add``, the ``Mul``/``Add`` are removed; the last op kept (the layer, or the
last reshape looked through) takes over the name of the chain's last output (the BN's ``Y``), so
its consumers, and a graph output of that name, need no rewiring. Gemm gets ``C' = B'`` with
``beta = 1``; a MatMul, which has no bias input, is followed by one ``Add`` named like the chain's
last node. The other directions (``fold.frontends.ops.directions``):

    forward   X -> BN -> [reshapes] -> Conv(W, B)      X -> [reshapes] -> Conv(W s, B + W t)
    partial   X -> BN -> Relu -> Conv(W, B)           X -> Add(t / s) -> Relu -> Conv(W s, B)
    concat    Conv_k -> Concat -> BN -> Y              Conv_k' -> Concat -> Y

the forward fold's first op kept reads the BN's input; a partial fold's Add takes over the BN's
output name; a MatMul that takes a map forward gets its Add under a name of its own, taking over its
output name; the Concat takes over the BN's output name. A layer's weights are written once, after
every fold that changed it (``fold.frontends.ops.plan``). New weights are new initializers; a weight stored as float16 behind a ``Cast`` is
written back as float16 behind that same Cast; constants nothing reads any more (and the nodes
that only computed them) are dropped. The opset and IR version are unchanged, and the result
passes ``onnx.checker.check_model(full_check=True)``. A model with external data gets its new
tensors in its scratch file (``fold.frontends.onnx.external``), one layer in memory at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from fold.core.rules import Decision, chosen
from fold.core.errors import at
from fold.frontends.formats import LayerKernel
from fold.frontends.onnx.external import held_tensor
from fold.frontends.onnx.model import OnnxModel
from fold.frontends.onnx.view import VALUE_OPS, OnnxView
from fold.frontends.ops.candidates import OpCandidate
from fold.frontends.ops.directions import map_input, shift_vector
from fold.frontends.ops.names import Names
from fold.frontends.ops.plan import layer_folds


def _read(graph: onnx.GraphProto) -> Iterator[str]:
    """Every tensor name read in ``graph``: node inputs (subgraphs included) and graph outputs."""
    for node in graph.node:
        yield from node.input
        for attr in node.attribute:
            for sub in [*([attr.g] if attr.HasField("g") else []), *attr.graphs]:
                yield from _read(sub)
    yield from (v.name for v in graph.output)


def _names(graph: onnx.GraphProto) -> Names:
    taken = {t.name for t in graph.initializer} | {v.name for v in graph.input}
    return Names(taken | {t for n in graph.node for t in n.output} | {n.name for n in graph.node})


def _set_input(node: onnx.NodeProto, slot: int, name: str) -> None:
    while len(node.input) <= slot:
        node.input.append("")
    node.input[slot] = name


def _set_beta_one(node: onnx.NodeProto) -> None:
    kept = [a for a in node.attribute if a.name != "beta"]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute("beta", 1.0)])


def _tensor(view: OnnxView, value: np.ndarray, name: str, held: dict[str, np.ndarray] | None = None
            ) -> onnx.TensorProto:
    """A new initializer: inline, or, for a model with external data, in its scratch file (so that
    no folded weight stays in memory), or, given ``held``, kept there in memory (a model that is run,
    never written: its weights are not written to disk to be read back)."""
    external = view.model.external
    if external is None:
        return numpy_helper.from_array(value, name)
    if held is not None:
        held[name] = np.ascontiguousarray(value)
        return held_tensor(held[name], name)
    return external.store(value, name)


def _write(view: OnnxView, graph: onnx.GraphProto, names: Names, node: onnx.NodeProto, slot: int,
           value: np.ndarray, dtype: np.dtype, held: dict[str, np.ndarray] | None = None) -> list[onnx.TensorProto]:
    """Make ``node`` read ``value`` at ``slot``: a float16 weight behind a Cast is written back as
    float16 behind that Cast (the Cast read by nothing else), any other as a new initializer
    (``held``: as ``_tensor``)."""
    old = node.input[slot] if len(node.input) > slot else ""
    cast = view.producer(old) if old else None
    if cast is not None and cast.type == "Cast" and view.stored_dtype(old) == "float16" and \
            len(view.readers(old)) == 1 and view.is_constant(cast.inputs[0]):
        stored = names.fresh(f"{cast.inputs[0]}_folded")
        graph.node[cast.index].input[0] = stored
        return [_tensor(view, np.asarray(value).astype(np.float16), stored, held)]
    name = names.fresh(f"{old or node.name}_folded")
    _set_input(node, slot, name)
    return [_tensor(view, np.asarray(value).astype(dtype, copy=False), name, held)]


def _backward(graph: onnx.GraphProto, names: Names, c: OpCandidate, edits: _Edits) -> None:
    """The graph of a backward fold: the chain goes, the last op kept takes over its output name (a
    MatMul's Add, which carries its bias, is named like the chain's last node)."""
    chain = c.chain
    node = graph.node[chain.producer.index]
    final = chain.tail.output
    survivors = [node, *(graph.node[o.index] for o in chain.between)]
    for before, after in zip(survivors, survivors[1:]):
        after.input[0] = before.output[0]
    edits.removed.update(o.index for o in chain.ops)
    if node.op_type != "MatMul":
        survivors[-1].output[0] = final
        return
    out = names.fresh(f"{node.output[0]}_biased")
    add = helper.make_node("Add", [node.output[0], ""], [out], name=chain.tail.id)
    if len(survivors) > 1:
        survivors[1].input[0] = out
        survivors[-1].output[0] = final
    else:
        add.output[0] = final
    edits.bias_adds[chain.producer.index] = add


def _forward(view: OnnxView, graph: onnx.GraphProto, names: Names, c: OpCandidate, d: Decision,
             edits: _Edits) -> None:
    """The graph of a forward fold: the map goes and what read it reads its input; a partial fold's Add of
    t / s takes over the map's output name; a MatMul gets an Add of its own for its new bias."""
    chain, target = c.chain, graph.node[view.by_name[c.layer].index]
    x, final = map_input(view, chain), chain.tail.output
    edits.removed.update(o.index for o in chain.removed)
    if d.direction == "partial":
        name = names.fresh(f"{c.forward.entry}_t")
        edits.initializers.append(_tensor(view, _partial_shift(view, c, x), name))
        edits.inserted.setdefault(chain.tail.index, []).append(
            helper.make_node("Add", [x, name], [final], name=c.forward.entry))
    else:  # the first op kept, and any op that reads only the shape, read the map's input
        for reader in view.readers(final):
            node = graph.node[reader.index]
            node.input[:] = [x if t == final else t for t in node.input]
    if target.op_type == "MatMul" and view.by_name[c.layer].index not in edits.bias_adds:
        out = names.fresh(f"{target.output[0]}_unbiased")
        add = helper.make_node("Add", [out, ""], [target.output[0]], name=d.output_node)
        target.output[0] = out
        edits.bias_adds[view.by_name[c.layer].index] = add


def _partial_shift(view: OnnxView, c: OpCandidate, x: str) -> np.ndarray:
    """A partial fold's t / s, shaped to broadcast on the map's channel axis of ``x``, in ``x``'s dtype (the
    layer's weight's, as it computes: ONNX's Conv and Gemm take one type)."""
    shape = view.shape(x)
    rank = len(shape) if shape is not None else 2
    axis = c.chain.axis if c.chain.axis is not None else 1
    dtype = np.asarray(view.value(c.weight)).dtype
    return shift_vector(c).reshape([-1 if i == axis else 1 for i in range(rank)]).astype(dtype)


def _concat(graph: onnx.GraphProto, c: OpCandidate, edits: _Edits) -> None:
    """The graph of a concat split: the map goes and the Concat takes over its output name."""
    chain = c.chain
    graph.node[chain.producer.index].output[0] = chain.tail.output
    edits.removed.update(o.index for o in chain.removed)


@dataclass
class _Edits:
    """What the folds change in the graph: nodes removed, nodes inserted after a node, a layer's bias Add
    (a MatMul's, by the layer's index), new initializers."""

    removed: set[int] = field(default_factory=set)
    inserted: dict[int, list[onnx.NodeProto]] = field(default_factory=dict)
    bias_adds: dict[int, onnx.NodeProto] = field(default_factory=dict)
    initializers: list[onnx.TensorProto] = field(default_factory=list)


def rewrite(model: OnnxModel, view: OnnxView, folds: Sequence[tuple[OpCandidate, Decision]]) -> OnnxModel:
    """A folded copy of ``model`` (never modified)."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    graph = proto.graph
    names = _names(graph)
    edits = _Edits()
    ordered = sorted((f for f in folds if f[1].folded), key=lambda f: f[1].direction not in ("backward", "concat"))
    for c, decision in ordered:  # backward first: a MatMul that also takes a map forward keeps one Add
        taken = chosen(c, decision)
        with at(c.place):
            if decision.direction == "backward":
                _backward(graph, names, taken, edits)
            elif decision.direction == "concat":
                _concat(graph, taken, edits)
            else:
                _forward(view, graph, names, taken, decision, edits)
    for layer in layer_folds(view, folds):
        with at(layer.op.place):
            node = graph.node[layer.op.index]
            edits.initializers += _write(view, graph, names, node, 1, layer.kernel, layer.kernel.dtype)
            bias = layer.bias.astype(layer.kernel.dtype)
            if layer.op.index in edits.bias_adds:
                b_name = names.fresh(f"{node.name}_bias_folded")
                edits.initializers.append(_tensor(view, bias, b_name))
                edits.bias_adds[layer.op.index].input[1] = b_name
            else:
                edits.initializers += _write(view, graph, names, node, 2, bias, layer.kernel.dtype)
                if node.op_type == "Gemm":
                    _set_beta_one(node)
        if model.external is not None:
            model.external.release()  # one layer's weights in memory at a time
    for index, add in edits.bias_adds.items():
        edits.inserted.setdefault(index, []).insert(0, add)
    nodes = []
    for i, node in enumerate(graph.node):
        if i not in edits.removed:
            nodes.append(node)
        nodes += edits.inserted.get(i, [])
    del graph.node[:]
    graph.node.extend(nodes)
    return _finish(model, proto, edits.initializers)


def rewrite_weights(model: OnnxModel, view: OnnxView, kernels: Mapping[str, LayerKernel]) -> OnnxModel:
    """A copy of ``model`` whose named nodes read new weight (and bias, when given) constants, in
    the dtypes of the ones they replace; ``model`` is untouched. With external data, the new ones are
    held in memory by the copy (``OnnxModel.arrays``)."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    graph = proto.graph
    names = _names(graph)
    inits: list[onnx.TensorProto] = []
    held: dict[str, np.ndarray] | None = None if model.external is None else {}
    for layer, new in kernels.items():
        op = view.by_name[layer]
        node = graph.node[op.index]
        dtype = np.asarray(view.value(op.inputs[1])).dtype
        for slot, value in ((1, new.kernel), (2, new.bias)):
            if value is None:
                continue
            if slot == 2 and node.op_type == "MatMul":
                raise ValueError(f"'{layer}' is a MatMul: it has no bias input to change.")
            inits += _write(view, graph, names, node, slot, np.asarray(value), dtype, held)
    return _finish(model, proto, inits, held)


def _finish(model: OnnxModel, proto: onnx.ModelProto, inits: list[onnx.TensorProto],
            held: dict[str, np.ndarray] | None = None) -> OnnxModel:
    """Add the new initializers to ``proto``'s graph, drop the constants nothing reads any more (and
    the nodes that only computed them), and wrap it with the shapes it now has and the arrays it
    holds (``model``'s and ``held``, those it still reads)."""
    graph = proto.graph
    graph.initializer.extend(inits)
    if proto.ir_version < 4:  # initializers must also be graph inputs before IR version 4
        graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits)
    _prune(graph)
    shapes = {**model.shapes, **{t.name: tuple(t.dims) for t in inits}}
    kept = {t.name for t in graph.initializer}
    arrays = {n: a for n, a in {**model.arrays, **(held or {})}.items() if n in kept}
    return OnnxModel(proto, model.name, shapes, model.external, arrays)


def _prune(graph: onnx.GraphProto) -> None:
    """Drop the initializers nothing reads, the Constant and constant-computing nodes whose outputs
    nothing reads (until none is left), and value_info of tensors gone."""
    while True:
        read = set(_read(graph))
        dead = [n for n in graph.node if (n.op_type in ("Constant", "ConstantOfShape") or n.op_type in VALUE_OPS)
                and not any(t in read for t in n.output if t) and _constant_inputs(graph, n)]
        if not dead:
            break
        gone = {id(n) for n in dead}
        kept = [n for n in graph.node if id(n) not in gone]
        del graph.node[:]
        graph.node.extend(kept)
    read = set(_read(graph))
    initializers = [t for t in graph.initializer if t.name in read]
    dropped = {t.name for t in graph.initializer} - {t.name for t in initializers}
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    inputs = [v for v in graph.input if v.name not in dropped]
    del graph.input[:]
    graph.input.extend(inputs)
    existing = {t for n in graph.node for t in n.output} | {v.name for v in graph.input}
    existing |= {t.name for t in graph.initializer}
    info = [v for v in graph.value_info if v.name in existing]
    del graph.value_info[:]
    graph.value_info.extend(info)


def _constant_inputs(graph: onnx.GraphProto, node: onnx.NodeProto) -> bool:
    """Whether a node reads only initializers and constant nodes' outputs (so dropping it drops no data)."""
    initializers = {t.name for t in graph.initializer}
    produced = {t: n for n in graph.node for t in n.output}
    return all(not t or t in initializers or (t in produced and produced[t].op_type in
                                               ("Constant", "ConstantOfShape", *VALUE_OPS))
               for t in node.input)
