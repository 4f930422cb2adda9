"""TFLite frontend: ONE-style conv -> MUL -> ADD fixtures built with the schema object API.

Every positive case goes through ``tests.helpers.assert_folds`` (via ``folds``): the ops
left, no decomposed BN left, LiteRT outputs of the folded model equal the unfolded one to
1e-5 and, where given, an independent float64 NumPy reference. Negative cases are named
``*_NEG`` and go through ``assert_skipped``.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ai_edge_litert import schema_py_generated as schema  # noqa: E402

from fold.core.errors import FoldError  # noqa: E402
from fold.core.graph import count_bns  # noqa: E402
from fold.core.result import FoldResult  # noqa: E402
from fold.core.verification import sample_inputs  # noqa: E402
from fold.engine.pipeline import fold, load, run  # noqa: E402
from fold.frontends.tflite import TfliteFrontend  # noqa: E402
from fold.frontends.tflite.io import model_from_bytes  # noqa: E402
from fold.frontends.tflite.model import TFLITE_SCHEMA, TfliteModel  # noqa: E402
from tests.helpers import KERAS, TFLITE, assert_folds, assert_skipped  # noqa: E402
from tests.tflite_support import (ACT, TCONV_CASES, Net, TConvCase, _options, binary, conv_net,  # noqa: E402
                                  pointwise_bn, pointwise_conv, tconv_bn, tconv_reference)

def ops_of(model: TfliteModel | bytes) -> list[str]:
    model = model if isinstance(model, TfliteModel) else model_from_bytes(model)
    return [d["op"] for _, d in TFLITE.graph(model).nodes(data=True) if d["role"] != "input"]


def folds(data: bytes, reference=None, *, expect_ops: list[str], split_activation: bool = False,
          samples: int = 3) -> FoldResult:
    """``assert_folds`` on a one-chain model; ``reference`` maps the float64 input to the float64 output."""
    frontend = TfliteFrontend(split_activation) if split_activation else TFLITE
    model = model_from_bytes(data)
    given = None
    if reference is not None:
        inputs = sample_inputs(frontend.inputs(model), samples, 0)
        given = (inputs, [reference(inputs[0].astype(np.float64))])
    result = assert_folds(frontend, model, 1, reference=given, samples=samples, rtol=1e-5,
                          bns_removed=count_bns(frontend.graph(model)))
    assert result.bn_after == 0
    assert ops_of(result.folded) == expect_ops
    return result


@pytest.mark.parametrize("case", TCONV_CASES.values(), ids=TCONV_CASES.keys())
def test_tconv_bn_folds_to_one_tconv(case):
    data, params = tconv_bn(case)
    result = folds(data, lambda x: tconv_reference(x, case, params), expect_ops=["TRANSPOSE_CONV"])
    assert result.bn_before == 1
    options = result.folded.main.operators[0].builtinOptions
    assert options.fusedActivationFunction == getattr(ACT, case.act)
    note = result.decisions[0].to_dict()["activation"]
    assert note == (None if case.act == "NONE" else f"{case.act} fused into 'TRANSPOSE_CONV:0'")


@pytest.mark.parametrize("act", ["RELU", "RELU6"])
def test_tconv_bn_activation_split_out_like_one(act):
    case = TConvCase(cin=3, cout=2, bias=True, act=act, stride=2, padding="SAME")
    data, params = tconv_bn(case)
    result = folds(data, lambda x: tconv_reference(x, case, params), expect_ops=["TRANSPOSE_CONV", act],
                   split_activation=True)
    note = result.decisions[0].to_dict()["activation"]
    assert note == f"{act} kept as a separate {act} op after 'TRANSPOSE_CONV:0'"
    assert result.folded.ids == ["TRANSPOSE_CONV:0", f"{act}:0/activation"]


def test_folded_model_keeps_output_tensor_and_input_model():
    data, _ = tconv_bn(TCONV_CASES["two_out_bias_111C_relu6"])
    model = model_from_bytes(data)
    snapshot = TFLITE_SCHEMA.pack(model.tree)
    folded = fold(TFLITE, model).folded.tree
    assert TFLITE_SCHEMA.pack(model.tree) == snapshot and model.data == data  # the input object is never modified
    sg, before = folded.subgraphs[0], model.main
    assert sg.tensors[sg.outputs[0]].name == before.tensors[before.outputs[0]].name
    # Unused tensors are pruned: old filter, bias, operands and the conv and MUL outputs.
    assert [t.name for t in sg.tensors] == [b"input", b"output_shape", b"add", b"filter/folded", b"add/bias"]
    assert sum(b.data is not None and len(b.data) > 0 for b in folded.buffers) == 3


def test_op_graph_schema():
    data, _ = tconv_bn(TConvCase(cin=3, cout=2, bias=True))
    graph = TFLITE.graph(model_from_bytes(data, "net.tflite"))
    assert graph.graph == {"name": "net", "frontend": "tflite", "inputs": ["input"], "outputs": ["ADD:2"]}
    assert list(graph.nodes) == ["input", "TRANSPOSE_CONV:0", "MUL:1", "ADD:2"]
    roles = {n: d["role"] for n, d in graph.nodes(data=True)}
    assert roles == {"input": "input", "TRANSPOSE_CONV:0": "linear", "MUL:1": "bn", "ADD:2": "bn"}
    assert graph.nodes["MUL:1"]["bn_group"] == graph.nodes["ADD:2"]["bn_group"] == "ADD:2"  # one BN
    assert count_bns(graph) == 1
    tconv = graph.nodes["TRANSPOSE_CONV:0"]
    assert tconv["weights"] == {"output_shape": (4,), "filter": (2, 3, 3, 3), "bias": (2,)}
    assert tconv["config"]["padding"] == "VALID" and tconv["config"]["activation"] == "NONE"
    assert graph.edges["input", "TRANSPOSE_CONV:0"]["shape"] == (1, 4, 3, 3)
    assert graph.edges["TRANSPOSE_CONV:0", "MUL:1"]["shape"] == (1, 6, 5, 2)


# LiteRT's float CONV_2D refuses a missing bias and DEPTHWISE_CONV_2D crashes on one, so
# only FULLY_CONNECTED (and TRANSPOSE_CONV above) are run without a bias.
@pytest.mark.parametrize("kind,bias", [("CONV_2D", True), ("DEPTHWISE_CONV_2D", True),
                                       ("FULLY_CONNECTED", True), ("FULLY_CONNECTED", False)])
def test_conv_dw_fc_fold(kind, bias):
    folds(conv_net(kind, bias=bias, act=ACT.RELU6), expect_ops=[kind])


def test_fully_connected_matches_numpy_reference():
    rng = np.random.default_rng(3)
    w, b, s, t = rng.normal(size=(4, 6)), rng.normal(size=4), rng.normal(size=4), rng.normal(size=4)
    net = Net()
    y = net.op("FULLY_CONNECTED", [net.input("input", [2, 6]), net.const("w", w.astype(np.float32)),
                                   net.const("b", b.astype(np.float32))], [2, 4],
               _options(schema.FullyConnectedOptionsT))
    y = binary(net, "ADD", binary(net, "MUL", y, s), t, ACT.RELU)
    f32 = [a.astype(np.float32).astype(np.float64) for a in (w, b, s, t)]
    folds(net.build(y), lambda x: np.maximum((x @ f32[0].T + f32[1]) * f32[2] + f32[3], 0),
          expect_ops=["FULLY_CONNECTED"])


@pytest.mark.parametrize("mul,add", [(True, False), (False, True)], ids=["mul_only", "add_only"])
def test_lone_mul_or_add_folds(mul, add):
    result = folds(conv_net("CONV_2D", mul=mul, add=add, act=ACT.RELU), expect_ops=["CONV_2D"])
    assert result.bn_before == 0  # a lone MUL or ADD is folded, but it is not a BatchNorm


def test_scalar_like_operand_of_one_element_broadcasts():
    net = Net()
    y = pointwise_conv(net)
    y = binary(net, "ADD", binary(net, "MUL", y, np.array([2.0])), np.array([1.0, 2.0, 3.0]))
    folds(net.build(y), expect_ops=["CONV_2D"])


def test_shared_filter_gets_its_own_folded_copy():
    net = Net()
    x = net.input("input", [1, 4, 4, 2])
    bias = net.const("shared_bias", np.zeros(3, np.float32))
    filt = net.const("shared_filter", np.random.default_rng(0).normal(size=(3, 1, 1, 2)).astype(np.float32))
    opts = _options(schema.Conv2DOptionsT, padding=schema.Padding.VALID, strideH=1, strideW=1,
                    dilationHFactor=1, dilationWFactor=1)
    a = binary(net, "ADD", binary(net, "MUL", net.op("CONV_2D", [x, filt, bias], [1, 4, 4, 3], opts), np.full(3, 2.0)),
               np.ones(3))
    b = binary(net, "ADD", binary(net, "MUL", net.op("CONV_2D", [x, filt, bias], [1, 4, 4, 3], opts), np.full(3, -3.0)),
               np.zeros(3))
    result = assert_folds(TFLITE, model_from_bytes(net.build(a, b)), 2, rtol=1e-5)
    assert result.bn_before == 2
    assert ops_of(result.folded) == ["CONV_2D", "CONV_2D"]


def test_linear_activation_fused_on_the_conv_NEG():
    assert_skipped(TFLITE, model_from_bytes(conv_net("CONV_2D", conv_act=ACT.RELU)), "linear-activation", "RELU")


def test_linear_mul_fused_activation_on_the_mul_NEG():
    model = TFLITE_SCHEMA.parse(conv_net("DEPTHWISE_CONV_2D"))
    model.subgraphs[0].operators[1].builtinOptions.fusedActivationFunction = ACT.RELU6
    assert_skipped(TFLITE, model_from_bytes(TFLITE_SCHEMA.pack(model)), "linear-mul", "RELU6")


def _not_a_candidate(data: bytes) -> None:
    """No pair is listed, no BatchNorm counted, and the model is written back as it was."""
    result = fold(TFLITE, model_from_bytes(data))
    assert result.decisions == [] and result.bn_before == result.affine_before == 0
    assert result.folded.data == data


def test_a_mul_by_a_model_input_is_no_batchnorm():
    net = Net()
    x, gate = net.input("input", [1, 4, 4, 2]), net.input("gate", [1, 2])
    y = net.op("CONV_2D", [x, net.const("f", np.ones((2, 1, 1, 2), np.float32)),
                            net.const("b", np.zeros(2, np.float32))], [1, 4, 4, 2],
               _options(schema.Conv2DOptionsT, padding=schema.Padding.VALID, strideH=1, strideW=1,
                        dilationHFactor=1, dilationWFactor=1))
    _not_a_candidate(net.build(net.op("MUL", [y, gate], [1, 4, 4, 2], _options(schema.MulOptionsT))))


def test_an_add_of_two_activations_is_no_batchnorm():
    """A residual ADD after a conv (BlazeFace has sixteen) is not listed as a skipped BN."""
    net = Net()
    conv = pointwise_conv(net)
    _not_a_candidate(net.build(net.op("ADD", [conv, conv], [1, 4, 4, 3], _options(schema.AddOptionsT))))


def test_constant_weights_filter_fed_as_a_model_input_NEG():
    net = Net()
    x, filt = net.input("input", [1, 4, 4, 2]), net.input("filter", [3, 1, 1, 2])
    y = net.op("CONV_2D", [x, filt, net.const("b", np.zeros(3, np.float32))], [1, 4, 4, 3],
               _options(schema.Conv2DOptionsT, padding=schema.Padding.VALID, strideH=1, strideW=1,
                        dilationHFactor=1, dilationWFactor=1))
    y = binary(net, "ADD", binary(net, "MUL", y, np.full(3, 2.0)), np.ones(3))
    assert_skipped(TFLITE, model_from_bytes(net.build(y)), "constant-weights", "filter", check_outputs=False)


def test_single_use_chain_the_bias_add_is_also_a_model_output_NEG():
    """CONV_2D -> ADD(bias) -> MUL -> ADD: the BN could fold through the bias add, but the add's output
    is read as a model output too."""
    net = Net()
    bias = binary(net, "ADD", pointwise_conv(net), np.array([1.0, 2.0, 3.0]))
    bn = binary(net, "ADD", binary(net, "MUL", bias, np.array([2.0, 3.0, 4.0])), np.array([0.5, -0.5, 1.0]))
    data = net.build(bn, bias)
    assert_skipped(TFLITE, model_from_bytes(data), "single-use-chain", "model output")


def test_single_consumer_conv_output_is_also_a_model_output_NEG():
    model = TFLITE_SCHEMA.parse(conv_net("FULLY_CONNECTED"))
    sg = model.subgraphs[0]
    sg.outputs = [sg.operators[0].outputs[0], *sg.outputs]  # the conv output is also a model output
    assert_skipped(TFLITE, model_from_bytes(TFLITE_SCHEMA.pack(model)), "single-consumer", "1 other consumer")


def test_float32_quantized_filter_NEG():
    data, _ = tconv_bn(TConvCase(cin=2, cout=2))
    tree = TFLITE_SCHEMA.parse(data)
    sg = tree.subgraphs[0]
    filt = sg.tensors[sg.operators[0].inputs[1]]
    filt.type = schema.TensorType.INT8
    filt.quantization = _options(schema.QuantizationParametersT, scale=[0.1, 0.2], zeroPoint=[0, 0])
    # LiteRT refuses this hand-made hybrid model, so it is read without the interpreter check.
    hybrid = TFLITE_SCHEMA.pack(tree)
    model = TfliteModel.from_tree(hybrid, TFLITE_SCHEMA.parse(hybrid), "hybrid.tflite")
    assert_skipped(TFLITE, model, "float32", "INT8 quantized", check_outputs=False)


def test_a_mul_by_a_whole_map_is_no_batchnorm():
    net = Net()
    _not_a_candidate(net.build(binary(net, "MUL", pointwise_conv(net), np.ones((1, 4, 4, 3)))))


def test_concat_inputs_batch_norm_after_a_concatenation_of_the_model_input_NEG():
    net = Net()
    x = net.input("input", [1, 4, 4, 2])
    y = net.op("CONCATENATION", [x, x], [1, 4, 4, 4], _options(schema.ConcatenationOptionsT, axis=3))
    y = binary(net, "ADD", binary(net, "MUL", y, np.full(4, 2.0)), np.ones(4))
    decision = assert_skipped(TFLITE, model_from_bytes(net.build(y)), "concat-inputs", "comes from a model input")
    assert decision.layer == "CONCATENATION:0" and decision.bn == "MUL:1+ADD:2"
    assert "is a CONCATENATION, not a layer kind" in decision.reason and "is a model output" in decision.reason


def test_supported_kind_batch_norm_on_the_model_input_NEG():
    net = Net()
    y = binary(net, "ADD", binary(net, "MUL", net.input("input", [1, 4, 4, 2]), np.full(2, 2.0)), np.ones(2))
    assert_skipped(TFLITE, model_from_bytes(net.build(y)), "supported-kind", "model input")


def test_finite_parameters_nan_in_the_mul_operand_NEG():
    data = pointwise_bn(scale=np.array([1.0, np.nan, 1.0]))
    assert_skipped(TFLITE, model_from_bytes(data), "finite-parameters", "non-finite gamma")


def test_finite_weights_inf_in_the_filter_NEG():
    assert_skipped(TFLITE, model_from_bytes(pointwise_bn(filter_value=np.inf)), "finite-weights", "non-finite kernel")


def test_fits_dtype_float32_overflow_NEG():
    data = pointwise_bn(filter_value=1e20, scale=np.array([1.0, 1e20, 1.0]))  # 1e40 > float32's 3.4e38
    assert_skipped(TFLITE, model_from_bytes(data), "fits-dtype", "float32")


def test_no_candidates_leaves_model_as_is():
    net = Net()
    y = net.op("RELU", [net.input("input", [1, 3])], [1, 3])
    result = fold(TFLITE, model_from_bytes(net.build(y)))
    assert result.decisions == [] and result.bn_before == result.bn_after == 0
    assert ops_of(result.folded) == ["RELU"]


@pytest.mark.parametrize("payload,words", [
    (b"not a flatbuffer at all", "not a TFLite flatbuffer"),
    (b"\x1c\x00\x00\x00TFL3" + b"\xff" * 40, "corrupt TFLite file"),
])
def test_bad_bytes_are_one_sentence_errors(payload, words):
    with pytest.raises(FoldError, match=words):
        model_from_bytes(payload)


def test_truncated_and_missing_files(tmp_path):
    data, _ = tconv_bn(TConvCase(cin=2, cout=2))
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FoldError, match="cut.tflite"):
        load(cut)
    with pytest.raises(FoldError, match="No such file"):
        load(tmp_path / "missing.tflite")
    good = tmp_path / "good.tflite"
    good.write_bytes(data)
    frontend, model = load(good)
    assert frontend is TFLITE and fold(frontend, model).graph_after.graph["name"] == "good"


def _keras_tconv_bn_and_dense_bn():
    """Two outputs of different shapes: TConv(3->5, s2, same) -> BN -> ReLU, and Dense(5->4) -> BN."""
    import keras

    from foldscope_app.examples.model_zoo import randomize_bn

    inp = keras.Input((4, 3, 3), name="image")
    x = keras.layers.Conv2DTranspose(5, 3, strides=2, padding="same", use_bias=False)(inp)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    y = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
    y = keras.layers.BatchNormalization()(y)
    return randomize_bn(keras.Model(inp, [x, y]), seed=2)


def test_folded_keras_model_exports_to_tflite_and_runs():
    from fold.frontends.keras.io import to_tflite

    model = _keras_tconv_bn_and_dense_bn()
    data = to_tflite(fold(KERAS, model).folded)
    inputs = sample_inputs(KERAS.inputs(model), 3, seed=0)
    expected = run(KERAS, model, inputs)
    got = run(TFLITE, model_from_bytes(data), inputs)
    by_shape = {o.shape: o for o in got}
    for ref in expected:
        assert np.max(np.abs(by_shape[ref.shape] - ref)) <= 1e-4 * max(1.0, float(np.max(np.abs(ref))))


def test_converter_view_shows_ops_graph_and_diff():
    from foldscope_app.workbench.converter_view import converter_view

    model = _keras_tconv_bn_and_dense_bn()
    view = converter_view(model, samples=3, seed=0)
    assert view.ops[-1] != "MUL" and "TRANSPOSE_CONV" in view.ops
    assert [n for n, d in view.graph.nodes(data=True) if d["role"] != "input"] == \
        [f"{op}:{i}" for i, op in enumerate(view.ops)]
    assert view.verification.passed and view.max_abs_diff < 1e-4
    assert [o.shape for o in view.verification.per_output] == [(3, 8, 6, 5), (3, 4)]  # Keras' output order
    assert all(d.status in ("folded", "skipped") for d in view.remaining)


def _stft_model(path) -> None:
    """An audio classifier as TensorFlow's converter writes it: a ``tf.signal.stft`` front end (its frame
    count computed at run time from the free batch's shape, in rank-0 MULs, FLOOR_DIVs and ADDs), a BN
    on the log-magnitude spectrogram (left as MUL and ADD: it follows no layer), then Conv2D + BN (which
    the converter folds itself), ReLU, pooling and a Dense head, as BirdNET's analyzer is built."""
    import keras
    import tensorflow as tf

    from tests.helpers import randomize_bn

    @keras.saving.register_keras_serializable("foldscope_tests")
    class Spectrogram(keras.layers.Layer):
        def call(self, x):
            s = tf.signal.stft(x, frame_length=256, frame_step=128, fft_length=256)
            return tf.expand_dims(tf.math.log(tf.abs(s) + 1e-6), -1)

    inp = keras.Input((2048,))
    x = keras.layers.BatchNormalization()(Spectrogram()(inp))
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(6, 3, padding="same")(x)))
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(randomize_bn(keras.Model(inp, out))).convert())


def test_an_stft_front_end_with_rank_0_frame_arithmetic_folds_verifies_and_quantizes(tmp_path, capsys):
    """BirdNET's analyzer exited 2 ("integer modulo by zero") on its rank-0 MULs: a scalar has no channel
    axis, so it is no BN's; the fold, the verification and --int8 all go through."""
    from fold import cli

    path = tmp_path / "stft.tflite"
    _stft_model(path)
    model = load(path)[1]
    view_shapes = [[list(model.main.tensors[t].shape) for t in op.inputs] for op in model.main.operators]
    assert [[], []] in view_shapes, "the converter wrote no rank-0 MUL: the test no longer covers the case"
    status = cli.main([str(path), "-o", str(tmp_path / "stft_folded.tflite"), "--report", str(tmp_path / "r.json"),
                       "--quant-report", str(tmp_path / "q.json"), "--int8"])
    out = capsys.readouterr()
    assert status == 0 and "error" not in out.err, out.err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["verification"]["verdict"] == "pass"
    assert [(p["form"], p["status"]) for p in report["pairs"]] == [("bn", "skipped")]  # the spectrogram's BN
    assert "output SQNR (dB): original" in out.out


def test_a_folded_model_is_freed_with_its_view():
    """The frontend keeps one view of each model while the model lives; the view must not keep the
    model alive itself (every .tflite a long-lived page folded stayed in memory)."""
    import gc
    import weakref

    data, _ = tconv_bn(TCONV_CASES["two_out_bias_111C_relu6"])
    result = fold(TFLITE, model_from_bytes(data))
    models = [weakref.ref(result.original), weakref.ref(result.folded)]
    del result
    gc.collect()
    assert [m() for m in models] == [None, None]
