"""The chain finder, written once for every op-level format: each BatchNorm with the op that makes
its input, through what exporters put between them.

    bn:      linear -> [between] -> [bias add] -> [between] -> BatchNorm op
    affine:  linear -> [between] -> [bias add] -> [between] -> Mul(m) -> [Add(a)]   (a BN as converters write it)
             any op -> Mul(m) -> Add(a) named or shaped as a BN  (listed, and skipped with its reason)
             a map's output -> [between] -> Mul(m) and/or Add(a)  (one more affine map after it)
    bias:    linear with a bias input -> [between] -> Add(a)   (a bias add the layer can take)

Each of these is a *unit*, what the graph counts (``find_chains``). Units that follow one another,
each read by the next alone (through ``between`` ops), compose into one chain (``compose_chains``):
Conv -> BatchNormalization -> Mul -> Add (a Caffe BatchNorm and its Scale layer), BN -> BN, a
bias Add between two maps; the candidate folds them as one affine map.

``between``: Identity ops and reshapes that keep the channel axis (the ``ExpandDims -> Conv2D ->
Squeeze`` of a Conv1D, an ONNX Unsqueeze or Flatten), and relayouts that move it without mixing the
channels (the TRANSPOSE back to NCHW and the SLICE that crops a padded transposed convolution in a
circle model tico converted from PyTorch), each read by nothing else. ``m`` and ``a``
are constants that vary along the channel axis only, or scalars: an Add of two activations (a
residual) is no candidate at all.

What is a BatchNorm (``form`` "bn") is decided by what the ops compute, the same way in every
graph (the original and the folded one are counted by this one rule). Any per-channel pair
(m, a) is what some BN's statistics give (gamma = m, beta = a, mean 0, variance + epsilon 1), so
a Mul -> Add is a BN when both operands hold one value per channel (a scalar, on one channel) and
what it scales is not data a normalization of its own has just divided by its run-time statistics
(the gamma and beta tail of a LayerNorm, an InstanceNorm, a GroupNorm: ``normalized``); or when
its names say so ("batchnorm", "batch_norm", "bn") *and* every operand holds one value per channel.
Scalar Mul/Add blocks on several channels (PaddleOCR's learnable affine layers) are "affine"; a
lone Mul that is no BN is "affine" only when it alone reads the layer's output (a Swish's x * 1.0
reads it beside the Swish's own Mul, and is no chain at all).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from fold.core.errors import at
from fold.frontends.ops.view import Op, OpView

#: Ops looked through at most, between a layer and its BN.
MAX_BETWEEN = 4
#: Ops looked back through at most, from a normalization's division to the reduction of its statistics.
MAX_STATISTICS = 6
_BN_NAME = re.compile(r"batch_?norm|(^|[/_.:;])bn\d*($|[/_.:;])", re.IGNORECASE)


@dataclass(frozen=True)
class Chain:
    """One candidate pair's ops.

    producer: the op whose output the chain starts from (a linear op, or, for a decomposed BN after
              anything else, that op; None for a model input); between: ops looked through after it;
    bias:     a per-channel constant add right after the layer (between ops aside);
    removed:  the BN op, or the Mul and/or Add;
    source:   the tensor the producer's output becomes before the first of ``bias``/``removed``;
    form:     "bn", "affine" or "bias" (see the module docstring); axis: the channel axis at ``source``.
    """

    producer: Op | None
    between: tuple[Op, ...]
    bias: Op | None
    removed: tuple[Op, ...]
    source: str
    form: str
    axis: int | None
    units: tuple[Chain, ...] = ()

    @property
    def tail(self) -> Op:
        return self.removed[-1]

    @property
    def parts(self) -> tuple[Chain, ...]:
        """The units the chain is made of, in data order (a unit is its own one part)."""
        return self.units or (self,)

    @property
    def ops(self) -> tuple[Op, ...]:
        """The ops the fold removes: the bias add, then the BN ops."""
        return (*((self.bias,) if self.bias is not None else ()), *self.removed)


def const_operand(view: OpView, op: Op) -> tuple[str, str] | None:
    """(constant input, other input) of a binary op with exactly one constant operand."""
    inputs = [t for t in op.inputs if t]
    if len(inputs) != 2:
        return None
    flags = [view.is_constant(t) for t in inputs]
    if flags.count(True) != 1:
        return None
    return (inputs[0], inputs[1]) if flags[0] else (inputs[1], inputs[0])


def broadcast_axes(value: np.ndarray, rank: int | None) -> tuple[int, ...] | None:
    """Axes of a rank-``rank`` tensor along which a broadcast constant varies (None: it cannot broadcast)."""
    if rank is None or value.ndim > rank:
        return None
    padded = (1,) * (rank - value.ndim) + tuple(value.shape)
    return tuple(i for i, n in enumerate(padded) if n != 1)


def position(axis: int | None, rank: int | None) -> int | None:
    """``axis`` of a tensor of ``rank`` as an index from 0 (a negative axis counts from the end);
    None when either is unknown or the tensor has no such axis (a scalar has no axis at all)."""
    if axis is None or rank is None or not -rank <= axis < rank:
        return None
    return axis % rank


def per_channel(axes: tuple[int, ...] | None, axis: int | None, rank: int | None) -> bool:
    """Whether a constant that varies along ``axes`` of a rank-``rank`` tensor is a scalar or varies
    along the channel ``axis`` only (a tensor without that axis has no channels to vary along)."""
    index = position(axis, rank)
    return index is not None and axes is not None and axes in ((), (index,))


def varies_along(view: OpView, op: Op, const: str, rank: int | None, axis: int | None) -> bool:
    """Whether constant ``const`` of binary ``op`` is a scalar or varies along ``axis`` only."""
    if position(axis, rank) is None:
        return False
    return per_channel(view.operand_axes(op, const, rank), axis, rank)


def channel_vector(value: np.ndarray, channels: int) -> np.ndarray:
    """A per-channel (or scalar) constant as a (channels,) float64 vector."""
    return np.broadcast_to(np.asarray(value, dtype=np.float64).reshape(-1), (channels,)).copy()


def _rank(view: OpView, tensor: str) -> int | None:
    shape = view.shape(tensor)
    return None if shape is None else len(shape)


def kept_axis(view: OpView, op: Op, axis: int | None) -> int | None:
    """The channel axis after a shape-only op that keeps it (None: it moves or mixes the channels).

    A reshape keeps it when the dimensions before the channel axis (size-1 ones aside) and the channel
    count are the same after the op: in row-major order every element then stays in its channel. A
    relayout says itself where the axis goes (``OpView.moved_axis``).
    """
    if op.type in view.vocabulary.relayouts:
        return None if axis is None else view.moved_axis(op, axis)
    before, after = view.shape(op.inputs[0]) if op.inputs else None, view.shape(op.output)
    if axis is None or before is None or after is None or not 0 <= axis < len(before) or before[axis] is None:
        return None
    lead = [d for d in before[:axis] if d != 1]
    for candidate, size in enumerate(after):
        if size == before[axis] and [d for d in after[:candidate] if d != 1] == lead:
            return candidate
    return None


def _passthrough(view: OpView, op: Op) -> bool:
    vocab = view.vocabulary
    return op.type in vocab.identities or op.type in vocab.reshapes or op.type in vocab.relayouts


def _single_reader(view: OpView, tensor: str) -> bool:
    return len(view.readers(tensor)) == 1 and not view.is_output(tensor)


def back_to_layer(view: OpView, tensor: str) -> tuple[Op | None, tuple[Op, ...], Op | None, int | None]:
    """From a BN's input back to the op that makes it: (producer, ops looked through, bias add,
    channel axis at ``tensor``). The producer is a linear op when one is reached through
    identities, channel-keeping reshapes and at most one per-channel constant add; otherwise it is
    the op right before ``tensor`` (and nothing is looked through). Whether what was looked through
    is read elsewhere is for the rules to say (``single-use-chain``)."""
    direct = view.producer(tensor)
    path: list[Op] = []
    bias, t = None, tensor
    for _ in range(MAX_BETWEEN + 2):
        op = view.producer(t)
        if op is None:
            break
        if view.kind(op) is not None and op.output == t:
            axis = view.channel_axis(op)
            for step in path:  # in data order: the channel axis carried forward to ``tensor``
                if step is bias:
                    if not varies_along(view, bias, const_operand(view, bias)[0], _rank(view, bias.output), axis):
                        return direct, (), None, _default(view, tensor)
                    continue
                axis = kept_axis(view, step, axis)
                if axis is None:
                    return direct, (), None, _default(view, tensor)
            return op, tuple(s for s in path if s is not bias), bias, axis
        split = const_operand(view, op) if op.type in view.vocabulary.adds else None
        if split is not None and bias is None:
            bias, t = op, split[1]
        elif _passthrough(view, op) and op.inputs and len(path) < MAX_BETWEEN:
            t = op.inputs[0]
        else:
            break
        path.insert(0, op)
    return direct, (), None, _default(view, tensor)


def _default(view: OpView, tensor: str) -> int | None:
    return view.default_axis(_rank(view, tensor))


def _bn_chain(view: OpView, op: Op) -> Chain | None:
    bn = view.bn(op)
    if bn is None:
        return None
    x = op.inputs[bn.data_slot]
    producer, between, bias, axis = back_to_layer(view, x)
    return Chain(producer, between, bias, (op,), x, "bn", axis)


def _following_add(view: OpView, mul: Op, axis: int | None) -> Op | None:
    """The Add of a constant per-channel operand that alone reads the Mul's output, if any."""
    if not _single_reader(view, mul.output):
        return None
    (after,) = view.readers(mul.output)
    split = const_operand(view, after) if after.type in view.vocabulary.adds else None
    if split is None or split[1] != mul.output or not varies_along(view, after, split[0], _rank(view, after.output), axis):
        return None
    return after


def _names_say_bn(view: OpView, ops: tuple[Op, ...]) -> bool:
    names = [n for op in ops for n in (op.id, *(view.name(t) for t in op.inputs if t), view.name(op.output))]
    return any(_BN_NAME.search(n) for n in names)


def normalized(view: OpView, tensor: str) -> bool:
    """Whether ``tensor`` is data divided (or scaled) at run time by statistics of its own: the
    x_hat = (x - mean(x)) / sqrt(var(x) + eps) of a LayerNorm, an InstanceNorm, a GroupNorm, an
    RMSNorm. Its op combines two computed tensors, and a reduction (the format's ``reductions``) lies
    at most MAX_STATISTICS ops back from them, through ops that are neither layers, activations nor
    BNs (a squeeze-and-excitation gate reaches its mean through a layer and a sigmoid: no)."""
    op = view.producer(tensor)
    computed = [] if op is None else [t for t in op.inputs if t and not view.is_constant(t)]
    if len(computed) < 2:
        return False
    vocab, seen, frontier = view.vocabulary, {op.index}, computed
    for _ in range(MAX_STATISTICS):
        behind = []
        for t in frontier:
            step = view.producer(t)
            if step is None or step.index in seen or view.kind(step) is not None:
                continue
            seen.add(step.index)
            if step.type in vocab.reductions:
                return True
            if step.type not in vocab.activations and step.type not in vocab.bns:
                behind += [i for i in step.inputs if i and not view.is_constant(i)]
        frontier = behind
    return False


def _is_bn(view: OpView, removed: tuple[Op, ...], x: str, channels: int | None) -> bool:
    """Whether a Mul (then Add) is a BatchNorm, by what it computes (see the module docstring)."""
    sizes = {np.asarray(view.value(const_operand(view, o)[0])).size for o in removed}
    if channels is None and len(sizes) == 1:
        channels = next(iter(sizes))  # a dynamic channel count: the operands say it
    if sizes != {channels}:
        return False  # a scalar on several channels, or an operand of another size, is no BN's
    if _names_say_bn(view, removed):
        return True
    return len(removed) == 2 and not normalized(view, x)


def _mul_chain(view: OpView, mul: Op, tails: dict[int, Chain]) -> Chain | None:
    split = const_operand(view, mul)
    if split is None:
        return None
    const, x = split
    producer, between, bias, axis = back_to_layer(view, x)
    after = _after_unit(view, x, tails)
    if after is not None:
        axis = after[1]
    if not varies_along(view, mul, const, _rank(view, mul.output), axis):
        return None
    add = _following_add(view, mul, axis)
    removed = (mul,) if add is None else (mul, add)
    shape = view.shape(x)
    channels = shape[axis] if shape is not None and axis is not None else None
    if _is_bn(view, removed, x, channels):
        return Chain(producer, between, bias, removed, x, "bn", axis)
    if after is not None:  # one more map after a map: composed with it (``compose_chains``)
        return Chain(producer, between, bias, removed, x, "affine", axis)
    if producer is None or view.kind(producer) is None:
        return None  # a scalar Mul -> Add after an activation (a hard sigmoid's): no layer's to absorb
    if add is None and not _single_reader(view, x):
        return None  # a Swish's x * 1.0: the layer's output is read beside it, so there is nothing to absorb
    return Chain(producer, between, bias, removed, x, "affine", axis)


def _behind(view: OpView, tensor: str) -> tuple[Op | None, tuple[Op, ...]]:
    """The op before ``tensor`` past at most MAX_BETWEEN passthrough ops each read by the next alone,
    and those ops in data order."""
    path: list[Op] = []
    op = view.producer(tensor)
    while op is not None and _passthrough(view, op) and op.inputs and len(path) < MAX_BETWEEN \
            and _single_reader(view, op.output):
        path.insert(0, op)
        op = view.producer(op.inputs[0])
    return op, tuple(path)


def _after_unit(view: OpView, tensor: str, tails: dict[int, Chain]) -> tuple[Chain, int] | None:
    """(the unit whose output ``tensor`` is, through passthrough ops read by the next alone, and the
    channel axis carried to ``tensor``), when it is one, read by nothing else and with no fused activation."""
    op, path = _behind(view, tensor)
    unit = tails.get(op.index) if op is not None else None
    if unit is None or unit.form == "bias" or not _single_reader(view, op.output) or view.activation(op) is not None:
        return None
    axis = unit.axis
    if view.bn(op) is not None:
        bn = view.bn(op)
        axis = position(bn.axis, _rank(view, op.inputs[bn.data_slot])) if bn.axis is not None else None
    for step in path:
        axis = kept_axis(view, step, axis)
    return None if axis is None else (unit, axis)


def _shift_chain(view: OpView, add: Op, tails: dict[int, Chain]) -> Chain | None:
    """A lone Add of a per-channel constant right after a map: one more affine map."""
    split = const_operand(view, add)
    if split is None:
        return None
    after = _after_unit(view, split[1], tails)
    if after is None or not varies_along(view, add, split[0], _rank(view, add.output), after[1]):
        return None
    producer, between, bias, _ = back_to_layer(view, split[1])
    return Chain(producer, between, bias, (add,), split[1], "affine", after[1])


def _bias_chain(view: OpView, add: Op) -> Chain | None:
    split = const_operand(view, add)
    if split is None:
        return None
    producer, between, bias, axis = back_to_layer(view, split[1])
    if producer is None or view.kind(producer) is None or bias is not None or view.slots(producer)[1] is None:
        return None  # only a layer with a bias input can take an add
    if not varies_along(view, add, split[0], _rank(view, add.output), axis):
        return None
    return Chain(producer, between, None, (add,), split[1], "bias", axis)


def find_chains(view: OpView) -> list[Chain]:
    """Every unit (module docstring) in op order: every BN op, every Mul (then Add) by per-channel
    constants, every lone per-channel Add after a layer with a bias input or after a map; an op
    belongs to one unit at most."""
    chains: list[Chain] = []
    claimed: set[int] = set()
    tails: dict[int, Chain] = {}  # a unit's last op -> the unit, for the maps that follow it

    def take(chain: Chain | None) -> None:
        if chain is not None and not claimed & {o.index for o in chain.ops}:
            chains.append(chain)
            claimed.update(o.index for o in chain.ops)
            tails[chain.tail.index] = chain

    vocab = view.vocabulary
    for op in view.ops:
        if op.type in vocab.bns:
            with at(op.place):
                take(_bn_chain(view, op))
    # Muls before Adds (a Mul's chain takes the bias add before it), in op order (a map after a map finds
    # it among the units), again while a pass finds more (a Mul after a lone Add found in the pass before).
    found = -1
    while found != len(chains):
        found = len(chains)
        for types, chain in ((vocab.muls, lambda op: _mul_chain(view, op, tails)),
                             (vocab.adds, lambda op: _shift_chain(view, op, tails) or _bias_chain(view, op))):
            for op in view.ops:
                if op.type in types and op.index not in claimed:
                    with at(op.place):
                        take(chain(op))
    return sorted(chains, key=lambda c: c.ops[0].index)


def compose_chains(view: OpView, units: list[Chain]) -> list[Chain]:
    """The units as candidate chains: a unit that follows another (through passthrough ops read by the
    next alone, on the channel axis it carries) joins its chain; a chain of one unit is the unit itself."""
    tails = {u.tail.index: u for u in units}
    following: dict[int, tuple[Chain, tuple[Op, ...]]] = {}  # a unit's last op -> (the unit after it, ops between)
    for unit in units:
        if unit.form == "bias":
            continue
        after = _after_unit(view, unit.source, tails)
        if after is not None and after[1] == unit.axis and _bn_axis_fits(view, unit, after[1]):
            following[after[0].tail.index] = (unit, _behind(view, unit.source)[1])
    joined = {id(unit) for unit, _ in following.values()}
    chains = []
    for unit in units:
        if id(unit) in joined:
            continue  # it belongs to the chain of the unit before it
        parts, between = [unit], list(unit.between)
        while parts[-1].tail.index in following:
            after, path = following[parts[-1].tail.index]
            parts.append(after)
            between += path
        if len(parts) == 1:
            chains.append(unit)
            continue
        form = "bn" if any(p.form == "bn" for p in parts) else "affine"
        chains.append(Chain(unit.producer, tuple(between), unit.bias, tuple(o for p in parts for o in p.removed),
                            unit.source, form, unit.axis, tuple(parts)))
    return chains


def _bn_axis_fits(view: OpView, unit: Chain, axis: int) -> bool:
    """A BN op normalizes the channel axis the chain carries (a Mul or Add unit was matched on it)."""
    bn = view.bn(unit.tail)
    if bn is None:
        return True
    return bn.axis is not None and position(bn.axis, _rank(view, unit.source)) == axis


def candidate_chains(view: OpView) -> list[Chain]:
    """The chains the candidates are made of: every unit, those that follow one another composed."""
    return compose_chains(view, find_chains(view))
