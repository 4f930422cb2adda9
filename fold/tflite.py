"""TFLite frontend: read, graph, fold, write and verify ``.tflite`` flatbuffers; export Keras to TFLite.

The flatbuffer is read and written through the schema object API shipped with LiteRT
(``ai_edge_litert.schema_py_generated``, ``ai_edge_litert.tools.flatbuffer_utils``). The
pattern, its rules and the rewrite live in ``fold.tflite_rules``::

    BEFORE                                  AFTER
    [In] -> TRANSPOSE_CONV -> [t]           [In] -> TRANSPOSE_CONV(Filter*s, Bias*s+t, RELU6) -> [Out]
            [t] -> MUL(s) -> ADD(t, RELU6) -> [Out]

    result = fold_tflite("net.tflite")           # never modifies the input
    check = verify_tflite(result.original, result.folded, samples=8, seed=0)
    Path("net_folded.tflite").write_bytes(result.folded)

TensorFlow is imported only by the Keras helpers (``keras_to_tflite``, ``converter_view``).
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools.flatbuffer_utils import convert_object_to_bytearray, read_model_from_bytearray

from fold.errors import FoldError, one_line
from fold.files import MAX_MODEL_BYTES, size_pair
from fold.graph import role_of
from fold.rules import CountedFromGraphs
from fold.tflite_rules import (
    ACTIVATION_NAMES, SLOTS, TFLITE_KINDS, TfliteDecision, decide_all, following_add, is_constant,
    node_id, op_type, readers, rewrite,
)
from fold.verification import Verification, compare

_SLOT_NAMES = {op: {filt: TFLITE_KINDS[op].weight, bias: "bias"} for op, (filt, bias) in SLOTS.items()}
_SLOT_NAMES["TRANSPOSE_CONV"][0] = "output_shape"


def load_tflite(path: str | os.PathLike, max_bytes: int = MAX_MODEL_BYTES) -> bytes:
    """The bytes of a .tflite file, or a one-sentence FoldError."""
    p = Path(path)
    if not p.is_file():
        raise FoldError(f"No such .tflite file: '{p}'.")
    size = p.stat().st_size
    if size > max_bytes:
        raise FoldError(f"'{p.name}' is {size_pair(size, max_bytes)} limit.")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise FoldError(f"Cannot read '{p.name}': {exc.strerror}.") from exc


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


def serialize(model: schema.ModelT) -> bytes:
    """Pack the object tree into TFLite flatbuffer bytes."""
    return bytes(convert_object_to_bytearray(model))


def _config(op: schema.OperatorT) -> dict:
    """The op's builtin options worth showing, enums by name."""
    config: dict = {}
    if op.builtinOptions is None:
        return config
    for key, value in vars(op.builtinOptions).items():
        if key == "fusedActivationFunction":
            config["activation"] = ACTIVATION_NAMES[value]
        elif key == "padding":
            config["padding"] = "SAME" if value == schema.Padding.SAME else "VALID"
        elif isinstance(value, (bool, int, float)):
            config[key] = value
    return config


def _role(model: schema.ModelT, sg: schema.SubGraphT, index: int, found: dict[int, list[int]]) -> str:
    op = sg.operators[index]
    kind = op_type(model, op)
    if kind in TFLITE_KINDS:
        return "linear"
    if kind == "MUL" and any(is_constant(model, sg, t) for t in op.inputs) \
            and following_add(model, sg, index, found) is not None:
        return "bn"  # the MUL of a constant MUL -> ADD pair: a decomposed BatchNorm
    return role_of(kind)


def _tensor_name(sg: schema.SubGraphT, t: int) -> str:
    name = sg.tensors[t].name
    return (name.decode(errors="replace") if isinstance(name, bytes) else name) or f"tensor_{t}"


def op_graph(model: schema.ModelT, name: str = "model") -> nx.DiGraph:
    """The main subgraph as foldscope's graph (see fold.graph): ops as nodes, tensors as edges."""
    sg = model.subgraphs[0]
    graph = nx.DiGraph(name=name, frontend="tflite", inputs=[], outputs=[])
    producer: dict[int, str] = {}
    for t in sg.inputs:
        node = _tensor_name(sg, t)
        graph.add_node(node, op="INPUT", role="input", config={}, weights={}, calls=1)
        graph.graph["inputs"].append(node)
        producer[t] = node
    found = readers(sg)
    for i, op in enumerate(sg.operators):
        kind = op_type(model, op)
        names = _SLOT_NAMES.get(kind, {})
        weights = {names.get(slot, _tensor_name(sg, t)): tuple(int(d) for d in sg.tensors[t].shape)
                   for slot, t in enumerate(op.inputs) if t >= 0 and is_constant(model, sg, t)}
        node = node_id(i, kind)
        graph.add_node(node, op=kind, role=_role(model, sg, i, found), config=_config(op), weights=weights, calls=1)
        for t in op.inputs:
            if t in producer:
                graph.add_edge(producer[t], node, shape=tuple(int(d) for d in sg.tensors[t].shape))
        producer.update({t: node for t in op.outputs})
    graph.graph["outputs"] = [producer[t] for t in sg.outputs if t in producer]
    return graph


@dataclass
class TfliteFoldResult(CountedFromGraphs):
    """A folded TFLite model (bytes) with everything needed to explain it.

    bn_before / bn_after count decomposed BatchNorms (constant MUL -> ADD pairs).
    """

    original: bytes
    folded: bytes
    decisions: list[TfliteDecision]
    graph_before: nx.DiGraph
    graph_after: nx.DiGraph
    timings_s: dict[str, float] = field(default_factory=dict)


def fold_tflite(source: bytes | str | os.PathLike, *, name: str | None = None,
                split_activation: bool = False) -> TfliteFoldResult:
    """Decide every conv -> MUL/ADD chain of a .tflite model (bytes or path) and fold it.

    ``name`` names the model in messages (default: the file name, or "model" for bytes).
    ``split_activation`` keeps the ADD's fused activation as a separate op (as Samsung ONE
    does) instead of fusing it into the conv.
    """
    start = time.perf_counter()
    if name is None:
        name = "model" if isinstance(source, (bytes, bytearray)) else Path(source).name
    data = bytes(source) if isinstance(source, (bytes, bytearray)) else load_tflite(source)
    loaded = time.perf_counter()
    model = parse_tflite(data, name)
    _interpreter(data, name)  # a model LiteRT refuses is a bad input, named here
    folds = decide_all(model, split_activation)
    folded = rewrite(model, folds)
    stem = Path(name).stem
    return TfliteFoldResult(data, serialize(folded), [d for _, d in folds], op_graph(model, stem),
                            op_graph(folded, f"{stem}_folded"),
                            {"load": loaded - start, "fold": time.perf_counter() - loaded})


def _interpreter(data: bytes, name: str = "model"):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        # Builtin kernels without the XNNPACK delegate: deterministic, and no delegate chatter on stderr.
        interpreter = Interpreter(model_content=bytes(data),
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        raise FoldError(f"LiteRT cannot run '{name}': {one_line(exc)}") from exc
    return interpreter


def sample_tflite_inputs(data: bytes, samples: int = 4, seed: int = 0) -> list[np.ndarray]:
    """Seeded inputs for ``samples`` runs of the model, stacked along the batch axis."""
    rng = np.random.default_rng(seed)
    arrays = []
    for detail in _interpreter(data).get_input_details():
        shape = [samples * int(detail["shape"][0]), *(int(d) for d in detail["shape"][1:])]
        dtype = np.dtype(detail["dtype"])
        if dtype.kind in "iub":
            arrays.append(rng.integers(0, 2 if dtype.kind == "b" else 10, size=shape).astype(dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays


def run_tflite(data: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run the model batch by batch (its own batch size) over ``inputs``; outputs in subgraph order."""
    interpreter = _interpreter(data)
    in_details, out_details = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != len(in_details):
        raise FoldError(f"The model takes {len(in_details)} inputs; received {len(inputs)}.")
    batches = [int(d["shape"][0]) for d in in_details]
    results: list[list[np.ndarray]] = [[] for _ in out_details]
    for k in range(inputs[0].shape[0] // batches[0]):
        for detail, x, n in zip(in_details, inputs, batches):
            interpreter.set_tensor(detail["index"], np.ascontiguousarray(x[k * n:(k + 1) * n], dtype=detail["dtype"]))
        interpreter.invoke()
        for out, detail in zip(results, out_details):
            out.append(np.atleast_1d(interpreter.get_tensor(detail["index"])))
    return [np.concatenate(out) for out in results]


def output_names(data: bytes) -> list[str]:
    return [d["name"] for d in _interpreter(data).get_output_details()]


def verify_tflite(
    original: bytes,
    folded: bytes,
    inputs: list[np.ndarray] | None = None,
    *,
    samples: int = 4,
    seed: int = 0,
    atol: float | None = None,
) -> Verification:
    """Run both models with LiteRT on the same inputs (seeded random ones unless given) and compare."""
    given = inputs is not None
    if not given:
        inputs = sample_tflite_inputs(original, samples, seed)
    return compare(run_tflite(original, inputs), run_tflite(folded, inputs), output_names(original),
                   atol=atol, samples=int(inputs[0].shape[0]), seed=None if given else seed)


def keras_to_tflite(model) -> bytes:
    """Convert a Keras model with TensorFlow's converter (float32, default optimizations off)."""
    from fold.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    # Keras' export prints the traced signature on stdout; the command line owns stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        except Exception as exc:
            raise FoldError(f"TensorFlow's converter cannot convert '{model.name}': {one_line(exc)}") from exc


def _keras_output_order(model: schema.ModelT) -> list[int]:
    """Positions of Keras' outputs among the subgraph outputs, from the "output_<i>" signature names."""
    sg = model.subgraphs[0]
    signatures = model.signatureDefs or []
    by_name = {} if len(signatures) != 1 else {
        (m.name.decode() if isinstance(m.name, bytes) else m.name): m.tensorIndex for m in signatures[0].outputs or []}
    keys = [f"output_{k}" for k in range(len(sg.outputs))]
    if set(keys) != set(by_name):
        return list(range(len(sg.outputs)))
    return [list(sg.outputs).index(by_name[k]) for k in keys]


@dataclass
class ConverterView:
    """What TensorFlow's converter made of a Keras model, and what foldscope would still fold in it."""

    tflite: bytes
    graph: nx.DiGraph
    ops: list[str]
    verification: Verification
    remaining: list[TfliteDecision]

    @property
    def max_abs_diff(self) -> float:
        return self.verification.max_abs_diff


def converter_view(model, inputs: list[np.ndarray] | None = None, *, samples: int = 4, seed: int = 0) -> ConverterView:
    """Convert ``model`` with TF's converter; its op graph, its ops in order, and its diff vs Keras.

    ``remaining`` lists the conv -> MUL/ADD chains the converter left behind.
    """
    from fold import keras_io

    data = keras_to_tflite(model)
    tree = parse_tflite(data, model.name)
    given = inputs is not None
    if not given:
        inputs = keras_io.sample_inputs(model, samples, seed)
    reference = keras_io.run(model, inputs)
    converted = run_tflite(data, inputs)
    converted = [converted[i] for i in _keras_output_order(tree)]
    verification = compare(reference, converted, keras_io.output_names(model),
                           channel_axes=keras_io.output_channel_axes(model),
                           samples=int(inputs[0].shape[0]), seed=None if given else seed)
    ops = [op_type(tree, op) for op in tree.subgraphs[0].operators]
    return ConverterView(data, op_graph(tree, model.name), ops, verification,
                         [d for _, d in decide_all(tree)])
