"""The format-neutral pipeline: load a file, fold a model, verify the result. Written once, for every frontend.

    result = fold_file("unet.keras")                       # any format in FRONTENDS
    checked = verify(result.frontend, result.original, result.folded, samples=8, seed=0)
    result.frontend.write(result.folded, "unet_folded.keras")
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fold.core.result import FoldResult
from fold.core.rules import decide
from fold.core.verification import (
    LayerDiff, Verification, batch_size, compare, layer_diffs, run_in_batches, sample_inputs,
)
from fold.errors import FoldError
from fold.files import MAX_MODEL_BYTES, check_model_file
from fold.frontend import FRONTENDS, Frontend


def load(path: str | os.PathLike, max_bytes: int = MAX_MODEL_BYTES, *, upload: bool = False,
         **options: Any) -> tuple[Frontend, Any]:
    """The frontend for the file's format and the model it reads (safety checks included).

    ``options`` are the format's load options (``--inputs``/``--outputs`` for a GraphDef);
    one the format does not take is a FoldError. ``upload`` applies the format's rules for
    a file a user uploaded (an ONNX upload may not refer to external data).
    """
    fmt = check_model_file(path, max_bytes)
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


def fold_file(path: str | os.PathLike, **options: Any) -> FoldResult:
    """Load a model file of any supported format and fold it; load time is in ``timings_s``."""
    check_model_file(path).frontend()  # the framework's import is not the model's load time
    start = time.perf_counter()
    frontend, model = load(path, **options)
    loaded = time.perf_counter() - start
    result = fold(frontend, model)
    result.timings_s = {"load": loaded, **result.timings_s}
    return result


def run(frontend: Frontend, model: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The model's outputs on ``inputs``, run in batches the model accepts."""
    rows = int(inputs[0].shape[0]) if inputs else 1
    return run_in_batches(frontend.runner(model), inputs, batch_size(frontend.inputs(model), rows))


@dataclass
class Checked:
    """A verification with the inputs it used and both models' outputs on them."""

    verification: Verification
    inputs: list[np.ndarray]
    original_outputs: list[np.ndarray]
    folded_outputs: list[np.ndarray]


def verify(frontend: Frontend, original: Any, folded: Any, samples: int = 8, seed: int = 0, *,
           atol: float | None = None, inputs: list[np.ndarray] | None = None,
           reference: list[np.ndarray] | None = None) -> Checked:
    """Run both models on the same inputs and compare their outputs.

    Without ``inputs``, ``samples`` rows are drawn from ``seed`` by the one input recipe
    (``fold.core.verification.sample_inputs``: a model with a fixed batch size B gets the
    next multiple of B); the Verification says how many rows were compared. ``reference``:
    ``original``'s outputs on ``inputs`` when they are already known (it is then not run).
    """
    given = inputs is not None
    if not given:
        inputs = sample_inputs(frontend.inputs(original), samples, seed)
    if reference is None:
        reference = run(frontend, original, inputs)
    candidate = run(frontend, folded, inputs)
    outputs = frontend.outputs(original)
    verification = compare(reference, candidate, [o.name for o in outputs],
                           channel_axes=[o.channel_axis for o in outputs], atol=atol,
                           samples=int(inputs[0].shape[0]) if inputs else 0, seed=None if given else seed)
    return Checked(verification, inputs, reference, candidate)


def per_layer(result: FoldResult, samples: int = 1, seed: int = 0,
              inputs: list[np.ndarray] | None = None) -> list[LayerDiff]:
    """Where the error enters: every layer's output in the folded model against the original's.

    A folded layer is compared with the BN it absorbed (the original's BN output against the
    node that now produces it); every other node both graphs share, with itself. The layers
    inside a nested model are compared as the nested model's output (runtimes expose only the
    top level). Inputs: ``samples`` rows from ``seed`` by the one recipe, unless given.
    """
    frontend = result.frontend
    if inputs is None:
        inputs = sample_inputs(frontend.inputs(result.original), samples, seed)
    folded = result.folded_pairs
    replaced = {d.layer for d in folded} | {d.output_node or d.layer for d in folded}
    removed = {n for d in folded for n in d.bn_nodes}
    pairs = [(d.layer, d.bn_nodes[-1], d.output_node or d.layer) for d in folded]
    before_nodes = result.graph_before.nodes
    pairs += [(n, n, n) for n, role in result.graph_after.nodes(data="role")
              if n in before_nodes and role != "input" and n not in replaced | removed]
    before = frontend.layer_outputs(result.original, inputs, [p[1] for p in pairs])
    after = frontend.layer_outputs(result.folded, inputs, [p[2] for p in pairs])
    return layer_diffs(pairs, before, after)
