"""Building TFLite (or circle) models op by op with a schema's object API, for tests (the TFLite converter
folds every BN itself, so a model that still has its MUL and ADD is built by hand). ``Net`` builds with
LiteRT's schema unless given another ``fold.frontends.flatbuffer.schema.Schema`` (circle's)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from fold.frontends.flatbuffer.schema import Schema
from fold.frontends.tflite.model import TFLITE_SCHEMA

F32 = schema.TensorType.FLOAT32
ACT = schema.ActivationFunctionType  # the same values in circle's schema


class Net:
    """Builds a one-subgraph model of ``flat`` (TFLite unless told): constants, inputs and ops, then bytes."""

    def __init__(self, flat: Schema = TFLITE_SCHEMA) -> None:
        self.flat, self.classes = flat, flat.classes
        self.model = self.classes.ModelT()
        self.model.version, self.model.buffers, self.model.operatorCodes = 3, [self.classes.BufferT()], []
        self.sg = self.classes.SubGraphT()
        self.sg.tensors, self.sg.operators, self.sg.inputs, self.sg.outputs = [], [], [], []
        self.model.subgraphs = [self.sg]

    def tensor(self, name: str, shape, data: np.ndarray | None = None, dtype: int = F32) -> int:
        t = self.classes.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), list(shape), dtype, 0
        if data is not None:
            buffer = self.classes.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self.model.buffers.append(buffer)
            t.buffer = len(self.model.buffers) - 1
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def const(self, name: str, value: np.ndarray) -> int:
        dtype = self.classes.TensorType.INT32 if value.dtype == np.int32 else F32
        return self.tensor(name, value.shape, value, dtype)

    def input(self, name: str, shape) -> int:
        self.sg.inputs.append(self.tensor(name, shape))
        return self.sg.inputs[-1]

    def op(self, kind: str, inputs: list[int], out_shape, options=None, name: str | None = None,
           version: int = 1) -> int:
        builtin = self.flat.code(kind)
        codes = [(c.builtinCode, c.version) for c in self.model.operatorCodes]
        if (builtin, version) not in codes:
            # a code past 127 is stored as 127 in the old int8 field ("see builtinCode")
            self.model.operatorCodes.append(self.flat.operator_code(kind, version))
            codes.append((builtin, version))
        op = self.classes.OperatorT()
        op.opcodeIndex, op.inputs = codes.index((builtin, version)), list(inputs)
        op.outputs = [self.tensor(name or kind.lower(), out_shape)]
        if options is not None:
            op.builtinOptionsType = getattr(self.classes.BuiltinOptions, type(options).__name__[:-1])
            op.builtinOptions = options
        self.sg.operators.append(op)
        return op.outputs[0]

    def build(self, *outputs: int) -> bytes:
        self.sg.outputs = list(outputs)
        return self.flat.pack(self.model)


def _options(cls, **values):
    options = cls()
    for key, value in values.items():
        setattr(options, key, value)
    return options


def binary(net: Net, kind: str, x: int, constant: np.ndarray, act: int = ACT.NONE, swap: bool = False) -> int:
    c = net.const(f"{kind.lower()}_operand", constant.astype(np.float32))
    shape = net.sg.tensors[x].shape
    cls = net.classes.MulOptionsT if kind == "MUL" else net.classes.AddOptionsT
    return net.op(kind, [c, x] if swap else [x, c], shape, _options(cls, fusedActivationFunction=act))


def conv_options(stride: int = 1, padding: str = "SAME", act: int = 0):
    """CONV_2D options."""
    return _options(schema.Conv2DOptionsT, padding=getattr(schema.Padding, padding), strideW=stride, strideH=stride,
                    fusedActivationFunction=act, dilationWFactor=1, dilationHFactor=1)


@dataclass
class TConvCase:
    cin: int
    cout: int
    kernel: tuple[int, int] = (3, 3)
    stride: int = 1
    padding: str = "VALID"
    bias: bool = False
    operand_shape: str = "C"  # "C" or "111C"
    act: str = "NONE"
    swap: bool = False
    hw: tuple[int, int] = (4, 3)


def _out_size(n: int, k: int, stride: int, padding: str) -> int:
    return n * stride if padding == "SAME" else (n - 1) * stride + k


def tconv_bn(case: TConvCase, seed: int = 0, flat: Schema = TFLITE_SCHEMA):
    """TRANSPOSE_CONV -> MUL -> ADD(act) and the float64 parameters of the same net (a TRANSPOSE_CONV
    with a bias is written with op version 3, the version that introduced it)."""
    rng = np.random.default_rng(seed)
    (kh, kw), (h, w) = case.kernel, case.hw
    oh, ow = _out_size(h, kh, case.stride, case.padding), _out_size(w, kw, case.stride, case.padding)
    p = {"filter": rng.normal(size=(case.cout, kh, kw, case.cin)).astype(np.float32),
         "bias": rng.normal(size=case.cout).astype(np.float32) if case.bias else None,
         "scale": rng.uniform(0.3, 2.0, case.cout).astype(np.float32) * rng.choice([-1, 1], case.cout),
         "shift": rng.normal(size=case.cout).astype(np.float32)}
    net = Net(flat)
    x = net.input("input", [1, h, w, case.cin])
    inputs = [net.const("output_shape", np.array([1, oh, ow, case.cout], np.int32)),
              net.const("filter", p["filter"]), x]
    if case.bias:
        inputs.append(net.const("bias", p["bias"]))
    opts = _options(net.classes.TransposeConvOptionsT, padding=getattr(net.classes.Padding, case.padding),
                    strideH=case.stride, strideW=case.stride)
    y = net.op("TRANSPOSE_CONV", inputs, [1, oh, ow, case.cout], opts, version=3 if case.bias else 1)
    shape = (case.cout,) if case.operand_shape == "C" else (1, 1, 1, case.cout)
    y = binary(net, "MUL", y, p["scale"].reshape(shape), swap=case.swap)
    y = binary(net, "ADD", y, p["shift"].reshape(shape), getattr(ACT, case.act), swap=case.swap)
    return net.build(y), p
