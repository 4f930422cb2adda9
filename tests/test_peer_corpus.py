"""Zero false alarms on the folds the field's tools make, and no lost power: every peer (onnxsim,
onnxslim, onnxruntime's offline optimizer at the basic and extended levels, onnxoptimizer, onnxscript's
rewriter, PyTorch's fuse_conv_bn_eval exported with torch.onnx, TensorFlow's TFLite converter) on every
real model the tests read and on cases built to be hard (``tests/peer_corpus.py``).

For each peer's file, an oracle independent of foldscope's verdict decides what ``check`` must say:
the file is no valid ONNX model (``onnx.checker``: onnxruntime's extended level writes its own
contrib ops under the default domain) or the runtime refuses it -> exit 2 in one sentence naming it;
its outputs agree with the original's (onnxslim's own --model-check: rtol 1e-3, atol 1e-4; 1e-2 for
float16 outputs) -> PASS;
they do not -> FAIL. Then
foldscope's fold of each model with a 1 % error in one channel of every folded layer: each one fails.
Every tool's file is made once per module and kept in a temporary folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from fold.core.affine import channel_rows
from fold.core.errors import FoldError
from fold.engine.pipeline import fold_file, model_inputs
from fold.frontends.formats import FRONTENDS
from fold.tools.check import check_files
from tests.helpers import run_cli
from tests.peer_corpus import BUILT, ONNX_PEERS, REAL, TORCH, broken_everywhere, case_file, peer_file

ONNX = FRONTENDS["onnx"].frontend()
#: Rows per check: every folded layer is judged on them and on a synthetic batch as large.
SAMPLES = 2
CASES = [*REAL, *BUILT, *TORCH]
PAIRS = [(case, peer) for case in CASES for peer in ONNX_PEERS] + [(case, "torch") for case in TORCH]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("peer_corpus")


def _run(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The model's outputs in onnxruntime with its optimizations off (an error: the runtime refuses it)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


def _oracle(original: Path, candidate: Path) -> str:
    """"refused", "agree" or "differ": what onnx.checker and onnxruntime make of the candidate on the
    recipe's inputs."""
    model = ONNX.load(original)
    inputs, _ = model_inputs(ONNX, model, SAMPLES, 0)
    expected = _run(original, inputs)
    try:
        onnx.checker.check_model(onnx.load(candidate))
        got = _run(candidate, inputs)
    except Exception:  # noqa: BLE001 - whatever the runtime says, it refused the file
        return "refused"
    def close(a: np.ndarray, b: np.ndarray) -> bool:
        tol = 1e-2 if np.asarray(a).dtype == np.float16 else None
        return np.shape(a) == np.shape(b) and np.allclose(np.asarray(b, np.float64), np.asarray(a, np.float64),
                                                          rtol=tol or 1e-3, atol=tol or 1e-4)

    same = len(got) == len(expected) and all(close(a, b) for a, b in zip(expected, got))
    return "agree" if same else "differ"


@pytest.mark.parametrize("case,peer", PAIRS, ids=[f"{c}-{p}" for c, p in PAIRS])
def test_check_says_what_the_peers_file_is(folder, case, peer):
    original = case_file(case, folder)
    try:
        candidate = peer_file(case, peer, folder)
    except Exception as exc:  # noqa: BLE001 - a tool that cannot fold this model wrote nothing to check
        pytest.skip(f"{peer} does not fold {case}: {type(exc).__name__}")
    oracle = _oracle(original, candidate)
    if oracle == "refused":
        with pytest.raises(FoldError) as error:
            check_files(original, candidate, SAMPLES)
        message = str(error.value)
        assert f"'{candidate.name}'" in message and "\n" not in message and "Traceback" not in message, message
        return
    result = check_files(original, candidate, SAMPLES)
    v = result.checked.verification
    assert v.verdict == ("pass" if oracle == "agree" else "fail"), (oracle, v.reason, [
        (c.layer, c.margin) for c in v.folded_layers if not c.passed])
    if oracle == "agree":  # what it lined up it checked alone, each at its own scale, on every channel
        assert len(v.folded_layers) + len(v.output_only) == len(result.removed)
        assert all(c.conclusive and c.mode == "own and synthetic inputs" for c in v.folded_layers), v.folded_layers


def test_every_tool_folds_something_of_the_corpus(folder):
    """The corpus has teeth: each ONNX tool removes BNs from several cases, PyTorch's fuse from the
    DCGAN's four (on the grouped and the depthwise ConvTranspose it fails, pytorch#180995)."""
    removed = {peer: 0 for peer in [*ONNX_PEERS, "torch"]}
    for case, peer in PAIRS:
        try:
            path = peer_file(case, peer, folder)
        except Exception:  # noqa: BLE001
            continue
        before = sum(n.op_type == "BatchNormalization" for n in onnx.load(case_file(case, folder)).graph.node)
        after = sum(n.op_type == "BatchNormalization" for n in onnx.load(path).graph.node)
        removed[peer] += before > after
    assert all(n >= 2 for peer, n in removed.items() if peer != "torch") and removed["torch"] == 1, removed
    assert removed["onnxsim"] >= len(REAL) and removed["onnxslim"] >= len(REAL), removed


def _exercised_channel(check, kernel, rng: np.random.Generator) -> int:
    """A channel of the layer its check exercised and whose kernel is not all zero, drawn at random."""
    live = np.any(channel_rows(kernel.kernel, kernel.kind, kernel.groups) != 0, axis=1)
    quiet = set(check.not_exercised)
    return int(rng.choice([c for c in range(check.channels) if c not in quiet and live[c]]))


@pytest.mark.parametrize("case", CASES)
def test_a_one_percent_error_in_any_folded_layer_is_caught_there(folder, tmp_path, case):
    """foldscope's fold of the model, each folded layer off by 1 % in one exercised channel (a random one):
    every folded layer fails its own check (each is run alone on what the original layer received, so
    one break does not hide another), and the verdict names one of them. A model computed in float16
    (the mixed-precision BN) has a float bound of ~0.05 of the layer's terms: there, 10 %."""
    result = fold_file(case_file(case, folder))
    folded = tmp_path / "folded.onnx"
    result.frontend.write(result.folded, folded)
    checked = check_files(case_file(case, folder), folded, SAMPLES).checked.verification
    assert checked.passed, checked.reason
    rng = np.random.default_rng(0)
    channels = {c.layer: _exercised_channel(c, ONNX.kernel(result.folded, c.layer), rng)
                for c in checked.folded_layers}
    assert len(channels) == len(result.folded_pairs) > 0
    factor = 1.10 if case == "mixed_precision_bn" else 1.01
    onnx.save(broken_everywhere(onnx.load(folded), channels, factor), tmp_path / "broken.onnx")
    v = check_files(case_file(case, folder), tmp_path / "broken.onnx", SAMPLES).checked.verification
    missed = [(c.layer, channels[c.layer], c.margin) for c in v.folded_layers if c.passed]
    assert v.verdict == "fail" and not missed, missed
    assert re.search(r"'(.+?)' does not compute what", v.reason).group(1) in channels, v.reason


def test_the_cancelling_shift_passes_in_float32_and_float16_storage_and_a_1_percent_kernel_fails(folder, tmp_path):
    """β ≈ s μ (b' about 1e-3 of what it is made of): foldscope's float16 storage (behind the same Cast),
    the peers' float32 storage of the same BN both pass; one channel's kernel 1 % off fails, named."""
    for case in ("cancelling_bias", "float16_storage"):
        original = case_file(case, folder)
        result = fold_file(original)
        result.frontend.write(result.folded, tmp_path / f"{case}_folded.onnx")
        v = check_files(original, tmp_path / f"{case}_folded.onnx", SAMPLES).checked.verification
        assert v.passed and len(v.folded_layers) == len(result.folded_pairs), v.reason
        stored = {t.name: t.data_type for t in onnx.load(tmp_path / f"{case}_folded.onnx").graph.initializer}
        if case == "float16_storage":
            assert onnx.TensorProto.FLOAT16 in stored.values()  # written back as float16, behind its Cast
            assert _oracle(original, peer_file(case, "onnxsim", folder)) == "agree"
            sim = {t.data_type for t in onnx.load(peer_file(case, "onnxsim", folder)).graph.initializer}
            assert onnx.TensorProto.FLOAT16 not in sim  # onnxsim's W' and b' are float32
        layer = result.folded_pairs[-1].layer
        onnx.save(broken_everywhere(onnx.load(tmp_path / f"{case}_folded.onnx"), {layer: 1}, 1.01),
                  tmp_path / "broken.onnx")
        v = check_files(original, tmp_path / "broken.onnx", SAMPLES).checked.verification
        assert v.verdict == "fail" and f"'{layer}'" in v.reason, v.reason


def test_onnxslim_writes_an_invalid_model_for_a_mixed_precision_bn_that_foldscope_folds(folder, tmp_path):
    """float16 X, float32 BN parameters (legal since BN-15): onnxslim multiplies the float16 kernel by a
    float32 scale and writes a float32 weight beside a float16 input, which onnxruntime refuses; `check`
    of its file is exit 2 in one sentence, and foldscope folds the same BN into a valid float16 model."""
    original = case_file("mixed_precision_bn", folder)
    slim = peer_file("mixed_precision_bn", "onnxslim", folder)
    assert _oracle(original, slim) == "refused"
    proc = run_cli("check", original, slim)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    assert proc.stderr.count("\n") == 1 and slim.name in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    result = fold_file(original)
    assert (result.bn_before, result.bn_after) == (1, 0)
    result.frontend.write(result.folded, tmp_path / "folded.onnx")
    onnx.checker.check_model(onnx.load(tmp_path / "folded.onnx"), full_check=True)
    assert _oracle(original, tmp_path / "folded.onnx") == "agree"
    assert check_files(original, tmp_path / "folded.onnx", SAMPLES).checked.verification.passed


def test_the_tflite_converters_fold_of_a_real_keras_model_passes_and_a_1_percent_kernel_fails():
    """FER's Keras 2 emotion classifier (14 BNs with real statistics, separable convolutions) through
    TensorFlow's TFLite converter, which folds every BN: its file passes `check` layer by layer, and
    the same file with one converted layer 1 % off in one channel fails there."""
    from fold.engine.comparison import Side
    from fold.engine.pipeline import load
    from fold.tools.check import check
    from fold.tools.peer_runs import PEERS_BY_FORMAT
    from tests.helpers import TFLITE, mutated
    from tests.real_models import real_model

    frontend, model = load(real_model("fer_h5"))
    original = Side(frontend, model, frontend.graph(model))
    (converter,) = PEERS_BY_FORMAT["keras"]
    _, made = converter.make(model)
    result = check(original, Side(TFLITE, made, TFLITE.graph(made)), SAMPLES)
    v = result.checked.verification
    assert v.passed and len(result.removed) == 14 and len(v.folded_layers) + len(v.output_only) == 14, v.reason
    # the converter splits each separable layer into DEPTHWISE_CONV_2D and CONV_2D: those 8 at the outputs
    assert len(v.folded_layers) == 6 and len(v.output_only) == 8, (v.folded_layers, v.output_only)
    layer = v.folded_layers[len(v.folded_layers) // 2]
    channel = next(c for c in range(layer.channels) if c not in layer.not_exercised)
    broken = mutated(TFLITE, made, layer.layer, "kernel", channel, 1.01)
    bad = check(original, Side(TFLITE, broken, TFLITE.graph(broken)), SAMPLES).checked.verification
    assert bad.verdict == "fail" and [c.layer for c in bad.folded_layers if not c.passed] == [layer.layer], bad.reason
