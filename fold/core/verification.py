"""Numerical verification: one input recipe, and the comparison of two models' outputs on it.

Inputs (``sample_inputs``): ``samples`` rows (the batch axis) per model input, all drawn from
one ``numpy.random.default_rng(seed)``, input after input: standard-normal floats, integers
in [0, 10), booleans. A dimension the model leaves unknown (other than the batch) is set to
``FREE_DIM``. Every frontend gets its inputs here, so ``--samples 4 --seed 1`` means the same
arrays for a .keras, a .pb, a .tflite and an .onnx of the same model.

Comparison (``compare``) returns data and never prints.

Figures for every output: max abs diff, mean abs diff, max relative diff (max abs diff
divided by the largest |reference| value, so it stays meaningful where outputs cross zero)
and the max abs diff of each output channel. The default tolerance is

    atol = RTOL[dtype] * max(1, max |reference|)

with RTOL 1e-4 for float32 (and float64), 1e-2 for float16, 5e-2 for bfloat16: folding
reorders float arithmetic, so the error it adds scales with the output's magnitude and
the precision of the dtype the model computes in. NaN or inf where the other model has
a number (or a different inf) is an infinite difference, so it can never pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

RTOL = {"float64": 1e-4, "float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}
#: Size given to an input dimension the model leaves unknown (other than the batch).
FREE_DIM = 32
#: Rows per run when the model's batch dimension is free (bounds memory on large inputs).
MAX_BATCH = 32


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name, shape (None for an unknown dimension; axis 0 is the batch
    axis, fixed when it is an int) and NumPy dtype name."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    @property
    def batch(self) -> int | None:
        """The fixed batch size the model was built for, or None when it takes any."""
        return self.shape[0] if self.shape else None


@dataclass(frozen=True)
class OutputSpec:
    """One model output: its name and the axis of its channels."""

    name: str
    channel_axis: int = -1


def batch_size(specs: Sequence[InputSpec], samples: int) -> int:
    """Rows per run: the model's fixed batch, else up to MAX_BATCH."""
    fixed = {s.batch for s in specs if s.batch is not None}
    if len(fixed) > 1:
        raise ValueError(f"The model's inputs have different fixed batch sizes {sorted(fixed)}.")
    return fixed.pop() if fixed else max(1, min(samples, MAX_BATCH))


def sample_inputs(specs: Sequence[InputSpec], samples: int = 4, seed: int = 0) -> list[np.ndarray]:
    """``samples`` rows for every input, drawn in order from one seeded generator.

    A model built for a fixed batch size B gets the next multiple of B rows (B = 1 in most
    converted models, so exactly ``samples``).
    """
    batch = batch_size(specs, samples)
    rows = -(-samples // batch) * batch
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in specs:
        shape = [rows, *(FREE_DIM if d is None else int(d) for d in spec.shape[1:])]
        dtype = np.dtype(spec.dtype)
        if dtype.kind in "iu":
            arrays.append(rng.integers(0, 10, size=shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.integers(0, 2, size=shape).astype(bool))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays


def run_in_batches(run: Callable[[list[np.ndarray]], list[np.ndarray]], inputs: list[np.ndarray],
                   batch: int) -> list[np.ndarray]:
    """``run`` over ``inputs`` ``batch`` rows at a time, the outputs concatenated along axis 0.

    Every run gets exactly ``batch`` rows: ``inputs`` must hold a multiple of it.
    """
    rows = inputs[0].shape[0] if inputs else 0
    if rows % batch:
        raise ValueError(f"{rows} sample rows do not split into runs of the model's batch size {batch}.")
    chunks = [run([x[start:start + batch] for x in inputs]) for start in range(0, rows, batch)]
    return [np.concatenate([np.atleast_1d(c[k]) for c in chunks], axis=0) for k in range(len(chunks[0]))]


@dataclass
class OutputDiff:
    name: str
    shape: tuple[int, ...]
    dtype: str
    max_abs_diff: float
    mean_abs_diff: float
    max_rel_diff: float
    max_abs: float
    per_channel_max_abs_diff: list[float]


@dataclass
class Verification:
    """The result of comparing a reference model's outputs with a folded model's."""

    max_abs_diff: float
    mean_abs_diff: float
    max_rel_diff: float
    atol: float
    samples: int
    seed: int | None
    per_output: list[OutputDiff]

    @property
    def passed(self) -> bool:
        return bool(self.max_abs_diff <= self.atol)

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def _peak(array: np.ndarray) -> float:
    """Largest finite |value| (0 when there is none)."""
    finite = np.abs(array[np.isfinite(array)])
    return float(finite.max()) if finite.size else 0.0


def default_atol(references: Sequence[np.ndarray], dtype: str) -> float:
    """The documented default tolerance for outputs computed in ``dtype``."""
    peak = max((_peak(np.asarray(r, dtype=np.float64)) for r in references), default=0.0)
    return RTOL.get(dtype, 1e-4) * max(1.0, peak)


def abs_diff(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """|reference - other| in float64, where matching non-finite values (NaN and NaN, the same
    inf) count as equal and any other non-finite mismatch counts as an infinite difference."""
    a, b = np.asarray(reference, dtype=np.float64), np.asarray(other, dtype=np.float64)
    finite = np.isfinite(a) & np.isfinite(b)
    agree = (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(finite, np.abs(a - b), np.where(agree, 0.0, np.inf))


def output_diff(name: str, reference: np.ndarray, other: np.ndarray, channel_axis: int = -1) -> OutputDiff:
    """Difference figures of one output, computed in float64."""
    ref = np.asarray(reference, dtype=np.float64)
    diff = abs_diff(ref, other)
    peak = _peak(ref)
    max_abs = float(np.max(diff)) if diff.size else 0.0
    if diff.ndim >= 2:
        per_channel = np.max(np.moveaxis(diff, channel_axis, -1).reshape(-1, diff.shape[channel_axis]), axis=0)
    else:
        per_channel = np.array([max_abs])
    return OutputDiff(
        name=name, shape=tuple(int(n) for n in ref.shape), dtype=str(np.asarray(other).dtype),
        max_abs_diff=max_abs, mean_abs_diff=float(np.mean(diff)) if diff.size else 0.0,
        max_rel_diff=max_abs / peak if peak > 0 else max_abs, max_abs=peak,
        per_channel_max_abs_diff=[float(v) for v in per_channel],
    )


def compare(
    references: Sequence[np.ndarray],
    others: Sequence[np.ndarray],
    names: Sequence[str],
    *,
    channel_axes: Sequence[int] | None = None,
    atol: float | None = None,
    samples: int = 0,
    seed: int | None = None,
) -> Verification:
    """Compare output lists elementwise; ``atol`` None means ``default_atol``."""
    if len(references) != len(others):
        raise ValueError(f"Expected {len(references)} outputs to compare, got {len(others)}.")
    axes = channel_axes or [-1] * len(references)
    per_output = [output_diff(n, r, o, a) for n, r, o, a in zip(names, references, others, axes)]
    total = sum(r.size for r in references)
    mean = sum(p.mean_abs_diff * r.size for p, r in zip(per_output, references)) / total if total else 0.0
    dtype = str(np.asarray(others[0]).dtype) if others else "float32"
    return Verification(
        max_abs_diff=max((p.max_abs_diff for p in per_output), default=0.0),
        mean_abs_diff=float(mean),
        max_rel_diff=max((p.max_rel_diff for p in per_output), default=0.0),
        atol=float(atol) if atol is not None else default_atol(references, dtype),
        samples=samples, seed=seed, per_output=per_output,
    )


@dataclass
class LayerDiff:
    """How far one layer's output moved: the folded model's ``layer`` against the original's ``reference``
    (the BN a folded layer absorbed, else the same node), on the same inputs."""

    layer: str
    reference: str
    max_abs_diff: float
    max_rel_diff: float
    max_abs: float

    def to_dict(self) -> dict:
        return {"layer": self.layer, "max_abs_diff": self.max_abs_diff, "max_rel_diff": self.max_rel_diff}


def layer_diffs(pairs: Sequence[tuple[str, str, str]], before: dict[str, np.ndarray],
                after: dict[str, np.ndarray]) -> list[LayerDiff]:
    """For each (name, original node, folded node) whose outputs both models gave, the max abs
    diff and the max abs diff relative to the original output's peak (NaN/inf never agree)."""
    found = []
    for name, old, new in pairs:
        if old not in before or new not in after or np.shape(before[old]) != np.shape(after[new]):
            continue
        diff = output_diff(name, before[old], after[new])
        found.append(LayerDiff(name, old, diff.max_abs_diff, diff.max_rel_diff, diff.max_abs))
    return found
