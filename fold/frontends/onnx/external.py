"""ONNX frontend, external data: a model's tensors read lazily from their files, the tensors a fold
makes kept in a scratch file, and the model written with a data file of its own.

A model whose tensors live in other files (the only way past protobuf's 2 GB) is never loaded
whole. Its graph is read without data; a tensor is a read-only view of a memory map of its file
(``location``, ``offset``, ``length``), so only the pages a fold reads come in, and ``release``
lets them go again. A tensor the rewrite makes is appended to a scratch file in a temporary
folder (removed with the ``ExternalData``) and is itself an external tensor of the folded model.
``write`` copies every external tensor, one range at a time, into ``OUT.data`` beside ``OUT`` (a
relative location), so the written model never refers to its input's files. onnxruntime reads
the original tensors from the model's folder itself (mapping them); the scratch tensors, and the
ones a derived model holds in memory (``held_tensor``), are fed to it as inputs at each run
(``fed``), views of their map or arrays: any initializer handed to onnxruntime is copied.
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from fold.core.errors import FoldError

#: Offsets of tensors of a page or more in a written data file are multiples of a page (onnxruntime
#: maps such tensors); smaller ones, of SMALL_ALIGN.
ALIGN, SMALL_ALIGN = 4096, 64
#: Bytes copied at a time when the kernel cannot copy a range itself.
CHUNK = 64 * 1024 * 1024
#: Bytes of a new tensor written at a time: 3 GiB written in 256 MiB writes took 7.5 s where 8 MiB
#: writes took 0.95 s (ext4, the page cache holding it); in the fold of the 3 GiB model, 4.6-7.2 s of
#: writes became 3.3-3.4 s.
WRITE = 8 * 1024 * 1024


def tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of a graph: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sub in [*([attr.g] if attr.HasField("g") else []), *attr.graphs]:
                yield from tensors(sub)


def model_tensors(proto: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of a model, its functions' included."""
    yield from tensors(proto.graph)
    for function in proto.functions:
        yield from tensors(onnx.GraphProto(node=function.node))


def is_external(tensor: onnx.TensorProto) -> bool:
    return tensor.data_location == onnx.TensorProto.EXTERNAL


#: The location of a tensor whose value is held in memory by its model (``OnnxModel.arrays``): no file
#: can have it (a ':' is refused in a model's own locations).
HELD = "foldscope:held"


def held_tensor(value: np.ndarray, name: str) -> onnx.TensorProto:
    """The stand-in, in a proto, for an initializer ``name`` whose value its model holds in memory."""
    tensor = onnx.TensorProto()
    tensor.name = name
    tensor.data_type = onnx.helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype)
    tensor.dims.extend(np.shape(value))
    tensor.data_location = onnx.TensorProto.EXTERNAL
    _set_entries(tensor, HELD, 0, np.asarray(value).nbytes)
    return tensor


def is_held(tensor: onnx.TensorProto) -> bool:
    return is_external(tensor) and _entries(tensor).get("location") == HELD


def _entries(tensor: onnx.TensorProto) -> dict[str, str]:
    return {e.key: e.value for e in tensor.external_data}


def _set_entries(tensor: onnx.TensorProto, location: str, offset: int, length: int) -> None:
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


class ExternalData:
    """Where the external tensors of one model file and of every model derived from it live: the
    model's folder (locations are relative to it) and one scratch file for the tensors a fold makes."""

    def __init__(self, folder: Path, name: str):
        self.folder = Path(folder)
        self.name = name
        self._maps: dict[Path, mmap.mmap] = {}
        self._places: dict[str, Path] = {}  # scratch location -> the file that holds it
        self._current: str | None = None  # the scratch location new tensors go to
        self._stored: dict[str, set[int]] = {}  # the offsets written to each scratch location
        self.files: set[Path] = set()  # every file read from, so that no output overwrites one

    # -- reading ------------------------------------------------------------------------------

    def source(self, tensor: onnx.TensorProto) -> tuple[Path, int, int]:
        """(file, offset, length) of an external tensor; a FoldError when the range is not in the file."""
        entries = _entries(tensor)
        location = entries.get("location", "")
        path = self._places.get(location) or self.folder / location
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise FoldError(f"Cannot read the external data of '{self.name}': '{location}' ({exc.strerror}).") from exc
        offset = int(entries.get("offset", 0) or 0)
        length = int(entries["length"]) if entries.get("length") else size - offset
        if offset < 0 or length < 0 or offset + length > size:
            raise FoldError(f"'{self.name}' says tensor '{tensor.name}' is bytes {offset} to {offset + length} of "
                            f"'{location}', which holds {size} bytes.")
        self.files.add(path)
        return path, offset, length

    def _map(self, path: Path, end: int) -> mmap.mmap:
        """A read-only map of ``path`` reaching at least ``end`` (the scratch file grows: map it again)."""
        found = self._maps.get(path)
        if found is None or len(found) < end:
            with open(path, "rb") as fh:
                found = self._maps[path] = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        return found

    def array(self, tensor: onnx.TensorProto) -> np.ndarray:
        """An external tensor's value: a read-only view of its file's map (nothing read until used)."""
        path, offset, length = self.source(tensor)
        dims = tuple(int(d) for d in tensor.dims)
        count = int(np.prod(dims, dtype=np.int64))
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))
        if length == 0 and count == 0:
            return np.zeros(dims, dtype)
        data = self._map(path, offset + length)
        if dtype.kind in "biufc" and count * dtype.itemsize == length:
            return np.frombuffer(data, dtype.newbyteorder("<"), count, offset).reshape(dims)
        inline = onnx.TensorProto()  # packed or unusual types: onnx's own decoding of the bytes
        inline.CopyFrom(tensor)
        inline.data_location = onnx.TensorProto.DEFAULT
        del inline.external_data[:]
        inline.raw_data = data[offset:offset + length]
        return numpy_helper.to_array(inline)

    def release(self) -> None:
        """Let the pages read so far go (the maps stay valid: a page read again comes back from disk)."""
        for data in self._maps.values():
            if len(data):
                data.madvise(mmap.MADV_DONTNEED)

    # -- the scratch file ---------------------------------------------------------------------

    def _scratch_file(self) -> tuple[str, Path]:
        """The current scratch location and its file (a new one after ``write`` adopted the last)."""
        if self._current is None:
            folder = tempfile.mkdtemp(prefix="foldscope-")
            weakref.finalize(self, shutil.rmtree, folder, True)
            self._current = f"foldscope-scratch-{os.path.basename(folder)}.data"
            self._places[self._current] = Path(folder) / "folded.data"
            self._places[self._current].touch()
            self._stored[self._current] = set()
        return self._current, self._places[self._current]

    def store(self, value: np.ndarray, name: str) -> onnx.TensorProto:
        """A new tensor ``name`` holding ``value``, written to the scratch file (little-endian, C order)."""
        array = np.ascontiguousarray(value)
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        location, path = self._scratch_file()
        with open(path, "r+b") as fh:
            offset = _aligned(fh.seek(0, os.SEEK_END), array.nbytes)
            fh.seek(offset)
            data = memoryview(array.reshape(-1).view(np.uint8))
            for start in range(0, len(data), WRITE):
                fh.write(data[start:start + WRITE])
        self._stored[location].add(offset)
        tensor = onnx.TensorProto()
        tensor.name = name
        tensor.data_type = onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        _set_entries(tensor, location, offset, array.nbytes)
        return tensor

    def in_scratch(self, tensor: onnx.TensorProto) -> bool:
        return is_external(tensor) and _entries(tensor).get("location") in self._places

    # -- writing and running ------------------------------------------------------------------

    def write(self, proto: onnx.ModelProto, path: Path) -> None:
        """``proto`` at ``path`` with every external tensor copied into ``path.data`` (its own file)."""
        path = Path(path)
        data_path = path.with_name(f"{path.name}.data")
        copy = onnx.ModelProto()
        copy.CopyFrom(proto)
        external = [t for t in model_tensors(copy) if is_external(t)]
        sources = [self.source(t) for t in external]
        for source in self.files:
            if data_path.exists() and os.path.samefile(source, data_path):
                raise FoldError(f"Writing '{path.name}' would overwrite '{data_path.name}', the external data it "
                                "is read from; give another output name.")
        if self._adoptable(external, data_path):
            self._adopt(external, sources, data_path)
            path.write_bytes(copy.SerializeToString())
            return
        try:
            with open(data_path, "wb") as out:
                for tensor, (source, offset, length) in zip(external, sources):
                    start = _aligned(out.tell(), length)
                    out.seek(start)
                    _copy_range(source, offset, length, out)
                    _set_entries(tensor, data_path.name, start, length)
            path.write_bytes(copy.SerializeToString())
        except BaseException:
            data_path.unlink(missing_ok=True)
            raise

    def _adoptable(self, external: list[onnx.TensorProto], data_path: Path) -> bool:
        """Whether the current scratch file holds exactly the model's new tensors (nothing else was
        stored in it) and can be moved to ``data_path`` (one filesystem): then the fold's tensors are
        written once, not written and copied."""
        if self._current is None:
            return False
        mine = {int(_entries(t).get("offset", 0)) for t in external if _entries(t).get("location") == self._current}
        scratch = self._places[self._current]
        return mine == self._stored[self._current] and os.stat(scratch).st_dev == os.stat(data_path.parent).st_dev

    def _adopt(self, external: list[onnx.TensorProto], sources: list[tuple[Path, int, int]], data_path: Path) -> None:
        """The tensors carried over appended to the current scratch file, which becomes ``data_path``
        (the model keeps reading its new tensors there); new tensors go to a new scratch file."""
        location, scratch = self._current, self._places[self._current]
        with open(scratch, "r+b") as out:
            for tensor, (source, offset, length) in zip(external, sources):
                if _entries(tensor).get("location") == location:
                    _set_entries(tensor, data_path.name, offset, length)
                    continue
                start = _aligned(out.seek(0, os.SEEK_END), length)
                out.seek(start)
                _copy_range(source, offset, length, out)
                _set_entries(tensor, data_path.name, start, length)
        os.replace(scratch, data_path)
        self._places[location] = data_path
        self._current = None

    def fed(self, proto: onnx.ModelProto, held: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The initializers of ``proto``'s graph onnxruntime cannot read from the model's folder: those
        of the scratch file (views of its map) and those ``held`` in memory, by name. onnxruntime is
        given them as inputs at every run: it copies an initializer handed to it any other way."""
        return {t.name: held[t.name] if is_held(t) else self.array(t) for t in proto.graph.initializer
                if self.in_scratch(t) or (is_held(t) and t.name in held)}


def _aligned(end: int, length: int) -> int:
    """Where a tensor of ``length`` bytes starts in a file that ends at ``end``."""
    step = ALIGN if length >= ALIGN else SMALL_ALIGN
    return -(-end // step) * step


def _copy_range(source: Path, offset: int, length: int, out) -> None:
    """``length`` bytes of ``source`` from ``offset`` appended to ``out``: by the kernel when it can,
    else through one CHUNK-sized buffer at a time."""
    out.flush()
    with open(source, "rb") as src:
        done = 0
        try:
            while done < length:
                n = os.copy_file_range(src.fileno(), out.fileno(), length - done, offset + done, out.tell() + done)
                if n == 0:
                    break
                done += n
        except (OSError, AttributeError):
            pass
        out.seek(out.tell() + done)
        src.seek(offset + done)
        while done < length:
            chunk = src.read(min(CHUNK, length - done))
            if not chunk:
                raise FoldError(f"'{source.name}' ended {length - done} bytes before a tensor it should hold.")
            out.write(chunk)
            done += len(chunk)
