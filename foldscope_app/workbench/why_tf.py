"""TensorFlow's side of the "why it works" walkthrough: the same TConv by ``tf.nn.conv2d_transpose``.

Kept apart from ``foldscope_app.workbench.why_math`` and ``foldscope_app.examples.tconv`` so the
walkthrough's math stays pure NumPy.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from foldscope_app.examples.tconv import tconv_output_size


def tensorflow_tconv(x: np.ndarray, kernel: np.ndarray, stride: int, padding: str) -> np.ndarray:
    """``tf.nn.conv2d_transpose`` of one (H, W, Cin) image with a (kh, kw, Cout, Cin) kernel, in float64."""
    h, w, _ = x.shape
    kh, kw, cout, _ = kernel.shape
    shape = (1, tconv_output_size(h, kh, stride, padding), tconv_output_size(w, kw, stride, padding), cout)
    out = tf.nn.conv2d_transpose(tf.constant(x[None], tf.float64), tf.constant(kernel, tf.float64), shape,
                                 strides=stride, padding=padding.upper())
    return out.numpy()[0]
