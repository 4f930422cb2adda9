"""The GraphDef frontend: frozen TensorFlow graphs (.pb), folded at the op level.

    view.py     the op-graph view (``fold.frontends.ops``): "node:k" tensors, constants computed
                from Const ops (a frozen Keras model's Identity/Rsqrt sub-graphs), BiasAdd's axis
    match.py    candidates and the op graph, on the shared chain finder
    rules.py    the shared rules plus the op-level rules
    rewrite.py  the filter from a new Const, one bias add named like the BN replaces the chain
    io.py       read, trace functions and Keras models, find inputs/outputs, run
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import networkx as nx
import numpy as np

from fold.core.rules import Candidate, Decision
from fold.core.verification import InputSpec, OutputSpec
from fold.frontend import FRONTENDS, LayerKernel
from fold.frontends.graphdef import io, match, rewrite
from fold.frontends.graphdef.io import GraphModel
from fold.frontends.graphdef.rules import RULES
from fold.frontends.graphdef.view import FILTER_INPUT, VOCABULARY, view_of


class GraphDefFrontend:
    """``fold.frontend.Frontend`` for frozen GraphDefs with their input and output tensors."""

    format = FRONTENDS["graphdef"]
    rules = RULES
    vocabulary = VOCABULARY

    def load(self, path: Path, inputs: Sequence[str] | None = None,
             outputs: Sequence[str] | None = None) -> GraphModel:
        return io.graph_model(io.read_graph_def(path), Path(path).stem, inputs, outputs)

    def name_of(self, model: GraphModel) -> str:
        return model.name

    def candidates(self, model: GraphModel) -> list[Candidate]:
        return match.candidates(view_of(model))

    def rewrite(self, model: GraphModel, folds: Sequence[tuple[Candidate, Decision]]) -> GraphModel:
        folded = rewrite.rewrite(view_of(model), folds, keep=model.outputs)
        return dataclasses.replace(model, graph_def=folded)

    def graph(self, model: GraphModel, show_consts: bool = False) -> nx.DiGraph:
        return match.op_graph(view_of(model), model.inputs, model.outputs, model.name, show_consts)

    def inputs(self, model: GraphModel) -> list[InputSpec]:
        return io.input_specs(model)

    def outputs(self, model: GraphModel) -> list[OutputSpec]:
        return io.output_specs(model)

    def runner(self, model: GraphModel):
        return io.runner(model)

    def tapper(self, model: GraphModel, nodes: Sequence[str] = (), feeds: Sequence[str] = ()):
        return io.tapper(model, nodes, feeds)

    def layer_runner(self, model: GraphModel, layers: Sequence[tuple[str, str]], magnitude: bool = False):
        return io.layer_runner(model, layers, magnitude)

    def kernel(self, model: GraphModel, layer: str) -> LayerKernel:
        view = view_of(model)
        op = view.by_name.get(layer)
        kind = view.kind(op) if op is not None else None
        if kind is None or not view.is_constant(op.inputs[FILTER_INPUT]):
            raise ValueError(f"'{layer}' is not a linear op with a constant filter.")
        found = view.bias_add_after(op)
        bias = None if found is None else np.asarray(view.value(found[1])).reshape(-1)
        return LayerKernel(view.value(op.inputs[FILTER_INPUT]), bias, kind)

    def with_kernels(self, model: GraphModel, kernels: Mapping[str, LayerKernel]) -> GraphModel:
        return dataclasses.replace(model, graph_def=rewrite.with_kernels(view_of(model), kernels))

    def write(self, model: GraphModel, path: Path) -> None:
        Path(path).write_bytes(self.to_bytes(model))

    def to_bytes(self, model: GraphModel) -> bytes:
        return model.graph_def.SerializeToString(deterministic=True)

    def runtime(self, model: GraphModel) -> str:
        import tensorflow as tf

        return f"TensorFlow {tf.__version__}"


FRONTEND = GraphDefFrontend()
