"""The ONNX frontend: .onnx models, folded where onnxoptimizer and onnxruntime stop.

    model.py    the model: a proto with unique node names and its tensors' shapes
    view.py     the op-graph view (``fold.frontends.ops``): slots, Gemm's beta, constants chased
                through Identity, Cast, reshapes, Transpose, DequantizeLinear, Constant nodes
    match.py    candidates and the graph, on the shared chain finder
    rules.py    the shared rules plus the op-level rules
    rewrite.py  new initializers (float16 behind its Cast), the chain removed, the layer takes
                the BN's output name
    io.py       safe reading (external data, checker, opset), describing, running with onnxruntime
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path

import networkx as nx
import numpy as np

from fold.core.graph import Vocabulary
from fold.core.rules import Candidate, Decision
from fold.core.verification import InputSpec, OutputSpec
from fold.frontends.formats import FRONTENDS, LayerKernel
from fold.frontends.onnx import io, match
from fold.frontends.onnx.model import OnnxModel
from fold.frontends.onnx.rewrite import rewrite, rewrite_weights
from fold.frontends.onnx.rules import RULES
from fold.frontends.onnx.view import VOCABULARY, view_of


class OnnxFrontend:
    """``fold.frontends.formats.Frontend`` for ONNX models (``OnnxModel``: a proto with its shapes)."""

    format = FRONTENDS["onnx"]
    rules = RULES
    vocabulary: Vocabulary = VOCABULARY

    def load(self, path: Path, external_data: bool = True) -> OnnxModel:
        return io.load_model(path, external_data)

    def name_of(self, model: OnnxModel) -> str:
        return model.stem

    def candidates(self, model: OnnxModel) -> list[Candidate]:
        return match.candidates(view_of(model))

    def rewrite(self, model: OnnxModel, folds: Sequence[tuple[Candidate, Decision]]) -> OnnxModel:
        return rewrite(model, view_of(model), folds)

    def graph(self, model: OnnxModel) -> nx.DiGraph:
        return match.op_graph(view_of(model))

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
        view = view_of(model)
        op = view.by_name.get(layer)
        if op is None or view.kind(op) is None or not view.is_constant(op.inputs[1]):
            raise ValueError(f"'{layer}' is not a layer with a constant kernel.")
        bias = op.inputs[2] if len(op.inputs) > 2 and op.inputs[2] else None
        value = view.value(op.inputs[1])
        stored = view.stored_dtype(op.inputs[1])
        return LayerKernel(value, None if bias is None else view.value(bias), view.kind(op), view.groups(op),
                           stored=stored if stored != np.asarray(value).dtype.name else None)

    def release(self, model: OnnxModel) -> None:
        if model.external is not None:
            model.external.release()

    def with_kernels(self, model: OnnxModel, kernels: Mapping[str, LayerKernel]) -> OnnxModel:
        return rewrite_weights(model, view_of(model), kernels)

    def signature_order(self, model: OnnxModel, count: int) -> list[int] | None:
        return None  # an ONNX model has no signature beside its outputs' names

    def write(self, model: OnnxModel, path: Path) -> None:
        io.write(model, path)

    def to_bytes(self, model: OnnxModel) -> bytes:
        return io.to_bytes(model)

    def runtime(self, model: OnnxModel) -> str:
        return f"onnxruntime {version('onnxruntime')}"


FRONTEND = OnnxFrontend()
