"""ONNX models with BatchNorm after transposed convolutions, built with ``onnx.helper`` (no download).

Every number comes from a seed. The shapes follow what exporters write: NCHW tensors,
ConvTranspose weights (C_in, C_out/group, k...), and, as paddle2onnx does, a ConvTranspose
bias written as an ``Add`` node of its own before the BatchNormalization.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fold.frontends.ops.names import Names

OPSET = 17


class Graph:
    """A small builder: seeded initializers and nodes, then a checked ModelProto."""

    def __init__(self, seed: int = 0, opset: int = OPSET):
        self.rng = np.random.default_rng(seed)
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self._names = Names(())

    def name(self, base: str) -> str:
        return self._names.fresh(base)

    def input(self, name: str, shape: list, dtype: int = TensorProto.FLOAT) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, dtype, shape))
        self._names.taken.add(name)
        return name

    def const(self, base: str, value: np.ndarray) -> str:
        name = self.name(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], name: str | None = None, outputs: int = 1, **attrs) -> str:
        node_name = self.name(name or op.lower())
        outs = [node_name if k == 0 else f"{node_name}:{k}" for k in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=node_name, **attrs))
        return outs[0]

    def glorot(self, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return self.rng.uniform(-limit, limit, shape).astype(np.float32)

    def conv(self, x: str, cin: int, cout: int, k: int, name: str, stride: int = 1, pad: int = 0, group: int = 1,
             bias: bool = False, rank: int = 2) -> str:
        w = self.const(f"{name}.W", self.glorot((cout, cin // group, *(k,) * rank), cin * k**rank, cout * k**rank))
        inputs = [x, w] + ([self.const(f"{name}.B", self.rng.normal(0, 0.1, cout).astype(np.float32))] if bias else [])
        return self.node("Conv", inputs, name, kernel_shape=[k] * rank, strides=[stride] * rank, pads=[pad] * 2 * rank,
                         group=group)

    def conv_transpose(self, x: str, cin: int, cout: int, k: int, name: str, stride: int = 2, pad: int = 1,
                       group: int = 1, bias: bool = False, rank: int = 2, **attrs) -> str:
        w = self.const(f"{name}.W", self.glorot((cin, cout // group, *(k,) * rank), cin * k**rank, cout * k**rank))
        inputs = [x, w] + ([self.const(f"{name}.B", self.rng.normal(0, 0.1, cout).astype(np.float32))] if bias else [])
        return self.node("ConvTranspose", inputs, name, kernel_shape=[k] * rank, strides=[stride] * rank,
                         pads=[pad] * 2 * rank, group=group, **attrs)

    def bias_add(self, x: str, channels: int, name: str, shape: tuple[int, ...] = (1, -1, 1, 1)) -> str:
        """A per-channel bias as a node of its own (paddle2onnx's form)."""
        value = self.rng.normal(0, 0.1, channels).astype(np.float32).reshape([channels if d == -1 else d for d in shape])
        return self.node("Add", [x, self.const(f"{name}.b", value)], name)

    def bn(self, x: str, channels: int, name: str, epsilon: float = 1e-5, var_range=(0.3, 3.0)) -> str:
        """BatchNormalization with seeded random statistics."""
        rng = self.rng
        params = [rng.normal(1, 0.5, channels), rng.normal(0, 0.5, channels), rng.normal(0, 1, channels),
                  rng.uniform(*var_range, channels)]
        names = [self.const(f"{name}.{p}", v.astype(np.float32)) for p, v in zip(("scale", "B", "mean", "var"), params)]
        return self.node("BatchNormalization", [x, *names], name, epsilon=epsilon)

    def model(self, outputs: list[str], name: str, output_shapes: list[list] | None = None,
              opsets: dict[str, int] | None = None, dtype: int = TensorProto.FLOAT) -> onnx.ModelProto:
        """The checked model; an output without a given shape gets the one shape inference finds."""
        shapes = output_shapes or [None] * len(outputs)
        values = [helper.make_tensor_value_info(o, dtype, s) for o, s in zip(outputs, shapes)]
        graph = helper.make_graph(self.nodes, name, self.inputs, values, self.initializers)
        imports = [helper.make_opsetid("", self.opset), *(helper.make_opsetid(d, v) for d, v in (opsets or {}).items())]
        model = helper.make_model(graph, opset_imports=imports, producer_name="foldscope")
        model.ir_version = 8
        inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.output}
        for value in model.graph.output:
            if not value.type.tensor_type.HasField("shape") and inferred[value.name].type.tensor_type.HasField("shape"):
                value.type.CopyFrom(inferred[value.name].type)
        onnx.checker.check_model(model)
        return model


def dcgan_generator(latent: int = 32, base: int = 64, seed: int = 0) -> onnx.ModelProto:
    """z -> Gemm -> BN -> LeakyRelu -> ConvTranspose -> BN -> Relu -> grouped ConvTranspose (group 4)
    -> Add(bias) -> BN -> Relu -> ConvTranspose -> Tanh: a DCGAN-style generator, 3 x 32 x 32 out."""
    g = Graph(seed)
    z = g.input("z", ["N", latent])
    w = g.const("project.B", g.glorot((base * 2 * 16, latent), latent, base * 2 * 16))  # transB = 1: (N, K)
    x = g.node("Gemm", [z, w], "project", transB=1)
    x = g.node("LeakyRelu", [g.bn(x, base * 2 * 16, "project_bn")], "project_act", alpha=0.2)
    x = g.node("Reshape", [x, g.const("shape", np.array([-1, base * 2, 4, 4], np.int64))], "reshape")
    x = g.node("Relu", [g.bn(g.conv_transpose(x, base * 2, base, 4, "up0"), base, "up0_bn")], "up0_act")
    x = g.conv_transpose(x, base, base // 2, 4, "up1", group=4)
    x = g.bn(g.bias_add(x, base // 2, "up1_bias"), base // 2, "up1_bn")
    x = g.node("Relu", [x], "up1_act")
    x = g.node("Tanh", [g.conv_transpose(x, base // 2, 3, 4, "to_rgb", bias=True)], "image")
    return g.model([x], "dcgan_generator", [["N", 3, 32, 32]])


def text_detector_head(channels: int = 32, seed: int = 0) -> onnx.ModelProto:
    """A DBNet-style probability head as paddle2onnx exports it: Conv -> BN -> Relu, then twice
    ConvTranspose -> Add(bias) -> BN -> Relu, then a 1-channel ConvTranspose -> Sigmoid."""
    g = Graph(seed)
    x = g.input("features", ["N", channels, 16, 16])
    x = g.node("Relu", [g.bn(g.conv(x, channels, channels // 4, 3, "head_conv", pad=1), channels // 4, "head_bn")],
               "head_relu")
    for i in range(2):
        c = channels // 4
        x = g.conv_transpose(x, c, c, 2, f"up{i}", pad=0)
        x = g.node("Relu", [g.bn(g.bias_add(x, c, f"up{i}_bias"), c, f"up{i}_bn")], f"up{i}_relu")
    x = g.node("Sigmoid", [g.conv(x, channels // 4, 1, 1, "prob", bias=True)], "probability")
    return g.model([x], "text_detector_head", [["N", 1, 64, 64]])


def resnet50(size: int = 224, seed: int = 0) -> onnx.ModelProto:
    """ResNet-50's layout (53 BatchNormalizations, 25.6 M weights) with seeded random weights."""
    g = Graph(seed)
    x = g.input("image", ["N", 3, size, size])
    x = g.node("Relu", [g.bn(g.conv(x, 3, 64, 7, "conv1", stride=2, pad=3), 64, "bn1")], "relu1")
    x = g.node("MaxPool", [x], "pool1", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, (width, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))):
        for b in range(blocks):
            name, s = f"layer{stage + 1}.{b}", stride if b == 0 else 1
            y = g.node("Relu", [g.bn(g.conv(x, cin, width, 1, f"{name}.conv1"), width, f"{name}.bn1")], f"{name}.relu1")
            y = g.node("Relu", [g.bn(g.conv(y, width, width, 3, f"{name}.conv2", stride=s, pad=1), width,
                                     f"{name}.bn2")], f"{name}.relu2")
            y = g.bn(g.conv(y, width, width * 4, 1, f"{name}.conv3"), width * 4, f"{name}.bn3")
            if b == 0:
                x = g.bn(g.conv(x, cin, width * 4, 1, f"{name}.downsample", stride=s), width * 4, f"{name}.downsample_bn")
            x = g.node("Relu", [g.node("Add", [x, y], f"{name}.add")], f"{name}.relu3")
            cin = width * 4
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x], "avgpool")], "flatten")
    fc = g.const("fc.B", g.glorot((1000, cin), cin, 1000))
    logits = g.node("Gemm", [x, fc, g.const("fc.C", np.zeros(1000, np.float32))], "fc", transB=1)
    return g.model([logits], "resnet50", [["N", 1000]])
