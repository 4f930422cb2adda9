"""Models as exporters really write them: what they put between a layer and its BN (Identity, the
Squeeze of a Conv1D) and between a weight and its data (Constant, ConstantOfShape, Cast, reshapes,
DequantizeLinear, DEQUANTIZE of float16), folded and checked against onnxsim and onnxruntime in the
same test; the counts say what each file holds; a residual ADD is no BatchNorm."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fold.core.graph import count_bns
from fold.engine.pipeline import fold, fold_file, verify
from fold.frontends.onnx.model import onnx_model
from fold.frontends.onnx.peers import TRANSFORMS
from tests.helpers import GRAPHDEF, ONNX, TFLITE, assert_caught, mutated, randomize_bn, run_cli
from tests.real_models import real_model

TOOLS = {tool.split()[0]: transform for tool, _, transform in TRANSFORMS}


def _bns_left(proto: onnx.ModelProto) -> dict[str, int]:
    """BatchNorms each ONNX peer leaves, counted as foldscope counts (BN nodes and Mul -> Add BNs)."""
    return {name: count_bns(ONNX.graph(onnx_model(transform(proto), f"{name}.onnx"))) for name, transform in TOOLS.items()}


def _layers_checked(result) -> None:
    """The fold verifies, every folded layer judged alone on its original inputs."""
    v = verify(result, 4).verification
    assert v.passed, v.to_dict()
    assert {c.layer for c in v.folded_layers} == {d.layer for d in result.folded_pairs} and not v.output_only, v.reason


# -- ONNX: Identity between a layer and its BN ----------------------------------------------------

def _bn_inits(prefix: str, channels: int, rng) -> list[onnx.TensorProto]:
    values = [rng.uniform(0.5, 1.5, channels), rng.normal(size=channels), rng.normal(size=channels),
              rng.uniform(0.5, 2.0, channels)]
    return [numpy_helper.from_array(v.astype(np.float32), f"{prefix}_{n}")
            for v, n in zip(values, ("gamma", "beta", "mean", "var"))]


def _tconv_identity_bn(extra_reader: bool = False) -> onnx.ModelProto:
    """ConvTranspose (3 -> 4 channels, stride 2) -> Identity -> BatchNormalization, as paddle2onnx writes it."""
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.normal(size=(3, 4, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["t"], "tconv", strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Identity", ["t"], ["t_id"], "Identity.242"),
             helper.make_node("BatchNormalization", ["t_id", "bn_gamma", "bn_beta", "bn_mean", "bn_var"], ["y"], "bn")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 9, 9])]
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["t_id"], ["r"], "relu"))
        outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 4, 9, 9]))
    graph = helper.make_graph(nodes, "tconv_identity", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
                              outputs, [w, *_bn_inits("bn", 4, rng)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_an_identity_between_a_convtranspose_and_its_bn_is_looked_through():
    proto = _tconv_identity_bn()
    result = fold(ONNX, onnx_model(proto, "net.onnx"))
    (d,) = result.decisions
    assert d.folded and d.layer == "tconv" and "Identity 'Identity.242'" in d.notes["looked_through"], d
    assert (result.bn_before, result.bn_after) == (1, 0) and _bns_left(proto)["onnxsim"] == 0
    _layers_checked(result)
    assert_caught(result, mutated(ONNX, result.folded, "tconv", "kernel", 3, 1.02), "tconv")


def test_an_identity_read_elsewhere_keeps_its_bn():
    result = fold(ONNX, onnx_model(_tconv_identity_bn(extra_reader=True), "net.onnx"))
    (d,) = result.decisions
    assert not d.folded and d.rule == "single-use-chain" and "'t_id' -> 'relu'" in d.reason, d


def test_the_real_detector_with_identity_nodes_leaves_no_bn_onnxsim_folds(tmp_path):
    """PaddleOCR v4's detector with an Identity put between each ConvTranspose and its BN, as other
    paddle2onnx versions write it: foldscope folds all three BNs (and the 28 affine blocks), as onnxsim."""
    proto = onnx.load(real_model("ppocr_det"))
    nodes = list(proto.graph.node)
    for tconv in [n for n in nodes if n.op_type == "ConvTranspose"]:
        reader = next(n for n in nodes if tconv.output[0] in n.input)
        moved = f"{tconv.output[0]}.identity"
        reader.input[list(reader.input).index(tconv.output[0])] = moved
        nodes.insert(nodes.index(reader), helper.make_node("Identity", [tconv.output[0]], [moved],
                                                           f"Identity.{tconv.name}"))
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    onnx.save(proto, tmp_path / "det_identity.onnx")
    result = fold_file(tmp_path / "det_identity.onnx")
    n = result.counts()
    assert (n["bn_before"], n["bn_after"], n["affine_before"], n["affine_after"]) == (3, 0, 28, 0), n
    assert sum("Identity" in d.notes.get("looked_through", "") for d in result.folded_pairs) == 2
    assert result.bn_after <= _bns_left(proto)["onnxsim"] == 0
    _layers_checked(result)


# -- ONNX: weights that are not initializers ---------------------------------------------------------

def _conv_bn_with_weight(form: str) -> onnx.ModelProto:
    """x (1, 3, 6, 6) -> Conv (3 -> 4, 3x3, stride 2, no bias) -> BatchNormalization, the Conv's
    weight made by ``form`` from a constant; an unrelated Constant -> Add beside it stays as it is."""
    rng = np.random.default_rng(7)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    nodes, inits = [], []
    if form == "Constant":
        nodes.append(helper.make_node("Constant", [], ["w"], "w_const", value=numpy_helper.from_array(w, "w_value")))
    elif form == "ConstantOfShape":
        inits.append(numpy_helper.from_array(np.array(w.shape, np.int64), "w_shape"))
        nodes.append(helper.make_node("ConstantOfShape", ["w_shape"], ["w"], "w_fill",
                                      value=numpy_helper.from_array(np.array([0.25], np.float32))))
    elif form == "Cast":
        inits.append(numpy_helper.from_array(w.astype(np.float16), "w16"))
        nodes.append(helper.make_node("Cast", ["w16"], ["w"], "w_cast", to=TensorProto.FLOAT))
    elif form == "Reshape":
        inits += [numpy_helper.from_array(w.reshape(-1), "w_flat"), numpy_helper.from_array(np.array(w.shape, np.int64),
                                                                                          "w_shape")]
        nodes.append(helper.make_node("Reshape", ["w_flat", "w_shape"], ["w"], "w_reshape"))
    elif form == "Transpose":
        inits.append(numpy_helper.from_array(np.ascontiguousarray(w.transpose(2, 3, 1, 0)), "w_hwio"))
        nodes.append(helper.make_node("Transpose", ["w_hwio"], ["w"], "w_transpose", perm=[3, 2, 0, 1]))
    elif form == "DequantizeLinear":
        scale = (np.abs(w).reshape(4, -1).max(axis=1) / 127).astype(np.float32)
        q = np.clip(np.round(w / scale[:, None, None, None]), -127, 127).astype(np.int8)
        inits += [numpy_helper.from_array(q, "w_q"), numpy_helper.from_array(scale, "w_scale"),
                  numpy_helper.from_array(np.zeros(4, np.int8), "w_zero")]
        nodes.append(helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], "w_dq", axis=0))
    else:
        raise ValueError(form)
    bn = _bn_inits("bn", 4, rng)
    for t in bn:  # the BN's parameters as Constant nodes too (exports without constant folding)
        nodes.append(helper.make_node("Constant", [], [t.name], f"{t.name}_const", value=t))
    nodes += [helper.make_node("Conv", ["x", "w"], ["c"], "conv", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
              helper.make_node("BatchNormalization", ["c", *(t.name for t in bn)], ["y"], "bn"),
              helper.make_node("Constant", [], ["k"], "k_const",  # a whole tensor, no per-channel map
                               value=numpy_helper.from_array(rng.normal(size=(1, 4, 3, 3)).astype(np.float32), "k")),
              helper.make_node("Add", ["y", "k"], ["z"], "plus_k")]
    graph = helper.make_graph(nodes, f"conv_{form}", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4, 3, 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("form", ["Constant", "ConstantOfShape", "Cast", "Reshape", "Transpose", "DequantizeLinear"])
def test_weights_behind_what_exporters_write_fold_as_far_as_onnxsim_and_onnxruntime(form):
    proto = _conv_bn_with_weight(form)
    onnx.checker.check_model(proto, full_check=True)
    result = fold(ONNX, onnx_model(proto, "net.onnx"))
    (d,) = result.decisions
    assert d.folded, d.reason
    if form != "Constant":
        assert form in d.notes["weights_through"], d.notes
    peers = _bns_left(proto)
    assert result.bn_after == 0 and all(result.bn_after <= left for left in peers.values()), peers
    _layers_checked(result)
    assert_caught(result, mutated(ONNX, result.folded, "conv", "bias", 1, 1.02), "conv")
    # only what the fold needed was constant-folded: the rest of the graph is as it was
    folded = {n.name: n.op_type for n in result.folded.proto.graph.node}
    assert folded.get("k_const") == "Constant" and folded.get("plus_k") == "Add" and "bn" not in folded, folded
    if form == "Cast":  # float16 data stays float16 behind its Cast
        w = result.folded.proto.graph.node[[*folded].index("conv")].input[1]
        cast = next(n for n in result.folded.proto.graph.node if n.output[0] == w)
        assert cast.op_type == "Cast" and next(t for t in result.folded.proto.graph.initializer
                                               if t.name == cast.input[0]).data_type == TensorProto.FLOAT16


# -- TFLite: float16 weights behind DEQUANTIZE, as MediaPipe ships its models ------------------------

def _fp16_tconv_mul_add(mul_scale: float = 1.0, filter_scale: float = 1.0) -> bytes:
    """TRANSPOSE_CONV (3 -> 4 channels, stride 2) -> MUL -> ADD, every constant a float16 buffer read
    through a DEQUANTIZE op (the layout of MediaPipe's float16 models)."""
    from ai_edge_litert import schema_py_generated as schema
    from tests.tflite_support import Net, _options

    rng = np.random.default_rng(11)
    net = Net()

    def fp16(name: str, value: np.ndarray) -> int:
        stored = net.tensor(f"{name}_fp16", value.shape, value.astype(np.float16), schema.TensorType.FLOAT16)
        return net.op("DEQUANTIZE", [stored], list(value.shape), name=name)

    x = net.input("input", [1, 4, 4, 3])
    shape = net.const("output_shape", np.array([1, 8, 8, 4], np.int32))
    filt = fp16("filter", rng.normal(size=(4, 3, 3, 3)) * filter_scale)  # (C_out, kh, kw, C_in)
    y = net.op("TRANSPOSE_CONV", [shape, filt, x], [1, 8, 8, 4],
               _options(schema.TransposeConvOptionsT, padding=schema.Padding.SAME, strideH=2, strideW=2))
    y = net.op("MUL", [y, fp16("scale", rng.uniform(0.5, 1.5, 4) * mul_scale)], [1, 8, 8, 4], _options(schema.MulOptionsT))
    y = net.op("ADD", [y, fp16("shift", rng.normal(size=4))], [1, 8, 8, 4], _options(schema.AddOptionsT))
    return net.build(y)


def test_an_fp16_tflite_folds_and_writes_float16_back_behind_the_same_dequantize():
    from ai_edge_litert import schema_py_generated as schema
    from fold.frontends.tflite.io import model_from_bytes
    from fold.frontends.tflite.model import TFLITE_SCHEMA

    result = fold(TFLITE, model_from_bytes(_fp16_tconv_mul_add(), "fp16.tflite"))
    (d,) = result.decisions
    assert d.folded and d.layer == "TRANSPOSE_CONV:1" and "DEQUANTIZE" in d.notes["weights_through"], d
    assert (result.bn_before, result.bn_after) == (1, 0)
    model = TFLITE_SCHEMA.parse(result.folded.data)
    sg = model.subgraphs[0]
    kinds = [model.operatorCodes[op.opcodeIndex].builtinCode for op in sg.operators]
    assert kinds.count(schema.BuiltinOperator.DEQUANTIZE) == 1  # the filter's; the new bias is float32
    assert schema.BuiltinOperator.MUL not in kinds and schema.BuiltinOperator.ADD not in kinds
    tconv = next(op for op, k in zip(sg.operators, kinds) if k == schema.BuiltinOperator.TRANSPOSE_CONV)
    dequantize = next(op for op in sg.operators if op.outputs[0] == tconv.inputs[1])
    assert sg.tensors[dequantize.inputs[0]].type == schema.TensorType.FLOAT16
    _layers_checked(result)
    assert_caught(result, mutated(TFLITE, result.folded, d.layer, "kernel", 2, 1.02), d.layer)


def test_an_fp16_fold_that_would_overflow_float16_is_skipped():
    from fold.frontends.tflite.io import model_from_bytes

    result = fold(TFLITE, model_from_bytes(_fp16_tconv_mul_add(mul_scale=4e4, filter_scale=10.0), "fp16.tflite"))
    (d,) = result.decisions
    assert not d.folded and d.rule == "fits-dtype" and "float16" in d.reason, d


def test_the_quant_report_and_per_layer_figures_on_fp16_files(tmp_path):
    """A hand-built float16 model, the TFLite converter's float16 export of a Keras model (whose BNs
    the converter folded itself) and MediaPipe's BlazeFace: each runs ``--quant-report`` and
    ``--per-layer``, and a residual ADD is listed as no BatchNorm."""
    import keras
    import tensorflow as tf
    from keras import layers as L

    (tmp_path / "hand.tflite").write_bytes(_fp16_tconv_mul_add())
    inp = keras.Input((8, 8, 3), batch_size=1)
    x = L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(inp))
    x = L.Add()([x, L.Conv2D(4, 1)(x)])  # a residual ADD of two activations
    converter = tf.lite.TFLiteConverter.from_keras_model(randomize_bn(keras.Model(inp, x)))
    converter.optimizations, converter.target_spec.supported_types = [tf.lite.Optimize.DEFAULT], [tf.float16]
    (tmp_path / "converted.tflite").write_bytes(converter.convert())
    for name, path, folded in (("hand", tmp_path / "hand.tflite", 1), ("converted", tmp_path / "converted.tflite", 0),
                               ("blazeface", real_model("blazeface"), 0)):
        report, quant = tmp_path / f"{name}.json", tmp_path / f"{name}_q.json"
        proc = run_cli(path, "-o", tmp_path / f"{name}_folded.tflite", "--per-layer", "--quant-report", quant,
                    "--report", report)
        assert proc.returncode == 0, (name, proc.stdout[-2000:], proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr and "per layer" in proc.stdout, name
        pairs = json.loads(report.read_text())["pairs"]
        assert len(pairs) == folded and all(p["status"] == "folded" for p in pairs), (name, pairs)
        figures = json.loads(quant.read_text())
        assert len(figures["layers"]) == folded and figures["output_sqnr_db"], (name, figures)


# -- one Keras model, as tf2onnx, TensorFlow and the TFLite converter export it -------------------------

@pytest.fixture(scope="module")
def conv1d_net():
    """Conv1D -> BN -> Conv1DTranspose -> BN: every exporter writes each 1-D layer as ExpandDims ->
    2-D op -> Squeeze, so the BN reads a Squeeze (the audio CNNs' last BN)."""
    import keras
    from keras import layers as L

    inp = keras.Input((16, 3), batch_size=1, name="x")
    x = L.BatchNormalization(name="bn1")(L.Conv1D(5, 3, strides=2, padding="same", name="c1")(inp))
    x = L.BatchNormalization(name="bn2")(L.Conv1DTranspose(4, 3, strides=2, padding="same", name="tc")(x))
    return randomize_bn(keras.Model(inp, x))


def _pairs(result) -> list[tuple[str, str, str]]:
    return [(d.layer, d.bn, d.status) for d in result.decisions]


def test_tf2onnx_export_folds_through_the_squeeze_and_further_than_the_peers(conv1d_net):
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((1, 16, 3), tf.float32, name="x"),)
    proto, _ = tf2onnx.convert.from_function(tf.function(lambda x: conv1d_net(x, training=False)),
                                             input_signature=spec, opset=17)
    result = fold(ONNX, onnx_model(proto, "tf2onnx.onnx"))
    assert [d.op for d in result.folded_pairs] == ["Conv", "ConvTranspose"], _pairs(result)
    assert all("Squeeze" in d.notes["looked_through"] for d in result.folded_pairs)
    assert (result.bn_before, result.bn_after) == (2, 0)
    # none looks through a Squeeze
    assert _bns_left(proto) == {"onnxsim": 2, "onnxslim": 2, "onnxoptimizer": 2, "onnxruntime": 2}
    _layers_checked(result)
    tconv = result.folded_pairs[1].layer
    assert_caught(result, mutated(ONNX, result.folded, tconv, "kernel", 1, 1.02), tconv)

    # the same model as a frozen GraphDef lists the same pairs under the same TensorFlow names
    from fold.frontends.graphdef.io import graph_def_from_keras, graph_model

    pb = fold(GRAPHDEF, graph_model(graph_def_from_keras(conv1d_net), "net"))
    assert _pairs(pb) == _pairs(result), (_pairs(pb), _pairs(result))
    _layers_checked(pb)
    conv = pb.folded_pairs[0].layer
    assert_caught(pb, mutated(GRAPHDEF, pb.folded, conv, "bias", 2, 1.02), conv)


def test_the_tflite_converter_folds_these_bns_itself(conv1d_net):
    """Why the .tflite lists no pair: TensorFlow's converter already folded both BNs (through the
    Squeeze, and into the TRANSPOSE_CONV), which ``check`` confirms against the Keras model."""
    import tensorflow as tf

    from fold.engine.comparison import Side
    from fold.frontends.tflite.io import model_from_bytes
    from fold.tools.check import check
    from tests.helpers import KERAS

    converted = model_from_bytes(tf.lite.TFLiteConverter.from_keras_model(conv1d_net).convert(), "net.tflite")
    result = fold(TFLITE, converted)
    assert result.decisions == [] and result.bn_before == 0
    checked = check(Side(KERAS, conv1d_net, KERAS.graph(conv1d_net)), Side(TFLITE, converted, TFLITE.graph(converted)))
    assert checked.checked.verification.passed and [f.status for f in checked.fates] == ["folded", "folded"]
