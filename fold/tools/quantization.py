"""The quantization view of a fold, for every format: what int8 weights lose after folding, and the
remedies (per-channel scales, cross-layer equalization). The math is ``fold.core.quant``.

Per folded layer, for the kernel that actually ships (SQNR in dB, mean over output channels,
and the worst channel):

    per_tensor_before     the unfolded kernel W quantized per tensor, then scaled by s in
                          float: q(W) * s against W * s (what a BN kept in float would give)
    per_tensor_after      the folded kernel, one int8 scale: q(W * s) against W * s
    per_channel_after     the folded kernel, one scale per output channel
    per_tensor_after_cle  the folded kernel after cross-layer equalization, one scale; None
                          where the layer is in no equalized pair

End to end (on the verification's inputs, against the original's float outputs there;
activations in float, every linear layer's weights fake-quantized; the whole output's SQNR):
the original with its BNs in float, the folded model per tensor, per channel, and folded +
equalized per tensor.
Every frontend edits weights (``Frontend.with_kernels``), so every format gets all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fold.core.affine import scale_kernel
from fold.core.graph import Vocabulary, walk
from fold.core.quant import Sqnr, absorb_high_bias, channel_peaks, equalize, output_sqnr, quantize, range_ratio, sqnr
from fold.core.result import FoldResult
from fold.core.rules import Decision
from fold.core.verification import Verification, batch_size
from fold.engine.pipeline import Checked, run, verify, verify_models
from fold.frontends.formats import Frontend, LayerKernel

FIGURES = ("per_tensor_before", "per_tensor_after", "per_channel_after", "per_tensor_after_cle")
OUTPUT_FIGURES = ("original_per_tensor", "folded_per_tensor", "folded_per_channel", "folded_cle_per_tensor")
#: Passes of equalization over a chain of pairs (each pass evens out its neighbours' ranges).
CLE_PASSES = 20


@dataclass
class LayerQuant:
    """The quantization figures of one folded layer (``peaks``: per-channel max |w| of the
    kernel as folded, and after equalization, for the range plots)."""

    layer: str
    bn: str
    channels: int
    range_ratio_after: float | None
    sqnr: dict[str, Sqnr | None]
    peaks_after: np.ndarray
    peaks_cle: np.ndarray | None = None

    def mean_db(self, figure: str) -> float | None:
        """The figure's mean over output channels (None where it does not apply)."""
        found = self.sqnr[figure]
        return None if found is None else found.mean

    def worst_db(self, figure: str) -> float | None:
        """The figure's worst output channel (None where it does not apply)."""
        found = self.sqnr[figure]
        return None if found is None else found.worst

    def to_dict(self) -> dict:
        return {"layer": self.layer, "bn": self.bn, "channels": self.channels,
                "range_ratio_after": self.range_ratio_after,
                "sqnr_db": {k: self.mean_db(k) for k in self.sqnr},
                "worst_channel_sqnr_db": {k: self.worst_db(k) for k in self.sqnr}}


@dataclass
class QuantReport:
    """Per-layer figures, end-to-end output SQNRs, and the equalized model (None when CLE does not apply)."""

    layers: list[LayerQuant]
    output_sqnr_db: dict[str, float | None]
    pairs: list[tuple[str, str]] = field(default_factory=list)
    equalized: Any = None
    equalized_check: Verification | None = None  # the equalized model against the folded one

    def to_dict(self) -> dict:
        return {"layers": [layer.to_dict() for layer in self.layers], "output_sqnr_db": dict(self.output_sqnr_db)}


def _homogeneous(graph, node: str, vocabulary: Vocabulary) -> bool:
    """Whether ``node`` (an activation between two layers) is positively homogeneous, f(a x) = a f(x)
    for a > 0, so that equalization may step over it (ReLU, leaky ReLU, PReLU; not ReLU6, whose
    clip at 6 does not scale); the format's vocabulary says which ops are."""
    data = graph.nodes[node]
    op, config = str(data.get("op")), data.get("config") or {}
    if op == "Activation":
        return config.get("activation") in ("relu", "leaky_relu")
    return op in vocabulary.homogeneous and not any(config.get(k) for k in ("max_value", "threshold"))


def _own_activation(graph, node: str) -> bool:
    activation = (graph.nodes[node].get("config") or {}).get("activation")
    return activation in (None, "linear", "NONE", "relu", "RELU")


def cle_pairs(result: FoldResult) -> list[tuple[str, str]]:
    """(layer 1, layer 2) for every folded layer followed, through ReLU or nothing, by a linear
    layer that alone reads it (top-level graph nodes)."""
    graph = result.graph_after
    outputs = graph.graph.get("outputs", [])
    pairs = []
    for d in result.backward_pairs:
        layer, tail = d.layer, d.output_node or d.layer  # tail: a GraphDef's BiasAdd named like the BN
        if layer not in graph or tail not in graph or not _own_activation(graph, layer) or tail in outputs:
            continue
        after = list(graph.successors(tail))
        if len(after) == 1 and graph.nodes[after[0]].get("role") == "activation" and \
                _homogeneous(graph, after[0], result.frontend.vocabulary):
            after = list(graph.successors(after[0])) if after[0] not in graph.graph.get("outputs", []) else []
        if len(after) == 1 and graph.nodes[after[0]].get("role") == "linear":
            pairs.append((layer, after[0]))
    order = {n: i for i, n in enumerate(graph)}
    return sorted(pairs, key=lambda p: order[p[0]])


def equalized_kernels(result: FoldResult, folded: Mapping[str, LayerKernel]) -> tuple[dict[str, LayerKernel],
                                                                                    list[tuple[str, str]]]:
    """The kernels cross-layer equalization changes in the folded model (``folded``: its linear
    layers' kernels), and the pairs it equalized."""
    kernels: dict[str, LayerKernel] = {}
    done = []
    pairs = cle_pairs(result)
    for _ in range(CLE_PASSES):
        largest = 0.0
        for first, second in pairs:
            try:
                k1, k2 = kernels.get(first, folded[first]), kernels.get(second, folded[second])
                w1, b1, w2, s = equalize(k1.kernel, k1.bias, k1.kind, k1.groups, k2.kernel, k2.kind, k2.groups)
            except (ValueError, KeyError):
                continue  # the pair's channels do not line up (grouped, reshaped): not equalized
            kernels[first] = LayerKernel(w1, b1, k1.kind, k1.groups)
            kernels[second] = LayerKernel(w2, k2.bias, k2.kind, k2.groups)
            if (first, second) not in done:
                done.append((first, second))
            largest = max(largest, float(np.max(np.abs(np.log(s)))))
        if largest < 1e-6:
            break
    return kernels, done


def _linear_kernels(frontend: Frontend, model: Any, graph) -> dict[str, LayerKernel]:
    """The kernel of every linear layer of ``graph`` (nested models' included) that has one."""
    found = {}
    for path, data in walk(graph):
        if data.get("role") == "linear":
            try:
                found[path] = frontend.kernel(model, path)
            except (KeyError, ValueError, StopIteration, AttributeError):
                continue  # a linear op whose weight is not a constant, or out of a runtime's reach
    return found


def _fake_quantized(frontend: Frontend, model: Any, kernels: Mapping[str, LayerKernel], per_channel: bool) -> Any:
    return frontend.with_kernels(model, {p: LayerKernel(quantize(k.kernel, k.kind, k.groups, per_channel), None,
                                                        k.kind, k.groups) for p, k in kernels.items()})


def layer_quant(decision: Decision, before: LayerKernel, after: LayerKernel,
                equalized: np.ndarray | None = None) -> LayerQuant:
    """The figures of one folded layer: ``before`` and ``after`` are its kernel in the original and
    the folded model, ``equalized`` the folded kernel after cross-layer equalization (if any)."""
    kind, groups, s = after.kind, after.groups, decision.affine.scale
    reference = scale_kernel(before.kernel, s, kind, groups)  # W * s, in float64
    shipped = np.asarray(after.kernel, dtype=np.float64)
    figures: dict[str, Sqnr | None] = {
        "per_tensor_before": sqnr(reference, scale_kernel(quantize(before.kernel, kind, groups), s, kind, groups),
                                  kind, groups),
        "per_tensor_after": sqnr(shipped, quantize(shipped, kind, groups), kind, groups),
        "per_channel_after": sqnr(shipped, quantize(shipped, kind, groups, per_channel=True), kind, groups),
        "per_tensor_after_cle": None if equalized is None else sqnr(equalized, quantize(equalized, kind, groups),
                                                                    kind, groups),
    }
    peaks = channel_peaks(shipped, kind, groups)
    return LayerQuant(decision.layer, decision.bn, int(peaks.shape[0]), range_ratio(shipped, kind, groups), figures,
                      peaks, None if equalized is None else channel_peaks(equalized, kind, groups))


def _end_to_end(result: FoldResult, checked: Checked, original: Mapping[str, LayerKernel],
                folded: Mapping[str, LayerKernel], cle: Mapping[str, LayerKernel],
                equalized: Any) -> dict[str, float | None]:
    """Output SQNR against the float original of the four int8-weight variants (see the module
    docstring); ``original``, ``folded``: the linear layers' kernels, ``cle``: those CLE changed."""
    variants = {
        "original_per_tensor": (result.original, original, False),
        "folded_per_tensor": (result.folded, folded, False),
        "folded_per_channel": (result.folded, folded, True),
        "folded_cle_per_tensor": None if equalized is None else (equalized, {**folded, **cle}, False),
    }
    frontend = result.frontend
    return {name: None if v is None else
            output_sqnr(checked.original_outputs, run(frontend, _fake_quantized(frontend, *v), checked.inputs))
            for name, v in variants.items()}


def quant_report(result: FoldResult, checked: Checked | None = None, samples: int = 4, seed: int = 0) -> QuantReport:
    """The quantization view of ``result`` (see the module docstring). End-to-end figures are on
    ``checked``'s inputs and outputs (the verification of ``result``), or on ``samples`` rows
    drawn from ``seed`` by the verification's recipe."""
    frontend = result.frontend
    original = _linear_kernels(frontend, result.original, result.graph_before)
    folded = _linear_kernels(frontend, result.folded, result.graph_after)
    cle, pairs = equalized_kernels(result, folded)
    layers = [layer_quant(d, original[d.layer], folded[d.layer], cle[d.layer].kernel if d.layer in cle else None)
              for d in result.backward_pairs if d.layer in original and d.layer in folded]
    if checked is None:
        checked = verify(result, samples, seed)
    equalized, check = None, None
    if pairs:
        equalized = frontend.with_kernels(result.folded, cle)
        check = verify_models(frontend, result.folded, equalized, inputs=checked.inputs,
                              graphs=(result.graph_after, result.graph_after), tensors=False).verification
    return QuantReport(layers, _end_to_end(result, checked, original, folded, cle, equalized), pairs, equalized, check)


@dataclass
class Absorbed:
    """High-bias absorption of a model: the model, and per pair (layer 1, layer 2) the number of
    channels whose bias moved and the largest amount moved; ``skipped``: pair -> why not."""

    model: Any
    moved: dict[tuple[str, str], tuple[int, float]]
    skipped: dict[tuple[str, str], str]


def _equalization_scales(before: LayerKernel, after: LayerKernel) -> np.ndarray:
    """The per-channel s that equalization divided a layer's output channels by (1 where unknown)."""
    p0, p1 = channel_peaks(before.kernel, before.kind, before.groups), channel_peaks(after.kernel, after.kind, after.groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((p0 > 0) & (p1 > 0), p0 / p1, 1.0)


def high_bias_absorbed(result: FoldResult, model: Any) -> Absorbed:
    """``model`` (the fold, or its equalized copy: the same graph) after high-bias absorption
    (``fold.core.quant.absorb_high_bias``) of every pair ``cle_pairs`` finds whose first layer absorbed a
    BN that states its output distribution, into a second layer whose response to a constant is a
    constant (not a transposed convolution: with a stride its response is periodic)."""
    frontend = result.frontend
    decisions = {d.layer: d for d in result.backward_pairs}
    kernels: dict[str, LayerKernel] = {}
    moved, skipped = {}, {}
    for first, second in cle_pairs(result):
        d = decisions.get(first)
        if d is None or d.bn_output is None:
            skipped[(first, second)] = "its BN is given as scale and shift: no output distribution to read"
            continue
        k1, k2 = kernels.get(first) or frontend.kernel(model, first), kernels.get(second) or frontend.kernel(model, second)
        if k2.kind.family == "transpose":
            skipped[(first, second)] = "a transposed convolution's response to a constant varies with the stride"
            continue
        if k2.bias is None:
            skipped[(first, second)] = f"'{second}' has no bias to take the constant"
            continue
        s = _equalization_scales(frontend.kernel(result.folded, first), k1)
        mean, std = d.bn_output
        try:
            b1, b2, c = absorb_high_bias(k1.bias if k1.bias is not None else np.zeros(k1.channels), mean / s, std / s,
                                         k2.kernel, k2.bias, k2.kind, k2.groups)
        except ValueError as exc:  # channels that do not line up (grouped, a separable second layer)
            skipped[(first, second)] = str(exc)
            continue
        dtype = np.asarray(k1.kernel).dtype
        kernels[first] = LayerKernel(k1.kernel, b1.astype(dtype), k1.kind, k1.groups)
        kernels[second] = LayerKernel(k2.kernel, b2.astype(dtype), k2.kind, k2.groups)
        moved[(first, second)] = (int(np.count_nonzero(c)), float(np.max(c, initial=0.0)))
    return Absorbed(frontend.with_kernels(model, kernels) if kernels else model, moved, skipped)


def bias_corrected(result: FoldResult, model: Any, inputs: list[np.ndarray], per_channel: bool = False) -> Any:
    """``model`` (the fold, or its equalized copy) with every folded layer's bias corrected for the mean
    error its int8 weights make (Nagel et al. 2019, section 4.3, empirical: from data, not from BN
    statistics): each layer is run alone on the float model's inputs to it, with float and with
    fake-quantized weights (``fold.core.quant.quantize``, the runtimes' symmetric round to nearest),
    and the mean difference of each output channel is taken off its bias."""
    from fold.engine.comparison import channel_axis

    frontend = result.frontend
    layers = [d.layer for d in result.backward_pairs]
    kernels = {layer: frontend.kernel(model, layer) for layer in layers}
    tapper = frontend.tapper(model, (), layers)
    plain = frontend.layer_runner(model, [(layer, layer) for layer in layers])
    quantized = frontend.layer_runner(_fake_quantized(frontend, model, kernels, per_channel),
                                      [(layer, layer) for layer in layers])
    ready = [layer for layer in layers if layer in plain.layers and layer in quantized.layers]
    errors: dict[str, list[np.ndarray]] = {layer: [] for layer in ready}
    rows = int(inputs[0].shape[0]) if inputs else 1
    step = batch_size(frontend.inputs(model), rows)  # a fixed-batch model (TFLite) runs its own batch at a time
    for start in range(0, rows, step):
        chunk = [x[start:start + step] for x in inputs]
        feeds = tapper(chunk).feeds
        fed = {layer: feeds[layer] for layer in ready if layer in feeds}
        exact, rounded = plain.run(fed, chunk), quantized.run(fed, chunk)
        for layer in fed:
            errors[layer].append(np.asarray(rounded[layer], dtype=np.float64) - np.asarray(exact[layer], dtype=np.float64))
    graph = frontend.graph(model)
    corrected = {}
    for layer in [layer for layer in ready if errors[layer]]:
        k = kernels[layer]
        error = np.concatenate(errors[layer])
        axis = channel_axis(graph, layer, error.ndim) % error.ndim
        mean = error.mean(axis=tuple(a for a in range(error.ndim) if a != axis))
        bias = np.zeros(k.channels) if k.bias is None else np.asarray(k.bias, dtype=np.float64).reshape(-1)
        corrected[layer] = LayerKernel(k.kernel, (bias - mean).astype(np.asarray(k.kernel).dtype), k.kind, k.groups)
    return frontend.with_kernels(model, corrected)

