"""The circle frontend: Samsung ONE's .circle flatbuffers, the format the TConv + BN question was asked in.

circle is TFLite's schema extended, so everything but the schema and the runtimes is shared with the
TFLite frontend in ``fold.frontends.flatbuffer``: the same candidates, rules and reasons, the same
rewrite. A folded TRANSPOSE_CONV is written as ONE's FuseBatchNormWithTConv writes it: four inputs, a
``[C]`` bias, op version 3 at least, and a RELU/RELU6 after it kept as an op of its own.

    model.py    the circle schema (``CIRCLE_SCHEMA``: circle-schema's bindings, ONE's operator-code
                rule) and the model
    io.py       read and check the bytes, describe the model from the file, run it in a runtime
    runtime.py  the runtimes' worker processes (tico's reference runtime, onert), crashes as sentences
    worker.py   the worker process itself
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from fold.core.verification import InputSpec, OutputSpec
from fold.frontend import FRONTENDS
from fold.frontends.circle import io
from fold.frontends.circle.model import CircleModel
from fold.frontends.flatbuffer.frontend import FlatbufferFrontend


class CircleFrontend(FlatbufferFrontend):
    """``fold.frontend.Frontend`` for .circle models, run in tico's reference runtime or onert.

    A folded TRANSPOSE_CONV's activation is kept as its own op, as ONE's FuseBatchNormWithTConv keeps
    it; ``split_activation`` does so for every layer kind.
    """

    format = FRONTENDS["circle"]
    split = frozenset({"TRANSPOSE_CONV"})

    def model_from_bytes(self, data: bytes, name: str = "model", runtime: str = "auto") -> CircleModel:
        """``runtime``: what runs the model, "tico", "onert" or "auto" (onert where it can, else tico)."""
        return io.model_from_bytes(data, name, runtime)

    def inputs(self, model: CircleModel) -> list[InputSpec]:
        return io.input_specs(model)

    def outputs(self, model: CircleModel) -> list[OutputSpec]:
        return io.output_specs(model)

    def runner(self, model: CircleModel) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
        return io.runner(model)

    def tapper(self, model: CircleModel, nodes: Sequence[str] = (), feeds: Sequence[str] = ()):
        return io.tapper(model, nodes, feeds)

    def layer_runner(self, model: CircleModel, layers: Sequence[tuple[str, str]], magnitude: bool = False):
        return io.layer_runner(model, layers, magnitude)

    def runtime(self, model: CircleModel) -> str:
        return io.runtime_label(model)


FRONTEND = CircleFrontend()
