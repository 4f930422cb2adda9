"""TFLite frontend, rewrite: fold each chain into its conv, in a copy of the flatbuffer.

    BEFORE                                        AFTER

      [In]  [Filter]  [Bias?]                       [In]  [Filter']  [Bias']
         \     |      /                                \     |      /
        TRANSPOSE_CONV (act NONE)                     TRANSPOSE_CONV (act of the ADD)
              |                                             |
             MUL <- [scale]    (act NONE)                 [Out]
              |
             ADD <- [shift]    (act NONE/RELU/RELU6)
              |
            [Out]

    Filter' = Filter * scale (along the output-channel axis), Bias' = Bias * scale + shift.

The ADD's (or a lone MUL's) fused activation moves onto the conv when its options have a
``fusedActivationFunction`` (all four kinds in the schema shipped with LiteRT), or else, or
when asked, becomes a separate RELU/RELU6 op as ONE does. The conv keeps its place and
takes over the tail's output tensor, so the subgraph outputs and signatures keep their
tensor indices.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools.flatbuffer_utils import convert_object_to_bytearray, get_builtin_code_from_operator_code

from fold.core.affine import fold_kernel
from fold.core.kinds import TFLITE_KINDS
from fold.core.rules import Decision
from fold.frontend import LayerKernel
from fold.frontends.tflite.match import (
    SLOTS, STANDALONE_ACTIVATIONS, TfliteCandidate, TfliteModel, float_array, op_type,
)

#: TRANSPOSE_CONV op versions that introduced a bias input and a fused activation.
_TCONV_BIAS_VERSION, _TCONV_ACTIVATION_VERSION = 3, 4


def _opcode_index(model: schema.ModelT, op: str, min_version: int = 1) -> int:
    """Index of an operator code for builtin ``op`` of at least ``min_version``, added if missing."""
    builtin = getattr(schema.BuiltinOperator, op)
    for i, code in enumerate(model.operatorCodes):
        if get_builtin_code_from_operator_code(code) == builtin and code.version >= min_version:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode, code.version = builtin, min_version
    code.deprecatedBuiltinCode = min(builtin, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _add_constant(model: schema.ModelT, sg: schema.SubGraphT, value: np.ndarray, name: bytes) -> int:
    """A new float32 constant tensor with its own buffer (old buffers may be shared)."""
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(value, dtype="<f4").tobytes(), dtype=np.uint8)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type = name, list(value.shape), schema.TensorType.FLOAT32
    tensor.buffer = len(model.buffers) - 1
    sg.tensors.append(tensor)
    return len(sg.tensors) - 1


def _with_version(model: schema.ModelT, op: schema.OperatorT, min_version: int) -> None:
    if model.operatorCodes[op.opcodeIndex].version < min_version:
        op.opcodeIndex = _opcode_index(model, "TRANSPOSE_CONV", min_version)


def fold_chain(model: schema.ModelT, sg: schema.SubGraphT, op: schema.OperatorT, affine: list[schema.OperatorT],
               c: TfliteCandidate, decision: Decision) -> schema.OperatorT | None:
    """Scale the filter, write the new bias, drop the MUL/ADD and let ``op`` produce the tail's output.

    Returns the activation op it inserts after ``op`` ("separate" placement), if any.
    """
    name = op_type(model, op)
    filter_slot, bias_slot = SLOTS[name]
    inputs = list(op.inputs) + [-1] * (bias_slot + 1 - len(op.inputs))
    bias = None if inputs[bias_slot] < 0 else float_array(model, sg, inputs[bias_slot])
    kernel, new_bias = fold_kernel(float_array(model, sg, inputs[filter_slot]), bias, decision.affine,
                                   TFLITE_KINDS[name])
    tail_out = affine[-1].outputs[0]
    filter_name = sg.tensors[inputs[filter_slot]].name or b"filter"
    inputs[filter_slot] = _add_constant(model, sg, kernel, filter_name + b"/folded")
    inputs[bias_slot] = _add_constant(model, sg, new_bias, (sg.tensors[tail_out].name or b"output") + b"/bias")
    op.inputs = inputs
    conv_out, op.outputs = op.outputs[0], [tail_out]
    sg.operators = [o for o in sg.operators if all(o is not a for a in affine)]
    if name == "TRANSPOSE_CONV":
        _with_version(model, op, _TCONV_BIAS_VERSION)
    if c.placement == "fused":
        op.builtinOptions.fusedActivationFunction = getattr(schema.ActivationFunctionType, c.tail_activation)
        if name == "TRANSPOSE_CONV":
            _with_version(model, op, _TCONV_ACTIVATION_VERSION)
    elif c.placement == "separate":
        # The conv's old output tensor now carries the values before the activation.
        act = schema.OperatorT()
        act.opcodeIndex = _opcode_index(model, STANDALONE_ACTIVATIONS[c.tail_activation])
        act.inputs, act.outputs, op.outputs = [conv_out], [tail_out], [conv_out]
        sg.operators.insert(sg.operators.index(op) + 1, act)
        return act
    return None


def _prune(model: schema.ModelT) -> None:
    """Drop tensors of the main subgraph nothing refers to; empty buffers no tensor refers to."""
    sg = model.subgraphs[0]
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


def rewrite(model: TfliteModel, folds: Sequence[tuple[TfliteCandidate, Decision]]) -> TfliteModel:
    """A folded copy of ``model`` (never modified) with every folded chain rewritten; ops keep their ids."""
    tree = copy.deepcopy(model.tree)
    sg = tree.subgraphs[0]
    ids = {id(op): name for op, name in zip(sg.operators, model.ids)}
    # Hold op objects, not indices: each rewrite shifts the indices of the ops after it.
    targets = [(sg.operators[c.chain.linear], [sg.operators[j] for j in c.chain.affine_ops], c, d)
               for c, d in folds if d.folded]
    for op, affine, c, d in targets:
        act = fold_chain(tree, sg, op, affine, c, d)
        if act is not None:
            ids[id(act)] = c.output_node
    _prune(tree)
    return TfliteModel(bytes(convert_object_to_bytearray(tree)), tree, model.name,
                       [ids[id(op)] for op in sg.operators])


def rewrite_weights(model: TfliteModel, kernels: Mapping[str, LayerKernel]) -> TfliteModel:
    """A copy of ``model`` whose named ops read new filter (and bias, when given) constants of their
    own; op ids and order are unchanged, ``model`` is untouched."""
    tree = copy.deepcopy(model.tree)
    sg = tree.subgraphs[0]
    index = {name: i for i, name in enumerate(model.ids)}
    for layer, new in kernels.items():
        op = sg.operators[index[layer]]
        filter_slot, bias_slot = SLOTS[op_type(tree, op)]
        inputs = list(op.inputs) + [-1] * (bias_slot + 1 - len(op.inputs))
        name = sg.tensors[inputs[filter_slot]].name or b"filter"
        inputs[filter_slot] = _add_constant(tree, sg, np.asarray(new.kernel), name + b"/edited")
        if new.bias is not None:
            if inputs[bias_slot] < 0 and op_type(tree, op) == "TRANSPOSE_CONV":
                _with_version(tree, op, _TCONV_BIAS_VERSION)
            inputs[bias_slot] = _add_constant(tree, sg, np.asarray(new.bias).reshape(-1), name + b"/bias_edited")
        op.inputs = inputs
    _prune(tree)
    return TfliteModel(bytes(convert_object_to_bytearray(tree)), tree, model.name, list(model.ids))
