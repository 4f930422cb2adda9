"""Matching in a TFLite or circle model: the main subgraph's BN chains as candidates, and its graph, on
the shared op-graph layer (``fold.frontends.ops``) through the flatbuffer view (``fold.frontends.flatbuffer.view``).

In a flatbuffer BatchNorm arrives decomposed into a per-channel MUL and ADD (as in Samsung ONE's
FuseBatchNormWithTConvPass; CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED fold the same way);
either may be missing. Weights may sit behind a DEQUANTIZE of a float16 buffer. What only a
flatbuffer has is here: fused activations (where the tail's goes once folded, and a MUL that
applies one before its ADD) and the tensor types. Ops are named ``OP:i`` after their index ``i`` in
the file the user gave (``FlatModel.ids``), so an op keeps its id through a rewrite.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass, field

import networkx as nx

from fold.core.kinds import TFLITE_KINDS
from fold.frontends.flatbuffer.view import SLOTS, FlatView
from fold.frontends.ops.candidates import OpCandidate, op_candidate
from fold.frontends.ops.chains import Chain, candidate_chains, const_operand, find_chains
from fold.frontends.ops.directions import alternatives
from fold.frontends.ops.op_graph import op_graph as ops_graph

#: Fused activation -> the standalone op that computes it.
STANDALONE_ACTIVATIONS = {"RELU": "RELU", "RELU6": "RELU6", "RELU_N1_TO_1": "RELU_N1_TO_1", "TANH": "TANH"}


@dataclass
class FlatCandidate(OpCandidate):
    """An OpCandidate plus what only a flatbuffer can get wrong.

    not_float32:     tensors that are not plain float32 (``float32``).
    mul_activation:  the fused activation a MUL applies before its ADD (``linear-mul``).
    tail_activation: the fused activation of the chain's last op.
    placement:       where that activation goes once folded: "fused" onto the conv, "separate"
                     (its own op after the conv, as Samsung ONE does) or None when there is none.
    """

    not_float32: list[str] = field(default_factory=list)
    mul_activation: str | None = None
    tail_activation: str | None = None
    placement: str | None = None


def _not_float32(view: FlatView, tensors: list[tuple[str, str]]) -> list[str]:
    """Descriptions of the tensors that are not plain (unquantized) float32."""
    found = []
    for what, t in tensors:
        tensor = view.tensor(t)
        q = tensor.quantization
        quantized = q is not None and q.scale is not None and len(q.scale) > 0
        if tensor.type != view.schema.classes.TensorType.FLOAT32 or quantized:
            dtype = view.schema.tensor_type_names.get(tensor.type, str(tensor.type))
            found.append(f"{what} is {dtype}{' quantized' if quantized else ''}")
    return found


def _place_activation(view: FlatView, c: FlatCandidate, split: Collection[str]) -> None:
    """Where the tail's activation goes when the chain folds (a separate op after a layer of a type in
    ``split``, or one that cannot fuse it), and the report's note on it."""
    if c.tail_activation is None:
        return
    options = view.operator(c.chain.producer).builtinOptions
    separate = (c.chain.producer.type in split or not hasattr(options, "fusedActivationFunction")) and \
        c.tail_activation in STANDALONE_ACTIVATIONS
    c.placement = "separate" if separate else "fused"
    if separate:  # the activation becomes its own op, which then produces the tail's output
        c.output_node = f"{c.tail_activation}:{c.layer.split(':')[-1]}/activation"
    c.notes["activation"] = (f"{c.tail_activation} kept as a separate {c.tail_activation} op after '{c.layer}'"
                             if separate else f"{c.tail_activation} fused into '{c.layer}'")


def candidate(view: FlatView, chain: Chain, split: Collection[str] = ()) -> FlatCandidate:
    """What the rules (and the rewrite) need to know about one chain."""
    c = op_candidate(view, chain, FlatCandidate)
    c.notes.setdefault("activation", None)
    c.tail_activation = view.activation(chain.tail)
    if c.kind is None:
        return c
    producer = chain.producer
    c.activation = view.activation(producer)
    _place_activation(view, c, split)
    muls = [o for o in chain.removed if o.type == "MUL"]
    if muls and len(chain.removed) > 1:
        c.mul_activation = view.activation(muls[0])
    operands = [(f"the operand of '{o.id}'", const_operand(view, o)[0]) for o in chain.ops]
    weights = [(f"the {c.kind.weight} of '{c.layer}'", c.weight)]
    weights += [(f"the bias of '{c.layer}'", c.bias_input)] if c.bias_input else []
    c.not_float32 = _not_float32(view, weights + operands + [(f"the output of '{c.layer}'", producer.output)])
    return c


def _alternative(view: FlatView, c: FlatCandidate, alt: FlatCandidate, split: Collection[str]) -> FlatCandidate:
    """What only a flatbuffer can get wrong about a forward or split alternative: its tensors' types (as
    operands that are not per-channel vectors, or, for a piece, as the ``float32`` rule reads them) and a
    MUL that applies an activation before its ADD (then the map is no affine map to move)."""
    operands = [(f"the operand of '{o.id}'", const_operand(view, o)[0]) for o in c.chain.removed]
    for target in alt.pieces or [alt]:
        if target.kind is None or target.weight is None:
            continue
        weights = [(f"the {target.kind.weight} of '{target.layer}'", target.weight)]
        weights += [(f"the bias of '{target.layer}'", target.bias_input)] if target.bias_input else []
        found = _not_float32(view, weights + operands)
        if alt.pieces:
            target.not_float32, target.mul_activation = found, c.mul_activation
        else:
            target.bad_operands += found
    if c.mul_activation and not alt.pieces:
        alt.bad_operands.append(f"the MUL of '{c.bn}' applies a fused {c.mul_activation} before its ADD")
    if alt.split is not None and c.tail_activation is not None:
        # A CONCATENATION fuses no activation; an elementwise one is the same on each input: each piece's
        # layer applies it (one with an activation of its own is refused by "linear-activation"), fused,
        # unless the format keeps that layer type's activation as an op of its own (``split``)
        for piece in alt.pieces:
            layer = view.by_name[piece.layer]
            piece.tail_activation = c.tail_activation
            fuses = hasattr(view.operator(layer).builtinOptions, "fusedActivationFunction") and layer.type not in split
            piece.placement = "fused" if fuses else None
            if piece.placement is None:
                why = f" (the format keeps a {layer.type}'s activation as an op of its own)" if layer.type in split else ""
                alt.split.problems.append(f"'{piece.layer}' cannot apply the fused {c.tail_activation} of "
                                          f"'{c.chain.tail.id}'{why}")
            piece.notes["activation"] = f"{c.tail_activation} fused into '{piece.layer}'"
    return alt


def _alternatives(view: FlatView, c: FlatCandidate, split: Collection[str]) -> list[FlatCandidate]:
    return [_alternative(view, c, alt, split) for alt in alternatives(view, c)]


def candidates(view: FlatView, split: Collection[str] = ()) -> list[FlatCandidate]:
    """Every chain of the main subgraph as a candidate, in op order, with its forward and split alternatives
    (built only for a map that does not fold backward); the activation of a folded layer whose type is in
    ``split`` is kept as an op of its own."""
    found = []
    for chain in candidate_chains(view):
        c = candidate(view, chain, split)
        if chain.form != "bias":
            c.alternatives = functools.partial(_alternatives, view, c, split)
        found.append(c)
    return found


def _config(view: FlatView, op) -> dict:
    """The op's builtin options worth showing, enums by name."""
    config: dict = {}
    if op.builtinOptions is None:
        return config
    for key, value in vars(op.builtinOptions).items():
        if key == "fusedActivationFunction":
            config["activation"] = view.schema.activation_names.get(value, str(value))
        elif key == "padding":
            config["padding"] = "SAME" if value == view.schema.classes.Padding.SAME else "VALID"
        elif isinstance(value, (bool, int, float)):
            config[key] = value
    return config


#: Display names of the weight slots of the linear ops.
_SLOT_NAMES = {op: {filt: TFLITE_KINDS[op].weight, bias: "bias"} for op, (filt, bias) in SLOTS.items()}
_SLOT_NAMES["TRANSPOSE_CONV"][0] = "output_shape"


def op_graph(view: FlatView) -> nx.DiGraph:
    """The main subgraph as foldscope's graph (see fold.core.graph): ops as nodes, tensors as edges;
    constants (a DEQUANTIZE of a float16 buffer too) as the weights of the ops that read them."""
    hidden = lambda op: op.type == "DEQUANTIZE" and view.is_constant(op.output)  # noqa: E731

    def weights(op) -> dict:
        names = _SLOT_NAMES.get(op.type, {})
        return {names.get(slot, view.name(t)): view.shape(t)
                for slot, t in enumerate(op.inputs) if t and view.is_constant(t)}

    return ops_graph(view, find_chains(view), name=view.model.stem, frontend=view.schema.name,
                     inputs=[(view.name(str(t)), str(t)) for t in view.sg.inputs],
                     outputs=[str(t) for t in view.sg.outputs], config=lambda op: _config(view, view.operator(op)),
                     weights=weights, hidden=hidden)
