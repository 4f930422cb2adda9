"""``python -m fold INPUT [options]`` folds and verifies a model; ``python -m fold check ORIGINAL
CANDIDATE [options]`` verifies a fold any other tool made; ``python -m fold zoo DIR [options]``
folds and verifies every model under a folder (``fold.zoo``; its exit status: ``ZOO_ORDER``).

INPUT is any format of ``fold.frontend.FRONTENDS`` (Keras .keras/.h5/.hdf5, a frozen
TensorFlow graph .pb, TFLite .tflite, ONNX .onnx, circle .circle); the folded model is written in the same
format (Keras models as .keras).

Exit status: 0 verified (every folded layer and every output within float error; with
``--no-verify``: folded and written, nothing run); 1 a mismatch; 2 bad input (missing, unreadable, corrupt or unsupported file or option, a model
foldscope cannot run), with one line on stderr, no traceback (FOLDSCOPE_DEBUG=1 shows one) and
no output file left behind; 3 inconclusive (nothing failed, but the inputs left some folded layer
unexercised: pass inputs that exercise it).

``--html`` writes the app's view of the run (``demo.html_report``, the page's own views; the one
place the command line reaches into ``demo``, and only when asked).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from fold.core.verification import SAMPLES
from fold.errors import FoldError, internal_error, plain
from fold.files import check_model_file, read_arrays, suffix_list
from fold.frontend import FRONTENDS, LOAD_OPTIONS, Format
from fold.zoo import TIMEOUT_S, ModelRow

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT, EXIT_INCONCLUSIVE = 0, 1, 2, 3
EXIT = {"pass": EXIT_OK, "fail": EXIT_MISMATCH, "inconclusive": EXIT_INCONCLUSIVE}
#: A zoo run's exit status is the first of these any model has: a model without a verdict at all
#: (unreadable, a crash, a timeout: it may hide a mismatch too), then a mismatch, then inconclusive.
ZOO_ORDER = (EXIT_BAD_INPUT, EXIT_MISMATCH, EXIT_INCONCLUSIVE, EXIT_OK)


def default_output(path: str, fmt: Format) -> str:
    """INPUT's name with ``_folded`` before the format's output suffix."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}_folded{fmt.output_suffix}"))


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def input_shape(value: str) -> tuple[str, tuple[int, ...]]:
    """``NAME=D0xD1x...`` as (name, dims)."""
    name, sep, dims = value.rpartition("=")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected NAME=D0xD1x... with positive sizes, e.g. x=1x3x640x640; "
                                         f"received {value!r}")
    return name, shape


def _takes(option: str) -> str:
    return ", ".join(s for f in FRONTENDS.values() if option in f.options for s in f.suffixes)


def _verification_options(parser: argparse.ArgumentParser) -> None:
    """The options a fold and a check share: inputs, tolerance, report, format options."""
    parser.add_argument("--report", help="write a JSON report to this path")
    parser.add_argument("--html", metavar="REPORT.html",
                        help="write what the app shows (verdict, pairs, the interactive graph, per-channel plots, "
                             "outputs) as one self-contained HTML file that opens offline")
    _input_options(parser)
    parser.add_argument("--per-layer", action="store_true",
                        help="also print the compared tensors closest to their tolerance and put every tensor's "
                             "figures in the report's per_layer")


def _input_options(parser: argparse.ArgumentParser) -> None:
    """The verification's inputs and tolerance, and the formats' load options: a fold's, a check's
    and a zoo run's."""
    parser.add_argument("--samples", type=int, default=SAMPLES,
                        help=f"random input samples (batch rows) for verification, every format (default {SAMPLES})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    parser.add_argument("--input-shape", type=input_shape, action="append", default=[], metavar="NAME=D0xD1x...",
                        help="an input's shape, batch first, for its unknown dimensions (repeatable); without it "
                             "they are 32, or the next size up to 1024 the model runs at")
    parser.add_argument("--inputs-file", metavar="F.npz",
                        help="the verification inputs: a .npz of arrays keyed by input name (a .npy for a "
                             "single-input model) instead of random samples")
    parser.add_argument("--atol", type=float, default=None,
                        help="judge the outputs against this absolute tolerance instead of the budget of what float "
                             "error explains (folded layers are always judged at their own scale)")
    parser.add_argument("--inputs", type=_names, default=None,
                        help=f"{_takes('inputs')} only: input tensor names, comma-separated")
    parser.add_argument("--outputs", type=_names, default=None,
                        help=f"{_takes('outputs')} only: output tensor names, comma-separated")
    parser.add_argument("--runtime", choices=("auto", "tico", "onert"), default=None,
                        help=f"{_takes('runtime')} only: the circle runtime that runs the models (default auto: "
                             "onert where it has every kernel, else tico's reference runtime)")


def fold_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fold",
        description="Fold BatchNorm layers into the conv/dense/transposed-conv layers before them, "
                    "write the folded model and verify it computes the same outputs. "
                    "'python -m fold check ORIGINAL CANDIDATE' verifies a fold another tool made; "
                    "'python -m fold zoo DIR' folds and verifies every model under a folder.",
        epilog="Exit status: 0 verified, 1 mismatch, 2 bad input, 3 inconclusive (pass inputs that exercise "
               "every folded layer).",
    )
    parser.add_argument("input", help=f"a model file: {suffix_list()}")
    parser.add_argument("-o", "--output", help="folded model path (default: INPUT_folded with the format's suffix)")
    parser.add_argument("--no-verify", action="store_true",
                        help="write the fold without running either model (exit 0 then means folded, not verified; "
                             "the report's verification is null): verify it later with 'python -m fold check'")
    _verification_options(parser)
    parser.add_argument("--tflite", help="Keras only: also export the folded model as .tflite to this path")
    parser.add_argument("--quant-report", metavar="Q.json",
                        help="write what int8 weights lose after folding (per-layer SQNR per tensor, per channel, "
                             "after cross-layer equalization; end-to-end output SQNR) to this JSON file")
    parser.add_argument("--cle", action="store_true",
                        help="also write the folded model after cross-layer equalization (INPUT_folded_cle...)")
    parser.add_argument("--int8", nargs="?", const="auto", metavar="RUNTIME",
                        help="also build real int8 models (int8 weights and activations) of the original and the "
                             "fold's variants with the runtime's own quantizer and compare them layer by layer "
                             "(onnxruntime, the default for ONNX files); the figures join --quant-report's JSON")
    parser.add_argument("--model-explorer", metavar="DIR",
                        help="write the graphs before and after, their node data and a mapping for Google's "
                             "Model Explorer into DIR")
    return parser


def check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fold check",
        description="Verify a fold that any tool made (onnxsim, onnxslim, onnxruntime's optimizer, onnxoptimizer, "
                    "TensorFlow's TFLite converter, a hand edit) against the original model: both run on the same "
                    "inputs, every layer that absorbed a BN is checked at its own scale, every output and every "
                    "tensor both models have end to end.",
        epilog="Exit status: 0 verified, 1 mismatch, 2 bad input, 3 inconclusive.",
    )
    parser.add_argument("original", help=f"the model before folding: {suffix_list()}")
    parser.add_argument("candidate", help="the model the tool made (the same format; a .tflite for a Keras original)")
    _verification_options(parser)
    return parser


def zoo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fold zoo",
        description="Fold and verify every model file under DIR, each in a process of its own, with the same "
                    "verification as a single fold; --peers adds each format's peer tools, checked as "
                    "'python -m fold check' checks a fold. Writes no model: a table on stdout, --json and --html.",
        epilog="Exit status, the worst over the models' own folds (the peers' rows do not count): 2 a model could "
               "not be read, folded or verified (or its worker crashed or timed out), else 1 a mismatch, else 3 "
               "inconclusive, else 0.",
    )
    parser.add_argument("dir", help=f"the folder of the models ({suffix_list()} files, searched recursively; "
                                    "hidden folders are passed over)")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="models verified at once, each in its own process "
                                                                 "(default 1); with --ray local, the instance's CPUs")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, metavar="SECONDS",
                        help=f"stop a model's worker after this long: a failed row (default {TIMEOUT_S:g})")
    parser.add_argument("--peers", action="store_true",
                        help="also run each format's peer tools (onnxsim, onnxslim, onnxoptimizer, onnxruntime's offline "
                             "optimizer for ONNX; TensorFlow's TFLite converter for Keras) and check their folds")
    parser.add_argument("--json", metavar="PATH", help="write one row per model file as JSON")
    parser.add_argument("--html", metavar="PATH", help="write the table as a self-contained HTML page")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="send each model to a Ray cluster as a task: 'auto' (a running cluster), 'local' (a new "
                             "local instance) or ray://HOST:PORT; needs requirements-ray.txt")
    _input_options(parser)
    return parser


def zoo_exit(rows: Sequence[ModelRow]) -> int:
    """A zoo run's exit status: the worst over the models' own folds, in the order of ``ZOO_ORDER``."""
    found = {EXIT.get(row.verdict, EXIT_BAD_INPUT) for row in rows}
    return next((status for status in ZOO_ORDER if status in found), EXIT_OK)


def _fail(message: str) -> int:
    print(f"foldscope: error: {plain(message)}", file=sys.stderr)
    return EXIT_BAD_INPUT


class _Written:
    """Files a run writes; all of them go again if the run ends with a bad-input error."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def add(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        self.paths.append(p)
        return p

    def remove(self) -> None:
        for p in self.paths:
            if p.is_dir():
                for child in p.iterdir():
                    child.unlink(missing_ok=True)
                p.rmdir()
            else:
                p.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: Callable[[argparse.Namespace, _Written], int]
    if argv[:1] == ["check"]:
        args, command = check_parser().parse_args(argv[1:]), _check
    elif argv[:1] == ["zoo"]:
        args, command = zoo_parser().parse_args(argv[1:]), _zoo
    else:
        args, command = fold_parser().parse_args(argv), _fold
    if args.samples < 1:
        return _fail(f"--samples must be at least 1; received {args.samples}.")
    if not os.environ.get("FOLDSCOPE_DEBUG"):
        # Library warnings (Keras' skipped weights, zipfile's invalid paths) would break the
        # one-line contract on stderr; the error itself says what went wrong.
        warnings.simplefilter("ignore")
    written = _Written()
    try:
        return command(args, written)
    except Exception as exc:  # the contract: one line, exit 2, never a traceback, no file left behind
        written.remove()
        if os.environ.get("FOLDSCOPE_DEBUG"):
            raise
        if isinstance(exc, FoldError):
            return _fail(str(exc))
        return _fail(internal_error(exc, _files(args)))


def _files(args: argparse.Namespace) -> str:
    """The file (or files, or folder) a command works on, quoted, for its error line."""
    if getattr(args, "candidate", None):
        return f"'{args.original}' and '{args.candidate}'"
    return f"'{getattr(args, 'input', None) or getattr(args, 'dir', '')}'"


def _output(args: argparse.Namespace, fmt: Format) -> str:
    """Where the fold goes: -o, else INPUT_folded; never the input itself (a failed run removes its output)."""
    output = args.output or default_output(args.input, fmt)
    if Path(output).exists() and os.path.samefile(output, args.input):
        raise FoldError(f"-o '{output}' is the input itself; give the folded model another name.")
    return output


def _stamp(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


def _write_model(frontend, model, output: str, written: _Written) -> None:
    """``model`` at ``output``; the data file a model with external data writes beside it
    (``OUTPUT.data``) goes too if the run ends with an error."""
    data = Path(f"{output}.data")
    before = _stamp(data)
    frontend.write(model, written.add(output))
    if _stamp(data) != before:
        written.add(data)


def cle_output(output: str, fmt: Format) -> str:
    """Where ``--cle`` writes the equalized model: OUTPUT's name with ``_cle`` before the suffix."""
    p = Path(output)
    return str(p.with_name(f"{p.stem}_cle{fmt.output_suffix}"))


def _load_options(args: argparse.Namespace) -> dict:
    """The formats' load options from the command line (``--inputs``, ``--runtime``, ...)."""
    return {name: getattr(args, name) for name in LOAD_OPTIONS}


def _verify_options(args: argparse.Namespace) -> dict:
    """The verification's inputs and tolerance from the command line."""
    shapes = dict(args.input_shape)
    arrays = read_arrays(args.inputs_file) if args.inputs_file else None
    if arrays is not None and shapes:
        raise FoldError("--input-shape and --inputs-file exclude each other: the file's arrays have their shapes.")
    return {"atol": args.atol, "shapes": shapes or None, "arrays": arrays}


def _quantization(args: argparse.Namespace, result, checked, output: str, fmt: Format, written: _Written) -> None:
    from fold.quantization import quant_report
    from fold.report import quant_text

    start = time.perf_counter()
    report = quant_report(result, checked)
    result.timings_s["quantization"] = time.perf_counter() - start
    print(quant_text(report))
    figures = report.to_dict()
    if args.int8:
        from fold.int8 import int8_report
        from fold.report import int8_text

        v = checked.verification
        start = time.perf_counter()
        int8 = int8_report(result, checked.inputs, samples=v.samples, seed=v.seed, source=v.inputs_source,
                           equalized=report.equalized, runtime=None if args.int8 == "auto" else args.int8)
        result.timings_s["int8"] = time.perf_counter() - start
        print(int8_text(int8))
        figures["int8"] = int8.to_dict()
    if args.quant_report:
        written.add(args.quant_report).write_text(json.dumps(figures, indent=2) + "\n")
    if args.cle:
        path = cle_output(output, fmt)
        _write_model(result.frontend, report.equalized if report.equalized is not None else result.folded, path,
                     written)
        pairs = ", ".join(f"{a} -> {b}" for a, b in report.pairs) if report.pairs else \
            "none (no folded layer is followed, through ReLU or nothing, by a layer it alone feeds)"
        print(f"cross-layer equalization of {pairs}; equalized model written to {path}")


def _html(path: str, written: _Written, build: Callable) -> None:
    """``--html``: the report the page offers for download, ``build(demo.html_report, demo.workbench)``
    from the page's own workbench (which imports no TensorFlow of its own: a report of an ONNX model
    costs no 3 s import)."""
    from demo import html_report, workbench

    written.add(path).write_bytes(build(html_report, workbench))
    print(f"HTML report written to {path}")


def _fold(args: argparse.Namespace, written: _Written) -> int:
    fmt = check_model_file(args.input)  # fail fast, before TensorFlow starts up
    if args.tflite and fmt.name != "keras":
        raise FoldError(f"--tflite exports Keras models; '{Path(args.input).name}' is a {fmt.label} file.")
    if args.int8:
        from fold.int8 import check_runtime

        check_runtime(fmt, None if args.int8 == "auto" else args.int8)
    if args.no_verify:
        return _fold_unverified(args, fmt, written)
    options = _verify_options(args)
    from fold.pipeline import fold_file, verify
    from fold.report import counts_text, pairs_table, per_layer_text, report_dict, verification_text

    output = _output(args, fmt)
    result = fold_file(args.input, **_load_options(args))
    checked = verify(result, args.samples, args.seed, **options)
    check = checked.verification
    _write_model(result.frontend, result.folded, output, written)
    if args.tflite:
        from fold.frontends.keras.io import to_tflite

        written.add(args.tflite).write_bytes(to_tflite(result.folded))
    print(pairs_table(result.decisions, check))
    print()
    print(f"{counts_text(result)}; folded model written to {output}")
    print(verification_text(check))
    if args.per_layer:
        print(per_layer_text(check))
    if args.quant_report or args.cle or args.int8:
        _quantization(args, result, checked, output, fmt, written)
    if args.model_explorer:
        from fold.model_explorer import export

        existed = Path(args.model_explorer).exists()
        files = export(result, args.model_explorer, check.layers)
        if not existed:
            written.add(args.model_explorer)
        print(f"Model Explorer files written to {args.model_explorer}: {', '.join(p.name for p in files)}")
    if args.report:
        report = report_dict(args.input, output, result, check, args.per_layer)
        written.add(args.report).write_text(json.dumps(report, indent=2) + "\n")
    if args.html:
        _html(args.html, written, lambda report, bench: report.fold_report(
            bench.Workbench(f"cli:{args.input}", result, checked, result.frontend.outputs(result.original))))
    return EXIT[check.verdict]


#: Options that need the models run, refused with --no-verify.
RUNS = ("per_layer", "html", "quant_report", "cle", "int8", "tflite")


def unverified_text(input_path: str, output: str) -> str:
    """What a fold with --no-verify says instead of a verdict."""
    return (f"not verified (--no-verify): neither model was run; verify the fold with "
            f"'python -m fold check {input_path} {output}'")


def _fold_unverified(args: argparse.Namespace, fmt: Format, written: _Written) -> int:
    """``--no-verify``: fold and write, run nothing; exit 0 means folded, not verified."""
    asked = [name for name in RUNS if getattr(args, name)]
    if asked:
        raise FoldError(f"--{asked[0].replace('_', '-')} needs the models run; --no-verify runs neither.")
    from fold.pipeline import fold_file
    from fold.report import counts_text, pairs_table, report_dict

    output = _output(args, fmt)
    result = fold_file(args.input, **_load_options(args))
    start = time.perf_counter()
    _write_model(result.frontend, result.folded, output, written)
    result.timings_s["write"] = time.perf_counter() - start
    print(pairs_table(result.decisions))
    print()
    print(f"{counts_text(result)}; folded model written to {output}")
    print(unverified_text(args.input, output))
    if args.model_explorer:
        from fold.model_explorer import export

        existed = Path(args.model_explorer).exists()
        files = export(result, args.model_explorer)
        if not existed:
            written.add(args.model_explorer)
        print(f"Model Explorer files written to {args.model_explorer}: {', '.join(p.name for p in files)}")
    if args.report:
        report = report_dict(args.input, output, result, None)
        written.add(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return EXIT_OK


def _check(args: argparse.Namespace, written: _Written) -> int:
    for path in (args.original, args.candidate):
        check_model_file(path)
    options = _verify_options(args)
    from fold.check import check_files
    from fold.report import per_layer_text, table, verification_text

    result = check_files(args.original, args.candidate, args.samples, args.seed,
                         **_load_options(args), **options)
    check = result.checked.verification
    by_layer = {c.layer: c for c in check.folded_layers}
    rows = [(f.bn, f.layer, f.status, f.into or ("" if f.status == "kept" else "not lined up: checked at the outputs"),
             "" if f.into not in by_layer else ("PASS" if by_layer[f.into].passed else "FAIL"))
            for f in result.fates]
    if rows:
        print(table(("bn", "original layer", "status", "into", "check"), rows))
    else:
        print(f"'{Path(args.original).name}' has no BatchNormalization to fold.")
    print()
    print(f"BatchNorms: {result.bn_original} in '{Path(args.original).name}', {result.bn_candidate} in "
          f"'{Path(args.candidate).name}'")
    print(verification_text(check))
    if args.per_layer:
        print(per_layer_text(check))
    if args.report:
        written.add(args.report).write_text(json.dumps(result.to_dict(args.original, args.candidate), indent=2) + "\n")
    if args.html:
        _html(args.html, written, lambda report, bench: report.check_report(
            bench.CheckBench(f"cli:{args.original}:{args.candidate}", result)))
    return EXIT[check.verdict]


class _Progress:
    """A zoo run's progress on stderr: a bar redrawn in place on a terminal, one line per model in a log."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, row: ModelRow, done: int, total: int) -> None:
        from fold.zoo import ZOO_VERDICTS

        verdict = ZOO_VERDICTS[row.verdict]
        if not self.tty:
            print(f"zoo [{done}/{total}] {row.model}: {verdict} ({row.seconds:.1f} s)", file=self.stream, flush=True)
            return
        width = 30
        bar = "#" * (width * done // total) + "." * (width - width * done // total)
        end = "\n" if done == total else ""
        print(f"\r\x1b[2K[{bar}] {done}/{total} {row.model[-40:]}: {verdict}", end=end, file=self.stream, flush=True)


def _zoo(args: argparse.Namespace, written: _Written) -> int:
    if args.jobs < 1:
        raise FoldError(f"--jobs must be at least 1; received {args.jobs}.")
    if args.timeout <= 0:
        raise FoldError(f"--timeout must be a positive number of seconds; received {args.timeout:g}.")
    _verify_options(args)  # a bad --inputs-file or a clash of options fails here, before any worker starts
    from fold.zoo import Task, find_models, not_passed, run_local, run_ray, zoo_dict, zoo_table

    paths, others = find_models(args.dir)
    if not paths:
        raise FoldError(f"'{args.dir}' holds no model file ({suffix_list()}).")
    options = {"samples": args.samples, "seed": args.seed, "atol": args.atol, "shapes": dict(args.input_shape),
               "inputs_file": str(Path(args.inputs_file).resolve()) if args.inputs_file else None,
               **_load_options(args)}
    tasks = [Task(str(p.resolve()), p.relative_to(args.dir).as_posix(), options, args.peers) for p in paths]
    progress = _Progress(sys.stderr)
    if args.ray:
        rows = run_ray(tasks, args.ray, args.jobs, args.timeout, on_done=progress)
    else:
        rows = run_local(tasks, args.jobs, args.timeout, on_done=progress)
    status = zoo_exit(rows)
    print(zoo_table(rows))
    print()
    bad = not_passed(rows)
    ignored = f"; {others} other file(s) passed over" if others else ""
    print(f"{len(rows)} model(s) under {args.dir}{ignored}: {len(rows) - len(bad)} verified, {len(bad)} not")
    for row in bad:
        print(f"  {row.model}: {row.verdict}: {row.reason}")
    if args.json:
        written.add(args.json).write_text(json.dumps(zoo_dict(str(args.dir), rows, status), indent=2) + "\n")
    if args.html:
        from fold.zoo_html import zoo_html

        written.add(args.html).write_text(zoo_html(str(args.dir), rows, status))
    return status
