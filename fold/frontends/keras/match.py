"""Keras frontend, matching: a Functional or Sequential model as scopes, as foldscope's graph,
and as candidate (layer -> BatchNormalization) pairs.

A ``Scope`` pairs one model level's serialized config with its layer objects; nested
models become child scopes. The graph, the candidate pairs and the rewrite all read scopes,
so they agree on names and connectivity. Nothing here modifies the model.
"""

from __future__ import annotations

import copy
import functools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import keras
import networkx as nx
import numpy as np

from fold.core.errors import FoldError, at
from fold.core.affine import bn_affine
from fold.core.graph import Vocabulary
from fold.core.kinds import KERAS_KINDS
from fold.core.rules import Candidate

History = tuple[str, int, int]

#: Keras layer classes by role in foldscope's graph.
VOCABULARY = Vocabulary(
    inputs=frozenset({"InputLayer"}),
    bns=frozenset({"BatchNormalization"}),
    activations=frozenset({"Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "ThresholdedReLU"}),
    homogeneous=frozenset({"ReLU", "LeakyReLU", "PReLU"}),
    models=frozenset({"Functional", "Sequential", "Model"}),
)
_SUMMARY_KEYS = (
    "units", "filters", "kernel_size", "strides", "padding", "output_padding", "dilation_rate",
    "groups", "depth_multiplier", "activation", "use_bias", "data_format", "axis", "epsilon",
    "center", "scale", "rate", "pool_size", "negative_slope", "max_value", "target_shape",
)


@dataclass
class Scope:
    """One model level: its config entries by layer name, layer objects, and connectivity.

    refs:    how many times each layer's output is read (by layers or as a model output).
    inputs_of: layer name -> histories of its first call's tensor arguments.
    """

    name: str
    kind: str  # "functional" | "sequential"
    config: dict
    entries: dict[str, dict]
    layers: dict[str, keras.layers.Layer]
    refs: Counter
    inputs_of: dict[str, list[History]]
    call_kwargs: dict[str, dict]
    shapes: dict[str, tuple | None]  # layer name -> shape of its (first) input tensor
    outputs: list[str]
    inputs: list[str]
    children: dict[str, "Scope"] = field(default_factory=dict)
    source: dict = field(default_factory=dict)  # the whole serialized form this scope was read from

    def walk(self, prefix: str = "") -> Iterator[tuple[str, "Scope"]]:
        """This scope and every nested one, with the path prefix of their layers."""
        yield prefix, self
        for name, child in self.children.items():
            yield from child.walk(f"{prefix}{name}/")


def serialize(model: keras.Model) -> dict:
    """A deep copy of the model's serialized form, without its compile config."""
    try:
        ser = copy.deepcopy(keras.saving.serialize_keras_object(model))
    except NotImplementedError as exc:
        raise FoldError(
            f"Model '{model.name}' is a subclassed model without get_config(); foldscope reads "
            "Functional and Sequential models."
        ) from exc
    ser.pop("compile_config", None)
    return ser


def is_history(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], str)
            and isinstance(value[1], int) and isinstance(value[2], int))


def tensor_refs(value: Any) -> Iterator[tuple[History, tuple | None]]:
    """Every Keras tensor reference in a call's args/kwargs: (history, shape)."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            cfg = value["config"]
            shape = cfg.get("shape")
            yield tuple(cfg["keras_history"]), tuple(shape) if shape is not None else None
            return
        for item in value.values():
            yield from tensor_refs(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensor_refs(item)


def histories(value: Any) -> Iterator[History]:
    """Every [layer, node, tensor] triple in an input_layers / output_layers structure."""
    if is_history(value):
        yield tuple(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from histories(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from histories(item)


def build_scope(ser: dict, model: keras.Model) -> Scope:
    """The scope tree of a serialized Functional or Sequential model and its layer objects."""
    cls = ser.get("class_name")
    cfg = ser.get("config") or {}
    if cls == "Sequential":
        scope = _sequential_scope(cfg, model)
    elif "layers" in cfg and "output_layers" in cfg:
        scope = _functional_scope(cfg, model)
    else:
        raise FoldError(
            f"Model '{model.name}' is a {cls}, not a Functional or Sequential model; foldscope "
            "cannot read its layer graph."
        )
    for name, entry in scope.entries.items():
        layer = scope.layers.get(name)
        if isinstance(layer, keras.Model) and _is_graph_model(entry):
            scope.children[name] = build_scope(entry, layer)
    scope.source = ser
    return scope


def _is_graph_model(entry: dict) -> bool:
    cfg = entry.get("config") or {}
    return entry.get("class_name") == "Sequential" or ("layers" in cfg and "output_layers" in cfg)


def _layer_map(model: keras.Model) -> dict[str, keras.layers.Layer]:
    layers = {layer.name: layer for layer in model.layers}
    # Sequential.layers leaves out its InputLayer; the config keeps it.
    for tensor in getattr(model, "inputs", None) or []:
        history = getattr(tensor, "_keras_history", None)
        if history is not None:
            layers.setdefault(history[0].name, history[0])
    return layers


def _functional_scope(cfg: dict, model: keras.Model) -> Scope:
    entries = {e["name"]: e for e in cfg["layers"]}
    refs: Counter = Counter()
    inputs_of: dict[str, list[History]] = {}
    call_kwargs: dict[str, dict] = {}
    shapes: dict[str, tuple | None] = {}
    for name, entry in entries.items():
        for i, node in enumerate(entry.get("inbound_nodes") or []):
            found = list(tensor_refs([node.get("args", ()), node.get("kwargs", {})]))
            for history, _ in found:
                refs[history[0]] += 1
            if i == 0:
                inputs_of[name] = [h for h, _ in found]
                shapes[name] = found[0][1] if found else None
                call_kwargs[name] = node.get("kwargs") or {}
    outputs = [h[0] for h in histories(cfg["output_layers"])]
    refs.update(outputs)
    return Scope(
        name=cfg.get("name", model.name), kind="functional", config=cfg, entries=entries,
        layers=_layer_map(model), refs=refs, inputs_of=inputs_of, call_kwargs=call_kwargs,
        shapes=shapes, outputs=outputs, inputs=[h[0] for h in histories(cfg["input_layers"])],
    )


def _sequential_scope(cfg: dict, model: keras.Model) -> Scope:
    entries = {(e.get("config") or {}).get("name"): e for e in cfg.get("layers", [])}
    names = list(entries)
    layers = _layer_map(model)
    inputs_of, shapes = {}, {}
    for prev, name in zip(names, names[1:]):
        inputs_of[name] = [(prev, 0, 0)]
        shapes[name] = output_shape(layers.get(prev))
    return Scope(
        name=cfg.get("name", model.name), kind="sequential", config=cfg, entries=entries,
        layers=layers, refs=Counter(names), inputs_of=inputs_of,
        call_kwargs={n: {} for n in names}, shapes=shapes, outputs=names[-1:], inputs=names[:1],
    )


def output_shape(layer: keras.layers.Layer | None) -> tuple | None:
    """A built layer's output shape (None when it has none)."""
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError, TypeError):
        return None


def calls(entry: dict) -> int:
    """How many times a layer is applied (a Sequential entry records none: once)."""
    return max(1, len(entry.get("inbound_nodes") or ()))


def _summary(entry: dict) -> dict:
    cfg = entry.get("config") or {}
    return {k: cfg[k] for k in _SUMMARY_KEYS if k in cfg and cfg[k] is not None}


def scope_graph(scope: Scope) -> nx.DiGraph:
    """foldscope's graph (schema in ``fold.core.graph``) of one scope and, nested, its children."""
    graph = nx.DiGraph(name=scope.name, frontend="keras", inputs=list(scope.inputs),
                       outputs=list(scope.outputs))
    for name, entry in scope.entries.items():
        op = entry.get("registered_name") or entry.get("class_name", "?")
        layer = scope.layers.get(name)
        attrs = {
            "op": op,
            "role": VOCABULARY.role(entry.get("class_name", ""), entry.get("class_name") in KERAS_KINDS),
            "config": _summary(entry),
            "weights": {w.name: tuple(w.shape) for w in getattr(layer, "weights", [])}
            if name not in scope.children else {},
            "calls": calls(entry),
        }
        if name in scope.children:
            attrs["subgraph"] = scope_graph(scope.children[name])
        graph.add_node(name, **attrs)
    if scope.kind == "sequential":
        for name, sources in scope.inputs_of.items():
            graph.add_edge(sources[0][0], name, shape=scope.shapes.get(name))
        return graph
    for name, entry in scope.entries.items():
        for node in entry.get("inbound_nodes") or []:
            for history, shape in tensor_refs([node.get("args", ()), node.get("kwargs", {})]):
                graph.add_edge(history[0], name, shape=shape)
    return graph


def model_graph(model: keras.Model) -> nx.DiGraph:
    """foldscope's graph of a Keras Functional or Sequential model."""
    return scope_graph(build_scope(serialize(model), model))


# -- candidates ---------------------------------------------------------------------------------

@dataclass
class KerasCandidate(Candidate):
    """A Candidate plus what only a Keras layer can get wrong.

    special_kernel: why the producer's kernel is not a plain float weight (quantized, LoRA), or None.
    """

    special_kernel: str | None = None


def _normalize_axes(axis: Any, rank: int | None) -> tuple[int, ...]:
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    if rank is None:
        return tuple(int(a) for a in axes)
    return tuple(int(a) % rank for a in axes)


def layer_weights(layer: keras.layers.Layer) -> dict[str, np.ndarray]:
    """A layer's weights by name ("kernel", "bias", "pointwise_kernel", ...)."""
    return {w.name: np.asarray(w.numpy()) for w in layer.weights}


def special_kernel(layer: keras.layers.Layer) -> str | None:
    """Why a layer's kernel is not a plain float weight (quantized, LoRA), or None."""
    policy = getattr(layer, "dtype_policy", None)
    mode = getattr(policy, "quantization_mode", None)
    if mode:
        return f"quantized ({mode})"
    if getattr(layer, "lora_enabled", False):
        return "LoRA-adapted"
    return None


def _candidate(scope: Scope, prefix: str, bn_name: str) -> KerasCandidate | None:
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
    kind = KERAS_KINDS.get(op) if layer is not None else None
    shape = scope.shapes.get(bn_name)
    rank = len(shape) if shape is not None else None
    cfg = entry.get("config") or {}
    c = KerasCandidate(
        layer=prefix + producer, bn=prefix + bn_name, op=op, kind=kind, reads_input=op == "InputLayer",
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
        c.special_kernel = special_kernel(layer)
        if c.special_kernel is None:
            values = layer_weights(layer)
            c.set_kernel(values[kind.weight], values.get("bias"))
    return c


def _following_bn(sc: Scope, name: str, c: KerasCandidate) -> str | None:
    """The BatchNormalization that alone reads layer ``name``'s output, once, on the same axes, when
    there is one: its map composes with the candidate's."""
    if sc.refs[name] != 1 or calls(sc.entries[name]) > 1:
        return None
    after = [n for n, sources in sc.inputs_of.items() if sources and sources[0][0] == name]
    if len(after) != 1 or sc.entries[after[0]].get("class_name") != "BatchNormalization":
        return None
    bn = sc.layers[after[0]]
    shape = sc.shapes.get(after[0])
    if _normalize_axes(bn.axis, len(shape) if shape is not None else None) != c.bn_axes or \
            calls(sc.entries[after[0]]) > 1 or len(sc.inputs_of[after[0]]) != 1:
        return None
    return after[0]


def _compose_following(sc: Scope, prefix: str, c: KerasCandidate, name: str) -> list[str]:
    """Extend ``c`` (whose last BN is ``name``) with the BatchNormalizations that follow it one after the
    other; returns their names."""
    taken = []
    while (after := _following_bn(sc, name, c)) is not None:
        bn = sc.layers[after]
        c.maps.append(bn_affine(bn.moving_mean.numpy(), bn.moving_variance.numpy(), float(bn.epsilon),
                                bn.gamma.numpy() if bn.scale else None, bn.beta.numpy() if bn.center else None))
        c.bn_training = c.bn_training or sc.call_kwargs.get(after, {}).get("training") is True
        c.bn = f"{c.bn}+{prefix}{after}"
        taken.append(after)
        name = after
    if taken:
        c.absorbs = {"bn": 1 + len(taken), "affine": 0}
        c.notes["maps"] = " -> ".join(c.bn.split("+"))
    return taken


Alternatives = Callable[[Scope, str, KerasCandidate, str, str], list[KerasCandidate]]


def candidates(scope: Scope, alternatives: Alternatives | None = None) -> list[KerasCandidate]:
    """Every BatchNorm of every scope with the layer that feeds it, in model order; BatchNorms that follow
    one another, each read by the next alone, are one candidate of their maps composed. ``alternatives``
    (scope, path prefix, candidate, its first and last BN) gives a candidate's other directions."""
    found = []
    for prefix, sc in scope.walk():
        taken: set[str] = set()
        for name, entry in sc.entries.items():
            if entry.get("class_name") == "BatchNormalization" and name not in taken:
                with at(f"layer '{prefix}{name}' (BatchNormalization)"):
                    c = _candidate(sc, prefix, name)
                    if c is not None:
                        following = _compose_following(sc, prefix, c, name)
                        taken.update(following)
                        if alternatives is not None:  # read only if it does not fold backward
                            c.alternatives = functools.partial(alternatives, sc, prefix, c, name,
                                                               (following or [name])[-1])
                if c is not None:
                    found.append(c)
    return found


def layer_at(model: keras.Model, path: str) -> keras.layers.Layer:
    """The layer at a graph path ("outer/inner" inside nested models)."""
    layer = model
    for part in path.split("/"):
        layer = layer.get_layer(part)
    return layer
