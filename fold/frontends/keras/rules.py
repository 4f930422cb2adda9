"""Keras frontend, rules: the shared rules plus what only a Keras layer can get wrong."""

from __future__ import annotations

from fold.core.rules import Rule, compose
from fold.frontends.keras.match import KerasCandidate


def _plain_kernel(c: KerasCandidate) -> str | None:
    if c.special_kernel:
        return (f"The kernel of '{c.layer}' is {c.special_kernel}, not a plain float weight, "
                "so it cannot be rescaled per channel.")
    return None


def _forward_own_layer(c: KerasCandidate) -> str | None:
    if c.special_kernel:
        return f"The kernel of '{c.layer}' is {c.special_kernel}, so it cannot take '{c.bn}' on its input side."
    if c.calls > 1:
        return f"'{c.layer}' is a shared layer applied {c.calls} times; folding '{c.bn}' into it would change its other uses."
    return None


#: Checked in order on every Keras candidate; the first objection decides within a direction. A BN folds
#: backward, split over a Concatenate, forward, or partially across a ReLU (``fold.core.rules``).
RULES: tuple[Rule, ...] = compose(
    Rule("plain-kernel", "The layer's kernel is a plain float weight (not quantized, no LoRA).", _plain_kernel),
    forward=(Rule("forward-own-layer", "Forward: the layer's kernel is a plain float weight of a layer applied once.",
                  _forward_own_layer, "forward"),),
    concat=True,
)
