"""ONNX frontend, real int8: onnxruntime's own static quantizer (QDQ, int8 weights and activations)
and its CPU runtime, with the dequantized value of every tensor kept.

A quantized tensor ``t`` is ``QuantizeLinear -> DequantizeLinear`` after its producer: its value as
the int8 model holds it is ``t_DequantizeLinear_Output`` (for a graph output the DequantizeLinear
takes the name ``t`` itself); a tensor the quantizer left in float (an excluded BN's output) is
read as it is.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnx
import onnx.version_converter

from fold.core.errors import FoldError, one_line
from fold.core.result import FoldResult
from fold.frontends.formats import FRONTENDS
from fold.frontends.onnx.model import OnnxModel
from fold.frontends.onnx.view import view_of
from fold.frontends.ops.view import after_lone

RUNTIME = FRONTENDS["onnx"].int8


def runtime_version() -> str:
    return version("onnxruntime")


class _Reader:
    """onnxruntime's CalibrationDataReader over the given inputs, one sample row at a time."""

    def __init__(self, names: Sequence[str], inputs: Sequence[np.ndarray]):
        rows = int(inputs[0].shape[0]) if inputs else 0
        self.feeds = [{n: np.ascontiguousarray(x[i:i + 1]) for n, x in zip(names, inputs)} for i in range(rows)]
        self.position = 0

    def get_next(self) -> dict | None:
        if self.position >= len(self.feeds):
            return None
        self.position += 1
        return self.feeds[self.position - 1]

    def rewind(self) -> None:
        self.position = 0


#: The opset whose QuantizeLinear / DequantizeLinear take an axis (per-channel) and any shape of
#: scale: onnxruntime's quantizer writes such nodes into a model of any opset, which then does not load.
QDQ_OPSET = 13


def at_least_opset(proto: onnx.ModelProto, opset: int, name: str) -> onnx.ModelProto:
    """``proto``, or a copy converted to the default-domain ``opset`` when it imports an older one."""
    found = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset)
    if found >= opset:
        return proto
    try:
        return onnx.version_converter.convert_version(proto, opset)
    except Exception as exc:  # the converter's own refusal (an op it has no adapter for)
        raise FoldError(f"'{name}' uses opset {found}, and onnx cannot convert it to opset {opset}, which int8 "
                        f"QDQ nodes need: {one_line(exc)}") from exc


def quantize(model: OnnxModel, inputs: Sequence[np.ndarray], *, per_channel: bool,
             keep_float: Sequence[str] = ()) -> OnnxModel:
    """``model`` quantized by ``onnxruntime.quantization.quantize_static`` (QDQ, int8 weights and
    activations, min/max calibration on ``inputs``); ``keep_float``: node names left in float (a BN
    the quantizer would otherwise quantize with one scale for all its channels)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if model.external is not None:  # the quantizer takes the whole model in memory
        raise FoldError(f"--int8 quantizes a model in memory; '{model.name}' keeps its tensors in external data.")
    names = [i.name for i in model.proto.graph.input if i.name not in {t.name for t in model.proto.graph.initializer}]
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(at_least_opset(model.proto, QDQ_OPSET, model.name), source)
        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR  # its advice to pre-process is for its own users
        try:
            quantize_static(str(source), str(target), _Reader(names, inputs), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=per_channel,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=list(keep_float),
                            extra_options={"QDQKeepRemovableActivations": True})
        except Exception as exc:  # the quantizer's own refusal of a model, said in one line
            raise FoldError(f"onnxruntime cannot quantize '{model.name}': {one_line(exc)}") from exc
        finally:
            root.level = level
        return OnnxModel(onnx.load(target), model.name, model.shapes)


def held_value_names(int8: OnnxModel, tensors: Sequence[str]) -> dict[str, str]:
    """For each float tensor name, the name of its value in the int8 model (its DequantizeLinear's
    output, or the tensor itself where it stayed float or is a graph output)."""
    produced = {o for n in int8.proto.graph.node for o in n.output}
    found = {}
    for t in tensors:
        dq = f"{t}_DequantizeLinear_Output"
        found[t] = dq if dq in produced else t
    return found


def run(model: OnnxModel, inputs: Sequence[np.ndarray], tensors: Sequence[str]) -> tuple[list[np.ndarray],
                                                                                         dict[str, np.ndarray]]:
    """The model's outputs and the named tensors on ``inputs``, one row at a time (a quantized
    model's batch is 1 wherever its calibration saw one), in onnxruntime's CPU runtime."""
    import onnxruntime as ort

    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    outputs = [o.name for o in proto.graph.output]
    extra = [t for t in dict.fromkeys(tensors) if t not in outputs]
    proto.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in extra)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for a graph it refuses
        raise FoldError(f"onnxruntime cannot run it: {one_line(exc)}") from exc
    feeds = [i.name for i in session.get_inputs()]
    rows = int(inputs[0].shape[0]) if inputs else 1
    got: list[list[np.ndarray]] = []
    for i in range(rows):
        got.append(session.run([*outputs, *extra], {n: x[i:i + 1] for n, x in zip(feeds, inputs)}))
    joined = [np.concatenate([row[k] for row in got]) for k in range(len(outputs) + len(extra))]
    return joined[:len(outputs)], dict(zip(extra, joined[len(outputs):])) | dict(zip(outputs, joined))


class Adapter:
    """``fold.frontends.formats.Int8Adapter`` of ONNX models: onnxruntime's static quantizer and runtime,
    a layer judged by tensor name (the folded layer's output keeps the BN output's name)."""

    name = RUNTIME
    channel_axis = 1
    original_note = ("original_per_tensor keeps its BatchNorms in float (onnxruntime would quantize a BN's scale per "
                     "tensor, even with per-channel weights).")

    def __init__(self) -> None:
        self.version = runtime_version()

    def judged(self, result: FoldResult) -> dict[str, tuple[str, str]]:
        view = view_of(result.original)
        found = {}
        for d in result.backward_pairs:
            t = after_lone(view, view.by_name[d.bn_nodes[-1]].output, "Relu")
            found[d.layer] = (t, t)
        return found

    def run_float(self, model: OnnxModel, inputs: list[np.ndarray], points: list[str]):
        return run(model, inputs, points)

    def run_int8(self, model: OnnxModel, inputs: list[np.ndarray], points: list[str], *, per_channel: bool,
                 keep_float: list[str]):
        int8 = quantize(model, inputs, per_channel=per_channel, keep_float=keep_float)
        held = held_value_names(int8, points)
        outputs, values = run(int8, inputs, list(held.values()))
        return outputs, {p: values[held[p]] for p in points}
