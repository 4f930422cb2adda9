"""What TensorFlow's TFLite converter makes of a Keras model, beside what foldscope makes of it:
the converted model checked against the Keras one (``fold.check``: every layer the converter
folded a BN into, at its own scale, and the outputs)."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from fold.check import check
from fold.comparison import Side
from fold.core.rules import Decision, decide
from fold.core.verification import Verification
from fold.frontend import FRONTENDS
from fold.frontends.keras.io import to_tflite
from fold.frontends.tflite.io import model_from_bytes
from fold.frontends.tflite.model import TFLITE_SCHEMA


@dataclass
class ConverterView:
    """The converter's model, its op graph and ops, its check against Keras, and the conv -> MUL/ADD
    chains it left behind (with what foldscope would decide for them)."""

    tflite: bytes
    graph: nx.DiGraph
    ops: list[str]
    verification: Verification
    remaining: list[Decision]

    @property
    def max_abs_diff(self) -> float:
        return self.verification.max_abs_diff


def converter_view(model, *, samples: int = 4, seed: int = 0) -> ConverterView:
    """Convert a Keras ``model`` with TF's converter and check the result against it (the one recipe)."""
    keras_frontend, tflite_frontend = FRONTENDS["keras"].frontend(), FRONTENDS["tflite"].frontend()
    converted = model_from_bytes(to_tflite(model), model.name)
    graph = tflite_frontend.graph(converted)
    result = check(Side(keras_frontend, model, keras_frontend.graph(model)), Side(tflite_frontend, converted, graph),
                   samples, seed)
    ops = [TFLITE_SCHEMA.op_type(converted.tree, op) for op in converted.main.operators]
    remaining = [decide(c, tflite_frontend.rules) for c in tflite_frontend.candidates(converted)]
    return ConverterView(converted.data, graph, ops, result.checked.verification, remaining)
