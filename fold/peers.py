"""The tools foldscope is measured against, each a function from the original model to the model the
tool makes of it: onnxsim, onnxslim, onnxoptimizer's fuse_bn_into_conv and onnxruntime's offline
optimizer for ONNX files, TensorFlow's TFLite converter for Keras models, tico's O1 pipeline for circle
files (Samsung's own optimizer, whose linear fusions fold a MUL/ADD right after a layer). ``run_peer`` runs one and checks its
model against the original with ``fold.check`` (the verdict of ``python -m fold check``: every layer
that absorbed a BN at its own scale, then the outputs), so a peer's row reads like foldscope's.

Nothing here imports a framework at import time: each tool is imported when it runs.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fold.check import check
from fold.comparison import Side
from fold.core.graph import count_bns
from fold.core.verification import Verification
from fold.errors import describe, require
from fold.frontend import FRONTENDS


def _version(*packages: str) -> str:
    """The installed version of the first of ``packages`` (a tool's alternative distributions)."""
    for package in packages:
        try:
            return version(package)
        except PackageNotFoundError:
            continue
    return "(not installed)"


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


#: The ONNX tools: (tool with its version, what it was asked to do, ModelProto -> ModelProto).
PEERS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    (f"onnxsim {_version('onnxsim')}", "simplify (BN fusion on)", onnxsim_simplify),
    (f"onnxslim {_version('onnxslim')}", "slim (BN fusion on)", onnxslim_slim),
    (f"onnxoptimizer {_version('onnxoptimizer')}", "fuse_bn_into_conv", onnxoptimizer_fuse),
    (f"onnxruntime {_version('onnxruntime')}", "offline optimizer, extended level", onnxruntime_offline),
)


@dataclass(frozen=True)
class Peer:
    """A tool that folds a model of one format: ``make`` returns (its model's format, its model);
    ``needs``: the packages it imports beyond the format's own (import names), in foldscope's ``extra``."""

    tool: str
    action: str
    make: Callable[[Any], tuple[str, Any]]
    needs: tuple[str, ...] = ()
    extra: str = "peers"

    def require(self) -> None:
        """``MissingExtra`` unless the tool's packages are installed."""
        require(self.extra, f"{self.tool.split()[0]} as a peer", *self.needs)


def _onnx_peer(tool: str, action: str, transform: Callable[[Any], Any]) -> Peer:
    def make(model):
        from fold.frontends.onnx.model import onnx_model

        return "onnx", onnx_model(transform(model.proto), f"{tool.split()[0]}.onnx")
    package = tool.split()[0]
    return Peer(tool, action, make, () if package == "onnxruntime" else (package,))


def _tflite_converter(model) -> tuple[str, Any]:
    from fold.frontends.keras.io import to_tflite
    from fold.frontends.tflite.io import model_from_bytes

    return "tflite", model_from_bytes(to_tflite(model), model.name)


def _tico_o1(model) -> tuple[str, Any]:
    from tico.circle.export import optimize_for_export

    from fold.frontends.circle.io import model_from_bytes

    return "circle", model_from_bytes(optimize_for_export(model.data), f"tico_{model.name}", model.runtime)


#: The peers of each format (keys of ``FRONTENDS``); a format without any has none.
PEERS_BY_FORMAT: dict[str, tuple[Peer, ...]] = {
    "onnx": tuple(_onnx_peer(*peer) for peer in PEERS),
    "keras": (Peer(f"tensorflow {_version('tensorflow', 'tensorflow-cpu')}", "TFLite converter (float32)",
                   _tflite_converter, ("ai_edge_litert",), "tflite"),),
    "circle": (Peer(f"tico {_version('tico')}", "O1 pipeline (its BN fusion included)", _tico_o1, ("tico",),
                    "circle"),),
}


def require_peers(formats: Iterable[str]) -> None:
    """``MissingExtra`` for the first peer of ``formats`` (keys of ``FRONTENDS``) whose packages are missing."""
    for name in formats:
        for peer in PEERS_BY_FORMAT.get(name, ()):
            peer.require()


@dataclass
class PeerRun:
    """One tool's result on a model: what it left, how its model checks against the original, how
    long the tool took (the check apart).

    bn_left: BatchNorms left in the tool's model (``count_bns`` of its graph, as foldscope counts).
    error: why the tool or the check could not finish (then ``verification`` is None).
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


def run_peer(peer: Peer, original: Side, **options: Any) -> PeerRun:
    """``peer`` on the original's model, its model checked against the original (``options``: as
    ``fold.check.check`` takes them: samples, seed, atol, shapes, arrays, inputs). A tool that fails
    on a model is a result too, with its reason."""
    start = time.perf_counter()
    try:
        peer.require()
        fmt, made = peer.make(original.model)
        seconds = time.perf_counter() - start
        frontend = FRONTENDS[fmt].frontend()
        graph = frontend.graph(made)
        verification = check(original, Side(frontend, made, graph), **options).checked.verification
        return PeerRun(peer.tool, peer.action, count_bns(graph), verification, seconds)
    except Exception as exc:  # noqa: BLE001 - a peer's failure is its row, not the run's end
        return PeerRun(peer.tool, peer.action, None, None, time.perf_counter() - start, describe(exc, 200))
