"""Folded layers alone (the verdict's rule 1) in a TFLite or circle model: one new model holding each
layer's op path by itself, its data inputs made model inputs, for the format's runtime to run. A path
starts at the layer, or, for a forward fold, where the map was (a reshape, or a partial fold's ADD and
RELU before the layer), and ends at what stands for its BN's output."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fold.frontends.flatbuffer.model import FlatModel
from fold.frontends.flatbuffer.view import SLOTS, FlatView, view_of
from fold.frontends.ops.view import values_read

#: Ops a path holds at most (from where a forward fold's map was, through the layer, to what stands for
#: its BN's output).
_MAX_PATH = 16
#: (op, input slot) of a shape an op may take computed at run time (TRANSPOSE_CONV's output shape, the
#: new shape of the converter's dynamic Flatten).
_SHAPE_SLOTS = {("TRANSPOSE_CONV", 0), ("RESHAPE", 1)}


@dataclass(frozen=True)
class Alone:
    """The layers-alone model: its bytes, its object tree and, per layer it holds, (its input tensor
    indices, its output index)."""

    data: bytes
    tree: Any
    ends: dict[str, tuple[list[int], int]]

    @property
    def layers(self) -> frozenset[str]:
        return frozenset(self.ends)


def ops_until(view: FlatView, start: int, until: str) -> list[int] | None:
    """Op indices from ``start`` to the op named ``until``, each reading the one before."""
    path = [view.ops[start]]
    while path[-1].id != until:
        after = values_read(view, path[-1].output)  # not a SHAPE that a dynamic reshape reads
        if len(after) != 1 or len(path) > _MAX_PATH:
            return None
        path.append(after[0])
    return [op.index for op in path]


def _linear(view: FlatView, ops: list[int]) -> int | None:
    """The path's layer: its first op with a kind and a constant filter (None when it has none)."""
    return next((i for i in ops if view.ops[i].type in SLOTS
                 and view.is_constant(view.ops[i].inputs[SLOTS[view.ops[i].type][0]])), None)


def _paths(model: FlatModel, layers: Sequence[tuple[str, str]], magnitude: bool) -> dict[str, list[int]]:
    """start -> the op indices run alone for it: through ``until``, or, for ``magnitude``, through the
    layer and then the ops that only move its values (reshapes, relayouts; not an activation kept as its
    own op); a path without a layer is left out."""
    view = view_of(model)
    vocab = view.vocabulary
    moves = vocab.identities | vocab.reshapes | vocab.relayouts
    paths = {}
    for name, until in layers:
        op = view.by_name.get(name)
        path = None if op is None else ops_until(view, op.index, until)
        layer = None if path is None else _linear(view, path)
        if layer is None:
            continue
        if magnitude:
            at = path.index(layer)
            kept = next((k for k, i in enumerate(path[at + 1:], at + 1) if view.ops[i].type not in moves), len(path))
            path = path[:kept]
        paths[name] = path
    return paths


def alone(model: FlatModel, layers: Sequence[tuple[str, str]], magnitude: bool) -> Alone | None:
    """One model holding the op path of each (start, until) alone (``_paths``; in order, each op reading
    the one before), every path with tensors of its own: the first op's data inputs become model inputs;
    constants are copied (a weight behind a DEQUANTIZE as the float32 values it makes; ``magnitude``: the
    layer's |filter|, zero bias, no added constants, no fused activation). None when no path has a layer."""
    paths = _paths(model, layers, magnitude)
    if not paths:
        return None
    view, schema = view_of(model), model.schema
    classes, tree, sg = schema.classes, model.tree, model.main
    new = classes.ModelT()
    new.version, new.description = tree.version, b"foldscope: layers alone"
    new.buffers, new.operatorCodes = [classes.BufferT()], []
    graph = classes.SubGraphT()
    graph.tensors, graph.operators, graph.inputs, graph.outputs = [], [], [], []
    codes: dict[int, int] = {}
    ends = {}
    for name, ops in paths.items():
        tensors: dict[int, int] = {}

        def tensor(t: int, data: np.ndarray | None = None) -> int:
            if t < 0:
                return t
            if t not in tensors:
                copied = copy.deepcopy(sg.tensors[t])
                copied.buffer = 0
                if data is not None:
                    buffer = classes.BufferT()
                    buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
                    new.buffers.append(buffer)
                    copied.buffer = len(new.buffers) - 1
                graph.tensors.append(copied)
                tensors[t] = len(graph.tensors) - 1
            return tensors[t]

        first, layer = view.ops[ops[0]], _linear(view, ops)
        slots = SLOTS[view.ops[layer].type]
        for i in ops:
            op = copy.deepcopy(sg.operators[i])
            kind = view.ops[i].type
            if op.opcodeIndex not in codes:
                new.operatorCodes.append(copy.deepcopy(tree.operatorCodes[op.opcodeIndex]))
                codes[op.opcodeIndex] = len(new.operatorCodes) - 1
            op.opcodeIndex = codes[op.opcodeIndex]
            inputs = []
            for slot, t in enumerate(op.inputs):
                data = None
                if t >= 0 and view.is_constant(str(t)):
                    data = view.value(str(t))
                    if magnitude and i == layer and slot in slots:
                        data = np.abs(data) if slot == slots[0] else np.zeros_like(data)
                    elif magnitude and kind in view.vocabulary.adds:
                        data = np.zeros_like(data)  # a partial fold's shift: Σ|W||x| reads |x| alone
                elif t >= 0 and (kind, slot) in _SHAPE_SLOTS:
                    # a shape computed at run time: alone, the op takes its output's static shape
                    data = np.asarray(sg.tensors[op.outputs[0]].shape, dtype=np.int32)
                inputs.append(tensor(t, data))
            op.inputs = inputs
            op.outputs = [tensor(t) for t in op.outputs]
            if magnitude and hasattr(op.builtinOptions, "fusedActivationFunction"):
                op.builtinOptions.fusedActivationFunction = classes.ActivationFunctionType.NONE
            graph.operators.append(op)
        fed = [tensors[int(t)] for t in view.data_inputs(first)]
        out = tensors[sg.operators[ops[-1]].outputs[0]]
        graph.inputs += fed
        graph.outputs.append(out)
        ends[name] = (fed, out)
    new.subgraphs = [graph]
    return Alone(schema.pack(new), new, ends)
