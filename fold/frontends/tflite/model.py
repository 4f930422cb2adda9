"""TFLite frontend, the model: LiteRT's schema as a ``fold.frontends.flatbuffer.schema.Schema`` and a
``.tflite`` model with the one LiteRT interpreter that describes and runs it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools.flatbuffer_utils import (
    convert_object_to_bytearray,
    get_builtin_code_from_operator_code,
    read_model_from_bytearray,
)

from fold.errors import FoldError, one_line
from fold.frontends.flatbuffer.model import FlatModel
from fold.frontends.flatbuffer.schema import Schema

#: LiteRT's own binding, reader and writer.
TFLITE_SCHEMA = Schema("tflite", "TFLite", ".tflite", b"TFL3", schema, get_builtin_code_from_operator_code,
                lambda data: read_model_from_bytearray(bytearray(data)),
                lambda tree: bytes(convert_object_to_bytearray(tree)))


def interpreter(data: bytes, name: str = "model", keep_all: bool = False):
    """A LiteRT interpreter with its tensors allocated; FoldError when LiteRT refuses the model.

    ``keep_all`` keeps every intermediate tensor readable after ``invoke`` (for layer outputs).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        found = Interpreter(model_content=bytes(data), experimental_preserve_all_tensors=keep_all,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        found.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        raise FoldError(f"LiteRT cannot run '{name}': {one_line(exc)}") from exc
    return found


@dataclass(eq=False)
class TfliteModel(FlatModel):
    """A parsed .tflite model (``FlatModel``) whose ``interpreter`` is built once."""

    schema = TFLITE_SCHEMA
    _interpreter: Any = field(default=None, init=False, repr=False)

    @property
    def interpreter(self):
        """The model's LiteRT interpreter (built on first use); FoldError when LiteRT refuses it."""
        with self.lock:
            if self._interpreter is None:
                self._interpreter = interpreter(self.data, self.name)
            return self._interpreter
