"""ONNX frontend, the model: a proto with its nodes named uniquely, its file name and its tensors' shapes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from fold.frontends.onnx.external import ExternalData


@dataclass(eq=False)
class OnnxModel:
    """A model read by foldscope: the proto (nodes named uniquely), its file name, and the shape
    of every tensor shape inference could tell (None for an unknown dimension). Compared and
    hashed by identity, so that the frontend can cache one view of each model. ``external``: where
    the tensors of a model read from a file with external data live (None: every tensor is in the
    proto); ``arrays``: those of them held in memory."""

    proto: onnx.ModelProto
    name: str
    shapes: dict[str, tuple | None] = field(default_factory=dict)
    external: ExternalData | None = None
    #: Initializers of a model with external data whose values are held here, in memory, and not in
    #: any file (``external.held_tensor`` stands in the proto): the weights ``with_kernels`` and the
    #: layers run alone are given, which live as long as that model and are never written to disk.
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def graph(self) -> onnx.GraphProto:
        return self.proto.graph

    @property
    def stem(self) -> str:
        return Path(self.name).stem if self.name.lower().endswith(".onnx") else self.name

    @property
    def feeds(self) -> list[onnx.ValueInfoProto]:
        """The graph inputs a caller feeds (initializers listed as inputs are not)."""
        constant = {t.name for t in self.graph.initializer}
        return [v for v in self.graph.input if v.name not in constant]


def _named(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose nodes all have distinct, non-empty names ("OpType_i" where one is missing)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    taken = Counter(n.name for n in copy.graph.node if n.name)
    for i, node in enumerate(copy.graph.node):
        if not node.name or taken[node.name] > 1:
            taken[node.name] -= 1
            name, k = f"{node.op_type}_{i}", 1
            while name in taken:
                name, k = f"{node.op_type}_{i}_{k}", k + 1
            node.name = name
            taken[name] += 1
    return copy


def _shape(value: onnx.ValueInfoProto) -> tuple | None:
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return tuple(int(d.dim_value) if d.HasField("dim_value") else None for d in tensor.shape.dim)


def tensor_shapes(proto: onnx.ModelProto) -> dict[str, tuple | None]:
    """Tensor name -> shape, from ONNX shape inference (what it cannot tell is left out)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # inference is a display aid; a model it trips on is still folded
        inferred = proto
    graph = inferred.graph
    shapes = {v.name: _shape(v) for v in (*graph.input, *graph.value_info, *graph.output)}
    shapes.update({t.name: tuple(t.dims) for t in graph.initializer})
    return shapes


def onnx_model(proto: onnx.ModelProto, name: str = "model.onnx", external: ExternalData | None = None) -> OnnxModel:
    """Wrap a model for foldscope (the caller's proto is copied, never changed)."""
    named = _named(proto)
    return OnnxModel(named, name, tensor_shapes(named), external)
