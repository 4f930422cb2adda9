"""The format-neutral pipeline: load a file, fold a model, verify the result, write it. Written once, for
every frontend.

    result = fold_file("unet.keras")                       # any format in FRONTENDS
    checked = verify(result, samples=8, seed=0)       # checked.verification.verdict: pass/fail/inconclusive
    result.frontend.write(result.folded, "unet_folded.keras")

    run = fold_files("unet.keras", "unet_folded.keras")    # all three, as ``foldscope unet.keras`` does
    run.verdict                                            # its text: ``fold.outputs.report.fold_text(run)``
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fold.core.errors import FoldError, one_line
from fold.core.result import FoldResult
from fold.core.rules import Decision, decide
from fold.core.verification import (
    FREE_DIMS, SAMPLES, InputSpec, Verification, batch_size, check_inputs, run_in_batches, sample_inputs,
)
from fold.engine.comparison import Checked, Side, compare_models, fold_correspondence
from fold.frontends.formats import FRONTENDS, MAX_MODEL_BYTES, Format, Frontend, check_model_file


def load(path: str | os.PathLike, max_bytes: int = MAX_MODEL_BYTES, *, upload: bool = False,
         **options: Any) -> tuple[Frontend, Any]:
    """The frontend for the file's format and the model it reads (safety checks included).

    ``options`` are the format's load options (``--inputs``/``--outputs`` for a GraphDef);
    one the format does not take is a FoldError. ``upload`` applies the format's rules for
    a file a user uploaded (an ONNX upload may not refer to external data).
    """
    return _load(check_model_file(path, max_bytes), path, upload, options)


def _load(fmt: Format, path: str | os.PathLike, upload: bool, options: dict[str, Any]) -> tuple[Frontend, Any]:
    """``load`` of a file ``check_model_file`` judged to be of format ``fmt``."""
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(fmt.options))
    if unknown:
        takers = ", ".join(f.label for f in FRONTENDS.values() if unknown[0] in f.options)
        raise FoldError(f"--{unknown[0]} applies to {takers} files only; '{Path(path).name}' is a {fmt.label} file.")
    frontend = fmt.frontend()
    return frontend, frontend.load(Path(path), **(fmt.upload_options if upload else {}), **given)


def fold(frontend: Frontend, model: Any, name: str | None = None) -> FoldResult:
    """Decide every candidate pair with the frontend's rules and build the folded model."""
    start = time.perf_counter()
    candidates = frontend.candidates(model)
    decisions = [decide(c, frontend.rules) for c in candidates]
    folded = frontend.rewrite(model, list(zip(candidates, decisions)))
    return FoldResult(frontend, name or frontend.name_of(model), model, folded, decisions,
                      frontend.graph(model), frontend.graph(folded), {"fold": time.perf_counter() - start})


def fold_file(path: str | os.PathLike, max_bytes: int = MAX_MODEL_BYTES, **options: Any) -> FoldResult:
    """Load a model file of any supported format and fold it; load time is in ``timings_s``."""
    fmt = check_model_file(path, max_bytes)
    fmt.frontend()  # the framework's import is not the model's load time
    start = time.perf_counter()
    frontend, model = _load(fmt, path, False, options)
    loaded = time.perf_counter() - start
    result = fold(frontend, model)
    result.timings_s = {"load": loaded, **result.timings_s}
    return result


def run(frontend: Frontend, model: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The model's outputs on ``inputs``, run in batches the model accepts."""
    rows = int(inputs[0].shape[0]) if inputs else 1
    return run_in_batches(frontend.runner(model), inputs, batch_size(frontend.inputs(model), rows))


def model_inputs(frontend: Frontend, model: Any, samples: int = SAMPLES, seed: int = 0, *,
                 shapes: Mapping[str, Sequence[int]] | None = None, arrays: Mapping[str, np.ndarray] | None = None,
                 specs: Sequence[InputSpec] | None = None) -> tuple[list[np.ndarray], str]:
    """The verification inputs and where they came from ("file" or "recipe").

    ``arrays`` (by input name) are checked against the model's inputs and used as they are.
    Otherwise the recipe draws ``samples`` rows; its unknown dimensions take ``shapes`` (by input
    name, whole shapes) or FREE_DIM, and when the model cannot run at FREE_DIM the next sizes of
    FREE_DIMS are tried on one batch. A FoldError names the input, the sizes tried and the flag
    when none runs. ``specs``: the inputs to draw for, when not the model's own (a check's merged specs).
    """
    specs = list(specs if specs is not None else frontend.inputs(model))
    if arrays is not None and None in arrays:  # a .npy: the model's only input
        if len(specs) != 1:
            raise FoldError(f"A .npy file holds one array; the model has {len(specs)} inputs "
                            f"({', '.join(s.name for s in specs)}): give a .npz keyed by input name.")
        arrays = {specs[0].name: arrays[None]}
    if arrays is not None:
        try:
            return check_inputs(specs, arrays), "file"
        except ValueError as exc:
            raise FoldError(f"The inputs given do not fit the model: {exc}.") from exc
    given = dict(shapes or {})
    unknown = sorted(set(given) - {s.name for s in specs})
    if unknown:
        raise FoldError(f"--input-shape names '{unknown[0]}', which is not an input of the model "
                        f"(its inputs: {', '.join(s.name for s in specs)}).")
    try:
        if not any(s.free and s.name not in given for s in specs):
            return sample_inputs(specs, samples, seed, shapes=given), "recipe"
        runner = frontend.runner(model)
        first_error = None
        for size in FREE_DIMS:
            inputs = sample_inputs(specs, samples, seed, shapes=given, free_dim=size)
            try:
                runner([x[:batch_size(specs, samples)] for x in inputs])
                return inputs, "recipe"
            except Exception as exc:  # any runtime's refusal: try the next size
                first_error = first_error or exc
    except ValueError as exc:
        raise FoldError(f"Cannot make inputs for the model: {exc}.") from exc
    free = next(s for s in specs if s.free and s.name not in given)
    tried = f"{FREE_DIMS[0]} to {FREE_DIMS[-1]}"
    example = "x".join(str(d) if d is not None else "N" for d in free.shape)
    raise FoldError(f"The model does not run with the unknown dimensions of input '{free.name}' "
                    f"({'x'.join('?' if d is None else str(d) for d in free.shape)}) set to any size from {tried} "
                    f"({one_line(first_error, 120)}); give its shape with --input-shape {free.name}={example}.")


def verify(result: FoldResult, samples: int = SAMPLES, seed: int = 0, **options: Any) -> Checked:
    """Verify a fold (``fold.core.verdict``): every folded pair at its own scale, every output and
    every node both graphs share end to end; the time it took is in ``result.timings_s``.
    ``options``: as ``verify_models`` takes them (inputs, shapes, arrays, atol)."""
    start = time.perf_counter()
    checked = verify_models(result.frontend, result.original, result.folded, samples, seed,
                            decisions=result.decisions, graphs=(result.graph_before, result.graph_after), **options)
    result.timings_s["verify"] = time.perf_counter() - start
    return checked


def verify_models(frontend: Frontend, original: Any, other: Any, samples: int = SAMPLES, seed: int = 0, *,
                  decisions: Sequence[Decision] = (), atol: float | None = None,
                  inputs: list[np.ndarray] | None = None, shapes: Mapping[str, Sequence[int]] | None = None,
                  arrays: Mapping[str, np.ndarray] | None = None, graphs: tuple | None = None,
                  tensors: bool = True) -> Checked:
    """Verify ``other`` against ``original`` (two models of one frontend): the folded pairs of
    ``decisions`` at their own scale, every output and (unless ``tensors`` is False: a model whose
    insides were changed on purpose, as cross-layer equalization does) every node both graphs
    share end to end.

    Inputs: ``inputs`` as given, else ``arrays`` (by input name), else ``samples`` rows from
    ``seed`` by the one recipe (``model_inputs``). ``graphs``: both models' graphs, when known.
    """
    source = "given"
    if inputs is None:
        inputs, source = model_inputs(frontend, original, samples, seed, shapes=shapes, arrays=arrays)
    before, after = graphs or (frontend.graph(original), frontend.graph(other))
    corr = fold_correspondence(decisions, before, after)
    if not tensors:
        corr.shared = []
    checked = compare_models(Side(frontend, original, before), Side(frontend, other, after), corr, inputs,
                             seed=seed if source == "recipe" else None, source=source, atol=atol)
    checked.verification.input_shapes = {s.name: list(np.shape(x)) for s, x in zip(frontend.inputs(original), inputs)}
    return checked


def default_output(path: str | os.PathLike, fmt: Format) -> str:
    """INPUT's name with ``_folded`` before the format's output suffix."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}_folded{fmt.output_suffix}"))


def _stamp(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


def write(frontend: Frontend, model: Any, path: str | os.PathLike) -> list[Path]:
    """Write ``model`` to ``path``; the files written: the model and, for a model with external data, the
    data file its frontend wrote beside it (``PATH.data``). A write that fails leaves neither behind."""
    out, data = Path(path), Path(f"{path}.data")
    before = _stamp(data)
    try:
        frontend.write(model, out)
    except BaseException:
        out.unlink(missing_ok=True)
        if _stamp(data) != before:
            data.unlink(missing_ok=True)
        raise
    return [out, *([data] if _stamp(data) != before else [])]


@dataclass
class FoldRun:
    """A model file folded, verified and written, as ``foldscope INPUT`` does (``fold_files``).

    checked: the verification with its inputs and both models' outputs (None: not verified).
    output:  where the folded model was written (None: not written); ``files`` every file written.
    """

    input: str
    output: str | None
    result: FoldResult
    checked: Checked | None
    files: list[Path] = field(default_factory=list)

    @property
    def verification(self) -> Verification | None:
        return None if self.checked is None else self.checked.verification

    @property
    def verdict(self) -> str | None:
        """"pass", "fail" or "inconclusive"; None when the fold was not verified."""
        return None if self.checked is None else self.checked.verification.verdict


def fold_files(input_path: str | os.PathLike, output_path: str | os.PathLike | None = None, samples: int = SAMPLES,
               seed: int = 0, *, no_verify: bool = False, max_bytes: int = MAX_MODEL_BYTES,
               **options: Any) -> FoldRun:
    """``foldscope INPUT -o OUTPUT``: fold the file, verify the fold on ``samples`` rows from ``seed`` (not
    with ``no_verify``), write it to ``output_path`` (None: nowhere). ``options`` are the verification's
    (atol, shapes, arrays) and the format's load options (inputs, outputs, runtime)."""
    verify_options = {k: options.pop(k) for k in ("atol", "shapes", "arrays") if k in options}
    output = None if output_path is None else str(output_path)
    if output is not None and Path(output).exists() and os.path.samefile(output, input_path):
        raise FoldError(f"-o '{output}' is the input itself; give the folded model another name.")
    result = fold_file(input_path, max_bytes, **options)
    checked = None if no_verify else verify(result, samples, seed, **verify_options)
    files = []
    if output is not None:
        start = time.perf_counter()
        files = write(result.frontend, result.folded, output)
        if no_verify:  # what an unverified run took is mostly the write (a verified run's report has its three)
            result.timings_s["write"] = time.perf_counter() - start
    return FoldRun(str(input_path), output, result, checked, files)
