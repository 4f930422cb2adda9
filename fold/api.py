"""The library's front door: fold a Keras model or file, verify the result.

    result = fold_model(model)                 # never modifies ``model``
    check = verify(result.original, result.folded, samples=8, seed=0)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import keras
import networkx as nx
import numpy as np

from fold import keras_io
from fold.keras_fold import decide_all, rebuild
from fold.keras_graph import build_scope, scope_graph, serialize
from fold.rules import CountedFromGraphs, Decision
from fold.verification import Verification, compare


@dataclass
class FoldResult(CountedFromGraphs):
    """A folded Keras model with everything needed to explain it."""

    original: keras.Model
    folded: keras.Model
    decisions: list[Decision]
    graph_before: nx.DiGraph
    graph_after: nx.DiGraph
    timings_s: dict[str, float] = field(default_factory=dict)


def fold_model(model: keras.Model) -> FoldResult:
    """Decide every (layer, BatchNorm) pair and build the folded model."""
    start = time.perf_counter()
    scope = build_scope(serialize(model), model)
    decisions = decide_all(scope)
    folded = rebuild(model, decisions)
    graph_before = scope_graph(scope)
    graph_after = scope_graph(build_scope(serialize(folded), folded))
    return FoldResult(model, folded, decisions, graph_before, graph_after,
                      {"fold": time.perf_counter() - start})


def verify(
    original: keras.Model,
    folded: keras.Model,
    inputs: list[np.ndarray] | None = None,
    *,
    samples: int = 4,
    seed: int = 0,
    atol: float | None = None,
) -> Verification:
    """Run both models on the same inputs (seeded random ones unless given) and compare."""
    return verify_outputs(original, folded, inputs, samples=samples, seed=seed, atol=atol)[0]


def verify_outputs(
    original: keras.Model,
    folded: keras.Model,
    inputs: list[np.ndarray] | None = None,
    *,
    samples: int = 4,
    seed: int = 0,
    atol: float | None = None,
) -> tuple[Verification, list[np.ndarray], list[np.ndarray]]:
    """``verify``, also returning both models' outputs (for views that show them)."""
    given = inputs is not None
    if not given:
        inputs = keras_io.sample_inputs(original, samples, seed)
    reference = keras_io.run(original, inputs)
    candidate = keras_io.run(folded, inputs)
    check = compare(
        reference, candidate, keras_io.output_names(original),
        channel_axes=keras_io.output_channel_axes(original), atol=atol,
        samples=int(inputs[0].shape[0]), seed=None if given else seed,
    )
    return check, reference, candidate


def fold_file(path: str | os.PathLike) -> FoldResult:
    """Load a .keras/.h5 file safely and fold it; load time is recorded in ``timings_s``."""
    start = time.perf_counter()
    model = keras_io.load_model(path)
    loaded = time.perf_counter() - start
    result = fold_model(model)
    result.timings_s = {"load": loaded, **result.timings_s}
    return result
