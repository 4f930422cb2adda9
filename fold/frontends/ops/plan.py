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

from fold.core.affine import Affine, fold_all
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
    kernel = np.asarray(view.value(first.weight))
    bias = None
    if first.bias_input is not None:
        bias, _ = view.bias_value(op, np.asarray(view.value(first.bias_input), dtype=np.float64))
    folds = []
    for c, d in steps:
        affine = d.affine
        if c.chain.bias is not None and d.direction == "backward":  # (b + a) s + t = b s + (a s + t)
            added = channel_vector(view.value(const_operand(view, c.chain.bias)[0]), affine.channels)
            affine = Affine(affine.scale, affine.shift + added * affine.scale)
        folds.append((d.direction, affine))
    folded, new_bias = fold_all(kernel, bias, folds, first.kind, view.groups(op))
    found = LayerFold(op, first.kind, first.weight, folded, new_bias.reshape(-1), [c for c, _ in steps])
    for _, d in steps:
        if d.direction in ("forward", "partial"):
            found.forward = d
        else:
            found.backward = d
    return found
