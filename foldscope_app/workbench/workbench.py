"""Everything the page shows about one fold, computed once: the fold, its verification, both
models' outputs, and every view derived from them (tables, figures, downloads, the op view, the
converter's and the ONNX tools' results, the quantization report, the HTML report).

One ``Workbench`` per fold result, whatever its format, built by the pipeline through the model's
frontend, so the page has one code path (a Keras model's op view, the same model folded at op
level, is a workbench of its own: ``Workbench.ops``); the page's logic lives here, where it is tested
without a browser or Streamlit. Every workbench carries the cache key the page stores it under,
set once here where it is built: two models can never share one. A workbench is never changed
once built and is shared by every session showing its model: what it derives is memoized on it
(``foldscope_app.workbench.memo``: computed once however many sessions ask at once, bounded), so it lives exactly
as long as the workbench stays in the page's cache, and one graph is flattened once.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
from matplotlib.figure import Figure

from fold.core.errors import FoldError
from fold.core.result import FoldResult
from fold.core.rules import Decision
from fold.core.verification import SAMPLES, OutputSpec, Verification, read_arrays
from fold.engine.pipeline import Checked, fold, load, verify
from fold.frontends.formats import FRONTENDS, Frontend
from fold.outputs import result_views
from fold.outputs.html.fold_page import check_report, fold_report
from fold.outputs.model_explorer import export_zip
from fold.tools.check import CheckResult, check_files
from foldscope_app.examples import model_zoo
from foldscope_app.examples import seed as seed_note
from foldscope_app.workbench import fold_view, node_panel, quant_view
from foldscope_app.workbench.memo import Memos, memoized
from viz import fold_graph
from viz.pictures import darkened, picture
from viz.static_graph import draw_graph

#: The page builds, folds and verifies one large model at a time (a zoo architecture of 224x224
#: inputs, an uploaded file, a check): each keeps both cores busy already, and the verification of a
#: 224x224 model holds over a gigabyte while it runs, so two at once would share the cores and add up
#: their memory. Small models (the seed, the playground, the zoo's small ones) do not wait for them.
LARGE = threading.Lock()


#: One thread for the views worth preparing before they are asked for (``prepare_whole_graph``).
_BACKGROUND = ThreadPoolExecutor(max_workers=1, thread_name_prefix="foldscope-prepare")

#: Who is told of a long computation's steps in this context (the page's progress bar), if anyone: a
#: memoized view computes once for every session, and tells the session that asked first.
PROGRESS: contextvars.ContextVar[Callable[[str, int, int], None] | None] = contextvars.ContextVar("progress",
                                                                                                    default=None)


class _Outputs:
    """The output view of a workbench or a check: both models' outputs on the verification's inputs."""

    reference: list[np.ndarray]
    folded_outputs: list[np.ndarray]
    outputs: list[OutputSpec]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    @memoized(16)
    def output_png(self, index: int, sample: int, channel: int | None, dark: bool = False) -> bytes:
        """The outputs' figure as a PNG, for a dark page when ``dark``."""
        figure = self.output_figure(index, sample, channel)
        return picture(darkened(figure) if dark else figure)

    def output_figure(self, index: int, sample: int, channel: int | None) -> Figure:
        """Both models' output ``index`` (``result_views.output_figure``)."""
        return result_views.output_figure(self.outputs, self.reference, self.folded_outputs, index, sample, channel)


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
        """The pair the page opens on (``result_views.first_pair``)."""
        return result_views.first_pair(self.result)

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

    def detail(self, decision: Decision) -> result_views.PairDetail | None:
        """Scale, shift and kernel ranges before and after of a folded pair; None for a skipped one."""
        return result_views.pair_detail(self.result, decision)

    # -- the Fold tab ------------------------------------------------------------------------

    @memoized()
    def pairs_table(self) -> list[dict]:
        """Every candidate pair with its folded layer's own check (``result_views.pairs_table``)."""
        return result_views.pairs_table(self.result, self.verification)

    @memoized(16)
    def channel_png(self, index: int) -> bytes:
        return picture(self.channel_figure(index))

    def channel_figure(self, index: int) -> Figure:
        """The per-channel figure of candidate pair ``index`` (``result_views.channel_figure``)."""
        return result_views.channel_figure(self.result, index)

    @memoized()
    def html_report(self) -> bytes:
        """The HTML report of this fold (``fold.outputs.html.fold_page``), as UTF-8: what ``--html`` writes,
        built once, when asked for."""
        return fold_report(self.result, self.checked)

    # -- the graph of this fold ---------------------------------------------------------------

    @memoized(4)
    def graphs(self, expanded: tuple[str, ...]) -> tuple[nx.DiGraph, nx.DiGraph]:
        """Both graphs with the ``expanded`` nested models opened: flattened once."""
        return fold_graph.open_graphs(self.result, expanded)

    @memoized()
    def nested_models(self) -> tuple[str, ...]:
        return tuple(fold_graph.nested_models(self.result.graph_before))

    @memoized(2)
    def blocks(self, expanded: tuple[str, ...]) -> fold_graph.BlockView:
        """The blocks of the graph before folding and what each holds, every block closed."""
        return fold_graph.block_view(self.result, self.graphs(expanded), ())

    @memoized(4)
    def block_view(self, expanded: tuple[str, ...], opened: tuple[str, ...] | None) -> fold_graph.BlockView:
        """The graphs with every block closed but the ``opened`` ones (None: all open)."""
        every = self.blocks(expanded)
        if opened == ():
            return every
        return fold_graph.block_view(self.result, self.graphs(expanded), opened, every.blocks, every.summaries)

    @memoized(4)
    def graph_figure(self, expanded: tuple[str, ...], colour: bool, opened: tuple[str, ...] | None = None) -> dict:
        """The figure of the graphs (layout, nodes, hover texts), coloured by the checks when ``colour``,
        every block closed but the ``opened`` ones (None: the whole graph): built once, viewed many
        times (``fold_graph.view``)."""
        checks = self.verification.layers if colour else None
        blocks = None if opened is None else self.block_view(expanded, opened)
        return fold_graph.figure(self.result, checks=checks, graphs=self.graphs(expanded), blocks=blocks,
                                 laid_out=self.graph_layouts(expanded, opened))

    @memoized(4)
    def graph_layouts(self, expanded: tuple[str, ...], opened: tuple[str, ...] | None) -> tuple:
        """The layout of the graphs (``fold_graph.layouts``): laid out once, whatever the figure is coloured by."""
        blocks = None if opened is None else self.block_view(expanded, opened)
        return fold_graph.layouts(self.graphs(expanded), blocks)

    def prepare_whole_graph(self, expanded: tuple[str, ...], colour: bool) -> None:
        """Start laying out the whole graph (every block open) in the background, once, while the user
        reads the view with its blocks closed: the toggle then finds it ready (DenseNet121's takes most
        of a second; ``graph_figure`` computes each figure once, whoever asks first)."""
        _BACKGROUND.submit(self.graph_figure, expanded, colour, None)

    @memoized(16)
    def panel_of(self, expanded: tuple[str, ...], node: str) -> node_panel.NodePanel | None:
        """What the node panel says about a drawn node (a layer or a closed block)."""
        return node_panel.node_panel(self.result, self.verification, self.graphs(expanded)[0], node,
                                     self.blocks(expanded))

    @memoized(2)
    def static_picture(self, fmt: str) -> bytes:
        return fold_graph.static_picture(self.result, fmt)

    def model_explorer_zip(self) -> bytes:
        """The Model Explorer files of this fold with each layer's check, made when asked."""
        return export_zip(self.result, self.verification.layers)

    # -- a Keras model: the same model as TensorFlow ops, and TensorFlow's TFLite converter -------

    @memoized()
    def op_view(self) -> FoldResult:
        """The Keras model traced to TensorFlow ops and folded at op level."""
        return fold(FRONTENDS["graphdef"].frontend(), traced(self.keras_model, self.name))

    @memoized()
    def ops(self) -> Workbench:
        """The op view as a workbench of its own, verified on this workbench's inputs."""
        ops = self.op_view()
        checked = verify(ops, inputs=self.checked.inputs)
        return Workbench(f"{self.key}:ops", ops, checked, ops.frontend.outputs(ops.original))

    @memoized()
    def consts_png(self) -> bytes:
        """The op view's graph before folding with its Const ops (otherwise weights of their readers)."""
        from fold.frontends.graphdef import FRONTEND as GRAPHDEF

        graph = GRAPHDEF.graph(self.op_view().original, show_consts=True)
        return picture(draw_graph(graph, title=graph.graph.get("name")))

    @memoized()
    def converter_views(self) -> tuple:
        """What TensorFlow's TFLite converter makes of the original and of the folded model."""
        from foldscope_app.workbench.converter_view import converter_view

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
        from foldscope_app.workbench.onnx_peers import peer_runs

        return peer_runs(self.result.original, self.checked.inputs)

    @memoized()
    def peers_table(self) -> list[dict]:
        """foldscope and each ONNX tool, a row each (``fold_view.peers_table``)."""
        return fold_view.peers_table(self.result, self.verification, self.peer_runs())

    def peers_pending(self) -> bool:
        """Whether the ONNX tools have yet to run on this model (seconds to half a minute)."""
        return len(self.memos.of("peers_table", 1)) == 0

    # -- the Quantization tab -----------------------------------------------------------------

    @memoized()
    def quant_report(self):
        """The quantization view of this fold, on the verification's inputs."""
        from fold.tools.quantization import quant_report

        return quant_report(self.result, self.checked)

    @memoized()
    def int8_report(self):
        """Real int8 (``fold.tools.int8_report``): the runtime's own int8 models of this fold's variants,
        calibrated and compared on the verification's inputs; each variant told to ``PROGRESS`` as it starts."""
        from fold.tools.int8_report import int8_report

        v = self.verification
        return int8_report(self.result, self.checked.inputs, samples=v.samples, seed=v.seed, source=v.inputs_source,
                           equalized=self.quant_report().equalized, progress=PROGRESS.get())

    @memoized(5)
    def int8_graph(self, variant: str) -> dict:
        """The fold's graph coloured by each folded layer's real int8 SQNR in ``variant`` (the Graph tab's
        layout: blocks closed in a large graph, the worst of a block's layers colouring it), opening on
        the layer that loses most there, ringed."""
        report = self.int8_report()
        values = {q.layer: q.sqnr_db[variant] for q in report.layers if q.sqnr_db[variant] is not None}
        graphs = self.graphs(())
        opened = () if fold_graph.collapsed_at_first(graphs[0]) else None
        blocks = None if opened is None else self.block_view((), opened)
        base = fold_graph.figure(self.result, int8=(values, quant_view.INT8_LABELS[variant]), graphs=graphs,
                                 blocks=blocks, laid_out=self.graph_layouts((), opened))
        worst = report.worst(variant)
        return fold_graph.view(base, graphs[0], center=worst and worst.layer, found=worst and worst.layer,
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
    """One layer + BN from the playground's settings (``model_zoo.playground_model``'s arguments)."""
    key = "playground:" + repr(sorted(settings.items()))
    return inspect_keras(key, model_zoo.playground_model(**settings), seed=settings.get("seed", 0))


def zoo_workbench(name: str) -> Workbench:
    """A model of the zoo, by its label."""
    if name not in model_zoo.ZOO:
        raise FoldError(f"The model zoo has no {name!r}; it has {', '.join(model_zoo.ZOO)}.")
    entry = model_zoo.ZOO[name]
    samples = entry.samples or SAMPLES
    with LARGE if entry.large else contextlib.nullcontext():
        if entry.format == "keras":
            return inspect_keras(f"zoo:{name}", entry.build(), samples=samples)
        return inspect(f"zoo:{name}", FRONTENDS[entry.format].frontend(), entry.build(), samples=samples)


def _upload_path(tmp: str, name: str, data: bytes, folder: str = "") -> Path:
    """An uploaded file written under a safe name of its own suffix, in ``tmp`` (in its ``folder`` of
    it, when two uploads may share a name): what an error names is the name the user gave."""
    parent = Path(tmp) / folder
    parent.mkdir(exist_ok=True)
    path = parent / f"{Path(name).stem[:64] or 'upload'}{Path(name).suffix.lower()}"
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
    """A fold another tool made, checked against its original (``fold.tools.check``), as the page shows it.

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
    def graphs(self) -> tuple[nx.DiGraph, nx.DiGraph, dict[str, str]]:
        """Both graphs, the candidate's nodes named after the original's (``result_views.aligned_graphs``)."""
        return result_views.aligned_graphs(self.result)

    @memoized()
    def blocks(self) -> fold_graph.BlockView:
        """The blocks of the original's graph and what each holds, every block closed."""
        return result_views.check_blocks(self.result, self.graphs()[:2], ())

    @memoized(4)
    def block_view(self, opened: tuple[str, ...] | None) -> fold_graph.BlockView:
        """Both graphs with every block closed but the ``opened`` ones (None: all open)."""
        return self.blocks() if opened == () else result_views.check_blocks(self.result, self.graphs()[:2], opened,
                                                                          self.blocks())

    @memoized(4)
    def figure(self, opened: tuple[str, ...] | None = None) -> dict:
        """Both graphs on one layout (``result_views.check_figure``), every block closed but the ``opened``
        ones (None: the whole graph)."""
        return result_views.check_figure(self.result, self.graphs(), None if opened is None else self.block_view(opened))

    @memoized(16)
    def panel_of(self, node: str) -> node_panel.NodePanel | None:
        """What the node panel says about a drawn node (``node_panel.check_panel``)."""
        return node_panel.check_panel(self.result, self.graphs(), node, self.blocks())

    @memoized()
    def fates_table(self) -> list[dict]:
        """Where each BatchNorm of the original went (``result_views.fates_table``)."""
        return result_views.fates_table(self.result)

    @memoized()
    def html_report(self) -> bytes:
        """The HTML report of this check (``fold.outputs.html.fold_page``), as UTF-8: what ``check --html``
        writes, built once, when asked for."""
        return check_report(self.result)


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
        paths = [_upload_path(tmp, name, data, folder) for (name, data), folder in ((original, "original"),
                                                                                     (candidate, "candidate"))]
        result = check_files(*paths, upload=True, arrays=arrays)
    result.original_name, result.candidate_name = original[0], candidate[0]
    return CheckBench(key, result)
