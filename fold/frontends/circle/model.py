"""circle frontend, the model: the circle schema (``circle-schema``'s bindings) as a
``fold.frontends.flatbuffer.schema.Schema``, and a ``.circle`` model with the runtime that runs it.

How an operator code names its op, as ONE's readers do it (mio-circle ``builtin_code_neutral``, luci,
Model Explorer's circle adapter): ``builtin_code`` when ``deprecated_builtin_code`` is 127
(PLACEHOLDER_FOR_GREATER_OP_CODES), else ``deprecated_builtin_code``, which holds circle's own negative
codes (INSTANCE_NORM -2, ...) too. A code whose two fields disagree below 127 is refused: tico reads
``builtin_code`` where ONE reads the other, so the two would run different ops.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field

from circle_schema import circle

from fold.frontends.flatbuffer.model import FlatModel
from fold.frontends.flatbuffer.schema import PLACEHOLDER, Schema, pack_model, unpack_model

def _classes() -> types.SimpleNamespace:
    """The binding's classes by name: each sits in a module of its own name (``circle.Model.ModelT``)."""
    found = {}
    for module in vars(circle).values():
        if isinstance(module, types.ModuleType):
            name = module.__name__.rpartition(".")[2]
            found |= {n: getattr(module, n) for n in (name, name + "T") if hasattr(module, n)}
    return types.SimpleNamespace(**found)


CLASSES = _classes()
_CODES = {v for k, v in vars(CLASSES.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def builtin_code(code) -> int:
    """The op an operator code names (see the module docstring)."""
    if code.deprecatedBuiltinCode == PLACEHOLDER:
        return code.builtinCode
    return code.deprecatedBuiltinCode


def code_problem(code) -> str | None:
    """What keeps ONE's tools from reading an operator code, in words; None when nothing does."""
    deprecated, builtin = code.deprecatedBuiltinCode, code.builtinCode
    if deprecated == PLACEHOLDER:
        return None if builtin >= PLACEHOLDER else f"has deprecated_builtin_code 127 but builtin_code {builtin}"
    if deprecated not in _CODES:
        return f"names no circle operator (deprecated_builtin_code {deprecated})"
    if builtin not in (0, deprecated):
        return (f"names two operators: deprecated_builtin_code {deprecated}, builtin_code {builtin} "
                "(ONE's tools read the first, tico the second)")
    return None


CIRCLE_SCHEMA = Schema("circle", "circle", ".circle", b"CIR0", CLASSES, builtin_code,
                       lambda data: unpack_model(CLASSES, data), lambda tree: pack_model(tree, b"CIR0"),
                       code_problem)


@dataclass(eq=False)
class CircleModel(FlatModel):
    """A parsed .circle model (``FlatModel``), run by a circle runtime in a worker process
    (``fold.frontends.circle.runtime``), never in foldscope's own.

    runtime:   "tico", "onert" or "auto" (onert where it runs the model, else tico).
    probed:    with "auto", the runtime chosen for each model the frontend ran (the model, a copy with
               more outputs, its layers alone), by the bytes' key; refusals: why onert was not.
    """

    schema = CIRCLE_SCHEMA
    runtime: str = "auto"
    probed: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    refusals: dict[str, str] = field(default_factory=dict, init=False, repr=False)
