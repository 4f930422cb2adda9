"""TFLite frontend, input and output: read .tflite bytes safely, describe and run them with LiteRT.

The flatbuffer is read and written through the schema object API shipped with LiteRT
(``ai_edge_litert.schema_py_generated``, ``ai_edge_litert.tools.flatbuffer_utils``); no
hand-rolled parsing. Models run with LiteRT's builtin kernels, without the XNNPACK delegate
(deterministic, and no delegate chatter on stderr).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools.flatbuffer_utils import convert_object_to_bytearray, read_model_from_bytearray

from fold.core.verification import InputSpec, OutputSpec
from fold.errors import FoldError, one_line
from fold.frontends.tflite.match import TfliteModel, op_ids


def model_from_bytes(data: bytes, name: str = "model") -> TfliteModel:
    """A TfliteModel from a file's bytes; a corrupt file, or one LiteRT refuses, is a FoldError naming it."""
    tree = parse_tflite(data, name)
    interpreter(data, name)
    return TfliteModel(bytes(data), tree, name, op_ids(tree))


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
        raise FoldError(f"'{name}' is a corrupt TFLite file: {one_line(exc)}") from exc
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


def input_specs(model: TfliteModel) -> list[InputSpec]:
    """Name, shape (the batch axis is the fixed one the model was converted with) and dtype of each input."""
    return [InputSpec(d["name"], tuple(int(n) for n in d["shape"]), np.dtype(d["dtype"]).name)
            for d in interpreter(model.data, model.name).get_input_details()]


def output_specs(model: TfliteModel) -> list[OutputSpec]:
    return [OutputSpec(d["name"], -1) for d in interpreter(model.data, model.name).get_output_details()]


def runner(model: TfliteModel) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    """One interpreter for the model; the returned function runs one batch through it."""
    found = interpreter(model.data, model.name)
    in_details, out_details = found.get_input_details(), found.get_output_details()

    def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(in_details):
            raise FoldError(f"'{model.name}' takes {len(in_details)} inputs; received {len(inputs)}.")
        for detail, x in zip(in_details, inputs):
            found.set_tensor(detail["index"], np.ascontiguousarray(x, dtype=detail["dtype"]))
        found.invoke()
        return [np.array(found.get_tensor(d["index"])) for d in out_details]

    return run


def layer_outputs(model: TfliteModel, inputs: list[np.ndarray], nodes) -> dict[str, np.ndarray]:
    """Output 0 of each named op, read after the run with every intermediate tensor kept,
    one batch of the model's fixed size at a time."""
    found = interpreter(model.data, model.name, keep_all=True)
    in_details = found.get_input_details()
    wanted = {n: model.main.operators[model.ids.index(n)].outputs[0] for n in nodes if n in model.ids}
    batch = int(in_details[0]["shape"][0]) if in_details else 1
    rows = inputs[0].shape[0] if inputs else batch
    parts: dict[str, list[np.ndarray]] = {n: [] for n in wanted}
    for start in range(0, rows, batch):
        for detail, x in zip(in_details, inputs):
            found.set_tensor(detail["index"], np.ascontiguousarray(x[start:start + batch], dtype=detail["dtype"]))
        found.invoke()
        for name, tensor in wanted.items():
            parts[name].append(np.array(found.get_tensor(tensor)))
    return {name: values[0] if len(values) == 1 else np.concatenate([np.atleast_1d(v) for v in values])
            for name, values in parts.items()}
