"""What TensorFlow's TFLite converter makes of a Keras model, beside what foldscope makes of it."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from fold.core.rules import Decision, decide
from fold.core.verification import Verification, compare, sample_inputs
from fold.frontend import FRONTENDS
from fold.frontends.keras.io import to_tflite
from fold.frontends.tflite.io import model_from_bytes
from fold.frontends.tflite.match import TfliteModel, op_type
from fold.pipeline import run


@dataclass
class ConverterView:
    """The converter's model, its op graph and ops, its diff against Keras, and the conv -> MUL/ADD
    chains it left behind (with what foldscope would decide for them)."""

    tflite: bytes
    graph: nx.DiGraph
    ops: list[str]
    verification: Verification
    remaining: list[Decision]

    @property
    def max_abs_diff(self) -> float:
        return self.verification.max_abs_diff


def _keras_output_order(model: TfliteModel) -> list[int]:
    """Positions of Keras' outputs among the subgraph outputs, from the "output_<i>" signature names."""
    sg = model.main
    signatures = model.tree.signatureDefs or []
    by_name = {} if len(signatures) != 1 else {
        (m.name.decode() if isinstance(m.name, bytes) else m.name): m.tensorIndex for m in signatures[0].outputs or []}
    keys = [f"output_{k}" for k in range(len(sg.outputs))]
    if set(keys) != set(by_name):
        return list(range(len(sg.outputs)))
    return [list(sg.outputs).index(by_name[k]) for k in keys]


def converter_view(model, *, samples: int = 4, seed: int = 0) -> ConverterView:
    """Convert a Keras ``model`` with TF's converter and run both on the same inputs (the one recipe)."""
    keras_frontend, tflite_frontend = FRONTENDS["keras"].frontend(), FRONTENDS["tflite"].frontend()
    converted = model_from_bytes(to_tflite(model), model.name)
    specs = keras_frontend.inputs(model)
    inputs = sample_inputs(specs, samples, seed)
    reference = run(keras_frontend, model, inputs)
    outputs = run(tflite_frontend, converted, inputs)
    outputs = [outputs[i] for i in _keras_output_order(converted)]
    names = keras_frontend.outputs(model)
    verification = compare(reference, outputs, [o.name for o in names], channel_axes=[o.channel_axis for o in names],
                           samples=samples, seed=seed)
    ops = [op_type(converted.tree, op) for op in converted.main.operators]
    remaining = [decide(c, tflite_frontend.rules) for c in tflite_frontend.candidates(converted)]
    return ConverterView(converted.data, tflite_frontend.graph(converted), ops, verification, remaining)
