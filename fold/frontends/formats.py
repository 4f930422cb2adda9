"""What a frontend is, the one table that maps a model file format to its frontend, and a model
file judged by that table (suffix, size and signature) before any framework reads it.

A frontend reads one kind of model file (Keras, a TensorFlow GraphDef, TFLite, ONNX, circle) and
offers the same operations to the format-neutral pipeline (``fold.engine.pipeline``): load a
file with its safety checks, find the candidate pairs, rewrite, describe the inputs, run,
name the outputs and their channel axes, write. Everything else (deciding, counting,
verifying, reporting, drawing) is done once, for every format.

``FRONTENDS`` is importable without TensorFlow: each ``Format`` knows its suffixes and
file signatures, and imports its frontend only when asked (``Format.frontend()``). The
command line, the app's uploader and ``fold.fold_file`` all read it. It is the frontends' one door:
outside ``fold/frontends/``, the library imports no other module of theirs and names no format
(``tests/test_layout.py`` checks).
"""

from __future__ import annotations

import importlib
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar

import networkx as nx
import numpy as np

from fold.core.affine import channels_along
from fold.core.errors import FoldError, needs, one_line, require, size_pair
from fold.core.graph import Vocabulary
from fold.core.kinds import Kind
from fold.core.quiet import import_tensorflow_quietly
from fold.core.rules import Candidate, Decision, Rule
from fold.core.verification import InputSpec, OutputSpec

M = TypeVar("M")

#: Largest model file foldscope reads (bytes); the app's upload limit matches it. 500 MiB, not 512:
#: Streamlit's uploader shows a limit of half a GiB or more rounded to a whole GB ("1GB per file").
MAX_MODEL_BYTES = 500 * 1024 * 1024


@dataclass(frozen=True)
class LayerKernel:
    """The weights a fold rescales in one layer: kernel (and bias), laid out as ``kind`` says.

    taps: the layer's reduction length (terms summed per output element) when it is not
    ``kernel.size / channels`` (a separable layer: its depthwise taps plus its pointwise inputs).
    stored: the dtype the weights are stored in when it is narrower than the one they are computed
    in (float16 behind a Cast or DEQUANTIZE): a folded weight is rounded to it when written.
    """

    kernel: np.ndarray
    bias: np.ndarray | None
    kind: Kind
    groups: int = 1
    taps: int | None = None
    stored: str | None = None

    @property
    def channels(self) -> int:
        return channels_along(np.shape(self.kernel), self.kind.out_axes, self.groups, self.kind.group_axis)

    @property
    def reduction(self) -> int:
        """Terms summed per output element (upper bound for transposed convolutions)."""
        if self.taps is not None:
            return int(self.taps)
        return max(1, int(np.asarray(self.kernel).size) // max(self.channels, 1))


@dataclass
class Tap:
    """What one run of a model exposed: its outputs (in ``outputs`` order), the first output of
    each tapped node and the data inputs each fed layer received."""

    outputs: list[np.ndarray]
    nodes: dict[str, np.ndarray]
    feeds: dict[str, list[np.ndarray]]


@dataclass(frozen=True)
class LayerRunner:
    """Runs layers alone, all in one go: ``run(feeds, inputs)`` takes each layer's data inputs
    (layer -> arrays) and the model inputs of the same rows (which a graph's shape computations
    may read), and returns layer -> output; ``layers`` are the ones it can run; ``runtime``: what
    runs them, in words, when it is not what runs the model (a circle model's layers alone in onert)."""

    layers: frozenset[str]
    run: Callable[[Mapping[str, list[np.ndarray]], list[np.ndarray]], dict[str, np.ndarray]]
    runtime: str | None = None


class Frontend(Protocol[M]):
    """The operations every format offers; ``M`` is its model object (keras.Model, GraphDef, ...)."""

    format: Format
    #: Checked in order on every candidate; made with ``fold.core.rules.compose``.
    rules: tuple[Rule, ...]
    #: The format's op (or layer class) names by role: inputs, BNs, activations, ...
    vocabulary: Vocabulary

    def load(self, path: Path, **options) -> M:
        """Read a model file (already checked by suffix, size and signature); FoldError if unusable."""

    def name_of(self, model: M) -> str:
        """The model's name for messages and file names."""

    def candidates(self, model: M) -> list[Candidate]:
        """Every BatchNorm with the layer that feeds it, in model order, ready for the rules."""

    def rewrite(self, model: M, folds: Sequence[tuple[Candidate, Decision]]) -> M:
        """A new model with every folded pair applied; ``model`` is untouched."""

    def graph(self, model: M) -> nx.DiGraph:
        """foldscope's graph of the model (``fold.core.graph``), BatchNorms marked with ``mark_bn``."""

    def inputs(self, model: M) -> list[InputSpec]:
        """The model's inputs, in the order ``run`` takes them."""

    def outputs(self, model: M) -> list[OutputSpec]:
        """The model's outputs, in the order ``run`` returns them, with their channel axes."""

    def runtime(self, model: M) -> str:
        """What runs the model, in words with its version ("LiteRT 2.3.0"), for the report."""

    def runner(self, model: M) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
        """A function that runs one batch (the model's fixed batch size, if it has one) and
        returns the outputs; whatever it needs (a session, an interpreter) is set up once."""

    def tapper(self, model: M, nodes: Sequence[str] = (), feeds: Sequence[str] = ()) -> Callable[[list[np.ndarray]], Tap]:
        """A function that runs one batch and returns a ``Tap``: the outputs, the first output of
        each of ``nodes`` and the data inputs of each layer of ``feeds`` (graph ids, "outer/inner"
        inside nested models), all from one run; whatever the runtime cannot expose is left out.
        Set up once, like ``runner``."""

    def layer_runner(self, model: M, layers: Sequence[tuple[str, str]], magnitude: bool = False) -> LayerRunner:
        """Runs each (layer, until) alone, through ``until`` (the node that produces what the BN
        produced: the layer itself, its bias add, an activation kept as its own op), on given data
        inputs, all in one model, session or interpreter set up once. ``magnitude`` runs each layer
        alone with every weight replaced by its absolute value, no bias and no activation (Σ|W||x|,
        fed |x|). A layer the runtime cannot run alone is left out of ``layers``."""

    def kernel(self, model: M, layer: str) -> LayerKernel:
        """The kernel and bias a fold rescales in ``layer`` (an id of ``graph(model)``); a
        ValueError when the layer has no constant kernel."""

    def release(self, model: M) -> None:
        """Optional: let go of what reading ``model``'s weights brought into memory (the pages of the
        files they are mapped from), so that a model too large to hold is held one part at a time; the
        verification calls it, where a frontend has it, after each pass over the weights."""

    def with_kernels(self, model: M, kernels: Mapping[str, LayerKernel]) -> M:
        """A copy of the model whose named layers have the given kernels (and biases, when given);
        ``model`` is untouched."""

    def signature_order(self, model: M, count: int) -> list[int] | None:
        """For each of the model's ``count`` outputs in its original's order, its index among the model's
        own, read from the file's signature (a TFLite file from TensorFlow's converter names them
        "output_<i>"); None when the file has none. ``fold.tools.check`` asks it when output names differ."""

    def write(self, model: M, path: Path) -> None:
        """Save the model to ``path`` (which has ``format.output_suffix``)."""

    def to_bytes(self, model: M) -> bytes:
        """The model file's bytes, as ``write`` would save them."""


class Int8Adapter(Protocol):
    """What a format's part ``int8`` offers ``fold.tools.int8_report``: its runtime's own quantizer and
    runtime, and where a folded layer is judged in its models.

    name, version:  the runtime (``Format.int8``) and its installed version.
    channel_axis:   the channel axis of the tensors it reads.
    original_note:  what the original's int8 model does with its BatchNorms, in words.
    """

    name: str
    version: str
    channel_axis: int
    original_note: str

    def judged(self, result: Any) -> dict[str, tuple[str, str]]:
        """Folded layer -> (the point read in the original's models, the point read in a fold's): the BN's
        output it replaced, or the ReLU's that alone reads it (the quantizer gives both one range)."""

    def run_float(self, model: Any, inputs: list[np.ndarray], points: list[str]
                  ) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        """The float model's outputs and its values at ``points``."""

    def run_int8(self, model: Any, inputs: list[np.ndarray], points: list[str], *, per_channel: bool,
                 keep_float: list[str]) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        """The model quantized by the runtime's quantizer (calibrated on ``inputs``; weights per channel when
        ``per_channel``; the ``keep_float`` nodes left in float where the quantizer can), its outputs and its
        dequantized values at ``points`` it holds."""


@dataclass(frozen=True)
class Peer:
    """A tool that folds models of one format (a format's part ``peers`` holds them, ``PEERS``): ``make``
    returns (its model's format, its model)."""

    tool: str
    action: str
    make: Callable[[Any], tuple[str, Any]]
    needs: tuple[str, ...] = ()  # the packages it imports beyond the format's own (import names) ...
    extra: str = "peers"  # ... in this extra of foldscope's

    def require(self) -> None:
        """``MissingExtra`` unless the tool's packages are installed."""
        require(self.extra, f"{self.tool.split()[0]} as a peer", *self.needs)


def installed_version(*packages: str) -> str:
    """The installed version of the first of ``packages`` (a tool's alternative distributions)."""
    for package in packages:
        try:
            return version(package)
        except PackageNotFoundError:
            continue
    return "(not installed)"


@dataclass(frozen=True)
class Signature:
    """The bytes that open a valid file of one suffix, and how to name them in an error."""

    offset: int
    magic: bytes
    what: str


@dataclass(frozen=True)
class Format:
    """A model file format: how to recognise it without any framework, and which frontend reads it.

    name:           key in ``FRONTENDS`` ("keras", "graphdef", "tflite", "onnx", "circle").
    label:          for people ("Keras", "TensorFlow GraphDef", ...).
    suffixes:       accepted file suffixes, lower case.
    output_suffix:  suffix of the folded model file.
    module:         the package whose ``FRONTEND`` implements ``Frontend``.
    signatures:     per suffix, the bytes a valid file starts with (none for protobuf formats,
                    whose parser judges the content).
    options:        ``load`` options this format takes (command-line flags of the same name).
    tensorflow:     its frontend imports TensorFlow, which ``frontend()`` then imports first,
                    with its start-up chatter kept off stderr.
    upload_options: ``load`` options for a file a user uploaded (ONNX: no external data).
    int8:           the runtime its real int8 models run in (``--int8 RUNTIME``), None when it has none yet;
                    the part ``int8`` of its package (``part("int8").Adapter``, an ``Int8Adapter``) runs them.
    int8_needs:     a package that part needs beyond the format's own, as pip names it (checked before any
                    model is read).
    converts_to:    the format its models convert to (TensorFlow's converter: Keras to TFLite); the part
                    ``converter`` is the bridge (``convert``, ``ConverterNames``), and ``check`` takes the pair.
    peers:          the tools it is measured against are its part ``peers`` (``PEERS``, a ``Peer`` each).

    A format's packages are the extra of the same name (``pip install 'foldscope[onnx]'``), outside the
    base install; without them, reading such a file is the one sentence saying what to install.
    """

    name: str
    label: str
    suffixes: tuple[str, ...]
    output_suffix: str
    module: str
    signatures: dict[str, Signature] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    tensorflow: bool = True
    upload_options: dict = field(default_factory=dict)
    int8: str | None = None
    int8_needs: str | None = None
    converts_to: str | None = None
    peers: bool = False

    def frontend(self) -> Frontend:
        with needs(self.name, f"Reading {self.label} files"):
            if self.tensorflow:
                import_tensorflow_quietly()
            return importlib.import_module(self.module).FRONTEND

    def part(self, name: str) -> ModuleType:
        """The module ``name`` of the format's package (a part the row says it has: ``int8``, ...),
        imported as its frontend is (TensorFlow quietly first, a missing extra in one sentence)."""
        self.frontend()
        return importlib.import_module(f"{self.module}.{name}")


_ZIP = Signature(0, b"PK\x03\x04", "not a zip archive")
_HDF5 = Signature(0, b"\x89HDF\r\n\x1a\n", "no HDF5 signature")

#: file format -> its frontend, in the order formats are listed to users.
FRONTENDS: dict[str, Format] = {f.name: f for f in (
    Format("keras", "Keras", (".keras", ".h5", ".hdf5"), ".keras", "fold.frontends.keras",
           {".keras": _ZIP, ".h5": _HDF5, ".hdf5": _HDF5}, int8="litert", int8_needs="ai-edge-litert",
           converts_to="tflite",
           peers=True),
    Format("graphdef", "TensorFlow GraphDef (frozen)", (".pb",), ".pb", "fold.frontends.graphdef",
           options=("inputs", "outputs")),
    Format("tflite", "TFLite", (".tflite",), ".tflite", "fold.frontends.tflite",
           {".tflite": Signature(4, b"TFL3", "no TFL3 identifier")}, tensorflow=False, int8="litert",
           int8_needs="ai-edge-quantizer"),
    Format("onnx", "ONNX", (".onnx",), ".onnx", "fold.frontends.onnx", tensorflow=False,
           upload_options={"external_data": False}, int8="onnxruntime", peers=True),
    Format("circle", "circle (Samsung ONE)", (".circle",), ".circle", "fold.frontends.circle",
           {".circle": Signature(4, b"CIR0", "no CIR0 identifier")}, options=("runtime",), tensorflow=False,
           peers=True),
)}

#: Every format's load options (command-line flags of the same name), in table order.
LOAD_OPTIONS: tuple[str, ...] = tuple(dict.fromkeys(o for f in FRONTENDS.values() for o in f.options))

#: Every accepted model file suffix, in table order.
SUFFIXES: tuple[str, ...] = tuple(s for f in FRONTENDS.values() for s in f.suffixes)


def format_for(path: str | Path) -> Format | None:
    """The format whose suffixes include the file's (case-insensitive), or None."""
    suffix = Path(path).suffix.lower()
    return next((f for f in FRONTENDS.values() if suffix in f.suffixes), None)


def suffix_list() -> str:
    """The accepted suffixes for a sentence: ".keras, .h5, ... or .onnx"."""
    return ", ".join(SUFFIXES[:-1]) + f" or {SUFFIXES[-1]}"


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
