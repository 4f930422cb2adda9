"""Real int8 (``--int8``): onnxruntime's own quantizer and runtime (ONNX), TensorFlow's converter and
LiteRT (Keras), on the original and the fold's variants, compared layer by layer through the fold
mapping; the SQNRs by hand, against onnxruntime's own ``qdq_loss_debug``, and on a broken fold
they must see."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import numpy as np
import onnx
import pytest

from fold.engine.pipeline import fold, verify
from fold.frontends.onnx import int8 as rt
from fold.frontends.onnx.io import prepare
from fold.tools.int8_report import VARIANTS, channel_sqnr_db, int8_report, sqnr_db
from fold.tools.quantization import quant_report
from foldscope_app.examples import model_zoo
from tests.helpers import KERAS, ONNX, TFLITE, mutated, run_cli
from tests.test_quant import tiny_variance_keras, tiny_variance_onnx

HEAD = "ONNX: text detector head (paddle2onnx's ConvTranspose -> Add -> BN)"


def _half_wrong(frontend, result, layer: str):
    """``result`` with ``layer``'s folded kernel 20 % off in half its output channels."""
    model = result.folded
    for channel in range(frontend.kernel(model, layer).channels // 2):
        model = mutated(frontend, model, layer, "kernel", channel, 1.2)
    return dataclasses.replace(result, folded=model)


def _report(result, **kwargs):
    checked = verify(result)
    v = checked.verification
    return int8_report(result, checked.inputs, samples=v.samples, seed=v.seed, source=v.inputs_source, **kwargs)


def test_sqnr_by_hand():
    assert sqnr_db(np.array([1.0, 2.0]), np.array([1.0, 2.1])) == pytest.approx(10 * math.log10(5 / 0.01))
    assert sqnr_db(np.zeros(3), np.ones(3)) is None and sqnr_db(np.ones(3), np.ones(3)) is None
    # two channels on axis 1: 40 dB and 20 dB average to 30, where pooling would let the wide one win
    r = np.array([[[10.0], [1.0]]])
    q = np.array([[[10.1], [1.1]]])
    assert channel_sqnr_db(r, q) == pytest.approx(30.0)
    assert sqnr_db(r, q) == pytest.approx(10 * math.log10(101 / 0.02))


@pytest.fixture(scope="module")
def head():
    result = fold(ONNX, model_zoo.ZOO[HEAD].build())
    return result, _report(result, equalized=quant_report(result).equalized)


def test_every_variant_of_the_detector_head_is_built_and_judged_at_its_layers(head):
    result, report = head
    assert report.runtime == "onnxruntime" and report.calibration == {"samples": 8, "seed": 0, "source": "recipe"}
    assert [q.layer for q in report.layers] == [d.layer for d in result.folded_pairs] == ["head_conv", "up0", "up1"]
    for q in report.layers:
        assert q.tensor.endswith("relu")  # judged after the Relu the quantizer gives the BN output's range to
        assert all(math.isfinite(q.sqnr_db[v]) and q.sqnr_db[v] > 20 for v in VARIANTS), q
    assert all(math.isfinite(report.output_sqnr_db[v]) for v in VARIANTS), report.output_sqnr_db
    assert any("empirical bias correction" in n for n in report.notes)
    assert any("high-bias absorption (Nagel et al. 2019 section 4.2" in n and "up1 -> prob" in n
               for n in report.notes), report.notes
    json.dumps(report.to_dict())  # no NaN, no inf: JSON as it is


def test_the_layer_figure_is_onnxruntimes_own_qdq_loss_debug_figure(head, tmp_path):
    """Where the names match within one graph, foldscope's SQNR of a tensor equals onnxruntime's
    ``qdq_loss_debug`` cross-model figure (float model against the QDQ model) within 0.1 dB."""
    from onnxruntime.quantization import qdq_loss_debug as debug

    result, _ = head
    inputs = verify(result).inputs
    int8 = rt.quantize(result.folded, inputs, per_channel=False)
    tensor = "up0_relu"
    held = rt.held_value_names(int8, [tensor])
    _, reference = rt.run(result.folded, inputs, [tensor])
    _, got = rt.run(int8, inputs, list(held.values()))
    ours = sqnr_db(reference[tensor], got[held[tensor]])
    paths = {}
    for name, model in (("float", result.folded), ("int8", int8)):
        onnx.save(model.proto, tmp_path / f"{name}.onnx")
        debug.modify_model_output_intermediate_tensors(str(tmp_path / f"{name}.onnx"), str(tmp_path / f"{name}_all.onnx"))
        paths[name] = str(tmp_path / f"{name}_all.onnx")
    feeds = rt._Reader([i.name for i in result.folded.proto.graph.input], inputs).feeds
    activations = {name: debug.collect_activations(path, iter(feeds)) for name, path in paths.items()}
    errors = debug.compute_activation_error(debug.create_activation_matching(activations["int8"], activations["float"]))
    assert ours == pytest.approx(errors[tensor]["xmodel_err"], abs=0.1), (ours, errors[tensor])


def test_the_int8_figures_see_a_fold_that_is_wrong(head):
    """The same fold with one layer's kernel 20 % off in half its channels: that layer's int8 SQNR
    falls by more than 5 dB in every folded variant, while the original's stays."""
    _assert_sees_the_wrong_layer(ONNX, *head, "up0")


def _assert_sees_the_wrong_layer(frontend, result, report, layer: str) -> None:
    """``layer`` 20 % off in half its channels: its folded variants fall by more than 5 dB, the
    original's stays."""
    (bad,) = [q for q in _report(_half_wrong(frontend, result, layer)).layers if q.layer == layer]
    (good,) = [q for q in report.layers if q.layer == layer]
    assert bad.sqnr_db["original_per_tensor"] == pytest.approx(good.sqnr_db["original_per_tensor"])
    for variant in ("folded_per_tensor", "folded_per_channel"):
        assert bad.sqnr_db[variant] < good.sqnr_db[variant] - 5, (variant, bad.sqnr_db, good.sqnr_db)


def test_a_variant_the_quantizer_refuses_is_null_with_its_reason():
    """onnxruntime's per-channel quantization of a grouped ConvTranspose fails (its bias scale is laid
    out per group): the variant is null and the note says why; the others stand."""
    result = fold(ONNX, model_zoo.ZOO["ONNX: DCGAN generator (grouped ConvTranspose)"].build())
    report = _report(result)
    assert report.output_sqnr_db["folded_per_channel"] is None
    assert all(q.sqnr_db["folded_per_channel"] is None for q in report.layers)
    assert any(n.startswith("folded_per_channel: not built: onnxruntime cannot quantize") for n in report.notes)
    assert report.output_sqnr_db["folded_per_tensor"] > 20


def test_cle_recovers_what_a_tiny_variance_costs_int8_activations():
    """A BN variance of 1e-4 on one channel blows that channel's activations up; int8 activations
    with one scale per tensor then crush every other channel, folded or not; equalization recovers it."""
    result = fold(ONNX, prepare(tiny_variance_onnx(), "tiny.onnx"))
    report = _report(result, equalized=quant_report(result).equalized)
    (conv,) = [q for q in report.layers if q.layer == "conv"]
    assert conv.sqnr_db["folded_cle_per_tensor"] > conv.sqnr_db["folded_per_tensor"] + 10, conv.sqnr_db
    assert conv.sqnr_db["folded_cle_per_tensor"] > conv.sqnr_db["original_per_tensor"] + 10, conv.sqnr_db


def test_the_command_line_adds_int8_to_the_quant_report(tmp_path):
    path = tmp_path / "head.onnx"
    onnx.save(model_zoo.ZOO[HEAD].build().proto, path)
    proc = run_cli(path, "-o", tmp_path / "out.onnx", "--quant-report", tmp_path / "q.json", "--int8")
    assert proc.returncode == 0, proc.stderr
    assert "real int8 in onnxruntime" in proc.stdout and "WARNING" not in proc.stderr, proc.stderr
    figures = json.loads((tmp_path / "q.json").read_text())["int8"]
    assert set(figures) == {"runtime", "version", "calibration", "output_sqnr_db", "layers", "notes", "granularity",
                            "granularity_targets"}
    assert set(figures["output_sqnr_db"]) == set(VARIANTS)
    assert [layer["layer"] for layer in figures["layers"]] == ["head_conv", "up0", "up1"]
    assert set(figures["layers"][0]) == {"layer", "bn", "tensor", "sqnr_db", "bn_scale_spread"}
    assert figures["layers"][1]["bn_scale_spread"] == pytest.approx(236, rel=0.01)  # up0: 236x between its channels


def test_the_command_line_refuses_int8_for_a_format_without_its_runtime_in_one_sentence(tmp_path):
    from fold.frontends.graphdef.io import graph_def_from_keras

    path = tmp_path / "net.pb"
    path.write_bytes(graph_def_from_keras(model_zoo.dcgan_generator(base=8)).SerializeToString())
    proc = run_cli(path, "--int8")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "for a TensorFlow GraphDef (frozen) file it is not built yet" in proc.stderr, proc.stderr
    assert not (tmp_path / "net_folded.pb").exists()
    onnx.save(model_zoo.ZOO[HEAD].build().proto, tmp_path / "head.onnx")
    proc = run_cli(tmp_path / "head.onnx", "--int8", "litert")
    assert proc.returncode == 2 and "its int8 runtime is onnxruntime" in proc.stderr, proc.stderr


# -- Keras: TensorFlow's converter quantizes, LiteRT runs ------------------------------------------

@pytest.fixture(scope="module")
def dcgan():
    result = fold(KERAS, model_zoo.dcgan_generator(base=16))
    return result, _report(result, equalized=quant_report(result).equalized)


def test_the_converters_own_fold_and_foldscopes_quantize_alike(dcgan):
    """TensorFlow's converter folds every BN itself before it quantizes; quantized per tensor, its fold
    of the original and foldscope's fold give the same int8 figures at every layer."""
    result, report = dcgan
    assert report.runtime == "litert" and [q.layer for q in report.layers] == ["project", "up0", "up1"]
    for q in report.layers:
        assert q.sqnr_db["original_per_tensor"] == pytest.approx(q.sqnr_db["folded_per_tensor"], abs=0.05), q
        assert all(math.isfinite(q.sqnr_db[v]) and q.sqnr_db[v] > 20 for v in VARIANTS[:4]), q
    assert any("the converter's own fold" in n for n in report.notes)


def test_litert_figures_see_a_fold_that_is_wrong(dcgan):
    _assert_sees_the_wrong_layer(KERAS, *dcgan, "up0")


def test_litert_cle_recovers_what_a_tiny_variance_costs():
    result = fold(KERAS, tiny_variance_keras())
    report = _report(result, equalized=quant_report(result).equalized)
    (conv,) = report.layers
    assert conv.tensor == "relu"  # judged after the ReLU the converter fuses into the conv
    assert conv.sqnr_db["folded_cle_per_tensor"] > conv.sqnr_db["folded_per_tensor"] + 10, conv.sqnr_db


def test_the_command_line_runs_int8_on_a_keras_file_quietly(tmp_path):
    path = tmp_path / "net.keras"
    model_zoo.dcgan_generator(base=8).save(path)
    proc = run_cli(path, "-o", tmp_path / "out.keras", "--quant-report", tmp_path / "q.json", "--int8")
    assert proc.returncode == 0, proc.stderr
    assert "real int8 in litert" in proc.stdout and proc.stderr == "", proc.stderr
    figures = json.loads((tmp_path / "q.json").read_text())["int8"]
    assert figures["runtime"] == "litert" and [q["layer"] for q in figures["layers"]] == ["project", "up0", "up1"]


def test_each_targets_granularity_for_the_folded_transposed_convolutions():
    """The U-Net's two folded TConvs under per-output-channel (LiteRT, onnxruntime), per-tensor
    (XNNPACK) and per-input-channel (TensorRT) weights: the first two are the weight view's own
    figures, the third an independent NumPy computation; per tensor loses more than 6 dB, which the
    report says."""
    from fold.outputs.report import int8_text

    result = fold(KERAS, model_zoo.unet())
    report = _report(result)
    weights = {q.layer: q for q in quant_report(result).layers}
    assert [g.layer for g in report.granularity] == ["up1_tconv", "up0_tconv"]
    for g in report.granularity:
        db = g.weight_sqnr_db
        assert db["per_output_channel"] == pytest.approx(weights[g.layer].sqnr["per_channel_after"].mean)
        assert db["per_tensor"] == pytest.approx(weights[g.layer].sqnr["per_tensor_after"].mean)
        w = np.asarray(KERAS.kernel(result.folded, g.layer).kernel, dtype=np.float64)  # (kh, kw, out, in)
        scale = np.max(np.abs(w), axis=(0, 1, 2), keepdims=True) / 127
        q = np.clip(np.round(w / scale), -127, 127) * scale
        per_out = [10 * np.log10(np.sum(w[:, :, c] ** 2) / np.sum((w[:, :, c] - q[:, :, c]) ** 2))
                   for c in range(w.shape[2])]
        assert db["per_input_channel"] == pytest.approx(np.mean(per_out))
        assert db["per_tensor"] < db["per_output_channel"] - 6 and not g.rescued_by_per_channel()["per_tensor"]
    text = int8_text(report)
    assert "'up1_tconv': per-channel quantization does not rescue this fold on a target that quantizes per tensor" \
        in text, text
    assert report.to_dict()["granularity"][0]["simulated"] is True


def test_a_bn_that_is_the_models_output_is_judged_at_the_int8_models_output():
    """The seed's TConv -> BN: the BN's output is the model's, which the converter names after no layer."""
    from foldscope_app.workbench.workbench import seed_workbench

    wb = seed_workbench()
    report = int8_report(wb.result, wb.checked.inputs, samples=1, seed=None, source="given")
    (tconv,) = report.layers
    for variant in VARIANTS[:3]:
        assert tconv.sqnr_db[variant] == pytest.approx(report.output_sqnr_db[variant], abs=1e-6), tconv


def test_bias_correction_takes_the_mean_int8_weight_error_off_each_folded_layer(head):
    """Run alone on the float fold's inputs to it with int8-rounded weights, each folded layer's output
    errs from the float fold's by a mean per channel; with the corrected biases that mean is gone (to
    float rounding)."""
    from fold.tools.quantization import _fake_quantized, bias_corrected

    result, _ = head
    inputs = verify(result).inputs
    layers = [d.layer for d in result.folded_pairs]

    def mean_error(model):
        """Each layer's mean output error per channel, int8-rounded ``model`` against the float fold."""
        kernels = {layer: ONNX.kernel(model, layer) for layer in layers}
        feeds = ONNX.tapper(result.folded, (), layers)(inputs).feeds
        exact = ONNX.layer_runner(result.folded, [(x, x) for x in layers]).run(feeds, inputs)
        rounded = ONNX.layer_runner(_fake_quantized(ONNX, model, kernels, False), [(x, x) for x in layers]).run(
            feeds, inputs)
        return {x: np.abs((rounded[x] - exact[x]).mean(axis=(0, 2, 3))).max() / np.abs(exact[x]).max() for x in layers}

    before, after = mean_error(result.folded), mean_error(bias_corrected(result, result.folded, inputs))
    assert all(before[x] > 1e-5 for x in layers), before
    assert all(after[x] < 1e-6 for x in layers), after


def test_high_bias_absorption_moves_what_the_bn_statistics_say_and_keeps_the_float_function(head):
    """After CLE, up1's BN says channel i is N(beta_i, gamma_i^2) / s_i (s_i: what CLE divided it by, read
    off the kernels); c_i = max(0, beta_i / s_i - 3 |gamma_i| / s_i) leaves up1's bias and the 1x1 ``prob``
    conv's bias gains W c. The two pairs into transposed convolutions are left, with their reason; the
    float outputs barely move (a 1x1 conv has no border), and where every channel of up1's ReLU input is
    above c, its output is the old one minus c."""
    from fold.tools.quantization import high_bias_absorbed

    result, _ = head
    equalized = quant_report(result).equalized
    absorbed = high_bias_absorbed(result, equalized)
    assert set(absorbed.skipped) == {("head_conv", "up0"), ("up0", "up1")}
    assert all("transposed convolution" in r for r in absorbed.skipped.values())
    inits = {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in result.original.graph.initializer}
    gamma, beta = inits["up1_bn.scale"], inits["up1_bn.B"]
    w_fold = ONNX.kernel(result.folded, "up1").kernel  # ConvTranspose W (C_in, C_out, k, k)
    w_eq = ONNX.kernel(equalized, "up1").kernel
    s = np.abs(w_fold).max(axis=(0, 2, 3)) / np.abs(w_eq).max(axis=(0, 2, 3))
    c = np.maximum(0, beta / s - 3 * np.abs(gamma) / s)
    assert c.any() and absorbed.moved[("up1", "prob")] == (np.count_nonzero(c), pytest.approx(c.max()))
    np.testing.assert_allclose(ONNX.kernel(absorbed.model, "up1").bias, ONNX.kernel(equalized, "up1").bias - c,
                               rtol=1e-6, atol=1e-6)
    w_prob = ONNX.kernel(equalized, "prob").kernel  # (1, C, 1, 1)
    np.testing.assert_allclose(ONNX.kernel(absorbed.model, "prob").bias,
                               ONNX.kernel(equalized, "prob").bias + w_prob[:, :, 0, 0] @ c, rtol=1e-6)
    inputs = verify(result).inputs
    (before,), old = rt.run(equalized, inputs, ["up1_bn"])
    (after,), new = rt.run(absorbed.model, inputs, ["up1_bn"])
    assert sqnr_db(before, after) > 100
    above = (old["up1_bn"] >= c[None, :, None, None]).all(axis=1)
    np.testing.assert_allclose((old["up1_bn"] - c[None, :, None, None]).transpose(0, 2, 3, 1)[above],
                               new["up1_bn"].transpose(0, 2, 3, 1)[above], atol=1e-4)


def test_the_seeds_tconv_with_both_its_bns_differs_by_target_granularity():
    """The note's TConv has one channel, which int8 holds exactly at every granularity; with its two BNs
    as two output channels (scales 2.4x apart) of the same all-ones kernel, per output channel is still
    exact, one scale per tensor (XNNPACK) or per input channel (TensorRT: the kernel has one) is not,
    and the report says so. The real int8 figures have no NaN."""
    from fold.outputs.report import int8_text
    from foldscope_app.examples.seed import EXAMPLE_1, EXAMPLE_2, statistics, two_bn_model

    result = fold(KERAS, two_bn_model())
    report = _report(result)
    (g,) = report.granularity
    db = g.weight_sqnr_db
    (m1, v1), (m2, v2) = statistics(EXAMPLE_1), statistics(EXAMPLE_2)
    s = np.array([EXAMPLE_1.gamma / math.sqrt(v1 + EXAMPLE_1.epsilon), EXAMPLE_2.gamma / math.sqrt(v2 + EXAMPLE_2.epsilon)])
    step = s.max() / 127  # one scale for the tensor: channel 0's weight s_0 lands between two steps
    error = s[0] - np.round(s[0] / step) * step
    assert db["per_output_channel"] > 100
    assert db["per_tensor"] == pytest.approx((10 * math.log10(s[0] ** 2 / error ** 2) + 200.0) / 2, abs=0.01)
    assert db["per_input_channel"] == pytest.approx(db["per_tensor"])
    assert db["per_tensor"] < db["per_output_channel"] - 6
    assert "does not rescue this fold on a target that quantizes per tensor or per input channel" in int8_text(report)
    json.dumps(report.to_dict())


# -- a .tflite file: ai-edge-quantizer and LiteRT ------------------------------------------------------

def _tflite_pair(spread: float = 40.0, seed: int = 0) -> bytes:
    """CONV_2D (3 -> 6, stride 2, SAME, bias) -> MUL -> ADD(RELU) -> CONV_2D (6 -> 4, 3x3, VALID), every
    tensor named once (the quantizer matches tensors by name), one BN scale ``spread`` times the others."""
    from ai_edge_litert import schema_py_generated as schema

    from tests.tflite_support import ACT, Net, conv_options

    rng = np.random.default_rng(seed)
    net = Net()
    x = net.input("input", [1, 9, 9, 3])
    y = net.op("CONV_2D", [x, net.const("conv/filter", rng.normal(size=(6, 3, 3, 3)).astype(np.float32)),
                           net.const("conv/bias", rng.normal(size=6).astype(np.float32))],
               [1, 5, 5, 6], conv_options(2, "SAME"), name="conv")
    scale = rng.uniform(0.5, 1.5, 6) * rng.choice([-1, 1], 6)
    scale[0] *= spread
    y = net.op("MUL", [y, net.const("bn/scale", scale.astype(np.float32))], [1, 5, 5, 6],
               conv_options_like(schema.MulOptionsT, ACT.NONE), name="bn/mul")
    y = net.op("ADD", [y, net.const("bn/shift", rng.normal(1, 0.5, 6).astype(np.float32))], [1, 5, 5, 6],
               conv_options_like(schema.AddOptionsT, ACT.RELU), name="bn/add")
    y = net.op("CONV_2D", [y, net.const("next/filter", rng.normal(size=(4, 3, 3, 6)).astype(np.float32)),
                           net.const("next/bias", rng.normal(size=4).astype(np.float32))],
               [1, 3, 3, 4], conv_options(1, "VALID"), name="next")
    return net.build(y)


def conv_options_like(cls, act: int):
    options = cls()
    options.fusedActivationFunction = act
    return options


@pytest.fixture(scope="module")
def tflite_pair():
    from fold.frontends.tflite.io import model_from_bytes

    result = fold(TFLITE, model_from_bytes(_tflite_pair(), "pair.tflite"))
    return result, _report(result, equalized=quant_report(result).equalized)


def test_a_tflite_file_gets_every_variant_from_ai_edge_quantizer(tflite_pair):
    """The BN's MUL/ADD fold into the first CONV_2D; ai-edge-quantizer builds every variant, LiteRT runs
    it, and each is judged at the BN's output tensor ("bn/add", which the fold's CONV_2D writes). One
    channel's scale 40x the others makes that channel's output 40x theirs too, so one int8 activation
    scale for the tensor costs every variant alike; CLE, which divides that channel by its s, recovers it."""
    result, report = tflite_pair
    assert report.runtime == "litert" and [q.layer for q in report.layers] == [d.layer for d in result.folded_pairs]
    (layer,) = report.layers
    assert layer.tensor == "bn/add"
    db = layer.sqnr_db
    assert all(db[v] is not None and math.isfinite(db[v]) for v in VARIANTS), db
    assert abs(db["original_per_tensor"] - db["folded_per_tensor"]) < 3, db  # the activations' scale decides
    assert db["folded_per_channel"] > db["folded_per_tensor"], db
    assert db["folded_cle_per_tensor"] > db["folded_per_tensor"] + 10, db
    assert any("ai-edge-quantizer" in n for n in report.notes)
    json.dumps(report.to_dict())


def test_the_tflite_figure_is_ai_edge_quantizers_own_validate_snr(tflite_pair):
    """Where names match within one graph, foldscope's SQNR of a tensor (one row: pooled) equals
    ai-edge-quantizer's ``validate`` SNR of it (float model against its int8 model, LiteRT without
    XNNPACK, as foldscope runs it) within 0.1 dB."""
    from ai_edge_quantizer import quantizer
    from ai_edge_quantizer.utils.validation_utils import ValidationErrorMetric

    from fold.frontends.tflite import int8 as lite

    result, _ = tflite_pair
    inputs = [x[:1] for x in verify(result).inputs]
    int8 = lite.quantize(result.folded, verify(result).inputs, per_channel=False)
    data, key = lite.with_signature(result.folded)
    _, reference = lite.run_rows(result.folded.data, inputs, {"bn/add": "bn/add"})
    _, got = lite.run_rows(int8, inputs, {"bn/add": "bn/add"})
    with warnings.catch_warnings():  # LiteRT's note that keeping every tensor is for debugging
        warnings.simplefilter("ignore", UserWarning)
        theirs = quantizer.Quantizer(bytearray(data), previous_quantized_model=bytearray(int8)).validate(
            {key: [{"input": inputs[0]}]}, error_metrics=[ValidationErrorMetric.SNR], use_xnnpack=False, num_threads=1)
    snr = theirs.get_all_tensor_results()["bn/add"]["snr"]
    assert sqnr_db(reference["bn/add"], got["bn/add"]) == pytest.approx(10 * math.log10(snr), abs=0.1)


def test_tflite_int8_figures_see_a_fold_that_is_wrong():
    from fold.frontends.tflite.io import model_from_bytes

    result = fold(TFLITE, model_from_bytes(_tflite_pair(spread=1.0), "even.tflite"))
    (good,), (bad,) = _report(result).layers, _report(_half_wrong(TFLITE, result, result.folded_pairs[0].layer)).layers
    # half the channels 20 % off: about 14 dB in each of them, against the good fold's 35
    assert bad.sqnr_db["folded_per_channel"] < good.sqnr_db["folded_per_channel"] - 6, (good, bad)
    assert good.sqnr_db["folded_per_channel"] > 30, good


def test_tflite_int8_needs_tensor_names_it_can_match(tmp_path):
    """Two tensors named "add" (a hand-built file): refused in one sentence, no file left behind."""
    from tests.tflite_support import conv_net

    data = conv_net("CONV_2D", act=0)
    net_names = [b"mul", b"add"]
    assert all(n in data for n in net_names)
    path = tmp_path / "twice.tflite"
    from fold.frontends.tflite.model import TFLITE_SCHEMA

    tree = TFLITE_SCHEMA.parse(data)
    tree.subgraphs[0].tensors[0].name = b"add"  # the input now shares the ADD's output name
    path.write_bytes(TFLITE_SCHEMA.pack(tree))
    proc = run_cli(str(path), "--quant-report", str(tmp_path / "q.json"), "--int8")
    assert proc.returncode == 2 and "reads tensors by name" in proc.stderr and "'add' names 2 tensors" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "q.json").exists()


def test_real_bn_statistics_edge_cases_give_a_stated_figure_and_no_nan():
    """BN statistics as trained models carry them: a gamma of exactly 0 (an all-zero output channel after
    folding), a variance of exactly 0 (epsilon alone keeps it finite), negative gammas, and scales 1000x
    apart in one layer: every variant of onnxruntime's int8 model is built, every figure is a finite
    number (the all-zero channel, which has no signal, is left out of the mean, not made NaN), and the
    report is JSON without NaN."""
    from tests.test_quant import tiny_variance_onnx

    model = tiny_variance_onnx()
    inits = {t.name: t for t in model.graph.initializer}
    gamma = onnx.numpy_helper.to_array(inits["bn.scale"]).copy()
    var = onnx.numpy_helper.to_array(inits["bn.var"]).copy()
    gamma[:] = [0.0, 1.0, -1.5, 1000.0, -0.8, 1.2]
    var[1] = 0.0
    inits["bn.scale"].CopyFrom(onnx.numpy_helper.from_array(gamma, "bn.scale"))
    inits["bn.var"].CopyFrom(onnx.numpy_helper.from_array(var, "bn.var"))
    result = fold(ONNX, prepare(model, "edges.onnx"))
    report = _report(result, equalized=quant_report(result).equalized)
    json.dumps(report.to_dict(), allow_nan=False)
    (conv,) = [q for q in report.layers if q.layer == "conv"]
    assert conv.scale_spread > 1000  # 1000 / (0.8 / sqrt(var)) over the non-zero channels
    for q in report.layers:
        assert all(q.sqnr_db[v] is not None and math.isfinite(q.sqnr_db[v]) for v in VARIANTS), q
    assert all(v is not None and math.isfinite(v) for v in report.output_sqnr_db.values()), report.output_sqnr_db


def test_each_int8_model_is_told_before_it_is_built(head):
    """The page's progress bar: every variant named as it starts, counted out of all of them."""
    result, full = head
    told = []
    _report(result, progress=lambda name, k, n: told.append((name, k, n)))
    names = [name for name, _, _ in told]
    assert names[:3] == ["original_per_tensor", "folded_per_tensor", "folded_per_channel"]
    assert told == [(name, k, len(told)) for k, name in enumerate(names)]
    assert set(names) <= set(full.output_sqnr_db)
