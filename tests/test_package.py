"""The package (``pyproject.toml``): its dependencies and extras are the pinned environment's, as ranges,
never drifting apart; every extra the code names exists; and with only the onnx extra's packages (every
other framework and the page made unimportable) ``foldscope`` folds, checks and runs a zoo of ONNX files,
while a feature whose extra is missing is one sentence with its pip command and exit 2."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from fold.frontends.formats import FRONTENDS
from fold.tools.peer_runs import PEERS_BY_FORMAT
from tests.onnx_pair import BROKEN_LAYER, onnx_pair

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: The files of pins: the tested environment (requirements.txt) and its optional parts.
PINNED = ("requirements.txt", "requirements-ray.txt", "requirements-circle.txt")


def _requirements(path: Path) -> list[Requirement]:
    """A requirements file's requirements (comments, options and ``-r`` lines left out)."""
    lines = (line.split(" #")[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith(("#", "-"))]


def _pins() -> dict[str, list[Requirement]]:
    found: dict[str, list[Requirement]] = {}
    for name in PINNED:
        for req in _requirements(ROOT / name):
            found.setdefault(canonicalize_name(req.name), []).append(req)
    return found


def _declared() -> list[tuple[str, Requirement]]:
    """(where, requirement) of every dependency pyproject names, its own extras (foldscope[...]) left out."""
    found = [("dependencies", Requirement(r)) for r in PROJECT["dependencies"]]
    found += [(f"extra {extra}", Requirement(r)) for extra, reqs in PROJECT["optional-dependencies"].items()
              for r in reqs]
    return [(where, r) for where, r in found if canonicalize_name(r.name) != "foldscope"]


def test_every_dependency_is_pinned_inside_its_range():
    pins = _pins()
    for where, req in _declared():
        pinned = pins.get(canonicalize_name(req.name))
        assert pinned, f"pyproject's {where} names {req.name}, which no requirements file pins"
        exact = [p for p in pinned if str(p.marker or "") == str(req.marker or "")]
        assert exact, f"{req.name}: pyproject's marker '{req.marker}' is none of the pins' ({pinned})"
        for pin in exact:
            [spec] = pin.specifier
            assert spec.operator == "==" and req.specifier.contains(spec.version), \
                f"{req.name}: the pin {spec.version} is outside pyproject's range '{req.specifier}' ({where})"


def test_every_runtime_pin_is_a_dependency_or_an_extras():
    """requirements.txt and requirements-ray.txt are foldscope's own needs: none of them is missing from the
    package (requirements-circle.txt also pins tico's own dependencies, the CPU torch among them)."""
    declared = {canonicalize_name(r.name) for _, r in _declared()}
    for name in ("requirements.txt", "requirements-ray.txt"):
        missing = sorted(r.name for r in _requirements(ROOT / name) if canonicalize_name(r.name) not in declared)
        assert not missing, f"{name} pins {missing}, which pyproject.toml does not name"


def test_the_base_install_has_no_framework_and_all_has_every_extra_but_circle():
    base = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    assert base == {"numpy", "networkx", "tqdm"}
    extras = PROJECT["optional-dependencies"]
    [everything] = extras["all"]
    assert Requirement(everything).extras == set(extras) - {"all", "circle"}
    for extra, reqs in extras.items():  # an extra's own extras exist
        for req in map(Requirement, reqs):
            assert req.extras <= set(extras), (extra, req)


def _extras_named_in_the_code() -> dict[str, str]:
    """extra -> the first place that names it: ``needs``/``require`` calls, each format (its extra is its
    name) and each peer."""
    found = {f.name: f"the format table ({f.label})" for f in FRONTENDS.values()}
    found.update({p.extra: f"peer {p.tool}" for name in FRONTENDS for p in PEERS_BY_FORMAT[name]})
    for path in sorted((ROOT / "fold").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("needs", "require") and node.args \
                    and isinstance(node.args[0], ast.Constant):
                found.setdefault(node.args[0].value, path.relative_to(ROOT).as_posix())
    return found


def test_every_extra_the_code_names_is_in_pyproject():
    named = _extras_named_in_the_code()
    assert {"onnx", "keras", "tflite", "circle", "int8", "peers", "ray", "html", "model-explorer", "app"} <= set(named)
    missing = {extra: where for extra, where in named.items() if extra not in PROJECT["optional-dependencies"]}
    assert not missing, f"extras named in the code but not in pyproject.toml: {missing}"


def test_the_command_and_the_plugin_are_declared():
    assert PROJECT["scripts"] == {"foldscope": "fold.cli:main"}
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert sorted({p.split(".")[0] for p in packages["include"]}) == ["fold", "foldscope_app", "viz"]


# -- only the onnx extra: everything else unimportable ------------------------------------------------

#: What an install of foldscope[onnx] does not have: the other formats' frameworks, the features' packages,
#: the page, and the checkout's folders that are not installed.
ABSENT = ("tensorflow", "keras", "tf_keras", "h5py", "ai_edge_litert", "ai_edge_quantizer", "flatbuffers",
          "circle_schema", "tico", "onert", "torch", "onnxsim", "onnxslim", "onnxoptimizer", "py_mini_racer", "matplotlib",
          "model_explorer", "streamlit", "pandas", "ray", "scipy", "demo", "sections", "browser", "bench", "tests")

_BLOCKER = f'''"""Imports of what a foldscope[onnx] install lacks fail, in this process and every child it starts."""
import sys

ABSENT = {set(ABSENT)!r}


class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _Absent())
'''


@pytest.fixture(scope="module")
def onnx_only(tmp_path_factory):
    """``run(*args)``: ``python -m fold ARGS`` (what the ``foldscope`` script runs) where only the onnx
    extra's packages can be imported (a ``sitecustomize`` on PYTHONPATH blocks the others, in the zoo's
    workers too); the ONNX pair to run it on."""
    folder = tmp_path_factory.mktemp("onnx_only")
    (folder / "site").mkdir()
    (folder / "site" / "sitecustomize.py").write_text(_BLOCKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder / "site"), str(ROOT)])}

    def run(*args, code: str | None = None) -> subprocess.CompletedProcess:
        command = ["-c", code] if code else ["-m", "fold", *map(str, args)]
        return subprocess.run([sys.executable, *command], capture_output=True, text=True, env=env, timeout=300,
                              cwd=folder)
    return run, onnx_pair(folder / "models")


def test_the_blocker_blocks(onnx_only):
    run, _ = onnx_only
    proc = run(code="import tensorflow")
    assert proc.returncode == 1 and "ModuleNotFoundError: No module named 'tensorflow'" in proc.stderr


def test_with_only_the_onnx_extra_foldscope_folds_checks_and_runs_a_zoo(onnx_only, tmp_path):
    run, (original, good, broken) = onnx_only
    proc = run(original, "-o", tmp_path / "folded.onnx", "--samples", "4", "--report", tmp_path / "r.json")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert json.loads((tmp_path / "r.json").read_text())["verification"]["verdict"] == "pass"
    assert run("check", original, good).returncode == 0
    proc = run("check", original, broken)
    assert proc.returncode == 1 and f"'{BROKEN_LAYER}' does not compute what" in proc.stdout
    proc = run("zoo", original.parent, "--samples", "2", "--junit-xml", tmp_path / "zoo.xml")
    assert proc.returncode == 0, proc.stdout + proc.stderr  # each file is a model to fold, the broken one too
    assert [line.split()[:4] for line in proc.stdout.splitlines()[2:5]] == [
        [f"{name}.onnx", "foldscope", "0", "of"] for name in ("head", "head_broken", "head_sim")]
    assert (tmp_path / "zoo.xml").read_text().count("<testcase ") == 3


MISSING = {
    "a Keras file": (["model.keras"], "Reading Keras files needs foldscope's keras extra (keras is not "
                                      "installed): pip install 'foldscope[keras]'."),
    "--model-explorer": (["{original}", "-o", "{out}", "--model-explorer", "{tmp}/me"],
                         "--model-explorer needs foldscope's model-explorer extra (model_explorer is not installed): "
                         "pip install 'foldscope[model-explorer]'."),
    "--html": (["check", "{original}", "{original}", "--html", "{tmp}/r.html"],
               "--html needs foldscope's html extra (py_mini_racer is not installed): pip install 'foldscope[html]'."),
    "--ray": (["zoo", "{models}", "--ray", "local"], "--ray needs foldscope's ray extra (ray is not installed): "
                                                   "pip install 'foldscope[ray]'."),
    "--peers": (["zoo", "{models}", "--peers"], "onnxsim as a peer needs foldscope's peers extra (onnxsim is not "
                                                "installed): pip install 'foldscope[peers]'."),
    "the page": (["app"], "The page (foldscope app) needs foldscope's app extra (streamlit is not installed): "
                          "pip install 'foldscope[app]'."),
}


@pytest.mark.parametrize("feature", list(MISSING))
def test_a_feature_whose_extra_is_missing_is_one_sentence_and_exit_2(onnx_only, tmp_path, feature):
    run, (original, _, _) = onnx_only
    with zipfile.ZipFile(tmp_path / "model.keras", "w") as archive:  # read no further than its format
        archive.writestr("config.json", "{}")
    values = {"original": original, "out": tmp_path / "o.onnx", "tmp": tmp_path, "models": original.parent}
    args, sentence = MISSING[feature]
    proc = run(*(str(tmp_path / a) if a == "model.keras" else a.format(**values) for a in args))
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"foldscope: error: {sentence}\n")
    assert not (tmp_path / "o.onnx").exists() and not (tmp_path / "me").exists()


def test_the_extra_sentence_names_what_is_missing():
    """``needs`` turns a missing package into the sentence, and leaves foldscope's own modules alone."""
    from fold.core.errors import MissingExtra, needs

    with pytest.raises(MissingExtra) as info:
        with needs("onnx", "Reading ONNX files"):
            import onnx_not_a_package  # noqa: F401
    assert str(info.value) == ("Reading ONNX files needs foldscope's onnx extra (onnx_not_a_package is not "
                               "installed): pip install 'foldscope[onnx]'.")
    assert (info.value.feature, info.value.extra, info.value.package) == ("Reading ONNX files", "onnx",
                                                                          "onnx_not_a_package")
    with pytest.raises(ModuleNotFoundError):
        with needs("onnx", "Reading ONNX files"):
            import fold.not_a_module  # noqa: F401
    assert re.fullmatch(r"[^.]+\.", str(info.value).replace("'foldscope[onnx]'.", "x."))  # one sentence
