"""Everything the app shows about one model, computed once: the fold, its verification, sample
outputs of both models and the per-channel numbers of every folded pair.

One ``Workbench`` per model, whatever its format (Keras, frozen GraphDef, TFLite), so the page
has one code path; the page's logic lives here, where it is tested without a browser.
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from fold import keras_io
from fold.affine import per_channel_range
from fold.api import fold_model, verify_outputs
from fold.errors import FoldError
from fold.files import check_model_file
from fold.keras_fold import layer_weights
from fold.kinds import KERAS_KINDS
from fold.rules import Decision
from fold.verification import Verification, compare


@dataclass
class PairDetail:
    """Per-channel numbers of one folded pair, for the channel plots (ranges when known)."""

    scale: np.ndarray
    shift: np.ndarray
    range_before: np.ndarray | None = None
    range_after: np.ndarray | None = None


@dataclass
class Workbench:
    """A folded model of any format with its verification and both models' outputs.

    ``result`` is a ``FoldResult``, ``GraphFoldResult`` or ``TfliteFoldResult``: all have
    decisions, folded_pairs, graph_before, graph_after, bn_before, bn_after and timings_s.
    """

    result: Any
    verification: Verification
    reference: list[np.ndarray]
    folded_outputs: list[np.ndarray]
    output_names: list[str]
    channel_axes: list[int]
    name: str
    suffix: str
    folded_file: Callable[[], bytes]
    kernel_ranges: Callable[[Decision], tuple[np.ndarray, np.ndarray]] | None = None
    notice: str | None = None

    @property
    def keras_model(self) -> keras.Model | None:
        original = getattr(self.result, "original", None)
        return original if isinstance(original, keras.Model) else None

    def detail(self, decision: Decision) -> PairDetail | None:
        """Scale, shift (and kernel ranges) of a folded pair; None for a skipped one."""
        if decision.status != "folded" or decision.affine is None:
            return None
        ranges = self.kernel_ranges(decision) if self.kernel_ranges else (None, None)
        return PairDetail(decision.affine.scale, decision.affine.shift, *ranges)


def _layer_at(model: keras.Model, path: str) -> keras.layers.Layer:
    layer = model
    for part in path.split("/"):
        layer = layer.get_layer(part)
    return layer


def _keras_bytes(model: keras.Model) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return keras_io.save_model(model, Path(tmp) / "folded.keras").read_bytes()


def inspect_model(model: keras.Model, inputs: list[np.ndarray] | None = None, *, samples: int = 2,
                  seed: int = 0) -> Workbench:
    """Fold a Keras model, verify it and keep both models' outputs on the same inputs.

    A model foldscope cannot rebuild as Keras (a subclassed model) is traced to TensorFlow
    ops and folded there; ``notice`` says so and the download is the folded frozen graph.
    """
    try:
        result = fold_model(model)
    except FoldError as exc:
        from fold.tf_graph import graph_def_from_keras

        wb = inspect_graph_def(graph_def_from_keras(model), model.name, seed=seed)
        wb.notice = f"{exc} The folded Keras model cannot be written; shown instead: the same model " \
                    "traced to TensorFlow ops and folded at op level (downloadable as a frozen .pb)."
        return wb
    start = time.perf_counter()
    check, reference, folded_outputs = verify_outputs(model, result.folded, inputs, samples=samples, seed=seed)
    result.timings_s["verify"] = time.perf_counter() - start

    def kernel_ranges(decision: Decision) -> tuple[np.ndarray, np.ndarray]:
        before = _layer_at(result.original, decision.layer)
        kind = KERAS_KINDS[type(before).__name__]
        after = _layer_at(result.folded, decision.layer)
        return tuple(per_channel_range(layer_weights(layer)[kind.weight], kind.out_axes) for layer in (before, after))

    return Workbench(result, check, reference, folded_outputs, keras_io.output_names(model),
                     keras_io.output_channel_axes(model), model.name, ".keras",
                     lambda: _keras_bytes(result.folded), kernel_ranges)


def inspect_graph_def(graph_def, name: str = "graph", *, seed: int = 0) -> Workbench:
    """Fold a frozen TensorFlow GraphDef and run both graphs on the same seeded inputs."""
    from fold import tf_graph

    result = tf_graph.fold_graph_def(graph_def)
    inputs, outputs = tf_graph.io_names(graph_def)
    start = time.perf_counter()
    feeds = tf_graph.sample_feeds(graph_def, inputs, seed)
    reference = tf_graph.run_graph_def(graph_def, feeds, outputs)
    folded = tf_graph.run_graph_def(result.folded, feeds, outputs)
    axes = [tf_graph.channel_axis(graph_def, o) for o in outputs]
    check = compare(reference, folded, outputs, channel_axes=axes, samples=1, seed=seed)
    result.timings_s["verify"] = time.perf_counter() - start
    return Workbench(result, check, reference, folded, outputs, axes, name, ".pb",
                     lambda: result.folded.SerializeToString(deterministic=True))


def inspect_tflite(data: bytes, name: str = "model", *, samples: int = 2, seed: int = 0) -> Workbench:
    """Fold a .tflite model and run both with LiteRT on the same seeded inputs."""
    from fold import tflite

    result = tflite.fold_tflite(data, name=name)
    start = time.perf_counter()
    inputs = tflite.sample_tflite_inputs(data, samples, seed)
    reference, folded = tflite.run_tflite(data, inputs), tflite.run_tflite(result.folded, inputs)
    names = tflite.output_names(data)
    check = compare(reference, folded, names, samples=int(inputs[0].shape[0]), seed=seed)
    result.timings_s["verify"] = time.perf_counter() - start
    return Workbench(result, check, reference, folded, names, [-1] * len(names), name, ".tflite",
                     lambda: result.folded)


def inspect_upload(name: str, data: bytes) -> Workbench:
    """Load an uploaded model file (checked by content, Keras safe_mode on) and inspect it."""
    suffix = Path(name).suffix.lower()
    stem = Path(name).stem
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{stem[:64] or 'upload'}{suffix}"
        path.write_bytes(data)
        fmt = check_model_file(path)
        if fmt == "pb":
            from fold.tf_graph import read_graph_def

            return inspect_graph_def(read_graph_def(path), stem)
        if fmt == "tflite":
            return inspect_tflite(data, Path(name).name)
        return inspect_model(keras_io.load_model(path))


def png(figure) -> bytes:
    """A matplotlib Figure rendered to PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()
