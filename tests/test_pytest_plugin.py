"""``fold.tools.pytest_plugin``: the ``foldscope`` fixture in a pytest run of its own (pytester) passes a
correct fold made by a peer (onnxsim) and foldscope's own, fails a fold broken in one channel with the
sentence that names its layer, and a file it cannot read raises its FoldError."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.onnx_pair import BROKEN_BN, BROKEN_LAYER, onnx_pair

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "fold.tools.pytest_plugin"


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Made once, before pytester's snapshot of ``sys.modules`` (which would drop onnxsim after a test, and a
    native module cannot be imported twice)."""
    return onnx_pair(tmp_path_factory.mktemp("models"))


@pytest.fixture
def run_plugin(pytester, monkeypatch, pair):
    """Run a test file in a pytest process of its own (an in-process run would import the native modules
    again) with the plugin loaded once (entry points off: installed from the checkout, the package
    registers it too) and ``ORIGINAL``, ``GOOD`` and ``BAD`` model files."""
    original, good, bad = pair
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))

    def run(source: str):
        pytester.makepyfile(f"ORIGINAL, GOOD, BAD = {str(original)!r}, {str(good)!r}, {str(bad)!r}\n" + source)
        return pytester.runpytest_subprocess("-p", PLUGIN, timeout=300)
    return run


def test_the_fixture_passes_a_peers_fold_and_its_own_and_fails_a_broken_one_with_its_layer(run_plugin):
    result = run_plugin('''
import pytest
from fold import FoldError

def test_onnxsims_fold(foldscope):
    checked = foldscope.check(ORIGINAL, GOOD, samples=4)
    assert checked.verdict == "pass" and {f.bn for f in checked.removed} == {"head_bn", "up0_bn", "up1_bn"}

def test_foldscopes_own_fold(foldscope, tmp_path):
    run = foldscope.fold(ORIGINAL, tmp_path / "folded.onnx")
    assert run.verdict == "pass" and (tmp_path / "folded.onnx").is_file() and run.result.bn_after == 0

def test_the_broken_fold(foldscope):
    foldscope.check(ORIGINAL, BAD)

def test_a_file_it_cannot_read_is_an_error_not_a_failure(foldscope, tmp_path):
    with pytest.raises(FoldError, match="missing.onnx"):
        foldscope.check(ORIGINAL, tmp_path / "missing.onnx")
''')
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([f"foldscope: 'head_broken.onnx' as a fold of 'head.onnx': FAIL: '{BROKEN_LAYER}' "
                                 f"does not compute what '{BROKEN_BN}' computed: channel 0 is off by *",
                                 "FAILED *::test_the_broken_fold*"])
    assert "Traceback" not in result.stdout.str() and "pytest_plugin.py" not in result.stdout.str()


def test_the_plugin_is_the_packages_pytest11_entry_point():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"foldscope": PLUGIN}
    assert (ROOT / (PLUGIN.replace(".", "/") + ".py")).is_file()
