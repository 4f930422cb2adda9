"""The view the shared op-graph layer reads (``fold.frontends.ops.view``) of a TFLite or circle model: the
ops of the main subgraph (index 0) as ops, tensor indices (as text) as tensor ids.

A tensor is a constant when its buffer holds data (and it is neither a model input nor a
variable), or when it is the output of a ``DEQUANTIZE`` of a constant: how MediaPipe and the
TFLite converter's float16 quantization store weights (a float16 buffer, dequantized to float32
when the model runs). Its value is then computed here, as the interpreter would.
"""

from __future__ import annotations

import weakref

import numpy as np

from fold.core.graph import Vocabulary
from fold.core.kinds import TFLITE_KINDS, Kind
from fold.frontends.flatbuffer.model import FlatModel, tensor_name
from fold.frontends.ops.chains import broadcast_axes, position
from fold.frontends.ops.view import BnOp, Op

VOCABULARY = Vocabulary(
    inputs=frozenset({"INPUT"}),
    activations=frozenset({"RELU", "RELU6", "RELU_N1_TO_1", "LOGISTIC", "TANH", "LEAKY_RELU", "PRELU", "ELU",
                           "HARD_SWISH", "SOFTMAX"}),
    homogeneous=frozenset({"RELU", "LEAKY_RELU", "PRELU"}),
    muls=frozenset({"MUL"}),
    adds=frozenset({"ADD"}),
    reshapes=frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}),
    relayouts=frozenset({"TRANSPOSE", "SLICE"}),
    reductions=frozenset({"MEAN", "SUM"}),
    concats=frozenset({"CONCATENATION"}),
    shapes=frozenset({"SHAPE"}),
)
#: Op -> (filter input slot, bias input slot); TRANSPOSE_CONV's bias is optional.
SLOTS: dict[str, tuple[int, int]] = {
    "CONV_2D": (1, 2), "TRANSPOSE_CONV": (1, 3), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2),
}
#: Buffer element types foldscope reads, by tensor type name.
DTYPES = {"FLOAT32": "<f4", "FLOAT16": "<f2", "INT8": "i1", "UINT8": "u1", "INT16": "<i2", "INT32": "<i4",
          "INT64": "<i8", "FLOAT64": "<f8"}


def stored(model: FlatModel, sg, t: int) -> np.ndarray:
    """A constant tensor's buffer as an array of its own type, shaped."""
    tensor = sg.tensors[t]
    dtype = DTYPES.get(model.schema.tensor_type_names.get(tensor.type, ""))
    if dtype is None:
        raise ValueError(f"Tensor '{tensor_name(sg, t)}' has a type foldscope does not read.")
    raw = np.asarray(model.tree.buffers[tensor.buffer].data, dtype=np.uint8).tobytes()
    return np.frombuffer(raw, dtype=dtype).reshape([int(d) for d in tensor.shape])


def _dequantized(value: np.ndarray, q) -> np.ndarray:
    """What DEQUANTIZE makes of ``value``: float16 widened, integers by their scale and zero point."""
    if value.dtype == np.float16 or q is None or q.scale is None or len(q.scale) == 0:
        return value.astype(np.float32)
    scale, zero = np.asarray(q.scale, np.float32), np.asarray(q.zeroPoint, np.float32)
    if scale.size > 1:
        shape = [1] * value.ndim
        shape[q.quantizedDimension] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((value.astype(np.float32) - zero) * scale).astype(np.float32)


class FlatView:
    """``OpView`` of one model's main subgraph (built once per model by the frontend)."""

    vocabulary = VOCABULARY

    def __init__(self, model: FlatModel):
        # weakly: the views are cached by the model as a weak key, which a strong reference here would
        # keep alive for good (every model ever viewed, and its view's values, leaked)
        self.model = weakref.proxy(model)
        self.schema = model.schema
        self.tree, self.sg = model.tree, model.main
        self.ops = [Op(i, model.ids[i], self.schema.op_type(self.tree, o), [str(t) if t >= 0 else "" for t in o.inputs],
                       [str(t) for t in o.outputs]) for i, o in enumerate(self.sg.operators)]
        self.by_name = {op.id: op for op in self.ops}
        self._producer = {t: op for op in self.ops for t in op.outputs}
        self._readers: dict[str, list[Op]] = {}
        for op in self.ops:
            for t in dict.fromkeys(op.inputs):
                if t:
                    self._readers.setdefault(t, []).append(op)
        self.outputs = {str(t) for t in self.sg.outputs}
        self.inputs = {str(t) for t in self.sg.inputs}
        self._values: dict[str, np.ndarray] = {}

    def operator(self, op: Op):
        return self.sg.operators[op.index]

    def tensor(self, t: str):
        return self.sg.tensors[int(t)]

    def producer(self, tensor: str) -> Op | None:
        return self._producer.get(tensor)

    def readers(self, tensor: str) -> list[Op]:
        return self._readers.get(tensor, [])

    def is_output(self, tensor: str) -> bool:
        return tensor in self.outputs

    def stored_constant(self, tensor: str) -> bool:
        """A tensor with data in its buffer that is neither a model input nor a variable (and, for
        the types foldscope reads, as many bytes as its shape holds)."""
        if not tensor:
            return False
        t = self.tensor(tensor)
        data = self.tree.buffers[t.buffer].data
        if data is None or len(data) == 0 or t.isVariable or tensor in self.inputs:
            return False
        size = int(np.prod(t.shape if t.shape is not None else [], dtype=np.int64))
        dtype = DTYPES.get(self.schema.tensor_type_names.get(t.type, ""))
        return dtype is None or len(data) == size * np.dtype(dtype).itemsize

    def is_constant(self, tensor: str) -> bool:
        if self.stored_constant(tensor):
            return True
        op = self._producer.get(tensor)
        return op is not None and op.type == "DEQUANTIZE" and self.stored_constant(op.inputs[0])

    def value(self, tensor: str) -> np.ndarray:
        if tensor not in self._values:
            op = self._producer.get(tensor)
            if op is not None and op.type == "DEQUANTIZE":
                source = op.inputs[0]
                self._values[tensor] = _dequantized(self.value(source), self.tensor(source).quantization)
            else:
                self._values[tensor] = stored(self.model, self.sg, int(tensor))
        return self._values[tensor]

    def shape(self, tensor: str) -> tuple | None:
        t = self.tensor(tensor)
        if t.shape is None:
            return None
        signature = t.shapeSignature if t.shapeSignature is not None and len(t.shapeSignature) else t.shape
        return tuple(None if int(s) < 0 else int(d) for d, s in zip(t.shape, signature))

    def name(self, tensor: str) -> str:
        return tensor_name(self.sg, int(tensor))

    def kind(self, op: Op) -> Kind | None:
        return TFLITE_KINDS.get(op.type)

    def slots(self, op: Op) -> tuple[int, int | None]:
        return SLOTS[op.type]

    def groups(self, op: Op) -> int:
        return 1

    def channel_axis(self, op: Op) -> int | None:
        shape = self.shape(op.output)
        return None if shape is None else position(-1, len(shape))

    def default_axis(self, rank: int | None) -> int | None:
        return position(-1, rank)

    def bn(self, op: Op) -> BnOp | None:
        return None  # a flatbuffer holds BatchNorms as MUL and ADD

    def operand_axes(self, op: Op, tensor: str, rank: int) -> tuple[int, ...] | None:
        return broadcast_axes(np.asarray(self.value(tensor)), rank)

    def activation(self, op: Op) -> str | None:
        name = self.schema.activation_of(self.operator(op))
        return None if name == "NONE" else name

    def bias_value(self, op: Op, value: np.ndarray) -> tuple[np.ndarray, str | None]:
        return value, None

    def padding(self, op: Op) -> str | None:
        options = self.operator(op).builtinOptions
        same = self.schema.classes.Padding.SAME
        if op.type not in ("CONV_2D", "DEPTHWISE_CONV_2D") or getattr(options, "padding", None) != same:
            return None
        shape, kernel = self.shape(op.inputs[0]), self.shape(op.inputs[1])
        if shape is None or kernel is None or any(d is None for d in shape[1:3]):
            return "padding SAME"
        steps = ((options.strideH, options.dilationHFactor), (options.strideW, options.dilationWFactor))
        total = sum(max(0, (-(-n // s) - 1) * s + (k - 1) * d + 1 - n)
                    for n, k, (s, d) in zip(shape[1:3], kernel[1:3], steps))
        return "padding SAME" if total else None

    def input_layout(self, op: Op) -> tuple[tuple[int, ...] | None, int]:
        if op.type == "FULLY_CONNECTED":  # it reads its input as rows of the weights' input size
            weights = self.shape(op.inputs[1])
            return ((-1, int(weights[-1])) if weights is not None else None), 1
        return None, -1

    def weight_gain(self, op: Op) -> float:
        return 1.0

    def concat_axis(self, op: Op) -> int | None:
        if op.type != "CONCATENATION":
            return None
        shape = self.shape(op.output)
        return position(int(self.operator(op).builtinOptions.axis), None if shape is None else len(shape))

    def looked_through(self, tensor: str) -> list[Op]:
        op = self._producer.get(tensor)
        return [op] if op is not None and op.type == "DEQUANTIZE" else []

    def stored_dtype(self, tensor: str) -> str:
        """float16 for a weight behind a DEQUANTIZE of a float16 buffer; float32 otherwise."""
        through = self.looked_through(tensor)
        source = through[0].inputs[0] if through else tensor
        return "float16" if self.tensor(source).type == self.schema.classes.TensorType.FLOAT16 else "float32"

    def moved_axis(self, op: Op, axis: int) -> int | None:
        """TRANSPOSE: where its constant permutation puts ``axis``; SLICE: ``axis`` when it takes the
        whole of it (begin 0, size -1 or all of it)."""
        if len(op.inputs) < 2 or not all(t and self.is_constant(t) for t in op.inputs[1:]):
            return None
        shape = self.shape(op.inputs[0])
        if shape is None or not 0 <= axis < len(shape):
            return None
        if op.type == "TRANSPOSE":
            perm = [int(a) for a in np.asarray(self.value(op.inputs[1])).reshape(-1)]
            return perm.index(axis) if sorted(perm) == list(range(len(shape))) else None
        if op.type == "SLICE" and len(op.inputs) == 3:
            begin, size = (np.asarray(self.value(t)).reshape(-1) for t in op.inputs[1:])
            whole = len(begin) == len(size) == len(shape) and begin[axis] == 0 and size[axis] in (-1, shape[axis])
            return axis if whole and shape[axis] is not None else None
        return None

    def data_inputs(self, op: Op) -> list[str]:
        """The activation a linear op reads (its kind's data input), a reshape's input 0 (the rest is its
        new shape), else every input that is not a constant."""
        kind = self.kind(op)
        if kind is not None:
            return [op.inputs[kind.data_input]]
        if op.type in self.vocabulary.reshapes:
            return op.inputs[:1]
        return [t for t in op.inputs if t and not self.is_constant(t)]


_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def view_of(model: FlatModel) -> FlatView:
    """The one view of ``model`` (built on first use, dropped with the model)."""
    found = _VIEWS.get(model)
    if found is None:
        found = _VIEWS[model] = FlatView(model)
    return found
