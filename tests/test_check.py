"""``fold.tools.check``: folds made by other tools (onnxsim, onnxoptimizer, onnxruntime's optimizer,
TensorFlow's TFLite converter, foldscope itself) line up with their originals and pass; the same
candidates made wrong in one channel of one layer fail and name that layer."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import onnx
import pytest

from fold.engine.pipeline import fold_file
from fold.frontends.graphdef.io import graph_def_from_keras
from fold.frontends.keras.io import to_tflite
from fold.frontends.onnx.peers import TRANSFORMS
from fold.tools.check import check_files
from foldscope_app.examples import onnx_zoo, model_zoo
from tests.helpers import GRAPHDEF, KERAS, ONNX, TFLITE, mutated, randomize_bn, run_cli
from tests.tflite_support import TConvCase, tconv_bn

ROOT = Path(__file__).resolve().parents[1]
L = keras.layers
TOOLS = {tool.split()[0]: transform for tool, _, transform in TRANSFORMS}


def keras_net() -> keras.Model:
    """TConv -> BN -> ReLU -> Conv (no bias) -> BN, in != out channels, stride 2."""
    inp = keras.Input((9, 8, 3), name="img")
    x = L.ReLU(name="relu0")(L.BatchNormalization(name="bn0")(L.Conv2DTranspose(5, 3, strides=2, padding="same",
                                                                                name="tconv")(inp)))
    x = L.BatchNormalization(name="bn1")(L.Conv2D(4, 3, use_bias=False, name="conv1")(x))
    return randomize_bn(keras.Model(inp, x, name="net"), seed=2)


def _save_onnx(tmp_path: Path, proto: onnx.ModelProto, name: str) -> Path:
    path = tmp_path / name
    onnx.save(proto, path)
    return path


@pytest.mark.parametrize("tool", ["onnxsim", "onnxoptimizer", "onnxruntime"])
@pytest.mark.parametrize("model", ["text_detector_head", "dcgan_generator"])
def test_the_onnx_tools_folds_pass_and_say_which_bns_went(tmp_path, tool, model):
    proto = getattr(onnx_zoo, model)()
    original = _save_onnx(tmp_path, proto, "model.onnx")
    candidate = _save_onnx(tmp_path, TOOLS[tool](proto), f"{tool}.onnx")
    result = check_files(original, candidate, 4)
    v = result.checked.verification
    assert v.passed, (tool, v.reason)
    folded = {f.bn for f in result.removed}
    assert result.bn_original - result.bn_candidate == len(folded)
    # every removed BN is checked at its layer, or said to be checked at the outputs only: onnxruntime
    # fuses Conv + BN + ReLU into its own FusedConv, whose output is the ReLU's
    assert {c.bn for c in v.folded_layers} | set(v.output_only) == folded
    if tool in ("onnxsim", "onnxoptimizer"):  # onnxoptimizer's W * s / sqrt(var + eps) ops are read as constants
        assert not v.output_only
    if tool == "onnxoptimizer" and model == "text_detector_head":
        assert [c.bn for c in v.folded_layers] == ["head_bn"]  # its Conv's, checked alone
    if tool == "onnxsim" and model == "dcgan_generator":
        assert folded == {"up0_bn"}  # the grouped ConvTranspose and the Gemm keep theirs


def test_a_wrong_onnx_fold_fails_and_names_its_layer(tmp_path):
    proto = onnx_zoo.text_detector_head()
    original = _save_onnx(tmp_path, proto, "model.onnx")
    sim = ONNX.load(_save_onnx(tmp_path, TOOLS["onnxsim"](proto), "sim.onnx"))
    (tmp_path / "broken.onnx").write_bytes(ONNX.to_bytes(mutated(ONNX, sim, "up1", "wrong-axis", 2, 1.02)))
    v = check_files(original, tmp_path / "broken.onnx", 4).checked.verification
    assert v.verdict == "fail" and "'up1'" in v.reason
    assert [c.layer for c in v.folded_layers if not c.passed] == ["up1"]


def test_the_tflite_converters_fold_of_a_keras_model_passes_and_a_wrong_one_fails(tmp_path):
    model = keras_net()
    model.save(tmp_path / "net.keras")
    (tmp_path / "net.tflite").write_bytes(to_tflite(model))
    result = check_files(tmp_path / "net.keras", tmp_path / "net.tflite", 4)
    v = result.checked.verification
    assert v.passed, v.reason
    assert {f.bn: f.into for f in result.fates} == {"bn0": "TRANSPOSE_CONV:3", "bn1": "CONV_2D:4"}
    tconv = next(c for c in v.folded_layers if c.bn == "bn0")
    assert tconv.tensor == "relu0"  # the converter fused the ReLU too: the op now produces relu0's output
    converted = TFLITE.load(tmp_path / "net.tflite")
    (tmp_path / "bad.tflite").write_bytes(TFLITE.to_bytes(mutated(TFLITE, converted, "CONV_2D:4", "kernel", 1, 1.03)))
    bad = check_files(tmp_path / "net.keras", tmp_path / "bad.tflite", 4).checked.verification
    assert bad.verdict == "fail" and [c.layer for c in bad.folded_layers if not c.passed] == ["CONV_2D:4"]


@pytest.mark.parametrize("fmt", ["keras", "graphdef", "tflite", "onnx"])
def test_foldscopes_own_fold_passes_check_in_every_format_and_a_mutant_fails(tmp_path, fmt):
    if fmt == "keras":
        path = tmp_path / "net.keras"
        keras_net().save(path)
    elif fmt == "graphdef":
        path = tmp_path / "net.pb"
        path.write_bytes(graph_def_from_keras(keras_net()).SerializeToString())
    elif fmt == "tflite":
        path = tmp_path / "net.tflite"
        path.write_bytes(tconv_bn(TConvCase(cin=3, cout=5, stride=2, padding="SAME", bias=True, hw=(5, 4)))[0])
    else:
        path = _save_onnx(tmp_path, onnx_zoo.text_detector_head(), "net.onnx")
    result = fold_file(path)
    folded = tmp_path / f"folded{result.frontend.format.output_suffix}"
    result.frontend.write(result.folded, folded)
    checked = check_files(path, folded, 4)
    assert checked.checked.verification.passed, checked.checked.verification.reason
    assert {f.bn for f in checked.removed} == {d.bn for d in result.folded_pairs}
    layer = result.folded_pairs[-1].layer
    bad = tmp_path / f"bad{result.frontend.format.output_suffix}"
    result.frontend.write(mutated(result.frontend, result.folded, layer, "kernel", 1, 1.02), bad)
    v = check_files(path, bad, 4).checked.verification
    assert v.verdict == "fail" and [c.layer for c in v.folded_layers if not c.passed] == [layer]


def test_check_on_the_command_line_reports_like_a_fold(tmp_path):
    proto = onnx_zoo.dcgan_generator()
    original = _save_onnx(tmp_path, proto, "g.onnx")
    sim = _save_onnx(tmp_path, TOOLS["onnxsim"](proto), "g_sim.onnx")
    proc = run_cli("check", original, sim, "--report", tmp_path / "r.json", "--samples", "4")
    assert proc.returncode == 0, proc.stderr
    assert "verification (4 samples, seed 0; z 4x32): PASS" in proc.stdout and "worst layer  'up0'" in proc.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert {"input", "output", "pairs", "bn_before", "bn_after", "removed", "verification"} <= set(report)
    assert report["removed"] == ["up0_bn"] and (report["bn_before"], report["bn_after"]) == (3, 2)
    assert {"layer", "bn", "tensor", "max_abs_diff", "max_rel_diff", "atol", "passed"} <= set(
        report["verification"]["layers"][0])
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(ONNX.to_bytes(mutated(ONNX, ONNX.load(sim), "up0", "bias", 3, 1.03)))
    proc = run_cli("check", original, bad)
    assert proc.returncode == 1 and "FAIL" in proc.stdout and "'up0'" in proc.stdout
    proc = run_cli("check", original, tmp_path / "missing.onnx")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


def test_check_refuses_formats_it_cannot_line_up(tmp_path):
    original = _save_onnx(tmp_path, onnx_zoo.text_detector_head(), "m.onnx")
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(tconv_bn(TConvCase(cin=3, cout=5))[0])
    proc = run_cli("check", original, tflite)
    assert proc.returncode == 2 and "foldscope checks a ONNX original against a ONNX candidate" in proc.stderr


def test_keras_against_keras_lines_up_by_layer_name(tmp_path):
    model = keras_net()
    model.save(tmp_path / "a.keras")
    result = fold_file(tmp_path / "a.keras")
    KERAS.write(result.folded, tmp_path / "b.keras")
    checked = check_files(tmp_path / "a.keras", tmp_path / "b.keras", 4)
    v = checked.checked.verification
    assert v.passed and {c.layer for c in v.folded_layers} == {"tconv", "conv1"}
    assert np.isfinite([c.margin for c in v.layers]).all()


def test_a_graphdef_fold_is_lined_up_through_the_biasadd_named_like_the_bn(tmp_path):
    path = tmp_path / "net.pb"
    path.write_bytes(graph_def_from_keras(model_zoo.dcgan_generator(base=16)).SerializeToString())
    result = fold_file(path)
    GRAPHDEF.write(result.folded, tmp_path / "f.pb")
    checked = check_files(path, tmp_path / "f.pb", 4)
    assert checked.checked.verification.passed
    assert {f.into for f in checked.removed} == {d.layer for d in result.folded_pairs}
