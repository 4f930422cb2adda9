"""Model files: judge a path by suffix, size and signature before any framework reads it (no TensorFlow import)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from fold.core.errors import FoldError, one_line
from fold.frontends.formats import SUFFIXES, Format, format_for

#: Largest model file foldscope reads (bytes); the app's upload limit matches it. 500 MiB, not 512:
#: Streamlit's uploader shows a limit of half a GiB or more rounded to a whole GB ("1GB per file").
MAX_MODEL_BYTES = 500 * 1024 * 1024


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


def suffix_list() -> str:
    """The accepted suffixes for a sentence: ".keras, .h5, ... or .onnx"."""
    return ", ".join(SUFFIXES[:-1]) + f" or {SUFFIXES[-1]}"


#: Largest inputs file foldscope reads (bytes).
MAX_INPUTS_BYTES = 1024 * 1024 * 1024


def read_arrays(source: str | os.PathLike | bytes, name: str | None = None) -> dict[str | None, "np.ndarray"]:
    """Arrays from a .npz (keyed by input name) or a .npy (one array, key None: the model's only
    input), without pickles; a FoldError names the file when it is not one."""
    import io

    import numpy as np

    label = name or ("the inputs file" if isinstance(source, bytes) else Path(source).name)
    try:
        if isinstance(source, bytes):
            data = source
        else:
            p = Path(source)
            if not p.is_file():
                raise FoldError(f"No such inputs file: '{p}'.")
            if p.stat().st_size > MAX_INPUTS_BYTES:
                raise FoldError(f"'{label}' is {size_pair(p.stat().st_size, MAX_INPUTS_BYTES)} limit for inputs files.")
            data = p.read_bytes()
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return {None: loaded}
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except FoldError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise FoldError(f"'{label}' is not a .npz or .npy file of arrays ({one_line(exc, 120)}).") from exc


def check_model_file(path: str | os.PathLike, max_bytes: int = MAX_MODEL_BYTES) -> Format:
    """The file's format, judged by suffix, size and signature; a FoldError says what is wrong."""
    p = Path(path)
    if not p.exists():
        raise FoldError(f"No such file: '{p}'.")
    if p.is_dir():
        raise FoldError(f"'{p}' is a directory; give a model file ({suffix_list()}).")
    fmt = format_for(p)
    suffix = p.suffix.lower()
    if fmt is None:
        raise FoldError(f"'{p.name}' is not a {suffix_list()} file (suffix '{suffix or 'none'}').")
    size = p.stat().st_size
    if size == 0:
        raise FoldError(f"'{p.name}' is empty.")
    if size > max_bytes:
        raise FoldError(f"'{p.name}' is {size_pair(size, max_bytes)} limit.")
    signature = fmt.signatures.get(suffix)
    if signature is None:
        return fmt  # protobuf has no signature; the format's parser judges the content
    try:
        with open(p, "rb") as fh:
            head = fh.read(signature.offset + len(signature.magic))
    except OSError as exc:
        raise FoldError(f"Cannot read '{p.name}': {exc.strerror}.") from exc
    valid = head[signature.offset:] == signature.magic
    if valid and signature.magic.startswith(b"PK"):
        valid = zipfile.is_zipfile(p)
    if not valid:
        raise FoldError(f"'{p.name}' is not a valid {suffix} file ({signature.what}).")
    return fmt
