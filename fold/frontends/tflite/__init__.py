"""The TFLite frontend: .tflite flatbuffers, folded where Samsung ONE's FuseBatchNormWithTConv does.

    model.py    the model (bytes, schema tree, op ids, its one interpreter) and the schema's names
    view.py     the op-graph view (``fold.frontends.ops``): tensor indices, constants behind DEQUANTIZE
    match.py    candidates (fused activations, tensor types) and the op graph, on the shared chain finder
    rules.py    the shared rules, the op-level rules and the flatbuffer guards (float32, linear MUL)
    rewrite.py  scale the filter, write the bias (float16 behind its DEQUANTIZE), drop MUL/ADD,
                place the fused activation
    io.py       read and check the bytes, describe and run the model with LiteRT
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import networkx as nx
import numpy as np

from fold.core.rules import Candidate, Decision, article
from fold.core.verification import InputSpec, OutputSpec
from fold.errors import FoldError
from fold.frontend import FRONTENDS, LayerKernel
from fold.frontends.tflite import io, match
from fold.frontends.tflite.model import TfliteModel
from fold.frontends.tflite.rewrite import rewrite, rewrite_weights
from fold.frontends.tflite.rules import RULES
from fold.frontends.tflite.view import SLOTS, VOCABULARY, view_of


class TfliteFrontend:
    """``fold.frontend.Frontend`` for .tflite models.

    ``split_activation`` keeps a folded chain's fused activation as a separate op (as
    Samsung ONE does) instead of fusing it into the conv.
    """

    format = FRONTENDS["tflite"]
    rules = RULES
    vocabulary = VOCABULARY

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
        return match.candidates(view_of(model), self.split_activation)

    def rewrite(self, model: TfliteModel, folds: Sequence[tuple[Candidate, Decision]]) -> TfliteModel:
        return rewrite(model, folds)

    def graph(self, model: TfliteModel) -> nx.DiGraph:
        return match.op_graph(view_of(model))

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
        view = view_of(model)
        op = view.by_name.get(layer)
        if op is None:
            raise ValueError(f"The model has no op '{layer}'.")
        if op.type not in SLOTS:
            raise ValueError(f"'{layer}' is {article(op.type)} {op.type}, not an op with a kernel foldscope reads.")
        filter_slot, bias_slot = SLOTS[op.type]
        bias = op.inputs[bias_slot] if len(op.inputs) > bias_slot and op.inputs[bias_slot] else None
        if not view.is_constant(op.inputs[filter_slot]):
            raise ValueError(f"The filter of '{layer}' is not a constant.")
        stored = view.stored_dtype(op.inputs[filter_slot])
        return LayerKernel(view.value(op.inputs[filter_slot]), None if bias is None else view.value(bias),
                           view.kind(op), stored=stored if stored != "float32" else None)

    def with_kernels(self, model: TfliteModel, kernels: Mapping[str, LayerKernel]) -> TfliteModel:
        return rewrite_weights(model, kernels)

    def write(self, model: TfliteModel, path: Path) -> None:
        Path(path).write_bytes(model.data)

    def to_bytes(self, model: TfliteModel) -> bytes:
        return model.data


FRONTEND = TfliteFrontend()
