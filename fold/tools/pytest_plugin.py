"""foldscope's pytest plugin (registered as ``foldscope`` under the ``pytest11`` entry point, so installing
the package is all a test suite needs): the ``foldscope`` fixture asserts that a fold is right.

    def test_the_exported_model_folds_right(foldscope, tmp_path):
        export(tmp_path / "model.onnx")
        simplify(tmp_path / "model.onnx", tmp_path / "model_sim.onnx")
        foldscope.check(tmp_path / "model.onnx", tmp_path / "model_sim.onnx")   # another tool's fold
        foldscope.fold(tmp_path / "model.onnx")                                  # foldscope's own

Each call runs what ``foldscope check`` or ``foldscope INPUT`` runs (``fold.check_files``,
``fold.fold_files``) and returns its result; a verdict other than pass fails the test with the verdict's
reason, the sentence that names the worst layer ("'up1' does not compute what 'up1_bn' computed: channel
2 is off by ..."). A file foldscope cannot read raises its ``FoldError``, an error of the test rather
than a failure. Nothing is imported from foldscope until a test asks for the fixture.
"""

from __future__ import annotations

import os
from typing import Any

import pytest


class Foldscope:
    """The fixture: ``check`` and ``fold`` with the verification's options (``samples``, ``seed``, ``atol``,
    ``shapes``, ``arrays``, the formats' load options) as ``fold.check_files`` takes them."""

    def check(self, original: str | os.PathLike, candidate: str | os.PathLike, **options: Any):
        """``candidate`` verified as a fold of ``original``: the ``fold.CheckResult``, or the test fails."""
        from fold.tools.check import check_files

        result = check_files(original, candidate, **options)
        _passed(result.checked.verification, f"'{result.candidate_name}' as a fold of '{result.original_name}'")
        return result

    def fold(self, path: str | os.PathLike, output: str | os.PathLike | None = None, **options: Any):
        """foldscope's own fold of ``path``, verified (and written to ``output`` when given): the
        ``fold.FoldRun``, or the test fails."""
        from fold.engine.pipeline import fold_files

        run = fold_files(path, output, **options)
        _passed(run.verification, f"foldscope's fold of '{os.path.basename(path)}'")
        return run


def _passed(verification, what: str) -> None:
    if verification.verdict != "pass":
        pytest.fail(f"foldscope: {what}: {verification.verdict.upper()}: {verification.reason}", pytrace=False)


@pytest.fixture
def foldscope() -> Foldscope:
    """Assert folds: ``foldscope.check(original, candidate)`` (a fold another tool made) and
    ``foldscope.fold(model)`` (foldscope's own); a verdict other than pass fails with its reason."""
    return Foldscope()
