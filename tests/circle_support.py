"""circle models for tests: TFLite files copied into circle's schema, as ONE's tflite2circle does, and
PyTorch modules converted by tico, as Samsung's own torch -> circle route does.

``to_circle`` copies a TFLite model table by table into circle's object API: the classes by name, the
enums by name (the few whose values differ: TensorType's UINT4, QuantizationDetails), identifier
CIR0; swapping the 4 identifier bytes alone would not do (circle's Operator has one more field, so
every later slot is read one off). ``tico_model`` converts a PyTorch module without tico's O1
optimizations (the file as tico's converter writes it); ``tico_optimized`` runs tico's own O1 pipeline
(its BN fusion included) on circle bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as tflite

from fold.frontends.circle.model import CIRCLE_SCHEMA, CLASSES
from fold.frontends.tflite.model import TFLITE_SCHEMA

#: Enums whose values differ between the two schemas, by the field that holds them.
_BY_NAME = {("TensorT", "type"): "TensorType", ("QuantizationParametersT", "detailsType"): "QuantizationDetails"}


def _copied(value: Any, owner: str = "", field: str = "") -> Any:
    if isinstance(value, list):
        return [_copied(v) for v in value]
    if value is None or isinstance(value, (np.ndarray, np.generic, int, float, bytes, str, bool)):
        enum = _BY_NAME.get((owner, field))
        if enum is not None and value is not None:
            name = {v: k for k, v in vars(getattr(tflite, enum)).items() if not k.startswith("_")}[value]
            return getattr(getattr(CLASSES, enum), name)
        return value
    cls = type(value).__name__
    copy = getattr(CLASSES, cls)()
    for key in vars(copy):
        if hasattr(value, key):
            setattr(copy, key, _copied(getattr(value, key), cls, key))
    return copy


def to_circle(data: bytes) -> bytes:
    """A .tflite file's bytes as a .circle file's (see the module docstring)."""
    return CIRCLE_SCHEMA.pack(_copied(TFLITE_SCHEMA.parse(data)))


def tico_model(module, example: tuple) -> bytes:
    """``module`` (in eval mode) converted by tico without its O1 pipeline."""
    import tico
    from tico.config.v1 import CompileConfigV1

    config = CompileConfigV1()
    config.set("circle_optimize", False)
    return bytes(tico.convert(module.eval(), example, config=config).circle_binary)


def tico_optimized(data: bytes) -> bytes:
    """tico's own O1 pipeline (constant folding, its linear fusions: a MUL or ADD by a per-channel
    constant right after a CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV or FULLY_CONNECTED) on circle bytes."""
    from tico.circle.export import optimize_for_export

    return optimize_for_export(data)
