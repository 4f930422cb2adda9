"""Tests for foldscope_app.examples.tconv, foldscope_app.workbench.why_math and viz.explain: every step's
numbers against TensorFlow / Keras."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib

matplotlib.use("Agg")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from fold.core.affine import bn_affine  # noqa: E402
from foldscope_app.examples.seed import seed_input  # noqa: E402
from foldscope_app.examples.tconv import (  # noqa: E402
    flip_kernel,
    tconv,
    tconv_as_conv,
    tconv_output_size,
    tconv_stamps,
    zero_insert,
)
from foldscope_app.workbench import why_math  # noqa: E402
from foldscope_app.workbench.why_math import (  # noqa: E402
    apply_1x1,
    bn_as_1x1,
    counter_activation,
    counter_bn_before,
    counter_fanout,
    fold_tconv,
    seed_example,
    seed_example_2,
    walkthrough,
)
from tests.seed_note import EXAMPLE_2, NUMPY_BN, OFFSET, SCALE  # noqa: E402
from viz.explain import (  # noqa: E402
    annotated_grid,
    bn_1x1_figure,
    bn_before_figure,
    conv_figure,
    counterexample_figure,
    fold_figure,
    padding_figure,
    stamps_figure,
)

CASES = [(s, p, cout) for s in (1, 2) for p in ("VALID", "SAME") for cout in (1, 2)]


def keras_length(n: int, k: int, s: int, padding: str) -> int:
    """Keras deconv_output_length without output_padding (independent of foldscope_app.workbench.why_math)."""
    return n * s + max(k - s, 0) if padding == "VALID" else n * s


def tf_tconv(x: np.ndarray, kernel: np.ndarray, stride: int, padding: str) -> np.ndarray:
    """tf.nn.conv2d_transpose of one (H, W, Cin) image, float64, output shape as Keras computes it."""
    (h, w, _), (kh, kw, cout, _) = x.shape, kernel.shape
    shape = (1, keras_length(h, kh, stride, padding), keras_length(w, kw, stride, padding), cout)
    return tf.nn.conv2d_transpose(x[None], kernel, shape, stride, padding).numpy()[0]


def keras_tconv_bn(x, kernel, bias, bn, stride, padding, between=()):
    """Keras Conv2DTranspose (+ layers in between) + BatchNormalization with set weights, float32."""
    cout = kernel.shape[2]
    tconv_layer = keras.layers.Conv2DTranspose(cout, kernel.shape[:2], strides=stride, padding=padding.lower())
    bn_layer = keras.layers.BatchNormalization(epsilon=bn["eps"])
    model = keras.Sequential([keras.Input(x.shape), tconv_layer, *between, bn_layer])
    tconv_layer.set_weights([kernel, bias])
    bn_layer.set_weights([np.asarray(bn[k], dtype=np.float32) for k in ("gamma", "beta", "mean", "var")])
    return model(x[None].astype(np.float32), training=False).numpy()[0]


def random_bn(rng: np.random.Generator, c: int) -> dict:
    return {
        "gamma": rng.uniform(-2, 2, c),
        "beta": rng.normal(size=c),
        "mean": rng.normal(size=c),
        "var": rng.uniform(0.1, 3, c),
        "eps": 1e-3,
    }


# --- Steps 1 and 2 against tf.nn.conv2d_transpose -------------------------------------------


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", ["VALID", "SAME"])
@pytest.mark.parametrize("cout", [1, 2])
@pytest.mark.parametrize("kernel_hw", [(3, 3), (4, 2), (1, 1)])
def test_scatter_and_conv_match_tf(stride, padding, cout, kernel_hw):
    rng = np.random.default_rng(stride * 100 + cout * 10 + kernel_hw[0])
    x = rng.normal(size=(2, 3, 3))
    kernel = rng.normal(size=(*kernel_hw, cout, 3))
    expected = tf_tconv(x, kernel, stride, padding)
    stamps, scatter = tconv_stamps(x, kernel, stride, padding)
    _, _, conv = tconv_as_conv(x, kernel, stride, padding)
    assert stamps.shape[:3] == x.shape
    assert scatter.shape == expected.shape
    np.testing.assert_allclose(scatter, expected, atol=1e-12)
    np.testing.assert_allclose(conv, expected, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_output_size_matches_keras_layer(stride, padding):
    layer = keras.layers.Conv2DTranspose(2, (3, 4), strides=stride, padding=padding.lower())
    _, h, w, _ = layer.compute_output_shape((1, 5, 2, 3))
    assert (h, w) == (tconv_output_size(5, 3, stride, padding), tconv_output_size(2, 4, stride, padding))


def test_each_stamp_is_the_pixel_times_the_kernel():
    x, kernel = seed_input()
    stamps, _ = tconv_stamps(x, kernel, 2, "VALID")
    np.testing.assert_array_equal(stamps[1, 0, 0, 2:5, 0:3, 0], np.full((3, 3), 3.0))
    assert stamps[1, 0, 0].sum() == 27.0


def test_zero_insert_and_flip():
    x = np.arange(1.0, 5.0).reshape(2, 2, 1)
    np.testing.assert_array_equal(zero_insert(x, 2)[:, :, 0], [[1, 0, 2], [0, 0, 0], [3, 0, 4]])
    kernel = np.arange(12.0).reshape(2, 3, 2, 1)  # (kh, kw, Cout=2, Cin=1)
    flipped = flip_kernel(kernel)
    assert flipped.shape == (2, 3, 1, 2)
    np.testing.assert_array_equal(flipped[0, 0, 0, 1], kernel[1, 2, 1, 0])


def test_tconv_as_conv_matches_tf_conv2d():
    rng = np.random.default_rng(1)
    x, kernel = rng.normal(size=(3, 2, 2)), rng.normal(size=(3, 3, 3, 2))
    padded, flipped, out = tconv_as_conv(x, kernel, 2, "SAME")
    expected = tf.nn.conv2d(padded[None], flipped, 1, "VALID").numpy()[0]
    np.testing.assert_allclose(out, expected, atol=1e-12)


# --- Step 3: BN as a 1x1 conv ---------------------------------------------------------------


def test_bn_as_1x1_matches_tf_batch_norm():
    rng = np.random.default_rng(2)
    y, bn = rng.normal(size=(4, 5, 3)), random_bn(rng, 3)
    kernel, bias = bn_as_1x1(bn_affine(bn["mean"], bn["var"], bn["eps"], bn["gamma"], bn["beta"]))
    assert kernel.shape == (1, 1, 3, 3) and bias.shape == (3,)
    assert np.count_nonzero(kernel[0, 0] - np.diag(np.diag(kernel[0, 0]))) == 0
    expected = tf.nn.batch_normalization(y, bn["mean"], bn["var"], bn["beta"], bn["gamma"], bn["eps"]).numpy()
    np.testing.assert_allclose(apply_1x1(y, kernel, bias), expected, atol=1e-12)
    np.testing.assert_allclose(tf.nn.conv2d(y[None], kernel, 1, "VALID").numpy()[0] + bias, expected, atol=1e-12)


# --- Step 4: the whole walkthrough against Keras layers -------------------------------------


@pytest.mark.parametrize("stride,padding,cout", CASES)
def test_walkthrough_matches_keras(stride, padding, cout):
    rng = np.random.default_rng(stride * 10 + cout)
    x, kernel, bias = rng.normal(size=(3, 2, 3)), rng.normal(size=(3, 3, cout, 3)), rng.normal(size=cout)
    bn = random_bn(rng, cout)
    w = walkthrough(x, kernel, bias, bn["gamma"], bn["beta"], bn["mean"], bn["var"], bn["eps"], stride, padding)
    expected = keras_tconv_bn(x, kernel, bias, bn, stride, padding)
    assert w.folded_output.shape == expected.shape
    np.testing.assert_allclose(w.bn_output, expected, atol=1e-4)
    np.testing.assert_allclose(w.folded_output, expected, atol=1e-4)
    assert w.folded_kernel.shape == kernel.shape
    assert max(w.diffs.values()) < 1e-12


def test_fold_tconv_scales_the_output_axis():
    kernel = np.ones((3, 3, 2, 4))  # Cout=2 != Cin=4: a wrong axis would fail to broadcast or mis-scale
    affine = bn_affine([0.0, 1.0], [1.0, 4.0], 0.0, [1.0, 2.0], [0.0, 0.5])
    folded_kernel, folded_bias = fold_tconv(kernel, None, affine)
    np.testing.assert_array_equal(folded_kernel[:, :, 0], 1.0)
    np.testing.assert_array_equal(folded_kernel[:, :, 1], 1.0)
    np.testing.assert_allclose(folded_bias, [0.0, -0.5])
    affine = bn_affine([0.0, 0.0], [1.0, 1.0], 0.0, [2.0, 3.0], None)
    folded_kernel, _ = fold_tconv(kernel, None, affine)
    np.testing.assert_array_equal(folded_kernel[0, 0], [[2.0] * 4, [3.0] * 4])


def test_seed_example_reproduces_printout():
    w = seed_example()
    np.testing.assert_allclose(w.bn_output[:, :, 0], NUMPY_BN, atol=1e-5)
    np.testing.assert_allclose(w.folded_output[:, :, 0], NUMPY_BN, atol=1e-5)
    assert w.bn_output[0, 0, 0] == pytest.approx(NUMPY_BN[0, 0], abs=1e-5)  # -1.6051569
    assert w.bn_output[1, 1, 0] == pytest.approx(NUMPY_BN[1, 1], abs=1e-5)  # 1.5475807
    assert w.bn_output[3, 0, 0] == pytest.approx(NUMPY_BN[3, 0], abs=1e-5)  # -0.90454847
    y = w.tconv_output[None].astype(np.float32)
    tf_bn = tf.compat.v1.nn.fused_batch_norm(
        y, [SCALE], [OFFSET], mean=[np.mean(y)], variance=[np.var(y)], epsilon=0.0, is_training=False
    )[0].numpy()[0]
    np.testing.assert_allclose(w.folded_output, tf_bn, atol=1e-5)


def test_seed_example_2_matches_fused_batch_norm():
    w = seed_example_2()
    y = tf_tconv(*seed_input(), 1, "VALID").astype(np.float32)
    tf_bn = tf.compat.v1.nn.fused_batch_norm(
        y[None],
        [EXAMPLE_2["gamma"]],
        [EXAMPLE_2["beta"]],
        mean=[EXAMPLE_2["mean"]],
        variance=[EXAMPLE_2["var"]],
        epsilon=EXAMPLE_2["eps"],
        is_training=False,
    )[0].numpy()[0]
    assert np.max(np.abs(w.folded_output - tf_bn)) < 1e-5
    assert w.diff_folded_vs_bn < 1e-12


@pytest.mark.parametrize(
    "bad", [{"padding": "FULL"}, {"stride": 0}, {"kernel": np.ones((3, 3, 1, 2))}, {"x": np.ones((1, 2, 2, 1))}]
)
def test_bad_arguments_are_named(bad):
    x, kernel = seed_input()
    args = {"x": x, "kernel": kernel, "stride": 1, "padding": "VALID"} | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        tconv(**args)


# --- Step 5: where folding stops working ----------------------------------------------------


def seed_bn():
    """The first seed example's BN: scale 1.05, offset 0.015, mean/var of the seed TConv output."""
    return seed_example().affine


@pytest.mark.parametrize("stride,padding", [(1, "VALID"), (2, "SAME")])
def test_counter_activation_differs(stride, padding):
    x, kernel = seed_input()
    c = counter_activation(x, kernel, seed_bn(), stride, padding)
    assert c.max_abs_diff > 0.1
    assert c.why
    # The reference is what Keras computes with a ReLU between the layers.
    y = seed_example().tconv_output
    bn = {"gamma": [SCALE], "beta": [OFFSET], "mean": [np.mean(y)], "var": [np.var(y)], "eps": 0.0}
    expected = keras_tconv_bn(x, kernel, np.zeros(1), bn, stride, padding, between=[keras.layers.ReLU()])
    np.testing.assert_allclose(c.reference, expected, atol=1e-4)


def test_counter_activation_NEG_positive_affine_changes_nothing():
    # s > 0, t >= 0 and y >= 0: ReLU never clips, so the naive fold is exact here.
    x, kernel = seed_input()
    c = counter_activation(x, kernel, bn_affine([0.0], [1.0], 0.0, [2.0], [0.5]))
    assert c.max_abs_diff < 1e-12


@pytest.mark.parametrize("stride,padding", [(1, "VALID"), (1, "SAME"), (2, "VALID"), (2, "SAME")])
def test_counter_bn_before_differs_and_tap_map_is_not_constant(stride, padding):
    # 4x4 input: with the seed's 2x2, stride 1 SAME gives 4 taps everywhere (still != 9 taps).
    x, kernel = np.arange(1.0, 17.0).reshape(4, 4, 1), seed_input()[1]
    affine = bn_affine([np.mean(x)], [np.var(x)], 0.0, [SCALE], [OFFSET])
    c = counter_bn_before(x, kernel, affine, stride, padding)
    assert c.max_abs_diff > 0.1
    assert np.ptp(c.tap_count) > 0
    np.testing.assert_allclose(c.shift_map[:, :, 0], c.tap_count * affine.shift[0], atol=1e-12)
    expected = tf_tconv(affine.scale * x + affine.shift, kernel, stride, padding)
    np.testing.assert_allclose(c.reference, expected, atol=1e-12)


def test_counter_bn_before_tap_count_of_the_seed():
    x, kernel = seed_input()
    c = counter_bn_before(x, kernel, bn_affine([0.0], [1.0], 0.0, [1.0], [1.0]))
    np.testing.assert_array_equal(c.tap_count, [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_counter_bn_before_NEG_zero_shift_folds():
    # Only the shift breaks it: with t = 0 the scale folds into the input channels exactly.
    rng = np.random.default_rng(3)
    x, kernel = rng.normal(size=(3, 3, 2)), rng.normal(size=(3, 3, 2, 2))
    c = counter_bn_before(x, kernel, bn_affine([0.0, 0.0], [1.0, 4.0], 0.0, [1.5, -1.0], None), 2, "SAME")
    assert c.max_abs_diff < 1e-12


def test_counter_fanout_differs_and_matches_keras_residual():
    x, kernel = seed_input()
    affine = seed_bn()
    c = counter_fanout(x, kernel, affine, 2, "SAME")
    assert c.max_abs_diff > 0.1
    inp = keras.Input((2, 2, 1))
    tconv_layer = keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same", use_bias=False)
    bn_layer = keras.layers.BatchNormalization(epsilon=0.0)
    y = tconv_layer(inp)
    model = keras.Model(inp, keras.layers.Add()([bn_layer(y), y]))
    tconv_layer.set_weights([kernel])
    bn_layer.set_weights([affine.scale, affine.shift, np.zeros(1), np.ones(1)])
    expected = model(x[None].astype(np.float32), training=False).numpy()[0]
    np.testing.assert_allclose(c.reference, expected, atol=1e-4)


# --- viz ----------------------------------------------------------------------------------


def test_annotated_grid_writes_every_value():
    fig = matplotlib.figure.Figure()
    ax = fig.add_subplot()
    annotated_grid(ax, np.array([[1.0, -2.5], [0.0, 4.0]]), "grid")
    assert [t.get_text() for t in ax.texts] == ["1", "-2.5", "0", "4"]
    assert len(ax.images) == 1 and ax.get_title() == "grid"


def test_step_figures_of_the_seed():
    w = seed_example()
    fig = stamps_figure(w)
    assert len(fig.axes) == 4 + 2 and all(len(ax.images) == 1 for ax in fig.axes)
    assert fig.axes[3].texts[5].get_text() == "4"  # x[1,1] = 4 stamps 4 at canvas (1, 1)
    assert [t.get_text() for t in fig.axes[-1].texts] == "1 3 3 2 4 10 10 6 4 10 10 6 3 7 7 4".split()
    assert len(fig.axes[-2].patches) == 1  # TF's crop window
    fig = conv_figure(w)
    assert len(fig.axes) == 3
    assert fig.axes[0].images[0].get_array().shape == (6, 6)
    assert [t.get_text() for t in fig.axes[2].texts][:4] == ["1", "3", "3", "2"]
    fig = bn_1x1_figure(w)
    assert len(fig.axes) == 3
    assert [t.get_text() for t in fig.axes[0].texts] == [f"{w.affine.scale[0]:.3g}"]
    fig = fold_figure(w)
    assert len(fig.axes) == 5
    assert "-1.61" in [t.get_text() for t in fig.axes[2].texts]
    assert "-1.61" in [t.get_text() for t in fig.axes[3].texts]


def test_step_figures_with_two_channels_and_given_axes():
    rng = np.random.default_rng(4)
    bn = random_bn(rng, 2)
    w = walkthrough(rng.normal(size=(2, 2, 3)), rng.normal(size=(3, 3, 2, 3)), None, **bn, stride=2, padding="SAME")
    assert len(stamps_figure(w, out_channel=1).axes) == 2 * 2 * 3 + 2
    assert len(conv_figure(w, out_channel=1).axes) == 7
    assert len(fold_figure(w, out_channel=1).axes) == 7
    fig = matplotlib.figure.Figure()
    axes = fig.subplots(1, 3)
    assert bn_1x1_figure(w, axes=axes) is fig
    assert len(fig.axes[0].texts) == 4
    with pytest.raises(ValueError, match="needs 3 axes"):
        bn_1x1_figure(w, axes=axes[:2])


def test_counterexample_figures():
    x, kernel = seed_input()
    fig = counterexample_figure(counter_fanout(x, kernel, seed_bn()))
    assert len(fig.axes) == 3 and all(len(ax.texts) == 16 for ax in fig.axes)
    c = counter_bn_before(x, kernel, bn_affine([0.0], [1.0], 0.0, [1.0], [1.0]))
    fig = bn_before_figure(c)
    assert len(fig.axes) == 5
    assert [t.get_text() for t in fig.axes[0].texts][:4] == ["1", "2", "2", "1"]


@pytest.mark.parametrize("stride,padding,channels", [(1, "VALID", 1), (2, "SAME", 2), (2, "VALID", 2)])
def test_demo_and_its_counterexamples(stride, padding, channels):
    w = why_math.demo(3, stride, padding, channels, random_kernel=True)
    assert max(w.diffs.values()) < 1e-9 and w.kernel.shape == (3, 3, channels, 1)
    cases = why_math.counterexamples(w)
    assert len(cases) == 4 and min(c.max_abs_diff for c in cases.values()) > 1e-3


def _np_same_conv(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """A stride-1 SAME convolution with zero padding, element by element (the test's own reference)."""
    kh, kw, _, cout = kernel.shape
    h, w, _ = x.shape
    out = np.zeros((h, w, cout))
    for i, j, a, b in np.ndindex(h, w, kh, kw):
        r, c = i + a - (kh - 1) // 2, j + b - (kw - 1) // 2
        if 0 <= r < h and 0 <= c < w:
            out[i, j] += x[r, c] @ kernel[a, b]
    return out


def test_counter_padding_differs_exactly_at_the_border():
    """BN before a zero-padded 3x3 convolution, on a 4x4 input with two input channels: the naive forward
    fold equals the true output on the 2x2 interior and differs on the border by W t over the padded taps."""
    rng = np.random.default_rng(7)
    x, kernel = rng.normal(size=(4, 4, 2)), rng.normal(size=(3, 3, 2, 3))
    affine = bn_affine([0.3, -0.2], [1.2, 0.7], 1e-3, [1.5, 0.8], [0.4, -0.9])
    c = why_math.counter_padding(x, kernel, affine)
    np.testing.assert_allclose(c.reference, _np_same_conv(affine.scale * x + affine.shift, kernel), atol=1e-12)
    np.testing.assert_array_equal(c.real_taps, [[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]])
    diff = c.naive - c.reference
    np.testing.assert_allclose(diff[1:3, 1:3], 0.0, atol=1e-12)
    corner = sum(affine.shift @ kernel[a, b] for a, b in np.ndindex(3, 3) if a == 0 or b == 0)  # taps above and left
    np.testing.assert_allclose(diff[0, 0], corner, rtol=1e-12)
    np.testing.assert_allclose(diff, c.border, atol=1e-12)
    assert c.max_abs_diff == pytest.approx(float(np.abs(c.border).max()))


def test_counter_padding_NEG_zero_shift_folds():
    rng = np.random.default_rng(8)
    x, kernel = rng.normal(size=(3, 3, 2)), rng.normal(size=(3, 3, 2, 2))
    c = why_math.counter_padding(x, kernel, bn_affine([0.0, 0.0], [1.0, 4.0], 0.0, [1.5, -1.0], None))
    assert c.max_abs_diff < 1e-12 and not np.any(c.border)


def test_padding_figure():
    w = why_math.demo(3, 1, "SAME", 2, random_kernel=True)
    fig = padding_figure(why_math.counterexamples(w)["BN before a zero-padded convolution"], 1)
    assert len(fig.axes) == 5 and [t.get_text() for t in fig.axes[0].texts] == ["4", "6", "4", "6", "9", "6", "4",
                                                                               "6", "4"]
