"""The command line as a contract: exit codes, JSON keys, readable errors for bad files."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from foldscope_app.examples.model_zoo import randomize_bn
from fold.frontends.formats import FRONTENDS
from fold.engine.pipeline import default_output
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
L = keras.layers


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    inp = keras.Input((9, 8, 3), name="x")
    x = L.BatchNormalization(name="bn0")(L.Conv2DTranspose(5, 3, strides=2, padding="same", name="tconv")(inp))
    x = L.BatchNormalization(name="bn1")(L.Conv2D(4, 3, activation="relu", name="conv_relu")(x))
    path = tmp_path_factory.mktemp("cli") / "net.keras"
    randomize_bn(keras.Model(inp, x)).save(path)
    return path


def test_folds_writes_model_and_report(model_file, tmp_path):
    report = tmp_path / "report.json"
    proc = run_cli(model_file, "--report", report, "--samples", "3", "--seed", "7")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "tconv" in proc.stdout and "skipped" in proc.stdout and "max abs diff" in proc.stdout
    data = json.loads(report.read_text())
    assert {"input", "output", "pairs", "bn_before", "bn_after", "verification", "timings_s"} <= set(data)
    assert data["output"] == default_output(str(model_file), FRONTENDS["keras"]) and Path(data["output"]).exists()
    assert data["bn_before"] == 2 and data["bn_after"] == 1
    assert [p["status"] for p in data["pairs"]] == ["folded", "skipped"]
    assert set(data["pairs"][0]) >= {"layer", "bn", "kind", "status", "reason"}
    assert data["pairs"][1]["reason"]
    v = data["verification"]
    assert {"verdict", "max_abs_diff", "mean_abs_diff", "max_rel_diff", "per_output", "layers"} <= set(v)
    assert v["max_abs_diff"] < 1e-4 and v["samples"] == 3 and v["seed"] == 7
    assert set(data["timings_s"]) == {"load", "fold", "verify"}
    folded = keras.saving.load_model(data["output"])
    assert sum(isinstance(layer, L.BatchNormalization) for layer in folded.layers) == 1


def test_explicit_output_and_mismatch_exit_code(model_file, tmp_path):
    out = tmp_path / "custom.keras"
    proc = run_cli(model_file, "-o", out, "--atol", "0")
    assert out.exists()
    # atol 0 demands bit-identical outputs, which reordered float arithmetic does not give.
    assert proc.returncode == 1 and "FAIL" in proc.stdout


def _bad_files(tmp_path: Path, model_file: Path) -> dict[str, Path]:
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(model_file.read_bytes()[:300])
    text = tmp_path / "notes.keras"
    text.write_text("this is not a model\n")
    no_config = tmp_path / "noconfig.keras"
    with zipfile.ZipFile(no_config, "w") as zf:
        zf.writestr("metadata.json", "{}")
    h5 = tmp_path / "fake.h5"
    h5.write_text("hdf5? no")
    return {"missing": tmp_path / "missing.keras", "empty": empty, "truncated": truncated, "text": text,
            "no_config": no_config, "fake_h5": h5, "directory": tmp_path, "suffix": tmp_path / "model.pt"}


def test_bad_inputs_exit_2_with_one_line(model_file, tmp_path):
    (tmp_path / "model.pt").write_bytes(b"\x08\x01")
    for name, path in _bad_files(tmp_path, model_file).items():
        proc = run_cli(path)
        assert proc.returncode == 2, (name, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("foldscope: error:"), (name, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_usage_error_is_exit_2():
    proc = run_cli("x.keras", "--samples", "0")
    assert proc.returncode == 2 and "--samples" in proc.stderr


def test_frozen_graph_of_the_seed_folds(tmp_path):
    from fold.frontends.graphdef.io import read_graph_def
    from foldscope_app.examples.seed import graph_def as seed_graph_def

    source = tmp_path / "seed.pb"
    source.write_bytes(seed_graph_def().SerializeToString())
    report = tmp_path / "r.json"
    proc = run_cli(source, "--report", report)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report.read_text())
    assert data["output"].endswith("seed_folded.pb") and data["bn_after"] == 0
    assert data["pairs"][0]["kind"] == "Conv2DBackpropInput" and data["pairs"][0]["status"] == "folded"
    assert data["verification"]["max_abs_diff"] < 1e-5
    ops = {n.op for n in read_graph_def(data["output"]).node}
    assert "FusedBatchNormV3" not in ops and "BiasAdd" in ops


def test_keras_export_to_tflite_then_fold_the_tflite(model_file, tmp_path):
    exported = tmp_path / "net.tflite"
    proc = run_cli(model_file, "-o", tmp_path / "f.keras", "--tflite", exported)
    assert proc.returncode == 0, proc.stderr
    assert exported.read_bytes()[4:8] == b"TFL3"
    proc = run_cli(exported, "--report", tmp_path / "t.json")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "net_folded.tflite").exists()


def test_bad_pb_and_tflite_exit_2(tmp_path):
    for name, data in {"junk.pb": b"\xff\xfe not a graph", "junk.tflite": b"0123TFL3garbage"}.items():
        path = tmp_path / name
        path.write_bytes(data)
        proc = run_cli(path)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, (name, proc.stderr)


def test_samples_and_seed_mean_the_same_for_every_format(tmp_path):
    """``--samples 4 --seed 1`` on the same model as .keras, .pb and .tflite: the same rows from
    the same generator, so the three reports agree (the original models' outputs have the same
    peak on them; TensorFlow's converter folded the BNs of the .tflite itself)."""
    from fold.frontends.graphdef.io import graph_def_from_keras
    from fold.frontends.keras.io import to_tflite

    inp = keras.Input((9, 8, 3))
    x = L.BatchNormalization()(L.Conv2DTranspose(5, 3, strides=2, padding="same")(inp))
    x = L.BatchNormalization()(L.Conv2D(4, 3)(L.ReLU()(x)))
    model = randomize_bn(keras.Model(inp, x), seed=4)
    model.save(tmp_path / "net.keras")
    (tmp_path / "net.pb").write_bytes(graph_def_from_keras(model).SerializeToString())
    (tmp_path / "net.tflite").write_bytes(to_tflite(model))
    reports = {}
    for suffix in (".keras", ".pb", ".tflite"):
        proc = run_cli(tmp_path / f"net{suffix}", "-o", tmp_path / f"out{suffix}", "--report",
                       tmp_path / f"r{suffix}.json", "--samples", "4", "--seed", "1")
        assert proc.returncode == 0, (suffix, proc.stderr)
        reports[suffix] = json.loads((tmp_path / f"r{suffix}.json").read_text())
    keras_output = reports[".keras"]["verification"]["per_output"][0]
    for suffix, report in reports.items():
        v = report["verification"]
        assert v["samples"] == 4 and v["seed"] == 1 and v["passed"], suffix
        (out,) = v["per_output"]
        assert out["shape"] == keras_output["shape"] == [4, 16, 14, 4], suffix
        assert out["max_abs"] == pytest.approx(keras_output["max_abs"], rel=1e-5), suffix
    for suffix in (".keras", ".pb"):
        assert [p["status"] for p in reports[suffix]["pairs"]] == ["folded", "folded"], suffix
        assert (reports[suffix]["bn_before"], reports[suffix]["bn_after"]) == (2, 0), suffix
    assert reports[".tflite"]["bn_before"] == 0  # TensorFlow's converter folded them already


def test_options_of_another_format_are_refused(model_file):
    proc = run_cli(model_file, "--inputs", "x")
    assert proc.returncode == 2 and "--inputs applies to TensorFlow GraphDef (frozen) files only" in proc.stderr


def test_the_report_has_the_verdict_and_every_compared_tensor(model_file, tmp_path):
    proc = run_cli(model_file, "-o", tmp_path / "out.keras", "--report", tmp_path / "r.json", "--samples", "4")
    assert proc.returncode == 0, proc.stderr
    assert "verification (4 samples, seed 0; x 4x9x8x3): PASS" in proc.stdout
    assert "worst layer  'tconv' (bn0)" in proc.stdout
    v = json.loads((tmp_path / "r.json").read_text())["verification"]
    assert v["verdict"] == "pass" and v["input_shapes"] == {"x": [4, 9, 8, 3]}
    (folded,) = [layer for layer in v["layers"] if layer["bn"]]
    assert {"layer", "bn", "tensor", "max_abs_diff", "max_rel_diff", "atol", "passed"} <= set(folded)
    assert folded["layer"] == "tconv" and folded["bn"] == "bn0" and folded["passed"]
    assert {layer["role"] for layer in v["layers"]} == {"folded", "output", "shared"}


def test_a_layer_dead_on_the_default_inputs_is_conclusive(tmp_path):
    """A folded layer behind a ReLU the recipe's inputs keep at zero: judged on a synthetic batch, exit 0,
    and the text says only that batch exercised its channels."""
    inp = keras.Input((8, 8, 3))
    off = L.Conv2D(4, 1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(-1.0), name="off")
    x = L.BatchNormalization(name="bn")(L.Conv2D(5, 3, name="conv")(L.ReLU()(off(inp))))
    path = tmp_path / "dead.keras"
    randomize_bn(keras.Model(inp, x)).save(path)
    proc = run_cli(path, "-o", tmp_path / "out.keras", "--report", tmp_path / "r.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout and "only it exercised channels of 1: 'conv' (5 of 5)" in proc.stdout
    (conv,) = [c for c in json.loads((tmp_path / "r.json").read_text())["verification"]["layers"] if c["bn"]]
    assert conv["mode"] == "own and synthetic inputs" and conv["synthetic"] == [0, 1, 2, 3, 4]


def test_input_shape_and_the_size_search(tmp_path):
    x = keras.Input((None, 8, 1), name="spec")
    y = x
    for i in range(6):
        y = L.MaxPooling2D((2, 1))(L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(y)))
    path = tmp_path / "audio.keras"
    randomize_bn(keras.Model(x, L.GlobalAveragePooling2D()(y))).save(path)
    proc = run_cli(path, "-o", tmp_path / "a.keras", "--samples", "2")
    assert proc.returncode == 0, proc.stderr
    assert "spec 2x64x8x1" in proc.stdout  # 32 pools to 0: the next size that runs, and it says so
    proc = run_cli(path, "-o", tmp_path / "b.keras", "--samples", "2", "--input-shape", "spec=1x256x8x1")
    assert proc.returncode == 0 and "spec 2x256x8x1" in proc.stdout, proc.stderr
    proc = run_cli(path, "--input-shape", "spec=1x256")
    assert proc.returncode == 2 and "rank 4" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_cli(path, "--input-shape", "spec=big")
    assert proc.returncode == 2 and "expected NAME=D0xD1x..." in proc.stderr


def test_inputs_from_a_file_and_no_file_left_behind_on_bad_input(model_file, tmp_path):
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "inputs.npz", x=rng.normal(size=(3, 9, 8, 3)).astype(np.float32))
    proc = run_cli(model_file, "-o", tmp_path / "out.keras", "--inputs-file", tmp_path / "inputs.npz",
                   "--report", tmp_path / "r.json")
    assert proc.returncode == 0, proc.stderr
    assert "3 samples, from the inputs file" in proc.stdout
    assert json.loads((tmp_path / "r.json").read_text())["verification"]["inputs_source"] == "file"
    np.savez(tmp_path / "wrong.npz", other=np.zeros((1, 9, 8, 3), np.float32))
    out, report = tmp_path / "never.keras", tmp_path / "never.json"
    proc = run_cli(model_file, "-o", out, "--report", report, "--inputs-file", tmp_path / "wrong.npz")
    assert proc.returncode == 2 and "no array for input 'x'" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not out.exists() and not report.exists()


def test_one_line_errors_carry_no_escape_codes(tmp_path):
    path = tmp_path / "\x1b[31mred\x1b[0m.keras"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    proc = run_cli(path)
    assert proc.returncode == 2 and "\x1b" not in proc.stderr and proc.stderr.startswith("foldscope: error:")


def test_an_internal_error_names_the_file_and_the_op(tmp_path, monkeypatch, capsys):
    """An exception that is no FoldError is a bug in foldscope: exit 2, one line naming the file, the op
    foldscope was reading, the exception and whose fault it is (here the chain finder is made to raise
    what it raised on BirdNET's rank-0 MULs); ``check`` names both files."""
    from fold import cli
    from fold.frontends.ops import chains
    from foldscope_app.examples.onnx_zoo import Graph

    g = Graph(seed=0)
    x = g.conv(g.input("x", [1, 3, 5, 5]), 3, 4, 1, "conv")
    out = g.node("Add", [g.node("Mul", [x, g.const("m", np.ones((1, 4, 1, 1), np.float32))], "mul"),
                         g.const("a", np.zeros((1, 4, 1, 1), np.float32))], "add")
    path = tmp_path / "net.onnx"
    path.write_bytes(g.model([out], "net").SerializeToString())

    def broken(*args):
        raise ZeroDivisionError("integer modulo by zero")

    monkeypatch.setattr(chains, "_mul_chain", broken)
    for argv, files in (([str(path)], f"'{path}'"), (["check", str(path), str(path)], f"'{path}' and '{path}'")):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"foldscope: error: foldscope failed on {files} "), err
        assert "at op 'mul' (Mul) (ZeroDivisionError: integer modulo by zero); this is a bug in foldscope" in err, err
    assert not (tmp_path / "net_folded.onnx").exists()


def test_a_line_that_counts_layers_lists_them_all_or_says_how_many_more():
    """"7 more folded layer(s) have channels ..." listed 5: now 5 and "and 2 more" (3 are listed whole)."""
    from fold.core.verdict import TensorCheck
    from fold.core.verification import Verification
    from fold.outputs.report import verification_text

    def quiet(i: int) -> TensorCheck:
        return TensorCheck(layer=f"conv{i}", bn=f"bn{i}", tensor=f"bn{i}", role="folded", mode="own inputs",
                           max_abs_diff=0.0, max_rel_diff=0.0, atol=1e-6, passed=True, worst_channel=0, channels=8,
                           margin=0.1 * (i + 1), not_exercised=[0, 1], exercised=6)

    for layers, listed in ((8, "'conv0' (2 of 8), 'conv1' (2 of 8), 'conv2' (2 of 8), 'conv3' (2 of 8), "
                               "'conv4' (2 of 8) and 2 more"),
                           (4, "'conv0' (2 of 8), 'conv1' (2 of 8), 'conv2' (2 of 8)")):
        v = Verification("pass", "fine", 0.0, 0.0, 0.0, 1e-6, 2, 0, {}, "recipe", [],
                         layers=[quiet(i) for i in range(layers)])
        line = next(s for s in verification_text(v).splitlines() if "more folded layer(s)" in s)
        assert line.strip() == f"{layers - 1} more folded layer(s) have channels these inputs leave constant: {listed}"


# -- foldscope app ------------------------------------------------------------------------------

def test_app_serves_the_page_and_without_streamlit_is_one_sentence(tmp_path):
    """``foldscope app`` becomes ``streamlit run`` on the page (here the checkout's), healthy on the port it was
    given; without Streamlit it is the app extra's sentence and exit 2."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "fold", "app", "--server.headless", "true", "--server.port",
                             str(port), "--server.fileWatcherType", "none"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    healthy, deadline = False, time.monotonic() + 120
    try:
        while not healthy and proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2) as response:
                    healthy = response.read().strip() == b"ok"
            except OSError:
                time.sleep(0.25)  # polling the health check, not a synchronisation
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert healthy, output
    assert f"localhost:{port}" in output  # Streamlit's own banner: this process was the server
    code = "import sys; sys.modules['streamlit'] = None; from fold.cli import main; sys.exit(main(['app']))"
    blocked = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert (blocked.returncode, blocked.stdout) == (2, "")
    assert blocked.stderr == ("foldscope: error: The page (foldscope app) needs foldscope's app extra (streamlit is "
                              "not installed): pip install 'foldscope[app]'.\n")


@pytest.mark.parametrize("option", [["-o", "missing/folded.onnx"], ["--report", "missing/r.json"],
                                     ["--html", "missing/r.html"]])
def test_an_output_in_a_folder_that_does_not_exist_is_one_sentence(tmp_path, capsys, option):
    """A user's missing output folder is their input, not a bug: exit 2 before any model is read, one line."""
    from fold.cli import main
    from tests.onnx_pair import onnx_pair

    original, _, _ = onnx_pair(tmp_path)
    status = main([str(original), *[str(tmp_path / a) if "/" in a else a for a in option]])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "does not exist" in err and "bug" not in err, err
    assert str(tmp_path / "missing") in err and not (tmp_path / "missing").exists()
