"""Everything the app shows about one model, computed once: the fold, its verification, both
models' outputs and the per-channel numbers of every folded pair.

One ``Workbench`` per model, whatever its format, built by the pipeline through the model's
frontend, so the page has one code path; the page's logic lives here, where it is tested
without a browser. Every workbench carries the cache key the page stores it under, set
once here where it is built: two models can never share one.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from demo import seed as seed_note
from demo import zoo
from fold.core.affine import per_channel_range
from fold.core.result import FoldResult
from fold.core.rules import Decision
from fold.core.verification import SAMPLES, OutputSpec, Verification
from fold.check import CheckResult, check_files
from fold.errors import FoldError
from fold.files import read_arrays
from fold.frontend import FRONTENDS, Frontend
from fold.pipeline import Checked, fold, load, verify


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

    key: the page's cache key for everything derived from this model.
    """

    key: str
    result: FoldResult
    checked: Checked
    outputs: list[OutputSpec]

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
    def reference(self) -> list[np.ndarray]:
        return self.checked.original_outputs

    @property
    def folded_outputs(self) -> list[np.ndarray]:
        return self.checked.folded_outputs

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    @property
    def keras_model(self) -> Any | None:
        """The original Keras model, when the model is one (for the Keras-only views)."""
        return self.result.original if self.frontend.format.name == "keras" else None

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
        from fold.frontends.graphdef.io import graph_def_from_keras, graph_model

        graphdef = FRONTENDS["graphdef"].frontend()
        wb = inspect(key, graphdef, graph_model(graph_def_from_keras(model), model.name), seed=seed)
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
    key = "playground:" + repr(sorted(settings.items()))
    return inspect_keras(key, zoo.playground_model(**settings), seed=settings.get("seed", 0))


def zoo_workbench(name: str) -> Workbench:
    """A model of the zoo, by its label."""
    if name not in zoo.ZOO:
        raise FoldError(f"The model zoo has no {name!r}; it has {', '.join(zoo.ZOO)}.")
    entry = zoo.ZOO[name]
    samples = entry.samples or SAMPLES
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


def upload_workbench(name: str, data: bytes, inputs: bytes | None = None) -> Workbench:
    """An uploaded model file, judged by suffix and content like any other (Keras safe_mode on);
    ``inputs``: an uploaded .npz/.npy of verification inputs."""
    key = f"upload:{_digest(data, inputs)}:{name}"
    arrays = None if inputs is None else read_arrays(inputs, "the inputs file")
    with tempfile.TemporaryDirectory() as tmp:
        frontend, model = load(_upload_path(tmp, name, data), upload=True)
        result = fold(frontend, model, Path(name).stem)
        checked = verify(result, arrays=arrays)
        return Workbench(key, result, checked, frontend.outputs(model))


@dataclass
class CheckBench:
    """A fold another tool made, checked against its original (``fold.check``), as the page shows it.

    It offers what the output views read from a Workbench: the outputs of both models."""

    key: str
    result: CheckResult

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

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]


def check_workbench(original: tuple[str, bytes], candidate: tuple[str, bytes], inputs: bytes | None = None
                    ) -> CheckBench:
    """Two uploaded files: an original and the fold another tool made of it."""
    key = f"check:{_digest(original[1], candidate[1], inputs)}:{original[0]}:{candidate[0]}"
    arrays = None if inputs is None else read_arrays(inputs, "the inputs file")
    with tempfile.TemporaryDirectory() as tmp:
        paths = [_upload_path(tmp, name, data, tag) for (name, data), tag in ((original, "a_"), (candidate, "b_"))]
        result = check_files(*paths, upload=True, arrays=arrays)
    result.original_name, result.candidate_name = original[0], candidate[0]
    return CheckBench(key, result)


def png(figure) -> bytes:
    """A matplotlib Figure rendered to PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()
