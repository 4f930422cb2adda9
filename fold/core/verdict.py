"""The verdict's arithmetic: every folded layer judged at its own scale, every other tensor against
what it inherits. Pure NumPy; ``fold.engine.comparison`` runs the models and feeds the figures in here.

1. A folded layer, at its own scale. It is run alone on the very inputs the original layer
   received inside the original model (so no upstream float noise is charged to it) and
   compared, element by element, with the output of the BatchNorm it absorbed. Element i of
   output channel c passes when

       |folded_i - bn_i| <= 2 λ √n u A_i + u_p A_i + 2 u |bn_i| + 8 u |s_c| |y_i| + (8 u + 7 u_p) T_c

   A_i = Σ |W'| |x| is the sum of the magnitudes of the terms that make the element (the layer
   run with |W'|, no bias, on |x|), n the layer's reduction length (kernel taps times input
   channels per group), u the unit roundoff of the compute dtype (2^-24 for float32), u_p that of
   the precision the folded weights and bias are stored in (float16 behind a Cast: 2^-11; else
   u), y the original layer's output, s the BN's scale, T = |β| + |μ s| + |b s| the magnitudes
   its shift and the folded bias are made of (the original's own BN parameters, in ``check``
   too) and λ = 10. Both models round an n-term sum: Higham and Mary's probabilistic bound
   (SIAM J. Sci. Comput. 2019) puts each within λ √n u A with probability 1 - 2n exp(-λ²/2). The
   rest is every correct way to compute the fold, first order in u (docs/verification.md derives
   each term): the original's BN (s rounded 3 times, s y and β - s μ once each, the add), the
   candidate's s (3 u, coherent on a channel), W' = W s rounded once per weight in its storage
   (u_p A) and b' = β - s μ + s b in any order in its storage (7 u_p T). A shift that cancels
   (PaddleOCR v3's 'Conv_44': β = -0.9533, s μ = -0.9541, b' = 0.0008) leaves a folded bias far
   smaller than what a float32 folder rounds to make it: u |b'| alone would call such a correct
   fold wrong. A chain of k maps charges the BN's own rounding k times. A forward fold (the map
   before the layer, moved into its input side) is run from the map's input and compared with the
   original layer's output; the map's shift moves into the layer's sum, whose terms grow by its
   response I = Σ|W||t| (``layer_tolerance``'s ``inner``), and its T is Σ|W| (|β| + |s μ|) + |b'|
   (the original rounds the shift at its own terms on every tap alike). A layer's max rel diff is the largest,
   over its output channels, of the channel's max |diff| divided by the channel's own max |bn|;
   there is no floor tied to 1.0.
2. Exercised channels. A folded output channel whose response does not vary over the inputs
   used (its max - min stays within its tolerance: the input it reads is dead or saturated)
   cannot reveal an error in its kernel, unless that kernel is all zero (then only its bias
   can be wrong, and that is checked). Since W'x + b' = BN(Wx + b) for any x, every folded layer
   is also judged on a synthetic batch that exercises every input channel
   (``fold.core.verification.synthetic_batch``, scaled by ``synthetic_gain``); channels neither
   batch exercised are listed as not exercised, and a folded layer none of whose channels is
   exercised makes the verdict inconclusive.
3. Outputs and the other tensors both models share are compared end to end, per channel,
   against a budget of what they inherit: the change that float-sized errors in the layers
   before them make. ``fold.engine.comparison`` measures it with a nudged copy of the checked model:
   every weight of every conv and dense kernel multiplied by 1 ± ρ_c (a seeded random sign per
   weight, so that the nudge is as incoherent as rounding; one sign per channel would cancel
   where two branches meet), with ρ_c the larger of NUDGE √n u (a float sum of n products
   carries about √n u of relative error per term) and, for a folded layer, NUDGE √n d_c / A_c
   (d_c the max |diff| its own check measured on channel c, at most its tolerance, A_c the
   channel's max Σ|W'||x|: the nudge is as large as the float error the fold really made there;
   an error past the layer's tolerance is no float error, and what it does downstream must
   show), and every bias moved by
   ± NUDGE max(u (|b_c| + p_c), d_c) (p_c a folded layer's channel peak, d_c as above): the
   rounding of a BN's shift is the same on every element of its channel (a channel whose input
   is dead carries nothing else), and such a coherent error grows downstream where incoherent
   noise averages out. A second copy is drawn when some tensor is past its budget after the
   first (a single draw can miss a channel, most often in a small tensor: a global pooling's
   few values; another draw only widens a budget, so where every tensor is within it, none can
   change the verdict); m_c is the larger move. Channel c of a tensor passes when

       max |folded - original|_c <= BUDGET max(m_c, r p_c) + FLOOR u p_c

   where m_c = max |nudged - folded|_c, p_c = max |original|_c and r the median over the
   tensor's channels of m_c / p_c: a channel the nudge happens to miss (a ReLU channel alive at
   a single element, where the sign of a value near 0 decides) still gets the tensor's typical
   noise at its own scale. The nudged model is only built when some tensor moved past its floor.
4. The verdict: FAIL when any folded layer, output or shared tensor fails; INCONCLUSIVE when
   nothing failed but some folded layer had no exercised channel; PASS otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Unit roundoff (half the machine epsilon) of each compute dtype.
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}
#: λ of the probabilistic rounding bound λ √n u Σ|w||x|.
LAMBDA = 10.0
#: Every weight is nudged by this many times the relative error per term of rule 3.
NUDGE = 4.0
#: A tensor may move by this many times what the nudge moves it.
BUDGET = 8.0
#: ...plus this many units of roundoff of its own channel peak.
FLOOR = 64.0

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
#: What the verdicts are called in text (the report's JSON says "pass", "fail", "inconclusive").
VERDICTS = {PASS: "PASS", FAIL: "FAIL", INCONCLUSIVE: "INCONCLUSIVE"}


def unit_roundoff(dtype: str) -> float:
    """u of a float dtype name (float32 for anything unknown: the common compute dtype)."""
    return UNIT_ROUNDOFF.get(str(dtype), UNIT_ROUNDOFF["float32"])


def as_shaped(array: np.ndarray, shape: tuple) -> np.ndarray:
    """``array`` reshaped to ``shape`` when the two differ only by axes of size 1 (an ExpandDims or a
    Squeeze, which keep every element in its channel); otherwise as it is."""
    array = np.asarray(array)
    if array.shape != tuple(shape) and [n for n in array.shape if n != 1] == [n for n in shape if n != 1]:
        return array.reshape(shape)
    return array


def as_channels(array: np.ndarray, axis: int) -> tuple[np.ndarray, int]:
    """``array`` in float32 or float64 (narrower floats widen to float32, the rest to float64) with
    its channel axis made non-negative; an array of rank 0 or 1 is (elements, 1 channel); a complex
    one (an FFT's) is its real parts then its imaginary parts along axis 0."""
    a = np.asarray(array)
    if a.dtype.kind == "c":
        a = np.concatenate([np.atleast_1d(a.real), np.atleast_1d(a.imag)])
    a = a.astype(a.dtype if a.dtype in (np.float32, np.float64) else
                 np.float32 if a.dtype.kind == "f" else np.float64, copy=False)
    if a.ndim <= 1:
        return a.reshape(-1, 1), 1
    return a, axis % a.ndim


#: Elements per block that ``blocks`` cuts tensors into: a block's arrays and the temporaries of a
#: check stay in the processor's cache (on whole tensors, each of its dozen passes goes to memory).
BLOCK = 1 << 16


def blocks(axis: int, *arrays: np.ndarray):
    """Arrays of one shape, channels on ``axis``, viewed as (before, channels, after) and cut into
    blocks of about BLOCK elements along the other two axes: yields tuples of blocks, channels on
    axis 1. Per-channel figures of the blocks, accumulated, are those of the whole arrays."""
    shape = arrays[0].shape
    before, channels = int(np.prod(shape[:axis], dtype=np.int64)), shape[axis]
    after = int(np.prod(shape[axis + 1:], dtype=np.int64))
    views = [a.reshape(before, channels, after) for a in arrays]
    if channels * after >= BLOCK:
        rows, cols = 1, max(1, BLOCK // max(channels, 1))
    else:
        rows, cols = max(1, BLOCK // max(channels * after, 1)), after
    for i in range(0, before, rows):
        for j in range(0, after, cols):
            yield tuple(v[i:i + rows, :, j:j + cols] for v in views)


def per_channel(shape: tuple[int, ...], axis: int, values: np.ndarray) -> np.ndarray:
    """A per-channel vector laid out to broadcast against an array of ``shape`` along ``axis``."""
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return np.asarray(values).reshape(view)


def abs_diff(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """|reference - other| (float64, or float32 when both are: the difference of two float32
    values is within one rounding of exact), where matching non-finite values (NaN and NaN, the
    same inf) count as equal and any other non-finite mismatch counts as an infinite difference."""
    a, b = np.asarray(reference), np.asarray(other)
    wide = np.float32 if a.dtype == b.dtype == np.float32 else np.float64
    a, b = a.astype(wide, copy=False), b.astype(wide, copy=False)
    with np.errstate(invalid="ignore", over="ignore"):
        fast = np.abs(a - b)
    if np.isfinite(fast).all():
        return fast
    finite = np.isfinite(a) & np.isfinite(b)
    agree = (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(finite, np.abs(a - b), np.where(agree, 0.0, np.inf))


def bn_step(source: np.ndarray, reference: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(|s|, |t|) per channel of an affine map ``reference = s * source + t`` read off the two tensors
    (for the tolerance of a fold whose BN parameters are unknown): |s| from their ranges."""
    others = tuple(i for i in range(source.ndim) if i != axis)
    spread = np.ptp(source, axis=others).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(spread > 0, np.ptp(reference, axis=others) / np.where(spread > 0, spread, 1.0), 0.0)
    shift = np.abs(reference - per_channel(reference.shape, axis, scale) * source).max(axis=others)
    return np.nan_to_num(scale, posinf=0.0), np.nan_to_num(shift, posinf=0.0)


def layer_tolerance(magnitude: np.ndarray, reference: np.ndarray, bias: np.ndarray | None, reduction: int,
                    dtype: str, axis: int, source: np.ndarray | None = None, scale: np.ndarray | None = None,
                    terms: np.ndarray | None = None, stored: str | None = None, inner: np.ndarray | None = None,
                    steps: int = 1) -> np.ndarray:
    """The elementwise tolerance of a folded layer's output, as rule 1 says (the shape of ``reference``,
    whose channels are on ``axis``):

        2 λ √n u A + u_p A + 2 u |bn| + 8 k u |s| |y| + (8 k u + 7 u_p) T

    ``magnitude`` is A = Σ|W'||x|, ``dtype`` the compute dtype (u), ``stored`` the dtype the folded
    weights and bias are stored in when it is narrower (u_p; else u_p = u), ``source`` the original
    layer's output y, ``scale`` and ``terms`` the BN's |s| and T = |β| + |μ s| + |b s| per channel,
    ``steps`` the k maps the original computes one after the other (each rounds its output once more).
    Without y, |s||y| is bounded by A + T; without the BN's parameters, |s| and |t| are read off y
    and bn (``bn_step``), and without either T is the folded ``bias``. A forward fold's ``inner``, the
    magnitude Σ|W||t| of its shift's response per output channel, joins A (the original's sum holds
    those terms, the folded bias is made of them) with 8 u more of A for the map's own rounding; its
    ``terms`` are then Σ|W| T_map + |b'|, T_map the map's own."""
    u = unit_roundoff(dtype)
    u_p = max(u, unit_roundoff(stored)) if stored is not None else u
    # in place, a pass over the elements each (u is a power of 2: 8 u |y| |s| = |y| (8 u |s|) exactly)
    a = magnitude
    if inner is not None:
        inner = np.nan_to_num(np.asarray(inner, dtype=np.float64).reshape(-1))
        shape = np.shape(magnitude)
        a = np.add(magnitude, per_channel(shape, axis, inner if inner.size == shape[axis] else
                                          np.full(shape[axis], inner.max())), dtype=np.float64)
    tol = np.multiply(a, 2 * LAMBDA * np.sqrt(max(int(reduction), 1)) * u + u_p, dtype=np.float64)
    term = np.abs(reference, dtype=np.float64)
    term *= 2 * u
    tol += term
    known = source is not None and source.shape == reference.shape
    if known and (scale is None or terms is None):
        scale, terms = bn_step(source, reference, axis)
    if terms is None:
        terms = np.zeros(tol.shape[axis]) if bias is None else bias
    terms = np.nan_to_num(np.abs(np.asarray(terms, dtype=np.float64)).reshape(-1))
    if terms.size != tol.shape[axis]:  # laid out on another axis than the one compared: its largest, everywhere
        terms = np.full(tol.shape[axis], terms.max(initial=0.0))
    shift = per_channel(tol.shape, axis, terms)
    if known:  # the coherent rounding of s in both models, and of the BN's product s y
        np.abs(source, out=term, dtype=np.float64)
        term *= per_channel(tol.shape, axis, 8 * steps * u * np.abs(np.asarray(scale, dtype=np.float64)))
    else:  # |s||y| <= |W' x| + |s b| <= A + T
        np.add(a, shift, out=term, dtype=np.float64)
        term *= 8 * steps * u
    tol += term
    if inner is not None:  # the forward map's s, rounded in the original, on every term of the sum
        np.multiply(a, 8 * u, out=term, dtype=np.float64)
        tol += term
    tol += (8 * steps * u + 7 * u_p) * shift
    if not np.isfinite(tol).all():  # a non-finite value has no tolerance: it must agree exactly
        tol = np.nan_to_num(tol, nan=0.0, posinf=0.0)
    return tol


#: The synthetic batch (rule 2) is scaled so that each output channel's response reaches this many
#: units of roundoff of what its shift is made of: a 1 % kernel error then moves it past its tolerance.
REACH = 4000.0
#: ...but a float16 batch no further than the response of the largest channel stays below this.
FLOAT16_REACH = 1000.0


def synthetic_gain(rows: np.ndarray, shift: np.ndarray, dtype: str, stored: str | None = None) -> float:
    """How much larger than unit scale a folded layer's synthetic batch is drawn (rule 2): the largest,
    over the output channels c with a nonzero kernel row w_c, of REACH u_p T_c / |w_c|_2 (a response of
    about |w_c|_2 per unit of input scale must reach REACH u_p T_c, T_c the magnitudes its shift is made
    of), at least 1; for a float16 batch at most FLOAT16_REACH / max_c |w_c|_1 (no overflow)."""
    rows = np.asarray(rows)
    l2, l1 = np.empty(rows.shape[0]), np.empty(rows.shape[0])
    step = max(1, BLOCK // max(rows.shape[1] if rows.ndim > 1 else 1, 1))
    for i in range(0, rows.shape[0], step):  # a block of rows in float64 at a time, not a copy of the kernel
        w = np.abs(rows[i:i + step].astype(np.float64))
        l2[i:i + step], l1[i:i + step] = np.sqrt(np.square(w).sum(axis=1)), w.sum(axis=1)
    live = (l2 > 0) & np.isfinite(l2)
    if not live.any():
        return 1.0
    u = unit_roundoff(dtype)
    u_p = max(u, unit_roundoff(stored)) if stored is not None else u
    t = np.nan_to_num(np.abs(np.asarray(shift, dtype=np.float64)).reshape(-1), posinf=0.0)
    t = t if t.shape == l2.shape else np.zeros_like(l2)
    gain = max(1.0, float(np.max(REACH * u_p * t[live] / l2[live])))
    if dtype == "float16":
        gain = min(gain, max(1.0, FLOAT16_REACH / float(l1[live].max())))
    return gain


@dataclass
class ChannelStats:
    """Per-channel figures of one compared tensor, accumulated over batches.

    diff: max |difference|; peak: max |reference|; low, high: the reference's range;
    ratio: max |difference| / tolerance (elementwise tolerance given); tol_max: the largest
    tolerance; tol_at_ratio: the tolerance where ``ratio`` was reached; nudged: max |nudged -
    folded|; terms: max Σ|W'||x| (a folded layer).
    """

    channels: int
    diff: np.ndarray = field(init=False)
    diff_sum: float = 0.0
    count: int = 0
    peak: np.ndarray = field(init=False)
    low: np.ndarray = field(init=False)
    high: np.ndarray = field(init=False)
    ratio: np.ndarray = field(init=False)
    tol_at_ratio: np.ndarray = field(init=False)
    tol_max: np.ndarray = field(init=False)
    nudged: np.ndarray = field(init=False)
    terms: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = self.channels
        self.diff, self.peak = np.zeros(n), np.zeros(n)
        self.low, self.high = np.full(n, np.inf), np.full(n, -np.inf)
        self.ratio, self.tol_at_ratio, self.tol_max = np.zeros(n), np.zeros(n), np.zeros(n)
        self.nudged, self.terms = np.zeros(n), np.zeros(n)

    def add(self, reference: np.ndarray, other: np.ndarray, axis: int, tolerance: np.ndarray | None = None,
            terms: np.ndarray | None = None) -> None:
        """One batch (arrays of one shape, channels on ``axis``, as ``as_channels`` gives them);
        ``tolerance`` elementwise, and ``terms`` (Σ|W'||x| of a folded layer) likewise."""
        others = tuple(i for i in range(reference.ndim) if i != axis)
        if terms is not None and terms.size:
            self.terms = np.maximum(self.terms, np.nan_to_num(terms.max(axis=others), posinf=0.0))
        if np.size(reference) == 0:
            return
        diff, most = _abs_diff_and_max(reference, other, others)
        self.diff = np.maximum(self.diff, most)
        self.diff_sum += float(diff.sum(dtype=np.float64))
        self.count += diff.size
        low, high = reference.min(axis=others), reference.max(axis=others)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            finite = np.where(np.isfinite(reference), reference, np.nan)
            with np.errstate(invalid="ignore"), _quiet_nan():
                low, high = np.nanmin(finite, axis=others), np.nanmax(finite, axis=others)
        self.peak = np.fmax(self.peak, np.fmax(np.abs(low), np.abs(high)))
        self.low, self.high = np.fmin(self.low, low), np.fmax(self.high, high)
        if tolerance is None:
            return
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = diff / tolerance  # inf past a zero tolerance; NaN (no diff, no tolerance) counts as 0
        at = np.fmax.reduce(ratio, axis=others)
        at[np.isnan(at)] = 0.0
        better = at > self.ratio
        if better.any():
            tol_at = np.max(tolerance, axis=others, initial=0.0, where=ratio == per_channel(ratio.shape, axis, at))
            self.ratio = np.where(better, at, self.ratio)
            self.tol_at_ratio = np.where(better, tol_at, self.tol_at_ratio)
        self.tol_max = np.maximum(self.tol_max, tolerance.max(axis=others))

    def merged(self, other: ChannelStats) -> ChannelStats:
        """The figures of both sets of batches together (a folded layer's recorded and synthetic batches)."""
        both = ChannelStats(self.channels)
        for name in ("diff", "peak", "high", "tol_max", "nudged", "terms"):
            setattr(both, name, np.fmax(getattr(self, name), getattr(other, name)))
        both.low = np.fmin(self.low, other.low)
        better = other.ratio > self.ratio
        both.ratio = np.where(better, other.ratio, self.ratio)
        both.tol_at_ratio = np.where(better, other.tol_at_ratio, self.tol_at_ratio)
        both.diff_sum, both.count = self.diff_sum + other.diff_sum, self.count + other.count
        return both

    def add_nudged(self, nudged: np.ndarray, folded: np.ndarray, axis: int) -> None:
        """One batch of the nudged model's output against the folded model's (channels on ``axis``)."""
        diff = abs_diff(folded, nudged)
        if diff.size:
            others = tuple(i for i in range(diff.ndim) if i != axis)
            self.nudged = np.maximum(self.nudged, np.nan_to_num(diff.max(axis=others), posinf=0.0))

    @property
    def float_error(self) -> np.ndarray:
        """The measured max |diff| per channel, at most the tolerance (what float error can account for)."""
        return np.nan_to_num(np.minimum(self.diff, self.tol_max), posinf=0.0)

    @property
    def max_abs_diff(self) -> float:
        return float(self.diff.max(initial=0.0))

    @property
    def mean_abs_diff(self) -> float:
        return self.diff_sum / self.count if self.count else 0.0

    @property
    def relative(self) -> np.ndarray:
        """Each channel's max |diff| over its own max |reference| (the diff itself where that is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.peak > 0, self.diff / np.where(self.peak > 0, self.peak, 1.0), self.diff)

    @property
    def max_rel_diff(self) -> float:
        return float(self.relative.max(initial=0.0))

    def floor(self, dtype: str) -> np.ndarray:
        """Rule 3's floor: FLOOR units of roundoff of each channel's own peak."""
        return FLOOR * unit_roundoff(dtype) * self.peak

    def varies(self) -> np.ndarray:
        """Channels whose reference moves by more than their tolerance (rule 2)."""
        spread = np.where(np.isfinite(self.high - self.low), self.high - self.low, 0.0)
        return spread > self.tol_max


def _abs_diff_and_max(reference: np.ndarray, other: np.ndarray, others: tuple[int, ...]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``abs_diff`` and its maximum over ``others`` per channel, in one pass fewer where every value is
    finite (then the plain |reference - other| is it, and its maxima say so)."""
    a, b = np.asarray(reference), np.asarray(other)
    wide = np.float32 if a.dtype == b.dtype == np.float32 else np.float64
    with np.errstate(invalid="ignore", over="ignore"):
        fast = np.subtract(a, b, dtype=wide)
        np.abs(fast, out=fast)
        most = fast.max(axis=others)
    if np.isfinite(most).all():
        return fast, most
    diff = abs_diff(a, b)
    return diff, diff.max(axis=others)


class _quiet_nan:
    """np.nanmax on an all-NaN column warns; an all-NaN channel simply has no peak."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


@dataclass
class TensorCheck:
    """One compared tensor: a folded layer against the BN it absorbed (``bn`` set), or a tensor
    both models have (an output or a shared tensor, ``bn`` None).

    layer:   the node of the checked (folded) model that produced it.
    tensor:  the original model's node it was compared with (the BN, or the same tensor).
    role:    "folded", "output" or "shared".
    mode:    "own inputs" (a folded layer fed what the original layer received), "own and synthetic
             inputs" (and a synthetic batch, rule 2) or "end to end".
    atol:    the tolerance the worst element (folded) or channel (others) was judged against.
    margin:  the worst |diff| / tolerance reached (above 1: failed).
    not_exercised: output channels whose response the inputs left constant (folded layers).
    exercised: how many channels were exercised (folded layers; None for other tensors).
    synthetic: exercised channels that only the synthetic batch exercised (rule 2; folded layers).
    """

    layer: str
    bn: str | None
    tensor: str
    role: str
    mode: str
    max_abs_diff: float
    max_rel_diff: float
    atol: float
    passed: bool
    worst_channel: int
    channels: int
    margin: float = 0.0
    not_exercised: list[int] = field(default_factory=list)
    exercised: int | None = None
    synthetic: list[int] = field(default_factory=list)

    @property
    def conclusive(self) -> bool:
        """A folded layer some channel of which was exercised (or that had nothing to exercise)."""
        return self.exercised is None or self.exercised > 0 or not self.not_exercised

    def to_dict(self) -> dict:
        return {"layer": self.layer, "bn": self.bn, "tensor": self.tensor, "role": self.role, "mode": self.mode,
                "max_abs_diff": self.max_abs_diff, "max_rel_diff": self.max_rel_diff, "atol": self.atol,
                "passed": self.passed, "margin": self.margin, "worst_channel": self.worst_channel,
                "channels": self.channels, "exercised": self.exercised, "not_exercised": self.not_exercised,
                "synthetic": self.synthetic}


def judge_layer(layer: str, bn: str, tensor: str, stats: ChannelStats, zero_kernel: np.ndarray,
                recorded: np.ndarray | None = None) -> TensorCheck:
    """Rule 1 and 2 for a folded layer whose batches have been added with their tolerances;
    ``recorded``: the channels its recorded inputs exercised, when a synthetic batch was added after them."""
    passed = bool(np.all(stats.ratio <= 1.0))
    worst = int(np.argmax(stats.ratio)) if stats.channels else 0
    exercised = stats.varies() & ~zero_kernel
    quiet = [int(c) for c in np.flatnonzero(~stats.varies() & ~zero_kernel)]
    synthetic = [] if recorded is None else [int(c) for c in np.flatnonzero(exercised & ~recorded)]
    mode = "own inputs" if recorded is None else "own and synthetic inputs"
    return TensorCheck(layer, bn, tensor, "folded", mode, stats.max_abs_diff, stats.max_rel_diff,
                       float(stats.tol_at_ratio[worst]) if stats.channels else 0.0, passed, worst, stats.channels,
                       float(stats.ratio.max(initial=0.0)), quiet, int(exercised.sum()), synthetic)


def tensor_budget(stats: ChannelStats, dtype: str, atol: float | None = None) -> np.ndarray:
    """Rule 3's per-channel budget (or the user's absolute tolerance for every channel)."""
    if atol is not None:
        return np.full(stats.channels, float(atol))
    alive = stats.peak > 0
    typical = float(np.median(stats.nudged[alive] / stats.peak[alive])) if alive.any() else 0.0
    return BUDGET * np.maximum(stats.nudged, typical * stats.peak) + stats.floor(dtype)


def within_floor(stats: ChannelStats, dtype: str) -> bool:
    """Whether the tensor moved by no more than its floor (then no nudge is needed to judge it)."""
    return bool(np.all(stats.diff <= stats.floor(dtype)))


def judge_tensor(layer: str, tensor: str, role: str, stats: ChannelStats, dtype: str,
                 atol: float | None = None) -> TensorCheck:
    """Rule 3 for an output or shared tensor."""
    budget = tensor_budget(stats, dtype, atol)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(stats.diff == 0, 0.0, stats.diff / budget)
    worst = int(np.argmax(ratio)) if stats.channels else 0
    passed = bool(np.all(stats.diff <= budget))
    return TensorCheck(layer, None, tensor, role, "end to end", stats.max_abs_diff, stats.max_rel_diff,
                       float(budget[worst]) if stats.channels else 0.0, passed, worst, stats.channels,
                       float(ratio.max(initial=0.0)))


def verdict(checks: list[TensorCheck]) -> str:
    """Rule 4."""
    if any(not c.passed for c in checks):
        return FAIL
    if any(c.role == "folded" and not c.conclusive for c in checks):
        return INCONCLUSIVE
    return PASS


def nudge_rho(stats: ChannelStats | None, reduction: int, dtype: str, channels: int) -> np.ndarray:
    """Rule 3's ρ_c for one layer's output channels (``stats``: its own check, when it was folded)."""
    root = np.sqrt(max(int(reduction), 1))
    rho = np.full(channels, NUDGE * root * unit_roundoff(dtype))
    if stats is not None and stats.channels == channels:
        with np.errstate(divide="ignore", invalid="ignore"):
            measured = np.where(stats.terms > 0, NUDGE * root * stats.float_error / stats.terms, 0.0)
        rho = np.maximum(rho, np.nan_to_num(measured, posinf=0.0))
    return rho


def nudge_bias(bias: np.ndarray | None, stats: ChannelStats | None, dtype: str, channels: int,
               rng: np.random.Generator) -> np.ndarray | None:
    """Rule 3's nudged bias: b_c ± NUDGE max(u (|b_c| + p_c), d_c), a random sign per channel (None: no bias)."""
    if bias is None:
        return None
    b = np.asarray(bias, dtype=np.float64).reshape(-1)
    known = stats is not None and stats.channels == b.shape[0]
    peak, diff = (stats.peak, stats.float_error) if known else (0.0, 0.0)
    step = NUDGE * np.maximum(unit_roundoff(dtype) * (np.abs(b) + peak), diff)
    return b + step * rng.choice((-1.0, 1.0), size=b.shape)


def nudge_factors(rho: np.ndarray, signs_like: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1 ± ρ for every weight: ``rho`` laid out like the kernel (or broadcasting to it), a random sign
    per weight."""
    return _factors(rng.integers(0, 2, size=np.shape(signs_like)), rho)


def _factors(bits: np.ndarray, rho: np.ndarray) -> np.ndarray:
    return np.where(bits == 1, 1.0 + rho, 1.0 - rho)


#: Weights nudged at a time by ``nudge_kernel`` (an even number: see ``_Bits``).
NUDGE_BLOCK = 1 << 16


def nudge_kernel(kernel: np.ndarray, rho: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``kernel`` times ``nudge_factors(rho, kernel, rng)``, the product in float64 stored in the
    kernel's dtype: the same draw and the same numbers, made NUDGE_BLOCK weights at a time (no
    float64 array of the kernel's size: a 256 MiB kernel would take 1.5 GiB)."""
    w = np.asarray(kernel)
    out = np.empty(w.shape, w.dtype)
    bits = _Bits(rng, w.size)
    for key in _slabs(w.shape, NUDGE_BLOCK):
        part = w[key]
        sub = tuple(k if n > 1 else (0 if isinstance(k, int) else slice(0, 1)) for k, n in zip(key, np.shape(rho)))
        factors = _factors(bits.take(part.size).reshape(part.shape), np.asarray(rho)[sub])
        np.multiply(part, factors, out=out[key], dtype=np.float64, casting="unsafe")
    return out


def _slabs(shape: tuple[int, ...], limit: int, prefix: tuple = ()):
    """Keys of consecutive blocks of an array of ``shape`` in C order (whole indices, then a slice of
    the next axis), each of at most ``limit`` elements unless one entry of the last axis is larger."""
    if not shape:
        yield prefix
        return
    inner = int(np.prod(shape[1:], dtype=np.int64))
    if inner <= limit or len(shape) == 1:
        step = max(1, limit // max(inner, 1))
        for i in range(0, shape[0], step):
            yield (*prefix, slice(i, i + step))
        return
    for i in range(shape[0]):
        yield from _slabs(shape[1:], limit, (*prefix, i))


class _Bits:
    """``rng.integers(0, 2, size=total)``'s values handed out a few at a time. They are drawn in pieces
    of an even size, which gives the same numbers as one draw of all (numpy makes two such values of
    each 64 random bits it takes), and leaves the generator where that one draw would."""

    def __init__(self, rng: np.random.Generator, total: int):
        self.rng, self.left, self.buffer = rng, total, np.empty(0, np.int64)

    def take(self, n: int) -> np.ndarray:
        while self.buffer.size < n:
            piece = min(self.left, max(NUDGE_BLOCK, n - self.buffer.size + 1) // 2 * 2)
            self.buffer = np.concatenate([self.buffer, self.rng.integers(0, 2, size=piece)])
            self.left -= piece
        found, self.buffer = self.buffer[:n], self.buffer[n:]
        return found
