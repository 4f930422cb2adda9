"""The flatbuffer schemas of the TFLite family as the shared layer reads and writes them: one generated
binding (its object API), its file identifier, and the one rule that differs in reading an operator code.

circle (Samsung ONE) is TFLite's schema extended: the same tables and builtin operators, operators of its
own with negative codes (INSTANCE_NORM -2, RMS_NORM -6, BCQ_FULLY_CONNECTED -3, ...), one more
``Operator`` field (``debug_metadata_index``) and its own identifier ("CIR0" where TFLite has "TFL3").
An operator code names its op in two fields, the old int8 ``deprecated_builtin_code`` and the int32
``builtin_code``; the readers disagree on which wins:

    TFLite   code = max(builtin_code, deprecated_builtin_code)              (LiteRT's flatbuffer_utils)
    circle   code = builtin_code if deprecated_builtin_code == 127          (ONE's mio-circle, luci and
                    else deprecated_builtin_code                             Model Explorer's adapter)

(a circle file of schema 0.3 has no ``builtin_code`` at all, and circle's negative codes would lose a
``max``). Both are written the same way: ``deprecated_builtin_code = min(code, 127)``, 127 being
PLACEHOLDER_FOR_GREATER_OP_CODES, ``builtin_code = code``. Every field is read and written through the
binding's object API (``ModelT``); no hand-rolled parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import flatbuffers
import numpy as np

from fold.errors import FoldError

#: The deprecated int8 field's value for a code that does not fit in it (PLACEHOLDER_FOR_GREATER_OP_CODES).
PLACEHOLDER = 127


def _names(enum: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass(frozen=True)
class Schema:
    """One schema of the family.

    name, label:   the format's key in ``fold.frontend.FRONTENDS`` and its name for people.
    suffix:        its file suffix; identifier: the 4 bytes at offset 4 of a file.
    classes:       the generated binding's classes by name (``ModelT``, ``BuiltinOperator``, ...).
    builtin_code:  an ``OperatorCodeT``'s operator (see the module docstring).
    code_problem:  what is wrong with an operator code, in words (None: nothing), for the file checks.
    unpack, pack:  bytes -> ``ModelT`` and back (the binding's own reader and writer where it has them).
    """

    name: str
    label: str
    suffix: str
    identifier: bytes
    classes: Any
    builtin_code: Callable[[Any], int]
    unpack: Callable[[bytes], Any]
    pack: Callable[[Any], bytes]
    code_problem: Callable[[Any], str | None] = field(default=lambda code: None)

    @cached_property
    def op_names(self) -> dict[int, str]:
        return _names(self.classes.BuiltinOperator)

    @cached_property
    def activation_names(self) -> dict[int, str]:
        return _names(self.classes.ActivationFunctionType)

    @cached_property
    def tensor_type_names(self) -> dict[int, str]:
        return _names(self.classes.TensorType)

    def code(self, name: str) -> int:
        """The builtin code of op ``name`` ("CONV_2D")."""
        return getattr(self.classes.BuiltinOperator, name)

    def op_type(self, tree: Any, op: Any) -> str:
        """The op's builtin name ("CONV_2D") or its custom code."""
        code = tree.operatorCodes[op.opcodeIndex]
        builtin = self.builtin_code(code)
        if builtin == self.classes.BuiltinOperator.CUSTOM:
            custom = code.customCode or b"CUSTOM"
            return custom.decode(errors="replace") if isinstance(custom, bytes) else str(custom)
        return self.op_names.get(builtin, f"BUILTIN_{builtin}")

    def activation_of(self, op: Any) -> str:
        """The op's fused activation name ("NONE" when it has none or cannot have one)."""
        return self.activation_names.get(getattr(op.builtinOptions, "fusedActivationFunction", 0), "NONE")

    def operator_code(self, name: str, version: int = 1) -> Any:
        """A new ``OperatorCodeT`` for builtin op ``name``, written as both readers expect."""
        code = self.classes.OperatorCodeT()
        code.builtinCode, code.version = self.code(name), version
        code.deprecatedBuiltinCode = min(code.builtinCode, PLACEHOLDER)
        return code

    def parse(self, data: bytes, name: str = "model") -> Any:
        """The object tree of a file's bytes; a foreign, corrupt or inconsistent file is one FoldError
        sentence naming it. Every index a table holds is checked against what it indexes."""
        if len(data) < 8 or bytes(data[4:8]) != self.identifier:
            raise FoldError(f"'{name}' is not a {self.label} flatbuffer (no '{self.identifier.decode()}' identifier).")
        try:
            model = self.unpack(data)
        except Exception as exc:  # the generated reader raises anything on a truncated buffer
            raise FoldError(f"'{name}' is a corrupt {self.label} file: its tables point past its {len(data):,} "
                            "bytes (it is truncated or damaged).") from exc
        if not model.subgraphs or model.subgraphs[0].operators is None:
            raise FoldError(f"'{name}' holds no operators.")
        self._check(model, name)
        return model

    def _check(self, model: Any, name: str) -> None:
        """Every tensor, buffer and opcode index in range, every operator code readable."""
        corrupt = f"'{name}' is a corrupt {self.label} file"
        codes = model.operatorCodes or []
        for i, code in enumerate(codes):
            problem = self.code_problem(code)
            if problem:
                raise FoldError(f"{corrupt}: operator code {i} {problem}.")
        buffers = len(model.buffers or [])
        for sg in model.subgraphs:
            tensors = len(sg.tensors or [])
            indices = [*(sg.inputs if sg.inputs is not None else []), *(sg.outputs if sg.outputs is not None else [])]
            for op in sg.operators or []:
                if not 0 <= op.opcodeIndex < len(codes):
                    raise FoldError(f"{corrupt}: operator code {op.opcodeIndex} does not exist.")
                indices += [*(op.inputs if op.inputs is not None else []), *(op.outputs if op.outputs is not None else [])]
            if any(not -1 <= int(t) < tensors for t in indices):
                raise FoldError(f"{corrupt}: an operator refers to a tensor that does not exist.")
            if any(not 0 <= t.buffer < max(buffers, 1) for t in sg.tensors or []):
                raise FoldError(f"{corrupt}: a tensor refers to a buffer that does not exist.")


def unpack_model(classes: Any, data: bytes) -> Any:
    """A ``ModelT`` from a file's bytes with the generated reader: buffers stored past the flatbuffer
    (``offset``/``size``, for models over 2 GB) read in, every other array made a list (the reader
    hands out read-only views of the file's bytes for them). A buffer outside the file is a ValueError."""
    model = classes.ModelT.InitFromObj(classes.Model.GetRootAs(data, 0))
    for buffer in model.buffers or []:
        if getattr(buffer, "offset", 0):
            if buffer.offset < 0 or buffer.size < 0 or buffer.offset + buffer.size > len(data):
                raise ValueError("a buffer lies outside the file")
            buffer.data = np.frombuffer(bytes(data[buffer.offset:buffer.offset + buffer.size]), np.uint8)
            buffer.offset = buffer.size = 0
    _as_lists(model, set())
    return model


def _as_lists(node: Any, seen: set[int]) -> None:
    """Every NumPy array of a generated object tree made a list, but a buffer's data."""
    if id(node) in seen or not hasattr(node, "__dict__"):
        return
    seen.add(id(node))
    for key, value in vars(node).items():
        if isinstance(value, np.ndarray):
            if key != "data":
                setattr(node, key, value.tolist())
        elif isinstance(value, list):
            for item in value:
                _as_lists(item, seen)
        else:
            _as_lists(value, seen)


def pack_model(tree: Any, identifier: bytes) -> bytes:
    """A ``ModelT`` as file bytes with ``identifier``."""
    builder = flatbuffers.Builder(1024)
    builder.Finish(tree.Pack(builder), file_identifier=identifier)
    return bytes(builder.Output())
