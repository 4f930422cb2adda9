"""Bounded, thread-safe memos for what the page derives from a model and shares between sessions.

The page serves several sessions at once from one process, and every session reads the same
workbench: a value is computed once however many sessions ask for it together (the others wait
for it; different values are computed in parallel), then kept until ``max_entries`` newer ones
push it out, least recently used first. A computation that raises is not kept: the next caller
tries again.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class Memo:
    """Values by key: each computed once, at most ``max_entries`` kept."""

    def __init__(self, max_entries: int):
        if max_entries < 1:
            raise ValueError(f"Invalid value for argument `max_entries`: at least 1. Received: {max_entries}")
        self.max_entries = max_entries
        self._values: OrderedDict[Hashable, Any] = OrderedDict()
        self._pending: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The value of ``key``, computed by ``compute()`` unless it is kept or being computed."""
        while True:
            with self._lock:
                if key in self._values:
                    self._values.move_to_end(key)
                    return self._values[key]
                pending = self._pending.get(key)
                if pending is None:
                    pending = self._pending[key] = threading.Event()
                    break
            pending.wait()  # another thread computes it: take its value (or try again if it failed)
        try:
            value = compute()
            with self._lock:
                self._values[key] = value
                while len(self._values) > self.max_entries:
                    self._values.popitem(last=False)
            return value
        finally:
            with self._lock:
                del self._pending[key]
            pending.set()

    def __len__(self) -> int:
        return len(self._values)


class Memos:
    """One ``Memo`` per method of one object, made on first use (see ``memoized``)."""

    def __init__(self):
        self._memos: dict[str, Memo] = {}
        self._lock = threading.Lock()

    def of(self, name: str, max_entries: int) -> Memo:
        with self._lock:
            if name not in self._memos:
                self._memos[name] = Memo(max_entries)
            return self._memos[name]


def memoized(max_entries: int = 1) -> Callable:
    """A method whose results are kept with its object (in the object's ``memos``, a ``Memos``),
    by its arguments (hashable, positional): computed once per object and arguments, at most
    ``max_entries`` of them kept."""

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def cached(self, *args):
            return self.memos.of(method.__name__, max_entries).get(args, lambda: method(self, *args))

        return cached

    return decorate
