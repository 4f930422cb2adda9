"""The fuzz corpus (tests/fuzz_corpus.py) through the app's upload path, the command line in-process
and a real ``python -m fold``: every broken file gives one clear line naming it, within seconds.

A mutant that is still a valid model (a flip in padding, a timestamp, a weight value) may
load; that is allowed only for mutation entries (``MAY_LOAD``), and for fewer than 30 % of the corpus.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fold import cli
from fold.core.errors import FoldError
from fold.engine.pipeline import load
from fold.frontends.formats import check_model_file, format_for
from foldscope_app.workbench.workbench import upload_workbench
from tests.fuzz_corpus import LAMBDA_MARKER, corpus, corpus_ids

ROOT = Path(__file__).resolve().parents[1]
IDS = corpus_ids()
PER_ENTRY_S = 20.0  # generous: every entry takes well under a second on a laptop
MAX_MESSAGE = 300
#: What readers and parsers say among themselves, which a user's message must not repeat.
INTERNALS = re.compile(r"unpack_from|sblock|stored_eof|base_addr|H5F|flatbuffers?\.|struct\.error|0x[0-9a-f]{8,}")
#: Entries that upload through the path API only: directories, and files too big to read into memory.
PATH_ONLY_BYTES = 64 * 2**20

#: Mutations that may leave a valid model: flips of unchecked bytes and harmless rewrites.
MAY_LOAD = re.compile(r"flip|-valid$|missing-metadata|metadata-|bomb-declared|path-traversal")

def _params() -> list:
    return [pytest.param(i, id=i) for i in IDS]


@pytest.fixture(scope="module")
def entries(tmp_path_factory) -> dict[str, Path]:
    return dict(corpus(tmp_path_factory.mktemp("fuzz")))


def _assert_one_line(message: str, path: Path) -> None:
    assert "\n" not in message and "\r" not in message, f"multi-line message: {message!r}"
    assert 0 < len(message) < MAX_MESSAGE, f"message of {len(message)} characters: {message!r}"
    assert path.name in message, f"the message does not name '{path.name}': {message!r}"
    assert "Traceback" not in message, message
    assert not INTERNALS.search(message), f"library internals in the message: {message!r}"


def _check_side_effects(path: Path) -> None:
    """No code from a file ran, no archive member escaped its extraction directory."""
    corpus_dir = path.parent.parent
    assert not (corpus_dir / LAMBDA_MARKER).exists(), "code embedded in a model file was executed"
    for up in (corpus_dir, *list(corpus_dir.parents)[:3]):
        assert not (up / "foldscope_traversal.txt").exists(), f"an archive member was written to {up}"


def _library(path: Path) -> None:
    """The app's upload path for a file; the path API for directories and over-the-limit files."""
    if path.is_dir() or path.stat().st_size > PATH_ONLY_BYTES:
        with pytest.raises(FoldError) as info:
            check_model_file(path)
        _assert_one_line(str(info.value), path)
        load(path)
    else:
        upload_workbench(path.name, path.read_bytes())


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@contextlib.contextmanager
def terminal_warnings():
    """Warnings printed on stderr as a fresh ``python -m fold`` prints them, not collected by pytest
    (whose capture would hide a warning that breaks the one-line contract)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.filterwarnings("ignore", category=category)  # Python's defaults hide these
        warnings.showwarning = _print_warning
        yield


def _out_path(tmp_path: Path, path: Path) -> Path:
    fmt = format_for(path)
    return tmp_path / f"out{fmt.output_suffix if fmt else '.keras'}"


def test_corpus_is_large_and_covers_every_kind_of_damage():
    assert len(IDS) >= 200 and len(set(IDS)) == len(IDS)
    for kind in ("keras-truncated", "keras-flip-cdir", "keras-flip-config.json", "keras-flip-model.weights.h5",
                 "keras-config-invalid-json", "keras-config-shape", "keras-config-unknown", "keras-config-lambda",
                 "keras-config-nesting", "keras-zip-missing-config", "keras-zip-missing-weights", "h5-truncated",
                 "h5-flip", "h5-no-model-config", "pb-truncated", "pb-flip", "tflite-truncated", "tflite-flip",
                 "onnx-truncated", "onnx-flip", "onnx-external-data", "circle-truncated", "circle-flip",
                 "circle-code", "circle-is-tflite",
                 "empty.", "random-", "text.", "directory-named", "unsupported-suffix"):
        assert sum(i.startswith(kind) for i in IDS) >= 1, kind


@pytest.mark.parametrize("entry", _params())
def test_library_refuses_with_one_line(entry, entries):
    path = entries[entry]
    start = time.perf_counter()
    try:
        _library(path)
        outcome = "loaded"
    except FoldError as exc:  # any other exception fails the test, with its traceback
        _assert_one_line(str(exc), path)
        outcome = "refused"
    elapsed = time.perf_counter() - start
    assert elapsed < PER_ENTRY_S, f"{entry} took {elapsed:.1f} s (bound {PER_ENTRY_S} s)"
    _check_side_effects(path)
    assert outcome == "refused" or MAY_LOAD.search(entry), f"{entry} should be refused but loaded"


@pytest.mark.parametrize("entry", _params())
def test_command_line_exits_2_with_one_line(entry, entries, tmp_path, capfd):
    path = entries[entry]
    start = time.perf_counter()
    with terminal_warnings():
        code = cli.main([str(path), "-o", str(_out_path(tmp_path, path))])
    elapsed = time.perf_counter() - start
    out, err = capfd.readouterr()
    assert elapsed < PER_ENTRY_S, f"{entry} took {elapsed:.1f} s (bound {PER_ENTRY_S} s)"
    assert "Traceback" not in err, err
    _check_side_effects(path)
    if code == cli.EXIT_BAD_INPUT:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("foldscope: error: "), f"stderr: {err!r}"
        assert out == "", f"stdout on a refused file: {out!r}"
        _assert_one_line(lines[0], path)
    else:
        assert code in (cli.EXIT_OK, cli.EXIT_MISMATCH), f"exit code {code!r}; stderr: {err!r}"
        assert MAY_LOAD.search(entry), f"{entry} should be refused but the command line exited {code}"


#: One of each path through the code, run as a user would: a fresh ``python -m fold``.
SUBPROCESS_SAMPLE = (
    "empty.keras", "text.h5", "random-4096B.pb", "directory-named.keras", "unsupported-suffix-model.pt",
    "oversized-sparse.keras", "keras-truncated-no-eocd", "keras-zip-missing-config", "keras-config-lambda-layer",
    "keras-config-nesting-list-100k", "keras-zip-weights-of-other-model", "h5-no-model-config", "h5-lambda-layer",
    "pb-is-keras-zip", "tflite-flip-0.419-bit6", "onnx-is-tflite", "onnx-external-data-.._outside.bin",
    "circle-is-tflite", "circle-code-two-operators",
)


def _run_cli(path: Path, out: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "FOLDSCOPE"))}
    env["PYTHONPATH"] = str(ROOT)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fold", str(path), "-o", str(out)], capture_output=True,
                          text=True, env=env, timeout=120)
    return proc, time.perf_counter() - start


@pytest.fixture(scope="module")
def terminal_runs(entries, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, float]]:
    """Every sampled entry through ``python -m fold``, three processes at a time."""
    out_dir = tmp_path_factory.mktemp("fuzz_out")
    jobs = {entry: (entries[entry], out_dir / f"{n}{_out_path(out_dir, entries[entry]).suffix}")
            for n, entry in enumerate(SUBPROCESS_SAMPLE)}
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {entry: pool.submit(_run_cli, *job) for entry, job in jobs.items()}
        return {entry: future.result() for entry, future in futures.items()}


@pytest.mark.parametrize("entry", [p for p in _params() if p.values[0] in SUBPROCESS_SAMPLE])
def test_no_traceback_reaches_the_terminal(entry, entries, terminal_runs):
    path = entries[entry]
    proc, _ = terminal_runs[entry]
    lines = proc.stderr.splitlines()
    # No bound on time here: a fresh process imports TensorFlow, three at a time, and on a busy machine that
    # alone took 89 s; a hang is _run_cli's timeout, and speed is for bench/.
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}; stderr {proc.stderr!r}"
    assert len(lines) == 1 and lines[0].startswith("foldscope: error: "), f"stderr: {proc.stderr!r}"
    assert proc.stdout == "", proc.stdout
    _assert_one_line(lines[0], path)


def test_most_of_the_corpus_is_refused(entries):
    """Which mutants still load (run with -s to see them): only ``MAY_LOAD`` entries may, as the tests
    above hold every other one to a refusal, and most damage must be detected: a corpus where most
    mutants load tests nothing. Computed here, on its own, whatever else ran."""
    loaded = []
    for entry in (i for i in IDS if MAY_LOAD.search(i)):
        with contextlib.suppress(FoldError):
            _library(entries[entry])
            loaded.append(entry)
    print(f"{len(IDS) - len(loaded)} refused, {len(loaded)} still valid: {', '.join(loaded)}")
    assert len(loaded) < 0.3 * len(IDS), loaded
