"""The folding rules, as data: each pair (linear layer -> BatchNorm) is folded or skipped with a reason.

A rule is a guard: it looks at a frontend-neutral ``Candidate`` and returns ``None`` when it
has no objection, or a one-sentence reason why the pair must stay as it is. The registry
``RULES`` is checked in order; the first objection decides. The command line and the app
list what foldscope checks from this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fold.affine import Affine, bn_affine
from fold.kinds import Kind


@dataclass
class Candidate:
    """One BatchNorm and the layer that produces its input, as the rules see them.

    layer, bn:     paths of the two nodes ("outer/inner" inside nested models).
    op:            the producer's layer class / op type.
    kind:          its entry in the kinds table, or None when foldscope cannot fold into it.
    activation:    the producer's activation ("linear" or None means none).
    consumers:     how many places read the producer's output (a model output counts).
    calls:         max(number of calls of the producer, of the BN): >1 means a shared layer.
    channel_axis:  axis of the producer's output holding its channels (non-negative).
    bn_axes:       axes the BN normalizes (non-negative).
    bn_training:   the BN is called with training=True (batch statistics, never folded).
    gamma, beta, mean, variance, epsilon: the BN's parameters (gamma/beta None when absent).
    channels:      the producer's number of output channels.
    kernel_absmax: per-output-channel max |kernel| (for the overflow check), or None.
    bias:          the producer's bias, or None when it has none.
    compute_dtype: dtype the folded layer will compute in.
    """

    layer: str
    bn: str
    op: str
    kind: Kind | None
    activation: str | None = None
    consumers: int = 1
    calls: int = 1
    channel_axis: int | None = None
    bn_axes: tuple[int, ...] = ()
    bn_training: bool = False
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    variance: np.ndarray = field(default_factory=lambda: np.ones(0))
    epsilon: float = 1e-3
    channels: int | None = None
    kernel_absmax: np.ndarray | None = None
    bias: np.ndarray | None = None
    compute_dtype: str = "float32"

    def affine(self) -> Affine:
        return bn_affine(self.mean, self.variance, self.epsilon, self.gamma, self.beta)


@dataclass(frozen=True)
class Rule:
    """A named guard. ``check`` returns a reason to skip, or None."""

    name: str
    summary: str
    check: Callable[[Candidate], str | None]


def _supported_kind(c: Candidate) -> str | None:
    if c.op in ("InputLayer", "Placeholder"):
        return f"BatchNorm '{c.bn}' reads a model input directly; there is no layer to fold it into."
    if c.kind is None:
        return f"'{c.layer}' is a {c.op}, not a layer kind foldscope folds a BatchNorm into."
    return None


def _not_shared(c: Candidate) -> str | None:
    if c.calls > 1:
        return (f"'{c.layer}' or '{c.bn}' is a shared layer applied {c.calls} times; "
                "folding would change its other uses.")
    return None


def _linear_activation(c: Candidate) -> str | None:
    if c.activation not in (None, "linear"):
        return (f"'{c.layer}' applies a non-linear activation ({c.activation}) before the "
                "BatchNorm, so the BN cannot be moved into its kernel.")
    return None


def _single_consumer(c: Candidate) -> str | None:
    if c.consumers > 1:
        return (f"The output of '{c.layer}' also feeds {c.consumers - 1} other consumer(s); "
                "folding would change what they receive.")
    return None


def _inference_mode(c: Candidate) -> str | None:
    if c.bn_training:
        return (f"'{c.bn}' is called with training=True, so it normalizes with batch "
                "statistics, not its moving averages.")
    return None


def _channel_axis(c: Candidate) -> str | None:
    if c.channel_axis is None or c.bn_axes != (c.channel_axis,):
        return (f"'{c.bn}' normalizes axis {list(c.bn_axes)} but the channels of '{c.layer}' "
                f"are on axis {c.channel_axis}.")
    if c.channels is not None and c.mean.shape[0] != c.channels:
        return (f"'{c.bn}' has {c.mean.shape[0]} channels but '{c.layer}' produces {c.channels}.")
    return None


def _finite_parameters(c: Candidate) -> str | None:
    for name in ("gamma", "beta", "mean", "variance"):
        value = getattr(c, name)
        if value is not None and not np.all(np.isfinite(value)):
            return f"'{c.bn}' has a non-finite {name} (NaN or inf); folding it would spread NaNs."
    if not np.isfinite(c.epsilon):
        return f"'{c.bn}' has a non-finite epsilon ({c.epsilon})."
    denom = np.asarray(c.variance, dtype=np.float64) + np.float64(c.epsilon)
    if np.any(denom <= 0):
        worst = int(np.argmin(denom))
        return (f"'{c.bn}' has variance + epsilon <= 0 on channel {worst} "
                f"({float(denom[worst]):.3g}); its scale is undefined.")
    return None


def _finite_weights(c: Candidate) -> str | None:
    for what, value in (("kernel", c.kernel_absmax), ("bias", c.bias)):
        if value is not None and not np.all(np.isfinite(value)):
            return f"'{c.layer}' has a non-finite {what} value (NaN or inf); there is nothing exact to fold into."
    return None


#: Largest finite value of each floating-point compute dtype (bfloat16 is not a NumPy dtype).
FLOAT_MAX = {"float16": 65504.0, "bfloat16": 3.3895313892515355e38,
             "float32": float(np.finfo(np.float32).max), "float64": float(np.finfo(np.float64).max)}


def _fits_dtype(c: Candidate) -> str | None:
    if c.kernel_absmax is None:
        return None
    dtype = str(c.compute_dtype)
    if dtype not in FLOAT_MAX:
        return f"'{c.layer}' computes in {dtype}; foldscope folds floating-point layers only."
    limit = FLOAT_MAX[dtype]
    affine = c.affine()
    bias = np.zeros_like(affine.scale) if c.bias is None else np.asarray(c.bias, dtype=np.float64)
    for what, folded in (("kernel", np.abs(c.kernel_absmax * affine.scale)),
                         ("bias", np.abs(bias * affine.scale + affine.shift))):
        if np.any(folded > limit):
            worst = int(np.argmax(folded))
            return (f"Folding '{c.bn}' would make the {what} of '{c.layer}' reach {folded[worst]:.3g} on "
                    f"channel {worst}, beyond the largest {dtype} ({limit:.3g}); a tiny variance "
                    "blows up the folded weights.")
    return None


#: Checked in order; the first objection decides.
RULES: tuple[Rule, ...] = (
    Rule("supported-kind", "The producer is a layer kind in the kinds table.", _supported_kind),
    Rule("not-shared", "Neither layer is shared (applied more than once).", _not_shared),
    Rule("linear-activation", "The producer has no non-linear activation.", _linear_activation),
    Rule("single-consumer", "Only the BatchNorm reads the producer's output.", _single_consumer),
    Rule("inference-mode", "The BatchNorm is not forced into training mode.", _inference_mode),
    Rule("channel-axis", "The BatchNorm normalizes the producer's channel axis.", _channel_axis),
    Rule("finite-parameters", "BN parameters are finite and variance + epsilon > 0.", _finite_parameters),
    Rule("finite-weights", "The layer's kernel and bias are finite.", _finite_weights),
    Rule("fits-dtype", "The folded kernel is representable in the layer's compute dtype.", _fits_dtype),
)


@dataclass
class Decision:
    """What happened to one candidate pair. ``affine`` is set when it was folded."""

    layer: str
    bn: str
    op: str
    family: str | None
    status: str  # "folded" | "skipped"
    reason: str | None = None
    rule: str | None = None
    affine: Affine | None = None

    def to_dict(self) -> dict:
        return {"layer": self.layer, "bn": self.bn, "kind": self.op, "status": self.status,
                "reason": self.reason, "rule": self.rule}


class FoldOutcome:
    """What every frontend's fold result offers (subclasses are dataclasses with ``decisions``)."""

    decisions: list[Decision]

    @property
    def folded_pairs(self) -> list[Decision]:
        return [d for d in self.decisions if d.status == "folded"]


class CountedFromGraphs(FoldOutcome):
    """A fold result whose BN counts are the "bn" nodes of ``graph_before`` and ``graph_after``."""

    @property
    def bn_before(self) -> int:
        from fold.graph import count_role

        return count_role(self.graph_before, "bn")

    @property
    def bn_after(self) -> int:
        from fold.graph import count_role

        return count_role(self.graph_after, "bn")


def decide(c: Candidate, rules: tuple[Rule, ...] = RULES) -> Decision:
    """Fold the pair unless a rule objects."""
    family = c.kind.family if c.kind else None
    for rule in rules:
        reason = rule.check(c)
        if reason is not None:
            return Decision(c.layer, c.bn, c.op, family, "skipped", reason, rule.name)
    return Decision(c.layer, c.bn, c.op, family, "folded", affine=c.affine())
