"""ONNX frontend, rewrite: a copy of the model with every folded chain applied.

    BEFORE                                         AFTER
      X -> ConvTranspose(W, [B]) -> t                X -> ConvTranspose(W*s, B') -> y
        -> [Add(b)] -> BatchNormalization -> y         -> consumers of y
        -> consumers of y

    W' = W * s along the output channels (ConvTranspose: c = g * (C_out/group) + j)
    B' = (B + b) * s + t,  s = scale / sqrt(var + epsilon),  t = B_bn - mean * s

The linear node takes over the name of the chain's last output (the BN's ``Y``), so its
consumers, and a graph output of that name, need no rewiring; the BN, the bias ``Add``, the
``Mul``/``Add`` are removed. Gemm gets ``C' = B'`` with ``beta = 1``; a MatMul, which has no
bias input, is followed by one ``Add``. New weights are new initializers (the old ones are
dropped once nothing reads them); the opset and IR version are unchanged, and the result
passes ``onnx.checker.check_model(full_check=True)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from fold.core.affine import fold_kernel
from fold.core.rules import Decision
from fold.frontend import LayerKernel
from fold.frontends.onnx.match import Index, OnnxCandidate, OnnxModel


def _read(graph: onnx.GraphProto) -> Iterator[str]:
    """Every tensor name read in ``graph``: node inputs (subgraphs included) and graph outputs."""
    for node in graph.node:
        yield from node.input
        for attr in node.attribute:
            for sub in [*([attr.g] if attr.HasField("g") else []), *attr.graphs]:
                yield from _read(sub)
    yield from (v.name for v in graph.output)


class _Names:
    """Fresh tensor and node names that collide with nothing in the graph."""

    def __init__(self, graph: onnx.GraphProto):
        self.taken = {t.name for t in graph.initializer} | {v.name for v in graph.input}
        self.taken |= {t for n in graph.node for t in n.output} | {n.name for n in graph.node}

    def fresh(self, name: str) -> str:
        candidate, k = name, 1
        while candidate in self.taken:
            candidate, k = f"{name}_{k}", k + 1
        self.taken.add(candidate)
        return candidate


def _set_input(node: onnx.NodeProto, slot: int, name: str) -> None:
    while len(node.input) <= slot:
        node.input.append("")
    node.input[slot] = name


def _set_beta_one(node: onnx.NodeProto) -> None:
    kept = [a for a in node.attribute if a.name != "beta"]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute("beta", 1.0)])


def _fold_one(ix: Index, graph: onnx.GraphProto, names: _Names, c: OnnxCandidate,
              decision: Decision) -> tuple[list[onnx.TensorProto], onnx.NodeProto | None]:
    """Rewrite the chain's linear node in ``graph``; returns new initializers and a new Add, if any."""
    chain = c.chain
    node = graph.node[chain.linear]
    weight = node.input[1]
    kernel, bias = fold_kernel(ix.value(weight), c.bias, decision.affine, c.kind, c.groups)
    w_name, b_name = names.fresh(f"{weight}_folded"), names.fresh(f"{node.name}_bias_folded")
    inits = [numpy_helper.from_array(kernel, w_name), numpy_helper.from_array(bias, b_name)]
    node.input[1] = w_name
    final = ix.nodes[chain.out].output[0]
    if node.op_type == "MatMul":  # no bias input: one Add after it, producing the chain's output under
        # the name of the chain's last node (which goes), as a GraphDef's BiasAdd does
        add = helper.make_node("Add", [node.output[0], b_name], [final], name=ix.nodes[chain.out].name)
        return inits, add
    _set_input(node, 2, b_name)
    if node.op_type == "Gemm":
        _set_beta_one(node)
    node.output[0] = final
    return inits, None


def rewrite(model: OnnxModel, folds: Sequence[tuple[OnnxCandidate, Decision]]) -> OnnxModel:
    """A folded copy of ``model`` (never modified)."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    graph = proto.graph
    ix = Index(model)
    names = _Names(graph)
    removed: set[int] = set()
    added: dict[int, onnx.NodeProto] = {}
    inits: list[onnx.TensorProto] = []
    pool: set[str] = set()  # constants that may be left unread
    for c, decision in folds:
        if not decision.folded:
            continue
        new, add = _fold_one(ix, graph, names, c, decision)
        inits += new
        if add is not None:
            added[c.chain.linear] = add
        removed.update(c.chain.nodes)
        pool |= {t for i in (c.chain.linear, *c.chain.nodes) for t in ix.nodes[i].input if ix.is_constant(t)}
    nodes = []
    for i, node in enumerate(graph.node):
        if i not in removed:
            nodes.append(node)
        if i in added:
            nodes.append(added[i])
    del graph.node[:]
    graph.node.extend(nodes)
    return _finish(model, proto, inits, pool)


def rewrite_weights(model: OnnxModel, kernels: Mapping[str, LayerKernel]) -> OnnxModel:
    """A copy of ``model`` whose named nodes read new weight (and bias, when given) constants,
    in the dtypes of the ones they replace; ``model`` is untouched."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    graph = proto.graph
    ix = Index(model)
    names = _Names(graph)
    by_name = {n.name: n for n in graph.node}
    inits: list[onnx.TensorProto] = []
    pool: set[str] = set()
    for layer, new in kernels.items():
        node = by_name[layer]
        dtype = ix.value(node.input[1]).dtype
        for slot, value in ((1, new.kernel), (2, new.bias)):
            if value is None:
                continue
            if slot == 2 and node.op_type == "MatMul":
                raise ValueError(f"'{layer}' is a MatMul: it has no bias input to change.")
            old = node.input[slot] if len(node.input) > slot else ""
            name = names.fresh(f"{old or layer}_edited")
            inits.append(numpy_helper.from_array(np.asarray(value).astype(dtype), name))
            if old:
                pool.add(old)
            _set_input(node, slot, name)
    return _finish(model, proto, inits, pool)


def _finish(model: OnnxModel, proto: onnx.ModelProto, inits: list[onnx.TensorProto], pool: set[str]) -> OnnxModel:
    """Add the new initializers to ``proto``'s graph, drop the constants of ``pool`` nothing reads
    any more, and wrap it with the shapes it now has."""
    graph = proto.graph
    graph.initializer.extend(inits)
    if proto.ir_version < 4:  # initializers must also be graph inputs before IR version 4
        graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits)
    _prune(graph, pool)
    shapes = {**model.shapes, **{t.name: tuple(t.dims) for t in inits}}
    return OnnxModel(proto, model.name, shapes)


def _prune(graph: onnx.GraphProto, pool: set[str]) -> None:
    """Drop the constants of ``pool`` nothing reads any more, and value_info of tensors gone."""
    read = set(_read(graph))
    dead = pool - read
    kept = [t for t in graph.initializer if t.name not in dead]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = [n for n in graph.node if not (n.op_type == "Constant" and n.output[0] in dead)]
    del graph.node[:]
    graph.node.extend(nodes)
    inputs = [v for v in graph.input if v.name not in dead]
    del graph.input[:]
    graph.input.extend(inputs)
    existing = {t for n in graph.node for t in n.output} | {v.name for v in graph.input}
    existing |= {t.name for t in graph.initializer}
    info = [v for v in graph.value_info if v.name in existing]
    del graph.value_info[:]
    graph.value_info.extend(info)
