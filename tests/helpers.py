"""The helpers every frontend's tests go through, and an independent float64 reference for Keras models.

``assert_folds(frontend, model, ...)`` folds through the format-neutral pipeline and checks:
the decisions, that no foldable BatchNorm is left (the BN count drops by the folded pairs),
that the user's model is untouched (it computes exactly what it computed before), that the
folded model verifies, and, given a float64 ``reference``, that both models match it to
float32 rounding. ``assert_skipped(frontend, model, rule, ...)`` checks that the rule
objected, with its reason, and that the "folded" model is the original one, unchanged.

Negative tests are named ``test_*_NEG`` and call ``assert_skipped`` with the rule's name as
a literal: ``tests/test_rules.py`` reads them to check that every rule of every frontend
has one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import onnx

from fold.core.affine import scale_along, scale_kernel
from fold.core.graph import count_bns
from fold.core.result import FoldResult
from fold.core.rules import Decision
from fold.core.verification import Verification, sample_inputs
from fold.engine.pipeline import fold, load, run, verify, verify_models
from fold.frontends.formats import FRONTENDS, Frontend, LayerKernel
from foldscope_app.examples.model_zoo import all_layers, randomize_bn  # noqa: F401  (re-exported for tests)

KERAS: Frontend = FRONTENDS["keras"].frontend()
GRAPHDEF: Frontend = FRONTENDS["graphdef"].frontend()
TFLITE: Frontend = FRONTENDS["tflite"].frontend()
ONNX: Frontend = FRONTENDS["onnx"].frontend()
CIRCLE: Frontend = FRONTENDS["circle"].frontend()
#: How the negative tests name each frontend (read by tests/test_rules.py).
FRONTEND_NAMES = {"KERAS": "keras", "GRAPHDEF": "graphdef", "TFLITE": "tflite", "ONNX": "onnx", "CIRCLE": "circle"}

Reference = tuple[list[np.ndarray], list[np.ndarray]]


def _table(result: FoldResult) -> list[dict]:
    return [d.to_dict() for d in result.decisions]


def assert_folds(frontend: Frontend, model: Any, expect_folded: int | None = None, *,
                 reference: Reference | None = None, samples: int = 3, seed: int = 0, rtol: float = 2e-5,
                 bns_removed: int | None = None, inputs: list[np.ndarray] | None = None) -> FoldResult:
    """The one helper every positive fold test goes through (see the module docstring).

    ``reference`` is (inputs, float64 outputs of the unfolded computation on them).
    ``bns_removed`` is how many BatchNorms disappear (default: those the folded pairs hold).
    ``inputs``: the verification's inputs (default: ``samples`` rows of the recipe), for a model
    whose layers random inputs leave dead.
    """
    probe = sample_inputs(frontend.inputs(model), samples, seed) if inputs is None else inputs
    before = run(frontend, model, probe)
    result = fold(frontend, model)
    folded = result.folded_pairs
    if expect_folded is not None:
        assert len(folded) == expect_folded, _table(result)
    removed = result.absorbed("bn") if bns_removed is None else bns_removed
    assert result.bn_after == result.bn_before - removed, (result.bn_before, result.bn_after, _table(result))
    assert result.affine_after == result.affine_before - result.absorbed("affine"), _table(result)
    checked = verify(result, inputs=probe)
    for was, now in zip(before, run(frontend, model, probe)):
        np.testing.assert_array_equal(was, now, err_msg="folding changed the user's model")
    check = checked.verification
    assert check.passed and check.max_rel_diff <= rtol, check.to_dict()
    if reference is not None:
        inputs, expected = reference
        for name, model_ in (("original", model), ("folded", result.folded)):
            for want, got in zip(expected, run(frontend, model_, inputs)):
                scale = max(1.0, float(np.max(np.abs(want))))
                error = float(np.max(np.abs(got - want)))
                assert error <= rtol * scale, f"{name} model vs float64 reference: {error} > {rtol} * {scale}"
    return result


def assert_skipped(frontend: Frontend, model: Any, rule: str, words: str | None = None, *,
                   check_outputs: bool = True) -> Decision:
    """Every candidate is skipped by ``rule`` (its reason containing ``words``); nothing changes.

    ``check_outputs`` False skips running the models (for graphs whose inputs the sample
    recipe cannot feed, such as a statistics placeholder without a batch axis).
    """
    result = fold(frontend, model)
    assert result.decisions, "no candidate pair found"
    assert {(d.status, d.rule) for d in result.decisions} == {("skipped", rule)}, _table(result)
    decision = result.decisions[0]
    assert decision.reason and "\n" not in decision.reason
    if words is not None:
        assert words in decision.reason, decision.reason
    assert result.bn_after == result.bn_before
    if check_outputs:
        checked = verify(result, 2, 0)
        assert checked.verification.max_abs_diff == 0.0, checked.verification.to_dict()
    return decision


# -- Keras: randomized weights and the float64 twin --------------------------------------------

def randomize_biases(model: keras.Model, seed: int = 1) -> keras.Model:
    """Non-zero biases, so that a fold that forgets the existing bias is caught."""
    rng = np.random.default_rng(seed)
    for layer in all_layers(model):
        bias = getattr(layer, "bias", None)
        if bias is not None and not isinstance(layer, keras.layers.BatchNormalization):
            bias.assign(rng.normal(0, 0.5, bias.shape).astype(bias.dtype))
    return model


def _retyped(value, dtype: str):
    if isinstance(value, dict):
        if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and "config" in value:
            return {**value, "config": {**value["config"], "name": dtype}}
        out = {k: _retyped(v, dtype) for k, v in value.items()}
        if out.get("class_name") == "__keras_tensor__":
            out["config"] = {**out["config"], "dtype": dtype}
        if "dtype" in out and isinstance(out["dtype"], str) and "float" in out["dtype"]:
            out["dtype"] = dtype
        return out
    if isinstance(value, list):
        return [_retyped(v, dtype) for v in value]
    if isinstance(value, tuple):
        return tuple(_retyped(v, dtype) for v in value)
    return value


def twin(model: keras.Model, dtype: str = "float64") -> keras.Model:
    """The same architecture and weights, every layer computing in ``dtype``.

    In float64 it computes conv-then-BN explicitly in double precision and shares no code with
    the folding math.
    """
    ser = keras.saving.serialize_keras_object(model)
    ser.pop("compile_config", None)
    copy = keras.saving.deserialize_keras_object(_retyped(ser, dtype), safe_mode=True)
    for src, dst in zip(model.weights, copy.weights):
        dst.assign(np.asarray(src.numpy(), dtype=dtype))
    return copy


def float64_twin(model: keras.Model) -> keras.Model:
    """``twin`` in float64: the independent reference."""
    return twin(model, "float64")


def keras_reference(model: keras.Model, samples: int = 3, seed: int = 0) -> Reference:
    """Seeded inputs and the float64 twin's outputs on them."""
    inputs = sample_inputs(KERAS.inputs(model), samples, seed)
    wide = [x.astype(np.float64) if x.dtype.kind == "f" else x for x in inputs]
    return inputs, run(KERAS, float64_twin(model), wide)


def assert_keras_folds(model: keras.Model, expect_folded: int | None = None, *, samples: int = 3, seed: int = 0,
                       rtol: float = 2e-5) -> FoldResult:
    """``assert_folds`` for a Keras model against its float64 twin."""
    return assert_folds(KERAS, model, expect_folded, reference=keras_reference(model, samples, seed),
                        samples=samples, seed=seed, rtol=rtol)


def max_abs(arrays: Sequence[np.ndarray]) -> float:
    return max(float(np.max(np.abs(a))) for a in arrays)


# -- mutations: a fold made wrong on purpose, which the verification must catch ---------------

def mutated(frontend: Frontend, model: Any, layer: str, how: str = "kernel", channel: int = 0,
            factor: float = 1.02) -> Any:
    """A copy of ``model`` whose ``layer`` is wrong by ``factor`` in one channel, through the
    frontend's own ``with_kernels`` (so it works for every format): its kernel along output channel
    ``channel`` ("kernel"), its bias there ("bias"), or its kernel scaled along input channel
    ``channel``, as a BN scale applied along the wrong weight axis would be ("wrong-axis")."""
    k = frontend.kernel(model, layer)
    w = np.asarray(k.kernel)
    if how == "bias":
        bias = np.array(k.bias, dtype=np.float64).reshape(-1)
        bias[channel] *= factor
        return frontend.with_kernels(model, {layer: LayerKernel(w, bias.astype(w.dtype), k.kind, k.groups)})
    if how == "kernel":
        scale = np.ones(k.channels)
        scale[channel] = factor
        new = scale_kernel(w, scale, k.kind, k.groups)
    elif how == "wrong-axis":
        scale = np.ones(w.shape[k.kind.in_axis])
        scale[channel] = factor
        new = scale_along(w, scale, (k.kind.in_axis,))
    else:
        raise ValueError(f"unknown mutation {how!r}")
    return frontend.with_kernels(model, {layer: LayerKernel(new.astype(w.dtype), None, k.kind, k.groups)})


def recount(result: FoldResult, folder: Path) -> tuple[int, int]:
    """(BatchNorms, other affine maps) counted in the folded model's file: written to ``folder``, read back
    by the format's own loader, counted by the rule that gave ``result.bn_after`` and ``affine_after``."""
    path = folder / f"{result.name}_recount{result.frontend.format.output_suffix}"
    result.frontend.write(result.folded, path)
    frontend, model = load(path)
    graph = frontend.graph(model)
    return count_bns(graph), count_bns(graph, "affine")


def verdict_of(result: FoldResult, candidate: Any, samples: int = 4, seed: int = 0) -> Verification:
    """The verification of ``candidate`` as if it were ``result``'s fold (the same decisions)."""
    frontend = result.frontend
    return verify_models(frontend, result.original, candidate, samples, seed, decisions=result.decisions,
                         graphs=(result.graph_before, frontend.graph(candidate))).verification


def assert_caught(result: FoldResult, candidate: Any, layer: str) -> Verification:
    """The verification fails and names ``layer`` as the one that does not compute what its BN did."""
    v = verdict_of(result, candidate)
    assert v.verdict == "fail", v.to_dict()
    failed = [c.layer for c in v.folded_layers if not c.passed]
    assert failed == [layer], (failed, v.reason)
    assert f"'{layer}'" in v.reason, v.reason
    return v


# -- the command line -----------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, timeout: float = 300, path: str | None = None) -> subprocess.CompletedProcess:
    """``python -m fold ARGS`` in a fresh process from the repository root (``path``: PATH for it,
    to show what it does without anything else on it)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **({"PATH": path} if path is not None else {})}
    return subprocess.run([sys.executable, "-m", "fold", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def relocated(path: Path, location: str) -> None:
    """Rewrite every external-data ``location`` of the ONNX model at ``path`` (its data stays where it is)."""
    proto = onnx.load(path, load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(proto, path)
