"""The wheel as a user gets it: built from the checkout's sources, installed with its onnx extra into a fresh
virtual environment (the pinned versions as constraints), where ``foldscope`` folds, checks and runs a zoo of
ONNX files, its pytest plugin loads by its entry point, neither TensorFlow nor Streamlit is installed, and a
feature whose extra is missing is one sentence. Marked ``wheel``: ``-m 'not wheel'`` leaves it out of a quick
local run; ``make test`` and ``.ci/run`` run it. One wheel and one environment serve the whole file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from tests.onnx_pair import BROKEN_BN, BROKEN_LAYER, onnx_pair

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[1]
#: What the wheel is built from: the package's files, nothing else of the checkout.
SOURCES = ("pyproject.toml", "README.md", "fold", "viz", "foldscope_app")
#: The top-level import names the wheel may install.
TOP_LEVEL = {"fold", "viz", "foldscope_app"}


def _env() -> dict[str, str]:
    """The environment of a process in the fresh venv: nothing of the checkout on its path."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS")}


def _pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "--quiet", *args], capture_output=True, text=True,
                          env=_env(), timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel`` of a copy of the package's sources (setuptools writes build/ and *.egg-info beside the
    sources it builds, and may reuse a stale build/: a copy keeps the checkout untouched and the wheel fresh)."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (ROOT / name).is_file():
            shutil.copy2(ROOT / name, src / name)
    _pip("wheel", "--no-deps", "--wheel-dir", str(out), str(src))
    [built] = out.glob("foldscope-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with ``WHEEL[onnx]`` and pytest installed at the pinned versions; its bin folder."""
    home = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True, timeout=120)
    _pip("--python", str(home / "bin" / "python"), "install", f"{wheel}[onnx]", f"pytest=={pytest.__version__}",
         "--constraint", str(ROOT / "requirements.txt"))
    return home / "bin"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path, Path]:
    return onnx_pair(tmp_path_factory.mktemp("models") / "onnx")


def _run(bin_dir: Path, *args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "foldscope"), *map(str, args)], capture_output=True, text=True,
                          env=_env(), cwd=cwd, timeout=600)


def test_the_wheel_installs_fold_viz_and_the_page_and_nothing_else(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert {"fold", "viz"} <= top <= TOP_LEVEL, top
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "demo/", "sections/"))]
    # the graph's script and stylesheet (the page's and the report's), and ELK with its licence
    assert {f"viz/assets/{a}" for a in ("graph.js", "graph.css", "elk-worker.min.js", "elk-LICENSE.md")} <= set(names)
    assert "foldscope_app/.streamlit/config.toml" in names  # the page's settings, beside its script
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "foldscope = fold.cli:main" in text and "foldscope = fold.tools.pytest_plugin" in text


def test_the_onnx_extra_brings_no_tensorflow_and_no_streamlit(venv):
    code = "import importlib.metadata as m; print('\\n'.join(sorted(d.metadata['Name'].lower() for d in m.distributions())))"
    proc = subprocess.run([str(venv / "python"), "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    installed = set(proc.stdout.split())
    assert {"foldscope", "onnx", "onnxruntime", "numpy", "networkx"} <= installed
    assert not installed & {"tensorflow", "tensorflow-cpu", "keras", "streamlit", "torch", "matplotlib", "mini-racer"}


def test_foldscope_folds_checks_and_runs_a_zoo(venv, models, tmp_path):
    original, good, broken = models
    proc = _run(venv, "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "'foldscope check ORIGINAL CANDIDATE'" in " ".join(proc.stdout.split())
    proc = _run(venv, original, "-o", tmp_path / "folded.onnx", "--samples", "4", cwd=tmp_path)
    assert proc.returncode == 0 and "verification (4 samples, seed 0;" in proc.stdout, proc.stderr
    assert _run(venv, "check", original, good, cwd=tmp_path).returncode == 0
    proc = _run(venv, "check", original, broken, cwd=tmp_path)
    assert proc.returncode == 1 and f"'{BROKEN_LAYER}' does not compute what '{BROKEN_BN}' computed" in proc.stdout
    proc = _run(venv, "zoo", original.parent, "--samples", "2", "--junit-xml", tmp_path / "zoo.xml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = ET.parse(tmp_path / "zoo.xml").getroot().findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == ["head.onnx", "head_broken.onnx", "head_sim.onnx"]


def test_a_missing_extra_is_one_sentence_with_its_pip_command(venv, models, tmp_path):
    original, _, _ = models
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    for args, extra in (([tmp_path / "m.keras"], "keras"), (["app"], "app"),
                        (["check", original, original, "--html", tmp_path / "r.html"], "html")):
        proc = _run(venv, *args, cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr.endswith(f": pip install 'foldscope[{extra}]'.\n"), proc.stderr
        assert proc.stderr.count("\n") == 1 and proc.stdout == ""


def test_the_pytest_plugin_loads_by_its_entry_point(venv, models, tmp_path):
    original, good, broken = models
    (tmp_path / "test_folds.py").write_text(
        f"def test_good(foldscope):\n    foldscope.check({str(original)!r}, {str(good)!r})\n\n"
        f"def test_broken(foldscope):\n    foldscope.check({str(original)!r}, {str(broken)!r})\n")
    proc = subprocess.run([str(venv / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_folds.py"],
                          capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=600)
    assert proc.returncode == 1 and "1 failed, 1 passed" in proc.stdout, proc.stdout + proc.stderr
    assert f"FAIL: '{BROKEN_LAYER}' does not compute what '{BROKEN_BN}' computed" in proc.stdout
