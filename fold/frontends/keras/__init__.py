"""The Keras frontend: Functional and Sequential models from .keras, .h5 and .hdf5 files.

    match.py    scopes, foldscope's graph and the candidate pairs of a model
    directions.py  a BN's other directions: forward, partial across a ReLU, split over a Concatenate
    rules.py    the shared rules plus Keras's own guard (plain kernels)
    rewrite.py  rebuild the model from an edited copy of its config
    io.py       safe loading (safe_mode on), saving, inputs, outputs, running
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import keras
import networkx as nx
import numpy as np

from fold.core.kinds import KERAS_KINDS
from fold.core.rules import Candidate, Decision
from fold.core.verification import InputSpec, OutputSpec
from fold.frontends.formats import FRONTENDS, LayerKernel
from fold.frontends.keras import io, match
from fold.frontends.keras.directions import alternatives
from fold.frontends.keras.rewrite import rebuild
from fold.frontends.keras.rules import RULES


class KerasFrontend:
    """``fold.frontends.formats.Frontend`` for ``keras.Model`` objects.

    A model's scopes (its serialized config with its layers) are read once and kept while the
    model lives: candidates and graph read the same ones. A built Keras model's architecture
    cannot change, and the values the rules read are taken from the layers each time.
    """

    format = FRONTENDS["keras"]
    rules = RULES
    vocabulary = match.VOCABULARY

    def __init__(self) -> None:
        self._scopes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _scope(self, model: keras.Model, ser: dict | None = None) -> match.Scope:
        scope = self._scopes.get(model)
        if scope is None:
            scope = self._scopes[model] = match.build_scope(ser or match.serialize(model), model)
        return scope

    def load(self, path: Path) -> keras.Model:
        return io.read_model(path)  # checked by ``fold.engine.pipeline.load``, with the caller's size limit

    def name_of(self, model: keras.Model) -> str:
        return model.name

    def candidates(self, model: keras.Model) -> list[Candidate]:
        return list(match.candidates(self._scope(model), alternatives))

    def rewrite(self, model: keras.Model, folds: Sequence[tuple[Candidate, Decision]]) -> keras.Model:
        folded, built_from = rebuild(model, folds, self._scope(model).source)
        self._scope(folded, built_from)  # the folded model's scope: the config it was built from
        return folded

    def graph(self, model: keras.Model) -> nx.DiGraph:
        return match.scope_graph(self._scope(model))

    def inputs(self, model: keras.Model) -> list[InputSpec]:
        return io.input_specs(model)

    def outputs(self, model: keras.Model) -> list[OutputSpec]:
        return io.output_specs(model)

    def runner(self, model: keras.Model) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
        return functools.partial(io.run, model)

    def tapper(self, model: keras.Model, nodes: Sequence[str] = (), feeds: Sequence[str] = ()):
        return io.tapper(model, nodes, feeds)

    def layer_runner(self, model: keras.Model, layers: Sequence[tuple[str, str]], magnitude: bool = False):
        return io.layer_runner(model, layers, magnitude)

    def kernel(self, model: keras.Model, layer: str) -> LayerKernel:
        found = match.layer_at(model, layer)
        kind = KERAS_KINDS.get(type(found).__name__)
        if kind is None:
            raise ValueError(f"'{layer}' is a {type(found).__name__}, not a layer with a kernel foldscope reads.")
        values = match.layer_weights(found)
        taps = None
        if "depthwise_kernel" in values and kind.weight == "pointwise_kernel":  # separable: both sums
            depthwise = values["depthwise_kernel"].shape
            taps = int(np.prod(depthwise[:-2])) + int(values[kind.weight].shape[-2])
        return LayerKernel(values[kind.weight], values.get("bias"), kind, taps=taps)

    def with_kernels(self, model: keras.Model, kernels: Mapping[str, LayerKernel]) -> keras.Model:
        clone = keras.models.clone_model(model, clone_function=io.copy_layer)
        index = {id(w): i for i, w in enumerate(model.weights)}
        values = model.get_weights()  # then every weight is set once, the new kernels among them
        for path, new in kernels.items():
            layer = match.layer_at(model, path)
            kernel = getattr(layer, new.kind.weight)
            values[index[id(kernel)]] = np.asarray(new.kernel, dtype=layer.dtype).reshape(tuple(kernel.shape))
            if new.bias is not None:
                values[index[id(layer.bias)]] = np.asarray(new.bias, dtype=layer.dtype).reshape(tuple(layer.bias.shape))
        clone.set_weights(values)
        return clone

    def signature_order(self, model: keras.Model, count: int) -> list[int] | None:
        return None  # a Keras model's outputs are named by their layers

    def write(self, model: keras.Model, path: Path) -> None:
        io.save_model(model, path)

    def to_bytes(self, model: keras.Model) -> bytes:
        return io.to_bytes(model)

    def runtime(self, model: keras.Model) -> str:
        import tensorflow as tf

        return f"TensorFlow {tf.__version__} (Keras {keras.__version__})"


FRONTEND = KerasFrontend()
