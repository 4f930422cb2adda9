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
    bias_shape: str = "C"  # "C" or "111C" (Samsung ONE's Net_TConv_BN_004)


#: Transposed convolutions shaped like Samsung ONE's Net_TConv_BN recipes (tests/one_recipes.py has them exactly),
#: plus stride 2, SAME padding and even kernels, which the recipes never test.
TCONV_CASES = {
    "one_out_channel": TConvCase(cin=2, cout=1),
    "two_out_bias_111C_relu6": TConvCase(cin=3, cout=2, bias=True, operand_shape="111C", act="RELU6"),
    "sixteen_out_k5x1_relu": TConvCase(cin=8, cout=16, kernel=(5, 1), bias=True, act="RELU"),
    "k5x1_no_bias_111C_relu": TConvCase(cin=2, cout=4, kernel=(5, 1), operand_shape="111C", act="RELU"),
    "in_eq_out_bias": TConvCase(cin=4, cout=4, bias=True),
    "stride2_same_relu6": TConvCase(cin=3, cout=5, stride=2, padding="SAME", bias=True, act="RELU6"),
    "stride2_valid_k4_111C": TConvCase(cin=4, cout=2, kernel=(4, 4), stride=2, operand_shape="111C"),
    "stride2_same_even_kernel": TConvCase(cin=2, cout=3, kernel=(4, 2), stride=2, padding="SAME", bias=True),
    "operands_first": TConvCase(cin=3, cout=2, bias=True, act="RELU", swap=True),
}


def _out_size(n: int, k: int, stride: int, padding: str) -> int:
    return n * stride if padding == "SAME" else (n - 1) * stride + k


def tconv_bn(case: TConvCase, seed: int = 0, flat: Schema = TFLITE_SCHEMA, params: dict | None = None):
    """TRANSPOSE_CONV -> MUL -> ADD(act) and the float32 parameters of the same net (``params``: filter,
    bias, scale, shift given; else drawn from ``seed``). A TRANSPOSE_CONV with a bias is written with op
    version 3, the version that introduced it."""
    rng = np.random.default_rng(seed)
    (kh, kw), (h, w) = case.kernel, case.hw
    oh, ow = _out_size(h, kh, case.stride, case.padding), _out_size(w, kw, case.stride, case.padding)
    p = params or {"filter": rng.normal(size=(case.cout, kh, kw, case.cin)).astype(np.float32),
                   "bias": rng.normal(size=case.cout).astype(np.float32) if case.bias else None,
                   "scale": rng.uniform(0.3, 2.0, case.cout).astype(np.float32) * rng.choice([-1, 1], case.cout),
                   "shift": rng.normal(size=case.cout).astype(np.float32)}
    net = Net(flat)
    x = net.input("input", [1, h, w, case.cin])
    inputs = [net.const("output_shape", np.array([1, oh, ow, case.cout], np.int32)),
              net.const("filter", p["filter"]), x]
    if case.bias:
        inputs.append(net.const("bias", p["bias"].reshape((case.cout,) if case.bias_shape == "C" else (1, 1, 1, -1))))
    opts = _options(net.classes.TransposeConvOptionsT, padding=getattr(net.classes.Padding, case.padding),
                    strideH=case.stride, strideW=case.stride)
    y = net.op("TRANSPOSE_CONV", inputs, [1, oh, ow, case.cout], opts, version=3 if case.bias else 1)
    shape = (case.cout,) if case.operand_shape == "C" else (1, 1, 1, case.cout)
    y = binary(net, "MUL", y, p["scale"].reshape(shape), swap=case.swap)
    y = binary(net, "ADD", y, p["shift"].reshape(shape), getattr(ACT, case.act), swap=case.swap)
    return net.build(y), p


def tconv_reference(x: np.ndarray, case: TConvCase, p: dict) -> np.ndarray:
    """TRANSPOSE_CONV -> MUL -> ADD -> act in float64, by scattering each input pixel."""
    (kh, kw), s = case.kernel, case.stride
    n, h, w, _ = x.shape
    oh, ow = _out_size(h, kh, s, case.padding), _out_size(w, kw, s, case.padding)
    pad_h, pad_w = (max((h - 1) * s + kh - oh, 0) // 2, max((w - 1) * s + kw - ow, 0) // 2)
    full = np.zeros((n, (h - 1) * s + kh, (w - 1) * s + kw, case.cout))
    f = p["filter"].astype(np.float64)
    for i in range(h):
        for j in range(w):
            full[:, i * s:i * s + kh, j * s:j * s + kw, :] += np.einsum("nc,ohwc->nhwo", x[:, i, j, :], f)
    y = full[:, pad_h:pad_h + oh, pad_w:pad_w + ow, :]
    if p["bias"] is not None:
        y = y + p["bias"]
    y = y * p["scale"].astype(np.float64) + p["shift"].astype(np.float64)
    return {"NONE": y, "RELU": np.maximum(y, 0), "RELU6": np.clip(y, 0, 6)}[case.act]


def conv_net(kind: str, *, conv_act: int = ACT.NONE, bias: bool = True, mul: bool = True, add: bool = True,
             act: int = ACT.NONE, seed: int = 0, flat: Schema = TFLITE_SCHEMA) -> bytes:
    """CONV_2D (3->5, stride 2, SAME), DEPTHWISE_CONV_2D (3 x multiplier 2) or FULLY_CONNECTED (6->4) -> MUL -> ADD."""
    rng = np.random.default_rng(seed)
    net = Net(flat)
    schema = net.classes
    if kind == "FULLY_CONNECTED":
        x, cout = net.input("input", [2, 6]), 4
        weights, out_shape = rng.normal(size=(cout, 6)), [2, cout]
        opts = _options(schema.FullyConnectedOptionsT, fusedActivationFunction=conv_act)
    elif kind == "CONV_2D":
        x, cout = net.input("input", [1, 6, 5, 3]), 5
        weights, out_shape = rng.normal(size=(cout, 3, 3, 3)), [1, 3, 3, cout]
        opts = _options(schema.Conv2DOptionsT, padding=schema.Padding.SAME, strideH=2, strideW=2,
                        dilationHFactor=1, dilationWFactor=1, fusedActivationFunction=conv_act)
    else:
        x, cout = net.input("input", [1, 6, 5, 3]), 6
        weights, out_shape = rng.normal(size=(1, 3, 3, cout)), [1, 4, 3, cout]
        opts = _options(schema.DepthwiseConv2DOptionsT, padding=schema.Padding.VALID, strideH=1, strideW=1,
                        depthMultiplier=2, dilationHFactor=1, dilationWFactor=1, fusedActivationFunction=conv_act)
    inputs = [x, net.const("filter", weights.astype(np.float32))]
    inputs += [net.const("bias", rng.normal(size=cout).astype(np.float32))] if bias else []
    y = net.op(kind, inputs, out_shape, opts)
    if mul:
        y = binary(net, "MUL", y, rng.uniform(0.5, 2, cout) * rng.choice([-1, 1], cout),
                   act=act if not add else ACT.NONE)
    if add:
        y = binary(net, "ADD", y, rng.normal(size=cout), act=act)
    return net.build(y)


def pointwise_conv(net: Net) -> int:
    """A 1x1 CONV_2D from 2 to 3 channels on a 4x4 input; returns its output tensor."""
    return net.op("CONV_2D", [net.input("input", [1, 4, 4, 2]), net.const("f", np.ones((3, 1, 1, 2), np.float32)),
                              net.const("b", np.zeros(3, np.float32))],
                  [1, 4, 4, 3], _options(net.classes.Conv2DOptionsT, padding=net.classes.Padding.VALID, strideH=1, strideW=1,
                                         dilationHFactor=1, dilationWFactor=1))


def pointwise_bn(filter_value: float = 1.0, scale: np.ndarray | None = None, flat: Schema = TFLITE_SCHEMA) -> bytes:
    """1x1 CONV_2D (2 -> 3 channels, every filter value ``filter_value``) -> MUL(scale) -> ADD(1)."""
    net = Net(flat)
    filt = net.const("f", np.full((3, 1, 1, 2), filter_value, np.float32))
    y = net.op("CONV_2D", [net.input("input", [1, 4, 4, 2]), filt, net.const("b", np.zeros(3, np.float32))],
               [1, 4, 4, 3], _options(net.classes.Conv2DOptionsT, padding=net.classes.Padding.VALID, strideH=1, strideW=1,
                                      dilationHFactor=1, dilationWFactor=1))
    y = binary(net, "MUL", y, np.full(3, 2.0) if scale is None else scale)
    return net.build(binary(net, "ADD", y, np.ones(3)))
