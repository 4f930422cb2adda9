"""The folding rules, as data: each BatchNorm (or chain of affine maps) is folded or skipped with a reason.

A rule is a guard: it looks at a ``Candidate`` and returns ``None`` when it has no objection,
or a one-sentence reason why the pair must stay as it is. A frontend's rule list is made
one way, by ``compose``: the shared structural rules, then the frontend's own guards (what
only a file format can get wrong: a filter that is not a constant, a quantized tensor...),
then the shared rules that read parameter values; then, for a frontend that folds them, the
rules of the other directions a map can fold in (``CONCAT``, ``FORWARD``, each a ``Rule`` of that
``direction``). The first objection decides within a direction. The command line and the app
list what foldscope checks from these registries.

A map folds in one of these directions, tried in this order (``decide``):

    backward   layer -> map                    W' = W s (output side), b' = b s + t
    concat     layers -> Concat -> map         each producer takes the map's slice of channels
    forward    map -> [reshapes] -> layer      W' = W s (input side), b' = b + sum W t
    partial    map -> ReLU -> layer, s > 0     ReLU(s x + t) = s ReLU(x + t / s): W' = W s (input
                                               side), the map becomes one Add of t / s
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fold.core.affine import (
    Affine, bn_affine, compose as compose_maps, fold_forward, per_channel_range, taken, with_bias_terms,
)
from fold.core.kinds import Kind

#: The directions a map can fold in, in the order ``decide`` tries them (module docstring).
DIRECTIONS = ("backward", "concat", "forward")


@dataclass
class Forward:
    """Where a map folds forward: into the layer that reads its output (the candidate's ``layer``).

    source:     the map's first node, whose data input the folded layer reads once the map is gone.
    path:       the nodes between the map and the layer (channel-keeping reshapes, and for a partial
                fold the activation), in data order; ``through`` says what each is ("Relu 'n7'").
    activation: the positively homogeneous activation between them (a partial fold: only the scale
                moves, the shift stays as one Add before it), or None.
    padding:    how the layer pads its input (None: every output reads real inputs only).
    transposed: the layer is a transposed convolution (a constant input's response varies with the
                output position).
    features:   for each input channel of the layer, the map's channel it reads (None: identity);
                ``mismatch`` says why the two do not line up, when they do not.
    readers:    what else reads what lies between the map and the layer (or that it is a model output).
    entry:      the folded model's node the layer's run starts at (the first node of ``path`` that stays).
    stop:       what the map's output reaches instead of a layer, when it is not one op ("is read by 2 ops
                ('a', 'b')", "applies a fused RELU6"): the forward gate's words.
    """

    source: str
    path: list[str] = field(default_factory=list)
    through: list[str] = field(default_factory=list)
    activation: str | None = None
    padding: str | None = None
    transposed: bool = False
    features: np.ndarray | None = None
    mismatch: str | None = None
    readers: list[str] = field(default_factory=list)
    entry: str | None = None
    stop: str | None = None

    @property
    def partial(self) -> bool:
        return self.activation is not None


@dataclass
class Split:
    """A map on a Concat's output, to be split into the layers that make the Concat's inputs.

    concat:   the Concat node; problems: why its inputs are not each made by a layer that only the
              Concat reads (naming the other readers), or why its output is not the map's alone.
    """

    concat: str
    problems: list[str] = field(default_factory=list)


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
    maps:          the affine maps the chain applies after that first one (BN ops, Mul and Add by
                   per-channel constants): ``affine()`` is all of them composed.
    absorbs:       how many BatchNorms ("bn") and other affine maps ("affine") the chain holds, as
                   the graph counts them (None: one of ``form``).
    kernel:        the layer's kernel, when the candidate keeps it (op-level formats, forward folds).
    direction:     "backward" (layer -> map), or, for an alternative, "concat" or "forward".
    alternatives:  the same map folded in the other directions (``decide`` tries them in order), or a
                   function that builds them (``other_directions``: only a map that does not fold backward
                   reads another layer's weights for them).
    elsewhere:     for each other direction that has no shape to try here (no layer after the map), why
                   ("forward": "... feeds a MaxPool 'p', not a layer"): a skipped pair's reason says it.
    forward:       a forward alternative's target (``Forward``); split, pieces: a concat alternative's
                   Concat and one backward candidate per input; window: a piece's slice of channels.
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
    maps: list[Affine] = field(default_factory=list)
    absorbs: dict[str, int] | None = None
    kernel: np.ndarray | None = None
    direction: str = "backward"
    alternatives: list[Candidate] | Callable[[], list[Candidate]] = field(default_factory=list)
    elsewhere: dict[str, str] = field(default_factory=dict)
    forward: Forward | None = None
    split: Split | None = None
    pieces: list[Candidate] = field(default_factory=list)
    window: tuple[int, int] | None = None

    def affine(self) -> Affine:
        first = bn_affine(self.mean, self.variance, self.epsilon, self.gamma, self.beta)
        return compose_maps(first, *self.maps) if self.maps else first

    def other_directions(self) -> list[Candidate]:
        """The alternatives, built on first use when the frontend gave a function that builds them."""
        if callable(self.alternatives):
            self.alternatives = self.alternatives()
        return self.alternatives

    def counted(self) -> dict[str, int]:
        """BatchNorms and other affine maps the chain holds (``absorbs``, else one of its ``form``)."""
        if self.absorbs is not None:
            return dict(self.absorbs)
        return {"bn": int(self.form == "bn"), "affine": int(self.form == "affine")}

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

    def set_scale_shift(self, scale: np.ndarray | None, shift: np.ndarray | None, channels: int | None = None) -> None:
        """A BatchNorm given directly as ``y = scale * x + shift`` (a Mul/Add pair): mean 0,
        variance 1 and epsilon 0 make ``affine()`` exactly (scale, shift); None means 1 / 0 on
        ``channels`` (default: the layer's)."""
        n = channels or self.channels or 0
        self.gamma = np.ones(n) if scale is None else np.asarray(scale, dtype=np.float64)
        self.beta = np.zeros(n) if shift is None else np.asarray(shift, dtype=np.float64)
        self.mean, self.variance, self.epsilon = np.zeros(n), np.ones(n), 0.0
        self.statistics = False

    def output_distribution(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(beta, |gamma|): the mean and standard deviation of each output channel of the BN when its
        input has the moving statistics (what high-bias absorption assumes, Nagel et al. 2019 section
        4.2); None for a map given as scale and shift, or followed by other maps."""
        if not self.statistics or self.maps:
            return None
        n = np.asarray(self.mean).reshape(-1).shape[0]
        beta = np.zeros(n) if self.beta is None else np.asarray(self.beta, dtype=np.float64).reshape(-1)
        gamma = np.ones(n) if self.gamma is None else np.asarray(self.gamma, dtype=np.float64).reshape(-1)
        return beta, np.abs(gamma)


Check = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Rule:
    """A named guard. ``check`` takes the frontend's candidate and returns a reason to skip, or None.
    ``direction``: the direction whose candidates it judges (``DIRECTIONS``); ``gate``: its objection
    only says that the chain does not have the direction's shape (no layer where it would fold)."""

    name: str
    summary: str
    check: Check
    direction: str = "backward"
    gate: bool = False


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
    for k, m in enumerate(c.maps):
        if not (np.all(np.isfinite(m.scale)) and np.all(np.isfinite(m.shift))):
            return f"Map {k + 2} of '{c.bn}' has a non-finite scale or shift (NaN or inf); folding it would spread NaNs."
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
    Rule("supported-kind", "The producer is a layer kind in the kinds table.", _supported_kind, gate=True),
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


# -- the other directions: a Concat's producers, the layer after ---------------------------------

def _concat_inputs(c: Candidate) -> str | None:
    if c.split is not None and c.split.problems:
        return (f"'{c.bn}' cannot be split into the layers before Concat '{c.split.concat}': "
                f"{'; '.join(c.split.problems)}.")
    return None


def unreached(bn: str, forward: Forward | None, op: str = "", layer: str = "") -> str:
    """Why a map has no layer to fold forward into: what its output reaches instead."""
    through = f" through {', '.join(forward.through)}" if forward is not None and forward.through else ""
    what = forward.stop if forward is not None and forward.stop else f"feeds {article(op)} {op} '{layer}'{through}"
    return f"'{bn}' {what}, not a layer it can fold forward into."


def mixed_reason(mixed: tuple[int, list[int]], through: str) -> str:
    """Why a layer does not read a map's channels one by one: its input channel that reads several
    (``fold.core.affine.input_channels``), after the reshapes ``through``."""
    k, seen = mixed
    return (f"its input channel {k} reads {len(seen)} of the map's channels ({seen[:4]}"
            f"{', ...' if len(seen) > 4 else ''}) after {through}")


def _forward_single_use(c: Candidate) -> str | None:
    if c.forward is not None and c.forward.readers:
        return (f"What '{c.bn}' makes on its way to '{c.layer}' is also used elsewhere "
                f"({'; '.join(c.forward.readers)}); folding it into '{c.layer}' would change what that reads.")
    return None


def _forward_channels(c: Candidate) -> str | None:
    f = c.forward
    if f is not None and f.mismatch:
        return f"'{c.layer}' does not read the channels of '{c.bn}' one by one: {f.mismatch}."
    return None


def _forward_padding(c: Candidate) -> str | None:
    f = c.forward
    if f is None or f.partial or not (f.padding or f.transposed):
        return None
    shift = np.abs(c.affine().shift)
    if not np.any(shift > 0):
        return None  # a scale alone folds whatever the layer reads at its border
    worst = int(np.argmax(shift))
    if f.transposed:
        return (f"'{c.layer}' is a transposed convolution: how many taps reach an output varies with its "
                f"position (the border, and every stride), so the response to the shift of '{c.bn}' (up to "
                f"{shift[worst]:.3g}, channel {worst}) is no one bias per output channel; only a scale folds forward.")
    return (f"'{c.layer}' pads its input with zeros ({f.padding}): its border outputs read zeros where '{c.bn}' "
            f"gives its shift (up to {shift[worst]:.3g}, channel {worst}), while a folded bias adds the shift's "
            "response at every position, so the border outputs would change.")


def _forward_positive_scale(c: Candidate) -> str | None:
    f = c.forward
    if f is None or not f.partial:
        return None
    scale = c.affine().scale
    bad = np.flatnonzero(~(scale > 0))
    if bad.size:
        k = int(bad[0])
        return (f"{f.activation} comes between '{c.bn}' and '{c.layer}': "
                f"{f.activation}(s x + t) = s {f.activation}(x + t / s) needs s > 0, and channel {k} has s = "
                f"{scale[k]:.3g} ({bad.size} channel(s) not above 0).")
    return None


def _forward_finite(c: Candidate) -> str | None:
    return _finite_parameters(c) or _finite_weights(c)


def _forward_fits_dtype(c: Candidate) -> str | None:
    if c.kernel is None:
        return None
    dtype = str(c.compute_dtype)
    if dtype not in FLOAT_MAX:
        return f"'{c.layer}' computes in {dtype}; foldscope folds floating-point layers only."
    affine = forward_affine(c)
    if c.forward.partial:
        affine = Affine(affine.scale, np.zeros_like(affine.shift))
    kernel, bias = fold_forward(np.asarray(c.kernel, np.float64), c.bias, affine, c.kind, c.groups)
    for what, folded in (("kernel", np.abs(kernel).reshape(-1)), ("bias", np.abs(bias))):
        if folded.size and np.max(folded) > FLOAT_MAX[dtype]:
            return (f"Folding '{c.bn}' forward would make the {what} of '{c.layer}' reach {np.max(folded):.3g}, "
                    f"beyond the largest {dtype} ({FLOAT_MAX[dtype]:.3g}).")
    return None


def forward_affine(c: Candidate) -> Affine:
    """A forward candidate's map on the layer's input channels (each the map's channel it reads)."""
    affine = c.affine()
    features = c.forward.features if c.forward is not None else None
    return affine if features is None else taken(affine, features)


#: The concat direction's rule; each of its pieces is then judged by the frontend's backward rules.
CONCAT: tuple[Rule, ...] = (
    Rule("concat-inputs", "A map on a Concat splits into the layers making its inputs when each is read by the "
         "Concat alone and the Concat by the map alone.", _concat_inputs, "concat"),
)

#: The forward direction's shared rules (a frontend adds its own guards after the first). A map has a
#: forward alternative only when its output goes into a layer kind, through channel-keeping reshapes or,
#: for a partial fold, one positively homogeneous activation; else its candidate's ``elsewhere`` says why.
FORWARD_STRUCTURAL: tuple[Rule, ...] = (
    Rule("forward-single-use", "Forward: nothing else reads what lies between the map and the layer.",
         _forward_single_use, "forward"),
)
FORWARD_SEMANTIC: tuple[Rule, ...] = (
    Rule("forward-channels", "Forward: each input channel of the layer reads one channel of the map.",
         _forward_channels, "forward"),
    Rule("forward-padding", "Forward: a map with a shift folds only into a layer that reads no zero padding and "
         "is no transposed convolution.", _forward_padding, "forward"),
    Rule("forward-positive-scale", "Partial: every scale is above 0, so the activation lets the scale through.",
         _forward_positive_scale, "forward"),
    Rule("forward-finite", "Forward: the map's parameters and the layer's weights are finite.", _forward_finite,
         "forward"),
    Rule("forward-fits-dtype", "Forward: the folded kernel and bias fit the layer's compute dtype.",
         _forward_fits_dtype, "forward"),
)


def compose(*specific: Rule, omit: tuple[str, ...] = (), forward: Sequence[Rule] | None = None,
            concat: bool = False) -> tuple[Rule, ...]:
    """A frontend's rule list: the structural rules, its own guards, then the semantic rules; then,
    when the frontend folds in those directions, the concat rule (``concat``) and the forward rules
    with its own forward guards (``forward``: a sequence, empty when it has none) between the shared ones.

    ``omit`` names shared rules that can never object in the frontend's format (a TFLite
    model has no training-mode BatchNorm, a GraphDef op is never shared), so that its list,
    which the app shows, holds only checks that can decide something.
    """
    shared = {r.name for r in (*STRUCTURAL, *SEMANTIC, *FORWARD_STRUCTURAL, *FORWARD_SEMANTIC)}
    unknown = sorted(set(omit) - shared)
    if unknown:
        raise ValueError(f"Only shared rules can be omitted; {unknown} are not shared rules.")
    rules = (*(r for r in STRUCTURAL if r.name not in omit), *specific,
             *(r for r in SEMANTIC if r.name not in omit))
    if concat:
        rules += CONCAT
    if forward is not None:
        rules += (*(r for r in FORWARD_STRUCTURAL if r.name not in omit), *forward,
                  *(r for r in FORWARD_SEMANTIC if r.name not in omit))
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
    decomposed or a chain of maps. ``output_node`` is the node of the folded graph that produces
    what the BN produced (the layer itself unless the candidate said otherwise; a forward fold's: what
    the layer produced). ``bn_output``: the candidate's ``output_distribution`` for a folded pair.

    direction: how it folded (``DIRECTIONS``, and "partial" for a forward fold across an activation,
               whose shift stays as one Add); absorbs: the BatchNorms and other affine maps it holds.
    A forward fold's ``affine`` is the map on the layer's input channels; ``entry`` is the folded
    graph's node the layer's run starts at, ``source`` the original's node whose data input it is
    fed (the map's first), ``inner`` Σ|W||t| per output channel (the magnitude of the shift's
    response) and ``inner_terms`` Σ|W| T, T the map's ``terms`` (what the original rounds that response
    at: a shift that cancels, β ≈ s μ, is rounded at |β| + |s μ|, not at |t|), both for the layer's float
    tolerance. A concat split's ``pieces`` are one backward decision
    per producer, each with the ``window`` of the map's channels it took.
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
    direction: str = "backward"
    absorbs: dict[str, int] = field(default_factory=dict)
    pieces: list[Decision] = field(default_factory=list)
    window: tuple[int, int] | None = None
    entry: str | None = None
    source: str | None = None
    inner: np.ndarray | None = None
    inner_terms: np.ndarray | None = None

    @property
    def folded(self) -> bool:
        return self.status == "folded"

    @property
    def bn_nodes(self) -> list[str]:
        return self.bn.split("+")

    @property
    def layers(self) -> list[str]:
        """The layers whose weights the fold changed (a concat split's: one per piece)."""
        return [p.layer for p in self.pieces] if self.pieces else [self.layer]

    def to_dict(self) -> dict:
        return {"layer": self.layer, "bn": self.bn, "kind": self.op, "form": self.form, "status": self.status,
                "direction": self.direction if self.folded else None, "reason": self.reason, "rule": self.rule,
                **({"into": self.layers} if self.pieces else {}), **self.notes}


def decide(c: Candidate, rules: tuple[Rule, ...] = RULES) -> Decision:
    """Fold the map backward unless a rule objects; else try its ``alternatives`` in order (a concat
    split, a forward fold), each with its direction's rules. A folded pair keeps the candidate's
    notes; a skipped one's reason says why each direction tried does not apply, the rule that
    decided named first (the last objection that is no gate's, else the backward one)."""
    by = {d: tuple(r for r in rules if r.direction == d) for d in DIRECTIONS}
    tried = [_decide(c, by["backward"])]
    if tried[0].folded:
        return tried[0]
    for alt in c.other_directions():
        if not by[alt.direction]:
            continue  # a direction the frontend does not fold in
        found = _decide_split(alt, by) if alt.direction == "concat" else _decide(alt, by[alt.direction])
        if found.folded:  # the row says why the directions before it did not apply
            found.notes.update({f"not_{d.direction}": d.reason for d in tried})
            return found
        tried.append(found)
    elsewhere = {d: why for d, why in c.elsewhere.items() if by[d]}
    if len(tried) == 1 and not elsewhere:
        return tried[0]
    gates = {r.name for r in rules if r.gate}
    primary = next((d for d in reversed(tried) if d.rule not in gates), tried[0])
    named = {"backward": "Backward", "concat": "Split over its Concat", "forward": "Forward"}
    reasons = [(d.direction, d.reason) for d in [primary, *(d for d in tried if d is not primary)]]
    reason = " ".join(f"{named[direction]}: {why}" for direction, why in [*reasons, *elsewhere.items()])
    return Decision(c.layer, c.bn, c.op, c.kind.family if c.kind else None, "skipped", reason, primary.rule,
                    notes=dict.fromkeys(c.notes), form=c.form, direction=primary.direction, absorbs=c.counted())


def _decide(c: Candidate, rules: tuple[Rule, ...]) -> Decision:
    """One direction: the first objection decides."""
    family = c.kind.family if c.kind else None
    for rule in rules:
        reason = rule.check(c)
        if reason is not None:
            return Decision(c.layer, c.bn, c.op, family, "skipped", reason, rule.name,
                            notes=dict.fromkeys(c.notes), form=c.form, direction=c.direction, absorbs=c.counted())
    if c.direction == "forward":
        return _forward_decision(c)
    return Decision(c.layer, c.bn, c.op, family, "folded", affine=c.folded_affine(), notes=dict(c.notes),
                    output_node=c.output_node or c.layer, form=c.form, bn_output=c.output_distribution(),
                    absorbs=c.counted(), window=c.window)


def _forward_decision(c: Candidate) -> Decision:
    """A forward fold: the map on the layer's input channels, and its shift's response's magnitude."""
    f = c.forward
    affine = forward_affine(c)
    weights = np.abs(np.asarray(c.kernel, np.float64))
    ones = np.ones_like(affine.scale)
    _, inner = fold_forward(weights, None, Affine(ones, np.abs(affine.shift)), c.kind, c.groups)
    terms = np.abs(affine.shift) if affine.terms is None else np.maximum(affine.terms, np.abs(affine.shift))
    _, inner_terms = fold_forward(weights, None, Affine(ones, terms), c.kind, c.groups)
    notes = {**c.notes, "folded_forward": (f"scale into '{c.layer}', shift kept as one Add before {f.activation}"
                                           if f.partial else f"into the input side of '{c.layer}'")}
    return Decision(c.layer, c.bn, c.op, c.kind.family, "folded", affine=affine, notes=notes,
                    output_node=c.output_node or c.layer, form=c.form, direction="partial" if f.partial else "forward",
                    absorbs=c.counted(), entry=f.entry or c.layer, source=f.source, inner=inner,
                    inner_terms=inner_terms)


def _decide_split(c: Candidate, by: dict[str, tuple[Rule, ...]]) -> Decision:
    """A concat split: its own rule, then every piece by the backward rules (all must fold)."""
    found = _decide(c, by["concat"])
    if not found.folded:
        return found
    pieces = []
    for piece in c.pieces:
        d = _decide(piece, by["backward"])
        if not d.folded:
            return Decision(c.layer, c.bn, c.op, None, "skipped",
                            f"its piece for '{piece.layer}' (channels {piece.window[0]} to {piece.window[1] - 1}) "
                            f"cannot fold: {d.reason}", d.rule, notes=dict.fromkeys(c.notes), form=c.form,
                            direction="concat", absorbs=c.counted())
        pieces.append(d)
    notes = {**c.notes, "split_into": ", ".join(f"'{p.layer}' (channels {p.window[0]}-{p.window[1] - 1})" for p in pieces)}
    return Decision(c.layer, c.bn, c.op, None, "folded", affine=c.affine(), notes=notes,
                    output_node=c.output_node or c.layer, form=c.form, direction="concat", absorbs=c.counted(),
                    pieces=pieces)


def chosen(c: Candidate, d: Decision) -> Candidate:
    """The candidate a folded decision took: ``c`` itself, or the alternative of its direction."""
    want = "forward" if d.direction == "partial" else d.direction
    if want == "backward":
        return c
    return next(a for a in c.other_directions() if a.direction == want)


def fold_notes(decisions: Sequence[Decision]) -> dict[str, str]:
    """Node -> what the fold did to it, in words: each folded layer, the BN nodes it absorbed,
    and the BN nodes left with the rule that objected (for hover texts and node attributes)."""
    found: dict[str, str] = {}
    for d in decisions:
        if not d.folded:
            found.update({bn: f"not folded ({d.rule}): {d.reason}" for bn in d.bn_nodes})
            continue
        for layer in d.layers:
            found[layer] = {"forward": f"folded: {d.bn} is folded into its input side (scale and shift per input channel)",
                            "partial": f"folded: the scale of {d.bn} is folded into its input side; its shift stays "
                                       "as one Add"}.get(d.direction, f"folded: {d.bn} is folded into it (scale and "
                                                                      "shift per output channel)")
        into = ", ".join(d.layers)
        found.update({bn: f"folded away into {into}" for bn in d.bn_nodes})
    return found
