"""TFLite frontend, input and output: read .tflite bytes safely, describe and run them with LiteRT.

The flatbuffer is read and written through the schema object API shipped with LiteRT
(``ai_edge_litert.schema_py_generated``, ``ai_edge_litert.tools.flatbuffer_utils``); no
hand-rolled parsing. Models run with LiteRT's builtin kernels, without the XNNPACK delegate
(deterministic, and no delegate chatter on stderr).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools.flatbuffer_utils import convert_object_to_bytearray, read_model_from_bytearray

from fold.core.verdict import as_shaped
from fold.core.verification import InputSpec, OutputSpec, arrays_text
from fold.errors import FoldError, one_line
from fold.frontend import LayerRunner, Tap
from fold.frontends.ops.view import values_read
from fold.frontends.tflite.model import TfliteModel, interpreter, op_ids, tensor_name
from fold.frontends.tflite.view import SLOTS, TfliteView, view_of


def model_from_bytes(data: bytes, name: str = "model") -> TfliteModel:
    """A TfliteModel from a file's bytes; a corrupt file, or one LiteRT refuses, is a FoldError naming it."""
    tree = parse_tflite(data, name)
    model = TfliteModel(bytes(data), tree, name, op_ids(tree))
    model.interpreter  # noqa: B018 - a model LiteRT refuses is a bad input, named here
    return model


def serialize(tree: schema.ModelT) -> bytes:
    """Pack a schema object tree into TFLite flatbuffer bytes."""
    return bytes(convert_object_to_bytearray(tree))


def parse_tflite(data: bytes, name: str = "model") -> schema.ModelT:
    """The schema object tree of a TFLite flatbuffer; a corrupt or foreign file is a FoldError."""
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise FoldError(f"'{name}' is not a TFLite flatbuffer (no 'TFL3' identifier).")
    try:
        model = read_model_from_bytearray(bytearray(data))
    except Exception as exc:  # the generated reader raises anything on a truncated buffer
        raise FoldError(f"'{name}' is a corrupt TFLite file: its tables point past its {len(data):,} bytes "
                        "(it is truncated or damaged).") from exc
    if not model.subgraphs or model.subgraphs[0].operators is None:
        raise FoldError(f"'{name}' holds no operators.")
    _check_indices(model, name)
    return model


def _check_indices(model: schema.ModelT, name: str) -> None:
    """Every tensor, buffer and opcode index in range (a corrupt file can point anywhere)."""
    buffers, codes = len(model.buffers or []), len(model.operatorCodes or [])
    for sg in model.subgraphs:
        tensors = len(sg.tensors or [])
        indices = [*(sg.inputs if sg.inputs is not None else []), *(sg.outputs if sg.outputs is not None else [])]
        for op in sg.operators or []:
            if not 0 <= op.opcodeIndex < codes:
                raise FoldError(f"'{name}' is a corrupt TFLite file: operator code {op.opcodeIndex} does not exist.")
            indices += [*(op.inputs if op.inputs is not None else []), *(op.outputs if op.outputs is not None else [])]
        if any(not -1 <= int(t) < tensors for t in indices):
            raise FoldError(f"'{name}' is a corrupt TFLite file: an operator refers to a tensor that does not exist.")
        if any(not 0 <= t.buffer < max(buffers, 1) for t in sg.tensors or []):
            raise FoldError(f"'{name}' is a corrupt TFLite file: a tensor refers to a buffer that does not exist.")


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


def _alone(model: TfliteModel, view: TfliteView, paths: dict[str, list[int]], magnitude: bool
           ) -> tuple[bytes, dict[str, tuple]]:
    """One model holding each op path alone (in order, each op reading the one before), every path
    with tensors of its own: the first op's data inputs become model inputs; constants are copied
    (a weight behind a DEQUANTIZE as the float32 values it makes; magnitude: |filter|, zero bias,
    no fused activation). Returns its bytes and layer -> (its input indices, its output index) in
    the new subgraph."""
    tree, sg = model.tree, model.main
    new = schema.ModelT()
    new.version, new.description = tree.version, b"foldscope: layers alone"
    new.buffers, new.operatorCodes = [schema.BufferT()], []
    graph = schema.SubGraphT()
    graph.tensors, graph.operators, graph.inputs, graph.outputs = [], [], [], []
    codes: dict[int, int] = {}
    ends = {}
    for name, ops in paths.items():
        tensors: dict[int, int] = {}

        def tensor(t: int, data: np.ndarray | None = None) -> int:
            if t < 0:
                return t
            if t not in tensors:
                copied = copy.deepcopy(sg.tensors[t])
                copied.buffer = 0
                if data is not None:
                    buffer = schema.BufferT()
                    buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
                    new.buffers.append(buffer)
                    copied.buffer = len(new.buffers) - 1
                graph.tensors.append(copied)
                tensors[t] = len(graph.tensors) - 1
            return tensors[t]

        first = view.ops[ops[0]]
        layer = _linear(view, ops)
        slots = SLOTS[view.ops[layer].type]
        for i in ops:
            op = copy.deepcopy(sg.operators[i])
            kind = view.ops[i].type
            if op.opcodeIndex not in codes:
                new.operatorCodes.append(copy.deepcopy(tree.operatorCodes[op.opcodeIndex]))
                codes[op.opcodeIndex] = len(new.operatorCodes) - 1
            op.opcodeIndex = codes[op.opcodeIndex]
            inputs = []
            for slot, t in enumerate(op.inputs):
                data = None
                if t >= 0 and view.is_constant(str(t)):
                    data = view.value(str(t))
                    if magnitude and i == layer and slot in slots:
                        data = np.abs(data) if slot == slots[0] else np.zeros_like(data)
                    elif magnitude and kind in view.vocabulary.adds:
                        data = np.zeros_like(data)  # a partial fold's shift: Σ|W||x| reads |x| alone
                elif t >= 0 and kind in ("TRANSPOSE_CONV", "RESHAPE") and str(t) not in view.data_inputs(view.ops[i]):
                    # a shape computed at run time: alone, the op takes its output's static shape
                    data = np.asarray(sg.tensors[op.outputs[0]].shape, dtype=np.int32)
                inputs.append(tensor(t, data))
            op.inputs = inputs
            op.outputs = [tensor(t) for t in op.outputs]
            if magnitude and hasattr(op.builtinOptions, "fusedActivationFunction"):
                op.builtinOptions.fusedActivationFunction = schema.ActivationFunctionType.NONE
            graph.operators.append(op)
        fed = [tensors[int(t)] for t in view.data_inputs(first)]
        out = tensors[sg.operators[ops[-1]].outputs[0]]
        graph.inputs += fed
        graph.outputs.append(out)
        ends[name] = (fed, out)
    new.subgraphs = [graph]
    return serialize(new), ends


def _linear(view: TfliteView, ops: list[int]) -> int | None:
    """The path's layer: its first op with a kind and a constant filter (None when it has none)."""
    return next((i for i in ops if view.ops[i].type in SLOTS
                 and view.is_constant(view.ops[i].inputs[SLOTS[view.ops[i].type][0]])), None)


def _ops_until(view: TfliteView, layer: int, until: str) -> list[int] | None:
    """Op indices from ``layer`` to the op named ``until``, each reading the one before."""
    path = [view.ops[layer]]
    while path[-1].id != until:
        after = values_read(view, path[-1].output)
        if len(after) != 1 or len(path) > 16:
            return None
        path.append(after[0])
    return [op.index for op in path]


def layer_runner(model: TfliteModel, layers, magnitude: bool = False) -> LayerRunner:
    """Every path from an op through ``until`` (a layer and the ops after it; or, for a forward fold, the
    ops before it from where the map was) in one model of its own in LiteRT (``magnitude``: the layer's
    |filter|, no bias, no added constants, no fused activation)."""
    view = view_of(model)
    paths = {}
    for name, until in layers:
        op = view.by_name.get(name)
        path = None if op is None else _ops_until(view, op.index, until)
        if path is not None and _linear(view, path) is not None:
            paths[name] = path
    if not paths:
        return LayerRunner(frozenset(), lambda feeds, inputs: {})
    data, ends = _alone(model, view, paths, magnitude)
    alone = interpreter(data, model.name)
    dtypes = {d["index"]: d["dtype"] for d in alone.get_input_details()}
    shapes = {d["index"]: tuple(int(n) for n in d["shape"]) for d in alone.get_input_details()}

    def run(feeds, _inputs) -> dict[str, np.ndarray]:
        for name, (fed, _) in ends.items():
            for t, x in zip(fed, feeds[name]):  # a 1-D layer's input, fed to the converter's 2-D op
                alone.set_tensor(t, np.ascontiguousarray(as_shaped(x, shapes[t]), dtype=dtypes[t]))
        alone.invoke()
        return {name: np.array(alone.get_tensor(out)) for name, (_, out) in ends.items()}

    return LayerRunner(frozenset(paths), run)
