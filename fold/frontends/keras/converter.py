"""TensorFlow's TFLite converter, the bridge from Keras to TFLite: a Keras model converted (float32), and a
converted file lined up with its Keras original by the converter's naming.

The converter names a tensor after the ops it fused, ``"model/layer/op;model/layer/op;..."``. A tensor
stands for the last Keras layer, in the model's order, among the layers it names; a BN named in the tensor
of a conv or dense op was folded into that op (``ConverterNames``, what ``fold.tools.check`` lines a
Keras original and its converted .tflite up with; ``converter_nodes``, what real int8 reads a Keras
layer's value at).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import keras
import networkx as nx

from fold.core.graph import flatten, node_tensor
from fold.frontends.keras.io import to_tflite
from fold.frontends.tflite.io import model_from_bytes
from fold.frontends.tflite.model import TFLITE_SCHEMA, TfliteModel


def convert(model: keras.Model) -> TfliteModel:
    """What TensorFlow's TFLite converter makes of ``model`` (float32), named after it."""
    return model_from_bytes(to_tflite(model), model.name)


def op_types(converted: TfliteModel) -> list[str]:
    """The converted model's op types, in its operator order."""
    return [TFLITE_SCHEMA.op_type(converted.tree, op) for op in converted.main.operators]


class ConverterNames:
    """Lines a TFLite file from TensorFlow's converter up with its Keras original (``fold.tools.check``'s
    matcher for the pair): a converted tensor stands for the last Keras layer, in the model's order, among
    the layers its name names; a BN named in the tensor of a conv or dense op was folded into that op."""

    def __init__(self, original: nx.DiGraph, candidate: nx.DiGraph, outputs: Mapping[str, str]):
        self.candidate = candidate
        self.outputs = outputs
        order = {n: i for i, n in enumerate(nx.topological_sort(original))}
        self.named: dict[str, list[str]] = {}  # candidate node -> the Keras layers its tensor names
        self.stands_for: dict[str, str] = {}   # Keras layer -> the last candidate node standing for it
        for node in candidate:  # op order: later ops win
            layers = [layer for piece in node_tensor(candidate, node).split(";")
                      if (layer := keras_layer(piece, order)) is not None]
            if layers:
                self.named[node] = layers
                self.stands_for[max(layers, key=order.__getitem__)] = node

    def node(self, graph: nx.DiGraph, node: str) -> str | None:
        return self.outputs.get(node) or self.stands_for.get(node)

    def absorbed(self, graph: nx.DiGraph, bn: str) -> tuple[str, str] | None:
        order = {n: i for i, n in enumerate(nx.topological_sort(graph))}
        for node, layers in self.named.items():
            if bn in layers and self.candidate.nodes[node].get("role") == "linear":
                return node, max(layers, key=order.__getitem__)
        found = self.node(graph, bn)
        return None if found is None else (found, bn)


def converter_nodes(keras_graph: nx.DiGraph, tflite_graph: nx.DiGraph) -> dict[str, str]:
    """Keras layer -> the op of a TFLite file from TensorFlow's converter whose output stands for that
    layer's (the last op that names it), by the converter's op naming."""
    return dict(ConverterNames(flatten(keras_graph), flatten(tflite_graph), {}).stands_for)


def keras_layer(piece: str, layers: Mapping[str, int]) -> str | None:
    """The Keras layer path a converter op name refers to: "net_1/block_1/conv_1/Conv2D" -> "block/conv"."""
    parts = piece.split("/")[1:]
    options = [[p, re.sub(r"_\d+$", "", p)] for p in parts]
    for k in range(len(parts), 0, -1):
        stack = [""]
        for choices in options[:k]:
            stack = [f"{s}/{c}" if s else c for s in stack for c in dict.fromkeys(choices)]
        for path in stack:
            if path in layers:
                return path
    return None
