"""The ONNX frontend: .onnx models, folded where onnxoptimizer and onnxruntime stop.

    match.py    BN chains after Conv, ConvTranspose (any group), Gemm and MatMul, through a bias
                Add; BN as BatchNormalization or per-channel Mul/Add; candidates; the graph
    rules.py    the shared rules plus the graph guards (constant, unshared, single-use, ...)
    rewrite.py  new initializers, the chain removed, the layer takes the BN's output name
    io.py       safe reading (external data, checker, opset), describing, running with onnxruntime
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import networkx as nx
import numpy as np

from fold.core.rules import Candidate, Decision
from fold.core.verification import InputSpec, OutputSpec
from fold.frontend import FRONTENDS, LayerKernel
from fold.frontends.onnx import io, match
from fold.frontends.onnx.match import OnnxModel
from fold.frontends.onnx.rewrite import rewrite, rewrite_weights
from fold.frontends.onnx.rules import RULES


class OnnxFrontend:
    """``fold.frontend.Frontend`` for ONNX models (``OnnxModel``: a proto with its shapes)."""

    format = FRONTENDS["onnx"]
    rules = RULES

    def load(self, path: Path, external_data: bool = True) -> OnnxModel:
        return io.load_model(path, external_data)

    def name_of(self, model: OnnxModel) -> str:
        return model.stem

    def candidates(self, model: OnnxModel) -> list[Candidate]:
        return list(match.candidates(model))

    def rewrite(self, model: OnnxModel, folds: Sequence[tuple[Candidate, Decision]]) -> OnnxModel:
        return rewrite(model, folds)

    def graph(self, model: OnnxModel) -> nx.DiGraph:
        return match.op_graph(model)

    def inputs(self, model: OnnxModel) -> list[InputSpec]:
        return io.input_specs(model)

    def outputs(self, model: OnnxModel) -> list[OutputSpec]:
        return io.output_specs(model)

    def runner(self, model: OnnxModel) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
        return io.runner(model)

    def tapper(self, model: OnnxModel, nodes: Sequence[str] = (), feeds: Sequence[str] = ()):
        return io.tapper(model, nodes, feeds)

    def layer_runner(self, model: OnnxModel, layers: Sequence[tuple[str, str]], magnitude: bool = False):
        return io.layer_runner(model, layers, magnitude)

    def kernel(self, model: OnnxModel, layer: str) -> LayerKernel:
        ix = match.Index(model)
        node = next((n for n in ix.nodes if n.name == layer), None)
        if node is None or match.kind_of(node) is None or len(node.input) < 2 or not ix.is_constant(node.input[1]):
            raise ValueError(f"'{layer}' is not a layer with a constant kernel.")
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        groups = int(match.attribute(node, "group", 1)) if node.op_type in ("Conv", "ConvTranspose") else 1
        return LayerKernel(ix.value(node.input[1]), None if bias is None else ix.value(bias),
                           match.kind_of(node), groups)

    def with_kernels(self, model: OnnxModel, kernels: Mapping[str, LayerKernel]) -> OnnxModel:
        return rewrite_weights(model, kernels)

    def write(self, model: OnnxModel, path: Path) -> None:
        Path(path).write_bytes(io.to_bytes(model))

    def to_bytes(self, model: OnnxModel) -> bytes:
        return io.to_bytes(model)


FRONTEND = OnnxFrontend()
