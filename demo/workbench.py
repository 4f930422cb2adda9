"""Everything the page shows about one model, computed once: the fold, its verification, both
models' outputs, and every view derived from them (tables, figures, downloads, the op view, the
converter's and the ONNX tools' results, the quantization report).

One ``Workbench`` per model, whatever its format, built by the pipeline through the model's
frontend, so the page has one code path; the page's logic lives here, where it is tested
without a browser or Streamlit. Every workbench carries the cache key the page stores it under,
set once here where it is built: two models can never share one. A workbench is never changed
once built and is shared by every session showing its model: what it derives is memoized on it
(``demo.memo``: computed once however many sessions ask at once, bounded), so it lives exactly
as long as the workbench stays in the page's cache, and one graph is flattened once.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
from matplotlib.figure import Figure

from demo import check_view, fold_view, graph_view, node_panel, quant_view
from demo import seed as seed_note
from demo.memo import Memos, memoized
from demo.pictures import picture
from fold.core.affine import per_channel_range
from fold.core.result import FoldResult
from fold.core.rules import Decision
from fold.core.verification import SAMPLES, OutputSpec, Verification
from fold.check import CheckResult, check_files
from fold.errors import FoldError
from fold.files import read_arrays
from fold.frontend import FRONTENDS, Frontend
from fold.pipeline import Checked, fold, load, verify
from viz import channels_chart, plot_channels, plot_heatmaps, plot_vectors, select_slice
from viz.graph import draw_graph

#: The page builds, folds and verifies one large model at a time (a zoo architecture of 224x224
#: inputs, an uploaded file, a check): each keeps both cores busy already, and the verification of a
#: 224x224 model holds over a gigabyte while it runs, so two at once would share the cores and add up
#: their memory. Small models (the seed, the playground, the zoo's small ones) do not wait for them.
LARGE = threading.Lock()


@dataclass
class PairDetail:
    """Per-channel numbers of one folded pair, for the channel plots (ranges when known)."""

    scale: np.ndarray
    shift: np.ndarray
    range_before: np.ndarray | None = None
    range_after: np.ndarray | None = None


class _Outputs:
    """The output view of a workbench or a check: both models' outputs on the verification's inputs."""

    reference: list[np.ndarray]
    folded_outputs: list[np.ndarray]
    outputs: list[OutputSpec]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    @memoized(16)
    def output_png(self, index: int, sample: int, channel: int | None) -> bytes:
        return picture(self.output_figure(index, sample, channel))

    def output_figure(self, index: int, sample: int, channel: int | None) -> Figure:
        """Both models' output ``index``: a curve per sample for vectors (Dense, softmax, ``channel``
        None), else the heatmaps of one channel with their difference."""
        name, reference, folded = self.output_names[index], self.reference[index], self.folded_outputs[index]
        if channel is None:
            return plot_vectors(np.ravel(reference[sample]), np.ravel(folded[sample]), title=f"{name}, sample {sample}")
        axis = self.outputs[index].channel_axis
        return plot_heatmaps(select_slice(reference, sample, channel, axis), select_slice(folded, sample, channel, axis),
                             title=f"{name}, sample {sample}, channel {channel}")


@dataclass(frozen=True, eq=False)
class Workbench(_Outputs):
    """A folded model of any format with its verification and both models' outputs.

    key: the page's cache key for everything derived from this model.
    """

    key: str
    result: FoldResult
    checked: Checked
    outputs: list[OutputSpec]
    memos: Memos = field(default_factory=Memos, init=False, repr=False)

    @property
    def frontend(self) -> Frontend:
        return self.result.frontend

    @property
    def name(self) -> str:
        return self.result.name

    @property
    def suffix(self) -> str:
        return self.frontend.format.output_suffix

    @property
    def notice(self) -> str | None:
        return self.result.notice

    @property
    def verification(self) -> Verification:
        return self.checked.verification

    @property
    def first_pair(self) -> int:
        """The pair the page opens on: the first transposed convolution's (the fold foldscope exists to
        show), else the first pair."""
        return next((i for i, d in enumerate(self.result.decisions) if d.family == "transpose"), 0)

    @property
    def reference(self) -> list[np.ndarray]:
        return self.checked.original_outputs

    @property
    def folded_outputs(self) -> list[np.ndarray]:
        return self.checked.folded_outputs

    @property
    def keras_model(self) -> Any | None:
        """The original Keras model, when the model is one (for the Keras-only views)."""
        return self.result.original if self.frontend.format.name == "keras" else None

    @memoized()
    def folded_file(self) -> bytes:
        """The folded model file, in the model's own format."""
        return self.frontend.to_bytes(self.result.folded)

    def detail(self, decision: Decision) -> PairDetail | None:
        """Scale, shift and kernel ranges before and after of a folded pair; None for a skipped one."""
        if not decision.folded or decision.affine is None:
            return None
        ranges = []
        for model in (self.result.original, self.result.folded):
            found = self.frontend.kernel(model, decision.layer)
            ranges.append(per_channel_range(found.kernel, found.kind, found.groups))
        return PairDetail(decision.affine.scale, decision.affine.shift, *ranges)

    # -- the Fold tab ------------------------------------------------------------------------

    @memoized()
    def pairs_table(self) -> list[dict]:
        """Every candidate pair with its folded layer's own check (``fold_view.pairs_table``)."""
        return fold_view.pairs_table(self.result, self.verification)

    @memoized(16)
    def channel_png(self, index: int) -> bytes:
        return picture(self.channel_figure(index))

    def channel_figure(self, index: int) -> Figure:
        """The per-channel scale, shift and kernel ranges of candidate pair ``index`` (a folded one)."""
        decision = self.result.decisions[index]
        detail = self.detail(decision)
        return plot_channels(detail.scale, detail.shift, detail.range_before, detail.range_after,
                             title=f"{decision.layer} ← {decision.bn}")

    def channel_chart(self, index: int) -> dict:
        """``channel_figure``'s panels as an interactive Plotly figure (the HTML report's)."""
        decision = self.result.decisions[index]
        detail = self.detail(decision)
        return channels_chart(detail.scale, detail.shift, detail.range_before, detail.range_after,
                              title=f"{decision.layer} ← {decision.bn}")

    # -- the graph of a view: "fold" (this fold) or "ops" (the op view's) ----------------------

    def fold_of(self, view: str) -> FoldResult:
        return self.result if view == "fold" else self.op_view()

    def checks_of(self, view: str) -> Verification:
        return self.verification if view == "fold" else self.op_verification()

    @memoized(4)
    def graphs(self, view: str, expanded: tuple[str, ...]) -> tuple[nx.DiGraph, nx.DiGraph]:
        """Both graphs of ``view`` with the ``expanded`` nested models opened: flattened once."""
        return graph_view.open_graphs(self.fold_of(view), expanded)

    @memoized(2)
    def nested_models(self, view: str) -> tuple[str, ...]:
        return tuple(graph_view.nested_models(self.fold_of(view).graph_before))

    @memoized(2)
    def layer_names(self, view: str) -> list[str]:
        """Every layer of the graph before folding, nested models opened, sorted (for "Find a layer")."""
        return sorted(set(self.graphs(view, self.nested_models(view))[0]))

    @memoized(2)
    def blocks(self, view: str, expanded: tuple[str, ...]) -> graph_view.BlockView:
        """The blocks of a view's graph before folding and what each holds, every block closed."""
        return graph_view.block_view(self.fold_of(view), self.graphs(view, expanded), ())

    @memoized(4)
    def block_view(self, view: str, expanded: tuple[str, ...], opened: tuple[str, ...] | None) -> graph_view.BlockView:
        """A view's graphs with every block closed but the ``opened`` ones (None: all open)."""
        every = self.blocks(view, expanded)
        if opened == ():
            return every
        return graph_view.block_view(self.fold_of(view), self.graphs(view, expanded), opened, every.blocks,
                                     every.summaries)

    @memoized(4)
    def graph_figure(self, view: str, expanded: tuple[str, ...], colour: bool,
                     opened: tuple[str, ...] | None = None) -> dict:
        """The figure of a view's graphs (layout, nodes, hover texts), coloured by the checks when
        ``colour``, every block closed but the ``opened`` ones (None: the whole graph): built once,
        viewed many times (``graph_view.view``)."""
        checks = self.checks_of(view).layers if colour else None
        blocks = None if opened is None else self.block_view(view, expanded, opened)
        return graph_view.figure(self.fold_of(view), checks=checks, graphs=self.graphs(view, expanded), blocks=blocks)

    @memoized(16)
    def panel_of(self, view: str, expanded: tuple[str, ...], node: str) -> node_panel.NodePanel | None:
        """What the node panel says about a drawn node of a view (a layer or a closed block)."""
        return node_panel.node_panel(self.fold_of(view), self.checks_of(view), self.graphs(view, expanded)[0], node,
                                     self.blocks(view, expanded))

    @memoized(4)
    def static_picture(self, view: str, fmt: str) -> bytes:
        return graph_view.static_picture(self.fold_of(view), fmt)

    def model_explorer_zip(self, view: str) -> bytes:
        """The Model Explorer files of a view (the fold's with each layer's check), made when asked."""
        return graph_view.model_explorer_zip(self.fold_of(view), self.verification.layers if view == "fold" else None)

    # -- a Keras model: the same model as TensorFlow ops, and TensorFlow's TFLite converter -------

    @memoized()
    def op_view(self) -> FoldResult:
        """The Keras model traced to TensorFlow ops and folded at op level."""
        return fold(FRONTENDS["graphdef"].frontend(), traced(self.keras_model, self.name))

    @memoized()
    def op_verification(self) -> Verification:
        """The op view's fold, verified on this workbench's inputs."""
        return verify(self.op_view(), inputs=self.checked.inputs).verification

    @memoized()
    def consts_png(self) -> bytes:
        """The op view's graph before folding with its Const ops (otherwise weights of their readers)."""
        from fold.frontends.graphdef import FRONTEND as GRAPHDEF

        graph = GRAPHDEF.graph(self.op_view().original, show_consts=True)
        return picture(draw_graph(graph, title=graph.graph.get("name")))

    @memoized()
    def converter_views(self) -> tuple:
        """What TensorFlow's TFLite converter makes of the original and of the folded model."""
        from demo.converter import converter_view

        return converter_view(self.keras_model, samples=1), converter_view(self.result.folded, samples=1)

    @memoized()
    def converter_png(self) -> bytes:
        """The op graph TensorFlow's converter made of the original model."""
        graph = self.converter_views()[0].graph
        return picture(draw_graph(graph, title=graph.graph.get("name")))

    @memoized()
    def folded_tflite(self) -> bytes:
        from fold.frontends.keras.io import to_tflite

        return to_tflite(self.result.folded)

    # -- an ONNX model: what the field's ONNX tools do with it ----------------------------------

    @memoized()
    def peer_runs(self) -> list:
        from demo.peers import peer_runs

        return peer_runs(self.result.original, self.checked.inputs)

    @memoized()
    def peers_table(self) -> list[dict]:
        """foldscope and each ONNX tool, a row each (``fold_view.peers_table``)."""
        return fold_view.peers_table(self.result, self.verification, self.peer_runs())

    # -- the Quantization tab -----------------------------------------------------------------

    @memoized()
    def quant_report(self):
        """The quantization view of this fold, on the verification's inputs."""
        from fold.quantization import quant_report

        return quant_report(self.result, self.checked)

    @memoized()
    def int8_report(self):
        """Real int8 (``fold.int8``): the runtime's own int8 models of this fold's variants, calibrated
        and compared on the verification's inputs."""
        from fold.int8 import int8_report

        v = self.verification
        return int8_report(self.result, self.checked.inputs, samples=v.samples, seed=v.seed, source=v.inputs_source,
                           equalized=self.quant_report().equalized)

    @memoized(5)
    def int8_graph(self, variant: str) -> dict:
        """The fold's graph coloured by each folded layer's real int8 SQNR in ``variant`` (the Graph tab's
        layout: blocks closed in a large graph, the worst of a block's layers colouring it), opening on
        the layer that loses most there, ringed."""
        report = self.int8_report()
        values = {q.layer: q.sqnr_db[variant] for q in report.layers if q.sqnr_db[variant] is not None}
        graphs = self.graphs("fold", ())
        blocks = self.block_view("fold", (), ()) if graph_view.collapsed_at_first(graphs[0]) else None
        base = graph_view.figure(self.result, int8=(values, quant_view.INT8_LABELS[variant]), graphs=graphs,
                                 blocks=blocks)
        worst = report.worst(variant)
        return graph_view.view(base, graphs[0], center=worst and worst.layer, found=worst and worst.layer,
                               blocks=blocks, revision=f"{self.key}:int8:{variant}")

    @memoized()
    def sqnr_png(self) -> bytes:
        return picture(quant_view.sqnr_figure(self.quant_report()))

    @memoized(16)
    def ranges_png(self, index: int, equalized: bool) -> bytes:
        return picture(quant_view.ranges_figure(self.quant_report().layers[index], equalized))

    @memoized()
    def equalized_file(self) -> bytes:
        """The folded model after cross-layer equalization, in the model's own format."""
        return self.frontend.to_bytes(self.quant_report().equalized)


def traced(model: Any, name: str) -> Any:
    """A Keras model traced to TensorFlow ops, as the GraphDef frontend reads a frozen graph."""
    from fold.frontends.graphdef.io import graph_def_from_keras, graph_model

    return graph_model(graph_def_from_keras(model), name)


def inspect(key: str, frontend: Frontend, model: Any, *, samples: int = SAMPLES, seed: int = 0,
            inputs: list[np.ndarray] | None = None, name: str | None = None) -> Workbench:
    """Fold ``model`` with ``frontend``, verify it and keep both models' outputs on the same inputs."""
    result = fold(frontend, model, name)
    checked = verify(result, samples, seed, inputs=inputs)
    return Workbench(key, result, checked, frontend.outputs(model))


def inspect_keras(key: str, model: Any, *, samples: int = SAMPLES, seed: int = 0,
                  inputs: list[np.ndarray] | None = None) -> Workbench:
    """A Keras model's workbench; a model foldscope cannot rebuild as Keras (a subclassed model)
    is traced to TensorFlow ops and folded there, and the notice says so."""
    try:
        return inspect(key, FRONTENDS["keras"].frontend(), model, samples=samples, seed=seed, inputs=inputs)
    except FoldError as exc:
        wb = inspect(key, FRONTENDS["graphdef"].frontend(), traced(model, model.name), seed=seed)
        wb.result.notice = (f"{exc} The folded Keras model cannot be written; shown instead: the same model "
                            "traced to TensorFlow ops and folded at op level (downloadable as a frozen .pb).")
        return wb


# -- the page's model sources -----------------------------------------------------------------

def seed_workbench() -> Workbench:
    """The seed note's first example as a Keras model, on the note's own input."""
    return inspect_keras("seed", seed_note.keras_model(), inputs=[seed_note.seed_batch()])


def seed_ops_workbench() -> Workbench:
    """The seed note's second listing as TensorFlow ops, folded at op level."""
    from fold.frontends.graphdef.io import graph_model

    graphdef = FRONTENDS["graphdef"].frontend()
    return inspect("seed-ops", graphdef, graph_model(seed_note.graph_def(), "seed_ops"))


def playground_workbench(settings: dict) -> Workbench:
    """One layer + BN from the playground's settings (``zoo.playground_model``'s arguments)."""
    from demo import zoo  # Keras: imported by the workbenches that build a model, not by a report's

    key = "playground:" + repr(sorted(settings.items()))
    return inspect_keras(key, zoo.playground_model(**settings), seed=settings.get("seed", 0))


def zoo_workbench(name: str) -> Workbench:
    """A model of the zoo, by its label."""
    from demo import zoo

    if name not in zoo.ZOO:
        raise FoldError(f"The model zoo has no {name!r}; it has {', '.join(zoo.ZOO)}.")
    entry = zoo.ZOO[name]
    samples = entry.samples or SAMPLES
    with LARGE if entry.large else contextlib.nullcontext():
        if entry.format == "keras":
            return inspect_keras(f"zoo:{name}", entry.build(), samples=samples)
        return inspect(f"zoo:{name}", FRONTENDS[entry.format].frontend(), entry.build(), samples=samples)


def _upload_path(tmp: str, name: str, data: bytes, tag: str = "") -> Path:
    """An uploaded file written under a safe name of its own suffix, in ``tmp``."""
    path = Path(tmp) / f"{tag}{Path(name).stem[:64] or 'upload'}{Path(name).suffix.lower()}"
    path.write_bytes(data)
    return path


def _digest(*parts: bytes | None) -> str:
    return hashlib.sha256(b"\0".join(p or b"" for p in parts)).hexdigest()


def upload_key(name: str, data: bytes, inputs: bytes | None = None) -> str:
    """The cache key of an uploaded model (and inputs file): its bytes hashed, once."""
    return f"upload:{_digest(data, inputs)}:{name}"


def upload_workbench(name: str, data: bytes, inputs: bytes | None = None, *, key: str | None = None) -> Workbench:
    """An uploaded model file, judged by suffix and content like any other (Keras safe_mode on);
    ``inputs``: an uploaded .npz/.npy of verification inputs; ``key``: ``upload_key`` of them, when
    the caller has it already."""
    key = key or upload_key(name, data, inputs)
    arrays = None if inputs is None else read_arrays(inputs, "the inputs file")
    with LARGE, tempfile.TemporaryDirectory() as tmp:
        frontend, model = load(_upload_path(tmp, name, data), upload=True)
        result = fold(frontend, model, Path(name).stem)
        checked = verify(result, arrays=arrays)
        return Workbench(key, result, checked, frontend.outputs(model))


@dataclass(frozen=True, eq=False)
class CheckBench(_Outputs):
    """A fold another tool made, checked against its original (``fold.check``), as the page shows it.

    It offers what the output views read from a Workbench: the outputs of both models."""

    key: str
    result: CheckResult
    memos: Memos = field(default_factory=Memos, init=False, repr=False)

    @property
    def verification(self) -> Verification:
        return self.result.checked.verification

    @property
    def reference(self) -> list[np.ndarray]:
        return self.result.checked.original_outputs

    @property
    def folded_outputs(self) -> list[np.ndarray]:
        return self.result.checked.folded_outputs

    @property
    def outputs(self) -> list[OutputSpec]:
        return self.result.original.frontend.outputs(self.result.original.model)

    @memoized()
    def figure(self) -> dict:
        """Both graphs on one layout (``check_view.figure``)."""
        return check_view.figure(self.result)

    @memoized()
    def fates_table(self) -> list[dict]:
        """Where each BatchNorm of the original went (``check_view.fates_table``)."""
        return check_view.fates_table(self.result)


def check_key(original: tuple[str, bytes], candidate: tuple[str, bytes], inputs: bytes | None = None) -> str:
    """The cache key of a check of two uploads (and inputs file): their bytes hashed, once."""
    return f"check:{_digest(original[1], candidate[1], inputs)}:{original[0]}:{candidate[0]}"


def check_workbench(original: tuple[str, bytes], candidate: tuple[str, bytes], inputs: bytes | None = None,
                    *, key: str | None = None) -> CheckBench:
    """Two uploaded files, (name, bytes) each: an original and the fold another tool made of it;
    ``key``: ``check_key`` of them, when the caller has it already."""
    key = key or check_key(original, candidate, inputs)
    arrays = None if inputs is None else read_arrays(inputs, "the inputs file")
    with LARGE, tempfile.TemporaryDirectory() as tmp:
        paths = [_upload_path(tmp, name, data, tag) for (name, data), tag in ((original, "a_"), (candidate, "b_"))]
        result = check_files(*paths, upload=True, arrays=arrays)
    result.original_name, result.candidate_name = original[0], candidate[0]
    return CheckBench(key, result)
