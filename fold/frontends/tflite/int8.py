"""TFLite frontend, real int8: Google's AI Edge Quantizer (``ai-edge-quantizer``) as the quantizer of a
float .tflite (static: int8 weights, per tensor or per output channel, and int8 activations, calibrated
on the given inputs with min/max over all of them, the quantizer's own min/max update) and LiteRT as the runtime, every tensor kept; and the row-by-row LiteRT run that
the Keras frontend's int8 models share.

The quantizer works on a signature; a file without one (hand-built, or an old converter's) is given
"serving_default" over its inputs and outputs in the copy it quantizes. It keeps tensor names, so a
tensor of the float model is read in the int8 model by its name, dequantized with its own scale and
zero point. It quantizes every op it supports, a BN's MUL and ADD included: the "original" int8
model runs its BNs in int8, one scale per tensor, as the quantizer would deploy it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from importlib.metadata import version

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from fold.core.errors import FoldError, one_line, require
from fold.core.quiet import quiet, quiet_warnings
from fold.core.result import FoldResult
from fold.frontends.flatbuffer.model import tensor_name
from fold.frontends.flatbuffer.view import view_of
from fold.frontends.formats import FRONTENDS
from fold.frontends.ops.view import after_lone
from fold.frontends.tflite.model import TFLITE_SCHEMA, TfliteModel

RUNTIME = FRONTENDS["tflite"].int8
QUANTIZER = FRONTENDS["tflite"].int8_needs
#: TFLite tensors are channels-last.
CHANNEL_AXIS = -1
SIGNATURE = "serving_default"


def runtime_version() -> str:
    return version("ai-edge-litert")


def with_signature(model: TfliteModel) -> tuple[bytes, str]:
    """The model's bytes with a signature the quantizer can calibrate, and its key (the file's own
    first signature, or "serving_default" over subgraph 0's inputs and outputs, added to a copy)."""
    if model.tree.signatureDefs:
        key = model.tree.signatureDefs[0].signatureKey
        return model.data, key.decode() if isinstance(key, bytes) else key
    tree = copy.deepcopy(model.tree)
    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = SIGNATURE, 0

    def maps(tensors) -> list:
        found = []
        for t in tensors:
            entry = schema.TensorMapT()
            entry.name, entry.tensorIndex = tensor_name(model.main, int(t)), int(t)
            found.append(entry)
        return found

    signature.inputs, signature.outputs = maps(model.main.inputs), maps(model.main.outputs)
    tree.signatureDefs = [signature]
    return TFLITE_SCHEMA.pack(tree), SIGNATURE


def quantize(model: TfliteModel, inputs: Sequence[np.ndarray], *, per_channel: bool) -> bytes:
    """``model`` as a static int8 .tflite from ai-edge-quantizer, calibrated on ``inputs`` one row at a time."""
    require("int8", "Real int8 of a TFLite file", "ai_edge_quantizer")
    from ai_edge_quantizer import calibrator, qtyping, quantizer, recipe_manager
    from ai_edge_quantizer.recipe import TFLOperationName
    from ai_edge_quantizer.utils import qsv_utils

    data, key = with_signature(model)
    names = [tensor_name(model.main, int(t)) for t in model.main.inputs]
    signature_names = signature_inputs(data, key, names)
    rows = int(inputs[0].shape[0]) if inputs else 0
    samples = [{signature_names[n]: np.ascontiguousarray(x[i:i + 1]) for n, x in zip(names, inputs)}
               for i in range(rows)]
    granularity = qtyping.QuantGranularity.CHANNELWISE if per_channel else qtyping.QuantGranularity.TENSORWISE
    with quiet():
        try:
            q = quantizer.Quantizer(bytearray(data))
            q.add_static_config(".*", TFLOperationName.ALL_SUPPORTED, 8, 8, granularity)
            recipe = recipe_manager.RecipeManager()
            recipe.load_quantization_recipe(q.get_quantization_recipe())
            # min/max over every sample, as onnxruntime's MinMax and TensorFlow's converter calibrate: the
            # quantizer's default moving average (smoothing 0.95) is meant for hundreds of samples, and on a
            # few keeps the first one's range, clipping the rest
            calibration = calibrator.Calibrator(bytearray(data), num_threads=1,
                                                qsv_update_func=qsv_utils.min_max_update)
            calibration.calibrate({key: samples}, recipe)
            result = q.quantize(calibration.get_model_qsvs(), enable_progress_report=False)
        except Exception as exc:  # the quantizer raises anything on an op or layout it cannot take
            raise FoldError(f"{QUANTIZER} cannot quantize '{model.name}': {one_line(exc)}") from exc
    return bytes(result.quantized_model)


def signature_inputs(data: bytes, key: str, names: Sequence[str]) -> dict[str, str]:
    """Subgraph input tensor name -> the signature's name for it."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=data).get_signature_runner(key)
    by_tensor = {d["name"]: name for name, d in runner.get_input_details().items()}
    return {n: by_tensor.get(n, n) for n in names}


def run_rows(data: bytes, inputs: Sequence[np.ndarray], tensors: Mapping[str, int | str]
             ) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """A .tflite's outputs and the ``tensors`` (key -> tensor index or name) on ``inputs``, one row at a
    time in LiteRT (every tensor kept), each dequantized with its own scale and zero point (an int8
    input is fed its inputs quantized with its own). A name the model does not hold is left out of the
    result."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        with quiet_warnings():  # LiteRT warns that keeping every tensor is for debugging: it is what we do
            interpreter = Interpreter(model_content=data, experimental_preserve_all_tensors=True,
                                      experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        feeds = interpreter.get_input_details()
        for d, x in zip(feeds, inputs):
            interpreter.resize_tensor_input(d["index"], [1, *x.shape[1:]])
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:  # a model LiteRT's kernels refuse (a quantization they do not take)
        raise FoldError(f"LiteRT cannot run it: {one_line(exc)}") from exc
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    by_name = {d["name"]: i for i, d in details.items()}
    indices = {k: t if isinstance(t, int) else by_name[t] for k, t in tensors.items()
               if isinstance(t, int) or t in by_name}
    outputs = interpreter.get_output_details()
    rows = int(inputs[0].shape[0]) if inputs else 1
    got_out: list[list[np.ndarray]] = [[] for _ in outputs]
    got: dict[str, list[np.ndarray]] = {k: [] for k in indices}
    for i in range(rows):
        for d, x in zip(feeds, inputs):
            interpreter.set_tensor(d["index"], quantized(x[i:i + 1], d))
        interpreter.invoke()
        for k, d in enumerate(outputs):
            got_out[k].append(dequantized(interpreter.get_tensor(d["index"]), d))
        for k, t in indices.items():
            got[k].append(dequantized(interpreter.get_tensor(t), details[t]))
    return [np.concatenate(v) for v in got_out], {k: np.concatenate(v) for k, v in got.items()}


def quantized(value: np.ndarray, detail: dict) -> np.ndarray:
    """A real value as the input ``detail`` takes it: rounded to its int8 grid (round(x / scale) + zero
    point, clipped), or as its float dtype."""
    scale, zero = detail["quantization"]
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.integer) and scale:
        limits = np.iinfo(dtype)
        grid = np.round(np.asarray(value, dtype=np.float64) / scale) + zero
        return np.ascontiguousarray(np.clip(grid, limits.min, limits.max).astype(dtype))
    return np.ascontiguousarray(value, dtype=dtype)


def dequantized(value: np.ndarray, detail: dict) -> np.ndarray:
    """An int8 tensor's real values (scale * (q - zero point)); a float one as it is, in float64."""
    scale, zero = detail["quantization"]
    if np.issubdtype(value.dtype, np.integer) and scale:
        return (value.astype(np.float64) - zero) * scale
    return np.asarray(value, dtype=np.float64)


class Adapter:
    """``fold.frontends.formats.Int8Adapter`` of .tflite files: LiteRT with ai-edge-quantizer as the quantizer,
    a layer judged by tensor name, which the quantizer keeps: the BN's output in the original (or the RELU's
    that alone reads it), the same tensor the folded layer writes in a fold."""

    name = RUNTIME
    channel_axis = CHANNEL_AXIS
    original_note = ("original_per_tensor runs its BatchNorms' MUL and ADD in int8 (ai-edge-quantizer quantizes every "
                     "op it supports; one scale per tensor for their activations). Every variant is quantized by "
                     "ai-edge-quantizer, calibrated with min/max over every sample.")

    def __init__(self) -> None:
        self.version = runtime_version()

    def judged(self, result: FoldResult) -> dict[str, tuple[str, str]]:
        view, found = view_of(result.original), {}
        names = [tensor_name(result.original.main, t) for t in range(len(result.original.main.tensors))]
        for d in result.backward_pairs:
            t = after_lone(view, view.by_name[d.bn_nodes[-1]].output, "RELU")
            name = tensor_name(result.original.main, int(t))
            if names.count(name) > 1:
                raise FoldError(f"Real int8 of '{result.name}' reads tensors by name, as {QUANTIZER} matches "
                                f"them, but '{name}' names {names.count(name)} tensors.")
            found[d.layer] = (name, name)
        return found

    def run_float(self, model: TfliteModel, inputs: list[np.ndarray], points: list[str]):
        return run_rows(model.data, inputs, {p: p for p in points})

    def run_int8(self, model: TfliteModel, inputs: list[np.ndarray], points: list[str], *, per_channel: bool,
                 keep_float: list[str]):
        return run_rows(quantize(model, inputs, per_channel=per_channel), inputs, {p: p for p in points})
