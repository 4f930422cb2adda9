"""ONNX frontend, rules: the shared rules plus what only an ONNX graph can get wrong."""

from __future__ import annotations

from fold.core.rules import Rule, compose
from fold.frontends.onnx.match import OnnxCandidate


def _constant_weights(c: OnnxCandidate) -> str | None:
    if c.not_constant:
        return (f"{c.not_constant[0][0].upper()}{c.not_constant[0][1:]} is not a constant (an initializer "
                "or a Constant node), so the fold cannot be computed ahead of time.")
    return None


def _unshared_initializer(c: OnnxCandidate) -> str | None:
    if c.shared:
        return (f"The initializer {c.shared[0]} of '{c.layer}' is shared with another node; folding would "
                "untie the weights.")
    return None


def _single_use_intermediates(c: OnnxCandidate) -> str | None:
    if c.extra_readers:
        return (f"An intermediate of the chain '{c.layer}' -> '{c.bn}' is used outside it "
                f"({'; '.join(c.extra_readers)}); removing it would change what that reads.")
    return None


def _per_channel_bias(c: OnnxCandidate) -> str | None:
    if c.layer_bias:
        return f"The bias of '{c.layer}' is not per channel: {c.layer_bias}."
    return None


#: Checked in order on every ONNX candidate; the first objection decides. ONNX nodes run once
#: and carry no fused activation, so "not-shared" and "linear-activation" cannot object (a
#: Relu between the layer and the BN is the BN's producer: "supported-kind").
RULES: tuple[Rule, ...] = compose(
    Rule("constant-weights", "The weights, biases and BN parameters are initializers or Constant nodes.",
         _constant_weights),
    Rule("unshared-initializer", "No other node reads the layer's weight or bias initializer.",
         _unshared_initializer),
    Rule("single-use-intermediates", "No tensor between the layer and the end of the BN is read elsewhere "
         "or is a graph output.", _single_use_intermediates),
    Rule("per-channel-bias", "The layer's own bias (Gemm's C) is a per-channel vector.", _per_channel_bias),
    omit=("not-shared", "linear-activation"),
)
