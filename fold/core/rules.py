"""The folding rules, as data: each pair (linear layer -> BatchNorm) is folded or skipped with a reason.

A rule is a guard: it looks at a ``Candidate`` and returns ``None`` when it has no objection,
or a one-sentence reason why the pair must stay as it is. A frontend's rule list is made
one way, by ``compose``: the shared structural rules, then the frontend's own guards (what
only a file format can get wrong: a filter that is not a constant, a quantized tensor...),
then the shared rules that read parameter values. The first objection decides. The command
line and the app list what foldscope checks from these registries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fold.core.affine import Affine, bn_affine, per_channel_range, with_bias_terms
from fold.core.kinds import Kind


@dataclass
class Candidate:
    """One BatchNorm and the layer that produces its input, as the rules see them.

    Frontends subclass it to add what their own rules read (each field a list of
    human-readable findings, empty when all is well).

    layer, bn:     ids of the two nodes in the frontend's graph ("outer/inner" inside nested models).
    op:            the producer's layer class / op type.
    kind:          its entry in the kinds table, or None when foldscope cannot fold into it.
    groups:        the producer's groups, for kinds whose channels are split by group.
    activation:    the producer's activation ("linear" or None means none).
    consumers:     how many places read the producer's output (a model output counts).
    calls:         max(number of calls of the producer, of the BN): >1 means a shared layer.
    channel_axis:  axis of the producer's output holding its channels (non-negative).
    bn_axes:       axes the BN normalizes (non-negative).
    bn_training:   the BN is called with training=True (batch statistics, never folded).
    gamma, beta, mean, variance, epsilon: the BN's parameters (gamma/beta None when absent).
    channels:      the producer's number of output channels (set by ``set_kernel``).
    kernel_absmax: per-output-channel max |kernel| (set by ``set_kernel``), or None.
    bias:          the producer's bias, or None when it has none.
    compute_dtype: dtype the folded layer will compute in (or store its weights in).
    form:          "bn" (a BatchNorm), "affine" (another per-channel affine map, such as a scalar
                   Mul/Add block) or "bias" (a bias add the layer takes in).
    reads_input:   the BN reads a model input directly.
    notes:         remarks that hold once the pair is folded (e.g. where an activation goes);
                   they reach the report as extra keys of the pair.
    output_node:   the node of the folded graph whose output is what the BN produced, when it
                   is not the layer itself (a GraphDef's BiasAdd named like the BN, a TFLite
                   activation kept as its own op).
    statistics:    gamma/beta/mean/variance are a BN's own (False: a map given as scale and shift,
                   ``set_scale_shift``, whose output distribution nothing states).
    """

    layer: str
    bn: str
    op: str
    kind: Kind | None
    groups: int = 1
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
    form: str = "bn"
    reads_input: bool = False
    notes: dict[str, str | None] = field(default_factory=dict)
    output_node: str | None = None
    statistics: bool = True

    def affine(self) -> Affine:
        return bn_affine(self.mean, self.variance, self.epsilon, self.gamma, self.beta)

    def folded_affine(self) -> Affine:
        """``affine()`` whose ``terms`` also hold |b * scale| for the layer's bias b: what the folded
        bias is made of (``fold.core.verdict``, rule 1)."""
        affine = self.affine()
        if self.bias is not None and self.bias.shape == affine.scale.shape:
            affine = with_bias_terms(affine, self.bias)
        return affine

    @property
    def place(self) -> str:
        """The pair in an error line: "the pair 'conv' -> 'bn'"."""
        return f"the pair '{self.layer}' -> '{self.bn}'"

    def set_kernel(self, kernel: np.ndarray, bias: np.ndarray | None = None) -> None:
        """Record the producer's kernel statistics (channels, per-channel max |w|) and bias."""
        ranges = per_channel_range(kernel, self.kind, self.groups)
        self.channels = ranges.shape[0]
        self.kernel_absmax = np.abs(ranges).max(axis=1)
        self.bias = None if bias is None else np.asarray(bias).reshape(-1)

    def set_scale_shift(self, scale: np.ndarray | None, shift: np.ndarray | None) -> None:
        """A BatchNorm given directly as ``y = scale * x + shift`` (a Mul/Add pair): mean 0,
        variance 1 and epsilon 0 make ``affine()`` exactly (scale, shift); None means 1 / 0."""
        n = self.channels or 0
        self.gamma = np.ones(n) if scale is None else np.asarray(scale, dtype=np.float64)
        self.beta = np.zeros(n) if shift is None else np.asarray(shift, dtype=np.float64)
        self.mean, self.variance, self.epsilon = np.zeros(n), np.ones(n), 0.0
        self.statistics = False

    def output_distribution(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(beta, |gamma|): the mean and standard deviation of each output channel of the BN when its
        input has the moving statistics (what high-bias absorption assumes, Nagel et al. 2019 section
        4.2); None for a map given as scale and shift."""
        if not self.statistics:
            return None
        n = np.asarray(self.mean).reshape(-1).shape[0]
        beta = np.zeros(n) if self.beta is None else np.asarray(self.beta, dtype=np.float64).reshape(-1)
        gamma = np.ones(n) if self.gamma is None else np.asarray(self.gamma, dtype=np.float64).reshape(-1)
        return beta, np.abs(gamma)


Check = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Rule:
    """A named guard. ``check`` takes the frontend's candidate and returns a reason to skip, or None."""

    name: str
    summary: str
    check: Check


def _supported_kind(c: Candidate) -> str | None:
    if c.reads_input:
        return f"BatchNorm '{c.bn}' reads a model input directly; there is no layer to fold it into."
    if c.kind is None:
        return f"'{c.layer}' is {article(c.op)} {c.op}, not a layer kind foldscope folds a BatchNorm into."
    return None


def article(word: str) -> str:
    """ "a" or "an" before ``word`` (by its sound's first letter, as a reader says it)."""
    return "an" if word[:1].lower() in "aeiou" and not word.upper().startswith(("UN", "EU", "US")) else "a"


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
        return f"'{c.bn}' has {c.mean.shape[0]} channels but '{c.layer}' produces {c.channels}."
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


#: Shared rules that look at the pair's structure; they run before any frontend's own guards.
STRUCTURAL: tuple[Rule, ...] = (
    Rule("supported-kind", "The producer is a layer kind in the kinds table.", _supported_kind),
    Rule("inference-mode", "The BatchNorm is not in training mode (it uses its moving statistics).",
         _inference_mode),
)

#: Shared rules that read the pair's connectivity and values; they run after a frontend's
#: own guards, which make sure those values exist (constants, float tensors, ...).
SEMANTIC: tuple[Rule, ...] = (
    Rule("not-shared", "Neither layer is shared (applied more than once).", _not_shared),
    Rule("linear-activation", "The producer has no non-linear activation.", _linear_activation),
    Rule("single-consumer", "Only the BatchNorm reads the producer's output.", _single_consumer),
    Rule("channel-axis", "The BatchNorm normalizes the producer's channel axis.", _channel_axis),
    Rule("finite-parameters", "BN parameters are finite and variance + epsilon > 0.", _finite_parameters),
    Rule("finite-weights", "The layer's kernel and bias are finite.", _finite_weights),
    Rule("fits-dtype", "The folded kernel is representable in the layer's compute dtype.", _fits_dtype),
)


def compose(*specific: Rule, omit: tuple[str, ...] = ()) -> tuple[Rule, ...]:
    """A frontend's rule list: the structural rules, its own guards, then the semantic rules.

    ``omit`` names shared rules that can never object in the frontend's format (a TFLite
    model has no training-mode BatchNorm, a GraphDef op is never shared), so that its list,
    which the app shows, holds only checks that can decide something.
    """
    shared = {r.name for r in (*STRUCTURAL, *SEMANTIC)}
    unknown = sorted(set(omit) - shared)
    if unknown:
        raise ValueError(f"Only shared rules can be omitted; {unknown} are not shared rules.")
    rules = (*(r for r in STRUCTURAL if r.name not in omit), *specific,
             *(r for r in SEMANTIC if r.name not in omit))
    names = [r.name for r in rules]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"Rule names must be unique; {duplicated} appear more than once.")
    return rules


#: The shared rules alone (what a frontend without guards of its own checks).
RULES: tuple[Rule, ...] = compose()


@dataclass
class Decision:
    """What happened to one candidate pair. ``affine`` is set when it was folded.

    ``bn`` names the BatchNorm's node, or its nodes joined by "+" ("mul+add") when it is
    decomposed. ``output_node`` is the node of the folded graph that produces what the BN
    produced (the layer itself unless the candidate said otherwise). ``bn_output``: the
    candidate's ``output_distribution`` for a folded pair.
    """

    layer: str
    bn: str
    op: str
    family: str | None
    status: str  # "folded" | "skipped"
    reason: str | None = None
    rule: str | None = None
    affine: Affine | None = None
    notes: dict[str, str | None] = field(default_factory=dict)
    output_node: str | None = None
    form: str = "bn"
    bn_output: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def folded(self) -> bool:
        return self.status == "folded"

    @property
    def bn_nodes(self) -> list[str]:
        return self.bn.split("+")

    def to_dict(self) -> dict:
        return {"layer": self.layer, "bn": self.bn, "kind": self.op, "form": self.form, "status": self.status,
                "reason": self.reason, "rule": self.rule, **self.notes}


def decide(c: Candidate, rules: tuple[Rule, ...] = RULES) -> Decision:
    """Fold the pair unless a rule objects; a folded pair keeps the candidate's notes."""
    family = c.kind.family if c.kind else None
    for rule in rules:
        reason = rule.check(c)
        if reason is not None:
            return Decision(c.layer, c.bn, c.op, family, "skipped", reason, rule.name,
                            notes=dict.fromkeys(c.notes), form=c.form)
    return Decision(c.layer, c.bn, c.op, family, "folded", affine=c.folded_affine(), notes=dict(c.notes),
                    output_node=c.output_node or c.layer, form=c.form, bn_output=c.output_distribution())


def fold_notes(decisions: Sequence[Decision]) -> dict[str, str]:
    """Node -> what the fold did to it, in words: each folded layer, the BN nodes it absorbed,
    and the BN nodes left with the rule that objected (for hover texts and node attributes)."""
    found: dict[str, str] = {}
    for d in decisions:
        if d.folded:
            found[d.layer] = f"folded: {d.bn} is folded into it (scale and shift per output channel)"
            found.update({bn: f"folded away into {d.layer}" for bn in d.bn_nodes})
        else:
            found.update({bn: f"not folded ({d.rule}): {d.reason}" for bn in d.bn_nodes})
    return found
