"""Why a BatchNorm folds into a transposed convolution, step by step, with real numbers.

Pure NumPy in float64, one image at a time: ``x`` is (H, W, Cin), a TConv kernel has the
Keras/TF layout (kh, kw, Cout, Cin). The walkthrough computes every claimed equality::

    1. TConv = scatter:      each input pixel stamps ``x[i, j, c] * kernel[..., c]``, stamps add
    2. TConv = convolution:  flipped, in/out-swapped kernel over the zero-inserted, padded input
    3. BN    = 1x1 conv:     diagonal kernel diag(s), bias t
    4. BN(TConv(x)) = TConv'(x) + b'   with  W' = W * s (output channel), b' = b * s + t

and the three cases where the fold stops being exact (activation in between, BN before the
TConv, TConv output read twice).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from demo import seed
from fold.core.affine import Affine, bn_affine, fold_kernel
from fold.core.kinds import KERAS_KINDS

#: The layout of a Keras/TF TConv kernel (kh, kw, Cout, Cin), from the kinds table.
TCONV = KERAS_KINDS["Conv2DTranspose"]

Pair = tuple[int, int]
Crops = tuple[Pair, Pair]


def _pair(value: int | Pair, name: str) -> Pair:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"Invalid value for argument `{name}`: expected a positive int or a pair. Received: {name}={value!r}")
    return int(pair[0]), int(pair[1])


def _padding(padding: str) -> str:
    mode = str(padding).upper()
    if mode not in ("VALID", "SAME"):
        raise ValueError(f"Invalid value for argument `padding`: expected 'VALID' or 'SAME'. Received: padding={padding!r}")
    return mode


def _check(x: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"Expected `x` of shape (H, W, Cin). Received: x.shape={x.shape}")
    if kernel.ndim != 4 or kernel.shape[3] != x.shape[2]:
        raise ValueError(
            f"Expected a TConv `kernel` of shape (kh, kw, Cout, Cin={x.shape[2]}). Received: kernel.shape={kernel.shape}"
        )
    return x, kernel


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| over all elements."""
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


# --- Output size and cropping, as TF defines them -------------------------------------------


def tconv_output_size(in_size: int, k: int, stride: int, padding: str) -> int:
    """Keras/TF TConv output length: VALID ``n*s + max(k - s, 0)``, SAME ``n*s``."""
    return in_size * stride + (max(k - stride, 0) if _padding(padding) == "VALID" else 0)


def tconv_crop(in_size: int, k: int, stride: int, padding: str) -> Pair:
    """(before, after) cut from the full scatter canvas of length ``(n-1)*s + k``.

    A TConv is the gradient of the conv that maps its output (length N) back to its input,
    so it crops what that conv pads: SAME pads ``p = max((ceil(N/s)-1)*s + k - N, 0)``,
    ``p // 2`` before and the rest after (for N = n*s, p = max(k - s, 0)); VALID pads 0.
    ``after`` is negative when the canvas is shorter than N (s > k): zeros are appended.
    """
    n_out = tconv_output_size(in_size, k, stride, padding)
    pad_total = max((-(-n_out // stride) - 1) * stride + k - n_out, 0) if _padding(padding) == "SAME" else 0
    before = pad_total // 2
    return before, (in_size - 1) * stride + k - before - n_out


def tconv_crops(in_hw: Pair, kernel_hw: Pair, stride: int | Pair, padding: str) -> Crops:
    """``tconv_crop`` for height and width: ((top, bottom), (left, right))."""
    sh, sw = _pair(stride, "stride")
    return tconv_crop(in_hw[0], kernel_hw[0], sh, padding), tconv_crop(in_hw[1], kernel_hw[1], sw, padding)


def crop(canvas: np.ndarray, crops: Crops) -> np.ndarray:
    """Cut ``crops`` rows/columns off a (Hc, Wc, C) canvas; a negative amount appends zeros."""
    (top, bottom), (left, right) = crops
    grown = np.pad(canvas, ((0, max(-bottom, 0)), (0, max(-right, 0)), (0, 0)))
    return grown[top : grown.shape[0] - max(bottom, 0), left : grown.shape[1] - max(right, 0)]


# --- Step 1: TConv as a scatter of stamps ---------------------------------------------------


def tconv_stamps(x: np.ndarray, kernel: np.ndarray, stride: int | Pair, padding: str) -> tuple[np.ndarray, np.ndarray]:
    """TConv as scatter: ``y = crop(sum_{i,j,c} stamp[i, j, c])``.

    ``stamp[i, j, c]`` is the full canvas ((H-1)*sh + kh, (W-1)*sw + kw, Cout) holding
    ``x[i, j, c] * kernel[:, :, :, c]`` at offset (i*sh, j*sw); returns
    (stamps of shape (H, W, Cin, Hc, Wc, Cout), output cropped as TF does).
    """
    x, kernel = _check(x, kernel)
    sh, sw = _pair(stride, "stride")
    (h, w, cin), (kh, kw, cout, _) = x.shape, kernel.shape
    stamps = np.zeros((h, w, cin, (h - 1) * sh + kh, (w - 1) * sw + kw, cout))
    for i in range(h):
        for j in range(w):
            for c in range(cin):
                stamps[i, j, c, i * sh : i * sh + kh, j * sw : j * sw + kw] = x[i, j, c] * kernel[:, :, :, c]
    crops = tconv_crops((h, w), (kh, kw), (sh, sw), padding)
    return stamps, crop(stamps.sum(axis=(0, 1, 2)), crops)


# --- Step 2: TConv as an ordinary convolution -----------------------------------------------


def zero_insert(x: np.ndarray, stride: int | Pair) -> np.ndarray:
    """Put ``s - 1`` zeros between neighbouring pixels: (H, W, C) -> ((H-1)*sh+1, (W-1)*sw+1, C)."""
    sh, sw = _pair(stride, "stride")
    h, w, c = x.shape
    z = np.zeros(((h - 1) * sh + 1, (w - 1) * sw + 1, c))
    z[::sh, ::sw] = x
    return z


def pad_for_tconv(zero_inserted: np.ndarray, kernel_hw: Pair, crops: Crops) -> np.ndarray:
    """Border-pad with zeros by ``k - 1 - crop`` per side, so a VALID conv yields the cropped TConv."""
    pads = [(k - 1 - before, k - 1 - after) for k, (before, after) in zip(kernel_hw, crops)]
    return np.pad(zero_inserted, (*pads, (0, 0)))


def flip_kernel(kernel: np.ndarray) -> np.ndarray:
    """TConv kernel (kh, kw, Cout, Cin) -> conv kernel (kh, kw, Cin, Cout), rotated 180 degrees."""
    return np.asarray(kernel, dtype=np.float64)[::-1, ::-1].transpose(0, 1, 3, 2)


def conv2d(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """VALID cross-correlation: ``y[i, j, d] = sum_{a,b,c} x[i+a, j+b, c] * kernel[a, b, c, d]``."""
    kh, kw = kernel.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(x, dtype=np.float64), (kh, kw), axis=(0, 1))
    return np.einsum("ijcab,abcd->ijd", windows, np.asarray(kernel, dtype=np.float64))


def tconv_as_conv(x: np.ndarray, kernel: np.ndarray, stride: int | Pair, padding: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TConv as conv: ``y = conv2d(pad(zero_insert(x)), flip(kernel))``.

    Returns (zero-inserted padded input, flipped kernel, output).
    """
    x, kernel = _check(x, kernel)
    kernel_hw = kernel.shape[:2]
    crops = tconv_crops(x.shape[:2], kernel_hw, stride, padding)
    padded = pad_for_tconv(zero_insert(x, stride), kernel_hw, crops)
    flipped = flip_kernel(kernel)
    return padded, flipped, conv2d(padded, flipped)


def tconv(x: np.ndarray, kernel: np.ndarray, stride: int | Pair, padding: str, bias: np.ndarray | None = None) -> np.ndarray:
    """TConv with an optional per-output-channel bias: ``tconv_as_conv(x) + b``."""
    out = tconv_as_conv(x, kernel, stride, padding)[2]
    return out if bias is None else out + np.asarray(bias, dtype=np.float64)


# --- Step 3: BN as a 1x1 convolution --------------------------------------------------------


def batch_norm(
    y: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float
) -> np.ndarray:
    """Inference BN as written: ``(y - mean) / sqrt(var + eps) * gamma + beta`` per channel."""
    y, gamma, beta, mean, var = (np.asarray(a, dtype=np.float64) for a in (y, gamma, beta, mean, var))
    return (y - mean) / np.sqrt(var + np.float64(eps)) * gamma + beta


def bn_as_1x1(affine: Affine) -> tuple[np.ndarray, np.ndarray]:
    """BN as a 1x1 conv: kernel (1, 1, C, C) = diag(s), bias (C,) = t."""
    return np.diag(affine.scale)[None, None], affine.shift.copy()


def apply_1x1(y: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``conv2d(y, kernel) + bias``: with a diagonal kernel, ``s * y + t`` per channel."""
    return conv2d(y, kernel) + bias


# --- Step 4: the fold ---------------------------------------------------------------------


def fold_tconv(kernel: np.ndarray, bias: np.ndarray | None, affine: Affine) -> tuple[np.ndarray, np.ndarray]:
    """``W' = W * s`` along the TConv output axis (-2), ``b' = b * s + t``, in float64."""
    return fold_kernel(np.asarray(kernel, dtype=np.float64), bias, affine, TCONV)


@dataclass(frozen=True)
class Walkthrough:
    """Every intermediate of the four steps, and the max abs diff of each claimed equality."""

    x: np.ndarray
    kernel: np.ndarray
    bias: np.ndarray
    stride: Pair
    padding: str
    crops: Crops
    # Step 1: scatter.
    stamps: np.ndarray
    scatter_output: np.ndarray
    # Step 2: convolution.
    conv_input: np.ndarray
    conv_kernel: np.ndarray
    conv_output: np.ndarray
    diff_scatter_vs_conv: float
    # Step 3: BN after the TConv, as written and as a 1x1 conv.
    affine: Affine
    tconv_output: np.ndarray
    bn_output: np.ndarray
    bn_kernel: np.ndarray
    bn_bias: np.ndarray
    bn_1x1_output: np.ndarray
    diff_bn_vs_1x1: float
    # Step 4: folded TConv.
    folded_kernel: np.ndarray
    folded_bias: np.ndarray
    folded_output: np.ndarray
    diff_folded_vs_bn: float

    @property
    def diffs(self) -> dict[str, float]:
        """Each claimed equality and its max abs diff."""
        return {
            "scatter == conv": self.diff_scatter_vs_conv,
            "BN == 1x1 conv": self.diff_bn_vs_1x1,
            "folded TConv == TConv -> BN": self.diff_folded_vs_bn,
        }


def walkthrough(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None,
    gamma: np.ndarray,
    beta: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float,
    stride: int | Pair = 1,
    padding: str = "VALID",
) -> Walkthrough:
    """Run the four steps for TConv(x; kernel, bias) -> BN(gamma, beta, mean, var, eps)."""
    x, kernel = _check(x, kernel)
    stride, padding = _pair(stride, "stride"), _padding(padding)
    b = np.zeros(kernel.shape[2]) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    stamps, scatter_output = tconv_stamps(x, kernel, stride, padding)
    conv_input, conv_kernel, conv_output = tconv_as_conv(x, kernel, stride, padding)
    tconv_output = conv_output + b
    affine = bn_affine(mean, var, eps, gamma, beta)
    bn_output = batch_norm(tconv_output, gamma, beta, mean, var, eps)
    bn_kernel, bn_bias = bn_as_1x1(affine)
    bn_1x1_output = apply_1x1(tconv_output, bn_kernel, bn_bias)
    folded_kernel, folded_bias = fold_tconv(kernel, b, affine)
    folded_output = tconv(x, folded_kernel, stride, padding, folded_bias)
    return Walkthrough(
        x=x,
        kernel=kernel,
        bias=b,
        stride=stride,
        padding=padding,
        crops=tconv_crops(x.shape[:2], kernel.shape[:2], stride, padding),
        stamps=stamps,
        scatter_output=scatter_output,
        conv_input=conv_input,
        conv_kernel=conv_kernel,
        conv_output=conv_output,
        diff_scatter_vs_conv=max_abs_diff(scatter_output, conv_output),
        affine=affine,
        tconv_output=tconv_output,
        bn_output=bn_output,
        bn_kernel=bn_kernel,
        bn_bias=bn_bias,
        bn_1x1_output=bn_1x1_output,
        diff_bn_vs_1x1=max_abs_diff(bn_output, bn_1x1_output),
        folded_kernel=folded_kernel,
        folded_bias=folded_bias,
        folded_output=folded_output,
        diff_folded_vs_bn=max_abs_diff(folded_output, bn_output),
    )


def seed_example() -> Walkthrough:
    """Seed example 1: VALID stride 1, BN scale 1.05, offset 0.015, the output's own mean/var, eps 0."""
    return _seed_walkthrough(seed.EXAMPLE_1)


def seed_example_2() -> Walkthrough:
    """Seed example 2: VALID stride 1 with the BN constants of the seed's second listing."""
    return _seed_walkthrough(seed.EXAMPLE_2)


def _seed_walkthrough(bn: seed.SeedBN) -> Walkthrough:
    x, kernel = seed.seed_input()
    mean, variance = seed.statistics(bn)
    return walkthrough(x, kernel, None, [bn.gamma], [bn.beta], [mean], [variance], bn.epsilon, 1, "VALID")


def demo(size: int = 2, stride: int = 1, padding: str = "VALID", out_channels: int = 1,
         random_kernel: bool = False) -> Walkthrough:
    """The page's example: input 1..size², a 3x3 kernel (all ones, or seeded random), one or two
    output channels; channel 0's BN is the seed's second example, channel 1 a made-up one."""
    if out_channels not in (1, 2):
        raise ValueError(f"Invalid value for argument `out_channels`: 1 or 2. Received: {out_channels}")
    x = np.arange(1.0, size * size + 1).reshape(size, size, 1)
    kernel = (np.random.default_rng(0).normal(size=(3, 3, out_channels, 1)).round(2) if random_kernel
              else np.ones((3, 3, out_channels, 1)))
    c = slice(0, out_channels)
    bn = seed.EXAMPLE_2
    return walkthrough(
        x, kernel, None,
        gamma=np.array([bn.gamma, 0.8])[c], beta=np.array([bn.beta, -0.5])[c],
        mean=np.array([bn.mean, 2.0])[c], var=np.array([bn.variance, 1.5])[c],
        eps=bn.epsilon, stride=stride, padding=padding,
    )


#: The BN before the TConv in the "BN before" counter-example (one input channel).
BN_BEFORE = bn_affine([0.5], [1.3], 1e-3, [0.7], [0.4])


def counterexamples(w: Walkthrough) -> dict[str, Counterexample]:
    """The three places where folding stops working, on the walkthrough's input and kernel."""
    args = (w.x, w.kernel)
    return {
        "ReLU between the TConv and the BN": counter_activation(*args, w.affine, w.stride, w.padding),
        "BN before the TConv": counter_bn_before(*args, BN_BEFORE, w.stride, w.padding),
        "TConv output also feeds a residual add": counter_fanout(*args, w.affine, w.stride, w.padding),
    }


# --- Step 5: where folding stops working ----------------------------------------------------


@dataclass(frozen=True)
class Counterexample:
    """The true output, what the naive fold computes instead, and how far apart they are."""

    reference: np.ndarray
    naive: np.ndarray
    max_abs_diff: float
    why: str


@dataclass(frozen=True)
class BnBeforeCounterexample(Counterexample):
    """BN before a TConv: ``tap_count[p]`` kernel taps reach output pixel p, so the
    input shift arrives as ``shift_map`` = TConv(constant t), not a constant bias."""

    tap_count: np.ndarray
    shift_map: np.ndarray


def counter_activation(
    x: np.ndarray, kernel: np.ndarray, affine: Affine, stride: int | Pair = 1, padding: str = "VALID"
) -> Counterexample:
    """TConv -> ReLU -> BN.  Reference ``BN(ReLU(y))``; naive fold ``ReLU(s*y + t)``.

    They differ wherever ``s*y + t < 0`` or ``y < 0``: ReLU does not commute with the affine map.
    """
    y = tconv(x, kernel, stride, padding)
    reference = affine.scale * np.maximum(y, 0.0) + affine.shift
    folded_kernel, folded_bias = fold_tconv(kernel, None, affine)
    naive = np.maximum(tconv(x, folded_kernel, stride, padding, folded_bias), 0.0)
    return Counterexample(
        reference=reference,
        naive=naive,
        max_abs_diff=max_abs_diff(reference, naive),
        why="ReLU is not linear: moving the BN in front of it clips s·y + t instead of y, "
        "so every pixel where s·y + t < 0 (or y < 0) changes.",
    )


def counter_bn_before(
    x: np.ndarray, kernel: np.ndarray, affine: Affine, stride: int | Pair = 1, padding: str = "VALID"
) -> BnBeforeCounterexample:
    """BN -> TConv.  Reference ``TConv(s*x + t)``; naive fold ``TConv_{W*s}(x) + sum_taps W t``
    (the bias a pixel reached by every tap would get).

    The scale folds into the kernel's input channels, but the shift reaches output pixel p
    through only the taps that overlap it: ``TConv(t)[p] = t * taps(p)`` for an all-ones kernel,
    which is smaller at the borders (and, with stride > 1, varies inside too).
    """
    x, kernel = _check(x, kernel)
    if affine.channels != x.shape[2]:
        raise ValueError(f"The BN before the TConv needs Cin={x.shape[2]} channels. Received: {affine.channels}")
    reference = tconv(affine.scale * x + affine.shift, kernel, stride, padding)
    ones = np.ones_like(x[:, :, :1])
    tap_count = tconv(ones, np.ones(kernel.shape[:2] + (1, 1)), stride, padding)[:, :, 0]
    shift_map = tconv(np.broadcast_to(affine.shift, x.shape), kernel, stride, padding)
    constant_bias = np.einsum("abdc,c->d", kernel, affine.shift)
    naive = tconv(x, kernel * affine.scale, stride, padding, constant_bias)
    return BnBeforeCounterexample(
        reference=reference,
        naive=naive,
        max_abs_diff=max_abs_diff(reference, naive),
        why="A constant input shift t reaches each output pixel through as many kernel taps "
        "as overlap it, so it adds t times a tap count that shrinks at the borders: "
        "not a constant bias.",
        tap_count=tap_count,
        shift_map=shift_map,
    )


def counter_fanout(
    x: np.ndarray, kernel: np.ndarray, affine: Affine, stride: int | Pair = 1, padding: str = "VALID"
) -> Counterexample:
    """y = TConv(x) feeds BN and a residual add: out = BN(y) + y.

    Folding replaces y by BN(y) for every reader, so the add receives BN(y): naive ``2 * BN(y)``.
    """
    y = tconv(x, kernel, stride, padding)
    bn_y = affine.scale * y + affine.shift
    folded_kernel, folded_bias = fold_tconv(kernel, None, affine)
    folded = tconv(x, folded_kernel, stride, padding, folded_bias)
    reference, naive = bn_y + y, folded + folded
    return Counterexample(
        reference=reference,
        naive=naive,
        max_abs_diff=max_abs_diff(reference, naive),
        why="The TConv output has a second reader (the residual add); after folding it receives "
        "BN(y) instead of y, unless the TConv is cloned.",
    )
