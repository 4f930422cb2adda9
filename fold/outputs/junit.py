"""A zoo run as JUnit XML (``foldscope zoo DIR --junit-xml PATH``), the report CI systems read (GitLab's
``artifacts:reports:junit``, GitHub Actions' test-report actions, Jenkins): one test case per model file.

    <testsuites name="foldscope zoo" tests="3" failures="1" errors="1" skipped="0" time="12.3">
      <testsuite name="foldscope zoo models/" tests="3" ... timestamp="..." hostname="...">
        <properties><property name="samples" value="8"/> ...</properties>
        <testcase classname="foldscope.zoo" name="onnx/head.onnx" file="onnx/head.onnx" time="1.2"/>
        <testcase ... name="onnx/bad.onnx"><failure message="REASON" type="fail">REASON</failure>
          <system-out>the model's lines of the zoo's table (foldscope's and each peer's)</system-out></testcase>
        <testcase ... name="onnx/junk.onnx"><error message="REASON" type="error">REASON</error> ...

A model's verdict decides its element: pass none, fail ``failure``, error (unreadable, a crash, a timeout)
``error``, inconclusive ``skipped`` (nothing failed, nothing proven: the zoo's exit status still counts it).
Only foldscope's own fold decides; the peers' rows are the case's ``system-out``. The elements and
attributes are those of the common JUnit schema (Jenkins' ``junit-10.xsd``), plus a test case's ``file``,
which pytest writes too and GitLab shows.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from fold.outputs.report import zoo_table
from fold.tools.zoo import ModelRow, counts

#: A verdict -> the element a test case carries for it (a pass carries none).
ELEMENTS = {"fail": "failure", "error": "error", "inconclusive": "skipped"}
#: Characters XML 1.0 cannot hold, even escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: Any) -> str:
    return _NOT_XML.sub("?", str(value))


def _case(row: ModelRow) -> ET.Element:
    case = ET.Element("testcase", classname="foldscope.zoo", name=_text(row.model), file=_text(row.model),
                      time=f"{row.seconds:.3f}")
    element = ELEMENTS.get(row.verdict)
    if element is not None:
        kind = {} if element == "skipped" else {"type": row.verdict}  # the schema's skipped has no type
        detail = ET.SubElement(case, element, message=_text(row.reason), **kind)
        detail.text = _text(row.reason)
    ET.SubElement(case, "system-out").text = _text(zoo_table([row]))
    return case


def zoo_junit(root: str, rows: Sequence[ModelRow], *, seconds: float | None = None,
              started: datetime | None = None, properties: Mapping[str, Any] | None = None) -> str:
    """The JUnit XML document of a zoo run over the folder ``root``: one ``testcase`` per model file in
    ``rows``' order; ``seconds`` the run's wall time (else the sum of the models'), ``started`` its start,
    ``properties`` the run's options (samples, seed, ...; None values left out)."""
    n = counts(rows)
    totals = {"tests": str(len(rows)), "failures": str(n["fail"]), "errors": str(n["error"]),
              "skipped": str(n["inconclusive"]),
              "time": f"{sum(r.seconds for r in rows) if seconds is None else seconds:.3f}"}
    suites = ET.Element("testsuites", name="foldscope zoo", **totals)
    suite = ET.SubElement(suites, "testsuite", name=_text(f"foldscope zoo {root}"), **totals,
                          timestamp=(started or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
                          hostname=_text(socket.gethostname()))
    given = {k: v for k, v in (properties or {}).items() if v is not None}
    if given:
        props = ET.SubElement(suite, "properties")
        for name, value in given.items():
            ET.SubElement(props, "property", name=_text(name), value=_text(value))
    suite.extend(_case(row) for row in rows)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
