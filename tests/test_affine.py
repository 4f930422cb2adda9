"""The folding math against values computed by hand (``fold.core.affine``)."""

from __future__ import annotations

import numpy as np
import pytest

from fold.core.affine import Affine, bn_affine, channel_rows, channel_view, fold_kernel, per_channel_range
from fold.core.kinds import GRAPHDEF_KINDS, KERAS_KINDS, ONNX_KINDS, TFLITE_KINDS, Kind


def test_bn_affine_by_hand():
    # channel 0: s = 2 / sqrt(3 + 1) = 1, t = 0.5 - 4 * 1 = -3.5
    # channel 1: s = 3 / sqrt(8 + 1) = 1, t = 0 - (-1) * 1 = 1
    # channel 2: s = -1 / sqrt(0 + 1) = -1, t = 2 - 2 * -1 = 4
    a = bn_affine([4.0, -1.0, 2.0], [3.0, 8.0, 0.0], 1.0, gamma=[2.0, 3.0, -1.0], beta=[0.5, 0.0, 2.0])
    np.testing.assert_array_equal(a.scale, [1.0, 1.0, -1.0])
    np.testing.assert_array_equal(a.shift, [-3.5, 1.0, 4.0])
    assert a.channels == 3


def test_bn_affine_without_gamma_and_beta():
    a = bn_affine([1.0, 2.0], [0.25, 4.0], 0.0)
    np.testing.assert_array_equal(a.scale, [2.0, 0.5])
    np.testing.assert_array_equal(a.shift, [-2.0, -1.0])


def test_fold_dense_kernel_and_bias_by_hand():
    kernel = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)  # (in 3, out 2)
    affine = Affine(scale=np.array([10.0, -1.0]), shift=np.array([0.5, 1.0]))
    w, b = fold_kernel(kernel, np.array([1.0, 2.0]), affine, KERAS_KINDS["Dense"])
    np.testing.assert_array_equal(w, [[10.0, -2.0], [30.0, -4.0], [50.0, -6.0]])
    np.testing.assert_array_equal(b, [10.5, -1.0])  # b * s + t
    assert w.dtype == np.float32 and b.dtype == np.float32


def test_fold_without_bias_is_the_shift():
    affine = Affine(scale=np.array([2.0]), shift=np.array([-3.0]))
    w, b = fold_kernel(np.ones((3, 3, 1, 1)), None, affine, KERAS_KINDS["Conv2D"])
    np.testing.assert_array_equal(w, np.full((3, 3, 1, 1), 2.0))
    np.testing.assert_array_equal(b, [-3.0])


def test_transposed_conv_scales_its_second_to_last_axis():
    kernel = np.ones((1, 1, 2, 3))  # Keras Conv2DTranspose: (kh, kw, out 2, in 3)
    affine = Affine(scale=np.array([2.0, 5.0]), shift=np.zeros(2))
    w, _ = fold_kernel(kernel, None, affine, KERAS_KINDS["Conv2DTranspose"])
    np.testing.assert_array_equal(w[0, 0], [[2, 2, 2], [5, 5, 5]])


def test_depthwise_channel_is_input_times_multiplier_plus_m():
    kernel = np.ones((1, 1, 2, 3))  # (kh, kw, in 2, multiplier 3): channel c = i * 3 + m
    affine = Affine(scale=np.arange(1.0, 7.0), shift=np.zeros(6))
    w, _ = fold_kernel(kernel, None, affine, KERAS_KINDS["DepthwiseConv2D"])
    np.testing.assert_array_equal(w[0, 0], [[1, 2, 3], [4, 5, 6]])
    tflite, _ = fold_kernel(np.ones((1, 1, 1, 6)), None, affine, TFLITE_KINDS["DEPTHWISE_CONV_2D"])
    np.testing.assert_array_equal(tflite.reshape(-1), np.arange(1.0, 7.0))


def test_out_in_layouts_scale_their_first_axis():
    affine = Affine(scale=np.array([2.0, 3.0]), shift=np.zeros(2))
    for kind in (TFLITE_KINDS["FULLY_CONNECTED"], GRAPHDEF_KINDS["MatMul/transpose_b"], ONNX_KINDS["Gemm/transB"]):
        w, _ = fold_kernel(np.ones((2, 4)), None, affine, kind)
        np.testing.assert_array_equal(w, [[2, 2, 2, 2], [3, 3, 3, 3]])
    w, _ = fold_kernel(np.ones((2, 1, 3, 3)), None, affine, ONNX_KINDS["Conv"])  # (out, in, kh, kw)
    np.testing.assert_array_equal(w[:, 0, 0, 0], [2, 3])


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_onnx_grouped_conv_transpose_channel_is_group_times_outputs_per_group_plus_j(groups):
    cin, per_group = 4, 3  # W (C_in, C_out/group, k): row i belongs to group i // (C_in/group)
    kernel = np.ones((cin, per_group, 1))
    scale = np.arange(1.0, groups * per_group + 1)
    w, _ = fold_kernel(kernel, None, Affine(scale, np.zeros_like(scale)), ONNX_KINDS["ConvTranspose"], groups)
    rows_per_group = cin // groups
    for i in range(cin):
        g = i // rows_per_group
        np.testing.assert_array_equal(w[i, :, 0], scale[g * per_group:(g + 1) * per_group])


def test_channel_view_refuses_a_kernel_with_another_number_of_channels():
    with pytest.raises(ValueError, match=r"has 4 output channels along axes \(-1,\), but the BatchNorm has 3"):
        channel_view(np.ones(3), (3, 3, 2, 4), (-1,))
    with pytest.raises(ValueError, match="cannot be split into 3 groups"):
        fold_kernel(np.ones((4, 2, 1)), None, Affine(np.ones(6), np.zeros(6)), ONNX_KINDS["ConvTranspose"], 3)


def test_per_channel_range_and_rows_by_hand():
    kernel = np.array([[[-1.0, 2.0], [3.0, -4.0]], [[0.5, 0.0], [7.0, 1.0]]])  # (k 2, in 2, out 2)
    conv = Kind("kernel", (-1,), "conv")
    np.testing.assert_array_equal(per_channel_range(kernel, conv), [[-1.0, 7.0], [-4.0, 2.0]])
    np.testing.assert_array_equal(channel_rows(kernel, conv), [[-1.0, 3.0, 0.5, 7.0], [2.0, -4.0, 0.0, 1.0]])


def test_fold_runs_in_float64_and_casts_back():
    kernel = np.array([[1.0]], dtype=np.float16)
    affine = Affine(scale=np.array([1 + 2**-12]), shift=np.array([2**-13]))
    w, b = fold_kernel(kernel, None, affine, KERAS_KINDS["Dense"])
    assert w.dtype == np.float16 and b.dtype == np.float16
    assert w[0, 0] == np.float16(1 + 2**-12) and b[0] == np.float16(2**-13)
