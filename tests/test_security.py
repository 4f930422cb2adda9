"""Model files never run code: Lambda layers and unknown classes are refused, and the payload never runs."""

from __future__ import annotations

import base64
import json
import marshal
import tomllib
from pathlib import Path

import h5py
import keras
import pytest

from fold.errors import FoldError, UnsafeModelError
from fold.files import MAX_MODEL_BYTES, check_model_file
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
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == MAX_MODEL_BYTES


def test_a_keras_file_is_judged_once_against_the_callers_limit(tmp_path, monkeypatch):
    """``load(path, max_bytes=...)`` is the only size check a Keras file meets: the loader does not
    check again with the default limit."""
    import fold.frontends.keras.io as keras_io
    from fold.pipeline import fold_file, load

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
