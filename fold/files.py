"""Model files: judge a path by suffix and content before any framework reads it (no TensorFlow import)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from fold.errors import FoldError

#: Largest model file foldscope reads (bytes); the app's upload limit matches it.
MAX_MODEL_BYTES = 512 * 1024 * 1024

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
_TFLITE_IDENTIFIER = b"TFL3"
#: Model file suffixes foldscope reads: Keras (.keras, .h5), frozen TF graphs (.pb), TFLite.
SUFFIXES = (".keras", ".h5", ".hdf5", ".pb", ".tflite")


def human_size(n: int) -> str:
    """Bytes as B, KiB, MiB or GiB with at most one decimal."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{n} B"


def size_pair(size: int, limit: int) -> str:
    """"X, over the Y" with enough precision that X and Y never read the same."""
    if human_size(size) == human_size(limit):
        return f"{size:,} bytes, over the {limit:,} byte"
    return f"{human_size(size)}, over the {human_size(limit)}"


def check_model_file(path: str | os.PathLike, max_bytes: int = MAX_MODEL_BYTES) -> str:
    """The file's format ("keras", "h5", "pb" or "tflite") judged by suffix and content, or a FoldError."""
    p = Path(path)
    if not p.exists():
        raise FoldError(f"No such file: '{p}'.")
    if p.is_dir():
        raise FoldError(f"'{p}' is a directory; give a .keras or .h5 model file.")
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise FoldError(f"'{p.name}' is not a {', '.join(SUFFIXES)} file (suffix '{suffix or 'none'}').")
    size = p.stat().st_size
    if size == 0:
        raise FoldError(f"'{p.name}' is empty.")
    if size > max_bytes:
        raise FoldError(f"'{p.name}' is {size_pair(size, max_bytes)} limit.")
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise FoldError(f"Cannot read '{p.name}': {exc.strerror}.") from exc
    if suffix == ".pb":
        return "pb"  # protobuf has no signature; the GraphDef parser judges the content
    if suffix == ".tflite":
        if head[4:8] != _TFLITE_IDENTIFIER:
            raise FoldError(f"'{p.name}' is not a valid .tflite file (no TFL3 identifier).")
        return "tflite"
    if suffix == ".keras":
        if not head.startswith(_ZIP_MAGIC) or not zipfile.is_zipfile(p):
            raise FoldError(f"'{p.name}' is not a valid .keras file (not a zip archive).")
        return "keras"
    if head != _HDF5_MAGIC:
        raise FoldError(f"'{p.name}' is not a valid .h5 file (no HDF5 signature).")
    return "h5"
