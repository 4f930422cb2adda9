"""The other directions a chain's map folds in, written once for every op-level format: forward into the
layer that reads it, and backward split over the Concat whose output it reads.

    forward   x -> map -> [reshapes] -> layer          x -> [reshapes] -> layer'
    partial   x -> map -> ReLU -> [reshapes] -> layer  x -> Add(t / s) -> ReLU -> [reshapes] -> layer'
    concat    layer_k -> Concat -> map                 layer_k' -> Concat   (layer_k takes its channels' slice)

Each builds an alternative of the backward candidate (``fold.core.rules.Candidate.alternatives``): the
same map, another layer, with what the direction's rules read (``fold.core.rules.Forward``, ``Split``).
A forward candidate's layer reads the map's channels through the reshapes between them; which of its
input channels reads which of the map's channels is worked out on index arrays shaped like the tensors
(``features``), so a Flatten of NCHW, a channels-last reshape and a Squeeze all line up, and a reshape
that mixes channels is named.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fold.core.affine import input_channels
from fold.core.rules import Forward, Split, mixed_reason, unreached
from fold.frontends.ops.candidates import OpCandidate, layer_bias, shared_weights, uses, weights_of
from fold.frontends.ops.chains import MAX_BETWEEN, Chain, channel_vector, const_operand, position
from fold.frontends.ops.view import Op, OpView, values_read

#: Ops walked at most from a map to the layer it folds forward into (reshapes and one activation).
MAX_PATH = MAX_BETWEEN + 2


def fresh(view: OpView, name: str) -> str:
    """A node name no op of the view has (for the Add a fold writes)."""
    taken = {op.id for op in view.ops}
    candidate, k = name, 1
    while candidate in taken:
        candidate, k = f"{name}_{k}", k + 1
    return candidate


def _walk(view: OpView, chain: Chain, f: Forward) -> tuple[Op | None, list[Op], Op | None]:
    """From the map's output to the op that is no reshape: (that op when it is a layer reading it as its
    data, the ops passed, the op the walk stopped at); ``f`` gets the positively homogeneous activation
    passed, what else reads what was passed, and what the output reaches when it is not one op."""
    vocab = view.vocabulary
    tail = chain.tail
    fused = view.activation(tail)
    if fused is not None and fused not in vocab.homogeneous:
        f.stop = f"applies a fused {fused} at its end (it is not positively homogeneous)"
        return None, [], None
    f.activation = fused
    t, path = tail.output, []
    for _ in range(MAX_PATH):
        if view.is_output(t):
            f.readers.append(f"'{view.name(t)}' is a model output")
        after = values_read(view, t)
        if len(after) != 1:
            f.stop = (f"is read by {len(after)} ops (" + ", ".join(f"'{r.id}'" for r in after[:3])
                      + (", ..." if len(after) > 3 else "") + ")") if after else \
                "is a model output, read by no op" if view.is_output(t) else "is read by no op"
            return None, path, None
        op = after[0]
        kind = view.kind(op)
        if kind is not None:
            if op.inputs[kind.data_input] != t:
                f.stop = f"is read by '{op.id}' as a weight"
                return None, path, op
            return op, path, op
        if op.type in vocab.identities or op.type in vocab.reshapes:
            path.append(op)
        elif op.type in vocab.homogeneous and f.activation is None and view.activation(op) is None:
            path.append(op)
            f.activation = op.type
        else:
            return None, path, op
        t = op.output
    f.stop = f"reaches no layer within {MAX_PATH} ops"
    return None, path, None


def _static(shape: tuple | None) -> tuple[int, ...] | None:
    """A tensor's shape with its leading (batch) dimension 1; None when another dimension is unknown."""
    if shape is None or not shape or any(d is None for d in shape[1:]):
        return None
    return (1, *(int(d) for d in shape[1:]))


def features(view: OpView, chain: Chain, path: list[Op], layer: Op) -> tuple[np.ndarray | None, str | None]:
    """For each input channel of ``layer``, the map's channel it reads, through the reshapes of ``path``
    (``fold.core.affine.input_channels``; None and why when they do not line up)."""
    shape = _static(view.shape(chain.tail.output))
    axis = position(chain.axis, None if shape is None else len(shape))
    if shape is None or axis is None:
        return None, f"the shape of '{view.name(chain.tail.output)}' is not known past its batch axis"
    reshapes = []
    for op in path:
        if op.type in view.vocabulary.reshapes:
            after = _static(view.shape(op.output))
            if after is None or int(np.prod(after)) != int(np.prod(shape)):
                return None, f"the shape after {op.type} '{op.id}' is not known"
            reshapes.append(after)
    layout, at = view.input_layout(layer)
    if layout is not None:
        total = int(np.prod(reshapes[-1] if reshapes else shape))
        rows = [int(d) for d in layout]
        known = int(np.prod([d for d in rows if d != -1]))
        if known == 0 or total % known or (-1 not in rows and known != total):
            return None, f"'{layer.id}' reads its input as {list(layout)}"
        reshapes.append(tuple(total // known if d == -1 else d for d in rows))
    rank = len(reshapes[-1]) if reshapes else len(shape)
    at = position(at, rank)
    if at is None:
        return None, f"'{layer.id}' reads no channel axis of its input"
    found, mixed = input_channels(shape, axis, reshapes, at)
    if found is not None:
        return found, None
    through = ", ".join(f"{o.type} '{o.id}'" for o in path if o.type in view.vocabulary.reshapes) or "nothing"
    return None, mixed_reason(mixed, through)



def forward_alternative(view: OpView, c: OpCandidate) -> OpCandidate | None:
    """The chain's map folded forward (or partially, across a ReLU) into the layer that reads it; None
    when its output reaches no layer as the layer's data (then ``c.elsewhere`` says what it reaches)."""
    chain = c.chain
    first = chain.removed[0]
    f = Forward(source=first.id)
    target, path, stop = _walk(view, chain, f)
    if target is None:
        f.through = [f"{op.type} '{op.id}'" for op in path]
        c.elsewhere["forward"] = unreached(c.bn, f, stop.type if stop else "", stop.id if stop else "")
        return None
    activation = f.activation
    f.path, f.through = [op.id for op in path], [f"{op.type} '{op.id}'" for op in path]
    inside = {o.index for o in chain.removed}
    for op in chain.removed[:-1]:  # what the map computes on its way is gone once it moves
        f.readers += [f"'{view.name(op.output)}' -> '{r.id}'" for r in view.readers(op.output) if r.index not in inside]
        f.readers += [f"'{view.name(op.output)}' is a model output"] if view.is_output(op.output) else []
    if any(o.index > first.index for o in chain.between):
        f.readers.append(f"reshapes lie between the maps of '{c.bn}'")
    alt = dataclasses.replace(c, direction="forward", forward=f, alternatives=[], kind=None, kernel=None, bias=None,
                              kernel_absmax=None, channels=None, not_constant=list(c.map_not_constant), shared=[],
                              bad_operands=[], extra_readers=[], weight=None, bias_input=None, groups=1,
                              notes=dict(c.notes), output_node=None, layer=target.id, op=target.type, activation=None,
                              consumers=1, elsewhere={})
    alt.notes.pop("looked_through", None)
    kind = view.kind(target)
    alt.kind = kind
    _target_weights(view, alt, target)
    f.padding, f.transposed = view.padding(target), kind.family == "transpose"
    f.features, f.mismatch = features(view, chain, path, target)
    if activation is not None:
        f.entry = fresh(view, f"{chain.tail.id}_shift")
    else:
        f.entry = path[0].id if path else target.id
    if view.slots(target)[1] is None:  # no bias input: the fold writes an Add after it
        alt.output_node = fresh(view, f"{target.id}_bias")
    return alt


def _target_weights(view: OpView, c: OpCandidate, target: Op) -> None:
    """What the forward rules read about the layer that takes the map: its weights, bias, dtype."""
    weights = weights_of(view, c, target)
    c.weight = weights[0][1]
    c.bias_input = weights[1][1] if len(weights) > 1 else None
    c.not_constant += [f"{what} ('{view.name(t)}') is not a constant" for what, t in weights if not view.is_constant(t)]
    c.shared = [f"the weight {s} of '{target.id}' is shared with another op"
                for s in shared_weights(view, target, [t for _, t in weights])]
    gain = view.weight_gain(target)
    if gain != 1.0:
        c.bad_operands.append(f"'{target.id}' scales its product by {gain:g} (alpha)")
    if c.not_constant or c.bn_training:
        return
    c.kernel = np.asarray(view.value(c.weight))
    c.compute_dtype = view.stored_dtype(c.weight)
    if c.kind.group_axis is not None or c.kind.in_group_axis is not None:
        c.groups = view.groups(target)
    c.set_kernel(c.kernel)
    if c.bias_input is not None:
        c.bias = layer_bias(view, c, target)
        c.bad_operands += [f"the bias of '{target.id}' is no vector" for _ in [c.bias] if c.bias is None]
    c.activation = view.activation(target)


def split_alternative(view: OpView, c: OpCandidate, concat: Op) -> OpCandidate:
    """The chain's map split over ``concat``: one backward piece per input, each the map's slice."""
    chain = c.chain
    split = Split(concat.id)
    alt = dataclasses.replace(c, direction="concat", split=split, alternatives=[], pieces=[],
                              layer=concat.id, op=concat.type, kind=None, output_node=concat.id)
    axis = view.concat_axis(concat)
    if axis is None or axis != chain.axis:
        split.problems.append(f"it joins its inputs along axis {axis}, not the channel axis {chain.axis}")
        return alt
    others = [r for r in view.readers(concat.output) if r.index != chain.removed[0].index]
    split.problems += [f"its output '{view.name(concat.output)}' is also read by {r.type} '{r.id}'" for r in others]
    if view.is_output(concat.output):
        split.problems.append(f"its output '{view.name(concat.output)}' is a model output")
    start = 0
    for t in concat.inputs:
        if not t:
            continue
        shape = view.shape(t)
        size = shape[axis] if shape is not None and len(shape) > axis else None
        producer = view.producer(t)
        if producer is None or view.kind(producer) is None:
            what = f"{producer.type} '{producer.id}'" if producer is not None else "a model input"
            also = ", ".join(f"{r.type} '{r.id}'" for r in view.readers(t) if r.index != concat.index)
            split.problems.append(f"its input '{view.name(t)}' comes from {what}, no layer"
                                  + (f" (also read by {also})" if also else ""))
        elif size is None:
            split.problems.append(f"the channels of its input '{view.name(t)}' are not known")
        else:
            alt.pieces.append(_piece(view, c, producer, (start, start + int(size))))
        start += int(size) if size is not None else 0
    split.problems = list(dict.fromkeys(split.problems))
    if not split.problems and start != (c.mean.shape[0] if c.mean is not None else start):
        split.problems.append(f"its inputs hold {start} channels, the map {c.mean.shape[0]}")
    return alt


def _piece(view: OpView, c: OpCandidate, layer: Op, window: tuple[int, int]) -> OpCandidate:
    """The backward candidate of one input of the Concat: the layer and the map's channels it makes."""
    lo, hi = window
    cut = {k: (None if getattr(c, k) is None else np.asarray(getattr(c, k))[lo:hi]) for k in ("gamma", "beta")}
    piece = dataclasses.replace(
        c, layer=layer.id, op=layer.type, kind=view.kind(layer), window=window, alternatives=[], absorbs={},
        mean=np.asarray(c.mean)[lo:hi], variance=np.asarray(c.variance)[lo:hi], **cut, kernel=None, bias=None,
        kernel_absmax=None, channels=None, not_constant=list(c.map_not_constant), shared=[], bad_operands=[],
        groups=1, output_node=layer.id, consumers=uses(view, layer.output), notes={}, weight=None, bias_input=None,
        maps=[dataclasses.replace(m, scale=m.scale[lo:hi], shift=m.shift[lo:hi],
                                  terms=None if m.terms is None else m.terms[lo:hi]) for m in c.maps],
        channel_axis=view.channel_axis(layer), activation=view.activation(layer))
    weights = weights_of(view, piece, layer)
    piece.weight = weights[0][1]
    piece.bias_input = weights[1][1] if len(weights) > 1 else None
    piece.not_constant += [f"{what} ('{view.name(t)}')" for what, t in weights if not view.is_constant(t)]
    piece.shared = shared_weights(view, layer, [t for _, t in weights])
    if piece.not_constant or piece.bn_training:
        return piece
    piece.kernel = np.asarray(view.value(piece.weight))
    piece.compute_dtype = view.stored_dtype(piece.weight)
    if piece.kind.group_axis is not None:
        piece.groups = view.groups(layer)
    piece.set_kernel(piece.kernel)
    if piece.bias_input is not None:
        piece.bias = layer_bias(view, piece, layer)
    elif view.slots(layer)[1] is None:
        piece.bad_operands.append(f"'{layer.id}' has no bias input for its slice of the shift")
    return piece


def alternatives(view: OpView, c: OpCandidate) -> list[OpCandidate]:
    """The alternatives of a chain's candidate, when its map is applied in inference mode: a split over the
    Concat before it, when its producer is one, and a forward fold, when its output goes into a layer."""
    if c.bn_training:
        return []
    found = []
    producer = c.chain.producer
    if producer is not None and producer.type in view.vocabulary.concats:
        found.append(split_alternative(view, c, producer))
    forward = forward_alternative(view, c)
    return found + ([forward] if forward is not None else [])


def shift_vector(c: OpCandidate) -> np.ndarray:
    """A partial fold's Add: t / s on the map's channels."""
    affine = c.affine()
    return channel_vector(affine.shift / affine.scale, affine.channels)


def map_input(view: OpView, chain: Chain) -> str:
    """The tensor the chain's first map reads (what a layer that takes the map forward reads instead)."""
    first = chain.removed[0]
    bn = view.bn(first)
    return first.inputs[bn.data_slot] if bn is not None else const_operand(view, first)[1]
