"""What a frontend is, and the one table that maps a model file format to its frontend.

A frontend reads one kind of model file (Keras, a TensorFlow GraphDef, TFLite, ONNX, circle) and
offers the same operations to the format-neutral pipeline (``fold.pipeline``): load a
file with its safety checks, find the candidate pairs, rewrite, describe the inputs, run,
name the outputs and their channel axes, write. Everything else (deciding, counting,
verifying, reporting, drawing) is done once, for every format.

``FRONTENDS`` is importable without TensorFlow: each ``Format`` knows its suffixes and
file signatures, and imports its frontend only when asked (``Format.frontend()``). The
command line, the app's uploader and ``fold.fold_file`` all read it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import networkx as nx
import numpy as np

from fold.core.affine import channels_along
from fold.core.graph import Vocabulary
from fold.core.kinds import Kind
from fold.core.rules import Candidate, Decision, Rule
from fold.core.verification import InputSpec, OutputSpec
from fold.errors import FoldError
from fold.quiet import import_tensorflow_quietly

M = TypeVar("M")


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

    def write(self, model: M, path: Path) -> None:
        """Save the model to ``path`` (which has ``format.output_suffix``)."""

    def to_bytes(self, model: M) -> bytes:
        """The model file's bytes, as ``write`` would save them."""


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
    extra:          the requirements file of an optional format's packages (outside the base install);
                    without them, reading such a file is one FoldError sentence saying what to install.
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
    extra: str | None = None

    def frontend(self) -> Frontend:
        if self.tensorflow:
            import_tensorflow_quietly()
        try:
            return importlib.import_module(self.module).FRONTEND
        except ModuleNotFoundError as exc:
            if self.extra is None or (exc.name or "").startswith("fold"):
                raise
            raise FoldError(f"Reading {self.label} files needs the packages of {self.extra} ({exc.name} is not "
                            f"installed): pip install -r {self.extra}.") from exc


_ZIP = Signature(0, b"PK\x03\x04", "not a zip archive")
_HDF5 = Signature(0, b"\x89HDF\r\n\x1a\n", "no HDF5 signature")

#: file format -> its frontend, in the order formats are listed to users.
FRONTENDS: dict[str, Format] = {f.name: f for f in (
    Format("keras", "Keras", (".keras", ".h5", ".hdf5"), ".keras", "fold.frontends.keras",
           {".keras": _ZIP, ".h5": _HDF5, ".hdf5": _HDF5}),
    Format("graphdef", "TensorFlow GraphDef (frozen)", (".pb",), ".pb", "fold.frontends.graphdef",
           options=("inputs", "outputs")),
    Format("tflite", "TFLite", (".tflite",), ".tflite", "fold.frontends.tflite",
           {".tflite": Signature(4, b"TFL3", "no TFL3 identifier")}, tensorflow=False),
    Format("onnx", "ONNX", (".onnx",), ".onnx", "fold.frontends.onnx", tensorflow=False,
           upload_options={"external_data": False}),
    Format("circle", "circle (Samsung ONE)", (".circle",), ".circle", "fold.frontends.circle",
           {".circle": Signature(4, b"CIR0", "no CIR0 identifier")}, options=("runtime",), tensorflow=False,
           extra="requirements-circle.txt"),
)}

#: Every format's load options (command-line flags of the same name), in table order.
LOAD_OPTIONS: tuple[str, ...] = tuple(dict.fromkeys(o for f in FRONTENDS.values() for o in f.options))

#: Every accepted model file suffix, in table order.
SUFFIXES: tuple[str, ...] = tuple(s for f in FRONTENDS.values() for s in f.suffixes)


def format_for(path: str | Path) -> Format | None:
    """The format whose suffixes include the file's (case-insensitive), or None."""
    suffix = Path(path).suffix.lower()
    return next((f for f in FRONTENDS.values() if suffix in f.suffixes), None)
