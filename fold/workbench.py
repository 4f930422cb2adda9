"""Everything the app shows about one model, computed once: the fold, its verification, sample
outputs of both models and the per-channel numbers of every folded pair.

This is where the page's logic lives, so it can be tested without a browser and cached
as one object by the app.
"""

from __future__ import annotations

import io
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from fold import keras_io
from fold.affine import per_channel_range
from fold.api import FoldResult, fold_model, verify_outputs
from fold.kinds import KERAS_KINDS
from fold.rules import Decision
from fold.verification import Verification


@dataclass
class PairDetail:
    """Per-channel numbers of one folded pair, for the channel plots."""

    scale: np.ndarray
    shift: np.ndarray
    range_before: np.ndarray
    range_after: np.ndarray


@dataclass
class Workbench:
    result: FoldResult
    verification: Verification
    reference: list[np.ndarray]
    folded_outputs: list[np.ndarray]
    output_names: list[str]
    channel_axes: list[int]

    def detail(self, decision: Decision) -> PairDetail | None:
        """Scale, shift and kernel ranges of a folded pair (None for a skipped one)."""
        if decision.status != "folded":
            return None
        before = _layer_at(self.result.original, decision.layer)
        after = _layer_at(self.result.folded, decision.layer)
        kind = KERAS_KINDS[type(before).__name__]
        ranges = [per_channel_range(_weight(layer, kind.weight), kind.out_axes) for layer in (before, after)]
        return PairDetail(decision.affine.scale, decision.affine.shift, *ranges)

    def folded_keras_bytes(self) -> bytes:
        """The folded model as the bytes of a .keras file (for a download button)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{self.result.original.name}_folded.keras"
            keras_io.save_model(self.result.folded, path)
            return path.read_bytes()


def _layer_at(model: keras.Model, path: str) -> keras.layers.Layer:
    layer = model
    for part in path.split("/"):
        layer = layer.get_layer(part)
    return layer


def _weight(layer: keras.layers.Layer, name: str) -> np.ndarray:
    return next(np.asarray(w.numpy()) for w in layer.weights if w.name == name)


def inspect_model(model: keras.Model, inputs: list[np.ndarray] | None = None, *, samples: int = 2,
                  seed: int = 0) -> Workbench:
    """Fold ``model``, verify it and keep both models' outputs on the same inputs."""
    result = fold_model(model)
    start = time.perf_counter()
    check, reference, folded_outputs = verify_outputs(model, result.folded, inputs, samples=samples, seed=seed)
    result.timings_s["verify"] = time.perf_counter() - start
    return Workbench(
        result=result, verification=check, reference=reference,
        folded_outputs=folded_outputs, output_names=keras_io.output_names(model),
        channel_axes=keras_io.output_channel_axes(model),
    )


def load_upload(name: str, data: bytes) -> keras.Model:
    """Load an uploaded .keras/.h5 file (safe mode, size limit) from its bytes."""
    suffix = Path(name).suffix.lower()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        return keras_io.load_model(path)


def png(figure) -> bytes:
    """A matplotlib Figure rendered to PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()
