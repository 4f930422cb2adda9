"""The folding math against values computed by hand (``fold.core.affine``)."""

from __future__ import annotations

import numpy as np
import pytest

from fold.core.affine import (
    Affine, bn_affine, channel_rows, channel_view, compose, fold_all, fold_forward, fold_kernel, per_channel_range,
    scale_kernel, taken,
)
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


def test_compose_by_hand_and_against_applying_the_maps_in_turn():
    first = Affine(np.array([2.0, -1.0]), np.array([1.0, 3.0]), np.array([1.5, 3.0]))
    then = Affine(np.array([0.5, 4.0]), np.array([-1.0, 2.0]), np.array([1.0, 2.0]), steps=2)
    both = compose(first, then)
    np.testing.assert_array_equal(both.scale, [1.0, -4.0])      # 0.5 * 2, 4 * -1
    np.testing.assert_array_equal(both.shift, [-0.5, 14.0])     # 0.5 * 1 - 1, 4 * 3 + 2
    np.testing.assert_array_equal(both.terms, [1.75, 14.0])     # 0.5 * 1.5 + 1, 4 * 3 + 2
    assert both.steps == 3
    x = np.random.default_rng(0).normal(size=(5, 2))
    np.testing.assert_allclose(x * both.scale + both.shift, (x * first.scale + first.shift) * then.scale + then.shift)
    assert compose(first, Affine(np.ones(2), np.zeros(2))).terms is None
    with pytest.raises(ValueError, match="at least one"):
        compose()


def test_taken_gives_each_feature_its_channels_map():
    a = Affine(np.array([2.0, 3.0]), np.array([-1.0, 1.0]), np.array([1.0, 1.0]))
    nchw = taken(a, np.repeat([0, 1], 3))   # ONNX Flatten of (C 2, H*W 3): feature f is channel f // 3
    np.testing.assert_array_equal(nchw.scale, [2, 2, 2, 3, 3, 3])
    nhwc = taken(a, np.tile([0, 1], 3))     # a channels-last Flatten: feature f is channel f % 2
    np.testing.assert_array_equal(nhwc.shift, [-1, 1, -1, 1, -1, 1])


def _conv_nchw(x: np.ndarray, w: np.ndarray, b: np.ndarray, groups: int = 1, pad: int = 0) -> np.ndarray:
    """A direct float64 convolution, ONNX layout (x (N, C, H, W), w (O, C/groups, kh, kw)), stride 1,
    zero padding ``pad``: the test's own reference, no code shared with foldscope."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    out = np.zeros((n, o, h - kh + 1, wd - kw + 1))
    per_group = o // groups
    for oc in range(o):
        g = oc // per_group
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                patch = x[:, g * cg:(g + 1) * cg, i:i + kh, j:j + kw]
                out[:, oc, i, j] = np.sum(patch * w[oc], axis=(1, 2, 3)) + b[oc]
    return out


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_forward_fold_into_an_unpadded_onnx_conv_matches_the_map_then_the_conv(groups):
    rng = np.random.default_rng(groups)
    cin, cout = 4, 8  # in != out; groups 4 with 8 outputs is depthwise with multiplier 2
    w = rng.normal(size=(cout, cin // groups, 3, 2))
    b = rng.normal(size=cout)
    a = Affine(rng.uniform(0.5, 2.0, cin), rng.normal(size=cin))
    x = rng.normal(size=(2, cin, 5, 6))
    w2, b2 = fold_forward(w, b, a, ONNX_KINDS["Conv"], groups)
    want = _conv_nchw(x * a.scale[None, :, None, None] + a.shift[None, :, None, None], w, b, groups)
    np.testing.assert_allclose(_conv_nchw(x, w2, b2, groups), want, rtol=1e-12, atol=1e-12)


def test_forward_fold_into_a_padded_conv_differs_at_the_border_only():
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(3, 2, 3, 3)), np.zeros(3)
    a = Affine(np.array([1.5, 0.5]), np.array([1.0, -2.0]))
    x = rng.normal(size=(1, 2, 6, 6))
    w2, b2 = fold_forward(w, b, a, ONNX_KINDS["Conv"])
    diff = _conv_nchw(x, w2, b2, pad=1) - _conv_nchw(x * a.scale[None, :, None, None] + a.shift[None, :, None, None],
                                                     w, b, pad=1)
    assert np.abs(diff[:, :, 1:-1, 1:-1]).max() < 1e-12
    # the corner output's top row and left column of taps read padding: the folded bias adds w t for them
    border = w * a.shift[None, :, None, None]
    np.testing.assert_allclose(diff[0, :, 0, 0], border[:, :, 0, :].sum(axis=(1, 2)) + border[:, :, 1:, 0].sum(axis=(1, 2)),
                               rtol=1e-12)


def test_forward_fold_into_dense_gemm_and_depthwise_layouts_by_hand():
    a = Affine(np.array([2.0, 3.0]), np.array([1.0, -1.0]))
    dense = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # Keras Dense (in 2, out 3)
    w, b = fold_forward(dense, np.array([0.5, 0.5, 0.5]), a, KERAS_KINDS["Dense"])
    np.testing.assert_array_equal(w, [[2, 4, 6], [12, 15, 18]])
    np.testing.assert_array_equal(b, [0.5 + 1 - 4, 0.5 + 2 - 5, 0.5 + 3 - 6])
    wt, bt = fold_forward(dense.T, None, a, ONNX_KINDS["Gemm/transB"])  # (N 3, K 2)
    np.testing.assert_array_equal(wt, w.T)
    np.testing.assert_array_equal(bt, b - 0.5)
    depthwise = np.ones((1, 2, 2, 2))  # Keras (kh 1, kw 2, in 2, multiplier 2): output c * 2 + m reads input c
    wd, bd = fold_forward(depthwise, None, a, KERAS_KINDS["DepthwiseConv2D"])
    np.testing.assert_array_equal(wd[0, 0], [[2, 2], [3, 3]])
    np.testing.assert_array_equal(bd, [2, 2, -2, -2])  # two taps of t each
    tflite, bt2 = fold_forward(np.ones((1, 1, 2, 4)), None, a, TFLITE_KINDS["DEPTHWISE_CONV_2D"])
    np.testing.assert_array_equal(tflite[0, 0, 0], [2, 2, 3, 3])
    np.testing.assert_array_equal(bt2, [2, 2, -2, -2])
    with pytest.raises(ValueError, match="does not read 2 input channels"):
        fold_forward(np.ones((1, 1, 1, 3)), None, a, TFLITE_KINDS["DEPTHWISE_CONV_2D"])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("kind, shape, groups", [(ONNX_KINDS["Conv"], (6, 2, 3, 3), 2),
                                                 (ONNX_KINDS["ConvTranspose"], (4, 3, 2, 2), 2),
                                                 (KERAS_KINDS["Dense"], (5, 6), 1)])
def test_one_backward_fold_takes_no_float64_copy_and_gives_the_same_numbers(dtype, kind, shape, groups):
    """``fold_all`` of a single map into the output side (scaled in the kernel's dtype by one ufunc)
    equals the float64 path bit for bit: the same folds followed by an identity map, and the product
    computed in float64 and rounded once."""
    rng = np.random.default_rng(7)
    kernel = rng.normal(size=shape).astype(dtype)
    channels = channel_rows(kernel, kind, groups).shape[0]
    affine = Affine(rng.uniform(-3, 3, channels), rng.normal(size=channels))
    for bias in (None, rng.normal(size=channels)):
        w, b = fold_all(kernel, bias, [("backward", affine)], kind, groups)
        identity = Affine(np.ones(channels), np.zeros(channels))
        w64, b64 = fold_all(kernel, bias, [("backward", affine), ("backward", identity)], kind, groups)
        assert w.dtype == dtype and np.array_equal(w, w64) and np.array_equal(b, b64)
        by_hand = scale_kernel(kernel.astype(np.float64), affine.scale, kind, groups).astype(dtype)
        assert np.array_equal(w, by_hand)
        assert np.array_equal(b, (0.0 if bias is None else bias) * affine.scale + affine.shift)
