"""ONNX frontend, rules: the shared rules and the op-level rules (``fold.frontends.ops.rules``)."""

from __future__ import annotations

from fold.core.rules import Rule, compose
from fold.frontends.ops.rules import (
    CONSTANT_WEIGHTS, FORWARD_WEIGHTS, PER_CHANNEL_OPERANDS, SINGLE_USE_CHAIN, UNSHARED_WEIGHTS,
)

#: Checked in order on every ONNX candidate; the first objection decides. ONNX nodes run once
#: and carry no fused activation, so "not-shared" and "linear-activation" cannot object (a
#: Relu between the layer and the BN is the BN's producer: "supported-kind"). A map folds
#: backward, split over a Concat, forward, or partially across a Relu (``fold.core.rules``).
RULES: tuple[Rule, ...] = compose(CONSTANT_WEIGHTS, UNSHARED_WEIGHTS, SINGLE_USE_CHAIN, PER_CHANNEL_OPERANDS,
                                  omit=("not-shared", "linear-activation"), forward=(FORWARD_WEIGHTS,), concat=True)
