"""Rewrite of a TFLite or circle model: fold each chain into its conv, in a copy of the flatbuffer.

    BEFORE                                        AFTER

      [In]  [Filter]  [Bias?]                       [In]  [Filter']  [Bias']
         \\     |      /                                \\     |      /
        TRANSPOSE_CONV (act NONE)                     TRANSPOSE_CONV (act of the ADD)
              |                                             |
          [RESHAPE...]                                 [RESHAPE...]
              |                                             |
             MUL <- [scale]    (act NONE)                 [Out]
              |
             ADD <- [shift]    (act NONE/RELU/RELU6)
              |
            [Out]

    Filter' = Filter * scale (along the output-channel axis), Bias' = Bias * scale + shift.

The ADD's (or a lone MUL's) fused activation moves onto the conv when its options have a
``fusedActivationFunction`` (all four kinds in both schemas), or else, or when asked (circle's
TRANSPOSE_CONV), becomes a separate RELU/RELU6 op as ONE's FuseBatchNormWithTConv does. A
TRANSPOSE_CONV that gains a bias input is written with op version 3 at least (the version that
introduced it), one that gains a fused activation with version 4. The last op kept (the conv, or the
last reshape looked through) takes over the tail's output tensor, so the subgraph outputs and
signatures keep their tensor indices. New weights are new tensors with buffers of their own
(converters share buffers between equal tensors); a weight stored as float16 behind a
DEQUANTIZE is written back as float16 behind that same DEQUANTIZE. DEQUANTIZE ops nothing reads
any more, and the tensors and buffers of what was dropped, are removed.

A map folded in another direction (``fold.core.rules``) changes the graph so: forward, its ops go and
what read them reads the map's input; partially, one ADD of t / s (with the tail's fused RELU) takes
their place; split over a CONCATENATION, its ops go, the CONCATENATION takes over their output and
the tail's activation is fused into each piece's layer. Each changed layer's weights are written once,
after every fold it takes (``fold.frontends.ops.plan``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np

from fold.core.rules import Decision, chosen
from fold.core.errors import at
from fold.frontends.formats import LayerKernel
from fold.frontends.flatbuffer.match import STANDALONE_ACTIVATIONS, FlatCandidate
from fold.frontends.flatbuffer.model import FlatModel
from fold.frontends.flatbuffer.schema import Schema
from fold.frontends.flatbuffer.view import SLOTS, FlatView, view_of
from fold.frontends.ops.directions import map_input, shift_vector
from fold.frontends.ops.plan import LayerFold, layer_folds

#: TRANSPOSE_CONV op versions that introduced a bias input and a fused activation.
TCONV_BIAS_VERSION, TCONV_ACTIVATION_VERSION = 3, 4
_LAYOUTS = {"float32": ("FLOAT32", "<f4"), "float16": ("FLOAT16", "<f2")}


def opcode_index(schema: Schema, model, op: str, min_version: int = 1) -> int:
    """Index of an operator code for builtin ``op`` of at least ``min_version``, added if missing."""
    builtin = schema.code(op)
    for i, code in enumerate(model.operatorCodes):
        if schema.builtin_code(code) == builtin and code.version >= min_version:
            return i
    model.operatorCodes.append(schema.operator_code(op, min_version))
    return len(model.operatorCodes) - 1


def add_constant(schema: Schema, model, sg, value: np.ndarray, name: bytes, dtype: str = "float32") -> int:
    """A new constant tensor (float32 or float16) with its own buffer (old buffers may be shared)."""
    kind, layout = _LAYOUTS[dtype]
    buffer = schema.classes.BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(value, dtype=layout).tobytes(), dtype=np.uint8)
    model.buffers.append(buffer)
    tensor = schema.classes.TensorT()
    tensor.name, tensor.shape, tensor.type = name, list(value.shape), getattr(schema.classes.TensorType, kind)
    tensor.buffer = len(model.buffers) - 1
    sg.tensors.append(tensor)
    return len(sg.tensors) - 1


def _write(view: FlatView, tree, sg, op, slot: int, value: np.ndarray, name: bytes, keep_dtype: bool = True) -> None:
    """Make ``op`` read ``value`` at ``slot``: behind the same DEQUANTIZE as float16 when the old
    weight was a float16 buffer read by this op alone (``keep_dtype``), else as a new float32 tensor."""
    old = str(op.inputs[slot]) if op.inputs[slot] >= 0 else ""
    through = view.looked_through(old) if old else []
    if keep_dtype and through and view.stored_dtype(old) == "float16" and len(view.readers(old)) == 1:
        dequantize = sg.operators[through[0].index]
        dequantize.inputs = [add_constant(view.schema, tree, sg, value, name, "float16")]
        return
    op.inputs[slot] = add_constant(view.schema, tree, sg, value, name)


def _with_version(schema: Schema, model, op, min_version: int) -> None:
    if model.operatorCodes[op.opcodeIndex].version < min_version:
        op.opcodeIndex = opcode_index(schema, model, "TRANSPOSE_CONV", min_version)


def _name(sg, t: int, default: bytes) -> bytes:
    return (sg.tensors[t].name or default) if t >= 0 else default


def _backward(schema: Schema, tree, ops: list, c: FlatCandidate) -> tuple[list, object | None]:
    """The graph of a backward fold: the last op kept produces the tail's output and the activation is
    placed. ``ops`` are the copied subgraph's ops in the view's order. Returns the ops to drop and the
    activation op to insert after the last one kept ("separate" placement), if any."""
    chain = c.chain
    op = ops[chain.producer.index]
    tail_out = ops[chain.tail.index].outputs[0]
    survivors = [op, *(ops[o.index] for o in chain.between)]
    for before, after in zip(survivors, survivors[1:]):
        after.inputs = [before.outputs[0], *list(after.inputs)[1:]]
    last = survivors[-1]
    kept_out, last.outputs = last.outputs[0], [tail_out]
    dropped = [ops[o.index] for o in chain.ops]
    if c.placement == "fused":
        op.builtinOptions.fusedActivationFunction = getattr(schema.classes.ActivationFunctionType, c.tail_activation)
        if chain.producer.type == "TRANSPOSE_CONV":
            _with_version(schema, tree, op, TCONV_ACTIVATION_VERSION)
    elif c.placement == "separate":
        # The last op kept writes its old output tensor, which now carries the values before the activation.
        act = schema.classes.OperatorT()
        act.opcodeIndex = opcode_index(schema, tree, STANDALONE_ACTIVATIONS[c.tail_activation])
        act.inputs, act.outputs, last.outputs = [kept_out], [tail_out], [kept_out]
        return dropped, act
    return dropped, None


def _forward(view: FlatView, tree, sg, ops: list, c: FlatCandidate, d: Decision) -> tuple[list, object | None]:
    """The graph of a forward fold: the map's ops go and what read the map reads its input; a partial fold's
    ADD of t / s (with the tail's fused RELU, when it had one) takes over the map's output tensor."""
    schema, chain = view.schema, c.chain
    x, tail = int(map_input(view, chain)), ops[chain.tail.index]
    dropped = [ops[o.index] for o in chain.removed]
    if d.direction == "partial":
        classes = schema.classes
        add = classes.OperatorT()
        add.opcodeIndex = opcode_index(schema, tree, "ADD")
        add.builtinOptions, add.builtinOptionsType = classes.AddOptionsT(), classes.BuiltinOptions.AddOptions
        add.builtinOptions.fusedActivationFunction = getattr(classes.ActivationFunctionType,
                                                             view.activation(chain.tail) or "NONE")
        shift = add_constant(schema, tree, sg, shift_vector(c).astype(np.float32),
                             _name(sg, tail.outputs[0], b"map") + b"/shift")
        add.inputs, add.outputs = [x, shift], [tail.outputs[0]]
        return dropped, add
    for reader in view.readers(chain.tail.output):  # the first op kept, and any op that reads only the shape
        op = ops[reader.index]
        op.inputs = [x if t == tail.outputs[0] else t for t in op.inputs]
    return dropped, None


def _concat(view: FlatView, tree, ops: list, c: FlatCandidate) -> list:
    """The graph of a concat split: the map's ops go and the CONCATENATION takes over the tail's output tensor;
    the tail's fused activation, elementwise, moves onto each piece's layer (a CONCATENATION fuses none)."""
    chain, schema = c.chain, view.schema
    ops[chain.producer.index].outputs = [ops[chain.tail.index].outputs[0]]
    for piece in c.pieces:
        if piece.placement == "fused":
            layer = ops[view.by_name[piece.layer].index]
            layer.builtinOptions.fusedActivationFunction = getattr(schema.classes.ActivationFunctionType,
                                                                   piece.tail_activation)
            if view.by_name[piece.layer].type == "TRANSPOSE_CONV":
                _with_version(schema, tree, layer, TCONV_ACTIVATION_VERSION)
    return [ops[o.index] for o in chain.removed]


def _weights(view: FlatView, tree, sg, ops: list, layer: LayerFold) -> None:
    """Write a layer's folded filter and bias (a TRANSPOSE_CONV without one gets the version that reads it)."""
    op = ops[layer.op.index]
    filter_slot, bias_slot = SLOTS[layer.op.type]
    op.inputs = list(op.inputs) + [-1] * (bias_slot + 1 - len(op.inputs))
    _write(view, tree, sg, op, filter_slot, layer.kernel, _name(sg, op.inputs[filter_slot], b"filter") + b"/folded")
    _write(view, tree, sg, op, bias_slot, layer.bias.astype(np.float32), _name(sg, op.outputs[0], b"output") + b"/bias")
    if layer.op.type == "TRANSPOSE_CONV":
        _with_version(view.schema, tree, op, TCONV_BIAS_VERSION)


def _prune(schema: Schema, model) -> None:
    """Drop DEQUANTIZE ops nothing reads, tensors of the main subgraph nothing refers to, and the
    data of buffers no tensor refers to."""
    sg = model.subgraphs[0]
    codes = {i for i, code in enumerate(model.operatorCodes) if schema.builtin_code(code) == schema.code("DEQUANTIZE")}
    while True:
        read = {t for o in sg.operators for t in o.inputs} | set(sg.outputs)
        dead = [o for o in sg.operators if o.opcodeIndex in codes and not any(t in read for t in o.outputs)]
        if not dead:
            break
        sg.operators = [o for o in sg.operators if all(o is not d for d in dead)]
    signatures = [s for s in model.signatureDefs or [] if s.subgraphIndex == 0]
    used = set(sg.inputs) | set(sg.outputs)
    for op in sg.operators:
        used |= set(op.inputs) | set(op.outputs) | set(op.intermediates if op.intermediates is not None else [])
    for signature in signatures:
        used |= {m.tensorIndex for m in (signature.inputs or []) + (signature.outputs or [])}
    keep = sorted(t for t in used if t >= 0)
    new_index = {old: new for new, old in enumerate(keep)} | {-1: -1}
    sg.tensors = [sg.tensors[t] for t in keep]
    sg.inputs, sg.outputs = [new_index[t] for t in sg.inputs], [new_index[t] for t in sg.outputs]
    for op in sg.operators:
        op.inputs, op.outputs = [new_index[t] for t in op.inputs], [new_index[t] for t in op.outputs]
        if op.intermediates is not None:
            op.intermediates = [new_index[t] for t in op.intermediates]
    for signature in signatures:
        for m in (signature.inputs or []) + (signature.outputs or []):
            m.tensorIndex = new_index[m.tensorIndex]
    referenced = {t.buffer for g in model.subgraphs for t in g.tensors}
    referenced |= {m.buffer for m in model.metadata or []} | set(model.metadataBuffer or [])
    for i, buffer in enumerate(model.buffers):
        if i not in referenced:
            buffer.data = None


def _finish(model: FlatModel, tree, ids: dict[int, str]) -> FlatModel:
    _prune(model.schema, tree)
    return model.derived(tree, [ids[id(op)] for op in tree.subgraphs[0].operators])


def rewrite(model: FlatModel, folds: Sequence[tuple[FlatCandidate, Decision]]) -> FlatModel:
    """A folded copy of ``model`` (never modified) with every folded chain rewritten; ops keep their ids."""
    view = view_of(model)
    tree = copy.deepcopy(model.tree)
    sg = tree.subgraphs[0]
    ops = list(sg.operators)  # the view's order: every rewrite below works on these objects
    ids = {id(op): name for op, name in zip(ops, model.ids)}
    dropped: list = []
    inserted: list[tuple] = []  # (after this op, insert that one)
    for c, decision in folds:
        if not decision.folded:
            continue
        taken = chosen(c, decision)
        with at(c.place):
            if decision.direction == "backward":
                gone, act = _backward(view.schema, tree, ops, taken)
                if act is not None:
                    inserted.append((ops[(c.chain.between[-1] if c.chain.between else c.chain.producer).index], act))
                    ids[id(act)] = c.output_node
            elif decision.direction == "concat":
                gone = _concat(view, tree, ops, taken)
            else:
                gone, add = _forward(view, tree, sg, ops, taken, decision)
                if add is not None:
                    inserted.append((ops[c.chain.tail.index], add))
                    ids[id(add)] = taken.forward.entry
        dropped += gone
    for layer in layer_folds(view, folds):
        with at(layer.op.place):
            _weights(view, tree, sg, ops, layer)
    for after, op in inserted:  # before the ops dropped go, so that an op placed after a dropped one finds it
        sg.operators.insert(next(i for i, o in enumerate(sg.operators) if o is after) + 1, op)
    sg.operators = [o for o in sg.operators if all(o is not d for d in dropped)]
    return _finish(model, tree, ids)


def rewrite_weights(model: FlatModel, kernels: Mapping[str, LayerKernel]) -> FlatModel:
    """A copy of ``model`` whose named ops read new float32 filter (and bias, when given) tensors of
    their own; op ids and order are unchanged, ``model`` is untouched."""
    view = view_of(model)
    tree = copy.deepcopy(model.tree)
    sg = tree.subgraphs[0]
    ops = list(sg.operators)
    for layer, new in kernels.items():
        found = view.by_name[layer]
        op = ops[found.index]
        filter_slot, bias_slot = SLOTS[found.type]
        op.inputs = list(op.inputs) + [-1] * (bias_slot + 1 - len(op.inputs))
        name = _name(sg, op.inputs[filter_slot], b"filter")
        _write(view, tree, sg, op, filter_slot, np.asarray(new.kernel, np.float32), name + b"/edited", keep_dtype=False)
        if new.bias is not None:
            if op.inputs[bias_slot] < 0 and found.type == "TRANSPOSE_CONV":
                _with_version(model.schema, tree, op, TCONV_BIAS_VERSION)
            _write(view, tree, sg, op, bias_slot, np.asarray(new.bias, np.float32).reshape(-1), name + b"/bias_edited",
                   keep_dtype=False)
    return _finish(model, tree, {id(op): name for op, name in zip(ops, model.ids)})
