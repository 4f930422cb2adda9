"""One candidate type for every op-level format, built once from a chain and the format's view:
what the shared rules and the op-level rules read, and what a rewrite needs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fold.core.affine import Affine, bn_affine
from fold.core.rules import Candidate
from fold.core.errors import at
from fold.frontends.ops.chains import Chain, channel_vector, const_operand, position
from fold.frontends.ops.view import Op, OpView, input_op


@dataclass
class OpCandidate(Candidate):
    """A Candidate of an op-level format.

    chain:         the ops of the pair (``fold.frontends.ops.chains``).
    not_constant:  weights or parameters that are not constants (``constant-weights``).
    shared:        weights also read by other ops (``unshared-weights``).
    extra_readers: tensors of the chain read outside it, or model outputs (``single-use-chain``).
    bad_operands:  operands that are not per-channel vectors (``per-channel-operands``).
    map_not_constant: the map's own parameters that are not constants (part of ``not_constant``, and
                   what a forward or split alternative, whose layer is another, keeps of it).
    weight, bias_input: the tensors the layer reads its kernel and bias from.
    """

    chain: Chain | None = None
    not_constant: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)
    extra_readers: list[str] = field(default_factory=list)
    bad_operands: list[str] = field(default_factory=list)
    map_not_constant: list[str] = field(default_factory=list)
    weight: str | None = None
    bias_input: str | None = None


def uses(view: OpView, tensor: str) -> int:
    """How many ops read ``tensor``, plus one if it is a model output."""
    return len(view.readers(tensor)) + view.is_output(tensor)


def extra_readers(view: OpView, chain: Chain) -> list[str]:
    """Tensors inside the chain (after the layer) read outside it, or model outputs, and side
    outputs of its last op that are read."""
    inside = {o.index for o in (*chain.between, *chain.ops)}
    steps = sorted((*chain.between, *chain.ops), key=lambda o: o.index)[:-1]
    found = []
    for op in steps:
        found += [f"'{view.name(op.output)}' -> '{r.id}'" for r in view.readers(op.output) if r.index not in inside]
        found += [f"'{view.name(op.output)}' is a model output"] if view.is_output(op.output) else []
    for op in chain.removed:
        for extra in op.outputs[1:]:
            if extra and uses(view, extra):
                found.append(f"'{view.name(extra)}' (a side output of '{op.id}') is read")
    return found


def weights_of(view: OpView, c: OpCandidate, op: Op) -> list[tuple[str, str]]:
    """(description, tensor) of the layer's weight and bias inputs."""
    weight_slot, bias_slot = view.slots(op)
    found = [(f"the {c.kind.weight} of '{op.id}'", op.inputs[weight_slot])]
    if bias_slot is not None and bias_slot < len(op.inputs) and op.inputs[bias_slot]:
        found.append((f"the bias of '{op.id}'", op.inputs[bias_slot]))
    return found


def shared_weights(view: OpView, layer: Op, tensors: list[str]) -> list[str]:
    """The first weight (or what it was read from) that an op outside its path also reads."""
    for t in tensors:
        path = view.looked_through(t)
        inside = {layer.index, *(o.index for o in path)}
        for tensor in (t, *(o.inputs[0] for o in path)):
            for r in view.readers(tensor):
                if r.index not in inside:
                    return [f"'{view.name(tensor)}' (also read by '{r.id}')"]
    return []


def _bn_parameters(view: OpView, c: OpCandidate, op: Op) -> Affine | None:
    """A BN op's parameters: the candidate's own for its first map (None returned), else its map."""
    bn = view.bn(op)
    c.bn_training = c.bn_training or bn.training
    rank = _rank(view, op.inputs[bn.data_slot])
    params = {k: t for k, t in bn.params.items() if t}
    missing = [f"the {k} of '{op.id}' ('{view.name(t)}')" for k, t in params.items() if not view.is_constant(t)]
    c.not_constant += missing
    c.map_not_constant += missing
    if c.map_not_constant or c.bn_training:
        return None
    values = {k: np.asarray(view.value(t), dtype=np.float64).reshape(-1) for k, t in params.items()}
    if op is not c.chain.removed[0]:
        return bn_affine(values["mean"], values["variance"], bn.epsilon, values.get("gamma"), values.get("beta"))
    c.epsilon = bn.epsilon
    c.bn_axes = () if bn.axis is None else ((bn.axis % rank,) if rank else (bn.axis,))
    for key, value in values.items():
        setattr(c, key, value)
    return None


def _rank(view: OpView, tensor: str) -> int | None:
    shape = view.shape(tensor)
    return None if shape is None else len(shape)


def _scale_shift(view: OpView, unit: Chain, channels: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Scale and shift of a unit's Mul and/or Add (or the lone Add of a bias chain)."""
    scale = shift = None
    for op in unit.removed:
        value = channel_vector(view.value(const_operand(view, op)[0]), channels)
        if op.type in view.vocabulary.muls:
            scale = value
        else:
            shift = value
    return scale, shift


def map_channels(view: OpView, chain: Chain) -> int | None:
    """The number of channels the chain's maps act on: the tensor's channel dimension, else the size of a
    BN op's parameter or of an operand that is not a scalar."""
    shape = view.shape(chain.source)
    axis = position(chain.axis, None if shape is None else len(shape))
    if axis is not None and shape[axis] is not None:
        return int(shape[axis])
    for op in chain.removed:
        bn = view.bn(op)
        tensors = [t for t in bn.params.values() if t] if bn is not None else [const_operand(view, op)[0]]
        sizes = [np.asarray(view.value(t)).size for t in tensors if view.is_constant(t)]
        if sizes and max(sizes) > 1:
            return max(sizes)
    return None


def _map_parameters(view: OpView, c: OpCandidate, chain: Chain) -> None:
    """The chain's maps, whatever makes its input: the first one's parameters on the candidate, the others
    as ``maps`` (not read when some parameter is not a constant or a BN op is in training mode)."""
    n = c.channels or map_channels(view, chain) or 0
    maps = []
    for unit in chain.parts:
        if view.bn(unit.tail) is not None:
            found = _bn_parameters(view, c, unit.tail)
            if found is not None:
                maps.append(found)
            continue
        if c.map_not_constant or c.bn_training:
            continue
        scale, shift = _scale_shift(view, unit, n)
        if unit is not chain.parts[0]:
            maps.append(bn_affine(np.zeros(n), np.ones(n), 0.0, scale, shift))
            continue
        c.bn_axes = (c.channel_axis,)
        c.set_scale_shift(scale, shift, n)
    c.maps = maps


def op_candidate(view: OpView, chain: Chain, cls: type[OpCandidate] = OpCandidate) -> OpCandidate:
    """The candidate of one chain, with every field the shared and op-level rules read."""
    with at(chain.tail.place):
        return _op_candidate(view, chain, cls)


def _counted(chain: Chain) -> dict[str, int]:
    return {"bn": sum(u.form == "bn" for u in chain.parts), "affine": sum(u.form == "affine" for u in chain.parts)}


def _op_candidate(view: OpView, chain: Chain, cls: type[OpCandidate]) -> OpCandidate:
    producer = chain.producer
    c = cls(layer=producer.id if producer is not None else view.name(chain.source),
            bn="+".join(o.id for o in chain.removed), op=producer.type if producer is not None else input_op(view),
            kind=None, chain=chain, form=chain.form, channel_axis=chain.axis,
            reads_input=producer is None or producer.type in view.vocabulary.inputs, absorbs=_counted(chain))
    c.consumers = uses(view, producer.output if producer is not None else chain.source)
    c.extra_readers = extra_readers(view, chain)
    if chain.between:  # the pair's notes say what was looked through
        c.notes["looked_through"] = ", ".join(f"{o.type} '{o.id}'" for o in chain.between)
        c.output_node = chain.between[-1].id  # the last op looked through now makes what the BN made
    if len(chain.parts) > 1:
        c.notes["maps"] = " -> ".join(f"{o.type} '{o.id}'" for o in chain.removed)
    kind = view.kind(producer) if producer is not None else None
    if kind is None:
        _map_parameters(view, c, chain)
        return c
    c.kind = kind
    weights = weights_of(view, c, producer)
    c.weight = weights[0][1]
    c.bias_input = weights[1][1] if len(weights) > 1 else None
    bias_add = [] if chain.bias is None else [(f"the bias added by '{chain.bias.id}'", const_operand(view, chain.bias)[0])]
    c.not_constant = [f"{what} ('{view.name(t)}')" for what, t in [*weights, *bias_add] if not view.is_constant(t)]
    c.shared = shared_weights(view, producer, [t for _, t in weights])
    looked = [o for _, t in weights for o in view.looked_through(t)]
    if looked:
        c.notes["weights_through"] = ", ".join(f"{o.type} '{o.id}'" for o in looked)
    if not c.not_constant:
        c.kernel = np.asarray(view.value(c.weight))
        c.compute_dtype = view.stored_dtype(c.weight)
        if c.kind.group_axis is not None:  # the kernel's rows hold groups of output channels
            c.groups = view.groups(producer)
        c.set_kernel(c.kernel)
    _map_parameters(view, c, chain)
    if c.not_constant or c.bn_training:
        return c
    own = None if c.bias_input is None else layer_bias(view, c, producer)
    added = None if chain.bias is None else channel_vector(view.value(bias_add[0][1]), c.channels)
    if own is not None or added is not None:
        c.bias = sum(v for v in (own, added) if v is not None)
    return c


def layer_bias(view: OpView, c: OpCandidate, op: Op) -> np.ndarray | None:
    """The layer's own bias as a (C,) vector (the view may scale it: ONNX Gemm's beta); records in
    ``bad_operands`` why it is not one."""
    value, problem = view.bias_value(op, np.asarray(view.value(c.bias_input), dtype=np.float64))
    if problem:
        c.bad_operands.append(f"the bias of '{op.id}' {problem}")
        return None
    return channel_vector(value, c.channels)
