"""``python -m fold INPUT [-o OUTPUT] [--report REPORT.json] [--samples N] [--seed S] [--atol A]``.

INPUT is a Keras model (.keras, .h5), a frozen TensorFlow graph (.pb) or a TFLite model
(.tflite); the folded model is written in the same format (Keras models as .keras).

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
import warnings
from collections.abc import Callable
from pathlib import Path

from fold.errors import FoldError, one_line
from fold.files import check_model_file

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2
_OUTPUT_SUFFIX = {"keras": ".keras", "h5": ".keras", "pb": ".pb", "tflite": ".tflite"}


def default_output(path: str, fmt: str = "keras") -> str:
    """INPUT's name with ``_folded`` before the suffix (Keras models are written as .keras)."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}_folded{_OUTPUT_SUFFIX[fmt]}"))


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fold",
        description="Fold BatchNorm layers into the conv/dense/transposed-conv layers before them, "
                    "write the folded model and verify it computes the same outputs.",
    )
    parser.add_argument("input", help="a .keras, .h5, .pb (frozen GraphDef) or .tflite model file")
    parser.add_argument("-o", "--output", help="folded model path (default: INPUT_folded.keras/.pb/.tflite)")
    parser.add_argument("--report", help="write a JSON report to this path")
    parser.add_argument("--samples", type=int, default=8, help="random input samples for verification (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    parser.add_argument("--atol", type=float, default=None,
                        help="max abs diff allowed; default 1e-4 * max(1, max|output|) for float32, "
                             "1e-2 * ... for float16")
    parser.add_argument("--inputs", type=_names, default=None, help=".pb only: input tensor names, comma-separated")
    parser.add_argument("--outputs", type=_names, default=None, help=".pb only: output tensor names, comma-separated")
    parser.add_argument("--tflite", help="Keras only: also export the folded model as .tflite to this path")
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error(f"--samples must be at least 1; received {args.samples}")
    return args


def _fail(message: str) -> int:
    print(f"foldscope: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.environ.get("FOLDSCOPE_DEBUG"):
        # Library warnings (Keras' skipped weights, zipfile's invalid paths) would break the
        # one-line contract on stderr; the error itself says what went wrong.
        warnings.simplefilter("ignore")
    try:
        return _run(args)
    except Exception as exc:  # the contract: one line, exit 2, never a traceback
        if os.environ.get("FOLDSCOPE_DEBUG"):
            raise
        if isinstance(exc, FoldError):
            return _fail(str(exc))
        return _fail(f"cannot fold '{args.input}': {type(exc).__name__}: {one_line(exc)}")


def _fold_keras(args: argparse.Namespace, output: str):
    from fold import keras_io
    from fold.api import fold_file, verify

    result = fold_file(args.input)
    keras_io.save_model(result.folded, output)
    if args.tflite:
        from fold.tflite import keras_to_tflite

        Path(args.tflite).write_bytes(keras_to_tflite(result.folded))
    return result, lambda: verify(result.original, result.folded, samples=args.samples, seed=args.seed,
                                  atol=args.atol)


def _fold_pb(args: argparse.Namespace, output: str):
    from fold.tf_graph import fold_graph_def, read_graph_def, verify_graph_defs, write_graph_def

    start = time.perf_counter()
    graph_def = read_graph_def(args.input)
    loaded = time.perf_counter() - start
    result = fold_graph_def(graph_def, args.inputs, args.outputs)
    result.timings_s = {"load": loaded, **result.timings_s}
    write_graph_def(result.folded, output)
    return result, lambda: verify_graph_defs(result.original, result.folded, result.inputs, result.outputs,
                                             samples=args.samples, seed=args.seed, atol=args.atol)


def _fold_tflite(args: argparse.Namespace, output: str):
    from fold.tflite import fold_tflite, load_tflite, verify_tflite

    start = time.perf_counter()
    data = load_tflite(args.input)
    loaded = time.perf_counter() - start
    result = fold_tflite(data, name=Path(args.input).name)
    result.timings_s = {"load": loaded, **result.timings_s}
    Path(output).write_bytes(result.folded)
    return result, lambda: verify_tflite(result.original, result.folded, samples=args.samples, seed=args.seed,
                                         atol=args.atol)


#: file format -> folds the file, writes the output, returns (result, a verification thunk)
FRONTENDS: dict[str, Callable] = {"keras": _fold_keras, "h5": _fold_keras, "pb": _fold_pb, "tflite": _fold_tflite}


def _run(args: argparse.Namespace) -> int:
    fmt = check_model_file(args.input)  # fail fast, before TensorFlow starts up
    if args.tflite and fmt not in ("keras", "h5"):
        raise FoldError(f"--tflite exports Keras models; '{Path(args.input).name}' is a .{fmt} file.")
    from fold.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from fold.report import pairs_table, report_dict, verification_text

    output = args.output or default_output(args.input, fmt)
    result, verify = FRONTENDS[fmt](args, output)
    start = time.perf_counter()
    check = verify()
    result.timings_s["verify"] = time.perf_counter() - start

    print(pairs_table(result.decisions))
    print()
    print(f"BatchNorms: {result.bn_before} before, {result.bn_after} after; folded model written to {output}")
    print(verification_text(check))
    if args.report:
        report = report_dict(args.input, output, result.decisions, result.bn_before,
                             result.bn_after, check, result.timings_s)
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return EXIT_OK if check.passed else EXIT_MISMATCH
