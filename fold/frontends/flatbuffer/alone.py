"""Folded layers alone (the verdict's rule 1) in a TFLite or circle model: one new model holding each
layer's op path by itself, its data inputs made model inputs, for the format's runtime to run."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fold.frontends.flatbuffer.model import FlatModel
from fold.frontends.flatbuffer.view import SLOTS, FlatView, view_of

#: Ops looked through at most from a layer to what stands for its BN's output.
_MAX_PATH = 8


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


def ops_until(view: FlatView, layer: int, until: str) -> list[int] | None:
    """Op indices from ``layer`` to the op named ``until``, each reading the one before."""
    path = [view.ops[layer]]
    while path[-1].id != until:
        after = view.readers(path[-1].output)
        if len(after) != 1 or len(path) > _MAX_PATH:
            return None
        path.append(after[0])
    return [op.index for op in path]


def _paths(model: FlatModel, layers: Sequence[tuple[str, str]], magnitude: bool) -> dict[str, list[int]]:
    """layer -> the op indices run alone for it: through ``until``, or, for ``magnitude``, through the
    ops that only move its values (reshapes, relayouts; not an activation kept as its own op); a layer
    with no such path is left out."""
    view = view_of(model)
    vocab = view.vocabulary
    moves = vocab.identities | vocab.reshapes | vocab.relayouts
    paths = {}
    for name, until in layers:
        op = view.by_name.get(name)
        path = None if op is None else ops_until(view, op.index, until)
        if path is not None and magnitude:
            kept = next((k for k, i in enumerate(path[1:], 1) if view.ops[i].type not in moves), len(path))
            path = path[:kept]
        if path is not None:
            paths[name] = path
    return paths


def alone(model: FlatModel, layers: Sequence[tuple[str, str]], magnitude: bool) -> Alone | None:
    """One model holding the op path of each (layer, until) alone (``_paths``; in order, each op reading
    the one before), every path with tensors of its own: the first op's data inputs become model inputs;
    constants are copied (a weight behind a DEQUANTIZE as the float32 values it makes; ``magnitude``:
    |filter|, zero bias, no fused activation). None when no layer has such a path."""
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

        first = view.ops[ops[0]]
        slots = SLOTS.get(first.type, (None, None))
        for i in ops:
            op = copy.deepcopy(sg.operators[i])
            if op.opcodeIndex not in codes:
                new.operatorCodes.append(copy.deepcopy(tree.operatorCodes[op.opcodeIndex]))
                codes[op.opcodeIndex] = len(new.operatorCodes) - 1
            op.opcodeIndex = codes[op.opcodeIndex]
            inputs = []
            for slot, t in enumerate(op.inputs):
                data = None
                if t >= 0 and view.is_constant(str(t)):
                    data = view.value(str(t))
                    if magnitude and i == ops[0] and slot in slots:
                        data = np.abs(data) if slot == slots[0] else np.zeros_like(data)
                elif i == ops[0] and slot == 0 and first.type == "TRANSPOSE_CONV":
                    # an output shape computed at run time: alone, the op takes its output's static shape
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
