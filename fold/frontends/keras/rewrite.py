"""Keras frontend, rewrite: rebuild a model with every folded pair applied.

BEFORE                                   AFTER
    x -> Conv2DTranspose(use_bias=?)         x -> Conv2DTranspose(use_bias=True,
      -> BatchNormalization                          kernel=W*s, bias=b*s+t)
      -> consumers                             -> consumers

The other directions (``fold.frontends.keras.directions``): a BN folded forward goes and what read it
reads its input (the layer after it takes W*s on its input side and b + W t); a partial fold's first
BN becomes a ``Rescaling`` (scale 1, offset t / s) under its name; a BN split over a Concatenate goes
and each layer before it takes its slice. The rewrite edits a deep copy of the serialized model (BN
entries removed or replaced, references to a removed BN's output redirected to what it read, folded
layers given a bias), deserializes it with ``safe_mode`` on, and copies every weight across by layer
name, a folded layer's after every fold it takes (``fold.core.affine.fold_all``). The user's model is
never touched.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from fold.core.affine import fold_all
from fold.core.kinds import KERAS_KINDS
from fold.core.rules import Candidate, Decision, chosen
from fold.core.errors import FoldError, one_line
from fold.frontends.keras.match import Scope, build_scope, is_history, layer_at, layer_weights, serialize


def _redirect(value: Any, redirects: dict[str, list]) -> Any:
    """Replace references to a removed BN's output by references to its producer's output."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            history = value["config"]["keras_history"]
            if history[0] in redirects:
                value = {**value, "config": {**value["config"], "keras_history": list(redirects[history[0]])}}
            return value
        return {k: _redirect(v, redirects) for k, v in value.items()}
    if is_history(value):
        return list(redirects[value[0]]) if value[0] in redirects else value
    if isinstance(value, (list, tuple)):
        return type(value)(_redirect(v, redirects) for v in value)
    return value


@dataclass
class _Plan:
    """What the folds change in the config (graph paths): BNs that go, BNs that stay as a Rescaling of
    their shift (entry), layers that take a bias, and each changed layer's folds in order."""

    removed: set[str] = field(default_factory=set)
    shifts: dict[str, dict] = field(default_factory=dict)
    biased: set[str] = field(default_factory=set)
    folds: dict[str, list[Decision]] = field(default_factory=dict)


def _plan(model: keras.Model, folds: Sequence[tuple[Candidate, Decision]]) -> _Plan:
    plan = _Plan()
    for c, d in folds:
        if not d.folded:
            continue
        for piece in d.pieces or [d]:
            plan.folds.setdefault(piece.layer, []).append(piece)
            plan.biased.add(piece.layer)
        bns = d.bn_nodes
        if d.direction == "partial":  # the first BN stays, as the Rescaling of t / s
            plan.shifts[bns[0]] = _rescaling(layer_at(model, bns[0]), chosen(c, d))
            bns = bns[1:]
        plan.removed.update(bns)
    return plan


def _rescaling(bn: keras.layers.Layer, c: Candidate) -> dict:
    """The serialized Rescaling (scale 1, offset t / s laid out on the BN's axis) a partial fold leaves."""
    affine = c.affine()
    axis = c.bn_axes[0] - len(bn.input.shape) if c.bn_axes else -1  # from the end: leading axes broadcast
    offset = (affine.shift / affine.scale).reshape((-1,) + (1,) * (-1 - axis)).tolist()
    layer = keras.layers.Rescaling(1.0, offset, name=bn.name, dtype=bn.dtype_policy)
    return keras.saving.serialize_keras_object(layer)


def _rewrite_config(scope: Scope, plan: _Plan, prefix: str = "") -> None:
    """Edit ``scope.config`` in place: drop removed BNs, turn partial ones into their Rescaling, give the
    layers that took a fold a bias, rewire."""
    local = lambda paths: {p[len(prefix):] for p in paths if p.startswith(prefix) and "/" not in p[len(prefix):]}  # noqa: E731
    removed, biased = local(plan.removed), local(plan.biased)
    shifts = {p[len(prefix):]: entry for p, entry in plan.shifts.items() if p[len(prefix):] in local(plan.shifts)}
    for name, child in scope.children.items():
        _rewrite_config(child, plan, f"{prefix}{name}/")
    if not (removed or biased or shifts):
        return
    redirects = {bn: scope.inputs_of[bn][0] for bn in removed}
    for bn, target in redirects.items():  # a BN after a BN: both go, and what read the second reads the layer
        while target[0] in removed:
            target = redirects[target[0]]
        redirects[bn] = target
    kept = []
    for entry in scope.config["layers"]:
        name = entry.get("name") or entry["config"].get("name")
        if name in removed:
            continue
        if name in shifts:  # in the BN's place, its call without the BN's own arguments (training, mask)
            called = {"name": entry["name"]} if "name" in entry else {}
            if "inbound_nodes" in entry:
                called["inbound_nodes"] = [{**node, "kwargs": {}} for node in entry["inbound_nodes"]]
            entry = {**shifts[name], **called}
        if name in biased:
            entry["config"]["use_bias"] = True
        if scope.kind == "functional":
            entry["inbound_nodes"] = _redirect(entry.get("inbound_nodes") or [], redirects)
        kept.append(entry)
    scope.config["layers"] = kept
    if scope.kind == "functional":
        scope.config["output_layers"] = _redirect(scope.config["output_layers"], redirects)


def _folded_weights(layer: keras.layers.Layer, decisions: list[Decision]) -> dict[str, np.ndarray]:
    """The layer's weights after every fold it takes (``fold.core.affine.fold_all``), in its dtype."""
    kind = KERAS_KINDS[layer.__class__.__name__]
    values = layer_weights(layer)
    groups = int(getattr(layer, "groups", 1) or 1)
    kernel, bias = fold_all(values[kind.weight], values.get("bias"), [(d.direction, d.affine) for d in decisions],
                            kind, groups)
    values[kind.weight] = kernel
    values["bias"] = bias.astype(kernel.dtype)
    return values


def _copy_weights(original: keras.Model, rebuilt: keras.Model, folds: dict[str, list[Decision]],
                  prefix: str = "") -> None:
    for layer in rebuilt.layers:
        source = original.get_layer(layer.name)
        path = prefix + layer.name
        if isinstance(layer, keras.Model) and isinstance(source, keras.Model):
            _copy_weights(source, layer, folds, f"{path}/")
        elif path in folds:
            values = _folded_weights(source, folds[path])
            for w in layer.weights:
                w.assign(values[w.name])
        elif type(layer) is type(source):  # a partial fold's Rescaling has no weights of the BN's
            layer.set_weights(source.get_weights())


def rebuild(model: keras.Model, folds: Sequence[tuple[Candidate, Decision]], ser: dict | None = None
            ) -> tuple[keras.Model, dict]:
    """A new model with every folded decision applied, and the serialized form it was built from;
    ``model`` is left as it was.

    The config is edited on a copy (of ``ser``, the model's serialized form, when the caller
    has it; else a fresh one), so the caller's scope stays valid.
    """
    plan = _plan(model, folds)
    ser = copy.deepcopy(ser) if ser is not None else serialize(model)
    _rewrite_config(build_scope(ser, model), plan)
    built_from = copy.deepcopy(ser)
    try:
        rebuilt = keras.saving.deserialize_keras_object(ser, safe_mode=True)
    except Exception as exc:  # a layer that cannot be rebuilt from its own config
        raise FoldError(f"Model '{model.name}' could not be rebuilt from its config: {one_line(exc)}") from exc
    _copy_weights(model, rebuilt, plan.folds)
    return rebuilt, built_from
