"""``python -m fold INPUT [-o OUTPUT] [--report REPORT.json] [--samples N] [--seed S] [--atol A]``.

INPUT is any format of ``fold.frontend.FRONTENDS`` (Keras .keras/.h5/.hdf5, a frozen
TensorFlow graph .pb, TFLite .tflite, ...); the folded model is written in the same format
(Keras models as .keras).

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
from pathlib import Path

from fold.errors import FoldError, one_line
from fold.files import check_model_file, suffix_list
from fold.frontend import FRONTENDS, Format, edits_weights

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2


def default_output(path: str, fmt: Format) -> str:
    """INPUT's name with ``_folded`` before the format's output suffix."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}_folded{fmt.output_suffix}"))


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def _takes(option: str) -> str:
    return ", ".join(s for f in FRONTENDS.values() if option in f.options for s in f.suffixes)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fold",
        description="Fold BatchNorm layers into the conv/dense/transposed-conv layers before them, "
                    "write the folded model and verify it computes the same outputs.",
    )
    parser.add_argument("input", help=f"a model file: {suffix_list()}")
    parser.add_argument("-o", "--output", help="folded model path (default: INPUT_folded with the format's suffix)")
    parser.add_argument("--report", help="write a JSON report to this path")
    parser.add_argument("--samples", type=int, default=8,
                        help="random input samples (batch rows) for verification, every format (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    parser.add_argument("--atol", type=float, default=None,
                        help="max abs diff allowed; default 1e-4 * max(1, max|output|) for float32, "
                             "1e-2 * ... for float16")
    parser.add_argument("--inputs", type=_names, default=None,
                        help=f"{_takes('inputs')} only: input tensor names, comma-separated")
    parser.add_argument("--outputs", type=_names, default=None,
                        help=f"{_takes('outputs')} only: output tensor names, comma-separated")
    parser.add_argument("--tflite", help="Keras only: also export the folded model as .tflite to this path")
    parser.add_argument("--per-layer", action="store_true",
                        help="also compare every layer's output (one more run of both models on one sample) and "
                             "report where the error enters")
    parser.add_argument("--quant-report", metavar="Q.json",
                        help="write what int8 weights lose after folding (per-layer SQNR per tensor, per channel, "
                             "after cross-layer equalization; end-to-end output SQNR) to this JSON file")
    parser.add_argument("--cle", action="store_true",
                        help="also write the folded model after cross-layer equalization (INPUT_folded_cle...); "
                             "Keras and ONNX models")
    parser.add_argument("--model-explorer", metavar="DIR",
                        help="write the graphs before and after, their node data and a mapping for Google's "
                             "Model Explorer into DIR")
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


def cle_output(output: str, fmt: Format) -> str:
    """Where ``--cle`` writes the equalized model: OUTPUT's name with ``_cle`` before the suffix."""
    p = Path(output)
    return str(p.with_name(f"{p.stem}_cle{fmt.output_suffix}"))


def _quantization(args: argparse.Namespace, result, checked, output: str, fmt: Format) -> None:
    from fold.quantization import quant_report
    from fold.report import quant_text

    start = time.perf_counter()
    report = quant_report(result, checked)
    result.timings_s["quantization"] = time.perf_counter() - start
    print(quant_text(report))
    if args.quant_report:
        Path(args.quant_report).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if args.cle:
        path = cle_output(output, fmt)
        result.frontend.write(report.equalized if report.equalized is not None else result.folded, Path(path))
        pairs = ", ".join(f"{a} -> {b}" for a, b in report.pairs) if report.pairs else \
            "none (no folded layer is followed, through ReLU or nothing, by a layer it alone feeds)"
        print(f"cross-layer equalization of {pairs}; equalized model written to {path}")


def _run(args: argparse.Namespace) -> int:
    fmt = check_model_file(args.input)  # fail fast, before TensorFlow starts up
    if args.tflite and fmt.name != "keras":
        raise FoldError(f"--tflite exports Keras models; '{Path(args.input).name}' is a {fmt.label} file.")
    if args.cle and not edits_weights(fmt.frontend()):
        raise FoldError(f"--cle edits weights, which foldscope does for Keras and ONNX models; "
                        f"'{Path(args.input).name}' is a {fmt.label} file.")
    from fold.pipeline import fold_file, verify
    from fold.report import pairs_table, per_layer_text, report_dict, verification_text

    output = args.output or default_output(args.input, fmt)
    result = fold_file(args.input, inputs=args.inputs, outputs=args.outputs)
    result.frontend.write(result.folded, Path(output))
    if args.tflite:
        from fold.frontends.keras.io import to_tflite

        Path(args.tflite).write_bytes(to_tflite(result.folded))
    start = time.perf_counter()
    checked = verify(result.frontend, result.original, result.folded, args.samples, args.seed, atol=args.atol)
    check = checked.verification
    result.timings_s["verify"] = time.perf_counter() - start

    print(pairs_table(result.decisions))
    print()
    print(f"BatchNorms: {result.bn_before} before, {result.bn_after} after; folded model written to {output}")
    print(verification_text(check))
    diffs = None
    if args.per_layer:
        from fold.pipeline import per_layer

        start = time.perf_counter()
        diffs = per_layer(result, samples=1, seed=args.seed)
        result.timings_s["per_layer"] = time.perf_counter() - start
        print(per_layer_text(diffs))
    if args.quant_report or args.cle:
        _quantization(args, result, checked, output, fmt)
    if args.model_explorer:
        from fold.model_explorer import export

        written = export(result, args.model_explorer, diffs)
        print(f"Model Explorer files written to {args.model_explorer}: {', '.join(p.name for p in written)}")
    if args.report:
        report = report_dict(args.input, output, result, check, diffs)
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return EXIT_OK if check.passed else EXIT_MISMATCH
