"""ELK, the Eclipse Layout Kernel, as foldscope's graph layout engine: its layered algorithm (elkjs
0.12.1, EPL-2.0, shipped in ``viz/assets/elk-worker.min.js``) run in an embedded V8 (``mini-racer``,
a wheel: no Java, no Node.js, no system package).

ELK takes a graph in its JSON format (``children`` with ``width``/``height``, nested ``children``
for compound nodes, ``edges`` with ``sources``/``targets``) and returns it with every node's
``x``/``y`` (relative to its parent) and every edge's ``sections`` (``startPoint``, ``bendPoints``,
``endPoint``, relative to the edge's ``container``).

The worker script is GWT-compiled Java; it is loaded once per process (about 0.3 s) and called
synchronously through the dispatcher its ``Worker`` wraps (no event loop, no promise): V8 runs one
call at a time, so threads share the engine safely.
"""

from __future__ import annotations

import atexit
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

_SCRIPT = Path(__file__).with_name("assets") / "elk-worker.min.js"
# GWT looks for `window`; the worker's module registers itself on `module.exports`; `layout` hands a
# graph to its dispatcher and returns what the dispatcher posted back (the laid-out graph or an error).
_PRELUDE = "var window = globalThis; var module = {exports: {}}; var exports = module.exports;"
_BRIDGE = """
var __worker = new module.exports.Worker(), __answer = null;
__worker.onmessage = function (message) { __answer = message.data; };
function __send(message) { __answer = null; __worker.dispatcher.saveDispatch({data: message}); return __answer; }
__send({cmd: 'register', algorithms: ['layered'], id: 0});
function layout(text) {
  var answer = __send({cmd: 'layout', graph: JSON.parse(text), id: 1});
  if (answer.error) return JSON.stringify({error: String(answer.error.message || answer.error)});
  return JSON.stringify({graph: answer.data});
}
"""

_lock = threading.Lock()
_engine: Any = None


def _context() -> Any:
    """The process's V8 context with ELK loaded (made on first use, closed at exit: a V8 context left
    open keeps the interpreter from exiting).

    It is made in a thread of its own: a ``MiniRacer`` made where an asyncio loop is running (Playwright's
    sync API runs one in its caller's thread, a server may too) sends every later call to that loop,
    and once that loop stops, each call waits forever. Made where no loop runs, it starts its own."""
    global _engine
    if _engine is None:
        from py_mini_racer import MiniRacer

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="foldscope-elk") as maker:
            context = maker.submit(MiniRacer).result()
        context.eval(_PRELUDE)
        context.eval(_SCRIPT.read_text(encoding="utf-8"))
        context.eval(_BRIDGE)
        atexit.register(context.close)
        _engine = context
    return _engine


class LayoutError(RuntimeError):
    """ELK refused a graph (a bug of ours: the graphs handed to it are built by ``viz.layout``)."""


def elk_layout(graph: dict) -> dict:
    """``graph`` (ELK's JSON) laid out by ELK: the same structure with positions and edge sections."""
    text = json.dumps(graph)
    with _lock:
        answer = json.loads(_context().call("layout", text))
    if "error" in answer:
        raise LayoutError(f"ELK could not lay out the graph: {answer['error']}")
    return answer["graph"]
