"""Silencing what frameworks print, when threads (the page's sessions) overlap: the first thread in
silences, the last one out restores, whatever the order they leave in."""

from __future__ import annotations

import os
import sys
import threading
import warnings

from fold.quiet import quiet


def _overlapping(first_out: str) -> None:
    """Threads a and b inside ``quiet()`` at once: a enters first, ``first_out`` leaves first."""
    entered = {name: threading.Event() for name in "ab"}
    leave = {name: threading.Event() for name in "ab"}

    def session(name: str) -> None:
        with quiet():
            entered[name].set()
            leave[name].wait(timeout=30)

    threads = {name: threading.Thread(target=session, args=(name,)) for name in "ab"}
    threads["a"].start()
    entered["a"].wait(timeout=30)
    threads["b"].start()
    entered["b"].wait(timeout=30)
    second_out = "b" if first_out == "a" else "a"
    for name in (first_out, second_out):
        leave[name].set()
        threads[name].join(timeout=30)


def _state() -> tuple:
    return sys.stdout, os.fstat(2).st_ino, os.fstat(2).st_dev, list(warnings.filters)


def test_overlapping_threads_leave_stdout_stderr_and_warnings_as_they_were():
    before = _state()
    for first_out in "ab":  # a leaving first is the order that left everything silenced for good
        _overlapping(first_out)
        assert _state() == before


def test_output_is_silenced_while_any_thread_is_inside():
    before = _state()
    inside, leave = threading.Event(), threading.Event()

    def session() -> None:
        with quiet():
            inside.set()
            leave.wait(timeout=30)

    thread = threading.Thread(target=session)
    thread.start()
    inside.wait(timeout=30)
    try:
        assert sys.stdout is not before[0]
        assert os.fstat(2).st_ino == os.stat(os.devnull).st_ino
        assert warnings.filters[0][0] == "ignore"
    finally:
        leave.set()
        thread.join(timeout=30)
    assert _state() == before
