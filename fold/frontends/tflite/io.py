"""TFLite frontend, input and output: read .tflite bytes safely, describe and run them with LiteRT.

The flatbuffer is read and written through the schema object API shipped with LiteRT
(``ai_edge_litert.schema_py_generated``, ``ai_edge_litert.tools.flatbuffer_utils``) and checked by the
shared ``fold.frontends.flatbuffer.schema``; no hand-rolled parsing. Models run with LiteRT's builtin
kernels, without the XNNPACK delegate (deterministic, and no delegate chatter on stderr).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fold.core.verdict import as_shaped
from fold.core.verification import InputSpec, OutputSpec, arrays_text
from fold.errors import FoldError, one_line
from fold.frontend import LayerRunner, Tap
from fold.frontends.flatbuffer.alone import alone
from fold.frontends.flatbuffer.model import tensor_name
from fold.frontends.flatbuffer.view import view_of
from fold.frontends.tflite.model import TFLITE_SCHEMA, TfliteModel, interpreter


def model_from_bytes(data: bytes, name: str = "model") -> TfliteModel:
    """A TfliteModel from a file's bytes; a corrupt file, or one LiteRT refuses, is a FoldError naming it."""
    model = TfliteModel.from_tree(data, TFLITE_SCHEMA.parse(data, name), name)
    model.interpreter  # noqa: B018 - a model LiteRT refuses is a bad input, named here
    return model


def input_specs(model: TfliteModel) -> list[InputSpec]:
    """Name, shape (the batch axis is the fixed one the model was converted with) and dtype of each input."""
    return [InputSpec(d["name"], tuple(int(n) for n in d["shape"]), np.dtype(d["dtype"]).name)
            for d in model.interpreter.get_input_details()]


def output_specs(model: TfliteModel) -> list[OutputSpec]:
    return [OutputSpec(d["name"], -1) for d in model.interpreter.get_output_details()]


def runner(model: TfliteModel) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    """The model's interpreter; the returned function runs one batch through it (one run at a time)."""
    found = model.interpreter
    in_details, out_details = found.get_input_details(), found.get_output_details()

    def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(in_details):
            raise FoldError(f"'{model.name}' takes {len(in_details)} inputs; received {len(inputs)}.")
        with model.lock:
            _invoke(found, model.name, in_details, inputs)
            return [np.array(found.get_tensor(d["index"])) for d in out_details]

    return run


def _invoke(found, name: str, details: list[dict], inputs: list[np.ndarray]) -> None:
    """Set the inputs and run the interpreter; LiteRT's refusal is one FoldError naming the model and the
    inputs' shapes."""
    try:
        for detail, x in zip(details, inputs):
            found.set_tensor(detail["index"], np.ascontiguousarray(x, dtype=detail["dtype"]))
        found.invoke()
    except (RuntimeError, ValueError) as exc:
        shapes = arrays_text({d["name"]: x for d, x in zip(details, inputs)})
        raise FoldError(f"LiteRT cannot run '{name}' on {shapes}: {one_line(exc)}") from exc


def tapper(model: TfliteModel, nodes=(), feeds=()) -> Callable[[list[np.ndarray]], Tap]:
    """One interpreter keeping every intermediate tensor: the outputs, output 0 of each named op
    and the data inputs of each fed op, read after one run of the model's fixed batch."""
    found = interpreter(model.data, model.name, keep_all=True)
    in_details, out_details = found.get_input_details(), found.get_output_details()
    view = view_of(model)
    taps = {n: int(view.by_name[n].output) for n in nodes if n in view.by_name and view.by_name[n].output}
    inputs = {tensor_name(model.main, t): t for t in model.main.inputs}
    taps |= {n: inputs[n] for n in nodes if n in inputs}
    fed = {f: [int(t) for t in view.data_inputs(view.by_name[f])] for f in feeds if f in view.by_name}

    def run(xs: list[np.ndarray]) -> Tap:
        _invoke(found, model.name, in_details, xs)
        return Tap([np.array(found.get_tensor(d["index"])) for d in out_details],
                   {n: np.array(found.get_tensor(t)) for n, t in taps.items()},
                   {f: [np.array(found.get_tensor(t)) for t in ts] for f, ts in fed.items()})

    return run


def layer_runner(model: TfliteModel, layers, magnitude: bool = False) -> LayerRunner:
    """Every op (through ``until``; alone when ``magnitude``) in one model of its own in LiteRT."""
    built = alone(model, layers, magnitude)
    if built is None:
        return LayerRunner(frozenset(), lambda feeds, inputs: {})
    found = interpreter(built.data, model.name)
    dtypes = {d["index"]: d["dtype"] for d in found.get_input_details()}
    shapes = {d["index"]: tuple(int(n) for n in d["shape"]) for d in found.get_input_details()}

    def run(feeds, _inputs) -> dict[str, np.ndarray]:
        for name, (fed, _) in built.ends.items():
            for t, x in zip(fed, feeds[name]):  # a 1-D layer's input, fed to the converter's 2-D op
                found.set_tensor(t, np.ascontiguousarray(as_shaped(x, shapes[t]), dtype=dtypes[t]))
        found.invoke()
        return {name: np.array(found.get_tensor(out)) for name, (_, out) in built.ends.items()}

    return LayerRunner(built.layers, run)
