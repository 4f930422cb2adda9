"""circle frontend: Samsung ONE's six Net_TConv_BN recipes, PyTorch models exported by tico, circle's own
operators, the maps folded forward, partially and split over a CONCATENATION (the flatbuffer layer TFLite
shares), the file checks, the runtimes in their worker processes, and ``check`` of folds other tools
wrote (tico's O1 pipeline, a copy folded by hand).

Every positive case goes through ``tests.helpers.assert_folds``: both models run in a real circle
runtime (tico's reference runtime, or onert where it has every kernel) and the fold is verified layer by
layer, against an independent float64 reference where one is given. Negative cases are named ``*_NEG``,
go through ``assert_skipped`` and give the TFLite frontend's reasons: the two share their rules.
"""

from __future__ import annotations

import sys

import keras
import numpy as np
import pytest

from fold.core.errors import FoldError
from fold.engine.comparison import Side
from fold.engine.pipeline import fold, load
from fold.frontends.circle import io as circle_io
from fold.frontends.circle.model import CIRCLE_SCHEMA
from fold.frontends.flatbuffer.schema import PLACEHOLDER
from fold.tools.check import check
from tests.circle_support import tico_model, tico_optimized, to_circle
from tests.helpers import CIRCLE, TFLITE, assert_caught, assert_folds, assert_skipped, mutated
from tests.one_recipes import RECIPES, recipe_params
from tests.test_directions import (_conv, _converted, _keras, _mul_add, _the, dynamic_filter, float16_filter_overflow,
                                   inf_filter_after_the_map, map_output_also_read, reshape_mixing_channels)
from tests.tflite_support import (ACT, TCONV_CASES, Net, TConvCase, _options, binary, conv_net, pointwise_bn,
                                  pointwise_conv, tconv_bn, tconv_reference)

torch = pytest.importorskip("torch")  # a dev requirement (requirements-dev.txt); tico needs it


def circle(data: bytes, name: str = "model.circle", runtime: str = "auto"):
    return CIRCLE.model_from_bytes(data, name, runtime)


def ops(model) -> list[tuple[str, int, int]]:
    """(op, op version, input count) of each op of a circle model."""
    tree = model.tree
    return [(CIRCLE_SCHEMA.op_type(tree, o), tree.operatorCodes[o.opcodeIndex].version, len(o.inputs))
            for o in tree.subgraphs[0].operators]


def runtimes(model) -> set[str]:
    """The runtimes "auto" chose for the models the frontend ran (the model, copies of it, its layers alone)."""
    return set(model.probed.values())


# -- Samsung ONE's Net_TConv_BN recipes ---------------------------------------------------------

def _exercising(case: TConvCase, rows: int = 8) -> np.ndarray:
    """Inputs that reach both sides of the recipes' RELU and RELU6: the recipes' shifts (-2.0, -7.8)
    after a gaussian(0, 0.1) filter leave every output of N(0, 1) inputs at 0, a dead layer the
    verdict could only call inconclusive."""
    return np.random.default_rng(1).normal(0.0, 100.0, (rows, *case.hw, case.cin)).astype(np.float32)


def recipe(name: str) -> tuple[bytes, dict]:
    return tconv_bn(RECIPES[name], flat=CIRCLE_SCHEMA, params=recipe_params(name))


@pytest.mark.parametrize("name", RECIPES)
def test_one_recipe_folds_as_luci_folds_it(name):
    """FuseBatchNormWithTConv's result: one 4-input TRANSPOSE_CONV with a [C] bias (op version 3, the one
    that carries a bias), a RELU/RELU6 kept as its own op, the output tensor kept; verified in tico's
    reference runtime against a float64 reference."""
    case = RECIPES[name]
    data, params = recipe(name)
    inputs = [_exercising(case)]
    expected = tconv_reference(inputs[0].astype(np.float64), case, params)
    model = circle(data, f"{name}.circle")
    result = assert_folds(CIRCLE, model, 1, reference=(inputs, [expected]), inputs=inputs, rtol=1e-5)
    assert result.bn_before == 1 and result.bn_after == 0
    folded = result.folded
    assert ops(folded) == [("TRANSPOSE_CONV", 3, 4)] + ([(case.act, 1, 1)] if case.act != "NONE" else [])
    sg = folded.main
    tconv = sg.operators[0]
    assert list(sg.tensors[tconv.inputs[3]].shape) == [case.cout]
    assert tconv.builtinOptions.fusedActivationFunction == ACT.NONE
    assert sg.tensors[sg.outputs[0]].name == model.main.tensors[model.main.outputs[0]].name
    assert runtimes(model) == runtimes(folded) == {"tico"}  # onert has no TRANSPOSE_CONV kernel
    if case.act != "NONE":
        assert result.decisions[0].to_dict()["activation"] == \
            f"{case.act} kept as a separate {case.act} op after 'TRANSPOSE_CONV:0'"


@pytest.mark.parametrize("case", TCONV_CASES.values(), ids=TCONV_CASES.keys())
def test_tconv_geometries_the_recipes_never_test(case):
    """Strides 2, SAME padding, even and 5x1 kernels, operands of shape (1, 1, 1, C) and operands first,
    against the float64 reference."""
    data, params = tconv_bn(case, flat=CIRCLE_SCHEMA)
    inputs = [np.random.default_rng(3).normal(0.0, 3.0, (1, *case.hw, case.cin)).astype(np.float32)]
    expected = tconv_reference(inputs[0].astype(np.float64), case, params)
    result = assert_folds(CIRCLE, circle(data), 1, reference=(inputs, [expected]), inputs=inputs, rtol=1e-5)
    assert [op for op, _, _ in ops(result.folded)] == ["TRANSPOSE_CONV"] + ([case.act] if case.act != "NONE" else [])


def test_the_folded_recipes_pass_ticos_own_checks_and_run_in_its_runtime():
    """Every folded recipe passes tico's structural verification of a circle file (references, graph
    bookkeeping), and tico's reference runtime, run here in-process through its own API, computes the
    float64 reference with it."""
    from tico.circle.document import CircleDocument
    from tico.circle.runtime import CircleReferenceRuntime

    for name, case in RECIPES.items():
        data, params = recipe(name)
        folded = CIRCLE.to_bytes(fold(CIRCLE, circle(data)).folded)
        assert not CircleDocument.from_bytes(folded).verify(raise_on_error=True).errors
        x = _exercising(case, rows=1)
        got = CircleReferenceRuntime(folded).run([x]).outputs[0]
        np.testing.assert_allclose(got, tconv_reference(x.astype(np.float64), case, params), rtol=1e-5, atol=1e-4)


def test_folded_codes_are_written_as_every_circle_reader_reads_them():
    """deprecated_builtin_code equals the code below 127 (ONE's tools read it, tico the other field);
    127 with builtin_code past it (GELU, 150)."""
    net = Net(CIRCLE_SCHEMA)
    y = net.op("GELU", [binary(net, "ADD", pointwise_conv(net), np.arange(3.0))], [1, 4, 4, 3])
    result = fold(CIRCLE, circle(net.build(y)))
    codes = {CIRCLE_SCHEMA.op_type(result.folded.tree, o): result.folded.tree.operatorCodes[o.opcodeIndex]
             for o in result.folded.main.operators}
    assert set(codes) == {"CONV_2D", "GELU"}
    assert (codes["CONV_2D"].deprecatedBuiltinCode, codes["CONV_2D"].builtinCode) == (3, 3)
    assert (codes["GELU"].deprecatedBuiltinCode, codes["GELU"].builtinCode) == (PLACEHOLDER, 150)


def test_model_explorers_circle_adapter_shows_the_tconv_with_its_new_bias(tmp_path):
    """The seed note's last question (can the TConv with its new bias be seen in netron-circle?),
    answered with ONE's own Model Explorer adapter reading the folded file: four inputs, the fourth a
    [C] constant holding b' = shift + scale * b."""
    from model_explorer_circle.main import CircleAdapter

    data, params = recipe("Net_TConv_BN_003")
    result = fold(CIRCLE, circle(data, "recipe.circle"))
    path = tmp_path / "folded.circle"
    CIRCLE.write(result.folded, path)
    graph = CircleAdapter().convert(str(path), {})["graphs"][0]
    nodes = {n.id: n for n in graph.nodes}
    tconv = next(n for n in graph.nodes if n.label == "TRANSPOSE_CONV")
    sources = [nodes[e.sourceNodeId] for e in tconv.incomingEdges]
    assert len(sources) == 4
    bias = sources[3]
    assert bias.label == "pseudo_const"
    assert {a.key: a.value for a in bias.outputsMetadata[0].attrs}["tensor_shape"] == "float32[1]"
    shown = np.float32({a.key: a.value for a in bias.attrs}["__value"].strip("[]"))
    b, s, t = (np.float64(params[k][0]) for k in ("bias", "scale", "shift"))
    np.testing.assert_allclose(shown, b * s + t, rtol=1e-6)  # b' cancels to 0.02: float32's rounding, relative


def test_the_model_explorer_export_of_a_circle_fold(tmp_path):
    """``--model-explorer`` of a circle fold: both graphs with the TConv's new bias among the folded graph's
    weights, the fold's status per node, and the mapping that syncs the split panes."""
    import json

    from fold.outputs.model_explorer import export

    data, _ = recipe("Net_TConv_BN_005")
    result = fold(CIRCLE, circle(data, "recipe.circle"))
    written = {p.name for p in export(result, tmp_path)}
    assert written == {"before.json", "before_fold.json", "after.json", "after_fold.json", "mapping.json"}
    after = json.loads((tmp_path / "after.json").read_text())["graphs"][0]
    tconv = next(n for n in after["nodes"] if n["id"] == "TRANSPOSE_CONV:0")
    assert {"key": "weight.bias", "value": "2"} in tconv["attrs"], tconv["attrs"]
    assert {n["id"] for n in after["nodes"]} >= {"TRANSPOSE_CONV:0", "RELU:0/activation"}
    entries = json.loads((tmp_path / "mapping.json").read_text())["mappingEntries"]
    assert any("MUL:1" in e["leftNodeIds"] and "TRANSPOSE_CONV:0" in e["rightNodeIds"] for e in entries), entries


# -- circle files from PyTorch, as tico converts them -------------------------------------------

class _TConvBn(torch.nn.Module):
    """ConvTranspose2d (3 -> 5, 3x3, stride 2, padding 1, output padding 1) -> BatchNorm2d -> ReLU: tico
    writes TRANSPOSE -> TRANSPOSE_CONV -> SLICE (the padding's crop) -> TRANSPOSE -> MUL -> ADD -> RELU."""

    def __init__(self):
        super().__init__()
        self.tconv = torch.nn.ConvTranspose2d(3, 5, 3, stride=2, padding=1, output_padding=1)
        self.bn = torch.nn.BatchNorm2d(5)

    def forward(self, x):
        return torch.relu(self.bn(self.tconv(x)))


class _ConvBn(torch.nn.Module):
    """Conv2d (3 -> 6, 3x3, stride 2) -> BatchNorm2d -> ReLU6 -> Conv2d (6 -> 4, 1x1): every op has an
    onert kernel."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, stride=2)
        self.bn = torch.nn.BatchNorm2d(6)
        self.head = torch.nn.Conv2d(6, 4, 1)

    def forward(self, x):
        return self.head(torch.nn.functional.relu6(self.bn(self.conv(x))))


def _torch(cls: type, seed: int = 0) -> torch.nn.Module:
    """The module in eval mode with BN statistics of its own (not the identity of a fresh BN)."""
    torch.manual_seed(seed)
    module = cls().eval()
    with torch.no_grad():
        bn = module.bn
        bn.running_mean.uniform_(-1.0, 1.0)
        bn.running_var.uniform_(0.3, 3.0)
        bn.weight.uniform_(0.5, 2.0)
        bn.weight.mul_(torch.where(torch.rand(bn.weight.shape) < 0.5, -1.0, 1.0))
        bn.bias.uniform_(-1.0, 1.0)
    return module


_EXAMPLE = (1, 3, 9, 7)


@pytest.fixture(scope="module")
def exports() -> dict[str, tuple[bytes, torch.nn.Module]]:
    """Each module with the circle file tico writes of it."""
    made = {}
    for cls in (_TConvBn, _ConvBn):
        module = _torch(cls)
        made[cls.__name__] = (tico_model(module, (torch.zeros(_EXAMPLE),)), module)
    return made


def _torch_reference(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """The module run in float64 by PyTorch: an oracle independent of tico and of both circle runtimes."""
    with torch.no_grad():
        return module.double()(torch.from_numpy(x.astype(np.float64))).numpy()


@pytest.mark.parametrize("name,ran_in", [("_TConvBn", "tico"), ("_ConvBn", "onert")])
def test_tico_exports_fold_through_the_transposes_it_writes(name, ran_in, exports):
    """tico converts NCHW PyTorch to NHWC circle with TRANSPOSE (and a SLICE for a padded transposed
    convolution) between a layer and its BN: the chain is followed through them, the per-channel operands
    read on their own axis (1, NCHW). The folded files run in tico's reference runtime, the conv model's
    in onert."""
    data, module = exports[name]
    model = circle(data, f"{name}.circle")
    x = np.random.default_rng(2).normal(size=_EXAMPLE).astype(np.float32)
    expected = _torch_reference(module, x)
    result = assert_folds(CIRCLE, model, 1, reference=([x], [expected]), inputs=[x], rtol=1e-5)
    assert result.bn_before == 1 and result.bn_after == 0
    assert "MUL" not in [op for op, _, _ in ops(result.folded)]
    assert runtimes(model) == runtimes(result.folded) == {ran_in}


def test_tico_leaves_a_pytorch_bn_unfolded_and_check_says_it_was_kept(exports):
    """tico's own O1 pipeline fuses a MUL/ADD only right after the layer; behind the TRANSPOSE it writes
    itself, the BN stays (measured with tico 0.3.0), and ``check`` reports it kept."""
    data, _ = exports["_TConvBn"]
    original = circle(data, "tconv.circle")
    candidate = circle(tico_optimized(data), "tconv_o1.circle")
    result = check(Side(CIRCLE, original, CIRCLE.graph(original)), Side(CIRCLE, candidate, CIRCLE.graph(candidate)))
    assert [f.status for f in result.fates] == ["kept"]
    assert result.checked.verification.passed, result.checked.verification.reason


# -- check: folds other tools made ---------------------------------------------------------------

def _sides(original, candidate) -> tuple[Side, Side]:
    return Side(CIRCLE, original, CIRCLE.graph(original)), Side(CIRCLE, candidate, CIRCLE.graph(candidate))


@pytest.mark.parametrize("name", RECIPES)
def test_check_of_tico_own_fusion_of_the_recipes(name):
    """tico's O1 pipeline folds what it can of each recipe (the MUL into the filter, and the ADD into the
    bias of a TRANSPOSE_CONV that had one; nothing of 004, whose bias is (1, 1, 1, 16)); ``check`` lines
    the result up by tensor name and passes it layer by layer: the per-layer verdict the seed note's
    h5diff compared outputs for."""
    data, _ = recipe(name)
    original = circle(data, f"{name}.circle")
    candidate = circle(tico_optimized(data), f"{name}_tico.circle")
    result = check(*_sides(original, candidate), inputs=[_exercising(RECIPES[name])])
    v = result.checked.verification
    assert v.passed, v.reason
    if name == "Net_TConv_BN_004":
        assert [f.status for f in result.fates] == ["kept"]
    else:
        assert [(f.status, f.into) for f in result.fates] == [("folded", "TRANSPOSE_CONV:0")]
        assert [c.layer for c in v.folded_layers] == ["TRANSPOSE_CONV:0"]


def test_tico_is_the_circle_files_peer(exports):
    """``zoo --peers`` and the peer rows: tico's O1 folds recipe 003 whole and leaves the PyTorch BN."""
    from fold.tools.peer_runs import PEERS_BY_FORMAT, run_peer

    (peer,) = PEERS_BY_FORMAT["circle"]
    assert peer.tool == "tico 0.3.0"
    data, _ = recipe("Net_TConv_BN_003")
    folded = run_peer(peer, Side(CIRCLE, circle(data), CIRCLE.graph(circle(data))))
    assert folded.error is None and folded.bn_left == 0 and folded.verification.passed, folded
    original = circle(exports["_ConvBn"][0])
    kept = run_peer(peer, Side(CIRCLE, original, CIRCLE.graph(original)))
    assert kept.error is None and kept.bn_left == 1 and kept.verification.passed, kept


def _hand_folded(data: bytes) -> bytes:
    """A tico export folded by hand, outside foldscope's rewrite: the TRANSPOSE_CONV's filter (OHWI)
    scaled along O by the MUL's operand, its bias b * s + t, the MUL and the ADD dropped, and the op
    before them (tico's TRANSPOSE back to NCHW) writing the ADD's output."""
    tree = CIRCLE_SCHEMA.parse(data)
    sg = tree.subgraphs[0]
    by_type = {CIRCLE_SCHEMA.op_type(tree, o): o for o in sg.operators}
    tconv, mul, add = by_type["TRANSPOSE_CONV"], by_type["MUL"], by_type["ADD"]

    def value(t: int) -> np.ndarray:
        tensor = sg.tensors[t]
        return np.frombuffer(bytes(tree.buffers[tensor.buffer].data), np.float32).reshape(tensor.shape)

    def store(t: int, array: np.ndarray) -> None:
        buffer = CIRCLE_SCHEMA.classes.BufferT()
        buffer.data = np.frombuffer(array.astype(np.float32).tobytes(), np.uint8)
        tree.buffers.append(buffer)
        sg.tensors[t].buffer = len(tree.buffers) - 1

    s, t = value(mul.inputs[1]).reshape(-1).astype(np.float64), value(add.inputs[1]).reshape(-1)
    store(tconv.inputs[1], value(tconv.inputs[1]) * s[:, None, None, None])
    store(tconv.inputs[3], value(tconv.inputs[3]) * s + t)
    before = next(o for o in sg.operators if o.outputs[0] == mul.inputs[0])
    before.outputs = [add.outputs[0]]
    sg.operators = [o for o in sg.operators if o is not mul and o is not add]
    return CIRCLE_SCHEMA.pack(tree)


def test_check_passes_a_hand_folded_copy_and_names_the_layer_broken_by_one_percent(exports):
    data, _ = exports["_TConvBn"]
    original = circle(data, "tconv.circle")
    candidate = circle(_hand_folded(data), "tconv_by_hand.circle")
    result = check(*_sides(original, candidate))
    v = result.checked.verification
    assert v.passed, v.reason
    assert [(f.status, f.into) for f in result.fates] == [("folded", "TRANSPOSE_CONV:1")]
    assert [c.layer for c in v.folded_layers] == ["TRANSPOSE_CONV:1"]
    broken = mutated(CIRCLE, candidate, "TRANSPOSE_CONV:1", "kernel", channel=3, factor=1.01)
    v = check(*_sides(original, broken)).checked.verification
    assert v.verdict == "fail"
    assert [c.layer for c in v.folded_layers if not c.passed] == ["TRANSPOSE_CONV:1"]
    assert "'TRANSPOSE_CONV:1'" in v.reason


def test_a_one_percent_break_of_a_folded_recipe_is_caught():
    data, _ = recipe("Net_TConv_BN_004")
    result = fold(CIRCLE, circle(data, "recipe.circle"))
    assert_caught(result, mutated(CIRCLE, result.folded, "TRANSPOSE_CONV:0", "kernel", channel=7, factor=1.01),
                  "TRANSPOSE_CONV:0")


# -- circle's own operators, and the TFLite frontend's twin ---------------------------------------

def _circle_only_ops() -> bytes:
    """CONV_2D -> MUL -> ADD -> INSTANCE_NORM (code -2) -> RMS_NORM (-6)."""
    net = Net(CIRCLE_SCHEMA)
    y = binary(net, "ADD", binary(net, "MUL", pointwise_conv(net), np.array([2.0, -1.0, 0.5])), np.ones(3))
    y = net.op("INSTANCE_NORM", [y, net.const("gamma", np.array([1.0, 2.0, 3.0], np.float32)),
                                 net.const("beta", np.array([0.0, 1.0, -1.0], np.float32))], [1, 4, 4, 3],
               _options(net.classes.InstanceNormOptionsT, epsilon=1e-3))
    y = net.op("RMS_NORM", [y, net.const("rms_gamma", np.full(3, 0.5, np.float32))], [1, 4, 4, 3],
               _options(net.classes.RmsNormOptionsT, epsilon=1e-5))
    return net.build(y)


def test_circle_only_ops_pass_through_unchanged():
    """INSTANCE_NORM and RMS_NORM, which TFLite does not have, are read by name, left as they are (their
    code fields too) and run by tico's reference runtime."""
    model = circle(_circle_only_ops())
    result = assert_folds(CIRCLE, model, 1, rtol=1e-5)
    assert [op for op, _, _ in ops(result.folded)] == ["CONV_2D", "INSTANCE_NORM", "RMS_NORM"]
    codes = [(c.deprecatedBuiltinCode, c.builtinCode) for c in result.folded.tree.operatorCodes
             if CIRCLE_SCHEMA.builtin_code(c) < 0]
    assert sorted(codes) == [(-6, -6), (-2, -2)]
    assert runtimes(result.folded) == {"tico", "onert"}  # the model in tico, its CONV_2D alone in onert


def test_the_report_says_which_runtime_ran_what():
    from fold.engine.pipeline import verify
    from fold.outputs.report import verification_text

    v = verify(fold(CIRCLE, circle(_circle_only_ops(), "norms.circle")), 2).verification
    tico, onert = "tico 0.3.0's reference runtime", "onert 0.1.0 (CPU)"
    assert v.runtimes["layers alone"] == onert
    assert v.runtimes["original"] == v.runtimes["checked"]
    assert v.runtimes["original"].startswith(f"{tico} (onert refused it: ")  # no INSTANCE_NORM kernel
    assert f"ran in       original in {tico}" in verification_text(v)
    assert f"layers alone in {onert}" in verification_text(v)
    assert v.to_dict()["runtimes"] == v.runtimes


def test_a_tflite_model_copied_into_circle_folds_as_the_tflite_file_does():
    """The same model in both formats: the same pairs, the same reasons, the same folded weights."""
    data = conv_net("DEPTHWISE_CONV_2D", act=ACT.RELU6)
    in_tflite, in_circle = fold(TFLITE, TFLITE.model_from_bytes(data)), fold(CIRCLE, circle(to_circle(data)))
    assert [d.to_dict() for d in in_circle.decisions] == [d.to_dict() for d in in_tflite.decisions]
    for a, b in ((TFLITE, in_tflite.folded), (CIRCLE, in_circle.folded)):
        assert a.kernel(b, "DEPTHWISE_CONV_2D:0").kernel.shape == (1, 3, 3, 6)
    np.testing.assert_array_equal(TFLITE.kernel(in_tflite.folded, "DEPTHWISE_CONV_2D:0").kernel,
                                  CIRCLE.kernel(in_circle.folded, "DEPTHWISE_CONV_2D:0").kernel)


def test_conv_dw_fc_fold_and_run_in_onert():
    for kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        model = circle(conv_net(kind, act=ACT.RELU6, flat=CIRCLE_SCHEMA), f"{kind}.circle")
        result = assert_folds(CIRCLE, model, 1, rtol=1e-5)
        assert [op for op, _, _ in ops(result.folded)] == [kind]
        assert runtimes(model) == runtimes(result.folded) == {"onert"}


def test_linear_activation_fused_on_the_conv_NEG():
    assert_skipped(CIRCLE, circle(conv_net("CONV_2D", conv_act=ACT.RELU, flat=CIRCLE_SCHEMA)), "linear-activation",
                   "RELU")


def test_linear_mul_fused_activation_on_the_mul_NEG():
    tree = CIRCLE_SCHEMA.parse(conv_net("DEPTHWISE_CONV_2D", flat=CIRCLE_SCHEMA))
    tree.subgraphs[0].operators[1].builtinOptions.fusedActivationFunction = ACT.RELU6
    assert_skipped(CIRCLE, circle(CIRCLE_SCHEMA.pack(tree)), "linear-mul", "RELU6")


def test_constant_weights_filter_fed_as_a_model_input_NEG():
    net = Net(CIRCLE_SCHEMA)
    x, filt = net.input("input", [1, 4, 4, 2]), net.input("filter", [3, 1, 1, 2])
    y = net.op("CONV_2D", [x, filt, net.const("b", np.zeros(3, np.float32))], [1, 4, 4, 3],
               _options(net.classes.Conv2DOptionsT, padding=net.classes.Padding.VALID, strideH=1, strideW=1,
                        dilationHFactor=1, dilationWFactor=1))
    y = binary(net, "ADD", binary(net, "MUL", y, np.full(3, 2.0)), np.ones(3))
    assert_skipped(CIRCLE, circle(net.build(y)), "constant-weights", "filter", check_outputs=False)


def test_single_use_chain_the_bias_add_is_also_a_model_output_NEG():
    net = Net(CIRCLE_SCHEMA)
    bias = binary(net, "ADD", pointwise_conv(net), np.array([1.0, 2.0, 3.0]))
    bn = binary(net, "ADD", binary(net, "MUL", bias, np.array([2.0, 3.0, 4.0])), np.array([0.5, -0.5, 1.0]))
    assert_skipped(CIRCLE, circle(net.build(bn, bias)), "single-use-chain", "model output")


def test_single_consumer_conv_output_is_also_a_model_output_NEG():
    tree = CIRCLE_SCHEMA.parse(conv_net("FULLY_CONNECTED", flat=CIRCLE_SCHEMA))
    sg = tree.subgraphs[0]
    sg.outputs = [sg.operators[0].outputs[0], *sg.outputs]
    assert_skipped(CIRCLE, circle(CIRCLE_SCHEMA.pack(tree)), "single-consumer", "1 other consumer")


def test_float32_quantized_filter_NEG():
    data, _ = tconv_bn(TConvCase(cin=2, cout=2), flat=CIRCLE_SCHEMA)
    tree = CIRCLE_SCHEMA.parse(data)
    sg = tree.subgraphs[0]
    filt = sg.tensors[sg.operators[0].inputs[1]]
    filt.type = CIRCLE_SCHEMA.classes.TensorType.INT8
    filt.quantization = _options(CIRCLE_SCHEMA.classes.QuantizationParametersT, scale=[0.1, 0.2], zeroPoint=[0, 0])
    filt.buffer = len(tree.buffers)
    buffer = CIRCLE_SCHEMA.classes.BufferT()
    buffer.data = np.ones(int(np.prod(filt.shape)), np.uint8)
    tree.buffers.append(buffer)
    assert_skipped(CIRCLE, circle(CIRCLE_SCHEMA.pack(tree)), "float32", "INT8 quantized", check_outputs=False)


def test_supported_kind_batch_norm_on_the_model_input_NEG():
    net = Net(CIRCLE_SCHEMA)
    y = binary(net, "ADD", binary(net, "MUL", net.input("input", [1, 4, 4, 2]), np.full(2, 2.0)), np.ones(2))
    assert_skipped(CIRCLE, circle(net.build(y)), "supported-kind", "model input")


def test_finite_parameters_nan_in_the_mul_operand_NEG():
    data = pointwise_bn(scale=np.array([1.0, np.nan, 1.0]), flat=CIRCLE_SCHEMA)
    assert_skipped(CIRCLE, circle(data), "finite-parameters", "non-finite gamma")


def test_finite_weights_inf_in_the_filter_NEG():
    assert_skipped(CIRCLE, circle(pointwise_bn(filter_value=np.inf, flat=CIRCLE_SCHEMA)), "finite-weights",
                   "non-finite kernel")


def test_fits_dtype_float32_overflow_NEG():
    data = pointwise_bn(filter_value=1e20, scale=np.array([1.0, 1e20, 1.0]), flat=CIRCLE_SCHEMA)
    assert_skipped(CIRCLE, circle(data), "fits-dtype", "float32")


# -- the other directions, through the flatbuffer layer TFLite shares ------------------------------

@pytest.mark.parametrize("name, direction, layer", [
    ("bn_conv", "forward", "CONV_2D:2"), ("bn_relu_conv", "partial", "CONV_2D:2"), ("concat_bn", "concat", "CONV_2D:1")])
def test_converter_exports_copied_into_circle_fold_in_every_direction_and_verify(name, direction, layer):
    """The TFLite tests' Keras models, converted and copied into circle (as ONE's tflite2circle does), fold as
    the TFLite files do, run in onert and against the Keras model's float64 twin; a kernel 1 % off is named.
    (BN -> Flatten -> Dense is left out: the converter's dynamic Flatten, SHAPE -> STRIDED_SLICE -> PACK,
    has no PACK kernel in tico's reference runtime, and onert refuses the file.)"""
    tflite, reference = _converted(_keras(name), name)
    model = circle(to_circle(tflite.data), f"{name}.circle")
    result = assert_folds(CIRCLE, model, 1, reference=reference, rtol=2e-5)
    assert layer in _the(result, direction).layers and result.bn_after == 0
    assert_caught(result, mutated(CIRCLE, result.folded, layer, "kernel", 1, 1.01), layer)


def _tconvs_concat_bn_relu() -> bytes:
    """Two TRANSPOSE_CONVs -> CONCATENATION -> MUL -> ADD (fused RELU)."""
    net = Net(CIRCLE_SCHEMA)
    x = net.input("input", [1, 3, 3, 2])
    opts = _options(net.classes.TransposeConvOptionsT, padding=net.classes.Padding.VALID, strideH=1, strideW=1)
    parts = [net.op("TRANSPOSE_CONV", [net.const(f"shape{k}", np.array([1, 5, 5, c], np.int32)),
                                       net.const(f"filter{k}", np.full((c, 3, 3, 2), 0.1 * (k + 1), np.float32)), x],
                    [1, 5, 5, c], opts) for k, c in enumerate((2, 3))]
    y = net.op("CONCATENATION", parts, [1, 5, 5, 5], _options(net.classes.ConcatenationOptionsT, axis=3))
    return net.build(binary(net, "ADD", binary(net, "MUL", y, np.linspace(0.5, 2.0, 5)), np.ones(5), ACT.RELU))


def test_concat_inputs_a_tconv_keeps_its_activation_apart_in_circle_NEG():
    """circle keeps a folded TRANSPOSE_CONV's activation as an op of its own (ONE's FuseBatchNormWithTConv), and
    a split over the CONCATENATION would have to fuse the ADD's RELU into each piece: refused, and said."""
    d = assert_skipped(CIRCLE, circle(_tconvs_concat_bn_relu()), "concat-inputs",
                       "cannot apply the fused RELU of 'ADD:4' (the format keeps a TRANSPOSE_CONV's activation as an "
                       "op of its own)")
    assert "Backward: 'CONCATENATION:2' is a CONCATENATION" in d.reason


def test_forward_padding_converter_bn_before_a_same_padded_conv_in_circle_NEG():
    x = keras.Input((8, 9, 3))
    tflite, _ = _converted(keras.Model(x, keras.layers.Conv2D(5, 3, padding="same")(keras.layers.BatchNormalization()(x))),
                           "same")
    assert_skipped(CIRCLE, circle(to_circle(tflite.data)), "forward-padding", "padding SAME")


def test_forward_positive_scale_a_negative_scale_before_a_relu_NEG():
    net = Net()
    y = net.op("RELU", [_mul_add(net, net.input("input", [1, 6, 6, 3]), 3, scale=[1.0, -1.0, 1.0])], [1, 6, 6, 3])
    y = _conv(net, y, net.const("f", np.full((4, 3, 3, 3), 0.1, np.float32)), 4)
    assert_skipped(CIRCLE, circle(to_circle(net.build(y))), "forward-positive-scale", "channel 1")


def test_forward_single_use_map_output_is_also_a_model_output_NEG():
    assert_skipped(CIRCLE, circle(to_circle(map_output_also_read())), "forward-single-use", "is a model output")


def test_forward_weights_a_dynamic_filter_NEG():
    assert_skipped(CIRCLE, circle(to_circle(dynamic_filter())), "forward-weights", "is not a constant",
                   check_outputs=False)


def test_forward_channels_a_reshape_that_mixes_channels_NEG():
    assert_skipped(CIRCLE, circle(to_circle(reshape_mixing_channels())), "forward-channels", "of the map's channels")


def test_forward_finite_inf_in_the_filter_after_the_map_NEG():
    assert_skipped(CIRCLE, circle(to_circle(inf_filter_after_the_map())), "forward-finite", "non-finite kernel")


def test_forward_fits_dtype_float16_filter_overflow_NEG():
    assert_skipped(CIRCLE, circle(to_circle(float16_filter_overflow())), "forward-fits-dtype", "float16")


# -- the file checks and the runtimes --------------------------------------------------------------

def _codes(edit) -> bytes:
    tree = CIRCLE_SCHEMA.parse(pointwise_bn(flat=CIRCLE_SCHEMA))
    edit(tree.operatorCodes[0])  # CONV_2D
    return CIRCLE_SCHEMA.pack(tree)


@pytest.mark.parametrize("edit,words", [
    (lambda c: setattr(c, "builtinCode", 18), "names two operators: deprecated_builtin_code 3, builtin_code 18 "
     "(ONE's tools read the first, tico the second)"),
    (lambda c: setattr(c, "deprecatedBuiltinCode", PLACEHOLDER), "has deprecated_builtin_code 127 but builtin_code 3"),
    (lambda c: (setattr(c, "deprecatedBuiltinCode", -100), setattr(c, "builtinCode", 0)),
     "names no circle operator (deprecated_builtin_code -100)"),
], ids=["two-codes", "placeholder-below-127", "unknown"])
def test_an_operator_code_readers_would_disagree_on_is_one_sentence(edit, words):
    with pytest.raises(FoldError) as info:
        circle(_codes(edit), "codes.circle")
    assert str(info.value) == f"'codes.circle' is a corrupt circle file: operator code 0 {words}."


def test_a_schema_0_3_code_without_builtin_code_is_read_as_one_reads_it():
    model = circle(_codes(lambda c: setattr(c, "builtinCode", 0)))
    assert [op for op, _, _ in ops(model)] == ["CONV_2D", "MUL", "ADD"]


@pytest.mark.parametrize("data,words", [
    (lambda: pointwise_bn(), "is not a circle flatbuffer (no 'CIR0' identifier)"),
    (lambda: pointwise_bn(flat=CIRCLE_SCHEMA)[:200], "is a corrupt circle file: its tables point past its 200 bytes"),
], ids=["tflite-bytes", "truncated"])
def test_a_malformed_circle_file_is_one_sentence(data, words, tmp_path):
    path = tmp_path / "bad.circle"
    path.write_bytes(data())
    with pytest.raises(FoldError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message and "'bad.circle'" in message and (words in message or "CIR0" in message), message


def test_an_input_declared_past_a_gigabyte_is_refused():
    tree = CIRCLE_SCHEMA.parse(pointwise_bn(flat=CIRCLE_SCHEMA))
    sg = tree.subgraphs[0]
    sg.tensors[sg.inputs[0]].shape = [1, 4, 2**30, 2]  # one flipped bit
    with pytest.raises(FoldError) as info:
        circle(CIRCLE_SCHEMA.pack(tree), "wide.circle")
    assert str(info.value).startswith("'wide.circle' declares input 'input' of shape [1, 4, 1073741824, 2], "
                                      "8,589,934,592 elements, more than foldscope feeds a model")


def _no_options() -> bytes:
    """A CONV_2D without its options: onert 0.1.0 reads them anyway, and crashes."""
    tree = CIRCLE_SCHEMA.parse(pointwise_bn(flat=CIRCLE_SCHEMA))
    tree.subgraphs[0].operators[0].builtinOptions = None
    tree.subgraphs[0].operators[0].builtinOptionsType = 0
    return CIRCLE_SCHEMA.pack(tree)


def test_a_runtime_crash_is_one_sentence_and_the_next_run_starts_a_new_worker():
    crashing = circle(_no_options(), "no_options.circle", runtime="onert")
    x = np.ones((1, 4, 4, 2), np.float32)
    with pytest.raises(FoldError) as info:
        CIRCLE.runner(crashing)([x])
    assert str(info.value) == "onert 0.1.0 (CPU) crashed (signal 11, SIGSEGV) running 'no_options.circle'."
    fine = circle(pointwise_bn(flat=CIRCLE_SCHEMA), "fine.circle", runtime="onert")
    assert CIRCLE.runner(fine)([x])[0].shape == (1, 4, 4, 3)


def test_auto_falls_back_to_tico_where_onert_refuses_and_says_why():
    data, _ = recipe("Net_TConv_BN_000")
    model = circle(data, "recipe.circle")
    CIRCLE.runner(model)([np.ones((1, 2, 2, 1), np.float32)])
    assert runtimes(model) == {"tico"}
    (refusal,) = model.refusals.values()
    assert refusal.startswith("onert 0.1.0 (CPU) cannot run 'recipe.circle': ") and "\n" not in refusal


def test_a_tconv_bias_of_shape_111c_is_given_to_the_runtimes_as_c():
    data, _ = recipe("Net_TConv_BN_004")
    model = circle(data)
    given = CIRCLE_SCHEMA.parse(circle_io.runnable(model.tree, model.data))
    sg = given.subgraphs[0]
    assert list(sg.tensors[sg.operators[0].inputs[3]].shape) == [16]
    assert model.data == data and list(model.main.tensors[model.main.operators[0].inputs[3]].shape) == [1, 1, 1, 16]
    plain = circle(pointwise_bn(flat=CIRCLE_SCHEMA))
    assert circle_io.runnable(plain.tree, plain.data) is plain.data


def test_without_the_circle_extra_a_circle_file_is_one_sentence(monkeypatch, tmp_path):
    from fold.frontends.formats import FRONTENDS

    monkeypatch.setitem(sys.modules, "circle_schema", None)  # as if it were not installed
    for name in [m for m in sys.modules if m.startswith("fold.frontends.circle")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(FoldError) as info:
        FRONTENDS["circle"].frontend()
    assert str(info.value) == ("Reading circle (Samsung ONE) files needs foldscope's circle extra "
                               "(circle_schema is not installed): pip install 'foldscope[circle]'.")


# -- the command line ----------------------------------------------------------------------------

def test_the_command_line_folds_and_checks_circle_files(tmp_path, exports):
    """``python -m fold`` on a tico export (--runtime tico), then ``python -m fold check`` of the original
    against a hand-folded copy broken by 1 % in one channel: exit 1 (a mismatch), the broken layer named,
    though the outputs alone differ by no more than float error (the ReLU hides it)."""
    import json

    from tests.helpers import run_cli

    data, _ = exports["_TConvBn"]
    original, report = tmp_path / "tconv.circle", tmp_path / "report.json"
    original.write_bytes(data)
    proc = run_cli(original, "-o", tmp_path / "folded.circle", "--runtime", "tico", "--report", report)
    assert proc.returncode == 0, proc.stderr
    assert "ran in       tico 0.3.0's reference runtime\n" in proc.stdout
    assert json.loads(report.read_text())["verification"]["runtimes"]["checked"] == "tico 0.3.0's reference runtime"
    broken = tmp_path / "broken.circle"
    CIRCLE.write(mutated(CIRCLE, circle(_hand_folded(data)), "TRANSPOSE_CONV:1", "kernel", 1, 1.01), broken)
    proc = run_cli("check", original, broken)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "'TRANSPOSE_CONV:1' does not compute what 'ADD:5' computed: channel 1" in proc.stdout
    proc = run_cli(tmp_path / "folded.circle", "--runtime", "quick")
    assert proc.returncode == 2 and "invalid choice: 'quick'" in proc.stderr
