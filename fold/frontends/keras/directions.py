"""Keras frontend, the other directions a BatchNormalization folds in (``fold.core.rules``): forward into the
layer after it, partially across a ReLU, split over the Concatenate before it.

    forward   x -> BN -> [Flatten, Reshape] -> layer      x -> [Flatten, Reshape] -> layer'
    partial   x -> BN -> ReLU -> [...] -> layer           x -> Rescaling(1, t / s) -> ReLU -> [...] -> layer'
    concat    layer_k -> Concatenate -> BN                layer_k' -> Concatenate

A partial fold's shift stays as a ``Rescaling`` layer (scale 1, offset t / s per channel, channels last)
under the BN's name. Which input channel of the layer reads which channel of the BN, through Flatten and
Reshape, is ``fold.core.affine.input_channels`` on the layers' shapes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fold.core.affine import input_channels
from fold.core.kinds import KERAS_KINDS
from fold.core.rules import Forward, Split, mixed_reason, unreached
from fold.frontends.keras.match import VOCABULARY, KerasCandidate, Scope, calls, layer_weights, output_shape, special_kernel

#: Layers walked at most from a BN to the layer it folds forward into.
MAX_PATH = 6
#: Keras layers that only reshape (row-major) what they read.
RESHAPES = frozenset({"Flatten", "Reshape"})


def _class(sc: Scope, name: str) -> str:
    entry = sc.entries[name]
    return entry.get("registered_name") or entry.get("class_name", "?")


def readers(sc: Scope, name: str) -> list[str]:
    """The layers of the scope whose call reads layer ``name``'s output."""
    return [n for n, found in sc.inputs_of.items() if any(h[0] == name for h in found)]


def _homogeneous(sc: Scope, name: str) -> bool:
    """A positively homogeneous activation layer: ReLU (no cap, no threshold), LeakyReLU, PReLU."""
    cls, cfg = _class(sc, name), sc.entries[name].get("config") or {}
    if cls == "ReLU":
        return cfg.get("max_value") is None and not cfg.get("threshold")
    if cls == "Activation":
        return cfg.get("activation") in ("relu", "leaky_relu")
    return cls in VOCABULARY.homogeneous


def _static(shape) -> tuple[int, ...] | None:
    if shape is None or any(d is None for d in tuple(shape)[1:]):
        return None
    return (1, *(int(d) for d in tuple(shape)[1:]))


def _padding(sc: Scope, name: str) -> str | None:
    """How a Keras conv pads its input (None: 'valid', or 'same' that pads nothing: a 1-wide kernel at stride 1)."""
    cfg = sc.entries[name].get("config") or {}
    mode = cfg.get("padding", "valid")
    if mode == "valid":
        return None
    shape = sc.shapes.get(name)
    kernel, strides = cfg.get("kernel_size") or (), cfg.get("strides") or ()
    dilation = cfg.get("dilation_rate") or (1,) * len(kernel)
    spatial = (shape[2:] if cfg.get("data_format") == "channels_first" else shape[1:-1]) if shape else None
    if mode == "same" and spatial is not None and None not in spatial:
        total = sum(max(0, (-(-n // s) - 1) * s + (k - 1) * d + 1 - n)
                    for n, k, s, d in zip(spatial, kernel, strides, dilation))
        if total == 0:
            return None
    return f"padding '{mode}'"


def forward_alternative(sc: Scope, prefix: str, c: KerasCandidate, first: str, last: str) -> KerasCandidate | None:
    """The candidate's BNs (``first`` to ``last``) folded forward, or partially across a ReLU, into the layer
    that reads them; None when their output reaches no layer (then ``c.elsewhere`` says what it reaches)."""
    f = Forward(source=prefix + first)
    applied = max(calls(sc.entries[bn.removeprefix(prefix)]) for bn in c.bn.split("+"))
    if applied > 1:
        f.readers.append(f"'{c.bn}' is applied {applied} times")
    name, path, target = last, [], None
    for _ in range(MAX_PATH):
        if name in sc.outputs:
            f.readers.append(f"'{prefix}{name}' is a model output")
        after = readers(sc, name)
        if len(after) != 1 or sc.refs[name] != 1 + (name in sc.outputs):
            f.stop = f"is read by {len(after)} layers" if len(after) != 1 else f"is read {sc.refs[name]} times"
            break
        name = after[0]
        cls = _class(sc, name)
        if cls in KERAS_KINDS and name not in sc.children:
            target = name
            break
        if cls in RESHAPES:
            path.append(name)
        elif f.activation is None and _homogeneous(sc, name):
            path.append(name)
            f.activation = (sc.entries[name].get("config") or {}).get("activation") if cls == "Activation" else cls
        else:
            break
    f.path, f.through = [prefix + p for p in path], [f"{_class(sc, p)} '{prefix}{p}'" for p in path]
    if target is None:
        stop = name if name != last else ""
        c.elsewhere["forward"] = unreached(c.bn, f, _class(sc, stop) if stop else "", prefix + stop)
        return None
    kind, layer = KERAS_KINDS[_class(sc, target)], sc.layers[target]
    alt = dataclasses.replace(c, direction="forward", forward=f, alternatives=[], elsewhere={}, layer=prefix + target,
                              op=_class(sc, target), kind=kind, notes=dict(c.notes), output_node=None,
                              calls=calls(sc.entries[target]), activation=None, consumers=1, kernel_absmax=None,
                              bias=None, channels=None, kernel=None)
    alt.special_kernel = special_kernel(layer)
    if kind.family == "separable":
        alt.special_kernel = "separable (its input side is a depthwise kernel, which takes no map forward here)"
    f.padding, f.transposed = _padding(sc, target), kind.family == "transpose"
    f.features, f.mismatch = _features(sc, c, last, path, target)
    f.entry = prefix + (first if f.activation else (path[0] if path else target))
    alt.compute_dtype = getattr(layer, "compute_dtype", "float32")
    if alt.special_kernel is None:
        values = layer_weights(layer)
        alt.kernel = values[kind.weight]
        alt.set_kernel(alt.kernel, values.get("bias"))
        alt.groups = int((sc.entries[target].get("config") or {}).get("groups", 1))
        if alt.groups > 1:
            f.mismatch = f"'{prefix}{target}' is a grouped convolution ({alt.groups} groups), whose input channels " \
                         "do not lie along one axis of its kernel"
    return alt


def _features(sc: Scope, c: KerasCandidate, last: str, path: list[str], target: str) -> tuple[np.ndarray | None, str | None]:
    """For each input channel of ``target``, the BN's channel it reads through the reshapes of ``path``."""
    chain = [*path, target]
    shape = _static(sc.shapes.get(chain[0]))
    if shape is None or not c.bn_axes:
        return None, f"the shape '{last}' makes is not known past its batch axis"
    reshapes = []
    for before, after in zip(chain, chain[1:]):
        if _class(sc, before) in RESHAPES:
            found = _static(sc.shapes.get(after))
            if found is None:
                return None, f"the shape after '{before}' is not known"
            reshapes.append(found)
    rank = len(reshapes[-1]) if reshapes else len(shape)
    first_channels = (sc.entries[target].get("config") or {}).get("data_format") == "channels_first"
    at = 1 if first_channels and rank > 2 else rank - 1
    index, mixed = input_channels(shape, c.bn_axes[0] % len(shape), reshapes, at)
    if index is not None:
        return index, None
    return None, mixed_reason(mixed, ", ".join(f"'{p}'" for p in path if _class(sc, p) in RESHAPES) or "nothing")


def split_alternative(sc: Scope, prefix: str, c: KerasCandidate, concat: str, bn: str) -> KerasCandidate:
    """The candidate's map split over Concatenate ``concat``: one backward piece per input."""
    split = Split(prefix + concat)
    alt = dataclasses.replace(c, direction="concat", split=split, alternatives=[], elsewhere={}, pieces=[],
                              output_node=prefix + concat)
    cfg = sc.entries[concat].get("config") or {}
    shape = output_shape(sc.layers.get(concat))
    axis = int(cfg.get("axis", -1)) % len(shape) if shape else None
    if axis is None or (axis,) != c.bn_axes:
        split.problems.append(f"it joins its inputs along axis {axis}, not the channel axis {list(c.bn_axes)}")
        return alt
    others = [r for r in readers(sc, concat) if r != bn]
    split.problems += [f"its output is also read by {_class(sc, r)} '{prefix}{r}'" for r in others]
    if concat in sc.outputs:
        split.problems.append("its output is a model output")
    start = 0
    for history in sc.inputs_of.get(concat) or []:
        name = history[0]
        size = (output_shape(sc.layers.get(name)) or (None,))[axis]
        cls = _class(sc, name)
        if cls not in KERAS_KINDS or name in sc.children:
            also = ", ".join(f"{_class(sc, r)} '{prefix}{r}'" for r in readers(sc, name) if r != concat)
            split.problems.append(f"its input from '{prefix}{name}' comes from {cls}, no layer"
                                  + (f" (also read by {also})" if also else ""))
        elif size is None:
            split.problems.append(f"the channels of '{prefix}{name}' are not known")
        else:
            alt.pieces.append(_piece(sc, prefix, c, name, (start, start + int(size))))
        start += int(size) if size is not None else 0
    return alt


def _piece(sc: Scope, prefix: str, c: KerasCandidate, name: str, window: tuple[int, int]) -> KerasCandidate:
    """The backward candidate of one input of the Concatenate: its layer and the BN's channels it makes."""
    lo, hi = window
    layer, entry = sc.layers[name], sc.entries[name]
    kind = KERAS_KINDS[_class(sc, name)]
    cut = {k: (None if getattr(c, k) is None else np.asarray(getattr(c, k))[lo:hi]) for k in ("gamma", "beta")}
    piece = dataclasses.replace(
        c, layer=prefix + name, op=_class(sc, name), kind=kind, window=window, alternatives=[], elsewhere={}, absorbs={},
        mean=np.asarray(c.mean)[lo:hi], variance=np.asarray(c.variance)[lo:hi], **cut,
        maps=[dataclasses.replace(m, scale=m.scale[lo:hi], shift=m.shift[lo:hi],
                                  terms=None if m.terms is None else m.terms[lo:hi]) for m in c.maps],
        activation=(entry.get("config") or {}).get("activation"), consumers=sc.refs[name],
        calls=max(c.calls, calls(entry)), notes={}, output_node=None, kernel_absmax=None, bias=None, channels=None,
        compute_dtype=getattr(layer, "compute_dtype", "float32"))
    piece.special_kernel = special_kernel(layer)
    if piece.special_kernel is None:
        values = layer_weights(layer)
        piece.set_kernel(values[kind.weight], values.get("bias"))
    return piece


def alternatives(sc: Scope, prefix: str, c: KerasCandidate, first: str, last: str) -> list[KerasCandidate]:
    """The alternatives of a candidate whose BNs run in inference mode: a split over the Concatenate before
    them, when their producer is one, and a forward fold, when their output goes into a layer."""
    if c.bn_training:
        return []
    found = []
    producer = (sc.inputs_of.get(first) or [(None,)])[0][0]
    if producer is not None and _class(sc, producer) == "Concatenate" and producer not in sc.children:
        found.append(split_alternative(sc, prefix, c, producer, first))
    forward = forward_alternative(sc, prefix, c, first, last)
    return found + ([forward] if forward is not None else [])
