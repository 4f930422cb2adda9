"""Keras frontend, rules: the shared rules plus what only a Keras layer can get wrong."""

from __future__ import annotations

from fold.core.rules import Rule, compose
from fold.frontends.keras.match import KerasCandidate


def _plain_kernel(c: KerasCandidate) -> str | None:
    if c.special_kernel:
        return (f"The kernel of '{c.layer}' is {c.special_kernel}, not a plain float weight, "
                "so it cannot be rescaled per channel.")
    return None


#: Checked in order on every Keras candidate; the first objection decides.
RULES: tuple[Rule, ...] = compose(
    Rule("plain-kernel", "The layer's kernel is a plain float weight (not quantized, no LoRA).", _plain_kernel),
)
