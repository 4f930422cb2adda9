"""The seed's TConv engine: a 2-D transposed convolution of one image in NumPy, float64, as
TensorFlow defines it (output size, crop), computed two ways: a scatter of kernel stamps, and an
ordinary convolution with the flipped kernel over the zero-inserted, padded input.

``x`` is (H, W, Cin); a TConv kernel has the Keras/TF layout (kh, kw, Cout, Cin).
"""

from __future__ import annotations

import numpy as np

Pair = tuple[int, int]
Crops = tuple[Pair, Pair]


def as_pair(value: int | Pair, name: str) -> Pair:
    """``value`` as (height, width): an int for both, or a pair of positive ints."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"Invalid value for argument `{name}`: expected a positive int or a pair. Received: {name}={value!r}")
    return int(pair[0]), int(pair[1])


def padding_mode(padding: str) -> str:
    """"VALID" or "SAME", in any case."""
    mode = str(padding).upper()
    if mode not in ("VALID", "SAME"):
        raise ValueError(f"Invalid value for argument `padding`: expected 'VALID' or 'SAME'. Received: padding={padding!r}")
    return mode


def checked(x: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (H, W, Cin) and a TConv ``kernel`` (kh, kw, Cout, Cin) in float64, their shapes checked."""
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"Expected `x` of shape (H, W, Cin). Received: x.shape={x.shape}")
    if kernel.ndim != 4 or kernel.shape[3] != x.shape[2]:
        raise ValueError(
            f"Expected a TConv `kernel` of shape (kh, kw, Cout, Cin={x.shape[2]}). Received: kernel.shape={kernel.shape}"
        )
    return x, kernel


# --- Output size and cropping, as TF defines them -------------------------------------------


def tconv_output_size(in_size: int, k: int, stride: int, padding: str) -> int:
    """Keras/TF TConv output length: VALID ``n*s + max(k - s, 0)``, SAME ``n*s``."""
    return in_size * stride + (max(k - stride, 0) if padding_mode(padding) == "VALID" else 0)


def tconv_crop(in_size: int, k: int, stride: int, padding: str) -> Pair:
    """(before, after) cut from the full scatter canvas of length ``(n-1)*s + k``.

    A TConv is the gradient of the conv that maps its output (length N) back to its input,
    so it crops what that conv pads: SAME pads ``p = max((ceil(N/s)-1)*s + k - N, 0)``,
    ``p // 2`` before and the rest after (for N = n*s, p = max(k - s, 0)); VALID pads 0.
    ``after`` is negative when the canvas is shorter than N (s > k): zeros are appended.
    """
    n_out = tconv_output_size(in_size, k, stride, padding)
    pad_total = max((-(-n_out // stride) - 1) * stride + k - n_out, 0) if padding_mode(padding) == "SAME" else 0
    before = pad_total // 2
    return before, (in_size - 1) * stride + k - before - n_out


def tconv_crops(in_hw: Pair, kernel_hw: Pair, stride: int | Pair, padding: str) -> Crops:
    """``tconv_crop`` for height and width: ((top, bottom), (left, right))."""
    sh, sw = as_pair(stride, "stride")
    return tconv_crop(in_hw[0], kernel_hw[0], sh, padding), tconv_crop(in_hw[1], kernel_hw[1], sw, padding)


def crop(canvas: np.ndarray, crops: Crops) -> np.ndarray:
    """Cut ``crops`` rows/columns off a (Hc, Wc, C) canvas; a negative amount appends zeros."""
    (top, bottom), (left, right) = crops
    grown = np.pad(canvas, ((0, max(-bottom, 0)), (0, max(-right, 0)), (0, 0)))
    return grown[top : grown.shape[0] - max(bottom, 0), left : grown.shape[1] - max(right, 0)]


# --- A TConv as a scatter of stamps ---------------------------------------------------


def tconv_stamps(x: np.ndarray, kernel: np.ndarray, stride: int | Pair, padding: str) -> tuple[np.ndarray, np.ndarray]:
    """TConv as scatter: ``y = crop(sum_{i,j,c} stamp[i, j, c])``.

    ``stamp[i, j, c]`` is the full canvas ((H-1)*sh + kh, (W-1)*sw + kw, Cout) holding
    ``x[i, j, c] * kernel[:, :, :, c]`` at offset (i*sh, j*sw); returns
    (stamps of shape (H, W, Cin, Hc, Wc, Cout), output cropped as TF does).
    """
    x, kernel = checked(x, kernel)
    sh, sw = as_pair(stride, "stride")
    (h, w, cin), (kh, kw, cout, _) = x.shape, kernel.shape
    stamps = np.zeros((h, w, cin, (h - 1) * sh + kh, (w - 1) * sw + kw, cout))
    for i in range(h):
        for j in range(w):
            for c in range(cin):
                stamps[i, j, c, i * sh : i * sh + kh, j * sw : j * sw + kw] = x[i, j, c] * kernel[:, :, :, c]
    crops = tconv_crops((h, w), (kh, kw), (sh, sw), padding)
    return stamps, crop(stamps.sum(axis=(0, 1, 2)), crops)


# --- The same TConv as an ordinary convolution -----------------------------------------------


def zero_insert(x: np.ndarray, stride: int | Pair) -> np.ndarray:
    """Put ``s - 1`` zeros between neighbouring pixels: (H, W, C) -> ((H-1)*sh+1, (W-1)*sw+1, C)."""
    sh, sw = as_pair(stride, "stride")
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
    x, kernel = checked(x, kernel)
    kernel_hw = kernel.shape[:2]
    crops = tconv_crops(x.shape[:2], kernel_hw, stride, padding)
    padded = pad_for_tconv(zero_insert(x, stride), kernel_hw, crops)
    flipped = flip_kernel(kernel)
    return padded, flipped, conv2d(padded, flipped)


def tconv(x: np.ndarray, kernel: np.ndarray, stride: int | Pair, padding: str, bias: np.ndarray | None = None) -> np.ndarray:
    """TConv with an optional per-output-channel bias: ``tconv_as_conv(x) + b``."""
    out = tconv_as_conv(x, kernel, stride, padding)[2]
    return out if bias is None else out + np.asarray(bias, dtype=np.float64)
