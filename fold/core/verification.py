"""Numerical verification: the one input recipe, batching, and the result of comparing two models.

Inputs (``sample_inputs``): ``samples`` rows (the batch axis) per model input, all drawn from
one ``numpy.random.default_rng(seed)``, input after input: standard-normal floats, integers
in [0, 10), booleans. A dimension the model leaves unknown (other than the batch) takes the
size ``shapes`` gives for that input (``--input-shape``), else ``free_dim`` (FREE_DIM, 32; the
pipeline tries larger sizes when a model cannot run at 32). Every frontend gets its inputs
here, so ``--samples 4 --seed 1`` means the same arrays for a .keras, a .pb, a .tflite and an
.onnx of the same model. Inputs from a file (``--inputs-file``) are checked against the
model's inputs by ``check_inputs``.

A folded layer is also judged on a synthetic batch (``synthetic_batch``), since W'x + b' = BN(Wx + b)
holds for any x: the shape of the inputs it received in the model (``fold.comparison`` takes their
first two rows), each input channel drawn
standard-normal times the larger of 1 and that channel's RMS there, so that every input channel is
exercised: one the model's inputs leave dead (behind a ReLU) or nearly so (a squeeze-excitation
block's pooled 1e-8) then moves the layer's output past the rounding of its bias. The whole batch is
scaled up further where the layer has an output channel whose kernel is tiny next to its shift
(``fold.core.verdict.synthetic_gain``), so that a 1 % error in that kernel still shows.

The comparison itself (every folded layer at its own scale, outputs and shared tensors
against what they inherit) is ``fold.core.verdict``; ``Verification`` holds its result and
never prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fold.core.verdict import FAIL, INCONCLUSIVE, PASS, TensorCheck

#: Samples (batch rows) a verification draws by default, on the command line and the page.
SAMPLES = 8
#: Size given to an input dimension the model leaves unknown (other than the batch).
FREE_DIM = 32
#: Sizes tried, in order, for the unknown dimensions of a model that cannot run at the first.
FREE_DIMS = (32, 64, 128, 256, 512, 1024)
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

    @property
    def free(self) -> bool:
        """Whether a dimension other than the batch is unknown."""
        return any(d is None for d in self.shape[1:])


@dataclass(frozen=True)
class OutputSpec:
    """One model output: its name and the axis of its channels."""

    name: str
    channel_axis: int = -1


def batch_size(specs: Sequence[InputSpec], samples: int) -> int:
    """Rows per run: the model's fixed batch, else up to MAX_BATCH. A ValueError names an input no
    sample can be drawn for: a scalar (no batch axis to draw along) or a fixed batch of 0 rows."""
    for s in specs:
        if not s.shape:
            raise ValueError(f"input '{s.name}' is a scalar: samples are drawn along a batch axis (axis 0), "
                             "which it does not have; fold with --no-verify (a fold needs no inputs)")
        if s.batch == 0:
            raise ValueError(f"input '{s.name}' has a fixed batch of 0 rows ({_shape_text(s.shape)}): no sample "
                             "can run through it; fold with --no-verify (a fold needs no inputs)")
    fixed = {s.batch for s in specs if s.batch is not None}
    if len(fixed) > 1:
        raise ValueError(f"The model's inputs have different fixed batch sizes {sorted(fixed)}.")
    return fixed.pop() if fixed else max(1, min(samples, MAX_BATCH))


def sample_shape(spec: InputSpec, rows: int, given: Sequence[int] | None = None, free_dim: int = FREE_DIM
                 ) -> list[int]:
    """The shape of ``rows`` samples of one input: ``given`` (a whole shape, batch first) fills the
    unknown dimensions, ``free_dim`` the rest. A ValueError names a given dimension the model fixes otherwise."""
    if given is not None:
        if len(given) != len(spec.shape):
            raise ValueError(f"input '{spec.name}' has rank {len(spec.shape)} ({_shape_text(spec.shape)}); "
                             f"the shape given has rank {len(given)}")
        for axis, (have, want) in enumerate(zip(spec.shape[1:], given[1:]), start=1):
            if have is not None and int(have) != int(want):
                raise ValueError(f"input '{spec.name}' has {have} on axis {axis} ({_shape_text(spec.shape)}); "
                                 f"the shape given has {want}")
    dims = [d if d is not None else (int(given[i]) if given is not None else free_dim)
            for i, d in enumerate(spec.shape)]
    return [rows, *(int(d) for d in dims[1:])]


def _shape_text(shape: Sequence[int | None]) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


def arrays_text(named: Mapping[str, np.ndarray]) -> str:
    """Named arrays' shapes in words, for a runtime's refusal: "x 2x3x32x32, gain a scalar"."""
    return ", ".join(f"{name} {'x'.join(map(str, np.shape(x))) or 'a scalar'}" for name, x in named.items())


def sample_inputs(specs: Sequence[InputSpec], samples: int = 4, seed: int = 0, *,
                  shapes: Mapping[str, Sequence[int]] | None = None, free_dim: int = FREE_DIM) -> list[np.ndarray]:
    """``samples`` rows for every input, drawn in order from one seeded generator.

    A model built for a fixed batch size B gets the next multiple of B rows (B = 1 in most
    converted models, so exactly ``samples``).
    """
    batch = batch_size(specs, samples)
    rows = -(-samples // batch) * batch
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in specs:
        shape = sample_shape(spec, rows, (shapes or {}).get(spec.name), free_dim)
        dtype = np.dtype(spec.dtype)
        if dtype.kind in "iu":
            arrays.append(rng.integers(0, 10, size=shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.integers(0, 2, size=shape).astype(bool))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays


def check_inputs(specs: Sequence[InputSpec], arrays: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Arrays given by input name, checked against the model's inputs (rank, fixed dimensions, the same
    number of rows for all) and cast to their dtypes; a ValueError says what does not fit."""
    missing = [s.name for s in specs if s.name not in arrays]
    if missing:
        raise ValueError(f"no array for input '{missing[0]}' (the file has {', '.join(map(repr, arrays)) or 'none'})")
    found = []
    for spec in specs:
        array = np.asarray(arrays[spec.name])
        sample_shape(spec, 1, array.shape)  # rank and fixed dimensions
        if spec.batch is not None and array.shape[0] % spec.batch:
            raise ValueError(f"input '{spec.name}' takes batches of {spec.batch}; the file has {array.shape[0]} rows")
        if np.dtype(spec.dtype).kind == "f" and array.dtype.kind not in "fiub":
            raise ValueError(f"input '{spec.name}' takes {spec.dtype}; the file holds {array.dtype}")
        found.append(array.astype(spec.dtype, copy=False))
    rows = {a.shape[0] for a in found}
    if len(rows) > 1:
        raise ValueError(f"the arrays have different numbers of rows {sorted(rows)}")
    if rows == {0}:
        raise ValueError("the arrays have no rows")
    return found


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


def synthetic_batch(recorded: Sequence[np.ndarray], axis: int, rng: np.random.Generator,
                    gain: float = 1.0) -> list[np.ndarray] | None:
    """Arrays shaped like ``recorded`` (a layer's data inputs, channels on ``axis``) that exercise every
    input channel (see the module docstring), times ``gain``; None when some input is not a float array."""
    made = []
    for x in recorded:
        x = np.asarray(x)
        if x.dtype.kind != "f" or x.ndim == 0 or x.size == 0:
            return None
        ax = axis % x.ndim if x.ndim > 1 else 0
        others = tuple(i for i in range(x.ndim) if i != ax)
        with np.errstate(over="ignore", invalid="ignore"):
            rms = np.sqrt(np.mean(np.square(x.astype(np.float64)), axis=others)) if others else np.abs(
                x.astype(np.float64))
        rms = np.maximum(np.where(np.isfinite(rms), rms, 0.0), 1.0)
        view = [1] * x.ndim
        view[ax] = x.shape[ax]
        made.append((rng.standard_normal(x.shape) * (gain * rms.reshape(view))).astype(x.dtype))
    return made


@dataclass
class OutputDiff:
    """One model output compared: its figures, per channel at its own scale, and its budget."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    max_abs_diff: float
    mean_abs_diff: float
    max_rel_diff: float
    max_abs: float
    per_channel_max_abs_diff: list[float]
    atol: float
    passed: bool
    worst_channel: int


@dataclass
class Verification:
    """Two models compared on the same inputs: the verdict, and every figure behind it.

    verdict:       "pass", "fail" or "inconclusive" (``fold.core.verdict``, rule 4).
    reason:        one sentence on what decided it.
    max_abs_diff, mean_abs_diff, max_rel_diff: over the model outputs; a relative diff is a
                   channel's max |diff| over that channel's own max |output|.
    atol:          the budget of the output channel closest to (or furthest past) its budget.
    samples, seed: rows compared and the recipe's seed (None for inputs given or from a file).
    input_shapes:  the shape of each input used, by name.
    inputs_source: "recipe", "file" or "given".
    per_output:    the outputs' figures, in output order.
    layers:        every compared tensor: folded layers (own inputs) first, then the outputs
                   and the shared tensors (end to end).
    output_only:   folded layers the runtime could not expose, checked at the outputs only.
    nudged:        whether the nudged model was built (rule 3).
    runtimes:      what ran each model, in words: "original", "checked" (the fold, or the candidate) and,
                   when it is another runtime, "layers alone" (the checked model's folded layers).
    """

    verdict: str
    reason: str
    max_abs_diff: float
    mean_abs_diff: float
    max_rel_diff: float
    atol: float
    samples: int
    seed: int | None
    input_shapes: dict[str, list[int]]
    inputs_source: str
    per_output: list[OutputDiff]
    layers: list[TensorCheck] = field(default_factory=list)
    output_only: list[str] = field(default_factory=list)
    nudged: bool = False
    runtimes: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    @property
    def failed(self) -> bool:
        return self.verdict == FAIL

    @property
    def inconclusive(self) -> bool:
        return self.verdict == INCONCLUSIVE

    @property
    def folded_layers(self) -> list[TensorCheck]:
        return [c for c in self.layers if c.role == "folded"]

    def worst_layer(self) -> TensorCheck | None:
        """The folded layer closest to (or furthest past) its tolerance, else None."""
        return max(self.folded_layers, key=lambda c: (not c.passed, c.margin), default=None)

    def worst(self) -> TensorCheck | None:
        """The compared tensor closest to (or furthest past) its tolerance."""
        return max(self.layers, key=lambda c: (not c.passed, c.margin), default=None)

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict, "passed": self.passed, "reason": self.reason,
            "max_abs_diff": self.max_abs_diff, "mean_abs_diff": self.mean_abs_diff,
            "max_rel_diff": self.max_rel_diff, "atol": self.atol, "samples": self.samples, "seed": self.seed,
            "input_shapes": self.input_shapes, "inputs_source": self.inputs_source,
            "per_output": [vars(o).copy() for o in self.per_output],
            "layers": [c.to_dict() for c in self.layers], "output_only": list(self.output_only),
            "nudged": self.nudged, "runtimes": dict(self.runtimes),
        }

