"""foldscope_app.workbench.memo: each value computed once however many threads ask at once, bounded, failures
not kept."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from foldscope_app.workbench.memo import Memo, Memos, memoized


class Counted:
    """An object with a memoized method that counts its calls and takes a while."""

    def __init__(self):
        self.memos = Memos()
        self.calls: list[tuple] = []
        self._lock = threading.Lock()

    @memoized(max_entries=2)
    def value(self, x: int) -> list:
        with self._lock:
            self.calls.append((x,))
        time.sleep(0.05)  # long enough for the other threads to arrive while it runs
        return [x]


def test_threads_asking_at_once_share_one_computation():
    obj = Counted()
    start = threading.Barrier(8)

    def ask(_):
        start.wait(timeout=30)
        return obj.value(3)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(ask, range(8)))
    assert obj.calls == [(3,)]
    assert all(r is results[0] for r in results)


class Meeting:
    """A memoized method whose computation for 1 waits until the one for 2 has begun, and vice versa."""

    def __init__(self):
        self.memos = Memos()
        self.begun = {1: threading.Event(), 2: threading.Event()}

    @memoized(max_entries=2)
    def value(self, x: int) -> bool:
        self.begun[x].set()
        return self.begun[3 - x].wait(timeout=10)


def test_different_arguments_compute_in_parallel():
    obj = Meeting()
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(obj.value, (1, 2))) == [True, True]  # each saw the other begin: side by side


def test_each_object_keeps_its_own_values():
    a, b = Counted(), Counted()
    assert a.value(1) is a.value(1) and a.value(1) is not b.value(1)
    assert a.calls == b.calls == [(1,)]


def test_least_recently_used_goes_when_full():
    obj = Counted()
    obj.value(1), obj.value(2), obj.value(1), obj.value(3)  # 2 is the least recently used
    obj.value(1)
    assert obj.calls == [(1,), (2,), (3,)]
    obj.value(2)
    assert obj.calls[-1] == (2,)


def test_a_failed_computation_is_not_kept():
    memo, attempts = Memo(4), []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first try fails")
        return "ok"

    with pytest.raises(RuntimeError):
        memo.get("k", flaky)
    assert memo.get("k", flaky) == "ok" and memo.get("k", flaky) == "ok"
    assert len(attempts) == 2 and len(memo) == 1


def test_bad_bound_is_named():
    with pytest.raises(ValueError, match="max_entries"):
        Memo(0)
