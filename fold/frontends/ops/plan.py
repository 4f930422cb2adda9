"""The weights every fold leaves a layer with, written once for every op-level format.

A layer can take several maps: its own BN backward (output side) and, forward, the map before it
(input side), as a pre-activation network's Concat -> BN -> ReLU -> Conv -> BN does; each piece of a
concat split is a backward fold. The folds of one layer are applied in turn to its kernel and bias,
in float64 (any order gives the same map: BN_1(W (s_0 x + t_0) + b) = (s_1 W s_0) x + s_1 (W t_0 +
b) + t_1), and the result is cast back to the kernel's dtype once. Layers come one at a time, so
that a model with external data holds one layer's weights in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from fold.core.affine import Affine, fold_forward, fold_kernel
from fold.core.kinds import Kind
from fold.core.rules import Decision, chosen
from fold.frontends.ops.candidates import OpCandidate
from fold.frontends.ops.chains import channel_vector, const_operand
from fold.frontends.ops.view import Op, OpView


@dataclass
class LayerFold:
    """One layer's new weights: ``kernel`` in its stored dtype, ``bias`` in float64 (what its bias input
    or an Add after it carries), and the decisions that made them (``backward``: the one that folded
    the map after it, whose chain's last op names the Add of a layer without a bias input)."""

    op: Op
    kind: Kind
    weight: str
    kernel: np.ndarray
    bias: np.ndarray
    candidates: list[OpCandidate] = field(default_factory=list)
    backward: Decision | None = None
    forward: Decision | None = None


def _pieces(folds: Sequence[tuple[OpCandidate, Decision]]) -> Iterator[tuple[OpCandidate, Decision]]:
    """Every (candidate, decision) that changes one layer: a concat split's pieces one by one."""
    for c, d in folds:
        if not d.folded:
            continue
        taken = chosen(c, d)
        if d.pieces:
            yield from zip(taken.pieces, d.pieces)
        else:
            yield taken, d


def layer_folds(view: OpView, folds: Sequence[tuple[OpCandidate, Decision]]) -> Iterator[LayerFold]:
    """Each changed layer's final weights, in the order its first fold comes."""
    by_layer: dict[str, list[tuple[OpCandidate, Decision]]] = {}
    for c, d in _pieces(folds):
        by_layer.setdefault(d.layer, []).append((c, d))
    for layer, steps in by_layer.items():
        yield _fold_layer(view, view.by_name[layer], steps)


def _fold_layer(view: OpView, op: Op, steps: list[tuple[OpCandidate, Decision]]) -> LayerFold:
    first = steps[0][0]
    dtype = np.asarray(view.value(first.weight)).dtype
    kernel = np.asarray(view.value(first.weight), dtype=np.float64)
    bias = np.zeros(0)
    if first.bias_input is not None:
        bias, _ = view.bias_value(op, np.asarray(view.value(first.bias_input), dtype=np.float64))
    found = LayerFold(op, first.kind, first.weight, kernel, bias, [c for c, _ in steps])
    for c, d in steps:
        current = found.bias if found.bias.size else None
        if d.direction in ("forward", "partial"):
            affine = d.affine if d.direction == "forward" else Affine(d.affine.scale, np.zeros_like(d.affine.shift))
            found.kernel, found.bias = fold_forward(found.kernel, current, affine, c.kind, c.groups)
            found.forward = d
            continue
        added = None if c.chain.bias is None or d.window is not None else \
            channel_vector(view.value(const_operand(view, c.chain.bias)[0]), d.affine.channels)
        if added is not None:
            current = added if current is None else current.reshape(-1) + added
        found.kernel, found.bias = fold_kernel(found.kernel, current, d.affine, c.kind, c.groups)
        found.backward = d
    found.kernel = found.kernel.astype(dtype)
    found.bias = np.asarray(found.bias, np.float64).reshape(-1)
    return found
