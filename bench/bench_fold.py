"""Benchmark foldscope on real ``keras.applications`` architectures.

For every model named in ``--models`` (built with ``weights=None``, input 224x224x3, every
BatchNormalization given seeded random gamma / beta / moving mean / moving variance with
the variance in [0.5, 2] so that folding is not the identity) it measures:

* load time   - the Keras frontend's ``load`` on the model saved to a temporary .keras file;
* fold time   - ``fold.fold`` on the loaded model (``FoldResult.timings_s["fold"]``);
* verify time - ``fold.verify`` with 4 seeded samples, and its max abs diff;
* BatchNorm layers before -> after, and the number of folded / skipped pairs;
* forward time of the original vs the folded model: median (and min) of ``--repeats``
  calls on a batch of ``--batch`` images, after 2 warm-up calls. ``--call eager`` (the
  default) times ``model(x, training=False)``; ``--call function`` times the same call
  wrapped in ``tf.function(jit_compile=False)``. Original and folded calls alternate so
  that drift in machine load affects both alike.

It prints a Markdown table ready to paste into a README, followed by machine info, and
optionally writes every figure (plus skipped pairs and any traceback) to ``--json``.
A model whose fold raises is reported with its full traceback; the others still run.

Run from the repository root:

    .venv/bin/python bench/bench_fold.py
    .venv/bin/python bench/bench_fold.py --models MobileNetV2,ResNet50 --repeats 7 \
        --batch 1 --call eager --json bench.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fold.core.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fold import FRONTENDS, fold, verify  # noqa: E402

KERAS = FRONTENDS["keras"].frontend()

DEFAULT_MODELS = ("MobileNetV2", "ResNet50", "DenseNet121", "EfficientNetB0")
INPUT_SHAPE = (224, 224, 3)
VERIFY_SAMPLES = 4
WARMUP_CALLS = 2
BN_SEED = 1234
INPUT_SEED = 0


@dataclass
class Timing:
    """Forward-pass times in milliseconds."""

    median_ms: float
    min_ms: float


@dataclass
class BenchRow:
    """Every figure measured for one model; ``error`` holds a traceback if a step raised."""

    model: str
    layers_before: int | None = None
    layers_after: int | None = None
    bn_before: int | None = None
    bn_after: int | None = None
    folded: int | None = None
    skipped: int | None = None
    skipped_pairs: list[dict] = field(default_factory=list)
    load_s: float | None = None
    fold_s: float | None = None
    verify_s: float | None = None
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    atol: float | None = None
    passed: bool | None = None
    forward_original: Timing | None = None
    forward_folded: Timing | None = None
    error: str | None = None

    @property
    def speedup(self) -> float | None:
        if self.forward_original is None or self.forward_folded is None:
            return None
        return self.forward_original.median_ms / self.forward_folded.median_ms


# --------------------------------------------------------------------------- model setup

def build_model(name: str) -> keras.Model:
    """A ``keras.applications`` model with random weights and a 224x224x3 input."""
    constructor = getattr(keras.applications, name, None)
    if constructor is None:
        raise ValueError(f"keras.applications has no model named {name!r}")
    return constructor(weights=None, input_shape=INPUT_SHAPE)


def randomize_batchnorms(model: keras.Model, seed: int = BN_SEED) -> int:
    """Give every BatchNormalization non-trivial statistics; returns how many were changed."""
    rng = np.random.default_rng(seed)
    count = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        shape = layer.moving_mean.shape
        if layer.gamma is not None:
            layer.gamma.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
        if layer.beta is not None:
            layer.beta.assign(rng.uniform(-0.2, 0.2, shape).astype("float32"))
        layer.moving_mean.assign(rng.uniform(-0.2, 0.2, shape).astype("float32"))
        layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
        count += 1
    return count


def saved_and_loaded(model: keras.Model, directory: Path) -> tuple[keras.Model, float]:
    """Save ``model`` as .keras, load it back through foldscope; returns (model, load seconds)."""
    path = directory / f"{model.name}.keras"
    KERAS.write(model, path)
    start = time.perf_counter()
    loaded = KERAS.load(path)
    return loaded, time.perf_counter() - start


# --------------------------------------------------------------------------- timing

def make_caller(model: keras.Model, mode: str) -> Callable[[tf.Tensor], object]:
    """The inference call that is timed: eager, or wrapped in a non-XLA tf.function."""
    def call(x: tf.Tensor) -> object:
        return model(x, training=False)

    return tf.function(call, jit_compile=False) if mode == "function" else call


def run_once(call: Callable[[tf.Tensor], object], x: tf.Tensor) -> float:
    """Milliseconds for one call, waiting for the result to be materialized."""
    start = time.perf_counter()
    out = call(x)
    for tensor in keras.tree.flatten(out):
        np.asarray(tensor)
    return (time.perf_counter() - start) * 1000.0


def time_pair(original: keras.Model, folded: keras.Model, x: tf.Tensor,
              repeats: int, mode: str) -> tuple[Timing, Timing]:
    """Median and min forward time of both models, warm-up first, calls interleaved."""
    calls = [make_caller(original, mode), make_caller(folded, mode)]
    for call in calls:
        for _ in range(WARMUP_CALLS):
            run_once(call, x)
    samples: list[list[float]] = [[], []]
    for _ in range(repeats):
        for i, call in enumerate(calls):
            samples[i].append(run_once(call, x))
    timing_a, timing_b = (Timing(statistics.median(s), min(s)) for s in samples)
    return timing_a, timing_b


def input_batch(batch: int, seed: int = INPUT_SEED) -> tf.Tensor:
    rng = np.random.default_rng(seed)
    return tf.constant(rng.standard_normal((batch, *INPUT_SHAPE)).astype("float32"))


# --------------------------------------------------------------------------- one model

def count_layers(model: keras.Model) -> int:
    return len(model._flatten_layers(include_self=False, recursive=True))


def bench_model(name: str, repeats: int, batch: int, mode: str, workdir: Path) -> BenchRow:
    """Build, save, load, fold, verify and time one model; a failure is kept in ``error``."""
    row = BenchRow(model=name)
    built = loaded = result = None
    try:
        built = build_model(name)
        randomize_batchnorms(built)
        loaded, row.load_s = saved_and_loaded(built, workdir)
        del built
        built = None

        result = fold(KERAS, loaded)
        row.fold_s = result.timings_s["fold"]
        row.layers_before, row.layers_after = count_layers(loaded), count_layers(result.folded)
        row.bn_before, row.bn_after = result.bn_before, result.bn_after
        row.folded = sum(d.status == "folded" for d in result.decisions)
        row.skipped_pairs = [d.to_dict() for d in result.decisions if d.status != "folded"]
        row.skipped = len(row.skipped_pairs)

        start = time.perf_counter()
        check = verify(result, samples=VERIFY_SAMPLES, seed=0).verification
        row.verify_s = time.perf_counter() - start
        row.max_abs_diff, row.max_rel_diff = check.max_abs_diff, check.max_rel_diff
        row.atol, row.passed = check.atol, check.passed

        row.forward_original, row.forward_folded = time_pair(
            loaded, result.folded, input_batch(batch), repeats, mode)
    except Exception:
        row.error = traceback.format_exc()
    finally:
        del built, loaded, result
        keras.backend.clear_session()
        gc.collect()
    return row


# --------------------------------------------------------------------------- output

def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _arrow(before: int | None, after: int | None) -> str:
    return "-" if before is None else f"{before} → {_num(after, 'd')}"


def markdown_row(row: BenchRow) -> str:
    diff = _num(row.max_abs_diff, ".2e")
    if row.max_rel_diff is not None:
        diff += f" (rel {row.max_rel_diff:.1e})"
    if row.passed is False:
        diff += " (FAIL)"
    cells = [
        row.model + (" (error)" if row.error else ""),
        _arrow(row.layers_before, row.layers_after),
        _arrow(row.bn_before, row.bn_after),
        "-" if row.folded is None else f"{row.folded} / {row.skipped}",
        _num(row.load_s, ".2f"),
        _num(row.fold_s, ".2f"),
        _num(row.verify_s, ".2f"),
        diff,
        _timing_cell(row.forward_original),
        _timing_cell(row.forward_folded),
        "-" if row.speedup is None else f"{row.speedup:.2f}×",
    ]
    return "| " + " | ".join(cells) + " |"


def _timing_cell(timing: Timing | None) -> str:
    return "-" if timing is None else f"{timing.median_ms:.1f} (min {timing.min_ms:.1f})"


def markdown_table(rows: list[BenchRow], mode: str, batch: int, repeats: int) -> str:
    call = "model(x, training=False)" if mode == "eager" else \
        "tf.function(jit_compile=False) around model(x, training=False)"
    header = ["model", "layers", "BN before → after", "folded / skipped", "load s", "fold s",
              "verify s", "max abs diff", "forward original ms", "forward folded ms", "speed-up"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|",
        *(markdown_row(r) for r in rows),
        "",
        f"Forward: median (min) of {repeats} calls of {call} on a batch of {batch} "
        f"224×224×3 image(s), after {WARMUP_CALLS} warm-up calls; original and folded "
        f"calls interleaved. Verify: {VERIFY_SAMPLES} seeded samples; max abs diff over all "
        f"outputs (rel: divided by the largest |original output|). Weights random "
        f"(`weights=None`) with seeded random BatchNorm statistics.",
    ]
    return "\n".join(lines)


def machine_info() -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "platform": platform.platform(),
    }


def machine_line(info: dict) -> str:
    return (f"Machine: {info['cpu_count']} CPU(s) ({info['processor']}), {info['platform']}, "
            f"Python {info['python']}, TensorFlow {info['tensorflow']} (CPU), "
            f"Keras {info['keras']}.")


def skipped_summary(row: BenchRow) -> list[str]:
    """One line per (layer kind, rule) among the skipped pairs, with a count and an example."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for pair in row.skipped_pairs:
        groups.setdefault((pair["kind"], pair["rule"]), []).append(pair)
    return [f"- {row.model}: {len(pairs)} pair(s) after a {kind} skipped by rule `{rule}`, "
            f"e.g. {pairs[0]['layer']} + {pairs[0]['bn']}: {pairs[0]['reason']}"
            for (kind, rule), pairs in groups.items()]


def report_problems(rows: list[BenchRow]) -> None:
    """Skipped pairs (grouped) and tracebacks, after the table, on stdout."""
    lines = [line for row in rows for line in skipped_summary(row)]
    if lines:
        print("\nSkipped pairs:")
        print("\n".join(lines))
    for row in rows:
        if row.error:
            print(f"\n{row.model} failed:\n```\n{row.error.rstrip()}\n```")


def write_json(path: Path, rows: list[BenchRow], info: dict, args: argparse.Namespace) -> None:
    payload = {
        "machine": info,
        "settings": {"repeats": args.repeats, "batch": args.batch, "call": args.call,
                     "warmup_calls": WARMUP_CALLS, "verify_samples": VERIFY_SAMPLES,
                     "bn_seed": BN_SEED},
        "results": [{**asdict(r), "speedup": r.speedup} for r in rows],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


# --------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated keras.applications names (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=7, help="timed forward calls per model")
    parser.add_argument("--batch", type=int, default=1, help="images per forward call")
    parser.add_argument("--call", choices=("eager", "function"), default="eager",
                        help="time the eager call or a tf.function(jit_compile=False) wrapper")
    parser.add_argument("--json", type=Path, help="also write all figures to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.batch < 1:
        parser.error("--repeats and --batch must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory(prefix="foldscope-bench-") as tmp:
        for name in names:
            print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
            rows.append(bench_model(name, args.repeats, args.batch, args.call, Path(tmp)))
    info = machine_info()
    print(markdown_table(rows, args.call, args.batch, args.repeats))
    print()
    print(machine_line(info))
    report_problems(rows)
    if args.json:
        write_json(args.json, rows, info, args)
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
