"""The TFLite frontend: .tflite flatbuffers, folded where Samsung ONE's FuseBatchNormWithTConv does.

What TFLite shares with circle (its schema extended) lives in ``fold.frontends.flatbuffer``: the view,
the candidates, the rules, the rewrite and the layers-alone model. Here:

    model.py    LiteRT's schema (``TFLITE_SCHEMA``) and the model with its one LiteRT interpreter
    io.py       read and check the bytes, describe and run the model with LiteRT
    int8.py     ai-edge-quantizer and LiteRT for ``--int8``
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import version

import numpy as np

from fold.core.verification import InputSpec, OutputSpec
from fold.frontend import FRONTENDS
from fold.frontends.flatbuffer.frontend import FlatbufferFrontend
from fold.frontends.tflite import io
from fold.frontends.tflite.model import TfliteModel


class TfliteFrontend(FlatbufferFrontend):
    """``fold.frontend.Frontend`` for .tflite models, run with LiteRT.

    ``split_activation`` keeps a folded chain's fused activation as a separate op (as Samsung
    ONE does) instead of fusing it into the conv.
    """

    format = FRONTENDS["tflite"]

    def model_from_bytes(self, data: bytes, name: str = "model") -> TfliteModel:
        return io.model_from_bytes(data, name)

    def inputs(self, model: TfliteModel) -> list[InputSpec]:
        return io.input_specs(model)

    def outputs(self, model: TfliteModel) -> list[OutputSpec]:
        return io.output_specs(model)

    def runner(self, model: TfliteModel) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
        return io.runner(model)

    def tapper(self, model: TfliteModel, nodes: Sequence[str] = (), feeds: Sequence[str] = ()):
        return io.tapper(model, nodes, feeds)

    def layer_runner(self, model: TfliteModel, layers: Sequence[tuple[str, str]], magnitude: bool = False):
        return io.layer_runner(model, layers, magnitude)

    def runtime(self, model: TfliteModel) -> str:
        return f"LiteRT {version('ai-edge-litert')}"


FRONTEND = TfliteFrontend()
