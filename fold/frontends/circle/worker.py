"""circle frontend, the worker: ``python -m fold.frontends.circle.worker RUNTIME FOLDER`` runs circle
models in one runtime, in a process of its own, so that a runtime that crashes (onert does on a
malformed model) takes only this process down. FOLDER (the parent's, which removes it) holds its log
and the model files onert reads. Its address space is capped at half the machine's memory: a model
that declares a huge tensor makes the runtime fail (a refusal, or a crash), not the machine.

It reads requests from stdin and answers on stdout, each a pickled tuple (the parent is foldscope,
``fold.frontends.circle.runtime``). A request is ``(key, data, inputs)``: the model's bytes (``data``
None when this worker should hold the model of ``key`` already) and the arrays to run it on; the answer
is ``("ok", outputs)``, ``("refused", sentence)`` or ``("missing", None)`` (send the bytes again). What
the runtimes print goes to a log of the worker's own; the last line they printed joins a refusal
(onert says why in its log, and raises only "NNFW_STATUS_ERROR").

    tico   tico's NumPy/PyTorch reference runtime (``tico.circle.runtime.CircleReferenceRuntime``)
    onert  ONE's runtime, CPU backend (run with CPU_MEMORY_PLANNER=Bump, set by the parent: with its
           default planner an intermediate tensor made a model output reads back overwritten)
"""

from __future__ import annotations

import os
import pickle
import resource
import sys
from pathlib import Path

from fold.errors import one_line

#: Models kept loaded at most, newest last.
_KEPT = 8


def _tico(data: bytes):
    from tico.circle.runtime import CircleReferenceRuntime

    runtime = CircleReferenceRuntime(data)
    return lambda inputs: list(runtime.run(inputs).outputs)


def _onert(data: bytes, folder: Path):
    from onert import infer

    path = folder / f"model{len(list(folder.iterdir()))}.circle"
    path.write_bytes(data)
    session = infer.session(str(path), "cpu")
    return lambda inputs: [o.copy() for o in session.infer(list(inputs))]


def _said(log: Path, since: int, exc: Exception) -> str:
    """A refusal in one line: the last line the runtime printed since ``since``, and the exception."""
    printed = log.read_bytes()[since:].decode(errors="replace").strip().splitlines()
    last = next((line for line in reversed(printed) if line.strip()), "")
    raised = one_line(exc)
    return f"{one_line(Exception(last))} ({raised})" if last and last not in raised else raised


def serve(runtime: str, requests, answers, log: Path, folder: Path) -> None:
    """Answer requests until stdin closes."""
    loaded: dict[str, object] = {}
    while True:
        try:
            key, data, inputs = pickle.load(requests)
        except EOFError:
            return
        since = log.stat().st_size
        try:
            if key not in loaded and data is None:
                answer = ("missing", None)
            else:
                if key not in loaded:
                    loaded[key] = _tico(data) if runtime == "tico" else _onert(data, folder)
                    while len(loaded) > _KEPT:
                        loaded.pop(next(iter(loaded)))
                answer = ("ok", loaded[key](inputs))
        except Exception as exc:  # a runtime's refusal of a model or of its inputs, said by the parent
            sys.stderr.flush()
            answer = ("refused", _said(log, since, exc))
        pickle.dump(answer, answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()


def _cap_memory() -> None:
    half = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    resource.setrlimit(resource.RLIMIT_AS, (half, half))


def main() -> None:
    _cap_memory()
    runtime, folder = sys.argv[1], Path(sys.argv[2])
    answers = os.fdopen(os.dup(1), "wb")  # the answers go to the real stdout
    log = folder / "runtime.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)  # what a runtime prints, from Python or C++, goes to the log
    os.dup2(fd, 2)
    sys.stdout = sys.stderr
    (folder / "models").mkdir(exist_ok=True)
    serve(runtime, sys.stdin.buffer, answers, log, folder / "models")


if __name__ == "__main__":
    main()
