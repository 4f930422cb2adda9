"""The tool a Keras model's fold is measured against: TensorFlow's TFLite converter (float32), which folds
every BN it can into the op before it (``fold.frontends.keras.converter``)."""

from __future__ import annotations

import keras

from fold.frontends.formats import Peer, installed_version
from fold.frontends.keras.converter import convert
from fold.frontends.tflite.model import TfliteModel


def _converted(model: keras.Model) -> tuple[str, TfliteModel]:
    return "tflite", convert(model)


#: The peers of Keras models.
PEERS: tuple[Peer, ...] = (Peer(f"tensorflow {installed_version('tensorflow', 'tensorflow-cpu')}",
                                "TFLite converter (float32)", _converted, ("ai_edge_litert",), "tflite"),)
