"""The op-level rules, one name each for every op-level format (a format lists those that can
object in it, with ``fold.core.rules.compose``)."""

from __future__ import annotations

from fold.core.rules import Rule
from fold.frontends.ops.candidates import OpCandidate


def _first(findings: list[str]) -> str:
    return findings[0][0].upper() + findings[0][1:]


def _constant_weights(c: OpCandidate) -> str | None:
    if c.not_constant:
        return (f"{_first(c.not_constant)} is not a constant (it is computed at run time), so the fold "
                "cannot be computed ahead of time.")
    return None


def _unshared_weights(c: OpCandidate) -> str | None:
    if c.shared:
        return f"The weight {c.shared[0]} of '{c.layer}' is shared with another op; folding would untie the weights."
    return None


def _single_use_chain(c: OpCandidate) -> str | None:
    if c.extra_readers:
        return (f"An intermediate of the chain '{c.layer}' -> '{c.bn}' is used outside it "
                f"({'; '.join(c.extra_readers)}); removing it would change what that reads.")
    return None


def _per_channel_operands(c: OpCandidate) -> str | None:
    if c.bad_operands:
        return f"{_first(c.bad_operands)}, not a vector of one value per channel."
    return None


CONSTANT_WEIGHTS = Rule("constant-weights", "The weights, biases and BN parameters are constants.", _constant_weights)
UNSHARED_WEIGHTS = Rule("unshared-weights", "No other op reads the layer's weights.", _unshared_weights)
SINGLE_USE_CHAIN = Rule("single-use-chain", "Nothing outside the chain reads what lies between the layer and "
                        "the end of the BN (nor is it a model output).", _single_use_chain)
PER_CHANNEL_OPERANDS = Rule("per-channel-operands", "The layer's bias and the BN's operands are per-channel vectors.",
                            _per_channel_operands)


def _forward_weights(c: OpCandidate) -> str | None:
    found = [*c.not_constant, *c.shared, *c.bad_operands]
    if found:
        return f"'{c.layer}' cannot take '{c.bn}' on its input side: {'; '.join(found)}."
    return None


FORWARD_WEIGHTS = Rule("forward-weights", "Forward: the layer's weights and the map's parameters are constants, "
                       "read by nothing else, and its bias a vector.", _forward_weights, "forward")
