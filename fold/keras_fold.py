"""Keras frontend, part 2: find candidate pairs, decide them with the rules, rebuild a folded model.

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

from typing import Any

import keras
import numpy as np

from fold.affine import fold_kernel, per_channel_range
from fold.errors import FoldError, one_line
from fold.keras_graph import Scope, build_scope, calls, is_history, serialize
from fold.kinds import KERAS_KINDS
from fold.rules import Candidate, Decision, decide


def _normalize_axes(axis: Any, rank: int | None) -> tuple[int, ...]:
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    if rank is None:
        return tuple(int(a) for a in axes)
    return tuple(int(a) % rank for a in axes)


def layer_weights(layer: keras.layers.Layer) -> dict[str, np.ndarray]:
    """A layer's weights by name ("kernel", "bias", "pointwise_kernel", ...)."""
    return {w.name: np.asarray(w.numpy()) for w in layer.weights}


def _producer_kind(layer: keras.layers.Layer | None, op: str):
    kind = KERAS_KINDS.get(op)
    if kind is None or layer is None:
        return None
    policy = getattr(layer, "dtype_policy", None)
    if getattr(policy, "quantization_mode", None) or getattr(layer, "lora_enabled", False):
        return None  # quantized or LoRA kernels are not a plain weight we can scale
    return kind


def _candidate(scope: Scope, prefix: str, bn_name: str) -> Candidate | None:
    sources = scope.inputs_of.get(bn_name) or []
    if not sources:
        return None
    producer = sources[0][0]
    entry = scope.entries[producer]
    op = entry.get("registered_name") or entry.get("class_name", "?")
    if producer in scope.children:
        op = f"{op} (nested model)"
    layer = scope.layers.get(producer)
    bn = scope.layers[bn_name]
    kind = _producer_kind(layer, op)
    shape = scope.shapes.get(bn_name)
    rank = len(shape) if shape is not None else None
    cfg = entry.get("config") or {}
    c = Candidate(
        layer=prefix + producer, bn=prefix + bn_name, op=op, kind=kind,
        activation=cfg.get("activation"),
        consumers=scope.refs[producer],
        calls=max(calls(scope.entries[n]) for n in (producer, bn_name)),
        channel_axis=None if rank is None else (1 if cfg.get("data_format") == "channels_first" else rank - 1),
        bn_axes=_normalize_axes(bn.axis, rank),
        bn_training=scope.call_kwargs.get(bn_name, {}).get("training") is True,
        gamma=np.asarray(bn.gamma.numpy()) if bn.scale else None,
        beta=np.asarray(bn.beta.numpy()) if bn.center else None,
        mean=np.asarray(bn.moving_mean.numpy()), variance=np.asarray(bn.moving_variance.numpy()),
        epsilon=float(bn.epsilon),
        compute_dtype=getattr(layer, "compute_dtype", "float32"),
    )
    if kind is not None:
        values = layer_weights(layer)
        kernel = values[kind.weight]
        c.bias = values.get("bias")
        ranges = per_channel_range(kernel, kind.out_axes)
        c.channels = ranges.shape[0]
        c.kernel_absmax = np.abs(ranges).max(axis=1)
    return c


def candidates(scope: Scope) -> list[Candidate]:
    """Every BatchNorm of every scope with the layer that feeds it, in model order."""
    found = []
    for prefix, sc in scope.walk():
        for name, entry in sc.entries.items():
            if entry.get("class_name") == "BatchNormalization":
                c = _candidate(sc, prefix, name)
                if c is not None:
                    found.append(c)
    return found


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
    kernel, bias = fold_kernel(values[kind.weight], values.get("bias"), decision.affine, kind.out_axes)
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


def rebuild(model: keras.Model, decisions: list[Decision]) -> keras.Model:
    """A new model with every folded decision applied; ``model`` is left as it was.

    The config is edited on a fresh serialized copy, so the caller's scope stays valid.
    """
    folded = {d.bn: d.layer for d in decisions if d.status == "folded"}
    ser = serialize(model)
    _rewrite_config(build_scope(ser, model), folded)
    try:
        rebuilt = keras.saving.deserialize_keras_object(ser, safe_mode=True)
    except Exception as exc:  # a layer that cannot be rebuilt from its own config
        raise FoldError(f"Model '{model.name}' could not be rebuilt from its config: {one_line(exc)}") from exc
    _copy_weights(model, rebuilt, {d.layer: d for d in decisions if d.status == "folded"})
    return rebuilt


def decide_all(scope: Scope) -> list[Decision]:
    """A decision for every candidate pair of the model, nested models included."""
    return [decide(c) for c in candidates(scope)]
