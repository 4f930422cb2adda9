"""What the app shows of one model, for every format; models foldscope cannot rebuild."""

from __future__ import annotations

import keras
import numpy as np

from fold.workbench import inspect_model, inspect_upload
from fold.zoo import playground_model, randomize_bn

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
    wb = inspect_model(model)
    assert wb.notice and "cannot be written" in wb.notice
    assert wb.suffix == ".pb" and [d.status for d in wb.result.decisions] == ["folded"]
    assert wb.verification.max_abs_diff < 1e-5 and wb.folded_file()


def test_keras_pair_detail_has_kernel_ranges():
    wb = inspect_model(playground_model(kind="DepthwiseConv2D", channels_in=3, channels_out=6, tiny_variance=True,
                                        epsilon=0.0))
    (decision,) = wb.result.folded_pairs
    detail = wb.detail(decision)
    assert detail.range_before.shape == detail.range_after.shape == (6, 2)
    widths = np.ptp(detail.range_after, axis=1) / np.ptp(detail.range_before, axis=1)
    assert widths[0] > 1e3 * np.median(widths[1:])  # the tiny variance blows up channel 0


def test_upload_of_each_format(tmp_path):
    from fold.tf_graph import seed_graph_def
    from fold.tflite import keras_to_tflite

    model = playground_model()
    path = tmp_path / "net.keras"
    model.save(path)
    uploads = {"net.keras": path.read_bytes(), "seed.pb": seed_graph_def().SerializeToString(),
               "net.tflite": keras_to_tflite(model)}
    for name, data in uploads.items():
        wb = inspect_upload(name, data)
        assert wb.verification.passed, name
        assert wb.folded_file()[:4] if name.endswith(".keras") else wb.folded_file()
