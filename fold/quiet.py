"""Import TensorFlow without its start-up chatter on stderr, and silence what frameworks print
while they work, safely when threads (the page's sessions) overlap.

TensorFlow 2.21 logs oneDNN and CPU-feature notices through absl before logging is set
up, ignoring TF_CPP_MIN_LOG_LEVEL; the command line promises one line on stderr, so the
import runs with file descriptor 2 pointed at /dev/null.

Standard output, file descriptor 2 and the warnings filters belong to the whole process. A
context manager that saves and restores them on its own (``contextlib.redirect_stdout``, a
plain ``dup2``, ``warnings.catch_warnings``) leaves them silenced for good when two threads
overlap: the later one saves what the earlier one set, and restores it last. Here the first
thread in silences, the last one out restores.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any


class _Shared:
    """A process-wide change shared by overlapping threads: ``start()`` when the first enters,
    ``stop(what start returned)`` when the last leaves."""

    def __init__(self, start: Callable[[], Any], stop: Callable[[Any], None]):
        self._start, self._stop = start, stop
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: Any = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._saved = self._start()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._stop(self._saved)
                    self._saved = None


def _stderr_off() -> int:
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    return saved


def _stderr_on(saved: int) -> None:
    os.dup2(saved, 2)
    os.close(saved)


def _stdout_off() -> Any:
    saved, sys.stdout = sys.stdout, io.StringIO()
    return saved


def _stdout_on(saved: Any) -> None:
    sys.stdout = saved


def _warnings_off() -> warnings.catch_warnings:
    caught = warnings.catch_warnings()
    caught.__enter__()
    warnings.simplefilter("ignore")
    return caught


def _warnings_on(caught: warnings.catch_warnings) -> None:
    caught.__exit__(None, None, None)


#: File descriptor 2 pointed at /dev/null (what C++ code and absl print there included).
quiet_stderr = _Shared(_stderr_off, _stderr_on)
#: ``sys.stdout`` (what Python code prints: Keras' export prints the traced signature) into a buffer.
quiet_stdout = _Shared(_stdout_off, _stdout_on)
#: Every warning ignored.
quiet_warnings = _Shared(_warnings_off, _warnings_on)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Standard output, file descriptor 2 and warnings silenced, for a framework's noisy call."""
    with quiet_stdout(), quiet_stderr(), quiet_warnings():
        yield


def import_tensorflow_quietly() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # oneDNN's own allocator keeps what TensorFlow frees for itself, for good: a long-lived process (the
    # page) holds on to the peak of every verification (1.2 GiB after a 224x224 model's). The system's
    # allocator gives it back, as fast (ResNet50 folded and verified: 1.01x the CPU time).
    os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")
    if "tensorflow" in sys.modules:
        return
    with quiet_stderr():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
