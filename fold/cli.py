"""The ``foldscope`` command (``python -m fold`` is the same): ``foldscope INPUT [options]`` folds and
verifies a model; ``foldscope check ORIGINAL CANDIDATE [options]`` verifies a fold any other tool made;
``foldscope zoo DIR [options]`` folds and verifies every model under a folder (``fold.tools.zoo``; its exit
status: ``ZOO_ORDER``); ``foldscope app`` starts the page (Streamlit, foldscope's app extra).

INPUT is any format of ``fold.frontends.formats.FRONTENDS`` (Keras .keras/.h5/.hdf5, a frozen
TensorFlow graph .pb, TFLite .tflite, ONNX .onnx, circle .circle); the folded model is written in the same
format (Keras models as .keras).

Exit status: 0 verified (every folded layer and every output within float error; with
``--no-verify``: folded and written, nothing run); 1 a mismatch; 2 bad input (missing, unreadable, corrupt or unsupported file or option, a model
foldscope cannot run), with one line on stderr, no traceback (FOLDSCOPE_DEBUG=1 shows one) and
no output file left behind; 3 inconclusive (nothing failed, but the inputs left some folded layer
unexercised: pass inputs that exercise it). A feature whose optional packages are not installed is
one such line too, with the pip command that adds them (``fold.core.errors.MissingExtra``).

``--html`` writes the app's view of the run (``fold.outputs.html.fold_page``: the page's download of the same
fold is the same file).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from fold.core.errors import FoldError, internal_error, needs, plain, require
from fold.core.verification import SAMPLES, read_arrays
from fold.frontends.formats import FRONTENDS, LOAD_OPTIONS, Format, check_model_file, suffix_list
from fold.engine.pipeline import default_output
from fold.tools.zoo import ROOT, TIMEOUT_S, ModelRow

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT, EXIT_INCONCLUSIVE = 0, 1, 2, 3
EXIT = {"pass": EXIT_OK, "fail": EXIT_MISMATCH, "inconclusive": EXIT_INCONCLUSIVE}
#: A zoo run's exit status is the first of these any model has: a model without a verdict at all
#: (unreadable, a crash, a timeout: it may hide a mismatch too), then a mismatch, then inconclusive.
ZOO_ORDER = (EXIT_BAD_INPUT, EXIT_MISMATCH, EXIT_INCONCLUSIVE, EXIT_OK)
#: The formats a fold can also be exported to (a flag each, ``--tflite``), with the formats converted to them.
CONVERSIONS: dict[str, list[Format]] = {target: [f for f in FRONTENDS.values() if f.converts_to == target]
                                         for target in dict.fromkeys(f.converts_to for f in FRONTENDS.values())
                                         if target}


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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"foldscope {version('foldscope')}"
    except PackageNotFoundError:
        return f"foldscope (not installed: run from {ROOT})"


def fold_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="foldscope",
        description="Fold BatchNorm layers into the conv/dense/transposed-conv layers before them, "
                    "write the folded model and verify it computes the same outputs. "
                    "'foldscope check ORIGINAL CANDIDATE' verifies a fold another tool made; "
                    "'foldscope zoo DIR' folds and verifies every model under a folder; "
                    "'foldscope app' starts the page.",
        epilog="Exit status: 0 verified, 1 mismatch, 2 bad input, 3 inconclusive (pass inputs that exercise "
               "every folded layer).",
    )
    parser.add_argument("input", help=f"a model file: {suffix_list()}")
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-o", "--output", help="folded model path (default: INPUT_folded with the format's suffix)")
    parser.add_argument("--no-verify", action="store_true",
                        help="write the fold without running either model (exit 0 then means folded, not verified; "
                             "the report's verification is null): verify it later with 'foldscope check'")
    _verification_options(parser)
    for target, sources in CONVERSIONS.items():  # --tflite: TensorFlow's converter, for Keras models
        parser.add_argument(f"--{target}", help=f"{' or '.join(f.label for f in sources)} only: also export the folded "
                                                f"model as {FRONTENDS[target].output_suffix} to this path")
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
        prog="foldscope check",
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
        prog="foldscope zoo",
        description="Fold and verify every model file under DIR, each in a process of its own, with the same "
                    "verification as a single fold; --peers adds each format's peer tools, checked as "
                    "'foldscope check' checks a fold. Writes no model: a table on stdout, --json, --html and "
                    "--junit-xml.",
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
    parser.add_argument("--junit-xml", metavar="PATH",
                        help="write JUnit XML for CI: one test case per model file, a failure, error or skipped "
                             "(inconclusive) element with its reason")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="send each model to a Ray cluster as a task: 'auto' (a running cluster), 'local' (a new "
                             "local instance) or ray://HOST:PORT; needs foldscope's ray extra")
    _input_options(parser)
    return parser


def app_parser() -> argparse.ArgumentParser:
    """``foldscope app [STREAMLIT OPTIONS]``: every option but --help goes to 'streamlit run' as it is."""
    return argparse.ArgumentParser(
        prog="foldscope app", usage="foldscope app [-h] [STREAMLIT OPTIONS]", allow_abbrev=False,
        description="Start the page (a Streamlit server, on http://localhost:8501 unless told otherwise) from the "
                    "installed package; needs foldscope's app extra. Every other option goes to 'streamlit run' as "
                    "it is (--server.port 8502, --server.headless true, ...; default --server.address localhost).",
        epilog="Exit status: Streamlit's, or 2 when the page or Streamlit is not installed.",
    )


#: Options whose packages are an extra (its name, the modules it brings), checked before any model is read.
EXTRA_OPTIONS = {"html": ("html", ("py_mini_racer", "matplotlib")), "model_explorer": ("model-explorer", ("model_explorer",)),
                 "ray": ("ray", ("ray",))}


def require_extras(args: argparse.Namespace) -> None:
    """``MissingExtra`` for the first option given whose extra is not installed."""
    for option, (extra, modules) in EXTRA_OPTIONS.items():
        if getattr(args, option, None):
            require(extra, f"--{option.replace('_', '-')}", *modules)


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
    if argv[:1] == ["app"]:
        return _app(app_parser().parse_known_args(argv[1:])[1])
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
        require_extras(args)
        output_folders(args)
        return command(args, written)
    except Exception as exc:  # the contract: one line, exit 2, never a traceback, no file left behind
        written.remove()
        if os.environ.get("FOLDSCOPE_DEBUG"):
            raise
        if isinstance(exc, FoldError):
            return _fail(str(exc))
        return _fail(internal_error(exc, _files(args)))


#: The options that name a file or folder the run writes (``--tflite`` and the other conversions apart).
OUTPUTS = ("output", "report", "html", "json", "junit_xml", "quant_report", "model_explorer", *CONVERSIONS)


def output_folders(args: argparse.Namespace) -> None:
    """A FoldError, before any model is read, for an output whose folder does not exist."""
    for name in OUTPUTS:
        value = getattr(args, name, None)
        if value and not Path(value).parent.is_dir():
            raise FoldError(f"--{name.replace('_', '-')} '{value}': the folder '{Path(value).parent}' does not "
                            "exist; create it first.")


def _files(args: argparse.Namespace) -> str:
    """The file (or files, or folder) a command works on, quoted, for its error line."""
    if getattr(args, "candidate", None):
        return f"'{args.original}' and '{args.candidate}'"
    return f"'{getattr(args, 'input', None) or getattr(args, 'dir', '')}'"


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
    from fold.outputs.report import quant_text
    from fold.tools.quantization import quant_report

    start = time.perf_counter()
    report = quant_report(result, checked)
    result.timings_s["quantization"] = time.perf_counter() - start
    print(quant_text(report))
    figures = report.to_dict()
    if args.int8:
        from fold.outputs.report import int8_text
        from fold.tools.int8_report import int8_report

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
        from fold.engine.pipeline import write

        path = cle_output(output, fmt)
        for file in write(result.frontend, report.equalized if report.equalized is not None else result.folded,
                          path):
            written.add(file)
        pairs = ", ".join(f"{a} -> {b}" for a, b in report.pairs) if report.pairs else \
            "none (no folded layer is followed, through ReLU or nothing, by a layer it alone feeds)"
        print(f"cross-layer equalization of {pairs}; equalized model written to {path}")


def _html(path: str, written: _Written, build: Callable[[], bytes]) -> None:
    """``--html``: the report the page offers for download (``fold.outputs.html.fold_page``), ``build()``
    with the html extra's packages (mini-racer for the graph's layout, matplotlib)."""
    with needs("html", "--html"):
        report = build()
    written.add(path).write_bytes(report)
    print(f"HTML report written to {path}")


def _fold(args: argparse.Namespace, written: _Written) -> int:
    fmt = check_model_file(args.input)  # fail fast, before TensorFlow starts up
    for target, sources in CONVERSIONS.items():
        if getattr(args, target) and fmt.converts_to != target:
            raise FoldError(f"--{target} exports {' or '.join(f.label for f in sources)} models; "
                            f"'{Path(args.input).name}' is a {fmt.label} file.")
    if args.int8:
        from fold.tools.int8_report import check_runtime

        check_runtime(fmt, None if args.int8 == "auto" else args.int8)
    asked = [name for name in RUNS if getattr(args, name)] if args.no_verify else []
    if asked:
        raise FoldError(f"--{asked[0].replace('_', '-')} needs the models run; --no-verify runs neither.")
    options = {} if args.no_verify else _verify_options(args)
    from fold.engine.pipeline import fold_files
    from fold.outputs.report import fold_text, per_layer_text, report_dict

    run = fold_files(args.input, args.output or default_output(args.input, fmt), args.samples, args.seed,
                     no_verify=args.no_verify, **_load_options(args), **options)
    for path in run.files:
        written.add(path)
    result, check = run.result, run.verification
    if fmt.converts_to and getattr(args, fmt.converts_to):
        converted = fmt.part("converter").convert(result.folded)
        FRONTENDS[fmt.converts_to].frontend().write(converted, written.add(getattr(args, fmt.converts_to)))
    print(fold_text(run))
    if args.per_layer:
        print(per_layer_text(check))
    if args.quant_report or args.cle or args.int8:
        _quantization(args, result, run.checked, run.output, fmt, written)
    if args.model_explorer:
        from fold.outputs.model_explorer import export

        existed = Path(args.model_explorer).exists()
        files = export(result, args.model_explorer, check.layers if check else None)
        if not existed:
            written.add(args.model_explorer)
        print(f"Model Explorer files written to {args.model_explorer}: {', '.join(p.name for p in files)}")
    if args.report:
        report = report_dict(args.input, run.output, result, check, args.per_layer)
        written.add(args.report).write_text(json.dumps(report, indent=2) + "\n")
    if args.html:
        def build() -> bytes:
            from fold.outputs.html.fold_page import fold_report

            return fold_report(result, run.checked)

        _html(args.html, written, build)
    return EXIT_OK if check is None else EXIT[check.verdict]


#: Options that need the models run, refused with --no-verify.
RUNS = ("per_layer", "html", "quant_report", "cle", "int8", *CONVERSIONS)


def _check(args: argparse.Namespace, written: _Written) -> int:
    for path in (args.original, args.candidate):
        check_model_file(path)
    options = _verify_options(args)
    from fold.tools.check import check_files
    from fold.outputs.report import check_text, per_layer_text

    result = check_files(args.original, args.candidate, args.samples, args.seed,
                         **_load_options(args), **options)
    check = result.checked.verification
    print(check_text(result))
    if args.per_layer:
        print(per_layer_text(check))
    if args.report:
        written.add(args.report).write_text(json.dumps(result.to_dict(args.original, args.candidate), indent=2) + "\n")
    if args.html:
        from fold.outputs.html.fold_page import check_report

        _html(args.html, written, lambda: check_report(result))
    return EXIT[check.verdict]


class _Progress:
    """A zoo run's progress on stderr: tqdm's bar on a terminal (models done, the rate, the time left, the
    last model's verdict), one line per model in a log."""

    def __init__(self, stream, total: int) -> None:
        self.stream = stream
        self.bar = None
        if stream.isatty():
            from tqdm import tqdm

            # mininterval 0: every model's verdict is drawn as it comes (a model takes seconds, not microseconds)
            self.bar = tqdm(total=total, desc="zoo", unit="model", file=stream, dynamic_ncols=True, mininterval=0)

    def __call__(self, row: ModelRow, done: int, total: int) -> None:
        from fold.tools.zoo import ZOO_VERDICTS

        verdict = ZOO_VERDICTS[row.verdict]
        if self.bar is None:
            print(f"zoo [{done}/{total}] {row.model}: {verdict} ({row.seconds:.1f} s in all)", file=self.stream, flush=True)
            return
        self.bar.set_postfix_str(f"{row.model[-40:]}: {verdict}", refresh=False)
        self.bar.update(done - self.bar.n)
        if done == total:
            self.bar.close()


def _zoo(args: argparse.Namespace, written: _Written) -> int:
    if args.jobs < 1:
        raise FoldError(f"--jobs must be at least 1; received {args.jobs}.")
    if args.timeout <= 0:
        raise FoldError(f"--timeout must be a positive number of seconds; received {args.timeout:g}.")
    _verify_options(args)  # a bad --inputs-file or a clash of options fails here, before any worker starts
    from fold.outputs.report import zoo_table
    from fold.tools.zoo import Task, find_models, not_passed, run_local, run_ray, zoo_dict

    paths, others = find_models(args.dir)
    if not paths:
        raise FoldError(f"'{args.dir}' holds no model file ({suffix_list()}).")
    options = {"samples": args.samples, "seed": args.seed, "atol": args.atol, "shapes": dict(args.input_shape),
               "inputs_file": str(Path(args.inputs_file).resolve()) if args.inputs_file else None,
               **_load_options(args)}
    if args.peers:
        from fold.frontends.formats import format_for
        from fold.tools.peer_runs import require_peers

        require_peers(sorted({format_for(p).name for p in paths}))
    tasks = [Task(str(p.resolve()), p.relative_to(args.dir).as_posix(), options, args.peers) for p in paths]
    progress = _Progress(sys.stderr, len(tasks))
    started, start = datetime.now(timezone.utc), time.perf_counter()
    if args.ray:
        rows = run_ray(tasks, args.ray, args.jobs, args.timeout, on_done=progress)
    else:
        rows = run_local(tasks, args.jobs, args.timeout, on_done=progress)
    seconds = time.perf_counter() - start
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
        from fold.outputs.html.zoo_page import zoo_html

        written.add(args.html).write_text(zoo_html(str(args.dir), rows, status))
    if args.junit_xml:
        from fold.outputs.junit import zoo_junit

        settings = {"samples": args.samples, "seed": args.seed, "atol": args.atol, "peers": args.peers}
        written.add(args.junit_xml).write_text(zoo_junit(str(args.dir), rows, seconds=seconds, started=started,
                                                         properties=settings))
    return status


def page_script() -> Path:
    """The page's Streamlit script: the installed ``foldscope_app/page.py``, else a checkout's ``app.py``."""
    spec = importlib.util.find_spec("foldscope_app")
    if spec is not None and spec.origin is not None and (Path(spec.origin).parent / "page.py").is_file():
        return Path(spec.origin).parent / "page.py"
    if (ROOT / "app.py").is_file():
        return ROOT / "app.py"
    raise FoldError("This foldscope has no page (foldscope_app is not installed): pip install 'foldscope[app]'.")


def _app(streamlit_options: list[str]) -> int:
    """``foldscope app``: this process becomes ``streamlit run`` on the page (so that a signal meant for the
    server reaches it); where a process cannot be replaced (Windows), the server is its child."""
    try:
        require("app", "The page (foldscope app)", "streamlit")
        page = page_script()
    except FoldError as exc:
        return _fail(str(exc))
    options = list(streamlit_options)
    if not any(o.startswith("--server.address") for o in options):
        options[:0] = ["--server.address", "localhost"]  # the page reads files: not for the whole network unless asked
    command = [sys.executable, "-m", "streamlit", "run", str(page), *options]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    sys.stdout.flush()
    if os.name == "posix":
        os.execve(sys.executable, command, env)
    return subprocess.call(command, env=env)
