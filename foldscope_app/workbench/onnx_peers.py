"""What the field's ONNX tools do with the same model, for the page: onnxsim, onnxslim, onnxoptimizer's
fuse_bn_into_conv and onnxruntime's offline optimizer (``fold.frontends.onnx.peers``), each measured like
foldscope's fold (BatchNorms left, counted as ``FoldResult.bn_after`` counts them; its check against the
original on the page's inputs, ``fold.tools.peer_runs``)."""

from __future__ import annotations

import numpy as np

from fold.engine.comparison import Side
from fold.frontends.formats import FRONTENDS
from fold.frontends.onnx.model import OnnxModel
from fold.tools.peer_runs import PEERS_BY_FORMAT, PeerRun, run_peer


def peer_runs(model: OnnxModel, inputs: list[np.ndarray]) -> list[PeerRun]:
    """Each ONNX peer on ``model``; its output is checked against ``model`` on ``inputs`` with
    onnxruntime's optimizations off (``fold.tools.check``: every layer that absorbed a BN at its own scale)."""
    frontend = FRONTENDS["onnx"].frontend()
    original = Side(frontend, model, frontend.graph(model))
    return [run_peer(peer, original, inputs=inputs) for peer in PEERS_BY_FORMAT["onnx"]]
