"""TFLite frontend, matching: find conv -> MUL -> ADD chains, make their candidates, draw the op graph.

In a ``.tflite`` model BatchNorm arrives decomposed into a per-channel MUL and ADD (as in
Samsung ONE's FuseBatchNormWithTConvPass; CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED
fold the same way); either may be missing. Only the main subgraph (index 0) is read.
Ops are named ``OP:i`` after their index ``i`` in the file the user gave (``TfliteModel.ids``),
so an op keeps its id through a rewrite.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools.flatbuffer_utils import get_builtin_code_from_operator_code

from fold.core.graph import mark_bn, role_of
from fold.core.kinds import TFLITE_KINDS
from fold.core.rules import Candidate

#: TFLite op -> (filter input slot, bias input slot); TRANSPOSE_CONV's bias is optional.
SLOTS: dict[str, tuple[int, int]] = {
    "CONV_2D": (1, 2), "TRANSPOSE_CONV": (1, 3), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2),
}
#: Fused activation -> the standalone op that computes it.
STANDALONE_ACTIVATIONS = {"RELU": "RELU", "RELU6": "RELU6", "RELU_N1_TO_1": "RELU_N1_TO_1", "TANH": "TANH"}


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
    """Op indices of a MUL and/or an ADD by constants and of the op producing their input.

    source: the tensor the first of them reads; linear: the op producing it (None when it
    is a model input). A conv followed by a lone MUL or ADD is a chain; so is a MUL -> ADD
    pair (a decomposed BatchNorm) after any op, which the rules then refuse with a reason.
    """

    linear: int | None
    mul: int | None
    add: int | None
    source: int

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


def decomposed_bn(model: schema.ModelT, sg: schema.SubGraphT, mul: int, found: dict[int, list[int]]) -> int | None:
    """The ADD completing a decomposed BatchNorm that starts with MUL op ``mul``, if it does."""
    op = sg.operators[mul]
    if op_type(model, op) != "MUL" or sum(is_constant(model, sg, t) for t in op.inputs) != 1:
        return None
    return following_add(model, sg, mul, found)


def find_chains(model: schema.ModelT, sg: schema.SubGraphT) -> list[Chain]:
    """Every conv of a kind in TFLITE_KINDS whose output feeds a MUL or an ADD, and every other
    decomposed BatchNorm (constant MUL -> constant ADD), in op order."""
    found = readers(sg)
    producer = {t: i for i, op in enumerate(sg.operators) for t in op.outputs}
    chains, claimed = [], set()
    for i, op in enumerate(sg.operators):
        if op_type(model, op) not in TFLITE_KINDS:
            continue
        out = op.outputs[0]
        first = next((j for j in found.get(out, []) if op_type(model, sg.operators[j]) in ("MUL", "ADD")), None)
        if first is None:
            continue
        if op_type(model, sg.operators[first]) == "ADD":
            chains.append(Chain(i, None, first, out))
        else:
            chains.append(Chain(i, first, following_add(model, sg, first, found), out))
        claimed.update(chains[-1].affine_ops)
    for i, op in enumerate(sg.operators):
        add = None if i in claimed else decomposed_bn(model, sg, i, found)
        if add is not None:
            x = next(t for t in op.inputs if not is_constant(model, sg, t))
            chains.append(Chain(producer.get(x), i, add, x))
    return sorted(chains, key=lambda c: c.affine_ops[0])


@dataclass
class TfliteModel:
    """A parsed .tflite model: its bytes, its schema object tree and a stable id per op of
    subgraph 0 ("OP:i", i the op's index in the file the user gave)."""

    data: bytes
    tree: schema.ModelT
    name: str
    ids: list[str]

    @property
    def main(self) -> schema.SubGraphT:
        return self.tree.subgraphs[0]

    @property
    def stem(self) -> str:
        """The name without a .tflite suffix, for graphs and file names."""
        return self.name[:-7] if self.name.lower().endswith(".tflite") else self.name


def op_ids(tree: schema.ModelT) -> list[str]:
    """The ids of a freshly read model's ops: "OP:index"."""
    return [f"{op_type(tree, op)}:{i}" for i, op in enumerate(tree.subgraphs[0].operators)]


@dataclass
class TfliteCandidate(Candidate):
    """A Candidate plus what only a flatbuffer can get wrong (each a list of descriptions).

    placement: where the tail's fused activation goes once folded: "fused" onto the conv,
    "separate" (its own op after the conv, as Samsung ONE does) or None when there is none.
    """

    chain: Chain | None = None
    not_float32: list[str] = field(default_factory=list)
    not_constant: list[str] = field(default_factory=list)
    bad_shapes: list[str] = field(default_factory=list)
    mul_activation: str | None = None
    tail_activation: str | None = None
    placement: str | None = None


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


def _place_activation(c: TfliteCandidate, op: schema.OperatorT, split_activation: bool) -> None:
    """Where the tail's activation goes when the chain folds, and the report's note on it."""
    if c.tail_activation is None:
        c.notes["activation"] = None
        return
    fusable = hasattr(op.builtinOptions, "fusedActivationFunction")
    separate = (split_activation or not fusable) and c.tail_activation in STANDALONE_ACTIVATIONS
    c.placement = "separate" if separate else "fused"
    if separate:  # the activation becomes its own op, which then produces the tail's output
        c.output_node = f"{c.tail_activation}:{c.layer.split(':')[-1]}/activation"
    c.notes["activation"] = (f"{c.tail_activation} kept as a separate {c.tail_activation} op after '{c.layer}'"
                             if separate else f"{c.tail_activation} fused into '{c.layer}'")


def candidate(model: TfliteModel, chain: Chain, split_activation: bool = False) -> TfliteCandidate:
    """What the rules (and the rewrite) need to know about one chain."""
    tree, sg = model.tree, model.main
    found = readers(sg)
    rank = len(sg.tensors[chain.source].shape)
    affine = [(model.ids[j], j) for j in chain.affine_ops]
    tail = activation_of(sg.operators[chain.tail])
    c = TfliteCandidate(
        layer=tensor_name(sg, chain.source), bn="+".join(n for n, _ in affine), op="INPUT", kind=None, chain=chain,
        consumers=len(found.get(chain.source, [])) + (chain.source in sg.outputs),
        channel_axis=rank - 1, bn_axes=(rank - 1,), tail_activation=None if tail == "NONE" else tail,
        notes={"activation": None},
    )
    if chain.linear is None:
        return c  # a model input: nothing to fold into
    op = sg.operators[chain.linear]
    c.layer, c.op = model.ids[chain.linear], op_type(tree, op)
    c.kind = TFLITE_KINDS.get(c.op)
    if c.kind is None:
        return c
    c.activation = None if activation_of(op) == "NONE" else activation_of(op)
    _place_activation(c, op, split_activation)
    if chain.mul is not None and chain.add is not None and activation_of(sg.operators[chain.mul]) != "NONE":
        c.mul_activation = activation_of(sg.operators[chain.mul])
    filter_slot, bias_slot = SLOTS[c.op]
    bias = op.inputs[bias_slot] if len(op.inputs) > bias_slot and op.inputs[bias_slot] >= 0 else None
    operands = _operands(sg, chain, affine, chain.source)
    weights = [(f"the {c.kind.weight} of '{c.layer}'", op.inputs[filter_slot])]
    weights += [(f"the bias of '{c.layer}'", bias)] if bias is not None else []
    weights += [(f"the operand of '{n}'", t) for n, t in operands]
    c.not_float32 = _not_float32(sg, weights + [(f"the output of '{c.layer}'", chain.source)])
    c.not_constant = [what for what, t in weights if not is_constant(tree, sg, t)]
    if c.not_float32 or c.not_constant:
        return c
    c.set_kernel(float_array(tree, sg, op.inputs[filter_slot]),
                 None if bias is None else float_array(tree, sg, bias))
    c.bad_shapes = [f"the operand of '{n}' has shape {list(sg.tensors[t].shape)}" for n, t in operands
                    if not _per_channel(list(sg.tensors[t].shape), rank, c.channels)]
    if c.bad_shapes:
        return c
    by_op = {j: t for (_, t), j in zip(operands, chain.affine_ops)}
    c.set_scale_shift(*(None if j is None else _channel_vector(tree, sg, by_op[j], c.channels)
                        for j in (chain.mul, chain.add)))
    return c


def candidates(model: TfliteModel, split_activation: bool = False) -> list[TfliteCandidate]:
    """Every chain of the main subgraph as a candidate, in op order."""
    return [candidate(model, chain, split_activation) for chain in find_chains(model.tree, model.main)]


# -- foldscope's graph -------------------------------------------------------------------------

def _config(op: schema.OperatorT) -> dict:
    """The op's builtin options worth showing, enums by name."""
    config: dict = {}
    if op.builtinOptions is None:
        return config
    for key, value in vars(op.builtinOptions).items():
        if key == "fusedActivationFunction":
            config["activation"] = ACTIVATION_NAMES[value]
        elif key == "padding":
            config["padding"] = "SAME" if value == schema.Padding.SAME else "VALID"
        elif isinstance(value, (bool, int, float)):
            config[key] = value
    return config


def tensor_name(sg: schema.SubGraphT, t: int) -> str:
    name = sg.tensors[t].name
    return (name.decode(errors="replace") if isinstance(name, bytes) else name) or f"tensor_{t}"


#: Display names of the weight slots of the linear ops.
_SLOT_NAMES = {op: {filt: TFLITE_KINDS[op].weight, bias: "bias"} for op, (filt, bias) in SLOTS.items()}
_SLOT_NAMES["TRANSPOSE_CONV"][0] = "output_shape"


def op_graph(model: TfliteModel) -> nx.DiGraph:
    """The main subgraph as foldscope's graph (see fold.core.graph): ops as nodes, tensors as edges.

    A MUL by a constant followed by an ADD of a constant is marked as one BatchNorm.
    """
    tree, sg = model.tree, model.main
    graph = nx.DiGraph(name=model.stem, frontend="tflite", inputs=[], outputs=[])
    producer: dict[int, str] = {}
    for t in sg.inputs:
        node = tensor_name(sg, t)
        graph.add_node(node, op="INPUT", role="input", config={}, weights={}, calls=1, tensor=node)
        graph.graph["inputs"].append(node)
        producer[t] = node
    for i, op in enumerate(sg.operators):
        kind = op_type(tree, op)
        names = _SLOT_NAMES.get(kind, {})
        weights = {names.get(slot, tensor_name(sg, t)): tuple(int(d) for d in sg.tensors[t].shape)
                   for slot, t in enumerate(op.inputs) if t >= 0 and is_constant(tree, sg, t)}
        node = model.ids[i]
        graph.add_node(node, op=kind, role=role_of(kind), config=_config(op), weights=weights, calls=1,
                       tensor=tensor_name(sg, op.outputs[0]) if op.outputs else node)
        for t in op.inputs:
            if t in producer:
                graph.add_edge(producer[t], node, shape=tuple(int(d) for d in sg.tensors[t].shape))
        producer.update({t: node for t in op.outputs})
    graph.graph["outputs"] = [producer[t] for t in sg.outputs if t in producer]
    found = readers(sg)
    for i in range(len(sg.operators)):
        add = decomposed_bn(tree, sg, i, found)
        if add is not None:
            mark_bn(graph, [model.ids[i], model.ids[add]])
    return graph
