"""viz.elk: ELK in an embedded V8, made once per process and answering every thread that asks."""

from __future__ import annotations

import asyncio
import threading

from viz import elk

GRAPH = {"id": "root", "children": [{"id": name, "width": 40, "height": 20} for name in ("a", "b", "c")],
         "edges": [{"id": "ab", "sources": ["a"], "targets": ["b"]}, {"id": "ac", "sources": ["a"], "targets": ["c"]}]}


def _boxes(graph: dict) -> dict[str, tuple[float, float]]:
    return {child["id"]: (child["x"], child["y"]) for child in graph["children"]}


def test_a_graph_comes_back_with_a_place_for_every_node():
    boxes = _boxes(elk.elk_layout(GRAPH))
    assert set(boxes) == {"a", "b", "c"} and len(set(boxes.values())) == 3


def test_an_engine_first_made_inside_a_running_event_loop_answers_after_that_loop_is_gone(monkeypatch):
    """Playwright's sync API runs an asyncio loop in its caller's thread: an engine first made there
    must not send its calls to that loop, which stops with the browser (every later layout waited
    forever: a whole test worker hung in CI)."""
    monkeypatch.setattr(elk, "_engine", None)

    async def inside_a_loop() -> dict:
        return elk.elk_layout(GRAPH)

    def asked_from(target) -> dict:
        """``target()``'s answer in a fresh thread (no loop of the test's own: a browser test before may
        have left Playwright's running in this one), or a failure if it never came."""
        answers: list[dict] = []
        thread = threading.Thread(target=lambda: answers.append(target()), daemon=True)
        thread.start()
        thread.join(timeout=120)
        assert answers, "a layout never came back"
        return answers[0]

    first = asked_from(lambda: asyncio.run(inside_a_loop()))  # the engine made while that loop runs
    later = asked_from(lambda: elk.elk_layout(GRAPH))  # asked after that loop has ended
    assert _boxes(later) == _boxes(first)
