"""Random op graphs for the property tests of the op-graph layer (``tests/test_ops.py``): real models
of every op-level format whose tensors have any rank from 0 to 5, empty dimensions, ops with no
(or an omitted first) output, and the shapes a fold reads (BatchNorms, per-channel and scalar
Mul/Add, LayerNorm and Swish tails, reshapes, reductions to a scalar).

Each strategy draws a *program*: an input shape and a list of steps, each step a name and the
numbers it draws (channels, a constant's layout, a seed). The builders turn a program into a file
with the format's own tools: ``onnx.helper`` (``onnx_model``), TensorFlow's graph building
(``graphdef_model``) and LiteRT's schema (``tflite_model``). A step that does not apply to the
current shape is skipped by the builder, so every drawn program makes a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

#: Dimension sizes drawn: one, and a few small ones (an empty one is drawn apart, see ``programs``).
DIMS = st.sampled_from([1, 2, 3, 4])
#: The steps a program draws from (each builder knows which apply to a shape); a layer then a BN
#: and a layer then a Mul and an Add are single steps too, so that folds are frequent.
STEPS = ("layer", "bn", "mul", "add", "muladd", "relu", "swish", "layernorm", "reshape", "reduce", "residual",
         "side", "output", "layer+bn", "layer+muladd", "layer+bn", "layer+muladd")
#: How a constant operand of a Mul or Add is laid out against the data's shape.
LAYOUTS = ("scalar", "one", "channel", "last", "full", "higher")


@dataclass(frozen=True)
class Program:
    """An input shape and the steps that follow it; ``seed`` draws every constant."""

    shape: tuple[int, ...]
    steps: tuple[tuple, ...]
    seed: int

    def __str__(self) -> str:
        return f"input {self.shape}: " + " -> ".join(s[0] for s in self.steps)


@st.composite
def programs(draw, max_steps: int = 7) -> Program:
    """An input of rank 0 to 5 (empty dimensions included) and up to ``max_steps`` steps."""
    rank = draw(st.sampled_from([0, 1, 2, 2, 3, 4, 4, 5]))  # the ranks layers take (2, 4) twice as often
    shape = list(draw(st.lists(DIMS, min_size=rank, max_size=rank)))
    if rank and draw(st.integers(0, 9)) == 0:  # one program in ten has an empty dimension
        shape[draw(st.integers(0, rank - 1))] = 0
    steps = draw(st.lists(st.tuples(st.sampled_from(STEPS), st.integers(1, 4), st.sampled_from(LAYOUTS),
                                    st.booleans()), min_size=1, max_size=max_steps))
    return Program(tuple(shape), tuple(step for s in steps for step in _split(s)), draw(st.integers(0, 2**16)))


def _split(step: tuple) -> list[tuple]:
    """A "layer+..." step as its two steps, the Mul and Add by per-channel constants."""
    name, n, layout, flag = step
    if "+" not in name:
        return [step]
    return [(part, n, "channel", flag) for part in name.split("+")]


def operand(rng: np.random.Generator, shape: tuple[int, ...], layout: str, axis: int | None) -> np.ndarray:
    """A float32 constant for ``shape`` laid out as ``layout`` (the channel at ``axis``); a layout
    the shape cannot take becomes a scalar."""
    rank = len(shape)
    if layout == "one":
        dims: tuple[int, ...] = (1,)
    elif layout == "channel" and axis is not None and rank:
        dims = tuple(shape[axis] if i == axis else 1 for i in range(rank))
    elif layout == "last" and rank:
        dims = (shape[-1],)
    elif layout == "full":
        dims = shape
    elif layout == "higher" and rank < 5:
        dims = (1, *shape)
    else:
        dims = ()
    return rng.normal(1.0, 0.5, dims).astype(np.float32)


# -- ONNX -------------------------------------------------------------------------------------------

def onnx_model(program: Program):
    """The program as an ONNX model (channels on axis 1, opset 17), built with ``onnx.helper``."""
    from onnx import TensorProto, helper

    from foldscope_app.examples.onnx_zoo import Graph

    g = Graph(seed=program.seed)
    rng = g.rng
    x = g.input("x", list(program.shape))
    shape = program.shape
    outputs: list[str] = []

    def channel_axis(s):
        return 1 if len(s) >= 2 else (0 if s else None)

    for step, n, layout, flag in program.steps:
        rank = len(shape)
        if step == "layer" and rank >= 3:
            x = g.conv(x, shape[1], n, 1, g.name("conv"), bias=flag, rank=rank - 2)
            shape = (shape[0], n, *shape[2:])
        elif step == "layer" and rank == 2:
            w = g.const("gemm.W", rng.normal(0, 0.5, (n, shape[1])).astype(np.float32))
            inputs = [x, w] + ([g.const("gemm.B", rng.normal(0, 0.1, n).astype(np.float32))] if flag else [])
            x = g.node("Gemm", inputs, "gemm", transB=1)
            shape = (shape[0], n)
        elif step == "layer" and rank == 1:  # a vector times a matrix, or times a vector: a scalar
            w_shape = (shape[0],) if flag else (shape[0], n)
            x = g.node("MatMul", [x, g.const("matmul.W", rng.normal(0, 0.5, w_shape).astype(np.float32))], "matmul")
            shape = () if flag else (n,)
        elif step == "bn" and rank >= 2:
            x = g.bn(x, shape[1], g.name("bn"))
        elif step in ("mul", "add", "muladd"):
            axis = channel_axis(shape)
            for op in (("Mul", "Add") if step == "muladd" else (step.capitalize(),)):
                const = operand(rng, shape, layout, axis)
                x = g.node(op, [x, g.const(f"{op.lower()}.c", const)] if flag else
                           [g.const(f"{op.lower()}.c", const), x], ("batchnorm_" if n == 4 else "") + op.lower())
                shape = tuple(np.broadcast_shapes(shape, const.shape))
        elif step == "relu":
            x = g.node("Relu", [x], "relu")
        elif step == "swish":
            scaled = g.node("Mul", [x, g.const("swish.beta", np.float32(1.0))], "swish_scale")
            x = g.node("Mul", [x, g.node("Sigmoid", [scaled], "sigmoid")], "swish")
        elif step == "layernorm" and rank >= 1:
            mean = g.node("ReduceMean", [x], "ln_mean", axes=[-1], keepdims=1)
            centred = g.node("Sub", [x, mean], "ln_sub")
            var = g.node("ReduceMean", [g.node("Mul", [centred, centred], "ln_sq")], "ln_var", axes=[-1], keepdims=1)
            std = g.node("Sqrt", [g.node("Add", [var, g.const("ln.eps", np.float32(1e-5))], "ln_eps")], "ln_std")
            normed = g.node("Div", [centred, std], "ln_div")
            gamma = g.const("ln.gamma", rng.normal(1, 0.2, shape[-1:]).astype(np.float32))
            beta = g.const("ln.beta", rng.normal(0, 0.2, shape[-1:]).astype(np.float32))
            x = g.node("Add", [g.node("Mul", [normed, gamma], "ln_gamma"), beta], "ln_beta")
        elif step == "reshape":
            x, shape = _onnx_reshape(g, x, shape, n)
        elif step == "reduce":
            x = g.node("ReduceMean", [x], "reduce", keepdims=0)
            shape = ()
        elif step == "residual":
            x = g.node("Add", [x, g.node("Relu", [x], "branch")], "residual")
        elif step == "side" and rank == 3 and shape[2] > 0:  # an RNN whose first output (Y) is omitted
            hidden = 2
            w = g.const("rnn.W", rng.normal(0, 0.5, (1, hidden, shape[2])).astype(np.float32))
            r = g.const("rnn.R", rng.normal(0, 0.5, (1, hidden, hidden)).astype(np.float32))
            name = g.name("rnn")
            g.nodes.append(helper.make_node("RNN", [x, w, r], ["", f"{name}:h"], name=name, hidden_size=hidden))
            outputs.append(f"{name}:h")
        elif step == "side":  # a Shape nobody reads (an int64 dead end)
            g.node("Shape", [x], "shape")
        elif step == "output":
            outputs.append(g.node("Identity", [x], "tap"))
    outputs.append(g.node("Identity", [x], "out"))  # an output is never the input itself
    outputs = list(dict.fromkeys(outputs))
    return g.model(outputs, "random", dtype=TensorProto.FLOAT)


def _onnx_reshape(g, x: str, shape: tuple[int, ...], n: int) -> tuple[str, tuple[int, ...]]:
    """A reshape by ``n``: 1 flattens, 2 unsqueezes the last axis, 3 squeezes a size-1 axis, 4 makes
    a vector (or a scalar from a one-element tensor)."""
    rank = len(shape)
    if n == 1 and rank >= 1:
        return g.node("Flatten", [x], "flatten"), (int(np.prod(shape[:1])), int(np.prod(shape[1:])))
    if n == 2 and rank < 5:
        return g.node("Unsqueeze", [x, g.const("unsqueeze.axes", np.array([rank], np.int64))], "unsqueeze"), \
            (*shape, 1)
    if n == 3 and 1 in shape:
        axis = shape.index(1)
        return g.node("Squeeze", [x, g.const("squeeze.axes", np.array([axis], np.int64))], "squeeze"), \
            shape[:axis] + shape[axis + 1:]
    size = int(np.prod(shape))
    target = () if size == 1 else (size,)
    return g.node("Reshape", [x, g.const("reshape.shape", np.array(target, np.int64))], "reshape"), target


# -- GraphDef ---------------------------------------------------------------------------------------

def graphdef_model(program: Program):
    """The program as a frozen GraphDef (channels last), traced from a ``tf.function`` of TensorFlow ops."""
    import tensorflow as tf

    from fold.frontends.graphdef.io import graph_def_from_function

    rng = np.random.default_rng(program.seed)

    def forward(x):
        outputs = []
        for step, n, layout, flag in program.steps:
            shape = tuple(x.shape)
            rank = len(shape)
            if step in ("layer", "bn") and 0 in shape:
                continue  # TensorFlow's oneDNN kernels abort the process on an empty MatMul (not an exception)
            if step == "layer" and rank == 4:
                x = tf.nn.conv2d(x, rng.normal(0, 0.5, (1, 1, shape[-1], n)).astype(np.float32), 1, "SAME")
                x = tf.nn.bias_add(x, rng.normal(0, 0.1, n).astype(np.float32)) if flag else x
            elif step == "layer" and rank == 2:
                x = tf.matmul(x, rng.normal(0, 0.5, (shape[-1], n)).astype(np.float32))
                x = tf.nn.bias_add(x, rng.normal(0, 0.1, n).astype(np.float32)) if flag else x
            elif step == "bn" and rank == 4:
                c = shape[-1]
                x = tf.compat.v1.nn.fused_batch_norm(
                    x, rng.normal(1, 0.5, c).astype(np.float32), rng.normal(0, 0.5, c).astype(np.float32),
                    rng.normal(0, 1, c).astype(np.float32), rng.uniform(0.3, 3, c).astype(np.float32),
                    is_training=False)[0]
            elif step in ("mul", "add", "muladd"):
                for op in (("mul", "add") if step == "muladd" else (step,)):
                    const = tf.constant(operand(rng, tuple(x.shape), layout, len(x.shape) - 1 if x.shape else None),
                                        name=("batchnorm/" if n == 4 else "") + op)
                    x = (x * const if op == "mul" else x + const) if flag else (const * x if op == "mul" else const + x)
            elif step == "relu":
                x = tf.nn.relu(x)
            elif step == "swish":
                x = x * tf.sigmoid(x * 1.0)
            elif step == "layernorm" and rank >= 1:
                mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
                x = (x - mean) * tf.math.rsqrt(var + 1e-5) * rng.normal(1, 0.2, shape[-1:]).astype(np.float32) \
                    + rng.normal(0, 0.2, shape[-1:]).astype(np.float32)
            elif step == "reshape":
                x = _tf_reshape(x, n)
            elif step == "reduce":
                x = tf.reduce_mean(x)
            elif step == "residual":
                x = x + tf.nn.relu(x)
            elif step == "side":  # an op nobody reads, and one with no output at all
                with tf.control_dependencies([tf.debugging.assert_all_finite(x, "finite")]):
                    x = tf.identity(x)
            elif step == "output":
                outputs.append(tf.identity(x))
        return [*outputs, tf.identity(x)]

    spec = tf.TensorSpec(program.shape, tf.float32, name="x")
    return graph_def_from_function(tf.function(forward, autograph=False), spec)


def _tf_reshape(x, n: int):
    """The reshapes of ``_onnx_reshape`` in TensorFlow ops (channels last)."""
    import tensorflow as tf

    shape = tuple(x.shape)
    if n == 1 and len(shape) >= 1:
        return tf.reshape(x, (int(np.prod(shape[:1])), -1 if np.prod(shape[1:]) else 0))
    if n == 2 and len(shape) < 5:
        return tf.expand_dims(x, -1)
    if n == 3 and 1 in shape:
        return tf.squeeze(x, shape.index(1))
    return tf.reshape(x, () if int(np.prod(shape)) == 1 else (int(np.prod(shape)),))


# -- TFLite -----------------------------------------------------------------------------------------

def tflite_model(program: Program) -> bytes:
    """The program as a .tflite flatbuffer (channels last) built op by op with LiteRT's schema
    (``tests.tflite_support.Net``): what the converter never writes (a scalar input, an empty
    tensor, a lone MUL after a layer) included."""
    from ai_edge_litert import schema_py_generated as schema

    from tests.tflite_support import ACT, Net, _options, binary, conv_options

    rng = np.random.default_rng(program.seed)
    net = Net()
    x = net.input("x", list(program.shape))
    outputs: list[int] = []

    def shape_of(t):
        return tuple(net.sg.tensors[t].shape)

    for step, n, layout, flag in program.steps:
        shape = shape_of(x)
        rank = len(shape)
        if step == "layer" and rank == 4:  # LiteRT's CONV_2D takes no absent bias
            inputs = [x, net.const("filter", rng.normal(0, 0.5, (n, 1, 1, shape[-1])).astype(np.float32)),
                      net.const("bias", rng.normal(0, 0.1, n).astype(np.float32))]
            x = net.op("CONV_2D", inputs, [*shape[:-1], n], conv_options())
        elif step == "layer" and rank == 2:
            inputs = [x, net.const("weights", rng.normal(0, 0.5, (n, shape[-1])).astype(np.float32)),
                      net.const("bias", rng.normal(0, 0.1, n).astype(np.float32)) if flag else -1]
            x = net.op("FULLY_CONNECTED", inputs, [shape[0], n], _options(schema.FullyConnectedOptionsT))
        elif step in ("mul", "add", "muladd", "bn"):  # a flatbuffer holds a BN as MUL and ADD
            for op in ("MUL", "ADD") if step in ("muladd", "bn") else (step.upper(),):
                const = operand(rng, shape_of(x), "last" if step == "bn" else layout, rank - 1 if rank else None)
                if const.ndim > 4 or rank > 4:  # LiteRT broadcasts MUL and ADD up to rank 4 (6 for equal ranks)
                    const = const.reshape(()) if const.size == 1 else np.full(shape_of(x), 1.5, np.float32)
                x = binary(net, op, x, const, swap=not flag)
                net.sg.tensors[x].shape = list(np.broadcast_shapes(shape_of(net.sg.operators[-1].inputs[0]),
                                                                   shape_of(net.sg.operators[-1].inputs[1])))
        elif step == "relu":
            x = net.op("RELU", [x], list(shape))
        elif step == "swish":
            scaled = binary(net, "MUL", x, np.float32(1.0))
            x = net.op("MUL", [x, net.op("LOGISTIC", [scaled], list(shape))], list(shape),
                       _options(schema.MulOptionsT, fusedActivationFunction=ACT.NONE))
        elif step == "reshape" or step == "layernorm":
            size = int(np.prod(shape))
            target = (size,) if n % 2 or rank == 0 else (*shape, 1) if rank < 4 else ((1,) if size == 1 else (size,))
            x = net.op("RESHAPE", [x, net.const("shape", np.array(target, np.int32))], list(target))
        elif step == "reduce" and rank:
            axes = net.const("axes", np.arange(rank, dtype=np.int32))
            x = net.op("MEAN", [x, axes], [], _options(schema.ReducerOptionsT, keepDims=False))
        elif step == "residual":
            x = net.op("ADD", [x, net.op("RELU", [x], list(shape))], list(shape),
                       _options(schema.AddOptionsT, fusedActivationFunction=ACT.NONE))
        elif step == "side":  # ASSIGN_VARIABLE: an op with no output at all
            _assign_variable(net, x)
        elif step == "output":
            outputs.append(x)
    return net.build(*dict.fromkeys([*outputs, x]))


def _assign_variable(net, x: int) -> None:
    """VAR_HANDLE -> ASSIGN_VARIABLE(handle, x): a resource variable written, an op with no outputs."""
    from ai_edge_litert import schema_py_generated as schema

    from tests.tflite_support import _options

    handle = net.op("VAR_HANDLE", [], [], _options(schema.VarHandleOptionsT, container=b"", sharedName=b"side"))
    net.sg.tensors[handle].type = schema.TensorType.RESOURCE
    net.op("ASSIGN_VARIABLE", [handle, x], [])
    net.sg.operators[-1].outputs = []
    net.sg.tensors.pop()  # the output tensor ``op`` made for it
