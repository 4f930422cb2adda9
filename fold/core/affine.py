"""Pure NumPy folding math: BatchNorm as a per-channel affine map, and its fold into a kernel.

Inference BatchNorm is ``y = s * x + t`` per channel c, with::

    s = gamma / sqrt(moving_variance + epsilon)
    t = beta - moving_mean * s

(``gamma`` is 1 when the BN has ``scale=False``, ``beta`` is 0 when ``center=False``).
A linear layer ``x -> W * x + b`` followed by it becomes ``x -> W' * x + b'`` with::

    W' = W * s      (along the kernel's output-channel axes)
    b' = b * s + t  (b = 0 when the layer has no bias)

which is the same map, whatever the stride, padding, dilation or output_padding of a
(transposed) convolution: BN acts per output channel and the layer is linear in its kernel.
Everything is computed in float64 and cast back to the kernel's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fold.core.kinds import Kind


@dataclass(frozen=True)
class Affine:
    """A per-channel affine map ``y = scale * x + shift`` (float64 arrays of shape (C,)).

    ``terms``: the magnitudes the shift is made of, |beta| + |mean * scale| (and, once folded
    into a layer with a bias b, + |b * scale|): what the float sums that compute the shift and the
    folded bias round at, which a cancellation between them can hide (``fold.core.verdict``).
    None where unknown.
    """

    scale: np.ndarray
    shift: np.ndarray
    terms: np.ndarray | None = None

    @property
    def channels(self) -> int:
        return int(self.scale.shape[0])


def bn_affine(
    moving_mean: np.ndarray,
    moving_variance: np.ndarray,
    epsilon: float,
    gamma: np.ndarray | None = None,
    beta: np.ndarray | None = None,
) -> Affine:
    """Inference BatchNorm as ``s * x + t``; missing gamma means 1, missing beta means 0.

    Non-finite inputs propagate as NaN/inf; callers decide (the rules skip such pairs).
    """
    mean = np.asarray(moving_mean, dtype=np.float64).reshape(-1)
    var = np.asarray(moving_variance, dtype=np.float64).reshape(-1)
    g = np.ones_like(mean) if gamma is None else np.asarray(gamma, dtype=np.float64).reshape(-1)
    b = np.zeros_like(mean) if beta is None else np.asarray(beta, dtype=np.float64).reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = g / np.sqrt(var + np.float64(epsilon))
    shift = b - mean * scale
    with np.errstate(invalid="ignore"):
        terms = np.abs(b) + np.abs(mean * scale)
    return Affine(scale=scale, shift=shift, terms=terms)


def with_bias_terms(affine: Affine, bias: np.ndarray | None) -> Affine:
    """``affine`` whose ``terms`` also hold |b * scale|, for a layer with bias ``b`` it is folded into."""
    if bias is None or affine.terms is None:
        return affine
    with np.errstate(invalid="ignore"):
        extra = np.abs(np.asarray(bias, dtype=np.float64).reshape(-1) * affine.scale)
    return Affine(affine.scale, affine.shift, affine.terms + extra)


def grouped_shape(kernel_shape: tuple[int, ...], out_axes: tuple[int, ...], groups: int = 1,
                  group_axis: int | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The kernel shape and output-channel axes to fold along, with a group split made explicit.

    Without a group split (``groups`` 1 or no ``group_axis``) this is ``(kernel_shape,
    out_axes)``. With one, ``group_axis`` of extent n is read as (groups, n / groups) and its
    group part becomes the leading output-channel axis: for ONNX ConvTranspose, W (C_in,
    C_out/group, k...) is viewed as (group, C_in/group, C_out/group, k...) with channel axes
    (0, 2), so channel c = g * (C_out/group) + j.
    """
    shape = tuple(int(n) for n in kernel_shape)
    if groups == 1 or group_axis is None:
        return shape, tuple(out_axes)
    ndim = len(shape)
    split = group_axis % ndim
    if groups < 1 or shape[split] % groups:
        raise ValueError(f"Kernel of shape {shape} cannot be split into {groups} groups along axis {group_axis}.")
    view = (*shape[:split], groups, shape[split] // groups, *shape[split + 1:])
    axes = sorted({split} | {a % ndim + (a % ndim >= split) for a in out_axes})
    return view, tuple(a - len(view) for a in axes)


def channel_view(scale: np.ndarray, kernel_shape: tuple[int, ...], out_axes: tuple[int, ...]) -> np.ndarray:
    """Reshape a per-channel vector so it broadcasts against a kernel along ``out_axes``.

    ``out_axes`` are axes of the kernel that together index the output channel in row-major
    order: (-1,) for Dense and Conv, (-2,) for transposed convs, and (-2, -1) for depthwise
    kernels (channel c = i * multiplier + m).
    """
    ndim = len(kernel_shape)
    axes = sorted(a % ndim for a in out_axes)
    channel_shape = tuple(kernel_shape[a] for a in axes)
    if int(np.prod(channel_shape)) != scale.shape[0]:
        raise ValueError(
            f"Kernel of shape {tuple(kernel_shape)} has {int(np.prod(channel_shape))} output channels "
            f"along axes {tuple(out_axes)}, but the BatchNorm has {scale.shape[0]}."
        )
    view = [1] * ndim
    for a, n in zip(axes, channel_shape):
        view[a] = n
    # Row-major reshape to the channel axes, then insert unit axes elsewhere.
    return scale.reshape(channel_shape).reshape(view)


def scale_along(kernel: np.ndarray, scale: np.ndarray, axes: tuple[int, ...], groups: int = 1,
                group_axis: int | None = None, dtype: type = np.float64) -> np.ndarray:
    """``kernel * scale`` along the channel ``axes`` (split by ``groups`` as ``grouped_shape``
    says), computed in float64 and stored as ``dtype``, in the shape of ``kernel``. The ufunc
    casts each weight to float64 as it multiplies and each product to ``dtype`` as it stores it
    (the same numbers as casting the whole kernel first and the whole product after), so a large
    kernel costs one array of the result, not three."""
    w = np.asarray(kernel)
    shape, grouped = grouped_shape(w.shape, axes, groups, group_axis)
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    out = np.empty(shape, dtype=dtype)
    np.multiply(w.reshape(shape), channel_view(s, shape, grouped), out=out, dtype=np.float64, casting="unsafe")
    return out.reshape(w.shape)


def scale_kernel(kernel: np.ndarray, scale: np.ndarray, kind: Kind, groups: int = 1,
                 dtype: type = np.float64) -> np.ndarray:
    """``kernel * scale`` along ``kind``'s output-channel axes, in float64, stored as ``dtype``
    (shape of ``kernel``)."""
    return scale_along(kernel, scale, kind.out_axes, groups, kind.group_axis, dtype)


def fold_kernel(kernel: np.ndarray, bias: np.ndarray | None, affine: Affine, kind: Kind,
                groups: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``affine`` into a kernel and bias; returns (kernel', bias') in the kernel's dtype."""
    dtype = np.asarray(kernel).dtype
    b = np.zeros(affine.channels) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    folded_w = scale_kernel(kernel, affine.scale, kind, groups, dtype)
    folded_b = b * affine.scale + affine.shift
    return folded_w, folded_b.astype(dtype)


def channels_along(kernel_shape: tuple[int, ...], axes: tuple[int, ...], groups: int = 1,
                   group_axis: int | None = None) -> int:
    """How many channels a kernel of ``kernel_shape`` has along ``axes`` (split by ``groups`` as
    ``grouped_shape`` says), read off its shape alone."""
    shape, grouped = grouped_shape(kernel_shape, axes, groups, group_axis)
    return int(np.prod([shape[a % len(shape)] for a in grouped], dtype=np.int64))


def rows_along(kernel: np.ndarray, axes: tuple[int, ...], groups: int = 1,
               group_axis: int | None = None, dtype: type | None = np.float64) -> np.ndarray:
    """The kernel as a (C, n) float64 array: row c holds every weight of channel c along ``axes``
    (split by ``groups`` as ``grouped_shape`` says); ``dtype`` None keeps the kernel's dtype."""
    w = np.asarray(kernel, dtype=dtype)
    shape, grouped = grouped_shape(w.shape, axes, groups, group_axis)
    w = w.reshape(shape)
    channel_axes = sorted(a % w.ndim for a in grouped)
    moved = np.moveaxis(w, channel_axes, list(range(len(channel_axes))))
    channels = int(np.prod([shape[a] for a in channel_axes]))
    return moved.reshape(channels, moved.size // channels if channels else 0)


def channel_rows(kernel: np.ndarray, kind: Kind, groups: int = 1, dtype: type | None = np.float64) -> np.ndarray:
    """The kernel as a (C, n) float64 array: row c holds every weight of output channel c (``dtype``
    None: in the kernel's own dtype, no float64 copy of a large kernel)."""
    return rows_along(kernel, kind.out_axes, groups, kind.group_axis, dtype)


def per_channel_range(kernel: np.ndarray, kind: Kind, groups: int = 1) -> np.ndarray:
    """(C, 2) array of each output channel's (min, max) kernel value, in float64 (taken in the
    kernel's own dtype, which a min or a max does not round: no float64 copy of a large kernel); (0, 0)
    for a channel without weights (a layer with no input channels computes its bias alone)."""
    rows = rows_along(kernel, kind.out_axes, groups, kind.group_axis, dtype=None)
    if rows.shape[1] == 0:
        return np.zeros((rows.shape[0], 2))
    return np.stack([rows.min(axis=1), rows.max(axis=1)], axis=1).astype(np.float64)
