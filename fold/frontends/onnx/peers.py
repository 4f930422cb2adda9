"""The ONNX tools foldscope is measured against: onnxsim, onnxslim, onnxoptimizer's fuse_bn_into_conv and
onnxruntime's offline optimizer, each a transform of the original's ModelProto (``TRANSFORMS``) and a
``Peer`` of the format (``PEERS``, which ``fold.tools.peer_runs`` runs and checks). Each tool is
imported when it runs."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fold.frontends.formats import Peer, installed_version
from fold.frontends.onnx.model import OnnxModel, onnx_model


def onnxsim_simplify(proto):
    """onnxsim's simplify, BN fusion on (its default)."""
    import onnxsim

    simplified, _ = onnxsim.simplify(proto)
    return simplified


def onnxslim_slim(proto):
    """onnxslim's slim, its defaults (Conv/ConvTranspose + BN fusion on)."""
    import onnxslim

    return onnxslim.slim(proto)


def onnxoptimizer_fuse(proto):
    """onnxoptimizer with its one BN pass, fuse_bn_into_conv."""
    import onnxoptimizer

    return onnxoptimizer.optimize(proto, ["fuse_bn_into_conv"])


def onnxruntime_offline(proto, level: str = "extended"):
    """The model onnxruntime's offline optimizer writes at ``level`` ("basic" or "extended")."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}[level]
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


#: The ONNX tools as transforms of a ModelProto: (tool with its version, what it was asked to do, ModelProto ->
#: ModelProto).
TRANSFORMS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    (f"onnxsim {installed_version('onnxsim')}", "simplify (BN fusion on)", onnxsim_simplify),
    (f"onnxslim {installed_version('onnxslim')}", "slim (BN fusion on)", onnxslim_slim),
    (f"onnxoptimizer {installed_version('onnxoptimizer')}", "fuse_bn_into_conv", onnxoptimizer_fuse),
    (f"onnxruntime {installed_version('onnxruntime')}", "offline optimizer, extended level", onnxruntime_offline),
)


def _peer(tool: str, action: str, transform: Callable[[Any], Any]) -> Peer:
    def make(model: OnnxModel) -> tuple[str, OnnxModel]:
        return "onnx", onnx_model(transform(model.proto), f"{tool.split()[0]}.onnx")
    package = tool.split()[0]
    return Peer(tool, action, make, () if package == "onnxruntime" else (package,))


#: The peers of ONNX models.
PEERS: tuple[Peer, ...] = tuple(_peer(*transform) for transform in TRANSFORMS)
