"""The tools foldscope is measured against, run and checked: each format's peers (its part ``peers``:
onnxsim, onnxslim, onnxoptimizer's fuse_bn_into_conv and onnxruntime's offline optimizer for ONNX files,
TensorFlow's TFLite converter for Keras models, tico's O1 pipeline for circle files), each a function
from the original model to the model the tool makes of it. ``run_peer`` runs one and checks its model
against the original with ``fold.tools.check`` (the verdict of ``python -m fold check``: every layer
that absorbed a BN at its own scale, then the outputs), so a peer's row reads like foldscope's.

Nothing here imports a framework at import time: a format's peers are read when it is first asked
for, and each tool is imported when it runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fold.core.errors import describe
from fold.core.graph import count_bns
from fold.core.verification import Verification
from fold.engine.comparison import Side
from fold.frontends.formats import FRONTENDS, Peer
from fold.tools.check import check


class _ByFormat(dict):
    """Format name -> its peers (``Peer``), read from the format's part ``peers`` the first time the
    format is asked for (importing its frontend then, not before); a format without peers has none."""

    def __missing__(self, name: str) -> tuple[Peer, ...]:
        fmt = FRONTENDS[name]
        found = tuple(fmt.part("peers").PEERS) if fmt.peers else ()
        self[name] = found
        return found


#: The peers of each format (keys of ``FRONTENDS``).
PEERS_BY_FORMAT: dict[str, tuple[Peer, ...]] = _ByFormat()


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


def require_peers(formats: Iterable[str]) -> None:
    """``MissingExtra`` for the first peer of ``formats`` (keys of ``FRONTENDS``) whose packages are missing."""
    for name in formats:
        for peer in PEERS_BY_FORMAT[name]:
            peer.require()


def run_peer(peer: Peer, original: Side, **options: Any) -> PeerRun:
    """``peer`` on the original's model, its model checked against the original (``options``: as
    ``fold.tools.check.check`` takes them: samples, seed, atol, shapes, arrays, inputs). A tool that fails
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
