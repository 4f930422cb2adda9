"""The GraphDef frontend: frozen TensorFlow graphs (.pb), folded at the op level.

    match.py    BN chains (fused or Mul/Add) after Conv2D, Conv2DBackpropInput,
                DepthwiseConv2dNative and MatMul; their candidates; the op graph
    rules.py    the shared rules plus the op-level guards (constant, unshared filter, ...)
    rewrite.py  scale the filter Const, one BiasAdd named like the BN replaces the chain
    io.py       read, write, trace functions and Keras models, find inputs/outputs, run
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
from fold.frontends.graphdef import io, match
from fold.frontends.graphdef.io import GraphModel
from fold.frontends.graphdef.rewrite import rewrite
from fold.frontends.graphdef.rules import RULES


class GraphDefFrontend:
    """``fold.frontend.Frontend`` for frozen GraphDefs with their input and output tensors."""

    format = FRONTENDS["graphdef"]
    rules = RULES

    def load(self, path: Path, inputs: Sequence[str] | None = None,
             outputs: Sequence[str] | None = None) -> GraphModel:
        return io.graph_model(io.read_graph_def(path), Path(path).stem, inputs, outputs)

    def name_of(self, model: GraphModel) -> str:
        return model.name

    def candidates(self, model: GraphModel) -> list[Candidate]:
        return list(match.candidates(model.graph_def, tuple(model.outputs)))

    def rewrite(self, model: GraphModel, folds: Sequence[tuple[Candidate, Decision]]) -> GraphModel:
        folded = rewrite(model.graph_def, list(folds), keep=model.outputs)
        return dataclasses.replace(model, graph_def=folded)

    def graph(self, model: GraphModel) -> nx.DiGraph:
        return match.op_graph(model.graph_def, inputs=model.inputs, outputs=model.outputs, name=model.name)

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
        kernel, kind = match.filter_value(model.graph_def, layer)
        ix = match.OpIndex(model.graph_def)
        try:
            _, const = match.bias_of(ix, layer)
            bias = None if const is None else np.asarray(ix.value(const)).reshape(-1)
        finally:
            ix.close()
        return LayerKernel(kernel, bias, kind)

    def with_kernels(self, model: GraphModel, kernels: Mapping[str, LayerKernel]) -> GraphModel:
        return io.with_kernels(model, kernels)

    def write(self, model: GraphModel, path: Path) -> None:
        Path(path).write_bytes(self.to_bytes(model))

    def to_bytes(self, model: GraphModel) -> bytes:
        return model.graph_def.SerializeToString(deterministic=True)


FRONTEND = GraphDefFrontend()
