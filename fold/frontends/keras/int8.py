"""Keras frontend, real int8: TensorFlow's TFLite converter as the quantizer (full integer: int8
weights and activations, float input and output, calibrated on the given inputs; per channel by
default, per tensor with its ``_experimental_disable_per_channel`` switch) and LiteRT as the runtime,
every tensor kept (``experimental_preserve_all_tensors``).

A Keras layer's value in the int8 model is the output of the op the converter named after it last
(``fold.frontends.keras.converter.converter_nodes``: a Conv2D, its BN and its ReLU fused into one CONV_2D all name it),
dequantized with that tensor's own scale and zero point. The converter folds every BN itself before
it quantizes, so the "original" int8 model is the converter's own fold.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from fold.core.errors import FoldError, one_line
from fold.core.quiet import quiet
from fold.core.result import FoldResult
from fold.frontends.keras import FRONTEND as KERAS
from fold.frontends.keras.converter import converter_nodes
from fold.frontends.tflite import FRONTEND as TFLITE
from fold.frontends.tflite.int8 import RUNTIME, run_rows, runtime_version
from fold.frontends.tflite.io import model_from_bytes

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


def _is_relu(data: dict) -> bool:
    """A ReLU (ReLU6 included), which TensorFlow's converter fuses into the layer before it."""
    config = data.get("config") or {}
    return data.get("op") == "ReLU" or data.get("op") == "Activation" and config.get("activation") in ("relu", "relu6")


class Adapter:
    """``fold.frontends.formats.Int8Adapter`` of Keras models: TensorFlow's converter as the quantizer and LiteRT
    as the runtime, a layer judged by Keras layer name: the BN in the original, the layer that absorbed it in a
    fold."""

    name = RUNTIME
    channel_axis = CHANNEL_AXIS
    original_note = ("original_per_tensor is the converter's own fold: TensorFlow's converter folds every BN before it "
                     "quantizes.")

    def __init__(self) -> None:
        self.version = runtime_version()

    def judged(self, result: FoldResult) -> dict[str, tuple[str, str]]:
        graph = result.graph_before
        found = {}
        for d in result.backward_pairs:
            after = list(graph.successors(d.bn)) if d.bn in graph else []
            relu = after[0] if len(after) == 1 and _is_relu(graph.nodes[after[0]]) and \
                after[0] not in graph.graph.get("outputs", []) and graph.out_degree(d.bn) == 1 else None
            found[d.layer] = (relu or d.bn, relu or d.layer)
        return found

    def run_float(self, model: keras.Model, inputs: list[np.ndarray], points: list[str]):
        return run_float(model, inputs, points)

    def run_int8(self, model: keras.Model, inputs: list[np.ndarray], points: list[str], *, per_channel: bool,
                 keep_float: list[str]):
        return run_int8(model, quantize(model, inputs, per_channel=per_channel), inputs, points)
