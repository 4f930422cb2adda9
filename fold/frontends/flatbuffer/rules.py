"""Rules of a TFLite or circle model: the shared rules, the op-level rules (``fold.frontends.ops.rules``)
and what only a flatbuffer can get wrong."""

from __future__ import annotations

from fold.core.rules import Rule, compose
from fold.frontends.flatbuffer.match import FlatCandidate
from fold.frontends.ops.rules import CONSTANT_WEIGHTS, FORWARD_WEIGHTS, SINGLE_USE_CHAIN


def _float32_tensors(c: FlatCandidate) -> str | None:
    if c.not_float32:
        return (f"'{c.layer}' -> '{c.bn}' is not plain float32 ({'; '.join(c.not_float32)}); "
                "foldscope folds float32 models only.")
    return None


def _linear_mul(c: FlatCandidate) -> str | None:
    if c.mul_activation:
        return (f"The MUL of '{c.bn}' applies a fused {c.mul_activation} before the ADD, "
                "so the pair is not a BatchNorm.")
    return None


#: Checked in order on every chain of a TFLite or circle model; the first objection decides. The
#: flatbuffer guards run before the rules that read the operands' values. Three shared rules cannot
#: object in a flatbuffer: it has no training-mode BatchNorm, every op runs once, and a MUL/ADD operand
#: that is not per channel on the last axis makes no chain at all. Two op-level rules cannot
#: either: a fold writes new tensors, so a weight other ops read stays theirs
#: ("unshared-weights"), and a flatbuffer bias is always a vector ("per-channel-operands"). A map
#: folds backward, split over a CONCATENATION, forward, or partially across a RELU (``fold.core.rules``);
#: forward, the tensor types and a MUL's activation are what "forward-weights" reads.
RULES: tuple[Rule, ...] = compose(
    Rule("float32", "Filter, bias, operands and output are float32, not quantized.", _float32_tensors),
    CONSTANT_WEIGHTS,
    SINGLE_USE_CHAIN,
    Rule("linear-mul", "The MUL has no fused activation before the ADD.", _linear_mul),
    omit=("inference-mode", "not-shared", "channel-axis"), forward=(FORWARD_WEIGHTS,), concat=True,
)
