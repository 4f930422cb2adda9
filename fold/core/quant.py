"""Pure NumPy weight quantization math: what folding a BatchNorm does to an int8 kernel.

Symmetric int8, round to nearest, clipped to [-127, 127], with one scale per tensor or per
output channel (along the kinds table's axes)::

    scale = max|w| / 127            q(w) = clip(round(w / scale), -127, 127) * scale

The signal-to-quantization-noise ratio of output channel c, in dB::

    SQNR_c = 10 log10( sum w_c^2 / sum (w_c - q(w)_c)^2 )

A layer's figure is the mean over its output channels of SQNR_c (a whole-tensor SQNR would be
dominated by the very channel a tiny BN variance blew up, hiding the collapse of the others),
and the worst channel is reported beside it. A channel quantized exactly (zero error) counts
as ``SQNR_CAP`` dB; an all-zero channel has no signal and is left out.

Folding multiplies output channel c by s_c = gamma_c / sqrt(var_c + eps). Per-channel scales
follow it exactly, q(W * s) = q(W) * s, so per-channel quantization loses nothing by folding;
one per-tensor scale is set by the largest channel, and a huge s_c crushes every other channel.

Cross-layer equalization (Nagel et al., "Data-Free Quantization Through Weight Equalization
and Bias Correction", ICCV 2019, section 4.1), for layer 1 -> ReLU (or nothing) -> layer 2:
with r1_i the range of output channel i of layer 1 and r2_i that of input channel i of
layer 2, s_i = sqrt(r1_i * r2_i) / r2_i; layer 1's channel i (kernel and bias) is divided by
s_i and layer 2's input channel i multiplied by it. ReLU is positively homogeneous, so the
float function is unchanged, and both ranges become sqrt(r1_i * r2_i).

High-bias absorption (the same paper, section 4.2), after equalization: if layer 1's output
channel i is N(beta_i, gamma_i^2) (its BN's claim, divided by equalization's s_i), it is almost
never below c_i = max(0, beta_i - 3 gamma_i), and ReLU(x) = ReLU(x - c) + c for x >= c; so c_i
leaves layer 1's bias and layer 2 adds what it makes of the constant c, W2 c, to its own. The
activations' range shrinks by c; the float function moves only where x < c, and at the borders of
a padded layer 2 (its constant response is W2 c only where every tap reads the input).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fold.core.affine import channel_rows, constant_response, input_rows, scale_along, scale_kernel
from fold.core.kinds import Kind

QMAX = 127
#: SQNR reported for a channel that int8 represents exactly (float32 weights carry less than this).
SQNR_CAP = 200.0


def _scales(rows: np.ndarray, per_channel: bool) -> np.ndarray:
    """int8 scales for a (C, n) array of channel rows: one per row, or one for all of them."""
    peak = np.max(np.abs(rows), axis=1) if per_channel else np.full(rows.shape[0], np.max(np.abs(rows), initial=0.0))
    return np.where(peak > 0, peak / QMAX, 1.0)


def quantize(kernel: np.ndarray, kind: Kind, groups: int = 1, per_channel: bool = False) -> np.ndarray:
    """The kernel fake-quantized to symmetric int8 (returned in float64, the kernel's shape)."""
    w = np.asarray(kernel, dtype=np.float64)
    scale = _broadcast(_scales(channel_rows(w, kind, groups), per_channel), w.shape, kind, groups)
    return np.clip(np.round(w / scale), -QMAX, QMAX) * scale


def quantize_per_input(kernel: np.ndarray, kind: Kind, groups: int = 1) -> np.ndarray:
    """The kernel fake-quantized with one int8 scale per *input* channel (as TensorRT quantizes a
    deconvolution's weights), in float64, the kernel's shape."""
    w = np.asarray(kernel, dtype=np.float64)
    scale = scale_along(np.ones(w.shape), _scales(input_rows(w, kind, groups), True), (kind.in_axis,), groups,
                        kind.in_group_axis)
    return np.clip(np.round(w / scale), -QMAX, QMAX) * scale


#: Weight granularity -> the targets known to quantize a transposed convolution's weights so, with
#: the source that says it (``fold.tools.int8_report.granularity``).
GRANULARITY_TARGETS = {
    "per_output_channel": "TFLite/LiteRT (TensorFlow's converter, axis 0 of TRANSPOSE_CONV's [O,H,W,I] filter); "
                          "onnxruntime's quantize_static per_channel (axis 1 of ConvTranspose's weight)",
    "per_tensor": "XNNPACK: its int8 transposed convolution takes one weight scale (google/XNNPACK#2762)",
    "per_input_channel": "TensorRT: deconvolution weights are quantized per input channel (NVIDIA/TensorRT#2380)",
}


def granularity_sqnr(kernel: np.ndarray, kind: Kind, groups: int = 1) -> dict[str, Sqnr]:
    """A kernel's int8 SQNR (mean over output channels) under each granularity of ``GRANULARITY_TARGETS``."""
    quantized = {"per_output_channel": quantize(kernel, kind, groups, per_channel=True),
                 "per_tensor": quantize(kernel, kind, groups, per_channel=False),
                 "per_input_channel": quantize_per_input(kernel, kind, groups)}
    return {name: sqnr(kernel, q, kind, groups) for name, q in quantized.items()}


def _broadcast(per_channel: np.ndarray, shape: tuple[int, ...], kind: Kind, groups: int) -> np.ndarray:
    """A per-output-channel vector laid out to broadcast against a kernel of ``shape``."""
    return scale_kernel(np.ones(shape), per_channel, kind, groups)


def channel_sqnr(kernel: np.ndarray, quantized: np.ndarray, kind: Kind, groups: int = 1) -> np.ndarray:
    """SQNR in dB of every output channel of ``quantized`` against ``kernel`` (NaN: no signal)."""
    w = channel_rows(kernel, kind, groups)
    e = w - channel_rows(quantized, kind, groups)
    signal, noise = np.sum(w * w, axis=1), np.sum(e * e, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10 * np.log10(signal / noise)
    db = np.where(noise == 0, SQNR_CAP, np.minimum(db, SQNR_CAP))
    return np.where(signal == 0, np.nan, db)


@dataclass(frozen=True)
class Sqnr:
    """A layer's SQNR: the mean over its output channels, and its worst channel (dB)."""

    mean: float | None
    worst: float | None
    worst_channel: int | None


def summarize(per_channel: np.ndarray) -> Sqnr:
    finite = ~np.isnan(per_channel)
    if not finite.any():
        return Sqnr(None, None, None)
    worst = int(np.nanargmin(per_channel))
    return Sqnr(float(np.mean(per_channel[finite])), float(per_channel[worst]), worst)


def sqnr(kernel: np.ndarray, quantized: np.ndarray, kind: Kind, groups: int = 1) -> Sqnr:
    return summarize(channel_sqnr(kernel, quantized, kind, groups))


def channel_peaks(kernel: np.ndarray, kind: Kind, groups: int = 1) -> np.ndarray:
    """max |w| of every output channel (float64)."""
    return np.max(np.abs(channel_rows(kernel, kind, groups)), axis=1)


def range_ratio(kernel: np.ndarray, kind: Kind, groups: int = 1) -> float | None:
    """The largest over the smallest non-zero per-channel max |w| (None when every channel is zero)."""
    peaks = channel_peaks(kernel, kind, groups)
    nonzero = peaks[peaks > 0]
    return float(nonzero.max() / nonzero.min()) if nonzero.size else None


def output_sqnr(reference: list[np.ndarray], other: list[np.ndarray]) -> float:
    """SQNR in dB of a whole model's outputs against the float reference (all outputs together)."""
    signal = sum(float(np.sum(np.asarray(r, np.float64) ** 2)) for r in reference)
    noise = sum(float(np.sum((np.asarray(r, np.float64) - np.asarray(o, np.float64)) ** 2))
                for r, o in zip(reference, other))
    if noise == 0:
        return SQNR_CAP
    return float(min(10 * np.log10(signal / noise), SQNR_CAP)) if signal > 0 else float("nan")


#: High-bias absorption keeps what lies within this many standard deviations below the mean.
HIGH_BIAS_SIGMAS = 3.0


def absorb_high_bias(b1: np.ndarray, mean: np.ndarray, std: np.ndarray, w2: np.ndarray, b2: np.ndarray | None,
                     kind2: Kind, groups2: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """High-bias absorption of one pair (module docstring): (b1', b2', c), float64, for layer 1's
    bias ``b1`` whose channels are N(``mean``, ``std``^2) and layer 2's kernel ``w2`` and bias ``b2``."""
    c = np.maximum(0.0, np.asarray(mean, np.float64) - HIGH_BIAS_SIGMAS * np.asarray(std, np.float64))
    response = constant_response(w2, c, kind2, groups2)
    base = np.zeros(response.shape[0]) if b2 is None else np.asarray(b2, dtype=np.float64).reshape(-1)
    return np.asarray(b1, dtype=np.float64).reshape(-1) - c, base + response, c


def equalize(w1: np.ndarray, b1: np.ndarray | None, kind1: Kind, groups1: int, w2: np.ndarray, kind2: Kind,
             groups2: int = 1) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Cross-layer equalization of one pair: (w1', b1', w2', s), float64, kernels in their shapes.

    Channels where either range is zero keep s = 1. Raises ValueError when layer 1's output
    channels and layer 2's input channels do not line up.
    """
    r1 = channel_peaks(w1, kind1, groups1)
    r2 = np.max(np.abs(input_rows(w2, kind2, groups2)), axis=1)
    if r1.shape != r2.shape:
        raise ValueError(f"Layer 1 has {r1.shape[0]} output channels but layer 2 reads {r2.shape[0]} input channels.")
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where((r1 > 0) & (r2 > 0), np.sqrt(r1 * r2) / r2, 1.0)
    w1_eq = scale_kernel(w1, 1.0 / s, kind1, groups1)
    b1_eq = None if b1 is None else np.asarray(b1, dtype=np.float64).reshape(-1) / s
    w2_eq = scale_along(w2, s, (kind2.in_axis,), groups2, kind2.in_group_axis)
    return w1_eq, b1_eq, w2_eq, s
