"""Benchmark the ONNX frontend against the field's ONNX tools on a model with 50+ BatchNorms.

The model is ResNet-50's layout built with ``onnx.helper`` (53 BatchNormalization nodes,
25.6 M weights, seeded random weights and BN statistics; ``foldscope_app/examples/onnx_zoo.py``), saved to a
temporary .onnx file. For foldscope it times load (read, checker, shape inference and the
onnxruntime check), fold, and verify (``--samples`` rows of 224x224x3 through both models in
onnxruntime with its optimizations off); for onnxsim, onnxoptimizer's ``fuse_bn_into_conv``
and onnxruntime's offline optimizer (extended level) it times the call on the loaded model.
Every figure is the median (and min) of ``--repeats`` runs; every tool's output is checked
on the same inputs (BatchNorms left, counted for every tool as ``FoldResult.bn_after`` counts them;
max abs diff against the original).

Run from the repository root:

    .venv/bin/python bench/bench_onnx.py
    .venv/bin/python bench/bench_onnx.py --repeats 5 --samples 4 --json onnx.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import onnx  # noqa: E402

from fold import FRONTENDS, fold, load, verify  # noqa: E402
from fold.frontends.onnx.peers import TRANSFORMS  # noqa: E402
from foldscope_app.examples import onnx_zoo  # noqa: E402
from foldscope_app.workbench.onnx_peers import peer_runs  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """Median and min seconds of ``repeats`` calls, and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    frontend = FRONTENDS["onnx"].frontend()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet50.onnx"
        onnx.save(onnx_zoo.resnet50(), path)
        size_mb = path.stat().st_size / 2**20
        load_s = timed(lambda: load(path)[1], args.repeats)
    model = load_s[2]
    fold_s = timed(lambda: fold(frontend, model), args.repeats)
    result = fold_s[2]
    verify_s = timed(lambda: verify(result, args.samples, 0), args.repeats)
    checked = verify_s[2]
    rows = [{"tool": "foldscope (load + fold + verify)", "seconds": load_s[0] + fold_s[0] + verify_s[0],
             "min": load_s[1] + fold_s[1] + verify_s[1], "bn_left": result.bn_after,
             "max_abs_diff": checked.verification.max_abs_diff},
            {"tool": "foldscope fold alone", "seconds": fold_s[0], "min": fold_s[1],
             "bn_left": result.bn_after, "max_abs_diff": checked.verification.max_abs_diff}]
    for (tool, action, _), runs in zip(TRANSFORMS, zip(*(peer_runs(model, checked.inputs)
                                                     for _ in range(args.repeats)))):
        times = [r.seconds for r in runs]
        rows.append({"tool": f"{tool} ({action})", "seconds": statistics.median(times), "min": min(times),
                     "bn_left": runs[-1].bn_left, "max_abs_diff": runs[-1].max_abs_diff, "error": runs[-1].error})

    before = result.bn_before
    print(f"ResNet-50 layout, {before} BatchNormalization nodes, {size_mb:.0f} MiB; verify on {args.samples} "
          f"samples of 3x224x224; median (min) of {args.repeats} runs.\n")
    print("| tool | seconds | BatchNormalization left | max abs diff vs original |")
    print("|---|--:|--:|--:|")
    for row in rows:
        diff = "failed: " + row["error"] if row.get("error") else f"{row['max_abs_diff']:.2e}"
        print(f"| {row['tool']} | {row['seconds']:.2f} (min {row['min']:.2f}) | {row['bn_left']} of {before} | {diff} |")
    print(f"\nfoldscope stages: load {load_s[0]:.2f} s, fold {fold_s[0]:.2f} s, verify {verify_s[0]:.2f} s.")
    print(f"Machine: {platform.machine()}, Python {platform.python_version()}, onnx {onnx.__version__}.")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "load_s": load_s[:2], "fold_s": fold_s[:2],
                                               "verify_s": verify_s[:2], "samples": args.samples}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
