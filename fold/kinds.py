"""The one table of layer kinds foldscope folds into, and where their output channels live.

Pure data, no Keras import: frontends map their layer or op names onto these kinds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """How a BatchNorm folds into one kind of linear layer.

    weight:    name of the weight that is scaled (the others are kept as they are).
    out_axes:  axes of that weight indexing the output channel, row-major (see
               ``affine.channel_view``).
    family:    "dense", "conv", "transpose", "depthwise" or "separable", for display.
    """

    weight: str
    out_axes: tuple[int, ...]
    family: str


_CONV = Kind("kernel", (-1,), "conv")
_TCONV = Kind("kernel", (-2,), "transpose")
_DEPTHWISE = Kind("kernel", (-2, -1), "depthwise")
_SEPARABLE = Kind("pointwise_kernel", (-1,), "separable")

#: Keras 3 layer class -> Kind. Kernel layouts (Keras 3):
#:   Dense (in, out); Conv (k..., in/groups, out); ConvTranspose (k..., out, in);
#:   DepthwiseConv (k..., in, multiplier); SeparableConv pointwise (1..., in*mult, out).
KERAS_KINDS: dict[str, Kind] = {
    "Dense": Kind("kernel", (-1,), "dense"),
    "Conv1D": _CONV,
    "Conv2D": _CONV,
    "Conv3D": _CONV,
    "Conv1DTranspose": _TCONV,
    "Conv2DTranspose": _TCONV,
    "Conv3DTranspose": _TCONV,
    "DepthwiseConv1D": _DEPTHWISE,
    "DepthwiseConv2D": _DEPTHWISE,
    "SeparableConv1D": _SEPARABLE,
    "SeparableConv2D": _SEPARABLE,
}
