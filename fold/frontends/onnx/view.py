"""ONNX frontend, the view the shared op-graph layer reads (``fold.frontends.ops.view``): nodes as
ops, tensor names as tensor ids, and constants chased through what exporters put in front of them.

A tensor is a constant when it is an initializer, a ``Constant`` or ``ConstantOfShape`` output, or
the output of a node that only converts, reshapes or dequantizes constants: ``Identity``, ``Cast``,
``Reshape``, ``Unsqueeze``, ``Squeeze``, ``Transpose``, ``Flatten``, ``DequantizeLinear`` (what
onnxsim and onnxruntime constant-fold before they fold a BN), or does elementwise arithmetic on them:
``Add``, ``Sub``, ``Mul``, ``Div``, ``Sqrt``, ``Reciprocal``, ``Neg`` (how onnxoptimizer's
fuse_bn_into_conv writes a folded kernel, W * gamma / sqrt(var + epsilon), when nothing constant-folds
it). Their values are computed here in NumPy in the tensors' own dtype, as the runtime would, only for
the tensors a fold or a check reads; the rest of the graph is left as it is.
"""

from __future__ import annotations

import weakref
from functools import cached_property

import numpy as np
import onnx
from onnx import numpy_helper

from fold.core.graph import Vocabulary
from fold.core.kinds import ONNX_KINDS, Kind
from fold.frontends.ops.chains import broadcast_axes, position
from fold.frontends.ops.view import BnOp, Op
from fold.frontends.onnx.model import OnnxModel

VOCABULARY = Vocabulary(
    inputs=frozenset({"Input"}),
    bns=frozenset({"BatchNormalization"}),
    activations=frozenset({"Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Sigmoid", "Tanh", "Clip", "HardSigmoid",
                           "HardSwish", "Softplus", "Softmax", "ThresholdedRelu"}),
    homogeneous=frozenset({"Relu", "LeakyRelu", "PRelu"}),
    muls=frozenset({"Mul"}),
    adds=frozenset({"Add"}),
    identities=frozenset({"Identity"}),
    reshapes=frozenset({"Reshape", "Squeeze", "Unsqueeze", "Flatten"}),
    reductions=frozenset({"ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2", "GlobalAveragePool"}),
    concats=frozenset({"Concat"}),
    shapes=frozenset({"Shape", "Size"}),
)
#: Ops whose output is a constant when every data input is (computed here, see the module docstring).
#: Elementwise arithmetic on constants, with ONNX's (NumPy's) broadcasting.
ARITHMETIC = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Sqrt": np.sqrt,
              "Reciprocal": np.reciprocal, "Neg": np.negative}
VALUE_OPS = frozenset({"Identity", "Cast", "Reshape", "Unsqueeze", "Squeeze", "Transpose", "Flatten",
                       "DequantizeLinear", *ARITHMETIC})
_SOURCES = frozenset({"Constant", "ConstantOfShape"})
#: (weight slot, bias slot) of each linear op type.
SLOTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1, None)}


def attribute(node: onnx.NodeProto, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def kind_of(node: onnx.NodeProto) -> Kind | None:
    if node.op_type == "Gemm" and attribute(node, "transB", 0):
        return ONNX_KINDS["Gemm/transB"]
    return ONNX_KINDS.get(node.op_type)


class OnnxView:
    """``OpView`` of one ``OnnxModel`` (built once per model by the frontend)."""

    vocabulary = VOCABULARY

    def __init__(self, model: OnnxModel):
        # weakly: the views are cached by the model as a weak key, which a strong reference here would
        # keep alive for good (every model ever viewed, and its view's values, leaked)
        self.model = weakref.proxy(model)
        self.nodes = list(model.graph.node)
        self.ops = [Op(i, n.name, n.op_type, list(n.input), list(n.output)) for i, n in enumerate(self.nodes)]
        self._producer = {t: op for op in self.ops for t in op.outputs if t}
        self._readers: dict[str, list[Op]] = {}
        for op in self.ops:
            for t in dict.fromkeys(op.inputs):
                if t:
                    self._readers.setdefault(t, []).append(op)
        self.outputs = {v.name for v in model.graph.output}
        self.initializers = {t.name: t for t in model.graph.initializer}
        self.by_name = {op.id: op for op in self.ops}
        self._constant: dict[str, bool] = {}
        self._values: dict[str, np.ndarray] = {}

    @cached_property
    def feeds(self) -> list[str]:
        return [v.name for v in self.model.feeds]

    def node(self, op: Op) -> onnx.NodeProto:
        return self.nodes[op.index]

    def producer(self, tensor: str) -> Op | None:
        return self._producer.get(tensor)

    def readers(self, tensor: str) -> list[Op]:
        return self._readers.get(tensor, [])

    def is_output(self, tensor: str) -> bool:
        return tensor in self.outputs

    def is_constant(self, tensor: str) -> bool:
        if not tensor:
            return False
        if tensor not in self._constant:
            op = self._producer.get(tensor)
            if tensor in self.initializers:
                self._constant[tensor] = op is None
            elif op is None:
                self._constant[tensor] = False
            elif op.type in _SOURCES:
                self._constant[tensor] = True
            elif op.type in VALUE_OPS:
                self._constant[tensor] = False  # a guard against cycles while the inputs are judged
                data = [t for t in op.inputs if t]
                self._constant[tensor] = bool(data) and all(self.is_constant(t) for t in data)
            else:
                self._constant[tensor] = False
        return self._constant[tensor]

    def value(self, tensor: str) -> np.ndarray:
        if tensor not in self._values:
            op = self._producer.get(tensor)
            if op is None:
                self._values[tensor] = self._initializer(self.initializers[tensor])
            else:
                self._values[tensor] = _compute(self.node(op), [self.value(t) if t else None for t in op.inputs])
        return self._values[tensor]

    def _initializer(self, tensor: onnx.TensorProto) -> np.ndarray:
        """An initializer's value; an external one is a view of its file's map, read when used (or the
        array its model holds)."""
        if tensor.name in self.model.arrays:
            return self.model.arrays[tensor.name]
        if self.model.external is not None and tensor.data_location == onnx.TensorProto.EXTERNAL:
            return self.model.external.array(tensor)
        return numpy_helper.to_array(tensor)

    def looked_through(self, tensor: str) -> list[Op]:
        found, t = [], tensor
        while (op := self._producer.get(t)) is not None and op.type in VALUE_OPS:
            found.append(op)
            t = op.inputs[0]
        if (op := self._producer.get(t)) is not None and op.type == "ConstantOfShape":
            found.append(op)  # a filled weight is named; a Constant node is simply where the value is
        return found

    def stored_dtype(self, tensor: str) -> str:
        """The dtype the constant is stored in before any Cast (a float16 initializer behind one)."""
        t = tensor
        while (op := self._producer.get(t)) is not None and op.type in ("Cast", "Identity"):
            t = op.inputs[0]
        return np.asarray(self.value(t)).dtype.name

    def shape(self, tensor: str) -> tuple | None:
        return self.model.shapes.get(tensor)

    def name(self, tensor: str) -> str:
        return tensor

    def kind(self, op: Op) -> Kind | None:
        kind = kind_of(self.node(op))
        if kind is None or len(op.inputs) < 2:
            return None
        return kind

    def slots(self, op: Op) -> tuple[int, int | None]:
        return SLOTS[op.type]

    def groups(self, op: Op) -> int:
        return int(attribute(self.node(op), "group", 1)) if op.type in ("Conv", "ConvTranspose") else 1

    def channel_axis(self, op: Op) -> int | None:
        if op.type in ("Conv", "ConvTranspose", "Gemm"):
            return 1
        shape = self.shape(op.output)
        return None if shape is None else position(-1, len(shape))

    def default_axis(self, rank: int | None) -> int | None:
        return position(1 if rank is not None and rank >= 2 else 0, rank)

    def bn(self, op: Op) -> BnOp | None:
        if op.type != "BatchNormalization":
            return None
        node = self.node(op)
        params = dict(zip(("gamma", "beta", "mean", "variance"), op.inputs[1:5]))
        return BnOp(0, params, float(attribute(node, "epsilon", 1e-5)), attribute(node, "training_mode", 0) == 1, 1)

    def operand_axes(self, op: Op, tensor: str, rank: int) -> tuple[int, ...] | None:
        return broadcast_axes(np.asarray(self.value(tensor)), rank)

    def activation(self, op: Op) -> str | None:
        return None

    def padding(self, op: Op) -> str | None:
        if op.type not in ("Conv", "ConvTranspose"):
            return None
        node = self.node(op)
        auto = attribute(node, "auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else str(auto)
        if auto == "VALID":
            return None
        if auto == "NOTSET":
            pads = [int(p) for p in attribute(node, "pads", []) or []]
            return f"pads {pads}" if any(pads) else None
        return None if same_pads(self, op) == 0 else f"auto_pad {auto}"

    def input_layout(self, op: Op) -> tuple[tuple[int, ...] | None, int]:
        if op.type == "Gemm":
            return None, 0 if attribute(self.node(op), "transA", 0) else 1
        return None, -1 if op.type == "MatMul" else 1

    def weight_gain(self, op: Op) -> float:
        return float(attribute(self.node(op), "alpha", 1.0)) if op.type == "Gemm" else 1.0

    def concat_axis(self, op: Op) -> int | None:
        if op.type != "Concat":
            return None
        shape = self.shape(op.output)
        return position(int(attribute(self.node(op), "axis", 0)), None if shape is None else len(shape))

    def bias_value(self, op: Op, value: np.ndarray) -> tuple[np.ndarray, str | None]:
        if op.type != "Gemm":
            return value, None
        axes = self.operand_axes(op, op.inputs[2], 2)
        if axes not in ((), (1,)):
            return value, f"has shape {list(value.shape)} (its C input), not [N] or [1, N]"
        return value * float(attribute(self.node(op), "beta", 1.0)), None


def same_pads(view: OnnxView, op: Op) -> int | None:
    """The total padding a SAME_UPPER / SAME_LOWER convolution adds, over its spatial axes (None when
    its input's spatial shape is unknown): ONNX pads (ceil(in / stride) - 1) stride + (k - 1) d + 1 - in."""
    node, shape = view.node(op), view.shape(op.inputs[0])
    kernel = attribute(node, "kernel_shape") or (view.shape(op.inputs[1]) or ())[2:]
    if shape is None or not kernel or any(d is None for d in shape[2:]):
        return None
    rank = len(kernel)
    strides = attribute(node, "strides") or [1] * rank
    dilations = attribute(node, "dilations") or [1] * rank
    total = 0
    for n, k, s, d in zip(shape[2:], kernel, strides, dilations):
        total += max(0, (-(-int(n) // int(s)) - 1) * int(s) + (int(k) - 1) * int(d) + 1 - int(n))
    return total


def _compute(node: onnx.NodeProto, inputs: list[np.ndarray | None]) -> np.ndarray:
    """The output of a constant-computing node, in NumPy."""
    op, x = node.op_type, inputs[0] if inputs else None
    if op == "Constant":
        attr = node.attribute[0]
        value = onnx.helper.get_attribute_value(attr)
        return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)
    if op == "ConstantOfShape":
        fill = attribute(node, "value")
        scalar = numpy_helper.to_array(fill).reshape(-1)[0] if fill is not None else np.float32(0)
        return np.full(tuple(int(d) for d in x), scalar, dtype=np.asarray(scalar).dtype)
    if op == "Identity":
        return x
    if op == "Cast":
        return x.astype(onnx.helper.tensor_dtype_to_np_dtype(attribute(node, "to")))
    if op == "Reshape":
        shape = [int(d) for d in inputs[1]]
        if not attribute(node, "allowzero", 0):
            shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
        return x.reshape(shape)
    if op in ("Unsqueeze", "Squeeze"):
        axes = attribute(node, "axes")
        axes = [int(a) for a in (inputs[1] if len(inputs) > 1 and inputs[1] is not None else axes or [])]
        if op == "Squeeze":
            return np.squeeze(x, axis=tuple(axes)) if axes else np.squeeze(x)
        out = x
        for a in sorted(a % (x.ndim + len(axes)) for a in axes):
            out = np.expand_dims(out, a)
        return out
    if op == "Transpose":
        perm = attribute(node, "perm")
        return np.transpose(x, perm if perm is not None else None)
    if op == "Flatten":
        axis = int(attribute(node, "axis", 1)) % max(x.ndim, 1)
        return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)
    if op == "DequantizeLinear":
        scale = np.asarray(inputs[1], dtype=np.float32)
        zero = np.asarray(inputs[2] if len(inputs) > 2 and inputs[2] is not None else 0).astype(np.float32)
        axis = int(attribute(node, "axis", 1))
        if scale.ndim == 1 and scale.size > 1:
            view = [1] * x.ndim
            view[axis % x.ndim] = -1
            scale, zero = scale.reshape(view), zero.reshape(view) if zero.ndim else zero
        return ((x.astype(np.float32) - zero) * scale).astype(np.float32)
    if op in ARITHMETIC:
        args = [np.asarray(a) for a in inputs if a is not None]
        dtype = np.result_type(*args)
        with np.errstate(all="ignore"):
            if op == "Div" and dtype.kind in "iu":  # integer division truncates toward zero
                return np.fix(np.true_divide(*args)).astype(dtype)
            return np.asarray(ARITHMETIC[op](*args)).astype(dtype, copy=False)
    raise ValueError(f"'{node.name}' ({op}) does not compute a constant foldscope reads.")


_VIEWS: "weakref.WeakKeyDictionary[OnnxModel, OnnxView]" = weakref.WeakKeyDictionary()


def view_of(model: OnnxModel) -> OnnxView:
    """The one view of ``model`` (built on first use, dropped with the model)."""
    found = _VIEWS.get(model)
    if found is None:
        found = _VIEWS[model] = OnnxView(model)
    return found
