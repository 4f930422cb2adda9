"""``python -m fold INPUT [-o OUTPUT] [--report REPORT.json] [--samples N] [--seed S] [--atol A]``.

Exit status: 0 folded and verified; 1 the max abs diff exceeds the tolerance; 2 bad input
(missing, unreadable, corrupt or unsupported file, or a model foldscope cannot run), with
one line on stderr and no traceback (set FOLDSCOPE_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from fold.errors import FoldError, one_line

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2


def default_output(path: str) -> str:
    p = Path(path)
    return str(p.with_name(f"{p.stem}_folded.keras"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fold",
        description="Fold BatchNorm layers into the conv/dense/transposed-conv layers before them, "
                    "write the folded model and verify it computes the same outputs.",
    )
    parser.add_argument("input", help="a .keras or .h5 model file")
    parser.add_argument("-o", "--output", help="folded model path (default: INPUT_folded.keras)")
    parser.add_argument("--report", help="write a JSON report to this path")
    parser.add_argument("--samples", type=int, default=8, help="random input samples for verification (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    parser.add_argument("--atol", type=float, default=None,
                        help="max abs diff allowed; default 1e-4 * max(1, max|output|) for float32, "
                             "1e-2 * ... for float16")
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error(f"--samples must be at least 1; received {args.samples}")
    return args


def _fail(message: str) -> int:
    print(f"foldscope: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _run(args)
    except Exception as exc:  # the contract: one line, exit 2, never a traceback
        if os.environ.get("FOLDSCOPE_DEBUG"):
            raise
        if isinstance(exc, FoldError):
            return _fail(str(exc))
        return _fail(f"cannot fold '{args.input}': {type(exc).__name__}: {one_line(exc)}")


def _run(args: argparse.Namespace) -> int:
    from fold.files import check_model_file

    check_model_file(args.input)  # fail fast, before TensorFlow starts up
    from fold.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from fold import keras_io
    from fold.api import fold_file, verify
    from fold.report import pairs_table, report_dict, verification_text

    output = args.output or default_output(args.input)
    result = fold_file(args.input)
    keras_io.save_model(result.folded, output)
    start = time.perf_counter()
    check = verify(result.original, result.folded, samples=args.samples, seed=args.seed, atol=args.atol)
    result.timings_s["verify"] = time.perf_counter() - start

    print(pairs_table(result.decisions))
    print()
    print(f"BatchNormalization layers: {result.bn_before} before, {result.bn_after} after; "
          f"folded model written to {output}")
    print(verification_text(check))
    if args.report:
        report = report_dict(args.input, output, result.decisions, result.bn_before,
                             result.bn_after, check, result.timings_s)
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return EXIT_OK if check.passed else EXIT_MISMATCH
