"""``fold.outputs.junit``: a zoo run's rows as JUnit XML, parsed back: one test case per model, the verdict's
element (none, failure, error, skipped) with the reason, the counts, text a CI system can read."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone

from fold.outputs.junit import zoo_junit
from fold.tools.zoo import ModelRow, ToolRow

VERDICTS = {"a.onnx": "pass", "sub/b.onnx": "fail", "c.keras": "error", "d.tflite": "inconclusive"}


def _rows() -> list[ModelRow]:
    reason = "'conv' does not compute what 'bn' computed <&> \x1b[31m\x00"  # markup and control characters
    peer = ToolRow("onnxsim 0.8.1", "pass", "fine", 0, 1e-7, 0.2, "simplify")
    return [ModelRow(name, name.split(".")[-1], 2, ToolRow("foldscope", verdict, f"{reason} {name}", 0, 1e-3, 0.5),
                     [peer] if verdict == "pass" else [], seconds=1.25 + k)
            for k, (name, verdict) in enumerate(VERDICTS.items())]


def test_each_model_is_a_case_with_its_verdicts_element_and_reason():
    started = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)
    text = zoo_junit("models/", _rows(), seconds=7.5, started=started, properties={"samples": 8, "atol": None})
    root = ET.fromstring(text.encode())
    assert text.startswith("<?xml") and root.tag == "testsuites" and root.get("name") == "foldscope zoo"
    [suite] = root
    assert suite.get("name") == "foldscope zoo models/" and suite.get("timestamp") == "2026-12-01T09:30:00+00:00"
    for element in (root, suite):
        assert {k: element.get(k) for k in ("tests", "failures", "errors", "skipped", "time")} == {
            "tests": "4", "failures": "1", "errors": "1", "skipped": "1", "time": "7.500"}
    assert [(p.get("name"), p.get("value")) for p in suite.find("properties")] == [("samples", "8")]
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c.get("file") for c in cases] == list(VERDICTS)
    assert [c.get("time") for c in cases] == ["1.250", "2.250", "3.250", "4.250"]
    expected = {"pass": [], "fail": ["failure"], "error": ["error"], "inconclusive": ["skipped"]}
    for case, verdict in zip(cases, VERDICTS.values()):
        details = [child for child in case if child.tag != "system-out"]
        assert [d.tag for d in details] == expected[verdict]
        for d in details:
            assert d.get("message") == d.text and d.text.startswith("'conv' does not compute what 'bn' computed <&> ")
            assert d.text.endswith(case.get("name")) and "\x1b" not in d.text and "\x00" not in d.text
            assert d.get("type") == (None if d.tag == "skipped" else verdict)
    # the model's lines of the zoo's table: foldscope's, and each peer's
    out = cases[0].find("system-out").text.splitlines()
    assert out[0].split()[:2] == ["model", "tool"] and [line.split()[1] for line in out[2:]] == ["foldscope", "onnxsim"]


def test_without_a_wall_time_the_suite_takes_the_models_sum():
    root = ET.fromstring(zoo_junit("m", _rows()).encode())
    assert root.get("time") == f"{1.25 + 2.25 + 3.25 + 4.25:.3f}" and root.find("testsuite/properties") is None
