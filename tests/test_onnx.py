"""The ONNX frontend: every pattern folds against onnxruntime and an independent float64 NumPy
reference, the ONNX project's own Conv/ConvTranspose cases fold with a BN appended, every rule
refuses with its reason, and bad files are one line."""

from __future__ import annotations

import itertools
import json
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fold.core.errors import FoldError
from fold.core.verification import sample_inputs
from fold.engine.pipeline import fold, run, verify
from fold.frontends.onnx.io import load_model, prepare
from fold.frontends.onnx.model import OnnxModel
from foldscope_app.examples import onnx_zoo
from foldscope_app.examples.onnx_zoo import Graph
from tests.helpers import ONNX, assert_folds, assert_skipped, relocated, run_cli

ROOT = Path(__file__).resolve().parents[1]
RTOL = 1e-5


# -- an independent float64 reference (shares no code with fold/) -----------------------------

def np_conv_transpose(x, w, b=None, strides=None, pads=None, dilations=None, output_padding=None, group=1):
    """ONNX ConvTranspose in float64 by scattering: x (N, C_in, *S), w (C_in, C_out/group, *K)."""
    n, cin, *size = x.shape
    rank = len(size)
    kernel = w.shape[2:]
    strides, dilations = strides or [1] * rank, dilations or [1] * rank
    pads, output_padding = pads or [0] * 2 * rank, output_padding or [0] * rank
    per_group, cin_g = w.shape[1], cin // group
    full = [(s - 1) * st + (k - 1) * d + 1 + op for s, st, k, d, op in zip(size, strides, kernel, dilations,
                                                                          output_padding)]
    out = np.zeros((n, per_group * group, *full))
    for g in range(group):
        xs = x[:, g * cin_g:(g + 1) * cin_g]
        for offset in np.ndindex(*kernel):
            tap = np.einsum("nc...,cj->nj...", xs, w[g * cin_g:(g + 1) * cin_g, :, *offset])
            where = tuple(slice(o * d, o * d + (s - 1) * st + 1, st)
                          for o, d, s, st in zip(offset, dilations, size, strides))
            out[(slice(None), slice(g * per_group, (g + 1) * per_group), *where)] += tap
    crop = tuple(slice(pads[i], full[i] - pads[i + rank]) for i in range(rank))
    out = out[(slice(None), slice(None), *crop)]
    return out if b is None else out + np.reshape(b, (1, -1) + (1,) * rank)


def np_conv(x, w, b=None, strides=None, pads=None, group=1):
    """ONNX Conv in float64: x (N, C_in, *S), w (C_out, C_in/group, *K)."""
    n, cin, *size = x.shape
    rank = len(size)
    cout, cin_g, *kernel = w.shape
    strides, pads = strides or [1] * rank, pads or [0] * 2 * rank
    xp = np.pad(x, [(0, 0), (0, 0), *((pads[i], pads[i + rank]) for i in range(rank))])
    out_size = [(xp.shape[2 + i] - kernel[i]) // strides[i] + 1 for i in range(rank)]
    out = np.zeros((n, cout, *out_size))
    per_group = cout // group
    for g in range(group):
        for offset in np.ndindex(*kernel):
            window = tuple(slice(o, o + (m - 1) * s + 1, s) for o, m, s in zip(offset, out_size, strides))
            patch = xp[(slice(None), slice(g * cin_g, (g + 1) * cin_g), *window)]
            out[:, g * per_group:(g + 1) * per_group] += np.einsum("nc...,jc->nj...", patch,
                                                                   w[g * per_group:(g + 1) * per_group, :, *offset])
    return out if b is None else out + np.reshape(b, (1, -1) + (1,) * rank)


def np_bn(y, scale, bias, mean, var, eps=1e-5, axis=1):
    shape = [1] * y.ndim
    shape[axis] = -1
    r = [np.asarray(v, np.float64).reshape(shape) for v in (scale, bias, mean, var)]
    return (y - r[2]) / np.sqrt(r[3] + eps) * r[0] + r[1]


def bn_values(g: Graph, name: str) -> list[np.ndarray]:
    """The (scale, B, mean, var) initializers ``Graph.bn`` made for BN ``name``, in float64."""
    found = {t.name: numpy_helper.to_array(t) for t in g.initializers}
    return [found[f"{name}.{p}"].astype(np.float64) for p in ("scale", "B", "mean", "var")]


def value(g: Graph, name: str) -> np.ndarray:
    return next(numpy_helper.to_array(t) for t in g.initializers if t.name == name).astype(np.float64)


def model_of(proto: onnx.ModelProto, name: str = "model.onnx") -> OnnxModel:
    return prepare(proto, name)


def folds(g: Graph, out: str, expect_folded: int, reference, shape=None, samples: int = 3, **kw):
    """Fold ``g``'s model, check it against onnxruntime, the float64 ``reference`` (a function of
    the float64 input) and the full ONNX checker; returns the result."""
    model = model_of(g.model([out], "net", [shape] if shape else None))
    inputs = sample_inputs(ONNX.inputs(model), samples, 0)
    given = (inputs, [reference(inputs[0].astype(np.float64))])
    result = assert_folds(ONNX, model, expect_folded, reference=given, samples=samples, rtol=RTOL, **kw)
    onnx.checker.check_model(result.folded.proto, full_check=True)
    assert [o.name for o in result.folded.graph.output] == [out]
    assert result.folded.proto.opset_import == model.proto.opset_import
    return result


def ops(model: OnnxModel) -> list[str]:
    return [n.op_type for n in model.graph.node]


# -- grouped ConvTranspose, the layout every peer tripped on -----------------------------------

@pytest.mark.parametrize("group", [1, 2, 4, 8])
def test_grouped_conv_transpose_against_float64_reference(group):
    cin, cout = 8, 12 if group < 8 else 16  # in != out; group 8 is group = C_in, two outputs per group
    g = Graph(seed=group)
    x = g.input("x", ["N", cin, 5, 4])
    y = g.conv_transpose(x, cin, cout, 3, "tconv", stride=2, pad=1, group=group, bias=True, output_padding=[1, 1])
    out = g.bn(y, cout, "bn")
    w, b = value(g, "tconv.W"), value(g, "tconv.B")
    result = folds(g, out, 1, lambda a: np_bn(np_conv_transpose(a, w, b, [2, 2], [1, 1, 1, 1], None, [1, 1], group),
                                              *bn_values(g, "bn")))
    assert ops(result.folded) == ["ConvTranspose"] and result.folded.graph.node[0].output[0] == out
    (decision,) = result.decisions
    assert decision.op == "ConvTranspose" and decision.family == "transpose"


def test_the_reference_itself_agrees_with_onnxruntime_on_a_grouped_dilated_conv_transpose():
    g = Graph(seed=3)
    x = g.input("x", [2, 4, 3, 5])
    y = g.conv_transpose(x, 4, 6, 3, "tconv", stride=2, pad=1, group=2, dilations=[2, 1])
    proto = g.model([y], "net")
    data = np.random.default_rng(0).normal(size=(2, 4, 3, 5)).astype(np.float32)
    got = run(ONNX, model_of(proto), [data])[0]
    want = np_conv_transpose(data.astype(np.float64), value(g, "tconv.W"), None, [2, 2], [1, 1, 1, 1], [2, 1], None, 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rank", [1, 3])
def test_conv_transpose_1d_and_3d(rank):
    g = Graph(seed=rank)
    size = [7, 5, 4][:rank]
    x = g.input("x", ["N", 3, *size])
    y = g.conv_transpose(x, 3, 5, 3, "tconv", stride=2, pad=1, rank=rank)
    out = g.bn(y, 5, "bn")
    w = value(g, "tconv.W")
    folds(g, out, 1, lambda a: np_bn(np_conv_transpose(a, w, None, [2] * rank, [1] * 2 * rank), *bn_values(g, "bn")))


def test_conv_transpose_add_bias_bn_the_paddle2onnx_form():
    g = Graph(seed=5)
    x = g.input("x", ["N", 4, 6, 6])
    y = g.bias_add(g.conv_transpose(x, 4, 6, 2, "tconv", pad=0), 6, "bias", shape=(6, 1, 1))
    out = g.bn(y, 6, "bn")
    w, b = value(g, "tconv.W"), value(g, "bias.b").reshape(-1)
    result = folds(g, out, 1, lambda a: np_bn(np_conv_transpose(a, w, b, [2, 2], [0, 0, 0, 0]), *bn_values(g, "bn")))
    assert ops(result.folded) == ["ConvTranspose"]  # the Add and the BN are gone
    assert not any(t.name.startswith(("bias.", "bn.")) for t in result.folded.graph.initializer)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_conv_stride2_grouped_with_and_without_bias(bias):
    g = Graph(seed=7)
    x = g.input("x", ["N", 6, 9, 8])
    y = g.conv(x, 6, 9, 3, "conv", stride=2, pad=1, group=3, bias=bias)
    out = g.bn(y, 9, "bn")
    w, b = value(g, "conv.W"), value(g, "conv.B") if bias else None
    folds(g, out, 1, lambda a: np_bn(np_conv(a, w, b, [2, 2], [1, 1, 1, 1], 3), *bn_values(g, "bn")))


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_with_alpha_beta_and_trans_b(trans_b):
    g = Graph(seed=11)
    x = g.input("x", ["N", 6])
    w = np.random.default_rng(1).normal(size=(6, 4))
    c = np.random.default_rng(2).normal(size=(1, 4))
    weight = g.const("fc.B", (w.T if trans_b else w).astype(np.float32))
    y = g.node("Gemm", [x, weight, g.const("fc.C", c.astype(np.float32))], "fc", transB=trans_b, alpha=0.5, beta=2.0)
    out = g.bn(y, 4, "bn")
    w32, c32 = w.astype(np.float32).astype(np.float64), c.astype(np.float32).astype(np.float64)
    result = folds(g, out, 1, lambda a: np_bn(0.5 * a @ w32 + 2.0 * c32, *bn_values(g, "bn")))
    (gemm,) = result.folded.graph.node
    assert onnx.helper.get_node_attr_value(gemm, "beta") == 1.0


def test_matmul_with_a_constant_weight_gets_one_add():
    g = Graph(seed=13)
    x = g.input("x", ["N", 5])
    w = np.random.default_rng(3).normal(size=(5, 3)).astype(np.float32)
    out = g.bn(g.node("MatMul", [x, g.const("w", w)], "mm"), 3, "bn")
    result = folds(g, out, 1, lambda a: np_bn(a @ w.astype(np.float64), *bn_values(g, "bn")))
    assert ops(result.folded) == ["MatMul", "Add"]


def test_bn_as_mul_then_add_and_as_lone_mul():
    g = Graph(seed=17)
    x = g.input("x", ["N", 3, 6, 6])
    y = g.conv(x, 3, 4, 3, "conv", bias=True)
    s, t = np.random.default_rng(4).uniform(0.5, 2, 4), np.random.default_rng(5).normal(size=4)
    y = g.node("Mul", [y, g.const("s", s.reshape(4, 1, 1).astype(np.float32))], "mul")
    out = g.node("Add", [y, g.const("t", t.reshape(1, 4, 1, 1).astype(np.float32))], "add")
    w, b = value(g, "conv.W"), value(g, "conv.B")
    s32, t32 = s.astype(np.float32).astype(np.float64), t.astype(np.float32).astype(np.float64)
    result = folds(g, out, 1, lambda a: np_conv(a, w, b) * s32.reshape(1, 4, 1, 1) + t32.reshape(1, 4, 1, 1))
    assert result.bn_before == 1 and ops(result.folded) == ["Conv"]
    assert result.graph_before.nodes["mul"]["bn_group"] == "add"


def test_scalar_and_per_channel_constants_but_not_a_map():
    g = Graph(seed=19)
    x = g.input("x", ["N", 2, 5, 5])
    y = g.conv(x, 2, 3, 1, "conv", bias=True)
    out = g.node("Mul", [y, g.const("s", np.array(2.0, np.float32))], "mul")  # a scalar scales every channel
    w, b = value(g, "conv.W"), value(g, "conv.B")
    folds(g, out, 1, lambda a: 2.0 * np_conv(a, w, b), bns_removed=0)
    g = Graph(seed=19)
    x = g.input("x", ["N", 2, 5, 5])
    y = g.conv(x, 2, 3, 1, "conv", bias=True)
    out = g.node("Mul", [y, g.const("s", np.ones((3, 5, 5), np.float32))], "mul")  # varies over H and W
    assert fold(ONNX, model_of(g.model([out], "net"))).decisions == []


def test_dynamic_dimensions_are_set_as_for_every_format():
    g = Graph(seed=23)
    x = g.input("x", ["batch", 3, "height", "width"])
    out = g.bn(g.conv(x, 3, 4, 3, "conv", pad=1), 4, "bn")
    model = model_of(g.model([out], "net"))
    (spec,) = ONNX.inputs(model)
    assert spec.shape == (None, 3, None, None)
    checked = verify(fold(ONNX, model), 2, 0)
    assert checked.inputs[0].shape == (2, 3, 32, 32) and checked.verification.passed


def test_the_zoo_models_fold_every_bn():
    for build, count in ((onnx_zoo.dcgan_generator, 3), (onnx_zoo.text_detector_head, 3)):
        model = model_of(build(), f"{build.__name__}.onnx")
        result = assert_folds(ONNX, model, count, rtol=RTOL)
        assert result.bn_after == 0
        onnx.checker.check_model(result.folded.proto, full_check=True)
    ops_left = {n.op_type for n in fold(ONNX, model_of(onnx_zoo.dcgan_generator())).folded.graph.node}
    assert "BatchNormalization" not in ops_left and "Add" not in ops_left  # the bias Add was absorbed


# -- the ONNX project's own node test cases, with a BN appended --------------------------------

def _node_cases() -> dict[str, object]:
    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node.collect_testcases(op_type=None)  # the module caches the first selection
    return {c.name: c for c in cases if c.kind == "node" and len(c.model.graph.node) == 1
            and c.model.graph.node[0].op_type in ("Conv", "ConvTranspose")}


NODE_CASES = _node_cases()


def _with_bn(case, seed: int) -> tuple[onnx.ModelProto, list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """The case's model with its weight as an initializer and a BN with random statistics after it."""
    proto = onnx.ModelProto()
    proto.CopyFrom(case.model)
    graph = proto.graph
    inputs, expected = case.data_sets[0]
    (conv,) = graph.node
    fed = [v.name for v in graph.input]
    weights = {name: array for name, array in zip(fed, inputs) if name in conv.input[1:]}
    graph.initializer.extend(numpy_helper.from_array(a, n) for n, a in weights.items())
    kept = [v for v in graph.input if v.name not in weights]
    del graph.input[:]
    graph.input.extend(kept)
    channels = expected[0].shape[1]
    rng = np.random.default_rng(seed)
    params = [rng.normal(1, 0.5, channels), rng.normal(0, 0.5, channels), rng.normal(0, 1, channels),
              rng.uniform(0.3, 3.0, channels)]
    names = [f"bn.{p}" for p in ("scale", "B", "mean", "var")]
    graph.initializer.extend(numpy_helper.from_array(v.astype(np.float32), n) for n, v in zip(names, params))
    y = graph.output[0].name
    graph.node.append(helper.make_node("BatchNormalization", [y, *names], ["bn_out"], name="bn"))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("bn_out", TensorProto.FLOAT, list(expected[0].shape)))
    feeds = [a for n, a in zip(fed, inputs) if n not in weights]
    return proto, feeds, expected[0], params


@pytest.mark.parametrize("name", sorted(NODE_CASES))
def test_onnx_backend_case_with_a_bn_appended(name):
    case = NODE_CASES[name]
    proto, feeds, expected, params = _with_bn(case, seed=len(name))
    model = model_of(proto, f"{name}.onnx")
    want = np_bn(expected.astype(np.float64), *params)
    result = assert_folds(ONNX, model, 1, reference=(feeds, [want]), samples=2, rtol=RTOL)
    onnx.checker.check_model(result.folded.proto, full_check=True)
    got = run(ONNX, result.folded, feeds)[0]  # on the case's own inputs
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * max(1.0, float(np.max(np.abs(want)))))


def test_the_backend_cases_cover_what_the_issue_names():
    names = set(NODE_CASES)
    for wanted in ("test_convtranspose_1d", "test_convtranspose_3d", "test_convtranspose_pads",
                   "test_convtranspose_autopad_same", "test_convtranspose_dilations", "test_convtranspose_output_shape",
                   "test_convtranspose_group_2", "test_basic_conv_with_padding", "test_conv_with_autopad_same"):
        assert wanted in names, wanted


# -- every rule, negative ----------------------------------------------------------------------

def _conv_net(seed: int = 0):
    g = Graph(seed)
    return g, g.input("x", ["N", 3, 6, 5])


def test_supported_kind_bn_after_a_relu_NEG():
    g, x = _conv_net()
    out = g.bn(g.node("Relu", [g.conv(x, 3, 4, 3, "conv")], "relu"), 4, "bn")
    decision = assert_skipped(ONNX, model_of(g.model([out], "net")), "supported-kind", "Relu")
    assert decision.layer == "relu"


def test_supported_kind_bn_on_a_graph_input_NEG():
    g, x = _conv_net()
    out = g.conv(g.node("Sigmoid", [g.bn(x, 3, "bn")], "gate"), 3, 4, 3, "conv")  # no layer after it either
    assert_skipped(ONNX, model_of(g.model([out], "net")), "supported-kind", "model input")


def test_inference_mode_training_mode_1_NEG():
    g, x = _conv_net()
    y = g.conv(x, 3, 4, 3, "conv")
    out = g.node("BatchNormalization", [y, *(g.const(f"p{i}", np.ones(4, np.float32)) for i in range(4))], "bn",
                 outputs=3, training_mode=1)  # Y, running mean, running variance
    assert_skipped(ONNX, model_of(g.model([out], "net", [["N", 4, 4, 3]])), "inference-mode", "training=True")


def test_constant_weights_weight_fed_as_a_graph_input_NEG():
    g, x = _conv_net()
    w = g.input("w", [4, 3, 3, 3])
    out = g.bn(g.node("Conv", [x, w], "conv", kernel_shape=[3, 3]), 4, "bn")
    # the weight input has no batch axis for the sample recipe: no output check
    assert_skipped(ONNX, model_of(g.model([out], "net")), "constant-weights", "W of 'conv'", check_outputs=False)


def test_unshared_weights_weight_read_by_two_convs_NEG():
    g, x = _conv_net()
    w = g.const("w", np.ones((4, 3, 3, 3), np.float32))
    a = g.bn(g.node("Conv", [x, w], "conv_a", kernel_shape=[3, 3]), 4, "bn_a")
    b = g.node("Conv", [x, w], "conv_b", kernel_shape=[3, 3])
    assert_skipped(ONNX, model_of(g.model([a, b], "net")), "unshared-weights", "'conv_b'")


def test_single_use_chain_bias_add_read_twice_NEG():
    g, x = _conv_net()
    y = g.bias_add(g.conv(x, 3, 4, 3, "conv"), 4, "bias")
    out = g.node("Add", [g.bn(y, 4, "bn"), y], "residual")
    assert_skipped(ONNX, model_of(g.model([out], "net")), "single-use-chain", "'bias' -> 'residual'")


def test_single_use_chain_bn_side_output_read_NEG():
    g, x = _conv_net()
    y = g.conv(x, 3, 4, 3, "conv")
    params = [g.const(f"p{i}", np.ones(4, np.float32)) for i in range(4)]
    g.opset = 13  # opset 9-13 BNs may have the four statistics outputs
    g.nodes.append(helper.make_node("BatchNormalization", [y, *params], ["bn", "mean", "var", "saved_mean", "saved_var"],
                                    name="bn"))
    out = g.node("Identity", ["mean"], "mean_out")
    model = model_of(g.model(["bn", out], "net", [["N", 4, 4, 3], [4]]))
    assert_skipped(ONNX, model, "single-use-chain", "side output", check_outputs=False)


def test_single_consumer_conv_output_read_twice_NEG():
    g, x = _conv_net()
    y = g.conv(x, 3, 4, 3, "conv")
    out = g.node("Add", [g.bn(y, 4, "bn"), y], "residual")
    assert_skipped(ONNX, model_of(g.model([out], "net")), "single-consumer", "'conv'")


def test_per_channel_operands_gemm_c_is_a_matrix_NEG():
    g = Graph(0)
    x = g.input("x", [2, 6])
    y = g.node("Gemm", [x, g.const("b", np.ones((6, 4), np.float32)), g.const("c", np.ones((2, 4), np.float32))],
               "fc")
    out = g.bn(y, 4, "bn")
    assert_skipped(ONNX, model_of(g.model([out], "net")), "per-channel-operands", "[2, 4]")


def test_channel_axis_bn_over_a_sequence_after_matmul_NEG():
    g = Graph(0)
    x = g.input("x", ["N", 4, 6])  # (N, T, K) @ (K, C): channels last, the BN normalizes axis 1 (T)
    out = g.bn(g.node("MatMul", [x, g.const("w", np.ones((6, 4), np.float32))], "mm"), 4, "bn")
    assert_skipped(ONNX, model_of(g.model([out], "net")), "channel-axis", "axis [1]")


def test_finite_parameters_nan_variance_NEG():
    g, x = _conv_net()
    y = g.conv(x, 3, 4, 3, "conv")
    params = [np.ones(4), np.zeros(4), np.zeros(4), np.array([1.0, np.nan, 1.0, 1.0])]
    out = g.node("BatchNormalization", [y, *(g.const(f"p{i}", v.astype(np.float32)) for i, v in enumerate(params))],
                 "bn")
    assert_skipped(ONNX, model_of(g.model([out], "net")), "finite-parameters", "non-finite variance")


def test_finite_weights_inf_in_the_kernel_NEG():
    g, x = _conv_net()
    w = np.ones((4, 3, 3, 3), np.float32)
    w[1, 0, 0, 0] = np.inf
    out = g.bn(g.node("Conv", [x, g.const("w", w)], "conv", kernel_shape=[3, 3]), 4, "bn")
    assert_skipped(ONNX, model_of(g.model([out], "net")), "finite-weights", "non-finite kernel")


def test_fits_dtype_float16_overflow_NEG():
    g = Graph(0)
    x = g.input("x", ["N", 3, 6, 5], TensorProto.FLOAT16)
    w = np.full((4, 3, 1, 1), 100.0, np.float16)
    y = g.node("Conv", [x, g.const("w", w)], "conv", kernel_shape=[1, 1])
    params = [np.array([1.0, 1000.0, 1.0, 1.0]), np.zeros(4), np.zeros(4), np.ones(4)]  # 100 * 1000 > 65504
    out = g.node("BatchNormalization", [y, *(g.const(f"p{i}", v.astype(np.float16)) for i, v in enumerate(params))],
                 "bn", epsilon=0.0)
    proto = g.model([out], "net", [["N", 4, 6, 5]], dtype=TensorProto.FLOAT16)
    assert_skipped(ONNX, model_of(proto), "fits-dtype", "float16")


# -- the rewrite keeps what users rely on ------------------------------------------------------

def test_user_model_untouched_and_names_kept():
    proto = onnx_zoo.dcgan_generator()
    before = proto.SerializeToString()
    model = model_of(proto)
    result = fold(ONNX, model)
    assert proto.SerializeToString() == before and model.proto.graph.node[1].op_type == "BatchNormalization"
    assert [o.name for o in result.folded.graph.output] == ["image"]
    names = {n.name for n in result.folded.graph.node}
    assert {"project", "up0", "up1", "to_rgb"} <= names and not any("bn" in n for n in names)
    assert result.graph_after.nodes["up1"]["op"] == "ConvTranspose"


def test_unnamed_nodes_get_stable_ids():
    g, x = _conv_net()
    out = g.bn(g.conv(x, 3, 4, 3, "conv"), 4, "bn")
    proto = g.model([out], "net")
    for node in proto.graph.node:
        node.name = ""
    result = fold(ONNX, model_of(proto))
    assert [(d.layer, d.bn) for d in result.decisions] == [("Conv_0", "BatchNormalization_1")]
    assert list(result.graph_after.nodes) == ["x", "Conv_0"]


# -- files and the command line ----------------------------------------------------------------

def test_command_line_folds_an_onnx_file(tmp_path):
    path = tmp_path / "gen.onnx"
    onnx.save(onnx_zoo.dcgan_generator(), path)
    proc = run_cli(path, "-o", tmp_path / "out.onnx", "--report", tmp_path / "r.json", "--samples", "4", "--seed", "1")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report) == {"input", "output", "pairs", "folded", "skipped", "bn_before", "bn_after", "verification",
                           "per_layer", "timings_s", "affine_before", "affine_after", "affine_folded",
                           "affine_skipped", "bias_merges", "bias_skipped", "forward", "partial", "concat", "shift_adds"}
    assert report["per_layer"] is None  # only with --per-layer
    assert (report["bn_before"], report["bn_after"], report["folded"]) == (3, 0, 3)
    assert report["verification"]["samples"] == 4 and report["verification"]["max_rel_diff"] < RTOL
    folded = onnx.load(tmp_path / "out.onnx")
    onnx.checker.check_model(folded, full_check=True)
    assert "BatchNormalization" not in {n.op_type for n in folded.graph.node}
    assert run_cli(path, "--atol", "0", "-o", tmp_path / "o2.onnx").returncode == 1


def _external_model(folder: Path, location: str) -> Path:
    """A model whose weight lives in external data at ``location`` (rewritten after saving)."""
    g, x = _conv_net()
    out = g.bn(g.conv(x, 3, 4, 3, "conv"), 4, "bn")
    path = folder / "model.onnx"
    onnx.save(g.model([out], "net"), path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    relocated(path, location)
    return path


def test_external_data_beside_the_model_is_read(tmp_path):
    path = _external_model(tmp_path, "weights.bin")
    result = fold(ONNX, load_model(path))
    assert [d.status for d in result.decisions] == ["folded"]
    with pytest.raises(FoldError, match="an uploaded model must hold all its data"):
        load_model(path, external_data=False)


@pytest.mark.parametrize("where", ["../outside.bin", "ABSOLUTE"])
def test_external_data_outside_the_folder_is_never_read(tmp_path, where):
    folder = tmp_path / "model"
    folder.mkdir()
    outside = tmp_path / "outside.bin"
    os.mkfifo(outside)  # opening it to read would block: the command line would time out
    location = str(outside) if where == "ABSOLUTE" else where
    path = _external_model(folder, location)
    (folder / "weights.bin").unlink()
    proc = run_cli(path, "-o", tmp_path / "out.onnx")
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.count("\n") == 1 and "outside its own folder" in proc.stderr and "Traceback" not in proc.stderr


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    good = onnx_zoo.text_detector_head().SerializeToString()
    files = {"truncated": good[: len(good) // 2], "empty": b"", "text": b"this is not a model, just notes\n" * 4,
             "keras_zip": b"PK\x03\x04" + bytes(200)}
    g = Graph(0)
    out = g.node("Foo", [g.input("x", [1, 2])], "custom", domain="my.custom")
    files["custom_op"] = g.model([out], "g", [[1, 2]], opsets={"my.custom": 1}).SerializeToString()
    newer = onnx_zoo.text_detector_head()
    newer.opset_import[0].version = onnx.defs.onnx_opset_version() + 1
    files["newer_opset"] = newer.SerializeToString()
    older = onnx_zoo.text_detector_head()
    older.opset_import[0].version = 7
    files["older_opset"] = older.SerializeToString()
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name}.onnx"
        paths[name].write_bytes(data)
    return paths


def test_bad_onnx_files_exit_2_with_one_line(tmp_path):
    words = {"truncated": "not a valid ONNX model", "empty": "is empty", "text": "truncated",
             "keras_zip": "truncated", "custom_op": "onnxruntime cannot run", "newer_opset": "opsets 9 to",
             "older_opset": "opsets 9 to"}
    for name, path in _bad_files(tmp_path).items():
        proc = run_cli(path, "-o", tmp_path / "out.onnx")
        assert proc.returncode == 2, (name, proc.stdout, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("foldscope: error:") and path.name in lines[0], (name, lines)
        assert "Traceback" not in proc.stderr and proc.stdout == "", name
        assert words[name] in lines[0] or name in ("text", "keras_zip"), (name, lines[0])
        assert "Wire format" not in lines[0] and "Error parsing message" not in lines[0], lines[0]  # the parser's words


def test_a_custom_domain_op_is_shown_and_left_to_onnxruntime():
    g, x = _conv_net()
    y = g.node("Foo", [g.bn(g.conv(x, 3, 4, 3, "conv"), 4, "bn")], "custom", domain="my.custom")
    proto = g.model([y], "g", [["N", 4, 4, 3]], opsets={"my.custom": 1})
    with pytest.raises(FoldError, match="onnxruntime cannot run 'custom.onnx'"):
        prepare(proto, "custom.onnx")
    from fold.frontends.onnx.model import onnx_model

    graph = ONNX.graph(onnx_model(proto, "custom.onnx"))
    assert graph.nodes["custom"]["op"] == "Foo" and graph.nodes["custom"]["config"]["domain"] == "my.custom"


def test_combinations_of_the_issue_table_fold():
    """Conv / ConvTranspose x bias Add or not x BN or Mul+Add, all against the float64 reference."""
    for op, bias_add, form in itertools.product(("Conv", "ConvTranspose"), (False, True), ("bn", "mul_add")):
        g = Graph(seed=31)
        x = g.input("x", ["N", 4, 5, 6])
        y = (g.conv(x, 4, 6, 3, "layer", pad=1) if op == "Conv" else
             g.conv_transpose(x, 4, 6, 3, "layer", stride=2, pad=1, group=2))
        w = value(g, "layer.W")
        b = None
        if bias_add:
            y = g.bias_add(y, 6, "bias")
            b = value(g, "bias.b").reshape(-1)
        s = t = None
        if form == "bn":
            out = g.bn(y, 6, "bn")
        else:
            s, t = np.linspace(0.5, 2, 6), np.linspace(-1, 1, 6)
            y = g.node("Mul", [y, g.const("s", s.reshape(1, 6, 1, 1).astype(np.float32))], "mul")
            out = g.node("Add", [y, g.const("t", t.reshape(1, 6, 1, 1).astype(np.float32))], "add")

        def reference(a, w=w, b=b, s=s, t=t, op=op, form=form, g=g):
            z = np_conv(a, w, b, pads=[1, 1, 1, 1]) if op == "Conv" else \
                np_conv_transpose(a, w, b, [2, 2], [1, 1, 1, 1], group=2)
            if form == "bn":
                return np_bn(z, *bn_values(g, "bn"))
            return z * s.astype(np.float32).reshape(1, 6, 1, 1) + t.astype(np.float32).reshape(1, 6, 1, 1)

        result = folds(g, out, 1, reference)
        assert ops(result.folded) == [op], (op, bias_add, form)


# -- the app's side: uploads and the peers -----------------------------------------------------

def test_an_upload_may_not_refer_to_external_data(tmp_path):
    from foldscope_app.workbench.workbench import upload_workbench

    path = _external_model(tmp_path, "weights.bin")
    with pytest.raises(FoldError, match="an uploaded model must hold all its data"):
        upload_workbench("model.onnx", path.read_bytes())
    wb = upload_workbench("gen.onnx", onnx_zoo.dcgan_generator().SerializeToString())
    assert wb.suffix == ".onnx" and wb.verification.passed and len(wb.result.folded_pairs) == 3
    detail = wb.detail(wb.result.folded_pairs[2])  # the grouped ConvTranspose's channels
    assert detail.range_before.shape == detail.range_after.shape == (32, 2)


def count_batchnorms(proto: onnx.ModelProto) -> int:
    """BatchNormalization nodes of the main graph (counted here independently of fold.core.graph)."""
    return sum(node.op_type == "BatchNormalization" for node in proto.graph.node)


def test_the_peers_on_the_dcgan_generator():
    from foldscope_app.workbench.onnx_peers import peer_runs

    model = model_of(onnx_zoo.dcgan_generator())
    result = fold(ONNX, model)
    checked = verify(result, 2, 0)
    runs = {r.tool.split()[0]: r for r in peer_runs(model, checked.inputs)}
    assert set(runs) == {"onnxsim", "onnxslim", "onnxoptimizer", "onnxruntime"}
    assert count_batchnorms(result.folded.proto) == 0 and count_batchnorms(model.proto) == 3
    assert runs["onnxoptimizer"].bn_left == 3  # fuse_bn_into_conv folds into Conv only
    assert runs["onnxslim"].bn_left == 1  # the grouped ConvTranspose's BN (behind its bias Add) too, not Gemm's
    for run_ in runs.values():
        assert run_.error is None and run_.bn_left >= 1  # none of them folds the Gemm's BN
        assert run_.verification.passed


@pytest.mark.parametrize("opset", [9, 11, 13, 21])
def test_older_and_newer_opsets(opset):
    g = Graph(seed=opset, opset=opset)
    x = g.input("x", ["N", 4, 5, 5])
    y = g.bn(g.conv_transpose(x, 4, 6, 3, "tconv", stride=2, pad=1, group=2), 6, "bn")
    fc = g.node("Gemm", [g.node("Flatten", [y], "flat"), g.const("fc.B", np.ones((6 * 9 * 9, 3), np.float32) * 0.01),
                         g.const("fc.C", np.zeros(3, np.float32))], "fc")
    out = g.bn(fc, 3, "fc_bn")
    model = model_of(g.model([out], "net", [["N", 3]]))
    result = assert_folds(ONNX, model, 2, rtol=RTOL)
    onnx.checker.check_model(result.folded.proto, full_check=True)
    assert result.folded.proto.opset_import[0].version == opset


def test_a_folded_model_is_freed_with_its_view():
    """The frontend keeps one view of each model while the model lives; the view must not keep the
    model alive itself (every ONNX model a long-lived page folded, and its weights, stayed in memory)."""
    import gc
    import weakref

    result = fold(ONNX, prepare(onnx_zoo.dcgan_generator(), "gen.onnx"))
    verify(result, samples=2)
    models = [weakref.ref(result.original), weakref.ref(result.folded)]
    del result
    gc.collect()
    assert [m() for m in models] == [None, None]
