"""TFLite frontend, part 1: find conv -> MUL -> ADD chains, decide them, rewrite the flatbuffer.

In a ``.tflite`` model BatchNorm arrives decomposed into a per-channel MUL and ADD (as in
Samsung ONE's FuseBatchNormWithTConvPass; CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED
fold the same way)::

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

Either of MUL and ADD may be missing. The ADD's (or a lone MUL's) fused activation moves onto
the conv when its options have a ``fusedActivationFunction`` (all four kinds in the schema
shipped with LiteRT), or else, or when asked, becomes a separate RELU/RELU6 op as ONE does.
The conv keeps its place and takes over the tail's output tensor, so the subgraph outputs
and signatures keep their tensor indices. Conditions (``TFLITE_RULES``, first objection
decides): float32 tensors only; constant filter, bias and operands; operands of shape [C]
or [1,...,1,C] (C may be 1); no fused activation on the conv nor on a MUL followed by the
ADD; the conv output read only by the chain; plus the frontend-neutral ``fold.rules.RULES``.
Only the main subgraph (index 0) is folded.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools.flatbuffer_utils import get_builtin_code_from_operator_code

from fold.affine import fold_kernel, per_channel_range
from fold.kinds import Kind
from fold.rules import RULES, Candidate, Decision, Rule, decide

#: TFLite op -> Kind. Layouts: CONV_2D and TRANSPOSE_CONV filters OHWI, DEPTHWISE_CONV_2D
#: 1HW(C*M) (channel c = i * M + m), FULLY_CONNECTED weights (out, in).
TFLITE_KINDS: dict[str, Kind] = {
    "CONV_2D": Kind("filter", (-4,), "conv"),
    "TRANSPOSE_CONV": Kind("filter", (-4,), "transpose"),
    "DEPTHWISE_CONV_2D": Kind("filter", (-1,), "depthwise"),
    "FULLY_CONNECTED": Kind("weights", (-2,), "dense"),
}
#: TFLite op -> (filter input slot, bias input slot); TRANSPOSE_CONV's bias is optional.
SLOTS: dict[str, tuple[int, int]] = {
    "CONV_2D": (1, 2), "TRANSPOSE_CONV": (1, 3), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2),
}
#: Fused activation -> the standalone op that computes it.
STANDALONE_ACTIVATIONS = {"RELU": "RELU", "RELU6": "RELU6", "RELU_N1_TO_1": "RELU_N1_TO_1", "TANH": "TANH"}
#: TRANSPOSE_CONV op versions that introduced a bias input and a fused activation.
_TCONV_BIAS_VERSION, _TCONV_ACTIVATION_VERSION = 3, 4


def _names(enum: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


OP_NAMES = _names(schema.BuiltinOperator)
ACTIVATION_NAMES = _names(schema.ActivationFunctionType)
TENSOR_TYPE_NAMES = _names(schema.TensorType)


def op_type(model: schema.ModelT, op: schema.OperatorT) -> str:
    """The op's builtin name ("CONV_2D") or its custom code."""
    code = model.operatorCodes[op.opcodeIndex]
    builtin = get_builtin_code_from_operator_code(code)
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.customCode or b"CUSTOM"
        return custom.decode(errors="replace") if isinstance(custom, bytes) else str(custom)
    return OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


def node_id(index: int, op: str) -> str:
    """Graph node id of the op at ``index`` of the main subgraph."""
    return f"{op}:{index}"


def activation_of(op: schema.OperatorT) -> str:
    """The op's fused activation name ("NONE" when it has none or cannot have one)."""
    return ACTIVATION_NAMES[getattr(op.builtinOptions, "fusedActivationFunction", 0)]


def readers(sg: schema.SubGraphT) -> dict[int, list[int]]:
    """Tensor index -> indices of the ops reading it (each op once)."""
    found: dict[int, list[int]] = {}
    for i, op in enumerate(sg.operators):
        for t in dict.fromkeys(op.inputs):
            if t >= 0:
                found.setdefault(t, []).append(i)
    return found


def is_constant(model: schema.ModelT, sg: schema.SubGraphT, t: int) -> bool:
    """A tensor with data in its buffer that is neither a model input nor a variable."""
    tensor = sg.tensors[t]
    data = model.buffers[tensor.buffer].data
    return data is not None and len(data) > 0 and not tensor.isVariable and t not in sg.inputs


def float_array(model: schema.ModelT, sg: schema.SubGraphT, t: int) -> np.ndarray:
    """A constant float32 tensor's data, shaped."""
    tensor = sg.tensors[t]
    raw = np.asarray(model.buffers[tensor.buffer].data, dtype=np.uint8).tobytes()
    return np.frombuffer(raw, dtype="<f4").reshape([int(d) for d in tensor.shape]).astype(np.float32)


def other_operand(op: schema.OperatorT, x: int) -> int:
    """The input of a binary op that is not ``x`` (``x`` itself for ``x op x``)."""
    a, b = op.inputs[0], op.inputs[1]
    return b if a == x else a


@dataclass(frozen=True)
class Chain:
    """Op indices of one conv and the MUL and/or ADD reading its output."""

    linear: int
    mul: int | None
    add: int | None

    @property
    def affine_ops(self) -> tuple[int, ...]:
        return tuple(i for i in (self.mul, self.add) if i is not None)

    @property
    def tail(self) -> int:
        return self.affine_ops[-1]


def following_add(model: schema.ModelT, sg: schema.SubGraphT, mul: int, found: dict[int, list[int]]) -> int | None:
    """The ADD with a constant operand that alone reads the MUL's output, if any."""
    out = sg.operators[mul].outputs[0]
    after = found.get(out, [])
    if len(after) != 1 or out in sg.outputs:
        return None
    add = sg.operators[after[0]]
    if op_type(model, add) != "ADD" or not is_constant(model, sg, other_operand(add, out)):
        return None
    return after[0]


def find_chains(model: schema.ModelT, sg: schema.SubGraphT) -> list[Chain]:
    """Every conv of a kind in TFLITE_KINDS whose output feeds a MUL or an ADD."""
    found = readers(sg)
    chains = []
    for i, op in enumerate(sg.operators):
        if op_type(model, op) not in TFLITE_KINDS:
            continue
        first = next((j for j in found.get(op.outputs[0], [])
                      if op_type(model, sg.operators[j]) in ("MUL", "ADD")), None)
        if first is None:
            continue
        if op_type(model, sg.operators[first]) == "ADD":
            chains.append(Chain(i, None, first))
        else:
            chains.append(Chain(i, first, following_add(model, sg, first, found)))
    return chains


@dataclass
class TfliteCandidate(Candidate):
    """A Candidate plus what only a flatbuffer can get wrong (each a list of descriptions)."""

    not_float32: list[str] = field(default_factory=list)
    not_constant: list[str] = field(default_factory=list)
    bad_shapes: list[str] = field(default_factory=list)
    mul_activation: str | None = None


def _per_channel(shape: list[int], rank: int, channels: int) -> bool:
    """Shape [C] or [1,...,1,C] (C may be 1, which broadcasts), no longer than the output's rank."""
    return 1 <= len(shape) <= rank and all(d == 1 for d in shape[:-1]) and shape[-1] in (1, channels)


def _channel_vector(model: schema.ModelT, sg: schema.SubGraphT, t: int, channels: int) -> np.ndarray:
    return np.broadcast_to(float_array(model, sg, t).astype(np.float64).reshape(-1), (channels,)).copy()


def _operands(sg: schema.SubGraphT, chain: Chain, affine: list[tuple[str, int]], out: int) -> list[tuple[str, int]]:
    """(node id, constant-side tensor) of each MUL/ADD, following the data from the conv's output."""
    operands = []
    for name, j in affine:
        operands.append((name, other_operand(sg.operators[j], out)))
        out = sg.operators[j].outputs[0]
    return operands


def _not_float32(sg: schema.SubGraphT, tensors: list[tuple[str, int]]) -> list[str]:
    """Descriptions of the tensors that are not plain (unquantized) float32."""
    found = []
    for what, t in tensors:
        tensor = sg.tensors[t]
        q = tensor.quantization
        quantized = q is not None and q.scale is not None and len(q.scale) > 0
        if tensor.type != schema.TensorType.FLOAT32 or quantized:
            dtype = TENSOR_TYPE_NAMES.get(tensor.type, str(tensor.type))
            found.append(f"{what} is {dtype}{' quantized' if quantized else ''}")
    return found


def candidate(model: schema.ModelT, sg: schema.SubGraphT, chain: Chain) -> TfliteCandidate:
    """What the rules need to know about one chain."""
    op = sg.operators[chain.linear]
    name = op_type(model, op)
    kind = TFLITE_KINDS[name]
    filter_slot, bias_slot = SLOTS[name]
    out = op.outputs[0]
    layer = node_id(chain.linear, name)
    affine = [(node_id(j, op_type(model, sg.operators[j])), j) for j in chain.affine_ops]
    found = readers(sg)
    c = TfliteCandidate(
        layer=layer, bn="+".join(n for n, _ in affine), op=name, kind=kind,
        activation=None if activation_of(op) == "NONE" else activation_of(op),
        consumers=len(found.get(out, [])) + (out in sg.outputs),
        channel_axis=len(sg.tensors[out].shape) - 1, bn_axes=(len(sg.tensors[out].shape) - 1,),
    )
    if chain.mul is not None and chain.add is not None and activation_of(sg.operators[chain.mul]) != "NONE":
        c.mul_activation = activation_of(sg.operators[chain.mul])
    bias = op.inputs[bias_slot] if len(op.inputs) > bias_slot and op.inputs[bias_slot] >= 0 else None
    operands = _operands(sg, chain, affine, out)
    weights = [(f"the {kind.weight} of '{layer}'", op.inputs[filter_slot])]
    weights += [(f"the bias of '{layer}'", bias)] if bias is not None else []
    weights += [(f"the operand of '{n}'", t) for n, t in operands]
    c.not_float32 = _not_float32(sg, weights + [(f"the output of '{layer}'", out)])
    c.not_constant = [what for what, t in weights if not is_constant(model, sg, t)]
    if c.not_float32 or c.not_constant:
        return c
    kernel = float_array(model, sg, op.inputs[filter_slot])
    c.channels = int(np.prod([kernel.shape[a] for a in kind.out_axes]))
    rank = len(sg.tensors[out].shape)
    c.bad_shapes = [f"the operand of '{n}' has shape {list(sg.tensors[t].shape)}" for n, t in operands
                    if not _per_channel(list(sg.tensors[t].shape), rank, c.channels)]
    if c.bad_shapes:
        return c
    by_op = {j: t for (_, t), j in zip(operands, chain.affine_ops)}
    c.gamma = np.ones(c.channels) if chain.mul is None else _channel_vector(model, sg, by_op[chain.mul], c.channels)
    c.beta = np.zeros(c.channels) if chain.add is None else _channel_vector(model, sg, by_op[chain.add], c.channels)
    # mean 0, variance 1 and epsilon 0 make bn_affine's (scale, shift) exactly (gamma, beta).
    c.mean, c.variance, c.epsilon = np.zeros(c.channels), np.ones(c.channels), 0.0
    c.kernel_absmax = np.abs(per_channel_range(kernel, kind.out_axes)).max(axis=1)
    c.bias = None if bias is None else float_array(model, sg, bias).reshape(-1)
    return c


def _float32_tensors(c: Candidate) -> str | None:
    if isinstance(c, TfliteCandidate) and c.not_float32:
        return (f"'{c.layer}' -> '{c.bn}' is not plain float32 ({'; '.join(c.not_float32)}); "
                "foldscope folds float32 models only.")
    return None


def _constant_operands(c: Candidate) -> str | None:
    if isinstance(c, TfliteCandidate) and c.not_constant:
        return (f"{c.not_constant[0][0].upper()}{c.not_constant[0][1:]} is not a constant, "
                f"so '{c.bn}' cannot be folded into '{c.layer}'.")
    return None


def _per_channel_operands(c: Candidate) -> str | None:
    if isinstance(c, TfliteCandidate) and c.bad_shapes:
        return (f"{c.bad_shapes[0][0].upper()}{c.bad_shapes[0][1:]}, not [C] or [1,...,1,C] "
                f"with C = {c.channels} channels of '{c.layer}'.")
    return None


def _linear_mul(c: Candidate) -> str | None:
    if isinstance(c, TfliteCandidate) and c.mul_activation:
        return (f"The MUL of '{c.bn}' applies a fused {c.mul_activation} before the ADD, "
                "so the pair is not a BatchNorm.")
    return None


#: TFLite-only guards first, then the frontend-neutral registry.
TFLITE_RULES: tuple[Rule, ...] = (
    Rule("float32", "Filter, bias, operands and output are float32, not quantized.", _float32_tensors),
    Rule("constant-operands", "Filter, bias and the MUL/ADD operands are constants.", _constant_operands),
    Rule("per-channel-operands", "The MUL/ADD operands have shape [C] or [1,...,1,C].", _per_channel_operands),
    Rule("linear-mul", "The MUL has no fused activation before the ADD.", _linear_mul),
    *RULES,
)


@dataclass
class TfliteDecision(Decision):
    """A Decision plus where the tail's fused activation goes: "fused", "separate" or None."""

    activation: str | None = None
    placement: str | None = None

    def to_dict(self) -> dict:
        return {**super().to_dict(), "activation": self.activation_note}

    @property
    def activation_note(self) -> str | None:
        if self.status != "folded" or self.activation is None:
            return None
        if self.placement == "fused":
            return f"{self.activation} fused into '{self.layer}'"
        return f"{self.activation} kept as a separate {self.activation} op after '{self.layer}'"


def decide_chain(model: schema.ModelT, sg: schema.SubGraphT, chain: Chain,
                 split_activation: bool = False) -> TfliteDecision:
    """Run the rules on one chain and, when it folds, choose where its activation goes."""
    decision = TfliteDecision(**vars(decide(candidate(model, sg, chain), TFLITE_RULES)))
    tail_activation = activation_of(sg.operators[chain.tail])
    if decision.status == "folded" and tail_activation != "NONE":
        fusable = hasattr(sg.operators[chain.linear].builtinOptions, "fusedActivationFunction")
        separate = (split_activation or not fusable) and tail_activation in STANDALONE_ACTIVATIONS
        decision.activation, decision.placement = tail_activation, "separate" if separate else "fused"
    return decision


def decide_all(model: schema.ModelT, split_activation: bool = False) -> list[tuple[Chain, TfliteDecision]]:
    """Every chain of the main subgraph with its decision."""
    sg = model.subgraphs[0]
    return [(chain, decide_chain(model, sg, chain, split_activation)) for chain in find_chains(model, sg)]


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


def fold_chain(model: schema.ModelT, sg: schema.SubGraphT, op: schema.OperatorT,
               affine: list[schema.OperatorT], decision: TfliteDecision) -> None:
    """Scale the filter, write the new bias, drop the MUL/ADD and let ``op`` produce the tail's output."""
    name = op_type(model, op)
    filter_slot, bias_slot = SLOTS[name]
    inputs = list(op.inputs) + [-1] * (bias_slot + 1 - len(op.inputs))
    bias = None if inputs[bias_slot] < 0 else float_array(model, sg, inputs[bias_slot])
    kernel, new_bias = fold_kernel(float_array(model, sg, inputs[filter_slot]), bias, decision.affine,
                                   TFLITE_KINDS[name].out_axes)
    tail_out = affine[-1].outputs[0]
    filter_name = sg.tensors[inputs[filter_slot]].name or b"filter"
    inputs[filter_slot] = _add_constant(model, sg, kernel, filter_name + b"/folded")
    inputs[bias_slot] = _add_constant(model, sg, new_bias, (sg.tensors[tail_out].name or b"output") + b"/bias")
    op.inputs = inputs
    conv_out, op.outputs = op.outputs[0], [tail_out]
    sg.operators = [o for o in sg.operators if all(o is not a for a in affine)]
    if name == "TRANSPOSE_CONV":
        _with_version(model, op, _TCONV_BIAS_VERSION)
    if decision.placement == "fused":
        op.builtinOptions.fusedActivationFunction = getattr(schema.ActivationFunctionType, decision.activation)
        if name == "TRANSPOSE_CONV":
            _with_version(model, op, _TCONV_ACTIVATION_VERSION)
    elif decision.placement == "separate":
        # The conv's old output tensor now carries the values before the activation.
        act = schema.OperatorT()
        act.opcodeIndex = _opcode_index(model, STANDALONE_ACTIVATIONS[decision.activation])
        act.inputs, act.outputs, op.outputs = [conv_out], [tail_out], [conv_out]
        sg.operators.insert(sg.operators.index(op) + 1, act)


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


def rewrite(model: schema.ModelT, folds: list[tuple[Chain, TfliteDecision]]) -> schema.ModelT:
    """A folded copy of ``model`` (never modified) with every "folded" chain rewritten."""
    out = copy.deepcopy(model)
    sg = out.subgraphs[0]
    # Hold op objects, not indices: each rewrite shifts the indices of the ops after it.
    targets = [(sg.operators[chain.linear], [sg.operators[j] for j in chain.affine_ops], decision)
               for chain, decision in folds if decision.status == "folded"]
    for op, affine, decision in targets:
        fold_chain(out, sg, op, affine, decision)
    _prune(out)
    return out
