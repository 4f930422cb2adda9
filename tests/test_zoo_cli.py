"""``python -m fold zoo DIR`` as a contract: a zoo this file builds (the demo zoo's Keras and ONNX
models, PaddleOCR's real detector, a corrupt file) folded and verified in worker processes, the
table, the JSON rows and the HTML page, the exit status, the same rows at any --jobs and through a
local Ray instance, the peers' rows, and a worker's crash or hang as one row with its reason."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import onnx
import pytest

from fold.cli import _Progress, zoo_exit
from fold.engine.pipeline import fold_file, verify
from fold.tools.check import check_files
from fold.tools.zoo import ModelRow, Task, ToolRow, run_local, run_task, verdict_row
from foldscope_app.examples import onnx_zoo, model_zoo
from tests.helpers import ONNX, mutated, run_cli
from tests.real_models import real_model

#: Every model file of the zoo, by its path below the zoo's folder, and its verdict.
EXPECTED = {"keras/dcgan.keras": "pass", "keras/unet.keras": "pass", "onnx/broken.onnx": "error",
            "onnx/dcgan.onnx": "pass", "onnx/head.onnx": "pass", "real/ppocr_det.onnx": "pass"}
BROKEN = "'broken.onnx' is not a valid ONNX model"
ROOT = Path(__file__).resolve().parents[1]


def _build(root: Path, names: set[str]) -> Path:
    builders = {
        "keras/dcgan.keras": lambda p: model_zoo.dcgan_generator(latent=8, base=8).save(p),
        "keras/unet.keras": lambda p: model_zoo.unet(size=16, base=4).save(p),
        "onnx/dcgan.onnx": lambda p: onnx.save(onnx_zoo.dcgan_generator(latent=8, base=8), p),
        "onnx/head.onnx": lambda p: onnx.save(onnx_zoo.text_detector_head(channels=8), p),
        "real/ppocr_det.onnx": lambda p: shutil.copy(real_model("ppocr_det"), p),
        "onnx/broken.onnx": lambda p: p.write_bytes(b"\x08\x07 not a model, a corrupt file"),
    }
    for name in sorted(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        builders[name](root / name)
    (root / "notes.txt").write_text("not a model: passed over\n")
    return root


def _listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def _rows(report: Path) -> list[dict]:
    """The JSON rows without their times (which no two runs share)."""
    strip = lambda row: {k: v for k, v in row.items() if "seconds" not in k}  # noqa: E731
    return [{**strip(m), "peers": [strip(p) for p in m["peers"]]} for m in json.loads(report.read_text())["models"]]


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory) -> Path:
    return _build(tmp_path_factory.mktemp("zoo"), set(EXPECTED))


@pytest.fixture(scope="module")
def zoo_run(zoo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo_out")
    before = _listing(zoo_dir)
    proc = run_cli("zoo", zoo_dir, "--samples", "2", "--jobs", "2", "--json", out / "zoo.json", "--html",
                   out / "zoo.html", "--junit-xml", out / "zoo.xml")  # the JUnit XML beside the JSON: zoo.xml
    return proc, out / "zoo.json", out / "zoo.html", before


def test_the_zoo_folds_every_model_and_lists_the_corrupt_one_with_exit_2(zoo_run, zoo_dir):
    proc, report, _, before = zoo_run
    assert proc.returncode == 2, proc.stderr
    data = json.loads(report.read_text())
    rows = {m["model"]: m for m in data["models"]}
    assert list(rows) == sorted(EXPECTED) and {m: r["verdict"] for m, r in rows.items()} == EXPECTED
    assert rows["onnx/broken.onnx"]["reason"].startswith(BROKEN) and rows["onnx/broken.onnx"]["bn_left"] is None
    assert (rows["keras/unet.keras"]["bn_before"], rows["keras/unet.keras"]["bn_left"]) == (12, 0)
    assert (rows["real/ppocr_det.onnx"]["bn_before"], rows["real/ppocr_det.onnx"]["bn_left"]) == (3, 0)
    for name, row in rows.items():
        assert row["peers"] == [] and row["format"] == (None if name == "onnx/broken.onnx" else name.split(".")[-1])
        assert row["verdict"] == "error" or (row["max_abs_diff"] < 1e-5 and "Every folded layer" in row["reason"])
    assert data["not_passed"] == ["onnx/broken.onnx"] and data["exit_status"] == 2
    assert data["counts"] == {"pass": 5, "fail": 0, "inconclusive": 0, "error": 1}
    # the table: a line per model, foldscope's, then the models that did not pass, with their reasons
    table = proc.stdout.splitlines()
    assert table[0].split() == ["model", "tool", "BNs", "left", "verdict", "max", "abs", "diff", "fold", "time"]
    lines = {line.split()[0]: line.split() for line in table[2:2 + len(EXPECTED)]}
    assert set(lines) == set(EXPECTED) and all(cells[1] == "foldscope" for cells in lines.values())
    assert lines["keras/unet.keras"][2:6] == ["0", "of", "12", "PASS"] and lines["onnx/broken.onnx"][2] == "ERROR"
    assert f"  onnx/broken.onnx: error: {BROKEN}" in proc.stdout and "1 other file(s) passed over" in proc.stdout
    # not a terminal: one progress line per model, no bar; the zoo's folder is left as it was
    progress = [line for line in proc.stderr.splitlines() if line.startswith("zoo [")]
    assert len(progress) == len(EXPECTED) and "\r" not in proc.stderr, proc.stderr
    assert any(line.startswith("zoo [") and "onnx/broken.onnx: ERROR" in line for line in progress)
    assert _listing(zoo_dir) == before


class _Rows(HTMLParser):
    """The page's table rows (their data- attributes and cell texts) and every external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.external: list[str] = []
        self.in_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-model" in attrs:
            self.rows.append({**attrs, "cells": []})
        elif tag == "td" and self.rows:
            self.rows[-1]["cells"].append("")
            self.in_cell = True
        self.external += [v for k, v in attrs.items() if k in ("src", "href") and v]
        if tag in ("script", "link", "img", "iframe"):
            self.external.append(tag)

    def handle_endtag(self, tag):
        self.in_cell = self.in_cell and tag != "td"

    def handle_data(self, data):
        if self.in_cell:
            self.rows[-1]["cells"][-1] += data


def test_the_html_page_is_the_table_offline_with_verdicts_coloured_and_reasons(zoo_run):
    _, report, page, _ = zoo_run
    parser = _Rows()
    text = page.read_text()
    parser.feed(text)
    assert parser.external == []  # nothing to fetch: inline CSS, no script
    rows = {r["data-model"]: r for r in parser.rows}
    assert {m: r["data-verdict"] for m, r in rows.items()} == EXPECTED
    assert all(r["data-tool"] == "foldscope" for r in parser.rows) and len(parser.rows) == len(EXPECTED)
    broken = rows["onnx/broken.onnx"]["cells"]
    assert broken[0] == "onnx/broken.onnx" and broken[3] == "ERROR" and broken[6].startswith(BROKEN)
    assert rows["keras/unet.keras"]["cells"][2:4] == ["0 of 12", "PASS"] and rows["keras/unet.keras"]["cells"][6] == ""
    assert ".v-error{" in text and ".v-pass{" in text and 'class="v v-error"' in text
    assert "6 model(s): 5 pass, 1 error; exit status 2." in text


def _cases(junit: Path) -> dict[str, ET.Element]:
    """The JUnit document's test cases by name, after checking the document's frame: one suite, whose
    counts are the cases' and the root's."""
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    cases = suite.findall("testcase")
    for key, element in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        assert int(suite.get(key)) == int(root.get(key)) == sum(c.find(element) is not None for c in cases)
    assert int(suite.get("tests")) == len(cases) and float(suite.get("time")) > 0
    return {c.get("name"): c for c in cases}


def test_the_junit_xml_has_a_case_per_model_with_its_verdict_and_reason(zoo_run):
    proc, report, _, _ = zoo_run
    cases = _cases(report.with_name("zoo.xml"))
    rows = {m["model"]: m for m in json.loads(report.read_text())["models"]}
    assert list(cases) == list(rows) == sorted(EXPECTED)
    for name, case in cases.items():
        details = [child.tag for child in case if child.tag != "system-out"]
        assert details == ([] if EXPECTED[name] == "pass" else ["error"]), (name, details)
        assert case.get("classname") == "foldscope.zoo" and abs(float(case.get("time")) - rows[name]["wall_seconds"]) < 1e-3
        assert name in case.find("system-out").text
    error = cases["onnx/broken.onnx"].find("error")
    assert error.get("message") == rows["onnx/broken.onnx"]["reason"] == error.text and error.get("type") == "error"


def test_one_job_gives_the_rows_two_jobs_give(zoo_run, zoo_dir, tmp_path):
    proc = run_cli("zoo", zoo_dir, "--samples", "2", "--jobs", "1", "--json", tmp_path / "one.json")
    assert proc.returncode == 2, proc.stderr
    assert _rows(tmp_path / "one.json") == _rows(zoo_run[1])


def test_the_peers_rows_for_onnx_and_keras(tmp_path):
    root = _build(tmp_path / "zoo", {"keras/dcgan.keras", "onnx/head.onnx"})
    proc = run_cli("zoo", root, "--samples", "2", "--peers", "--json", tmp_path / "peers.json", "--jobs", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {m["model"]: m for m in json.loads((tmp_path / "peers.json").read_text())["models"]}
    keras_peers = {p["tool"].split()[0]: p for p in rows["keras/dcgan.keras"]["peers"]}
    onnx_peers = {p["tool"].split()[0]: p for p in rows["onnx/head.onnx"]["peers"]}
    assert list(keras_peers) == ["tensorflow"]
    assert list(onnx_peers) == ["onnxsim", "onnxslim", "onnxoptimizer", "onnxruntime"]
    for peer in [*keras_peers.values(), *onnx_peers.values()]:
        assert peer["verdict"] == "pass", peer
        assert peer["reason"] and peer["max_abs_diff"] < 1e-5 and peer["seconds"] >= 0 and peer["action"]
    # the converter folds every BN; onnxoptimizer's fuse_bn_into_conv only the Conv's, not the two ConvTranspose's
    assert keras_peers["tensorflow"]["bn_left"] == 0 and onnx_peers["onnxsim"]["bn_left"] == 0
    assert onnx_peers["onnxslim"]["bn_left"] == 0
    assert onnx_peers["onnxoptimizer"]["bn_left"] == 2 and rows["onnx/head.onnx"]["bn_left"] == 0
    lines = [line.split() for line in proc.stdout.splitlines()[2:8]]
    assert [(cells[0], cells[1]) for cells in lines] == [
        ("keras/dcgan.keras", "foldscope"), ("keras/dcgan.keras", "tensorflow"), ("onnx/head.onnx", "foldscope"),
        ("onnx/head.onnx", "onnxsim"), ("onnx/head.onnx", "onnxslim"), ("onnx/head.onnx", "onnxoptimizer")]


def test_a_mismatch_makes_the_zoo_exit_1(tmp_path):
    """--atol 0 asks for bit-identical outputs, which a fold's reordered float arithmetic does not give:
    the same verification option as a single fold, here a failed fold of every model."""
    root = _build(tmp_path / "zoo", {"onnx/head.onnx"})
    proc = run_cli("zoo", root, "--samples", "2", "--atol", "0", "--json", tmp_path / "z.json", "--junit-xml",
                   tmp_path / "z.xml")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [row] = json.loads((tmp_path / "z.json").read_text())["models"]
    assert row["verdict"] == "fail" and row["reason"] and row["max_abs_diff"] > 0
    assert "  onnx/head.onnx: fail: " in proc.stdout
    failure = _cases(tmp_path / "z.xml")["onnx/head.onnx"].find("failure")
    assert failure.get("message") == row["reason"] and failure.get("type") == "fail"


def test_an_input_shape_applies_to_the_models_with_that_input(tmp_path):
    """A zoo's models have different inputs: --input-shape z=... sets the generator's and leaves the
    head, which has no input z, to its own (a single fold would refuse the name)."""
    root = _build(tmp_path / "zoo", {"onnx/dcgan.onnx", "onnx/head.onnx"})
    proc = run_cli("zoo", root, "--samples", "2", "--input-shape", "z=3x8", "--json", tmp_path / "z.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [r["verdict"] for r in json.loads((tmp_path / "z.json").read_text())["models"]] == ["pass", "pass"]
    wrong = run_cli("zoo", root, "--samples", "2", "--input-shape", "z=3x5")  # the generator's latent is 8
    assert wrong.returncode == 2 and "  onnx/dcgan.onnx: error: " in wrong.stdout
    assert "onnx/head.onnx: error" not in wrong.stdout


def _head_rows(tmp_path: Path) -> tuple[ModelRow, ModelRow, ModelRow]:
    """A passing, a failing and an unreadable model's rows, each from a real verification or file."""
    proto = onnx_zoo.text_detector_head(channels=8)
    onnx.save(proto, tmp_path / "head.onnx")
    result = fold_file(tmp_path / "head.onnx")
    passed = verdict_row("foldscope", verify(result, 2).verification, result.bn_after, 0.0)
    (tmp_path / "broken.onnx").write_bytes(ONNX.to_bytes(mutated(ONNX, result.folded, "up1", "kernel", 1, 1.05)))
    check = check_files(tmp_path / "head.onnx", tmp_path / "broken.onnx", 2)
    failed = verdict_row("foldscope", check.checked.verification, check.bn_candidate, 0.0)
    assert (passed.verdict, failed.verdict) == ("pass", "fail") and "'up1'" in failed.reason
    (tmp_path / "empty.onnx").write_bytes(b"")
    unreadable = run_task(Task(str(tmp_path / "empty.onnx"), "empty.onnx", {}))  # judged without a worker
    assert unreadable.verdict == "error" and unreadable.reason == "'empty.onnx' is empty."
    return ModelRow("head.onnx", "onnx", 3, passed), ModelRow("broken.onnx", "onnx", 3, failed), unreadable


def test_the_exit_status_is_the_worst_of_the_models_folds(tmp_path):
    passed, failed, unreadable = _head_rows(tmp_path)
    inconclusive = ModelRow("quiet.onnx", "onnx", 1, ToolRow("foldscope", "inconclusive", "a channel is constant"))
    assert zoo_exit([]) == zoo_exit([passed]) == 0
    assert zoo_exit([passed, inconclusive]) == 3
    assert zoo_exit([inconclusive, failed, passed]) == 1
    assert zoo_exit([failed, unreadable, inconclusive]) == zoo_exit([unreadable]) == 2
    # a peer's failure is the peer's row: the model's own fold decides
    peer_failed = ModelRow("head.onnx", "onnx", 3, passed.fold, [failed.fold])
    assert zoo_exit([peer_failed]) == 0


#: A worker that crashes (SIGSEGV) on "crash.onnx", crashes inside its first peer on "peer_crash.onnx",
#: hangs on "hang.onnx" and is the real worker otherwise: real processes, really killed.
WORKER = """
import dataclasses, json, os, runpy, signal, sys, time
task = json.loads(sys.argv[1])
if task["name"] == "crash.onnx":
    os.kill(os.getpid(), signal.SIGSEGV)
if task["name"] == "hang.onnx":
    time.sleep(120)
if task["name"] == "peer_crash.onnx":
    import fold.tools.peer_runs
    first, *rest = fold.tools.peer_runs.PEERS_BY_FORMAT["onnx"]
    crash = lambda model: os.kill(os.getpid(), signal.SIGSEGV)
    fold.tools.peer_runs.PEERS_BY_FORMAT["onnx"] = (dataclasses.replace(first, make=crash), *rest)
sys.argv = ["fold.tools.zoo_worker", *sys.argv[1:]]
runpy.run_module("fold.tools.zoo_worker", run_name="__main__")
"""


def test_a_crashed_or_hung_worker_is_one_row_with_its_reason(tmp_path):
    onnx.save(onnx_zoo.text_detector_head(channels=8), tmp_path / "head.onnx")
    options = {"samples": 2, "seed": 0}
    tasks = [Task(str(tmp_path / "head.onnx"), name, options, peers=name == "peer_crash.onnx")
             for name in ("crash.onnx", "head.onnx", "peer_crash.onnx")]
    heard = []
    rows = run_local(tasks, jobs=3, timeout=300, worker=[sys.executable, "-c", WORKER],
                     on_done=lambda row, done, total: heard.append((row.model, done, total)))
    assert [r.model for r in rows] == ["crash.onnx", "head.onnx", "peer_crash.onnx"]
    assert sorted(model for model, _, _ in heard) == [t.name for t in tasks]
    assert [(done, total) for _, done, total in heard] == [(1, 3), (2, 3), (3, 3)]
    crash, head, peer_crash = rows
    assert crash.verdict == "error" and crash.reason == f"the worker crashed (signal {int(signal.SIGSEGV)}, SIGSEGV)"
    assert head.verdict == "pass" and head.peers == []
    # foldscope's row stands; the peer that crashed says so, the ones after it were not run
    assert peer_crash.verdict == "pass" and [p.verdict for p in peer_crash.peers] == ["error"] * 4
    assert peer_crash.peers[0].tool.startswith("onnxsim") and peer_crash.peers[0].reason == crash.reason
    assert peer_crash.peers[1].reason == f"not run: {crash.reason} in {peer_crash.peers[0].tool}"
    assert zoo_exit(rows) == 2
    [hang] = run_local([Task(str(tmp_path / "head.onnx"), "hang.onnx", options)], timeout=3,
                       worker=[sys.executable, "-c", WORKER])
    assert hang.verdict == "error" and hang.reason == "timed out after 3 s" and hang.seconds < 60


def test_ray_runs_the_zoo_on_a_local_instance_with_the_same_rows(tmp_path):
    if importlib.util.find_spec("ray") is None:
        pytest.fail("Ray is not installed: `make test` installs requirements-ray.txt.")
    root = _build(tmp_path / "zoo", {"onnx/head.onnx", "onnx/dcgan.onnx", "onnx/broken.onnx"})
    ray = run_cli("zoo", root, "--samples", "2", "--ray", "local", "--jobs", "2", "--json", tmp_path / "ray.json",
                  timeout=180)
    local = run_cli("zoo", root, "--samples", "2", "--jobs", "2", "--json", tmp_path / "local.json")
    assert ray.returncode == local.returncode == 2, ray.stderr
    assert _rows(tmp_path / "ray.json") == _rows(tmp_path / "local.json")
    assert [r["verdict"] for r in _rows(tmp_path / "ray.json")] == ["error", "pass", "pass"]
    cells = lambda proc: [line.split()[:-2] for line in proc.stdout.splitlines()[2:5]]  # noqa: E731 - not the time
    assert cells(ray) == cells(local) and ray.stdout.splitlines()[6:] == local.stdout.splitlines()[6:]


def test_ray_missing_is_one_sentence(tmp_path):
    root = _build(tmp_path / "zoo", {"onnx/broken.onnx"})
    code = ("import sys; sys.modules['ray'] = None; from fold.cli import main; "
            f"sys.exit(main(['zoo', {str(root)!r}, '--ray', 'auto']))")
    proc = run_cli_python(code)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("foldscope: error: --ray needs foldscope's ray extra (ray is not installed): "
                           "pip install 'foldscope[ray]'.\n")


def run_cli_python(code: str) -> subprocess.CompletedProcess:
    """``python -c CODE`` in a fresh process from the repository root."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_bad_zoo_folders_and_options_exit_2_with_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no model here\n")
    cases = {
        str(tmp_path / "missing"): f"'{tmp_path / 'missing'}' is not a folder",
        str(tmp_path / "empty"): f"'{tmp_path / 'empty'}' holds no model file",
    }
    for folder, message in cases.items():
        proc = run_cli("zoo", folder)
        assert proc.returncode == 2 and proc.stderr.startswith(f"foldscope: error: {message}"), proc.stderr
        assert proc.stderr.count("\n") == 1 and proc.stdout == ""
    for option, message in ((["--jobs", "0"], "--jobs must be at least 1; received 0."),
                            (["--timeout", "0"], "--timeout must be a positive number of seconds; received 0.")):
        proc = run_cli("zoo", tmp_path / "empty", *option)
        assert proc.returncode == 2 and proc.stderr == f"foldscope: error: {message}\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_a_line_per_model_in_a_log():
    rows = [ModelRow(name, "onnx", 1, ToolRow("foldscope", verdict, "why"), seconds=1.5)
            for name, verdict in (("a.onnx", "pass"), ("b.onnx", "fail"))]
    log, terminal = io.StringIO(), _Terminal()
    to_log, to_terminal = _Progress(log, 2), _Progress(terminal, 2)
    for k, row in enumerate(rows, 1):
        to_log(row, k, 2)
        to_terminal(row, k, 2)
    assert log.getvalue() == "zoo [1/2] a.onnx: PASS (1.5 s in all)\nzoo [2/2] b.onnx: FAIL (1.5 s in all)\n"
    # tqdm's bar, redrawn in place: 0/2 from the start, then each model with its verdict, a new line at the end
    frames = terminal.getvalue().split("\r")
    assert "zoo:   0%|" in frames[1] and " 0/2 " in frames[1]
    assert any(" 1/2 " in frame and "a.onnx: PASS" in frame for frame in frames)
    assert "zoo: 100%|" in frames[-1] and " 2/2 " in frames[-1] and "b.onnx: FAIL" in frames[-1]
    assert terminal.getvalue().endswith("\n") and terminal.getvalue().count("\n") == 1
