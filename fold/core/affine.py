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

Consecutive maps compose into one (``compose``): s_2 (s_1 x + t_1) + t_2 = (s_2 s_1) x + (s_2 t_1 + t_2).

A map *before* a layer folds forward into its input side (``fold_forward``): for input channel i,

    W'[o, i, ...] = W[o, i, ...] * s[i]
    b'[o] = b[o] + sum over i and the taps k of W[o, i, k] * t[i]

which is exact where every output element reads every tap from the map's output: a Dense, Gemm or
MatMul, a convolution without padding. A padded convolution reads zeros at its border where the map
would have given t[i], and a transposed convolution sums a number of taps that varies with the
output position: there only the scale folds (t = 0). Everything is computed in float64 and cast
back to the kernel's dtype.
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
    None where unknown. ``steps``: how many maps a model computes one after the other to apply it
    (each rounds once more: ``compose``).
    """

    scale: np.ndarray
    shift: np.ndarray
    terms: np.ndarray | None = None
    steps: int = 1

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


def compose(*maps: Affine) -> Affine:
    """The maps applied one after the other (the first first) as one map::

        scale = s_k ... s_2 s_1
        shift = s_k (... (s_2 t_1 + t_2) ...) + t_k
        terms = |s_k| (... (|s_2| T_1 + T_2) ...) + T_k

    in float64 (terms None when any map's are unknown; steps add up)."""
    if not maps:
        raise ValueError("compose needs at least one map.")
    first = maps[0]
    scale, shift = np.asarray(first.scale, np.float64), np.asarray(first.shift, np.float64)
    terms = None if first.terms is None else np.asarray(first.terms, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        for then in maps[1:]:
            s = np.asarray(then.scale, np.float64)
            scale, shift = s * scale, s * shift + np.asarray(then.shift, np.float64)
            terms = None if terms is None or then.terms is None else np.abs(s) * terms + then.terms
    return Affine(scale, shift, terms, sum(m.steps for m in maps))


def taken(affine: Affine, index: np.ndarray) -> Affine:
    """The map on the features ``index`` names: feature f gets channel index[f]'s scale and shift (what a
    Dense reads after a Flatten of the map's channels)."""
    at = np.asarray(index, dtype=np.int64)
    return Affine(affine.scale[at], affine.shift[at], None if affine.terms is None else affine.terms[at], affine.steps)


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


def input_channels(shape: tuple[int, ...], axis: int, reshapes: list[tuple[int, ...]], at: int
                   ) -> tuple[np.ndarray | None, tuple[int, list[int]] | None]:
    """For each channel a layer reads on axis ``at`` of its input, which channel (on ``axis``) of a map's
    output of ``shape`` it holds, the map's output reshaped in turn to each of ``reshapes`` (row-major, as
    a Flatten or Reshape does) before the layer reads it: worked out on an index array. (index, None) when
    each input channel reads one of the map's channels; else (None, (the first input channel that reads
    several, those channels))."""
    index = np.broadcast_to(np.arange(shape[axis]).reshape([-1 if i == axis else 1 for i in range(len(shape))]),
                            shape)
    for after in reshapes:
        index = index.reshape(after)
    rows = np.moveaxis(index, at, 0).reshape(index.shape[at], -1)
    mixed = np.flatnonzero(np.any(rows != rows[:, :1], axis=1))
    if mixed.size:
        return None, (int(mixed[0]), sorted(set(rows[mixed[0]].tolist())))
    return rows[:, 0].copy(), None


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


def fold_forward(kernel: np.ndarray, bias: np.ndarray | None, affine: Affine, kind: Kind,
                 groups: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``affine``, applied to the layer's input channels, into its kernel and bias (the module
    docstring's forward formula); returns (kernel', bias') in the kernel's dtype. A depthwise kernel's
    output channel c * M + m reads input channel c alone, so its input side is its output side with
    each value repeated M times. Exact only where the layer reads no padding (the rules say where)."""
    w = np.asarray(kernel)
    dtype = w.dtype
    if kind.family == "depthwise":
        rows = channel_rows(w, kind, groups)
        if rows.shape[0] % affine.channels:
            raise ValueError(f"A depthwise kernel of {rows.shape[0]} output channels does not read "
                             f"{affine.channels} input channels.")
        repeat = rows.shape[0] // affine.channels
        scale, shift = np.repeat(affine.scale, repeat), np.repeat(affine.shift, repeat)
        folded = scale_kernel(w, scale, kind, groups, dtype)
        response = rows.sum(axis=1) * shift
    else:
        if kind.in_axis is None:
            raise ValueError(f"A {kind.family} kernel's input channels do not lie along one axis.")
        folded = scale_along(w, affine.scale, (kind.in_axis,), groups, kind.in_group_axis, dtype)
        response = constant_response(w, affine.shift, kind, groups)
    b = np.zeros(response.shape[0]) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    return folded, (b + response).astype(dtype)


def fold_all(kernel: np.ndarray, bias: np.ndarray | None, folds: list[tuple[str, Affine]], kind: Kind,
             groups: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Every fold a layer takes, in turn, in float64: (direction, map) with "forward" into its input side,
    "partial" the map's scale alone there, anything else ("backward", a concat's piece) into its output
    side. The order does not matter: BN_1(W (s_0 x + t_0) + b) = (s_1 W s_0) x + s_1 (W t_0 + b) + t_1.
    Returns the kernel in its own dtype (rounded once) and the bias in float64. A layer that takes one
    fold into its output side is scaled in float64 by one ufunc that stores the kernel's dtype: the same
    numbers, with no float64 copy of the kernel (a 256 MiB kernel would take 1 GiB more)."""
    b = None if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    if len(folds) == 1 and folds[0][0] not in ("partial", "forward"):
        affine = folds[0][1]
        w = np.asarray(kernel)
        b = np.zeros(affine.channels) if b is None else b
        return scale_kernel(w, affine.scale, kind, groups, w.dtype), b * affine.scale + affine.shift
    w = np.asarray(kernel, dtype=np.float64)
    for direction, affine in folds:
        if direction == "partial":
            w, b = fold_forward(w, b, Affine(affine.scale, np.zeros_like(affine.shift)), kind, groups)
        elif direction == "forward":
            w, b = fold_forward(w, b, affine, kind, groups)
        else:
            w, b = fold_kernel(w, b, affine, kind, groups)
    return w.astype(np.asarray(kernel).dtype), np.asarray(b, dtype=np.float64)


def input_rows(kernel: np.ndarray, kind: Kind, groups: int = 1) -> np.ndarray:
    """The kernel as a (C_in, n) float64 array: row i holds every weight reading input channel i."""
    if kind.in_axis is None:
        raise ValueError(f"A {kind.family} kernel's input channels do not lie along one axis.")
    return rows_along(kernel, (kind.in_axis,), groups, kind.in_group_axis)


def constant_response(kernel: np.ndarray, value: np.ndarray, kind: Kind, groups: int = 1) -> np.ndarray:
    """What each output channel of a layer computes (bias aside) from an input that is the constant
    ``value[i]`` on every element of input channel i, away from the borders: the sum of every weight
    of output channel o times its input channel's value (float64, shape (C_out,)). Raises ValueError
    when the kernel's input channels do not lie along one axis."""
    if kind.in_axis is None:
        raise ValueError(f"a {kind.family} kernel's input channels do not lie along one axis")
    try:
        scaled = scale_along(kernel, value, (kind.in_axis,), groups, kind.in_group_axis)
    except ValueError:
        raise ValueError(f"the {kind.family} kernel of shape {tuple(np.shape(kernel))} does not read "
                         f"{np.size(value)} input channels along one axis (a grouped layer)") from None
    return np.sum(channel_rows(scaled, kind, groups), axis=1)
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
