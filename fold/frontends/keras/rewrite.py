"""Keras frontend, rewrite: rebuild a model with every folded pair applied.

BEFORE                                   AFTER
    x -> Conv2DTranspose(use_bias=?)         x -> Conv2DTranspose(use_bias=True,
      -> BatchNormalization                          kernel=W*s, bias=b*s+t)
      -> consumers                             -> consumers

The rewrite edits a deep copy of the serialized model (BN entries removed, references to a
BN's output redirected to its producer, folded layers given a bias), deserializes it with
``safe_mode`` on, and copies every weight across by layer name. The user's model is never
touched.
"""

from __future__ import annotations

import copy
from typing import Any

import keras
import numpy as np

from fold.core.affine import fold_kernel
from fold.core.kinds import KERAS_KINDS
from fold.core.rules import Decision
from fold.errors import FoldError, one_line
from fold.frontends.keras.match import Scope, build_scope, is_history, layer_weights, serialize


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


def _rewrite_config(scope: Scope, folded: dict[str, str], prefix: str = "") -> None:
    """Edit ``scope.config`` in place: drop folded BNs, give their producers a bias, rewire."""
    here = {bn[len(prefix):]: layer[len(prefix):] for bn, layer in folded.items()
            if bn.startswith(prefix) and "/" not in bn[len(prefix):]}
    for name, child in scope.children.items():
        _rewrite_config(child, folded, f"{prefix}{name}/")
    if not here:
        return
    redirects = {bn: scope.inputs_of[bn][0] for bn in here}
    for bn, target in redirects.items():  # a BN after a BN: both go, and what read the second reads the layer
        while target[0] in here:
            target = redirects[target[0]]
        redirects[bn] = target
    kept = []
    for entry in scope.config["layers"]:
        name = entry.get("name") or entry["config"].get("name")
        if name in here:
            continue
        if name in here.values():
            entry["config"]["use_bias"] = True
        if scope.kind == "functional":
            entry["inbound_nodes"] = _redirect(entry.get("inbound_nodes") or [], redirects)
        kept.append(entry)
    scope.config["layers"] = kept
    if scope.kind == "functional":
        scope.config["output_layers"] = _redirect(scope.config["output_layers"], redirects)


def _folded_weights(layer: keras.layers.Layer, decision: Decision) -> dict[str, np.ndarray]:
    kind = KERAS_KINDS[layer.__class__.__name__]
    values = layer_weights(layer)
    kernel, bias = fold_kernel(values[kind.weight], values.get("bias"), decision.affine, kind)
    values[kind.weight] = kernel
    values["bias"] = bias
    return values


def _copy_weights(original: keras.Model, rebuilt: keras.Model, decisions: dict[str, Decision],
                  prefix: str = "") -> None:
    for layer in rebuilt.layers:
        source = original.get_layer(layer.name)
        path = prefix + layer.name
        if isinstance(layer, keras.Model) and isinstance(source, keras.Model):
            _copy_weights(source, layer, decisions, f"{path}/")
        elif path in decisions:
            values = _folded_weights(source, decisions[path])
            for w in layer.weights:
                w.assign(values[w.name])
        else:
            layer.set_weights(source.get_weights())


def rebuild(model: keras.Model, decisions: list[Decision], ser: dict | None = None) -> tuple[keras.Model, dict]:
    """A new model with every folded decision applied, and the serialized form it was built from;
    ``model`` is left as it was.

    The config is edited on a copy (of ``ser``, the model's serialized form, when the caller
    has it; else a fresh one), so the caller's scope stays valid.
    """
    folded = {bn: d.layer for d in decisions if d.folded for bn in d.bn_nodes}
    ser = copy.deepcopy(ser) if ser is not None else serialize(model)
    _rewrite_config(build_scope(ser, model), folded)
    built_from = copy.deepcopy(ser)
    try:
        rebuilt = keras.saving.deserialize_keras_object(ser, safe_mode=True)
    except Exception as exc:  # a layer that cannot be rebuilt from its own config
        raise FoldError(f"Model '{model.name}' could not be rebuilt from its config: {one_line(exc)}") from exc
    _copy_weights(model, rebuilt, {d.layer: d for d in decisions if d.folded})
    return rebuilt, built_from
