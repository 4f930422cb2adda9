"""TFLite frontend, rules: the shared rules plus what only a flatbuffer can get wrong."""

from __future__ import annotations

from fold.core.rules import Rule, compose
from fold.frontends.tflite.match import TfliteCandidate


def _float32_tensors(c: TfliteCandidate) -> str | None:
    if c.not_float32:
        return (f"'{c.layer}' -> '{c.bn}' is not plain float32 ({'; '.join(c.not_float32)}); "
                "foldscope folds float32 models only.")
    return None


def _constant_operands(c: TfliteCandidate) -> str | None:
    if c.not_constant:
        return (f"{c.not_constant[0][0].upper()}{c.not_constant[0][1:]} is not a constant, "
                f"so '{c.bn}' cannot be folded into '{c.layer}'.")
    return None


def _per_channel_operands(c: TfliteCandidate) -> str | None:
    if c.bad_shapes:
        return (f"{c.bad_shapes[0][0].upper()}{c.bad_shapes[0][1:]}, not [C] or [1,...,1,C] "
                f"with C = {c.channels} channels of '{c.layer}'.")
    return None


def _linear_mul(c: TfliteCandidate) -> str | None:
    if c.mul_activation:
        return (f"The MUL of '{c.bn}' applies a fused {c.mul_activation} before the ADD, "
                "so the pair is not a BatchNorm.")
    return None


#: Checked in order on every TFLite chain; the first objection decides. The flatbuffer guards
#: run before the rules that read the operands' values. Three shared rules cannot object in
#: a flatbuffer: it has no training-mode BatchNorm, every op runs once, and the MUL/ADD
#: operands act on the last (channel) axis whenever "per-channel-operands" lets them through.
RULES: tuple[Rule, ...] = compose(
    Rule("float32", "Filter, bias, operands and output are float32, not quantized.", _float32_tensors),
    Rule("constant-operands", "Filter, bias and the MUL/ADD operands are constants.", _constant_operands),
    Rule("per-channel-operands", "The MUL/ADD operands have shape [C] or [1,...,1,C].", _per_channel_operands),
    Rule("linear-mul", "The MUL has no fused activation before the ADD.", _linear_mul),
    omit=("inference-mode", "not-shared", "channel-axis"),
)
