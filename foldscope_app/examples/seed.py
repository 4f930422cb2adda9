"""The seed note's example, in one place: its constants, and the same TConv + BN as NumPy,
as a Keras model and as TensorFlow ops.

The note (``shared/seed.md``) runs a VALID, stride-1 ``conv2d_transpose`` of the 2x2 input
1..4 with a 3x3 all-ones kernel (a 4x4 output), then a BatchNorm two ways:

- example 1: scale 1.05, offset 0.015, the TConv output's own mean and variance, epsilon 0;
- example 2: the BN constants of its second listing (a trained Keras BN's values).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from foldscope_app.examples.tconv import tconv


@dataclass(frozen=True)
class SeedBN:
    """One BatchNorm of the note; ``mean``/``variance`` None mean "the TConv output's own"."""

    gamma: float
    beta: float
    mean: float | None
    variance: float | None
    epsilon: float


#: The 2x2 input 1..4 as (H, W, Cin) and the 3x3 all-ones kernel as (kh, kw, Cout, Cin).
INPUT_HW = np.arange(1.0, 5.0).reshape(2, 2)
KERNEL_HW = np.ones((3, 3))
OUTPUT_SHAPE = (1, 4, 4, 1)

EXAMPLE_1 = SeedBN(gamma=1.05, beta=0.015, mean=None, variance=None, epsilon=0.0)
EXAMPLE_2 = SeedBN(gamma=1.0177339315414429, beta=0.015628524124622345, mean=1.027155211195349693,
                   variance=0.25580066442489624, epsilon=0.0010000000474974513)


def seed_input() -> tuple[np.ndarray, np.ndarray]:
    """The input (2, 2, 1) and the kernel (3, 3, 1, 1), float64."""
    return INPUT_HW[:, :, None].copy(), KERNEL_HW[:, :, None, None].copy()


def seed_batch() -> np.ndarray:
    """The input as the note feeds it: a float32 batch (1, 2, 2, 1)."""
    return INPUT_HW.reshape(1, 2, 2, 1).astype(np.float32)


def tconv_output() -> np.ndarray:
    """The TConv's 4x4 output (H, W, 1) in float64."""
    x, kernel = seed_input()
    return tconv(x, kernel, 1, "VALID")


def statistics(bn: SeedBN) -> tuple[float, float]:
    """(mean, variance) of ``bn``: its own, or the TConv output's when it has none."""
    y = tconv_output()
    return (float(y.mean()) if bn.mean is None else bn.mean,
            float(y.var()) if bn.variance is None else bn.variance)


def numpy_batch_norm() -> np.ndarray:
    """The note's ``batch_norm`` in NumPy: (y - mean) / std * scale + offset of the TConv output."""
    y = tconv_output()
    return (y - y.mean()) / y.std() * EXAMPLE_1.gamma + EXAMPLE_1.beta


def keras_model(bn: SeedBN = EXAMPLE_1):
    """The TConv + BN as a Keras model (input "x", layers "tconv" and "bn")."""
    import keras

    inp = keras.Input((2, 2, 1), name="x")
    tconv = keras.layers.Conv2DTranspose(1, 3, padding="valid", use_bias=False, name="tconv")
    layer = keras.layers.BatchNormalization(epsilon=bn.epsilon, name="bn")
    model = keras.Model(inp, layer(tconv(inp)), name="seed")
    tconv.kernel.assign(seed_input()[1].astype(np.float32))
    mean, variance = statistics(bn)
    layer.set_weights([np.array([bn.gamma]), np.array([bn.beta]), np.array([mean]), np.array([variance])])
    return model


def graph_def(bn: SeedBN = EXAMPLE_2):
    """The note's second listing as TensorFlow ops: placeholder "Hole", conv2d_transpose, fused_batch_norm."""
    import tensorflow as tf

    mean, variance = statistics(bn)
    graph = tf.Graph()
    with graph.as_default():
        hole = tf.compat.v1.placeholder(tf.float32, shape=(1, 2, 2, 1), name="Hole")
        filter_ = tf.compat.v1.constant(seed_input()[1], dtype=tf.float32)
        tconv = tf.compat.v1.nn.conv2d_transpose(hole, filter_, output_shape=OUTPUT_SHAPE,
                                                 strides=[1, 1, 1, 1], padding="VALID")
        scale, offset, mean_, variance_ = (tf.compat.v1.constant([v], dtype=tf.float32)
                                           for v in (bn.gamma, bn.beta, mean, variance))
        tf.compat.v1.nn.fused_batch_norm(tconv, scale, offset, mean=mean_, variance=variance_,
                                         epsilon=bn.epsilon, is_training=False)
    return graph.as_graph_def()


def two_bn_model():
    """The note's TConv with both of its BatchNorms side by side: two output channels of the same
    all-ones kernel, example 1's BN on channel 0 and example 2's on channel 1 (input "x", layers
    "tconv" and "bn"). One channel, as the note has it, quantizes exactly at every granularity; two
    BNs with scales 2.4x apart are the smallest case where one int8 scale per tensor loses.

    Keras gives a BN one epsilon (example 2's); channel 0's variance takes up the difference, so its
    ``variance + epsilon`` is example 1's."""
    import keras

    inp = keras.Input((2, 2, 1), name="x")
    tconv = keras.layers.Conv2DTranspose(2, 3, padding="valid", use_bias=False, name="tconv")
    layer = keras.layers.BatchNormalization(epsilon=EXAMPLE_2.epsilon, name="bn")
    model = keras.Model(inp, layer(tconv(inp)), name="seed_two_bns")
    tconv.kernel.assign(np.ones((3, 3, 2, 1), dtype=np.float32))
    (mean_1, var_1), (mean_2, var_2) = statistics(EXAMPLE_1), statistics(EXAMPLE_2)
    variance = [var_1 + EXAMPLE_1.epsilon - EXAMPLE_2.epsilon, var_2]
    layer.set_weights([np.array([EXAMPLE_1.gamma, EXAMPLE_2.gamma]), np.array([EXAMPLE_1.beta, EXAMPLE_2.beta]),
                       np.array([mean_1, mean_2]), np.array(variance)])
    return model
