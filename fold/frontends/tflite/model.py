"""TFLite frontend, the model: a flatbuffer's bytes, its schema object tree, a stable id per op, and
the one LiteRT interpreter that describes and runs it; with the schema's names for ops,
activations and tensor types."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools.flatbuffer_utils import get_builtin_code_from_operator_code

from fold.errors import FoldError, one_line


def _names(enum: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


OP_NAMES = _names(schema.BuiltinOperator)
ACTIVATION_NAMES = _names(schema.ActivationFunctionType)
TENSOR_TYPE_NAMES = _names(schema.TensorType)


def op_type(model: schema.ModelT, op: schema.OperatorT) -> str:
    """The op's builtin name ("CONV_2D") or its custom code."""
    code = model.operatorCodes[op.opcodeIndex]
    builtin = get_builtin_code_from_operator_code(code)
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.customCode or b"CUSTOM"
        return custom.decode(errors="replace") if isinstance(custom, bytes) else str(custom)
    return OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


def activation_of(op: schema.OperatorT) -> str:
    """The op's fused activation name ("NONE" when it has none or cannot have one)."""
    return ACTIVATION_NAMES[getattr(op.builtinOptions, "fusedActivationFunction", 0)]


def tensor_name(sg: schema.SubGraphT, t: int) -> str:
    name = sg.tensors[t].name
    return (name.decode(errors="replace") if isinstance(name, bytes) else name) or f"tensor_{t}"


def op_ids(tree: schema.ModelT) -> list[str]:
    """The ids of a freshly read model's ops: "OP:index"."""
    return [f"{op_type(tree, op)}:{i}" for i, op in enumerate(tree.subgraphs[0].operators)]


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
class TfliteModel:
    """A parsed .tflite model: its bytes, its schema object tree and a stable id per op of
    subgraph 0 ("OP:i", i the op's index in the file the user gave). Compared and hashed by
    identity, so that the frontend can cache one view of each model; ``interpreter`` is built
    once, and ``lock`` serializes the runs through it."""

    data: bytes
    tree: schema.ModelT
    name: str
    ids: list[str]
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _interpreter: Any = field(default=None, repr=False)

    @property
    def main(self) -> schema.SubGraphT:
        return self.tree.subgraphs[0]

    @property
    def stem(self) -> str:
        """The name without a .tflite suffix, for graphs and file names."""
        return self.name[:-7] if self.name.lower().endswith(".tflite") else self.name

    @property
    def interpreter(self):
        """The model's LiteRT interpreter (built on first use); FoldError when LiteRT refuses it."""
        with self.lock:
            if self._interpreter is None:
                self._interpreter = interpreter(self.data, self.name)
            return self._interpreter
