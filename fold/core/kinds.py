"""The one table of layer kinds foldscope folds into, and where their output channels live.

Pure data, no framework import: every frontend maps its layer or op names onto these kinds,
and the folding math (``fold.core.affine``) reads the axes from here, never from a branch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """How a BatchNorm folds into one kind of linear layer.

    weight:     name of the weight that is scaled (the others are kept as they are).
    out_axes:   axes of that weight indexing the output channel, row-major (see
                ``affine.channel_view``).
    family:     "dense", "conv", "transpose", "depthwise" or "separable", for display.
    group_axis: for a grouped layer whose output channels are split across an *input* axis
                (ONNX ConvTranspose: W is (C_in, C_out/group, k...)), that axis: with
                ``groups`` > 1 it is read as (group, C_in/group) and output channel
                c = g * (C_out/group) + j. None for every other layout.
    in_axis:    the axis indexing the layer's input channels, for cross-layer equalization's
                second layer; None when input channels do not map onto one axis (separable,
                TFLite depthwise).
    in_group_axis: for a grouped layer whose ``in_axis`` holds only C_in/group entries (ONNX
                Conv: W (C_out, C_in/group, k...)), the axis read as (group, n/group) to index
                input channel c = g * (C_in/group) + j; None for every other layout.
    data_input: the op input that carries the activation (a transposed convolution's output shape
                comes first in a GraphDef and a TFLite model).
    """

    weight: str
    out_axes: tuple[int, ...]
    family: str
    group_axis: int | None = None
    in_axis: int | None = None
    in_group_axis: int | None = None
    data_input: int = 0


_CONV = Kind("kernel", (-1,), "conv", in_axis=-2)
_TCONV = Kind("kernel", (-2,), "transpose", in_axis=-1)
_DEPTHWISE = Kind("kernel", (-2, -1), "depthwise", in_axis=-2)
_SEPARABLE = Kind("pointwise_kernel", (-1,), "separable")

#: Keras 3 layer class -> Kind. Kernel layouts:
#:   Dense (in, out); Conv (k..., in/groups, out); ConvTranspose (k..., out, in);
#:   DepthwiseConv (k..., in, multiplier): channel c = i * multiplier + m;
#:   SeparableConv pointwise (1..., in*mult, out).
KERAS_KINDS: dict[str, Kind] = {
    "Dense": Kind("kernel", (-1,), "dense", in_axis=-2),
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

#: TensorFlow op -> Kind. Filter layouts: Conv2D HWIO, Conv2DBackpropInput HWOI,
#: DepthwiseConv2dNative (kh, kw, in, multiplier), MatMul b (in, out), or (out, in) with
#: ``transpose_b`` (looked up as "MatMul/transpose_b").
GRAPHDEF_KINDS: dict[str, Kind] = {
    "Conv2D": Kind("filter", (-1,), "conv", in_axis=-2),
    "Conv2DBackpropInput": Kind("filter", (-2,), "transpose", in_axis=-1, data_input=2),
    "DepthwiseConv2dNative": Kind("filter", (-2, -1), "depthwise", in_axis=-2),
    "MatMul": Kind("b", (-1,), "dense", in_axis=-2),
    "MatMul/transpose_b": Kind("b", (-2,), "dense", in_axis=-1),
}

#: TFLite builtin op -> Kind. Layouts: CONV_2D and TRANSPOSE_CONV filters OHWI,
#: DEPTHWISE_CONV_2D 1HW(C*M) (channel c = i * M + m), FULLY_CONNECTED weights (out, in).
TFLITE_KINDS: dict[str, Kind] = {
    "CONV_2D": Kind("filter", (-4,), "conv", in_axis=-1),
    "TRANSPOSE_CONV": Kind("filter", (-4,), "transpose", in_axis=-1, data_input=2),
    "DEPTHWISE_CONV_2D": Kind("filter", (-1,), "depthwise"),
    "FULLY_CONNECTED": Kind("weights", (-2,), "dense", in_axis=-1),
}

#: ONNX op -> Kind. Layouts: Conv W (C_out, C_in/group, k...); ConvTranspose W
#: (C_in, C_out/group, k...), output channel c = g * (C_out/group) + j with g the group of
#: the row on axis 0; Gemm B (K, N), or (N, K) with transB = 1 ("Gemm/transB");
#: MatMul B (K, N).
ONNX_KINDS: dict[str, Kind] = {
    "Conv": Kind("W", (0,), "conv", in_axis=1, in_group_axis=0),
    "ConvTranspose": Kind("W", (1,), "transpose", group_axis=0, in_axis=0),
    "Gemm": Kind("B", (-1,), "dense", in_axis=0),
    "Gemm/transB": Kind("B", (0,), "dense", in_axis=1),
    "MatMul": Kind("B", (-1,), "dense", in_axis=-2),
}

#: Every op or layer name that is a linear kind in some frontend (for the graph's roles).
LINEAR_OPS = frozenset(name.split("/")[0] for table in (KERAS_KINDS, GRAPHDEF_KINDS, TFLITE_KINDS, ONNX_KINDS)
                       for name in table)
