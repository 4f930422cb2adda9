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


@dataclass(frozen=True)
class Affine:
    """A per-channel affine map ``y = scale * x + shift`` (float64 arrays of shape (C,))."""

    scale: np.ndarray
    shift: np.ndarray

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
    return Affine(scale=scale, shift=shift)


def channel_view(scale: np.ndarray, kernel_shape: tuple[int, ...], out_axes: tuple[int, ...]) -> np.ndarray:
    """Reshape a per-channel vector so it broadcasts against a kernel along ``out_axes``.

    ``out_axes`` are negative axes of the kernel that together index the output channel
    in row-major order: (-1,) for Dense and Conv, (-2,) for transposed convs, and (-2, -1)
    for depthwise kernels (channel c = i * multiplier + m).
    """
    ndim = len(kernel_shape)
    axes = sorted(a % ndim for a in out_axes)
    channel_shape = tuple(kernel_shape[a] for a in axes)
    if int(np.prod(channel_shape)) != scale.shape[0]:
        raise ValueError(
            f"Kernel of shape {kernel_shape} has {int(np.prod(channel_shape))} output channels "
            f"along axes {out_axes}, but the BatchNorm has {scale.shape[0]}."
        )
    view = [1] * ndim
    for a, n in zip(axes, channel_shape):
        view[a] = n
    # Row-major reshape to the channel axes, then insert unit axes elsewhere.
    return scale.reshape(channel_shape).reshape(view)


def fold_kernel(
    kernel: np.ndarray,
    bias: np.ndarray | None,
    affine: Affine,
    out_axes: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``affine`` into a kernel and bias; returns (kernel', bias') in the kernel's dtype."""
    dtype = kernel.dtype
    w = np.asarray(kernel, dtype=np.float64)
    b = np.zeros(affine.channels) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    folded_w = w * channel_view(affine.scale, w.shape, out_axes)
    folded_b = b * affine.scale + affine.shift
    return folded_w.astype(dtype), folded_b.astype(dtype)


def per_channel_range(kernel: np.ndarray, out_axes: tuple[int, ...]) -> np.ndarray:
    """(C, 2) array of each output channel's (min, max) kernel value, in float64."""
    ndim = kernel.ndim
    axes = sorted(a % ndim for a in out_axes)
    moved = np.moveaxis(np.asarray(kernel, dtype=np.float64), axes, list(range(ndim - len(axes), ndim)))
    flat = moved.reshape(-1, int(np.prod([kernel.shape[a] for a in axes])))
    return np.stack([flat.min(axis=0), flat.max(axis=0)], axis=1)
