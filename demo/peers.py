"""What the field's ONNX tools do with the same model: onnxsim, onnxoptimizer's fuse_bn_into_conv and
onnxruntime's offline optimizer, each measured like foldscope's fold (BatchNorms left, counted as
``FoldResult.bn_after`` counts them; max abs diff against the original on the same inputs)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnx

from fold.core.graph import count_bns
from fold.core.verification import Verification
from fold.errors import one_line
from fold.frontend import FRONTENDS
from fold.frontends.onnx.model import OnnxModel, onnx_model
from fold.check import check as check_models
from fold.comparison import Side


@dataclass
class PeerRun:
    """One tool's result on the model: what it left, how far its outputs moved, how long it took.

    bn_left: BatchNorms left in the tool's model (``count_bns`` of its graph, as foldscope counts).
    """

    tool: str
    action: str
    bn_left: int | None
    verification: Verification | None
    seconds: float
    error: str | None = None

    @property
    def max_abs_diff(self) -> float | None:
        return None if self.verification is None else self.verification.max_abs_diff


def _onnxsim(proto: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim

    simplified, _ = onnxsim.simplify(proto)
    return simplified


def _onnxoptimizer(proto: onnx.ModelProto) -> onnx.ModelProto:
    import onnxoptimizer

    return onnxoptimizer.optimize(proto, ["fuse_bn_into_conv"])


def _onnxruntime_offline(proto: onnx.ModelProto) -> onnx.ModelProto:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


#: (tool with its version, what it was asked to do, how).
PEERS: tuple[tuple[str, str, Callable[[onnx.ModelProto], onnx.ModelProto]], ...] = (
    (f"onnxsim {version('onnxsim')}", "simplify (BN fusion on)", _onnxsim),
    (f"onnxoptimizer {version('onnxoptimizer')}", "fuse_bn_into_conv", _onnxoptimizer),
    (f"onnxruntime {version('onnxruntime')}", "offline optimizer, extended level", _onnxruntime_offline),
)


def peer_runs(model: OnnxModel, inputs: list[np.ndarray]) -> list[PeerRun]:
    """Each peer on ``model``; its output is checked against ``model`` on ``inputs`` with
    onnxruntime's optimizations off (``fold.check``: every layer that absorbed a BN at its own scale)."""
    frontend = FRONTENDS["onnx"].frontend()
    original = Side(frontend, model, frontend.graph(model))
    runs = []
    for tool, action, transform in PEERS:
        start = time.perf_counter()
        try:
            result = transform(model.proto)
            seconds = time.perf_counter() - start
            peer = onnx_model(result, f"{tool}.onnx")
            graph = frontend.graph(peer)
            check = check_models(original, Side(frontend, peer, graph), inputs=inputs).checked.verification
            runs.append(PeerRun(tool, action, count_bns(graph), check, seconds))
        except Exception as exc:  # a peer that fails on a model is a result too, shown with its reason
            runs.append(PeerRun(tool, action, None, None, time.perf_counter() - start,
                                f"{type(exc).__name__}: {one_line(exc, 200)}"))
    return runs
