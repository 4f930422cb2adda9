"""What TFLite and circle share of ``fold.frontend.Frontend``: reading the file's bytes, candidates,
rules, the rewrite, the graph, kernels and writing. Each format's subclass adds its ``Format`` row, its
model from bytes, and its runtime (inputs, outputs, runner, tapper, layer_runner)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import networkx as nx

from fold.core.rules import Candidate, Decision, article
from fold.errors import FoldError
from fold.frontend import LayerKernel
from fold.frontends.flatbuffer import match
from fold.frontends.flatbuffer.model import FlatModel
from fold.frontends.flatbuffer.rewrite import rewrite, rewrite_weights
from fold.frontends.flatbuffer.rules import RULES
from fold.frontends.flatbuffer.view import SLOTS, VOCABULARY, view_of


class FlatbufferFrontend:
    """The shared part of the TFLite and circle frontends.

    ``split_activation`` keeps every folded chain's fused activation as a separate op (as Samsung
    ONE does) instead of fusing it into the layer; ``split`` names the layer types whose activation
    the format always keeps apart.
    """

    rules = RULES
    vocabulary = VOCABULARY
    split: frozenset[str] = frozenset()

    def __init__(self, split_activation: bool = False):
        self.split_activation = split_activation

    def model_from_bytes(self, data: bytes, name: str = "model", **options) -> FlatModel:
        """The model of a file's bytes (``options``: the format's load options)."""
        raise NotImplementedError

    def load(self, path: Path, **options) -> FlatModel:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise FoldError(f"Cannot read '{Path(path).name}': {exc.strerror}.") from exc
        return self.model_from_bytes(data, Path(path).name, **options)

    def name_of(self, model: FlatModel) -> str:
        return model.stem

    def candidates(self, model: FlatModel) -> list[Candidate]:
        return match.candidates(view_of(model), frozenset(SLOTS) if self.split_activation else self.split)

    def rewrite(self, model: FlatModel, folds: Sequence[tuple[Candidate, Decision]]) -> FlatModel:
        return rewrite(model, folds)

    def graph(self, model: FlatModel) -> nx.DiGraph:
        return match.op_graph(view_of(model))

    def kernel(self, model: FlatModel, layer: str) -> LayerKernel:
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

    def with_kernels(self, model: FlatModel, kernels: Mapping[str, LayerKernel]) -> FlatModel:
        return rewrite_weights(model, kernels)

    def write(self, model: FlatModel, path: Path) -> None:
        Path(path).write_bytes(model.data)

    def to_bytes(self, model: FlatModel) -> bytes:
        return model.data

