"""A flatbuffer model of the TFLite family: its bytes, its schema's object tree and a stable id per op.
Each format's model (``TfliteModel``, ``CircleModel``) adds the runtime that describes and runs it."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fold.frontends.flatbuffer.schema import Schema


def tensor_name(sg: Any, t: int) -> str:
    name = sg.tensors[t].name
    return (name.decode(errors="replace") if isinstance(name, bytes) else name) or f"tensor_{t}"


@dataclass(eq=False)
class FlatModel:
    """A parsed model: its bytes, its object tree and a stable id per op of subgraph 0 ("OP:i", i the
    op's index in the file the user gave). Compared and hashed by identity, so that the frontend can
    cache one view of each model; ``lock`` serializes the runs through its runtime."""

    #: The format's schema (set by each format's model class).
    schema: ClassVar[Schema]

    data: bytes
    tree: Any
    name: str
    ids: list[str]
    lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_tree(cls, data: bytes, tree: Any, name: str, **fields: Any):
        """A freshly read model: its ops' ids are "OP:index"."""
        ops = tree.subgraphs[0].operators
        return cls(bytes(data), tree, name, [f"{cls.schema.op_type(tree, op)}:{i}" for i, op in enumerate(ops)],
                   **fields)

    def derived(self, tree: Any, ids: list[str]):
        """A new model of the same kind and options from an edited tree (the ops keep the ids given)."""
        return dataclasses.replace(self, data=self.schema.pack(tree), tree=tree, ids=ids)

    @property
    def main(self) -> Any:
        return self.tree.subgraphs[0]

    @property
    def stem(self) -> str:
        """The name without its format's suffix, for graphs and file names."""
        suffix = self.schema.suffix
        return self.name[:-len(suffix)] if self.name.lower().endswith(suffix) else self.name
