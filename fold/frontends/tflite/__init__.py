"""The TFLite frontend: .tflite flatbuffers, folded where Samsung ONE's FuseBatchNormWithTConv does.

    match.py    conv -> MUL -> ADD chains of the main subgraph, their candidates, the op graph
    rules.py    the shared rules plus the flatbuffer guards (float32, constant, per-channel, ...)
    rewrite.py  scale the filter, write the bias, drop MUL/ADD, place the fused activation
    io.py       read and check the bytes, describe and run the model with LiteRT
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import networkx as nx
import numpy as np

from fold.core.kinds import TFLITE_KINDS
from fold.core.rules import Candidate, Decision
from fold.core.verification import InputSpec, OutputSpec
from fold.errors import FoldError
from fold.frontend import FRONTENDS, LayerKernel
from fold.frontends.tflite import io, match
from fold.frontends.tflite.match import SLOTS, TfliteModel
from fold.frontends.tflite.rewrite import rewrite, rewrite_weights
from fold.frontends.tflite.rules import RULES


class TfliteFrontend:
    """``fold.frontend.Frontend`` for .tflite models.

    ``split_activation`` keeps a folded chain's fused activation as a separate op (as
    Samsung ONE does) instead of fusing it into the conv.
    """

    format = FRONTENDS["tflite"]
    rules = RULES

    def __init__(self, split_activation: bool = False):
        self.split_activation = split_activation

    def load(self, path: Path) -> TfliteModel:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise FoldError(f"Cannot read '{Path(path).name}': {exc.strerror}.") from exc
        return io.model_from_bytes(data, Path(path).name)

    def name_of(self, model: TfliteModel) -> str:
        return model.stem

    def candidates(self, model: TfliteModel) -> list[Candidate]:
        return list(match.candidates(model, self.split_activation))

    def rewrite(self, model: TfliteModel, folds: Sequence[tuple[Candidate, Decision]]) -> TfliteModel:
        return rewrite(model, folds)

    def graph(self, model: TfliteModel) -> nx.DiGraph:
        return match.op_graph(model)

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

    def kernel(self, model: TfliteModel, layer: str) -> LayerKernel:
        if layer not in model.ids:
            raise ValueError(f"The model has no op '{layer}'.")
        op = model.main.operators[model.ids.index(layer)]
        name = match.op_type(model.tree, op)
        if name not in SLOTS:
            raise ValueError(f"'{layer}' is a {name}, not an op with a kernel foldscope reads.")
        filter_slot, bias_slot = SLOTS[name]
        bias = op.inputs[bias_slot] if len(op.inputs) > bias_slot and op.inputs[bias_slot] >= 0 else None
        if not match.is_constant(model.tree, model.main, op.inputs[filter_slot]):
            raise ValueError(f"The filter of '{layer}' is not a constant.")
        return LayerKernel(match.float_array(model.tree, model.main, op.inputs[filter_slot]),
                           None if bias is None else match.float_array(model.tree, model.main, bias),
                           TFLITE_KINDS[name])

    def with_kernels(self, model: TfliteModel, kernels: Mapping[str, LayerKernel]) -> TfliteModel:
        return rewrite_weights(model, kernels)

    def write(self, model: TfliteModel, path: Path) -> None:
        Path(path).write_bytes(model.data)

    def to_bytes(self, model: TfliteModel) -> bytes:
        return model.data


FRONTEND = TfliteFrontend()
