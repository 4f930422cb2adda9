"""A seeded corpus of broken model files: every one must be refused with one clear line, or still load.

``corpus(tmp_dir)`` builds small valid models itself (.keras, legacy .h5, frozen .pb, .tflite, .onnx,
.circle), then writes mutants of them next to junk files, directories and wrong suffixes.
The plan (ids, file names, mutations) does not depend on the bytes of the valid models, so
``corpus_ids()`` lists the entries without building anything (cheap at test collection).

Positions are fractions of a region, drawn from one seed, and appear in the ids:
``keras-flip-cdir-0.412`` flips one bit 41.2% of the way into the zip's central directory.
A flip can land in bytes nobody checks (padding, a timestamp), so a mutant may still be a
valid model; the tests record those instead of failing on them.

    python tests/fuzz_corpus.py /tmp/corpus     # write the corpus and list it
"""

from __future__ import annotations

import io
import json
import math
import random
import re
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fold.frontend import SUFFIXES as _SUFFIXES  # every suffix foldscope accepts

SEED = 20240606
#: File written by the Lambda entries' embedded code if it ever runs (relative to the corpus dir).
LAMBDA_MARKER = "LAMBDA_CODE_RAN"
DIRECTORY = object()  # a maker's result meaning "create a directory with this name"
OVERSIZED = object()  # "a sparse .keras file one byte over fold.files.MAX_MODEL_BYTES"
_FIXED_TIME = (2024, 1, 1, 0, 0, 0)


@dataclass
class Bases:
    """The valid models every mutant starts from, as bytes, and the .keras zip's members."""

    keras: bytes
    h5: bytes
    pb: bytes
    tflite: bytes
    onnx: bytes
    circle: bytes
    members: dict[str, bytes]  # .keras members in archive order
    lambda_keras: bytes
    lambda_h5: bytes
    other_weights: bytes  # model.weights.h5 of a model with other shapes


@dataclass(frozen=True)
class Entry:
    id: str
    filename: str
    make: Callable[[Bases], bytes | object]


# -- the valid models ---------------------------------------------------------------------------

def _tiny_model(filters: int = 4, name: str = "tiny"):
    import keras
    import numpy as np

    layers = keras.layers
    inp = keras.Input((8, 8, 3), name="x")
    x = layers.BatchNormalization(name="bn0")(layers.Conv2D(filters, 3, padding="same", name="conv")(inp))
    x = layers.ReLU(name="relu")(x)
    x = layers.BatchNormalization(name="bn1")(layers.Conv2DTranspose(2, 3, strides=2, padding="same",
                                                                     name="tconv")(x))
    model = keras.Model(inp, x, name=name)
    rng = np.random.default_rng(SEED)
    for w in model.weights:
        value = rng.uniform(0.3, 3.0, w.shape) if "variance" in w.path else rng.normal(0, 0.5, w.shape)
        w.assign(value.astype(w.dtype))
    return model


def _lambda_model(marker: Path):
    import keras

    # The embedded code writes ``marker``; Keras runs it once while building the model here,
    # so the caller deletes the marker after saving. Loading must never run it again.
    writes = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), x)[1]")  # noqa: S307
    inp = keras.Input((4,), name="x")
    out = keras.layers.Dense(2, name="dense")(keras.layers.Lambda(writes, name="evil")(inp))
    return keras.Model(inp, out, name="lambda_model")


def _normalized_keras(data: bytes) -> bytes:
    """The same archive with fixed timestamps, so the corpus is byte-for-byte reproducible."""
    members = _members(data)
    meta = json.loads(members["metadata.json"])
    meta["date_saved"] = "2024-01-01@00:00:00"
    members["metadata.json"] = json.dumps(meta).encode()
    members["config.json"] = _stable_ids(members["config.json"].decode()).encode()
    return _zip(members)


def _stable_ids(config: str) -> str:
    """Keras writes ``id()`` values as shared_object_id; number them in order of appearance instead."""
    seen: dict[str, str] = {}
    return re.sub(r'"shared_object_id": (\d+)',
                  lambda m: f'"shared_object_id": {seen.setdefault(m.group(1), str(len(seen) + 1))}', config)


def _normalized_h5(path: Path) -> bytes:
    """The legacy .h5 with stable shared_object_ids (the HDF5 file itself carries no timestamps)."""
    import h5py

    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = _stable_ids(f.attrs["model_config"])
    return path.read_bytes()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, content in members.items():
            zf.writestr(zipfile.ZipInfo(name, _FIXED_TIME), content, compress_type=compression)
    return buffer.getvalue()


def _saved(model, path: Path) -> bytes:
    import contextlib
    import logging

    with contextlib.redirect_stdout(io.StringIO()):
        logging.getLogger("absl").disabled = True  # the "HDF5 is legacy" notice
        try:
            model.save(path)
        finally:
            logging.getLogger("absl").disabled = False
    return path.read_bytes()


def build_bases(tmp_dir: Path) -> Bases:
    """Build and save the valid models (needs TensorFlow; a few seconds)."""
    from fold.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from demo.seed import graph_def as seed_graph_def
    from fold.frontends.keras.io import to_tflite as keras_to_tflite

    work = Path(tmp_dir) / "_bases"
    work.mkdir(parents=True, exist_ok=True)
    model = _tiny_model()
    keras_bytes = _normalized_keras(_saved(model, work / "tiny.keras"))
    _saved(model, work / "tiny.h5")
    h5_bytes = _normalized_h5(work / "tiny.h5")
    other = _members(_saved(_tiny_model(filters=5, name="other"), work / "other.keras"))["model.weights.h5"]
    marker = Path(tmp_dir) / LAMBDA_MARKER
    lam = _lambda_model(marker)
    lambda_keras = _normalized_keras(_saved(lam, work / "lambda.keras"))
    _saved(lam, work / "lambda.h5")
    lambda_h5 = _normalized_h5(work / "lambda.h5")
    marker.unlink(missing_ok=True)
    from demo.onnx_zoo import text_detector_head

    return Bases(keras_bytes, h5_bytes, seed_graph_def().SerializeToString(deterministic=True),
                 keras_to_tflite(model), text_detector_head(channels=8).SerializeToString(), _circle_base(),
                 _members(keras_bytes), lambda_keras, lambda_h5, other)


def _circle_base() -> bytes:
    """A TRANSPOSE_CONV (stride 2, SAME, a bias) -> MUL -> ADD(RELU6) circle model, as ONE's recipes are."""
    from fold.frontends.circle.model import CIRCLE_SCHEMA
    from tests.tflite_support import TConvCase, tconv_bn

    return tconv_bn(TConvCase(cin=3, cout=4, stride=2, padding="SAME", bias=True, act="RELU6"), SEED,
                    CIRCLE_SCHEMA)[0]


def _circle_code(data: bytes, deprecated: int | None = None, builtin: int | None = None) -> bytes:
    """The circle model with its first operator code's two fields set (None: left)."""
    from fold.frontends.circle.model import CIRCLE_SCHEMA

    tree = CIRCLE_SCHEMA.parse(data)
    code = tree.operatorCodes[0]
    code.deprecatedBuiltinCode = code.deprecatedBuiltinCode if deprecated is None else deprecated
    code.builtinCode = code.builtinCode if builtin is None else builtin
    return CIRCLE_SCHEMA.pack(tree)


# -- mutations ----------------------------------------------------------------------------------

def _flip(data: bytes, offset: int, bit: int) -> bytes:
    out = bytearray(data)
    out[offset % len(out)] ^= 1 << bit
    return bytes(out)


def _zip_regions(data: bytes) -> dict[str, tuple[int, int]]:
    """Byte ranges [start, end) of the parts of a stored zip archive."""
    eocd = data.rindex(b"PK\x05\x06")
    cd_size, cd_start = struct.unpack("<II", data[eocd + 12:eocd + 20])
    regions = {"cdir": (cd_start, cd_start + cd_size), "eocd": (eocd, len(data))}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
            start = info.header_offset + 30 + name_len + extra_len
            regions[f"local-{info.filename}"] = (info.header_offset, start)
            regions[info.filename] = (start, start + info.compress_size)
    return regions


def _at(region: tuple[int, int], fraction: float) -> int:
    start, end = region
    return start + min(end - start - 1, int(fraction * (end - start)))


def _with_member_flag(data: bytes, member: str, flag: int = 0, method: int | None = None) -> bytes:
    """Set a general-purpose flag bit (e.g. 0: encrypted) or the compression method of one member,
    in both its local header and its central directory record."""
    out = bytearray(data)
    regions = _zip_regions(data)
    local = regions[f"local-{member}"][0]
    cd_start, cd_end = regions["cdir"]
    central, pos = None, cd_start
    while pos < cd_end:  # find this member's central record
        name_len, extra_len, comment_len = struct.unpack("<HHH", data[pos + 28:pos + 34])
        if data[pos + 46:pos + 46 + name_len].decode() == member:
            central = pos
            break
        pos += 46 + name_len + extra_len + comment_len
    for flags_at, method_at in ((local + 6, local + 8), (central + 8, central + 10)):
        if flag:
            struct.pack_into("<H", out, flags_at, struct.unpack_from("<H", out, flags_at)[0] | flag)
        if method is not None:
            struct.pack_into("<H", out, method_at, method)
    return bytes(out)


def _rezip(b: Bases, **replace: bytes | None) -> bytes:
    """The base .keras archive with members replaced (valid CRCs) or, for None, removed."""
    names = {"config": "config.json", "metadata": "metadata.json", "weights": "model.weights.h5"}
    members = dict(b.members)
    for key, content in replace.items():
        name = names.get(key, key)
        if content is None:
            members.pop(name, None)
        else:
            members[name] = content
    return _zip(members)


def _config(b: Bases) -> dict:
    return json.loads(b.members["config.json"])


def _edit_layer(b: Bases, layer: str, **changes) -> bytes:
    """config.json with the named layer's config (or, for class_name/module, its record) changed."""
    config = _config(b)
    for record in config["config"]["layers"]:
        if record["config"].get("name") == layer:
            for key, value in changes.items():
                target = record if key in ("class_name", "module", "registered_name") else record["config"]
                target[key] = value
    return json.dumps(config).encode()


def _h5_without_model_config() -> bytes:
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_group("model_weights").create_dataset("kernel", data=[1.0, 2.0])
    return buffer.getvalue()


def _h5_with_config(config: str | bytes) -> bytes:
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.attrs["model_config"] = config
        f.attrs["keras_version"] = "3.0.0"
        f.attrs["backend"] = "tensorflow"
        f.create_group("model_weights")
    return buffer.getvalue()


# -- the plan -----------------------------------------------------------------------------------

def _fractions(rng: random.Random, n: int) -> list[float]:
    return sorted({round(rng.random(), 3) for _ in range(n)})


def plan() -> list[Entry]:
    """Every corpus entry: id, file name and how to make its content from the valid models."""
    rng = random.Random(SEED)
    entries: list[Entry] = []

    def add(id_: str, filename: str, make: Callable[[Bases], bytes | object]) -> None:
        entries.append(Entry(id_, filename, make))

    # Truncated .keras: structural cut points, then seeded fractions of the file.
    for label, cut in (("1-byte", lambda n: 1), ("4-bytes-magic-only", lambda n: 4),
                       ("in-first-local-header", lambda n: 20), ("no-eocd", lambda n: n - 22),
                       ("half-eocd", lambda n: n - 11), ("last-byte", lambda n: n - 1)):
        add(f"keras-truncated-{label}", "truncated.keras", lambda b, cut=cut: b.keras[:cut(len(b.keras))])
    for f in _fractions(rng, 28):
        add(f"keras-truncated-{f:.3f}", "truncated.keras", lambda b, f=f: b.keras[:max(1, int(f * len(b.keras)))])
    for member in ("config.json", "model.weights.h5"):  # cut right inside a member's data
        add(f"keras-truncated-in-{member}", "truncated.keras",
            lambda b, m=member: b.keras[:_at(_zip_regions(b.keras)[m], 0.5)])

    # Bit-flipped .keras (raw: CRCs no longer match), by region.
    for region, n in (("cdir", 16), ("eocd", 6), ("local-config.json", 5), ("config.json", 14),
                      ("model.weights.h5", 16), ("metadata.json", 3)):
        for f in _fractions(rng, n):
            bit = rng.randrange(8)
            add(f"keras-flip-{region}-{f:.3f}-bit{bit}", "flipped.keras",
                lambda b, r=region, f=f, bit=bit: _flip(b.keras, _at(_zip_regions(b.keras)[r], f), bit))
    for k in range(4):  # many flips at once, anywhere
        flips = [(rng.random(), rng.randrange(8)) for _ in range(16)]

        def multi(b: Bases, flips=flips) -> bytes:
            data = b.keras
            for f, bit in flips:
                data = _flip(data, int(f * len(data)), bit)
            return data
        add(f"keras-flip-16-anywhere-{k}", "flipped.keras", multi)

    # Mutated members re-zipped with valid CRCs: the damage reaches the JSON and HDF5 parsers.
    for f in _fractions(rng, 10):
        bit = rng.randrange(8)
        add(f"keras-config-flip-valid-crc-{f:.3f}-bit{bit}", "config_flip.keras",
            lambda b, f=f, bit=bit: _rezip(b, config=_flip(b.members["config.json"],
                                                           int(f * len(b.members["config.json"])), bit)))
    for f in _fractions(rng, 12):
        bit = rng.randrange(8)
        add(f"keras-weights-flip-valid-crc-{f:.3f}-bit{bit}", "weights_flip.keras",
            lambda b, f=f, bit=bit: _rezip(b, weights=_flip(b.members["model.weights.h5"],
                                                            int(f * len(b.members["model.weights.h5"])), bit)))
    for f in (0.01, 0.1, 0.5, 0.9):
        add(f"keras-weights-truncated-{f}", "weights_cut.keras",
            lambda b, f=f: _rezip(b, weights=b.members["model.weights.h5"][:int(f * len(b.members["model.weights.h5"]))]))

    # Wrong config.json.
    bad_json = {
        "invalid-json-open-brace": b"{", "invalid-json-empty": b"", "invalid-json-trailing-garbage": None,
        "invalid-json-half": None, "invalid-utf8": b"\xff\xfe\x00{\x00}", "invalid-json-nan-key": b"{NaN: 1}",
    }
    for label, content in bad_json.items():
        if label == "invalid-json-trailing-garbage":
            make = lambda b: _rezip(b, config=b.members["config.json"] + b"}}garbage")  # noqa: E731
        elif label == "invalid-json-half":
            make = lambda b: _rezip(b, config=b.members["config.json"][:len(b.members["config.json"]) // 2])  # noqa: E731
        else:
            make = lambda b, c=content: _rezip(b, config=c)  # noqa: E731
        add(f"keras-config-{label}", "bad_config.keras", make)
    wrong_shape = {
        "list": [], "number": 42, "string": "Functional", "null": None, "empty-object": {},
        "no-config": {"class_name": "Functional"}, "config-is-list": {"class_name": "Functional", "config": []},
        "no-class-name": {"config": {"name": "x", "layers": []}},
        "layers-is-dict": {"class_name": "Functional", "config": {"name": "x", "layers": {}}},
        "no-layers": {"class_name": "Functional", "module": "keras.src.models.functional",
                      "config": {"name": "x", "input_layers": [], "output_layers": []}},
        "class-name-is-number": {"class_name": 7, "config": {}},
        "plain-dense-layer": {"module": "keras.layers", "class_name": "Dense", "config": {"units": 3}},
    }
    for label, value in wrong_shape.items():
        add(f"keras-config-shape-{label}", "bad_config.keras", lambda b, v=value: _rezip(b, config=json.dumps(v).encode()))

    def config_with(mutate: Callable[[dict], None]) -> Callable[[Bases], bytes]:
        def make(b: Bases) -> bytes:
            config = _config(b)
            mutate(config)
            return _rezip(b, config=json.dumps(config).encode())
        return make

    layers_of = lambda c: c["config"]["layers"]  # noqa: E731
    add("keras-config-unknown-model-class", "unknown.keras",
        config_with(lambda c: c.update(class_name="EvilModel", module="evil.models")))
    add("keras-config-unknown-layer-class", "unknown.keras",
        lambda b: _rezip(b, config=_edit_layer(b, "conv", class_name="MyCustomConv", module=None,
                                               registered_name="Custom>MyCustomConv")))
    add("keras-config-layer-module-os-system", "unknown.keras",
        lambda b: _rezip(b, config=_edit_layer(b, "conv", class_name="system", module="os")))
    add("keras-config-layer-module-builtins-eval", "unknown.keras",
        lambda b: _rezip(b, config=_edit_layer(b, "conv", class_name="eval", module="builtins")))
    add("keras-config-activation-os-system", "unknown.keras",
        lambda b: _rezip(b, config=_edit_layer(b, "conv", activation={"module": "os", "class_name": "system",
                                                                       "config": "touch /tmp/x"})))
    add("keras-config-lambda-layer", "lambda.keras", lambda b: b.lambda_keras)
    add("keras-config-lambda-transplanted", "lambda.keras",
        lambda b: _rezip(b, config=_members(b.lambda_keras)["config.json"]))
    add("keras-config-nesting-list-100k", "deep.keras", lambda b: _rezip(b, config=b"[" * 100_000 + b"]" * 100_000))
    add("keras-config-nesting-dict-50k", "deep.keras",
        lambda b: _rezip(b, config=b'{"a":' * 50_000 + b"1" + b"}" * 50_000))

    def deep_initializer(b: Bases) -> bytes:  # a real model config with one value nested 3000 deep
        config = _config(b)
        layers_of(config)[1]["config"]["kernel_initializer"] = "@DEEP@"
        text = json.dumps(config).replace('"@DEEP@"', '{"config": ' * 3000 + "1" + "}" * 3000)
        return _rezip(b, config=text.encode())
    add("keras-config-nesting-model-3k", "deep.keras", deep_initializer)
    add("keras-config-filters-negative", "bad_args.keras", lambda b: _rezip(b, config=_edit_layer(b, "conv", filters=-1)))
    add("keras-config-filters-string", "bad_args.keras", lambda b: _rezip(b, config=_edit_layer(b, "conv", filters="four")))
    add("keras-config-filters-mismatch-weights", "bad_args.keras",
        lambda b: _rezip(b, config=_edit_layer(b, "conv", filters=6)))
    add("keras-config-kernel-size-zero", "bad_args.keras", lambda b: _rezip(b, config=_edit_layer(b, "conv", kernel_size=[0, 0])))
    add("keras-config-padding-bogus", "bad_args.keras", lambda b: _rezip(b, config=_edit_layer(b, "conv", padding="bogus")))
    add("keras-config-strides-zero", "bad_args.keras", lambda b: _rezip(b, config=_edit_layer(b, "conv", strides=[0, 0])))
    add("keras-config-dtype-bogus", "bad_args.keras", lambda b: _rezip(b, config=_edit_layer(b, "conv", dtype="complex999")))
    add("keras-config-input-shape-negative", "bad_args.keras",
        lambda b: _rezip(b, config=_edit_layer(b, "x", batch_shape=[None, -8, 8, 3])))
    add("keras-config-input-channels-mismatch", "bad_args.keras",
        lambda b: _rezip(b, config=_edit_layer(b, "x", batch_shape=[None, 8, 8, 5])))
    add("keras-config-inbound-unknown-layer", "bad_args.keras",
        config_with(lambda c: layers_of(c)[1]["inbound_nodes"][0]["args"][0]["config"].update(
            keras_history=["nowhere", 0, 0])))
    add("keras-config-output-unknown-layer", "bad_args.keras",
        config_with(lambda c: c["config"].update(output_layers=[["nowhere", 0, 0]])))
    add("keras-config-duplicate-layer-names", "bad_args.keras",
        config_with(lambda c: layers_of(c)[3]["config"].update(name="conv")))
    add("keras-config-whitespace-padded-valid", "padded.keras",
        lambda b: _rezip(b, config=b" " * 2_000_000 + b.members["config.json"]))

    # Other broken archives.
    add("keras-zip-missing-config", "no_config.keras", lambda b: _rezip(b, config=None))
    add("keras-zip-missing-weights", "no_weights.keras", lambda b: _rezip(b, weights=None))
    add("keras-zip-missing-metadata", "no_metadata.keras", lambda b: _rezip(b, metadata=None))
    add("keras-zip-only-metadata", "only_meta.keras", lambda b: _zip({"metadata.json": b.members["metadata.json"]}))
    add("keras-zip-empty-archive", "empty_zip.keras", lambda b: _zip({}))
    add("keras-zip-directory-entries-only", "dirs.keras", lambda b: _zip({"config.json/": b"", "model.weights.h5/": b""}))
    add("keras-zip-text-member", "text_zip.keras", lambda b: _zip({"readme.txt": b"not a model\n"}))
    add("keras-zip-weights-random-bytes", "weights_junk.keras",
        lambda b: _rezip(b, weights=random.Random(SEED + 1).randbytes(4096)))
    add("keras-zip-weights-of-other-model", "weights_other.keras", lambda b: _rezip(b, weights=b.other_weights))
    add("keras-zip-weights-empty-hdf5", "weights_empty.keras", lambda b: _rezip(b, weights=_h5_without_model_config()))
    add("keras-zip-metadata-invalid-json", "bad_meta.keras", lambda b: _rezip(b, metadata=b"{not json"))
    add("keras-zip-metadata-future-version", "future.keras",
        lambda b: _rezip(b, metadata=b'{"keras_version": "99.0.0", "date_saved": "2099-01-01@00:00:00"}'))
    add("keras-zip-path-traversal-member", "traversal.keras",
        lambda b: _zip({**b.members, "../../foldscope_traversal.txt": b"escaped"}))
    add("keras-zip-deflated-valid", "deflated.keras", lambda b: _zip(b.members, zipfile.ZIP_DEFLATED))
    add("keras-zip-encrypted-flag-config", "encrypted.keras", lambda b: _with_member_flag(b.keras, "config.json", flag=1))
    add("keras-zip-encrypted-flag-weights", "encrypted.keras",
        lambda b: _with_member_flag(b.keras, "model.weights.h5", flag=1))
    add("keras-zip-unknown-compression-config", "method.keras",
        lambda b: _with_member_flag(b.keras, "config.json", method=99))
    add("keras-zip-unknown-compression-weights", "method.keras",
        lambda b: _with_member_flag(b.keras, "model.weights.h5", method=99))
    add("keras-zip-bomb-declared-size", "bomb.keras",
        lambda b: _declared_size(b.keras, "model.weights.h5", 0xFFFFFFF0))
    add("keras-is-hdf5-content", "really_h5.keras", lambda b: b.h5)
    add("keras-uppercase-suffix-valid", "UPPER.KERAS", lambda b: b.keras)

    # Legacy .h5.
    for f in _fractions(rng, 12):
        add(f"h5-truncated-{f:.3f}", "truncated.h5", lambda b, f=f: b.h5[:max(1, int(f * len(b.h5)))])
    add("h5-truncated-after-signature", "truncated.h5", lambda b: b.h5[:8])
    add("h5-flip-signature", "flipped.h5", lambda b: _flip(b.h5, 3, 0))
    for f in _fractions(rng, 6):  # the superblock: the first 96 bytes
        bit = rng.randrange(8)
        add(f"h5-flip-superblock-{f:.3f}-bit{bit}", "flipped.h5",
            lambda b, f=f, bit=bit: _flip(b.h5, 8 + int(f * 88), bit))
    for f in _fractions(rng, 6):  # the model_config attribute's JSON
        bit = rng.randrange(8)

        def in_config(b: Bases, f=f, bit=bit) -> bytes:
            start = b.h5.index(b'{"module"') if b'{"module"' in b.h5 else b.h5.index(b'{"class_name"')
            return _flip(b.h5, start + int(f * 1500), bit)
        add(f"h5-flip-model-config-{f:.3f}-bit{bit}", "flipped.h5", in_config)
    for f in _fractions(rng, 14):
        bit = rng.randrange(8)
        add(f"h5-flip-{f:.3f}-bit{bit}", "flipped.h5", lambda b, f=f, bit=bit: _flip(b.h5, int(f * len(b.h5)), bit))
    add("h5-no-model-config", "weights_only.h5", lambda b: _h5_without_model_config())
    add("h5-model-config-invalid-json", "bad_config.h5", lambda b: _h5_with_config("{not json"))
    add("h5-model-config-wrong-shape", "bad_config.h5", lambda b: _h5_with_config("[1, 2, 3]"))
    add("h5-model-config-unknown-class", "unknown.h5",
        lambda b: _h5_with_config(json.dumps({"class_name": "EvilModel", "config": {"name": "x", "layers": []}})))
    add("h5-model-config-no-weights", "no_weights.h5",
        lambda b: _h5_with_config(json.dumps(_config(b))))
    add("h5-lambda-layer", "lambda.h5", lambda b: b.lambda_h5)
    add("h5-is-zip-content", "really_zip.h5", lambda b: b.keras)
    add("hdf5-suffix-truncated", "truncated.hdf5", lambda b: b.h5[: len(b.h5) // 3])

    # Frozen .pb.
    for f in _fractions(rng, 10):
        add(f"pb-truncated-{f:.3f}", "truncated.pb", lambda b, f=f: b.pb[:max(1, int(f * len(b.pb)))])
    for f in _fractions(rng, 14):
        bit = rng.randrange(8)
        add(f"pb-flip-{f:.3f}-bit{bit}", "flipped.pb", lambda b, f=f, bit=bit: _flip(b.pb, int(f * len(b.pb)), bit))
    add("pb-is-keras-zip", "really_zip.pb", lambda b: b.keras)
    add("pb-is-tflite", "really_tflite.pb", lambda b: b.tflite)

    # .tflite.
    for f in _fractions(rng, 10):
        add(f"tflite-truncated-{f:.3f}", "truncated.tflite",
            lambda b, f=f: b.tflite[:max(1, int(f * len(b.tflite)))])
    add("tflite-truncated-8-bytes", "truncated.tflite", lambda b: b.tflite[:8])
    for f in _fractions(rng, 18):
        bit = rng.randrange(8)
        add(f"tflite-flip-{f:.3f}-bit{bit}", "flipped.tflite",
            lambda b, f=f, bit=bit: _flip(b.tflite, int(f * len(b.tflite)), bit))
    for f in _fractions(rng, 4):  # the root table offset and its vtable: the first 32 bytes
        add(f"tflite-flip-header-{f:.3f}", "flipped.tflite", lambda b, f=f: _flip(b.tflite, int(f * 32), 7))

    # .onnx.
    for f in _fractions(rng, 10):
        add(f"onnx-truncated-{f:.3f}", "truncated.onnx", lambda b, f=f: b.onnx[:max(1, int(f * len(b.onnx)))])
    for f in _fractions(rng, 14):
        bit = rng.randrange(8)
        add(f"onnx-flip-{f:.3f}-bit{bit}", "flipped.onnx",
            lambda b, f=f, bit=bit: _flip(b.onnx, int(f * len(b.onnx)), bit))
    add("onnx-is-keras-zip", "really_zip.onnx", lambda b: b.keras)
    add("onnx-is-tflite", "really_tflite.onnx", lambda b: b.tflite)
    add("onnx-is-graphdef", "really_graphdef.onnx", lambda b: b.pb)
    for location in ("../outside.bin", "/etc/passwd", "sub/../../outside.bin", "missing.bin"):
        add(f"onnx-external-data-{location.replace('/', '_')}", "external.onnx",
            lambda b, location=location: _onnx_with_external(b.onnx, location))

    # .circle.
    for f in _fractions(rng, 8):
        add(f"circle-truncated-{f:.3f}", "truncated.circle",
            lambda b, f=f: b.circle[:max(1, int(f * len(b.circle)))])
    for f in _fractions(rng, 14):
        bit = rng.randrange(8)
        add(f"circle-flip-{f:.3f}-bit{bit}", "flipped.circle",
            lambda b, f=f, bit=bit: _flip(b.circle, int(f * len(b.circle)), bit))
    for f in _fractions(rng, 3):
        add(f"circle-flip-header-{f:.3f}", "flipped.circle", lambda b, f=f: _flip(b.circle, int(f * 32), 7))
    add("circle-is-tflite", "really_tflite.circle", lambda b: b.tflite)
    add("tflite-is-circle", "really_circle.tflite", lambda b: b.circle)
    add("circle-code-two-operators", "codes.circle", lambda b: _circle_code(b.circle, builtin=18))
    add("circle-code-placeholder-below-127", "codes.circle", lambda b: _circle_code(b.circle, deprecated=127))
    add("circle-code-unknown", "codes.circle", lambda b: _circle_code(b.circle, deprecated=-100, builtin=0))

    # Junk of every suffix.
    junk = random.Random(SEED + 2)
    for suffix in _SUFFIXES:
        add(f"empty{suffix}", f"empty{suffix}", lambda b: b"")
        add(f"text{suffix}", f"notes{suffix}", lambda b: b"this is not a model, just some notes\n" * 3)
        for size in (16, 4096):
            data = junk.randbytes(size)
            add(f"random-{size}B{suffix}", f"random{suffix}", lambda b, d=data: d)
    for magic, suffix in ((b"PK\x03\x04", ".keras"), (b"\x89HDF\r\n\x1a\n", ".h5"), (b"\0\0\0\0TFL3", ".tflite"),
                          (b"\0\0\0\0CIR0", ".circle")):
        for size in (64, 4096):
            data = magic + junk.randbytes(size)
            add(f"magic-then-random-{size}B{suffix}", f"magic{suffix}", lambda b, d=data: d)

    # Not model files at all.
    for suffix in (".keras", ".h5", ".pb", ".tflite", ".onnx", ".circle"):
        add(f"directory-named{suffix}", f"x{suffix}", lambda b: DIRECTORY)
    for name in ("model.pt", "model.pth", "model", "model.keras.bak", "model.zip", "config.json"):
        add(f"unsupported-suffix-{name}", name,
            lambda b, name=name: b.members["config.json"] if name == "config.json" else b.keras)
    add("oversized-sparse.keras", "huge.keras", lambda b: OVERSIZED)
    return entries


def _onnx_with_external(data: bytes, location: str) -> bytes:
    """The ONNX base with its first initializer moved to external data at ``location``."""
    import onnx

    model = onnx.ModelProto()
    model.ParseFromString(data)
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    del tensor.float_data[:]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(4 * math.prod(tensor.dims)))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


def _declared_size(data: bytes, member: str, size: int) -> bytes:
    """The archive with one member's uncompressed size field set to ``size`` (a lying header)."""
    out = bytearray(data)
    regions = _zip_regions(data)
    struct.pack_into("<I", out, regions[f"local-{member}"][0] + 22, size)
    pos, end = regions["cdir"]
    while pos < end:
        name_len, extra_len, comment_len = struct.unpack("<HHH", data[pos + 28:pos + 34])
        if data[pos + 46:pos + 46 + name_len].decode() == member:
            struct.pack_into("<I", out, pos + 24, size)
        pos += 46 + name_len + extra_len + comment_len
    return bytes(out)


def corpus_ids() -> list[str]:
    """The ids of ``corpus()``'s entries, in order, without building anything."""
    return [entry.id for entry in plan()]


def corpus(tmp_dir: str | Path) -> list[tuple[str, Path]]:
    """Write every entry under ``tmp_dir`` (one sub-directory each) and return (id, path) pairs."""
    tmp_dir = Path(tmp_dir)
    bases = build_bases(tmp_dir)
    out: list[tuple[str, Path]] = []
    for i, entry in enumerate(plan()):
        path = tmp_dir / f"{i:03d}" / entry.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        content = entry.make(bases)
        if content is DIRECTORY:
            path.mkdir(exist_ok=True)
            (path / "config.json").write_bytes(bases.members["config.json"])
        elif content is OVERSIZED:
            from fold.files import MAX_MODEL_BYTES

            with open(path, "wb") as fh:  # sparse: no disk space used
                fh.write(bases.keras[:64])
                fh.truncate(MAX_MODEL_BYTES + 1)
        else:
            path.write_bytes(content)
        out.append((entry.id, path))
    ids = [i for i, _ in out]
    assert len(set(ids)) == len(ids), "corpus ids must be unique"
    return out


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, for ``fold``
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "fuzz_corpus")
    for entry_id, path in corpus(target):
        size = "dir" if path.is_dir() else f"{path.stat().st_size} B"
        print(f"{entry_id:55s} {size:>10s}  {path}")
