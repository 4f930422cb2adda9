"""Why a BatchNorm folds into a transposed convolution, step by step, with real numbers.

Pure NumPy in float64, one image at a time: ``x`` is (H, W, Cin), a TConv kernel has the
Keras/TF layout (kh, kw, Cout, Cin); the TConv itself, both ways, is ``foldscope_app.examples.tconv``. The
walkthrough computes every claimed equality::

    1. TConv = scatter:      each input pixel stamps ``x[i, j, c] * kernel[..., c]``, stamps add
    2. TConv = convolution:  flipped, in/out-swapped kernel over the zero-inserted, padded input
    3. BN    = 1x1 conv:     diagonal kernel diag(s), bias t
    4. BN(TConv(x)) = TConv'(x) + b'   with  W' = W * s (output channel), b' = b * s + t

and the cases where the fold stops being exact (activation in between, BN before the TConv, BN
before a zero-padded convolution, TConv output read twice).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fold.core.affine import Affine, bn_affine, fold_forward, fold_kernel
from fold.core.kinds import KERAS_KINDS
from foldscope_app.examples import seed
from foldscope_app.examples.tconv import (Crops, Pair, as_pair, checked, conv2d, padding_mode, tconv, tconv_as_conv,
                                         tconv_crops, tconv_stamps)

#: The layout of a Keras/TF TConv kernel (kh, kw, Cout, Cin), from the kinds table.
TCONV = KERAS_KINDS["Conv2DTranspose"]


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| over all elements."""
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


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
    x, kernel = checked(x, kernel)
    stride, padding = as_pair(stride, "stride"), padding_mode(padding)
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
    """The places where folding stops working, on the walkthrough's input and kernel (used as a plain
    convolution's from its input channels to its output channels, for the padded case)."""
    args = (w.x, w.kernel)
    return {
        "ReLU between the TConv and the BN": counter_activation(*args, w.affine, w.stride, w.padding),
        "BN before the TConv": counter_bn_before(*args, BN_BEFORE, w.stride, w.padding),
        "BN before a zero-padded convolution": counter_padding(w.x, np.swapaxes(w.kernel, 2, 3), BN_BEFORE),
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
    x, kernel = checked(x, kernel)
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


@dataclass(frozen=True)
class PaddedCounterexample(Counterexample):
    """BN before a convolution that pads its input with zeros (SAME, stride 1): ``real_taps[p]`` of the
    kernel's taps read the BN's output at output pixel p (the others read the padding), and ``border`` is
    what the padding takes away, the sum of W t over the taps that read it: zero inside, not at the border."""

    real_taps: np.ndarray
    border: np.ndarray


def same_padded(x: np.ndarray, kernel_hw: Pair) -> np.ndarray:
    """``x`` (H, W, C) with the zeros a stride-1 SAME convolution of a ``kernel_hw`` kernel reads around it."""
    (kh, kw) = kernel_hw
    return np.pad(x, (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))


def counter_padding(x: np.ndarray, kernel: np.ndarray, affine: Affine) -> PaddedCounterexample:
    """BN -> Conv(SAME, zero padding).  Reference ``conv(pad(s*x + t))``: the padding is zeros *after* the
    BN.  Naive forward fold ``conv(pad(x), W*s) + sum_{taps, c} W t`` (``fold.core.affine.fold_forward``):
    its bias adds the shift's response through every tap, while a border pixel's padded taps read 0.

    ``kernel`` is a convolution's (kh, kw, Cin, Cout). They agree where every tap reads the input, and
    differ at the border by exactly ``border``; with t = 0 they agree everywhere.
    """
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if affine.channels != x.shape[2] or kernel.ndim != 4 or kernel.shape[2] != x.shape[2]:
        raise ValueError(f"The BN before the convolution needs Cin={x.shape[2]} channels and a (kh, kw, Cin, Cout) "
                         f"kernel. Received: {affine.channels} channels, kernel.shape={kernel.shape}")
    hw = kernel.shape[:2]
    reference = conv2d(same_padded(affine.scale * x + affine.shift, hw), kernel)
    folded_kernel, folded_bias = fold_forward(kernel, None, affine, KERAS_KINDS["Conv2D"])
    naive = conv2d(same_padded(x, hw), folded_kernel) + folded_bias
    inside = same_padded(np.ones_like(x), hw)
    real_taps = conv2d(inside[:, :, :1], np.ones(hw + (1, 1)))[:, :, 0]
    border = conv2d((1.0 - inside) * affine.shift, kernel)  # t on the padded taps alone
    return PaddedCounterexample(
        reference=reference,
        naive=naive,
        max_abs_diff=max_abs_diff(reference, naive),
        why="A forward fold moves the BN's shift t into the convolution's bias as its response through every tap, "
        "but at the border some taps read the zero padding, which the BN never shifted: there the naive fold adds "
        "W·t for each of them (the border map). Inside, where every tap reads the input, it is exact; so it is "
        "without padding, or with t = 0.",
        real_taps=real_taps,
        border=border,
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
