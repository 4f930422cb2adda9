"""ONNX models with external data, folded without loading their data (``fold.frontends.onnx.external``),
and ``--no-verify``: the streamed fold equals the in-memory fold of the same model weight for weight,
its output refers only to its own data file, it verifies, ``check`` catches a broken data file, the
inputs stay byte for byte, and an unsafe location is one sentence."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from fold.core.errors import FoldError
from fold.core.verification import sample_inputs
from fold.engine.pipeline import fold, run, verify
from fold.frontends.formats import LayerKernel
from fold.frontends.onnx.io import load_model, prepare
from foldscope_app.examples.onnx_zoo import Graph
from tests.helpers import ONNX, relocated, run_cli


def _conv(bias: bool) -> tuple[onnx.ModelProto, int]:
    g = Graph(seed=3)
    x = g.input("x", ["N", 4, 9, 7])
    y = g.bn(g.conv(x, 4, 6, 3, "conv", stride=2, pad=1, bias=bias), 6, "bn")
    return g.model([g.node("Relu", [y], "relu")], "conv"), 1


def _conv_transpose(bias: bool) -> tuple[onnx.ModelProto, int]:
    g = Graph(seed=4)
    x = g.input("x", ["N", 4, 5, 6])
    y = g.bn(g.conv_transpose(x, 4, 6, 3, "tconv", stride=2, pad=1, group=2, bias=bias), 6, "bn")
    z = g.bn(g.conv(y, 6, 3, 1, "conv"), 3, "bn2")
    return g.model([z], "tconv"), 2


def _gemm(bias: bool) -> tuple[onnx.ModelProto, int]:
    g = Graph(seed=5)
    x = g.input("x", ["N", 5])
    w = g.const("fc.W", g.glorot((7, 5), 5, 7))
    inputs = [x, w] + ([g.const("fc.C", g.rng.normal(0, 0.1, 7).astype(np.float32))] if bias else [])
    y = g.node("Gemm", inputs, "fc", transB=1, **({"beta": 0.5} if bias else {}))
    return g.model([g.bn(y, 7, "bn")], "gemm"), 1


MODELS = {f"{name}{'+bias' if bias else ''}": (make, bias)
          for name, make in (("conv", _conv), ("tconv", _conv_transpose), ("gemm", _gemm)) for bias in (False, True)}


def _external(proto: onnx.ModelProto, folder: Path, name: str = "model.onnx") -> Path:
    """``proto`` saved with every tensor in one external data file beside it (``proto`` unchanged:
    onnx.save_model moves a model's data out of the proto it is given)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    onnx.save_model(copy, path, save_as_external_data=True, all_tensors_to_one_file=True, size_threshold=0,
                    location=f"{name}.data")
    return path


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _locations(path: Path) -> set[str]:
    proto = onnx.load(path, load_external_data=False)
    return {e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"}


@pytest.mark.parametrize("case", MODELS)
def test_the_streamed_fold_is_the_in_memory_fold(case, tmp_path):
    make, bias = MODELS[case]
    proto, pairs = make(bias)
    path = _external(proto, tmp_path / "in")
    before = _digests(tmp_path / "in")
    model = load_model(path)
    assert model.external is not None
    assert not any(t.raw_data for t in model.proto.graph.initializer)  # the graph came without its data

    streamed, in_memory = fold(ONNX, model), fold(ONNX, prepare(proto))
    assert [d.status for d in streamed.decisions] == ["folded"] * pairs
    out = tmp_path / "out" / "folded.onnx"
    out.parent.mkdir()
    ONNX.write(streamed.folded, out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["folded.onnx", "folded.onnx.data"]
    assert _locations(out) == {"folded.onnx.data"}  # never the input's data file

    written = onnx.load(out)  # onnx reads the data itself
    onnx.checker.check_model(str(out), full_check=True)
    assert "BatchNormalization" not in {n.op_type for n in written.graph.node}
    expected = {t.name: numpy_helper.to_array(t) for t in in_memory.folded.proto.graph.initializer}
    got = {t.name: numpy_helper.to_array(t) for t in written.graph.initializer}
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)

    inputs = sample_inputs(ONNX.inputs(model), 3, 0)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])  # from disk
    feeds = dict(zip((v.name for v in model.feeds), inputs))
    np.testing.assert_allclose(session.run(None, feeds)[0], run(ONNX, in_memory.folded, inputs)[0], rtol=1e-6,
                               atol=1e-6)
    assert verify(streamed, samples=4).verification.verdict == "pass"
    assert _digests(tmp_path / "in") == before


def test_the_command_line_folds_checks_and_leaves_the_input_as_it_was(tmp_path, monkeypatch):
    proto, _ = _conv_transpose(True)
    path = _external(proto, tmp_path / "in")
    before = _digests(tmp_path / "in")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    out, report = tmp_path / "out.onnx", tmp_path / "r.json"
    proc = run_cli(path, "-o", out, "--report", report, "--samples", "4")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert json.loads(report.read_text())["verification"]["verdict"] == "pass"
    assert _locations(out) == {"out.onnx.data"}
    assert _digests(tmp_path / "in") == before
    assert not list(scratch.glob("foldscope-*"))  # the scratch file of the folded tensors is gone
    proc = run_cli("check", path, out, "--samples", "4")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_new_weights_of_a_streamed_model_are_held_in_memory_and_fed_to_the_runtime(tmp_path, monkeypatch):
    """``with_kernels`` of a model with external data (the nudged models, a broken fold) holds its new
    weights in memory: no scratch file is written, onnxruntime is fed them, and writing the model puts
    them in its own data file."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    proto, _ = _conv_transpose(True)
    model, in_memory = load_model(_external(proto, tmp_path / "in")), prepare(proto)
    old = ONNX.kernel(model, "tconv")
    new = {"tconv": LayerKernel(old.kernel * np.float32(1.5), old.bias + np.float32(0.25), old.kind, old.groups)}
    changed, want = ONNX.with_kernels(model, new), ONNX.with_kernels(in_memory, new)
    assert changed.arrays and not list(scratch.iterdir())  # held, nothing written
    inputs = sample_inputs(ONNX.inputs(model), 3, 0)
    expected = run(ONNX, want, inputs)[0]
    np.testing.assert_allclose(run(ONNX, changed, inputs)[0], expected, rtol=1e-6, atol=1e-6)
    out = tmp_path / "out" / "changed.onnx"
    out.parent.mkdir()
    ONNX.write(changed, out)
    assert _locations(out) == {"changed.onnx.data"}
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])  # from disk
    feeds = dict(zip((v.name for v in model.feeds), inputs))
    np.testing.assert_allclose(session.run(None, feeds)[0], expected, rtol=1e-6, atol=1e-6)


def _scale_channel(out: Path, layer: str, factor: float) -> None:
    """Channel 0 of ``layer``'s folded weight times ``factor``, written into the output's data file."""
    proto = onnx.load(out, load_external_data=False)
    node = next(n for n in proto.graph.node if n.name == layer)
    tensor = next(t for t in proto.graph.initializer if t.name == node.input[1])
    entries = {e.key: e.value for e in tensor.external_data}
    data = out.parent / entries["location"]
    with open(data, "r+b") as fh:
        fh.seek(int(entries["offset"]))
        w = np.frombuffer(fh.read(int(entries["length"])), np.float32).reshape(tuple(tensor.dims)).copy()
        w[0] *= factor  # a Conv's output channel 0
        fh.seek(int(entries["offset"]))
        fh.write(w.tobytes())


def test_check_fails_a_broken_folded_data_file(tmp_path):
    proto, _ = _conv(True)
    path = _external(proto, tmp_path / "in")
    out = tmp_path / "out.onnx"
    assert run_cli(path, "-o", out, "--no-verify").returncode == 0
    _scale_channel(out, "conv", 1.05)
    proc = run_cli("check", path, out, "--samples", "4")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout and "'conv'" in proc.stdout and "channel 0" in proc.stdout


def test_no_verify_writes_the_fold_and_runs_nothing(tmp_path):
    """A custom op onnxruntime cannot run: a fold that ran either model would fail."""
    g = Graph(seed=6)
    x = g.input("x", ["N", 4, 9, 7])
    y = g.node("Foo", [g.bn(g.conv(x, 4, 6, 3, "conv", stride=2), 6, "bn")], "custom", domain="my.custom")
    proto = g.model([y], "g", [["N", 6, 4, 3]], opsets={"my.custom": 1})
    path = _external(proto, tmp_path / "in")
    out, report = tmp_path / "out.onnx", tmp_path / "r.json"
    proc = run_cli(path, "-o", out, "--no-verify", "--report", report)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "not verified (--no-verify)" in proc.stdout and f"foldscope check {path} {out}" in proc.stdout
    data = json.loads(report.read_text())
    assert data["verification"] is None and data["folded"] == 1 and data["bn_after"] == 0
    assert _locations(out) == {"out.onnx.data"}
    proc = run_cli(path, "-o", tmp_path / "o2.onnx")
    assert proc.returncode == 2 and "onnxruntime cannot run" in proc.stderr


def _keras_file(folder: Path) -> Path:
    import keras

    from foldscope_app.examples.model_zoo import randomize_bn

    inp = keras.Input((9, 8, 3), name="x")
    y = keras.layers.BatchNormalization(name="bn")(keras.layers.Conv2DTranspose(5, 3, strides=2, name="tconv")(inp))
    path = folder / "net.keras"
    randomize_bn(keras.Model(inp, y)).save(path)
    return path


def _pb_file(folder: Path) -> Path:
    from foldscope_app.examples.seed import graph_def

    path = folder / "seed.pb"
    path.write_bytes(graph_def().SerializeToString())
    return path


def _onnx_file(folder: Path) -> Path:
    path = folder / "conv.onnx"
    onnx.save(_conv(True)[0], path)
    return path


@pytest.mark.parametrize("make", [_onnx_file, _pb_file, _keras_file], ids=["onnx", "pb", "keras"])
def test_no_verify_for_every_format(make, tmp_path):
    path = make(tmp_path)
    report = tmp_path / "r.json"
    proc = run_cli(path, "--no-verify", "--report", report)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    data = json.loads(report.read_text())
    assert data["verification"] is None and data["per_layer"] is None and data["folded"] >= 1
    assert Path(data["output"]).exists() and "not verified" in proc.stdout
    proc = run_cli("check", path, data["output"], "--samples", "4")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_verify_refuses_what_needs_a_run(tmp_path):
    path = _onnx_file(tmp_path)
    proc = run_cli(path, "--no-verify", "--quant-report", tmp_path / "q.json")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--quant-report needs the models run" in proc.stderr
    proc = run_cli(path, "--no-verify", "--html", tmp_path / "r.html")
    assert proc.returncode == 2 and "--html needs the models run" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conv.onnx"]


@pytest.mark.parametrize("location", ["../model.onnx.data", "/etc/passwd", "sub/../../x.data"])
def test_a_location_outside_the_folder_is_refused_in_one_sentence(location, tmp_path):
    path = _external(_conv(False)[0], tmp_path / "in")
    relocated(path, location)
    with pytest.raises(FoldError, match="outside its own folder") as caught:
        load_model(path)
    assert str(caught.value).count(". ") == 0 and str(caught.value).endswith(".")
    proc = run_cli(path, "--no-verify")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_a_range_past_the_end_of_its_file_is_refused(tmp_path):
    path = _external(_conv(False)[0], tmp_path / "in")
    data = tmp_path / "in" / "model.onnx.data"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(FoldError, match=r"'model.onnx' says tensor '.*' is bytes \d+ to \d+ of 'model.onnx.data'"):
        load_model(path)


def test_an_output_over_its_input_is_refused(tmp_path):
    path = _external(_conv(False)[0], tmp_path, "m.onnx")
    relocated(path, "out.onnx.data")
    (tmp_path / "m.onnx.data").rename(tmp_path / "out.onnx.data")
    before = _digests(tmp_path)
    proc = run_cli(path, "-o", path, "--no-verify")
    assert proc.returncode == 2 and "is the input itself" in proc.stderr
    proc = run_cli(path, "-o", tmp_path / "out.onnx", "--no-verify")  # its data file would be out.onnx.data
    assert proc.returncode == 2 and "would overwrite 'out.onnx.data', the external data it is read from" in proc.stderr
    assert _digests(tmp_path) == before


def test_cle_writes_its_own_data_file_and_a_failed_run_leaves_none(tmp_path):
    path = _external(_conv_transpose(True)[0], tmp_path / "in")
    out = tmp_path / "out.onnx"
    proc = run_cli(path, "-o", out, "--cle", "--samples", "4")
    assert proc.returncode == 0, proc.stderr
    cle = tmp_path / "out_cle.onnx"
    assert _locations(cle) == {"out_cle.onnx.data"} and _locations(out) == {"out.onnx.data"}
    onnx.checker.check_model(str(cle), full_check=True)
    for p in tmp_path.glob("out*"):
        p.unlink()
    proc = run_cli(path, "-o", out, "--no-verify", "--report", tmp_path / "missing" / "r.json")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert not list(tmp_path.glob("out*"))  # the model and its data file both went
