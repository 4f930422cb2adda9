"""What an op-level format adapts for the shared layer: its ops, its tensors, and how to read them.

A view is built once per model (the frontend caches it). Tensor ids are strings (an ONNX tensor
name, a GraphDef "op:0", a TFLite tensor index as text); op ids are the graph node ids foldscope
shows ("conv", "CONV_2D:3"). Everything format-specific that the shared chain finder, candidate
builder and graph need is a method here; everything else is written once in ``fold.frontends.ops``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fold.core.graph import Vocabulary
from fold.core.kinds import Kind


@dataclass(eq=False)
class Op:
    """One op: its index in the model's op list, id, type, inputs (slot order, "" where an optional
    input is absent) and outputs."""

    index: int
    id: str
    type: str
    inputs: list[str]
    outputs: list[str]

    @property
    def output(self) -> str:
        """The first output ("" for an op with none, or whose first output is omitted)."""
        return self.outputs[0] if self.outputs else ""

    @property
    def place(self) -> str:
        """The op in an error line: "op 'MUL:6' (MUL)"."""
        return f"op '{self.id}' ({self.type})"


@dataclass(frozen=True)
class BnOp:
    """A fused BatchNorm op: its data input slot, its parameter tensors (gamma, beta, mean,
    variance; None where absent), epsilon, whether it runs in training mode, and the axis it
    normalizes in its input."""

    data_slot: int
    params: dict[str, str | None]
    epsilon: float
    training: bool
    axis: int | None


class OpView(Protocol):
    """One model of an op-level format, as the shared layer reads it."""

    vocabulary: Vocabulary
    ops: Sequence[Op]
    by_name: dict[str, Op]

    def producer(self, tensor: str) -> Op | None:
        """The op that produces ``tensor`` (None for a model input or a constant)."""

    def readers(self, tensor: str) -> list[Op]:
        """The ops that read ``tensor``, each once, in op order."""

    def is_output(self, tensor: str) -> bool:
        """Whether ``tensor`` is a model output (or fetched)."""

    def is_constant(self, tensor: str) -> bool:
        """Whether ``tensor`` is a constant: stored in the file, or computed from stored constants by
        ops that only convert, reshape or dequantize them (the format says which it looks through)."""

    def value(self, tensor: str) -> np.ndarray:
        """The value of a constant tensor (cached)."""

    def shape(self, tensor: str) -> tuple | None:
        """A tensor's static shape (None for an unknown dimension), or None when unknown."""

    def name(self, tensor: str) -> str:
        """A tensor's name, for messages and the display graph."""

    def kind(self, op: Op) -> Kind | None:
        """The op's entry in the kinds table (None: not a layer foldscope folds into)."""

    def slots(self, op: Op) -> tuple[int, int | None]:
        """(weight input slot, bias input slot or None when the op has no bias input) of a linear op."""

    def groups(self, op: Op) -> int:
        """A linear op's number of groups (1 for a format whose kernels do not group their channels)."""

    def channel_axis(self, op: Op) -> int | None:
        """The axis of a linear op's output that holds its channels, from 0 (None when unknown, or
        when the output is a scalar: a vector times a vector)."""

    def default_axis(self, rank: int | None) -> int | None:
        """The format's channel axis of a tensor of ``rank`` (ONNX: 1; the others: the last), from 0;
        None for a scalar, which has no channels."""

    def bn(self, op: Op) -> BnOp | None:
        """The op as a fused BatchNorm, or None."""

    def operand_axes(self, op: Op, tensor: str, rank: int) -> tuple[int, ...] | None:
        """The axes of the other operand of a binary ``op`` along which constant ``tensor`` varies
        (None: it changes the rank). A GraphDef BiasAdd applies its bias on its data format's channel axis."""

    def activation(self, op: Op) -> str | None:
        """The op's fused activation (TFLite), None when it has none."""

    def bias_value(self, op: Op, value: np.ndarray) -> tuple[np.ndarray, str | None]:
        """A linear op's own bias as it adds it (ONNX Gemm: times beta), and why it is not a
        per-channel vector (None when it is)."""

    def looked_through(self, tensor: str) -> list[Op]:
        """The ops between a constant tensor and the data it was read from, nearest first (the
        pair's notes name them; what else reads them is "unshared-weights")."""

    def stored_dtype(self, tensor: str) -> str:
        """The dtype a constant is stored in (float16 behind a Cast or DEQUANTIZE), which a folded
        weight is written back in."""

    def padding(self, op: Op) -> str | None:
        """How a linear op pads its data input, in the format's words ("pads [1, 1, 1, 1]", "padding
        SAME"), or None when every output element reads real inputs only."""

    def input_layout(self, op: Op) -> tuple[tuple[int, ...] | None, int]:
        """How a linear op reads its input channels: (the shape it views its data input as first, None
        when as it is; the axis of that view that holds them, from 0 or from the end)."""

    def weight_gain(self, op: Op) -> float:
        """What a linear op multiplies its product with the kernel by (ONNX Gemm's alpha; else 1)."""

    def concat_axis(self, op: Op) -> int | None:
        """The axis (from 0, of its output) a concatenation op joins its inputs along; None for any other op."""

    def moved_axis(self, op: Op, axis: int) -> int | None:
        """Where channel ``axis`` of the data input of ``op`` (one of the vocabulary's ``relayouts``)
        is in its output, from 0; None when the op cuts, reorders or mixes the channels. Asked only
        by a format whose vocabulary has relayouts."""


def input_op(view: OpView) -> str:
    """What the format calls a model input ("Input", "INPUT", "Placeholder")."""
    return min(view.vocabulary.inputs, default="Input")


def after_lone(view: OpView, tensor: str, op_type: str) -> str:
    """The output of the ``op_type`` op that alone reads ``tensor`` (a ReLU after a BN, which a quantizer
    gives one range with it), else ``tensor`` itself."""
    readers = view.readers(tensor)
    if len(readers) == 1 and readers[0].type == op_type and not view.is_output(tensor):
        return readers[0].output
    return tensor
def values_read(view: OpView, tensor: str) -> list[Op]:
    """The ops that read ``tensor``'s values (an op that reads only its shape, for a dynamic reshape, does not)."""
    return [r for r in view.readers(tensor) if r.type not in view.vocabulary.shapes]
