"""Keras frontend, real int8: TensorFlow's TFLite converter as the quantizer (full integer: int8
weights and activations, float input and output, calibrated on the given inputs; per channel by
default, per tensor with its ``_experimental_disable_per_channel`` switch) and LiteRT as the runtime,
every tensor kept (``experimental_preserve_all_tensors``).

A Keras layer's value in the int8 model is the output of the op the converter named after it last
(``fold.check.converter_nodes``: a Conv2D, its BN and its ReLU fused into one CONV_2D all name it),
dequantized with that tensor's own scale and zero point. The converter folds every BN itself before
it quantizes, so the "original" int8 model is the converter's own fold.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from fold.check import converter_nodes
from fold.errors import FoldError, one_line
from fold.frontends.keras import FRONTEND as KERAS
from fold.frontends.tflite import FRONTEND as TFLITE
from fold.frontends.tflite.int8 import run_rows
from fold.frontends.tflite.io import model_from_bytes
from fold.quiet import quiet

#: Keras tensors are channels-last.
CHANNEL_AXIS = -1


def quantize(model: keras.Model, inputs: Sequence[np.ndarray], *, per_channel: bool) -> bytes:
    """``model`` as a full-integer .tflite from TensorFlow's converter, calibrated on ``inputs``."""
    import tensorflow as tf

    rows = int(inputs[0].shape[0]) if inputs else 0
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([np.ascontiguousarray(x[i:i + 1]) for x in inputs]
                                                for i in range(rows))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter._experimental_disable_per_channel = not per_channel
    # Keras' export prints the traced signature on stdout, the quantizer its settings on stderr
    with quiet():
        try:
            return bytes(converter.convert())
        except Exception as exc:
            raise FoldError(f"TensorFlow's converter cannot quantize '{model.name}': {one_line(exc)}") from exc


def run_float(model: keras.Model, inputs: Sequence[np.ndarray], layers: Sequence[str]
              ) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """The Keras model's outputs and the named layers' outputs on ``inputs``."""
    tap = KERAS.tapper(model, list(layers))(list(inputs))
    return list(tap.outputs), dict(tap.nodes)


def run_int8(model: keras.Model, data: bytes, inputs: Sequence[np.ndarray], layers: Sequence[str]
             ) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """The int8 model's outputs and, dequantized, the value of each named Keras layer that an op
    stands for (``model``: the float Keras model it was converted from), one row at a time in LiteRT."""
    from fold.frontends.flatbuffer.view import view_of

    tflite = model_from_bytes(data, f"{model.name}_int8.tflite")
    stands_for = converter_nodes(KERAS.graph(model), TFLITE.graph(tflite))
    ends = [t._keras_history.operation.name for t in model.outputs]  # a model output is read as one
    view = view_of(tflite)  # a layer no op is named after (the converter fused it into another) is left out
    tensors = {layer: int(view.by_name[stands_for[layer]].output) for layer in layers
               if layer not in ends and layer in stands_for}
    outputs, got = run_rows(data, inputs, tensors)
    return outputs, {**{layer: outputs[ends.index(layer)] for layer in layers if layer in ends}, **got}
