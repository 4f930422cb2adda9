"""What the app shows of one model, for every format; models foldscope cannot rebuild."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from foldscope_app.examples import model_zoo
from foldscope_app.examples.model_zoo import playground_model, randomize_bn
from foldscope_app.workbench import workbench
from foldscope_app.workbench.workbench import inspect_keras, upload_workbench

L = keras.layers


class Subclassed(keras.Model):
    """A subclassed model: no config to rebuild it from."""

    def __init__(self):
        super().__init__(name="subclassed")
        self.tconv = L.Conv2DTranspose(4, 3, strides=2, padding="same")
        self.bn = L.BatchNormalization()

    def call(self, x, training=False):
        return self.bn(self.tconv(x), training=training)


def test_subclassed_model_shows_the_op_level_fold_and_says_why():
    model = Subclassed()
    model(np.zeros((1, 6, 5, 3), "float32"))
    randomize_bn(model)
    wb = inspect_keras("subclassed", model)
    assert wb.notice and "cannot be written" in wb.notice
    assert wb.suffix == ".pb" and [d.status for d in wb.result.decisions] == ["folded"]
    assert wb.verification.max_abs_diff < 1e-5 and wb.folded_file()


def test_keras_pair_detail_has_kernel_ranges():
    wb = inspect_keras("dw", playground_model(kind="DepthwiseConv2D", channels_in=3, channels_out=6,
                                              tiny_variance=True, epsilon=0.0))
    (decision,) = wb.result.folded_pairs
    detail = wb.detail(decision)
    assert detail.range_before.shape == detail.range_after.shape == (6, 2)
    widths = np.ptp(detail.range_after, axis=1) / np.ptp(detail.range_before, axis=1)
    assert widths[0] > 1e3 * np.median(widths[1:])  # the tiny variance blows up channel 0


def test_upload_of_each_format(tmp_path):
    from fold.frontends.keras.io import to_tflite
    from foldscope_app.examples.seed import graph_def as seed_graph_def

    model = playground_model()
    path = tmp_path / "net.keras"
    model.save(path)
    uploads = {"net.keras": path.read_bytes(), "net.hdf5": None, "seed.pb": seed_graph_def().SerializeToString(),
               "net.tflite": to_tflite(model)}
    model.save(tmp_path / "net.h5")
    uploads["net.hdf5"] = (tmp_path / "net.h5").read_bytes()  # a Keras 2 style model saved as .hdf5
    for name, data in uploads.items():
        wb = upload_workbench(name, data)
        assert wb.verification.passed, name
        assert wb.key.startswith("upload:") and wb.key.endswith(name)
        if not name.endswith(".tflite"):  # TensorFlow's converter folds the BNs itself
            assert wb.result.folded_pairs, name
        assert wb.folded_file()


def test_every_pair_detail_has_kernel_ranges_in_every_format(tmp_path):
    """The per-channel plot's ranges come from each frontend's own kernels, before and after."""
    wbs = [workbench.seed_workbench(), workbench.seed_ops_workbench()]
    for wb in wbs:
        (decision,) = wb.result.folded_pairs
        detail = wb.detail(decision)
        np.testing.assert_allclose(detail.range_before, [[1.0, 1.0]])
        s = decision.affine.scale[0]
        np.testing.assert_allclose(detail.range_after, [[s, s]], rtol=1e-6)


def test_zoo_models_are_the_same_in_every_process():
    """Every number of a zoo model comes from a seed: two builds here and one in a fresh process agree."""
    import subprocess
    import sys
    from pathlib import Path

    def fingerprint(model) -> str:
        import hashlib

        digest = hashlib.sha256()
        for w in model.weights:
            digest.update(np.asarray(w.numpy()).tobytes())
        return digest.hexdigest()

    first, second = model_zoo.dcgan_generator(), model_zoo.dcgan_generator()
    assert fingerprint(first) == fingerprint(second)
    root = Path(__file__).resolve().parents[1]
    code = ("import hashlib, numpy as np; from foldscope_app.examples import model_zoo\n"
            "m = model_zoo.dcgan_generator(); d = hashlib.sha256()\n"
            "for w in m.weights: d.update(np.asarray(w.numpy()).tobytes())\nprint(d.hexdigest())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=300,
                           env={"PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip().splitlines()[-1] == fingerprint(first)


def test_zoo_workbench_numbers_repeat():
    a, b = workbench.zoo_workbench("DCGAN generator"), workbench.zoo_workbench("DCGAN generator")
    assert a.key == b.key == "zoo:DCGAN generator"
    assert a.verification.max_abs_diff == b.verification.max_abs_diff


def test_a_rerun_flattens_each_graph_once(monkeypatch):
    """What the graph section reads (nested models, figure, the view's graph) flattens the
    graphs before and after once for the first run, and not at all for the next."""
    from viz import fold_graph

    calls = []
    flatten = fold_graph.flatten
    monkeypatch.setattr(fold_graph, "flatten", lambda graph, *a, **k: calls.append(graph) or flatten(graph, *a, **k))
    wb = inspect_keras("flatten-once", model_zoo.unet(), samples=2)

    def rerun(colour: bool) -> None:
        wb.nested_models()
        wb.graph_figure((), colour)
        wb.graphs(())[0]

    rerun(False)
    assert calls == [wb.result.graph_before, wb.result.graph_after]
    rerun(False)
    rerun(True)  # a new figure (coloured), from the same flattened graphs
    assert len(calls) == 2


def test_derived_views_are_kept_with_their_workbench():
    wb = workbench.seed_workbench()
    assert wb.pairs_table() is wb.pairs_table() and wb.folded_file() is wb.folded_file()
    assert wb.channel_png(0) is wb.channel_png(0) and wb.channel_png(0).startswith(b"\x89PNG")
    other = workbench.seed_workbench()  # the same model built again: its own views
    assert other.pairs_table() is not wb.pairs_table() and other.pairs_table() == wb.pairs_table()
    (row,) = wb.pairs_table()
    assert list(row)[:6] == ["layer", "bn", "kind", "status", "check", "layer max rel diff"]
    assert row["check"] == "PASS" and row["reason"] == "" and row["layer max rel diff"] < 1e-5


def test_a_check_of_two_uploads_names_each_by_the_name_it_was_uploaded_with():
    """Both files keep their own names in what the check says (never a temporary one)."""
    from fold.core.errors import FoldError
    from foldscope_app.workbench.workbench import check_workbench

    with pytest.raises(FoldError) as caught:
        check_workbench(("notes.h5", b"not an HDF5 file at all"), ("notes.h5", b"nor this"))
    assert "'notes.h5'" in str(caught.value) and "b_notes" not in str(caught.value) and "a_notes" not in str(caught.value)


def test_a_real_int8_note_names_its_variant_in_words():
    from foldscope_app.workbench.quant_view import note_text

    assert note_text("folded_cle_bias_per_tensor: then empirical bias correction") == \
        "+ high bias + bias corr.: then empirical bias correction"
    assert note_text("folded_cle_per_tensor: no pair of layers to equalize in this model.") == \
        "folded + CLE: no pair of layers to equalize in this model."
    assert note_text("LiteRT ran the int8 models") == "LiteRT ran the int8 models"
