"""Fresh names for what a rewrite adds, written once for every op-level format."""

from __future__ import annotations

from collections.abc import Iterable


class Names:
    """Names that collide with none of ``taken`` (nor with each other)."""

    def __init__(self, taken: Iterable[str]):
        self.taken = set(taken)

    def fresh(self, name: str) -> str:
        candidate, k = name, 1
        while candidate in self.taken:
            candidate, k = f"{name}_{k}", k + 1
        self.taken.add(candidate)
        return candidate
