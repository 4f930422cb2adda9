"""Model files never run code: Lambda layers and unknown classes are refused, and the payload never runs;
a Keras file that Keras 3 refuses (a custom class, a Keras 2 name with a '/') is one sentence naming the layer,
why, and what to do."""

from __future__ import annotations

import base64
import json
import marshal
import tomllib
from pathlib import Path

import h5py
import keras
import pytest

from fold.core.errors import FoldError, UnsafeModelError
from fold.frontends.formats import MAX_MODEL_BYTES, check_model_file
from fold.frontends.keras.io import load_model

ROOT = Path(__file__).resolve().parents[1]


def _marker_lambda(marker: Path):
    """A lambda whose body writes ``marker``: proof of execution if it ever runs."""
    return eval(f"lambda x: (open({str(marker)!r}, 'w').write('ran'), x)[1]")


def _lambda_model(fn) -> keras.Model:
    inp = keras.Input((4,))
    return keras.Model(inp, keras.layers.Lambda(fn)(keras.layers.Dense(3)(inp)))


def test_keras_file_with_lambda_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "lambda.keras"
    _lambda_model(_marker_lambda(marker)).save(path)
    marker.unlink(missing_ok=True)  # saving may trace the function
    with pytest.raises(UnsafeModelError, match="Lambda layer"):
        load_model(path)
    assert not marker.exists()


def _legacy_h5_with_marshalled_lambda(path: Path, marker: Path) -> None:
    """A Keras 2 style .h5 whose Lambda carries marshalled bytecode (function_type "lambda")."""
    _lambda_model(lambda x: x).save(path)
    code = base64.b64encode(marshal.dumps(_marker_lambda(marker).__code__)).decode()
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Lambda":
                layer["config"]["function"] = [code, None, None]
                layer["config"]["function_type"] = "lambda"
        f.attrs["model_config"] = json.dumps(config)


def test_legacy_h5_with_marshalled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "legacy.h5"
    _legacy_h5_with_marshalled_lambda(path, marker)
    with pytest.raises(UnsafeModelError, match="Lambda layer"):
        load_model(path)
    assert not marker.exists()


def test_the_payload_is_real(tmp_path):
    """Control: with safe_mode off, Keras would run the same file's code (so the tests above can fail)."""
    marker = tmp_path / "ran.txt"
    path = tmp_path / "legacy.h5"
    _legacy_h5_with_marshalled_lambda(path, marker)
    model = keras.saving.load_model(path, safe_mode=False, compile=False)
    model(keras.ops.ones((1, 4)))
    assert marker.read_text() == "ran"


def test_unknown_custom_class_is_refused(tmp_path):
    @keras.saving.register_keras_serializable(package="elsewhere")
    class Scale(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    inp = keras.Input((4,))
    path = tmp_path / "custom.keras"
    keras.Model(inp, Scale()(inp)).save(path)
    keras.saving.get_custom_objects().pop("elsewhere>Scale")
    with pytest.raises(UnsafeModelError, match="custom code"):
        load_model(path)


def test_size_limit_is_checked_and_matches_the_app(tmp_path):
    path = tmp_path / "big.keras"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 2048)
    with pytest.raises(FoldError, match="is 2 KiB, over the 1 KiB limit"):
        check_model_file(path, max_bytes=1024)
    config = tomllib.loads((ROOT / "foldscope_app" / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == MAX_MODEL_BYTES


def test_a_keras_file_is_judged_once_against_the_callers_limit(tmp_path, monkeypatch):
    """``load(path, max_bytes=...)`` is the only size check a Keras file meets: the loader does not
    check again with the default limit."""
    import fold.frontends.keras.io as keras_io
    from fold.engine.pipeline import fold_file, load

    path = tmp_path / "net.keras"
    inp = keras.Input((4, 4, 2))
    keras.Model(inp, keras.layers.BatchNormalization()(keras.layers.Conv2D(3, 1)(inp))).save(path)
    size = path.stat().st_size
    with pytest.raises(FoldError, match="limit"):
        load(path, max_bytes=size - 1)
    with pytest.raises(FoldError, match="limit"):
        fold_file(path, max_bytes=size - 1)

    def second_check(*args, **kwargs):
        raise AssertionError("the Keras loader checked the file again")

    monkeypatch.setattr(keras_io, "check_model_file", second_check)
    _, model = load(path, max_bytes=size)
    assert fold_file(path, max_bytes=size).bn_before == 1 and model.name


def test_a_custom_class_is_named_with_its_layer_and_what_to_do(tmp_path):
    """A model saved with a custom layer class and read without it (.keras and a legacy .h5): one sentence
    naming the layer and its class, that foldscope runs no code, and what to do instead."""
    @keras.saving.register_keras_serializable(package="elsewhere")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    inp = keras.Input((4,))
    model = keras.Model(inp, Doubler(name="double")(keras.layers.Dense(3, name="dense")(inp)))
    for suffix in (".keras", ".h5"):
        model.save(tmp_path / f"custom{suffix}")
    keras.saving.get_custom_objects().pop("elsewhere>Doubler")
    for suffix, cls in ((".keras", "Doubler"), (".h5", "elsewhere>Doubler")):
        with pytest.raises(UnsafeModelError) as info:
            load_model(tmp_path / f"custom{suffix}")
        assert str(info.value) == (
            f"Cannot load 'custom{suffix}': layer 'double' ({cls}) needs custom code (its class is not part of "
            "Keras), which foldscope never runs; export the model to ONNX (tf2onnx) or TFLite where that code is, "
            "and fold that file.")


def _keras2_h5(path, name: str) -> None:
    """A legacy .h5 whose input layer is named ``name``, written as Keras 2 could: Keras 3 saves it under
    another name, and the name is put back in the file's ``model_config`` attribute with h5py."""
    inp = keras.Input((6, 6, 2), name="placeholder_name")
    keras.Model(inp, keras.layers.BatchNormalization(name="bn")(keras.layers.Conv2D(3, 3, name="conv")(inp))).save(path)
    with h5py.File(path, "r+") as f:
        config = f.attrs["model_config"]
        config = config.decode() if isinstance(config, bytes) else config
        f.attrs["model_config"] = config.replace('"placeholder_name"', json.dumps(name))


def test_a_keras_2_name_keras_3_refuses_is_one_sentence_naming_the_layer(tmp_path):
    """Keras 3 refused a Keras 2 .h5 whose input is named 'cqt/mag' with its own words, cut off
    ("Exception encountered: Argument `name` must be a string and cannot contain character ...")."""
    path = tmp_path / "chords.h5"
    _keras2_h5(path, "cqt/mag")
    with pytest.raises(FoldError) as info:
        load_model(path)
    assert str(info.value) == (
        "Cannot load 'chords.h5': layer 'cqt/mag' (InputLayer) has a name Keras 3 refuses (no '/' in a Keras 3 "
        "name); rename it where the model was made and save it again, or export the model to ONNX (tf2onnx) or "
        "TFLite there, and fold that file.")
    _keras2_h5(path, "cqt_mag")  # control: the same file with a name Keras 3 takes loads
    assert load_model(path).get_layer("cqt_mag")


def test_crema_chord_model_is_refused_in_one_sentence_naming_both_reasons():
    """crema's chord model (a Keras 2.2 .h5): its input is named 'cqt/mag' and it needs crema's own
    SqueezeLayer; both are said, with what to do."""
    from tests.real_models import real_model

    with pytest.raises(UnsafeModelError) as info:
        load_model(real_model("crema_chord"))
    message = str(info.value)
    assert "\n" not in message and message.startswith("Cannot load 'model.h5': layer 'cqt/mag' (InputLayer) has a "
                                                      "name Keras 3 refuses"), message
    assert "and layer 'squeeze_layer_1' (SqueezeLayer) needs custom code" in message and message.endswith(
        "export the model to ONNX (tf2onnx) or TFLite where that code is, and fold that file."), message
