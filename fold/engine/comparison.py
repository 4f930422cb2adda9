"""The verification engine: two models on the same inputs, every folded layer checked at its own
scale, every output and shared tensor against what it inherits. The rules and their arithmetic
are ``fold.core.verdict``; this module runs the models, for any pair of frontends.

    corr = fold_correspondence(result.decisions, result.graph_before, result.graph_after)
    checked = compare_models(Side(keras, result.original, g0), Side(keras, result.folded, g1), corr, inputs, seed=0)

A ``Correspondence`` says how the two models line up: for each folded layer, the node of the
checked model that absorbed a BN, the original node whose inputs it is fed and the original BN
whose output it must reproduce (a forward fold: fed the map's input, it must reproduce the
original layer's output; a piece of a concat split: the BN's channels it took); the tensors both
models have (compared end to end); and which output of the checked model is which output of the
original.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from fold.core.affine import channel_rows, channel_view, grouped_shape
from fold.core.graph import flatten
from fold.core.rules import Decision
from fold.core.verdict import (
    ChannelStats, TensorCheck, as_channels, as_shaped, blocks, bn_step, judge_layer, judge_tensor, layer_tolerance,
    nudge_bias, nudge_kernel, nudge_rho, synthetic_gain, verdict, within_floor,
)
from fold.core.verification import MAX_BATCH, OutputDiff, Verification, synthetic_batch
from fold.frontends.formats import Frontend, LayerKernel, LayerRunner, Tap

#: Bytes of tapped tensors one chunk of rows may hold (the engine picks the rows per chunk from it).
TAP_BYTES = 2048 * 2**20
#: Bytes of the checked model's tapped tensors kept for the nudge's comparison (beyond, it runs again).
KEEP_BYTES = 1024 * 2**20
#: Independent nudged models (``fold.core.verdict``, rule 3): a single draw can miss a channel.
NUDGES = 2
#: Rows of the synthetic batch every folded layer is also judged on (rule 2), at least.
SYNTHETIC_ROWS = 2


@dataclass(frozen=True)
class Side:
    """One of the two models: its frontend, the model, and foldscope's graph of it."""

    frontend: Frontend
    model: Any
    graph: nx.DiGraph


@dataclass(frozen=True)
class FoldedLayer:
    """A layer of the checked model that absorbed a BatchNorm of the original.

    layer:     the checked model's node whose weights absorbed the BN.
    until:     the checked model's node producing what ``reference`` produced (the layer, its bias add,
               an activation kept as its own op).
    source:    the original model's node whose data inputs the layer is fed (the original layer; for a
               forward fold, the map's first node).
    reference: the original model's node whose output the layer must reproduce (the BN; for a forward
               fold, the original layer).
    bn:        the BN's name (its nodes joined by "+"), for the report.
    scale, terms: the BN's scale and the magnitudes its shift and the folded bias are made of, per
               output channel, when known (foldscope's own folds; ``fold.core.verdict``, rule 1).
    entry:     the checked model's node the layer's run starts at, when not the layer (a forward fold's
               reshape, or the Add of a partial fold's shift).
    origin:    the original model's node whose output y the BN scaled (the layer, for ``layer_tolerance``'s
               |s||y|), when there is one.
    inner:     a forward fold's Σ|W||t| per output channel (its ``terms``: Σ|W| T, T the map's own, which
               the original rounds the shift's response at); steps: maps the original applies in turn.
    window:    the reference's channels (start, stop) a piece of a concat split makes.
    """

    layer: str
    until: str
    source: str
    reference: str
    bn: str
    scale: np.ndarray | None = field(default=None, compare=False)
    terms: np.ndarray | None = field(default=None, compare=False)
    entry: str | None = None
    origin: str | None = None
    inner: np.ndarray | None = field(default=None, compare=False)
    steps: int = 1
    window: tuple[int, int] | None = None

    @property
    def start(self) -> str:
        """The checked model's node the layer's run starts at."""
        return self.entry or self.layer


@dataclass
class Correspondence:
    """How a checked model lines up with its original (see the module docstring).

    outputs:     for each original output, the index of the checked model's output it is (None:
                 the same order).
    output_only: BNs the checked model removed whose folded layer could not be lined up: they are
                 checked through the outputs only.
    inputs:      for each input of the checked model, the index of the original's input it is
                 (None: the same order).
    """

    folded: list[FoldedLayer]
    shared: list[tuple[str, str]]
    outputs: list[int] | None = None
    output_only: list[str] = field(default_factory=list)
    inputs: list[int] | None = None

    def feed(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """The original's inputs in the checked model's order."""
        return inputs if self.inputs is None else [inputs[k] for k in self.inputs]


@dataclass
class Checked:
    """A verification with the inputs it used and both models' outputs on them."""

    verification: Verification
    inputs: list[np.ndarray]
    original_outputs: list[np.ndarray]
    folded_outputs: list[np.ndarray]


def fold_correspondence(decisions: Sequence[Decision], before: nx.DiGraph, after: nx.DiGraph) -> Correspondence:
    """foldscope's own fold: the folded layers by their decisions, every other node by its id (a concat
    split's Concat, which now makes what the BN made, against the BN)."""
    folded = _folded_layers(decisions)
    renamed = [(d.bn_nodes[-1], d.output_node) for d in decisions if d.folded and d.direction == "concat"]
    taken = {new for _, new in renamed}
    shared = [(o, n) for o, n in shared_nodes(before, after, folded) if n not in taken]
    return Correspondence(folded, [*shared, *renamed])


def _folded_layers(decisions: Sequence[Decision]) -> list[FoldedLayer]:
    """One FoldedLayer per layer a decision changed; a layer that takes a map forward and another backward
    is one run, from the forward map's input to the backward map's output."""
    found: dict[str, FoldedLayer] = {}
    for d in decisions:
        for p in d.pieces or [d] if d.folded else []:
            affine = p.affine
            if p.direction in ("forward", "partial"):
                terms = p.inner if p.inner_terms is None else p.inner_terms
                f = FoldedLayer(p.layer, p.output_node or p.layer, p.source, p.layer, p.bn, None, terms, entry=p.entry,
                                inner=p.inner, steps=affine.steps)
            else:
                f = FoldedLayer(p.layer, p.output_node or p.layer, p.layer, p.bn_nodes[-1], p.bn, affine.scale,
                                affine.terms, origin=p.layer, steps=affine.steps, window=p.window)
            found[p.layer] = _merged(found[p.layer], f) if p.layer in found else f
    return list(found.values())


def _merged(a: FoldedLayer, b: FoldedLayer) -> FoldedLayer:
    """One layer folded both ways: fed the forward map's input, judged against the backward map's output."""
    forward, backward = (a, b) if a.inner is not None else (b, a)
    if forward.inner is None or backward.inner is not None:
        raise ValueError(f"'{a.layer}' takes two maps the same way ('{a.bn}' and '{b.bn}').")
    scale = np.abs(np.asarray(backward.scale, np.float64))
    inner = scale * forward.inner
    terms = (np.zeros_like(scale) if backward.terms is None else backward.terms) + scale * forward.terms
    return FoldedLayer(backward.layer, backward.until, forward.source, backward.reference, f"{forward.bn}+{backward.bn}",
                       backward.scale, terms, entry=forward.entry, origin=backward.origin, inner=inner,
                       steps=forward.steps + backward.steps, window=backward.window)


def folded_path(graph: nx.DiGraph, layer: str, until: str) -> list[str]:
    """The folded layer, the ops it was looked through to (an Identity, a Squeeze: each now holds the
    BN's values) and ``until``: the nodes whose tensors the fold changed."""
    path = [layer]
    while path[-1] != until and path[-1] in graph and len(path) < 8:
        after = list(graph.successors(path[-1]))
        if len(after) != 1:
            break
        path.append(after[0])
    return path if path[-1] == until else [layer, until]


def shared_nodes(before: nx.DiGraph, after: nx.DiGraph, folded: Sequence[FoldedLayer] = ()) -> list[tuple[str, str]]:
    """Every node both graphs have by id (nested models opened), but inputs and the folded layers."""
    old, new = flatten(before), flatten(after)
    replaced = {n for f in folded for n in folded_path(new, f.start, f.until)}
    return [(n, n) for n, role in new.nodes(data="role") if n in old and role != "input" and n not in replaced]


def channel_axis(graph: nx.DiGraph, node: str | None, rank: int) -> int:
    """The channel axis of a node's output: its own when the graph knows it (a BN after a TRANSPOSE
    to NCHW), 1 in a channels-first layout (a channels-first format's graph: ONNX; NCHW ops,
    channels_first layers), else the last."""
    if rank <= 1:
        return -1
    own = graph.nodes[node].get("channel_axis") if node in graph else None
    if own is not None and -rank <= own < rank:
        return own
    config = graph.nodes[node].get("config", {}) if node in graph else {}
    layout = str(config.get("data_format", ""))
    if layout.startswith("NC") or layout == "channels_first":
        return 1
    if graph.graph.get("channels_first") and layout == "":
        return 1
    return -1


def _fixed_batch(side: Side) -> int | None:
    """The batch size the model was built for (None: it takes any)."""
    fixed = {s.batch for s in side.frontend.inputs(side.model) if s.batch is not None}
    return fixed.pop() if len(fixed) == 1 else None


def _in_batches(run, chunk: list[np.ndarray], batch: int | None) -> Tap:
    """A tap function over ``chunk`` in runs of ``batch`` rows (all at once: None), the results concatenated."""
    rows = chunk[0].shape[0] if chunk else 0
    if batch is None or rows == batch:
        return run(chunk)
    parts = [run([x[i:i + batch] for x in chunk]) for i in range(0, rows, batch)]

    def cat(values: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.atleast_1d(v) for v in values], axis=0)

    return Tap([cat([p.outputs[k] for p in parts]) for k in range(len(parts[0].outputs))],
               {n: cat([p.nodes[n] for p in parts]) for n in parts[0].nodes},
               {f: [cat([p.feeds[f][k] for p in parts]) for k in range(len(parts[0].feeds[f]))] for f in parts[0].feeds})


def _layers_in_batches(runner: LayerRunner, feeds: dict[str, list[np.ndarray]], inputs: list[np.ndarray],
                       batch: int | None) -> dict[str, np.ndarray]:
    """A layer runner over ``feeds`` in one run per ``batch`` rows of ``inputs`` (all at once: None), the
    outputs concatenated. A feed is cut into as many equal parts as the model had runs: a layer's
    leading axis need not be the model's batch (a converter's Reshape of [1, 2] to [2, 1])."""
    rows = inputs[0].shape[0] if inputs else next(iter(feeds.values()))[0].shape[0]
    if batch is None or rows == batch:
        return runner.run(feeds, inputs)
    runs = -(-rows // batch)
    parts = [runner.run({n: [np.array_split(x, runs)[i] for x in xs] for n, xs in feeds.items()},
                        [x[i * batch:(i + 1) * batch] for x in inputs])
             for i in range(runs)]
    return {n: np.concatenate([p[n] for p in parts], axis=0) for n in parts[0]}


def _leading(x: np.ndarray, k: int, rows: int) -> np.ndarray:
    """What ``k`` of ``rows`` model rows put in ``x``, a tensor tapped on them: its leading axis holds
    a whole number of entries per model row, not always one (a converter's Reshape of [1, 2] to [2, 1])."""
    per = x.shape[0] // rows if x.ndim and rows and x.shape[0] % rows == 0 else 1
    return x[:k * per]


def _row_bytes(graph: nx.DiGraph, nodes: Sequence[str], inputs: list[np.ndarray]) -> int | None:
    """What the tapped tensors of one row weigh, from the graph's shapes (a tensor whose shape the
    graph does not know counts as the largest known one; None when none is known)."""
    sizes, unknown = [], 0
    for node in dict.fromkeys(nodes):
        shapes = [shape for _, _, shape in graph.out_edges(node, data="shape")] if node in graph else []
        if shapes and shapes[0] is not None and all(d is not None for d in shapes[0][1:]):
            sizes.append(int(np.prod(shapes[0][1:], dtype=np.int64)) * 4)
        else:
            unknown += 1
    if nodes and not sizes:
        return None
    given = sum(int(np.prod(x.shape[1:])) * x.dtype.itemsize for x in inputs)
    return given + sum(sizes) + unknown * max(sizes, default=0)


def _step(row_bytes: int, unit: int) -> int:
    """Rows per chunk: as many units as TAP_BYTES holds, at most MAX_BATCH rows."""
    return unit * max(1, min(MAX_BATCH // unit, TAP_BYTES // max(row_bytes * unit, 1)))


def _tap_bytes(tap: Tap) -> int:
    return sum(a.nbytes for a in tap.outputs) + sum(a.nbytes for a in tap.nodes.values()) + \
        sum(a.nbytes for xs in tap.feeds.values() for a in xs)


@dataclass
class _Compared:
    """One tensor being compared end to end."""

    name: str          # the checked model's node (or output name)
    tensor: str        # the original's node (or output name)
    role: str
    axis: int
    index: int | None = None  # an output's index in the checked model's outputs
    stats: ChannelStats | None = None
    skipped: bool = False
    dtype: str = "float32"
    mismatch: str | None = None

    def add(self, reference: np.ndarray, other: np.ndarray) -> None:
        if self.mismatch or self.skipped:
            return
        if np.shape(reference) != np.shape(other):
            if self.role == "shared":  # a name both models use for different tensors: not comparable
                self.skipped, self.stats = True, None
                return
            self.mismatch = f"shape {list(np.shape(other))} where the original has {list(np.shape(reference))}"
            return
        (ref, axis), (got, _) = as_channels(reference, self.axis), as_channels(other, self.axis)
        if self.stats is None:
            self.stats = ChannelStats(ref.shape[axis])
            self.dtype = np.asarray(other).dtype.name
        for block in blocks(axis, ref, got):
            self.stats.add(*block, 1)

    def add_nudged(self, nudged: np.ndarray, folded: np.ndarray) -> None:
        if self.stats is not None and np.shape(nudged) == np.shape(folded):
            (moved, axis), (got, _) = as_channels(nudged, self.axis), as_channels(folded, self.axis)
            for block in blocks(axis, moved, got):
                self.stats.add_nudged(*block, 1)


def compare_models(original: Side, checked: Side, corr: Correspondence, inputs: list[np.ndarray], *,
                   seed: int | None = None, source: str = "recipe", atol: float | None = None) -> Checked:
    """Run both models on ``inputs`` and judge the checked one (``fold.core.verdict``)."""
    rows = int(inputs[0].shape[0]) if inputs else 1
    b_orig, b_checked = _fixed_batch(original), _fixed_batch(checked)
    unit = math.lcm(b_orig or 1, b_checked or 1)
    if rows % unit:
        raise ValueError(f"{rows} sample rows do not split into runs of the models' batch sizes {b_orig} and {b_checked}.")
    g_orig = flatten(original.graph)
    orig_tap = original.frontend.tapper(original.model, [*(f.reference for f in corr.folded),
                                                         *(f.origin for f in corr.folded if f.origin),
                                                         *(o for o, _ in corr.shared)],
                                        [f.source for f in corr.folded])
    shared_names = [c for _, c in corr.shared]
    checked_tap = checked.frontend.tapper(checked.model, shared_names)
    kernels = {f.layer: _kernel(checked, f.layer) for f in corr.folded}
    pairs = [(f.start, f.until) for f in corr.folded if kernels[f.layer] is not None]
    plain = checked.frontend.layer_runner(checked.model, pairs) if pairs else None
    magnitude = checked.frontend.layer_runner(checked.model, pairs, magnitude=True) if pairs else None
    alone = [f for f in corr.folded if plain and f.start in plain.layers and f.start in magnitude.layers]
    alone_runtime = plain.runtime if plain is not None else None
    # each runner is dropped after its last use, with the weights its runtime read (a model too large to
    # hold twice is then read by one runner at a time)
    runners = {"original": orig_tap, "checked": checked_tap, "plain": plain, "magnitude": magnitude}
    del orig_tap, checked_tap, plain, magnitude
    output_only = list(corr.output_only) + [f.bn for f in corr.folded if f not in alone]
    layer_stats: dict[str, ChannelStats] = {}
    out_specs = original.frontend.outputs(original.model)
    order = corr.outputs or list(range(len(out_specs)))
    outputs = [_Compared(o.name, o.name, "output", o.channel_axis, k) for o, k in zip(out_specs, order)]
    shared = [_Compared(c, o, "shared", -1) for o, c in corr.shared]
    kept_orig: list[list[np.ndarray]] = []
    kept_checked: list[list[np.ndarray]] = []
    kept_nodes: list[dict] | None = []  # the checked model's taps, for the nudge (None once too big)

    row_bytes = _row_bytes(g_orig, [*(f.reference for f in corr.folded), *(o for o, _ in corr.shared)], inputs)
    start, step = 0, unit if row_bytes is None else _step(row_bytes * 2, unit)
    chunks: list[tuple[int, int]] = []  # the rows of each chunk, which the nudge runs again
    made: _Synthetic | None = None  # rule 2's batch, made from the first chunk
    while start < rows:
        chunk = [x[start:start + step] for x in inputs]
        chunks.append((start, start + step))
        last = start + len(chunk[0]) >= rows
        o = _in_batches(runners["original"], chunk, b_orig)
        if last:
            _drop(runners, "original", original)
        c = _in_batches(runners["checked"], corr.feed(chunk), b_checked)
        if last:
            _drop(runners, "checked", checked)
        if start == 0 and row_bytes is None:  # rows per chunk from what the first rows weighed
            step = _step((_tap_bytes(o) + _tap_bytes(c)) // max(len(chunk[0]), 1), unit)
        if max(order, default=-1) >= len(c.outputs):
            raise ValueError(f"The checked model has {len(c.outputs)} outputs; the original has {len(order)}.")
        kept_orig.append(o.outputs)
        kept_checked.append([c.outputs[t.index] for t in outputs])
        for compared, ref, got in zip(outputs, o.outputs, kept_checked[-1]):
            compared.add(ref, got)
        for compared in shared:
            if compared.tensor in o.nodes and compared.name in c.nodes:
                compared.axis = channel_axis(g_orig, compared.tensor, np.ndim(o.nodes[compared.tensor]))
                compared.add(o.nodes[compared.tensor], c.nodes[compared.name])
        if start == 0:  # a layer whose input folds the batch into another axis cannot run alone on rows
            rows_now = len(chunk[0]) if chunk else 0
            unbatched = [f for f in alone if f.reference in o.nodes and f.source in o.feeds
                         and not _batched([o.nodes[f.reference], *o.feeds[f.source]], rows_now)]
            if unbatched:
                alone = [f for f in alone if f not in unbatched]
                output_only += [f.bn for f in unbatched]
                pairs = [(f.start, f.until) for f in alone]
                runners["plain"] = checked.frontend.layer_runner(checked.model, pairs) if pairs else None
                runners["magnitude"] = checked.frontend.layer_runner(checked.model, pairs, magnitude=True) \
                    if pairs else None
        ready = [f for f in alone if f.reference in o.nodes and f.source in o.feeds]
        if start == 0 and ready and len(ready) == len(alone):  # the runners run every layer at once: all fed
            k = unit * math.ceil(SYNTHETIC_ROWS / unit)  # a whole number of both models' batches
            made = _synthetic(ready, {f.start: [_leading(x, k, len(chunk[0])) for x in o.feeds[f.source]]
                                      for f in ready}, [x[:k] for x in chunk], original, checked, corr, kernels,
                              b_orig, g_orig, seed)
        if ready:
            _check_layers(ready, o, corr.feed(chunk), runners, checked, kernels, b_checked, g_orig, layer_stats,
                          made if start == 0 else None, last)
        if kept_nodes is not None:
            kept_nodes.append(c.nodes)
            if sum(a.nbytes for nodes in kept_nodes for a in nodes.values()) > KEEP_BYTES:
                kept_nodes = None
        start += len(chunk[0])

    synthetic = made.stats if made is not None else {}
    for key, side in (("original", original), ("checked", checked), ("plain", checked), ("magnitude", checked)):
        _drop(runners, key, side)  # a chunk whose layers were not all fed
    checks = [_judge_layer(f, layer_stats[f.layer], kernels[f.layer], synthetic.get(f.layer))
              for f in alone if f.layer in layer_stats]
    _release(checked)
    output_only += [f.bn for f in alone if f.layer not in layer_stats]
    compared = [t for t in [*outputs, *shared] if t.stats is not None or t.mismatch]
    nudged = False
    if any(t.stats is not None and not within_floor(t.stats, t.dtype) for t in compared):
        nudged = _nudge(checked, corr.feed(inputs), chunks, b_checked, outputs, shared, kept_checked, kept_nodes,
                        layer_stats, seed, atol)
    tensor_checks = [_judge_tensor(t, atol if t.role == "output" else None) for t in compared]
    checks += tensor_checks
    checked_out = _concatenated(kept_checked)
    by_name = {id(t): check for t, check in zip(compared, tensor_checks)}
    per_output = [_output_diff(t, by_name[id(t)], got) for t, got in zip(outputs, checked_out) if id(t) in by_name]
    verification = _verification(checks, per_output, output_only, nudged, inputs, seed, source)
    verification.runtimes = {"original": original.frontend.runtime(original.model),
                             "checked": checked.frontend.runtime(checked.model)}
    if alone_runtime is not None and alone_runtime != verification.runtimes["checked"]:
        verification.runtimes["layers alone"] = alone_runtime
    return Checked(verification, inputs, _concatenated(kept_orig), checked_out)


def _batched(arrays: Sequence[np.ndarray], rows: int) -> bool:
    """Whether every array holds a whole number of entries per model row on its first axis (``_leading``:
    a converter's Reshape of [1, 2] to [2, 1] puts two); a layer whose input folds the batch into another
    axis cannot be run alone on a part of the rows: it is checked at the outputs."""
    return all(np.ndim(a) >= 1 and rows > 0 and np.shape(a)[0] >= rows and np.shape(a)[0] % rows == 0
               for a in arrays)


def _concatenated(parts: list[list[np.ndarray]]) -> list[np.ndarray]:
    return [np.concatenate([np.atleast_1d(p[k]) for p in parts]) for k in range(len(parts[0]))] if parts else []


@dataclass
class _Synthetic:
    """Rule 2's batch of the first chunk: each folded layer's synthetic inputs (``feeds``, by the layer's
    start: every layer the runners hold is fed, a session runs them all; ``made``: the starts of the layers
    judged on them), the model inputs of its rows in the checked model's order, the original layers'
    outputs through their BNs on them (``refs``, by the original layer) and the figures, apart (the
    nudge's ρ is the float error on the model's own inputs)."""

    feeds: dict[str, list[np.ndarray]]
    inputs: list[np.ndarray]
    made: set[str]
    refs: dict[str, np.ndarray]
    stats: dict[str, ChannelStats] = field(default_factory=dict)


def _synthetic(folded: list[FoldedLayer], recorded: dict[str, list[np.ndarray]], inputs: list[np.ndarray],
               original: Side, checked: Side, corr: Correspondence, kernels: dict[str, LayerKernel],
               batch: int | None, graph: nx.DiGraph, seed: int | None) -> _Synthetic | None:
    """Rule 2's synthetic batch: ``synthetic_batch`` of what each folded layer received in the first
    rows (``recorded``, by the layer's start; ``inputs``: the model inputs of those rows), and the
    original layer through its BN run alone on it (None when no layer has one); ``kernels`` are
    ``checked``'s. A piece of a concat split has no BN of its own to run alone."""
    reference = original.frontend.layer_runner(original.model, [(f.source, f.reference) for f in folded
                                                                if f.window is None])
    rng = np.random.default_rng(0 if seed is None else seed)
    made = {}
    for f in folded:
        if f.source in reference.layers:
            k, xs = kernels[f.layer], recorded[f.start]
            gain = synthetic_gain(channel_rows(k.kernel, k.kind, k.groups, None), k.bias if f.terms is None else f.terms,
                                  np.asarray(xs[0]).dtype.name, k.stored)
            xs = synthetic_batch(xs, channel_axis(graph, f.source, np.ndim(xs[0])), rng, gain)
            if xs is not None:
                made[f.start] = xs
            _release(checked)  # the pages of the kernel the gain read
    if not made:
        return None
    fed = {f.start: made.get(f.start, recorded[f.start]) for f in folded}
    refs = _layers_in_batches(reference, {f.source: fed[f.start] for f in folded if f.source in reference.layers},
                              inputs, batch)
    return _Synthetic(fed, corr.feed(inputs), set(made), refs)


def _stacked(recorded: dict[str, list[np.ndarray]], rows: int, synthetic: _Synthetic
             ) -> tuple[dict[str, list[np.ndarray]], int] | None:
    """Each layer's recorded feeds (of ``rows`` model rows) followed by its synthetic ones, so that one
    run of each runner serves both, and the synthetic rows' count; None when some feed's leading axis
    does not hold the same whole number of entries per row in both."""
    k = synthetic.inputs[0].shape[0] if synthetic.inputs else 0
    stacked = {}
    for name, xs in recorded.items():
        ys = synthetic.feeds[name]
        if len(xs) != len(ys) or any(np.ndim(x) == 0 or np.shape(x)[1:] != np.shape(y)[1:] or
                                     np.shape(x)[0] * k != np.shape(y)[0] * rows for x, y in zip(xs, ys)):
            return None
        stacked[name] = [np.concatenate([x, np.asarray(y, dtype=np.asarray(x).dtype)]) for x, y in zip(xs, ys)]
    return stacked, k


def _check_layers(folded: list[FoldedLayer], o: Tap, chunk: list[np.ndarray], runners: dict, checked: Side,
                  kernels: dict[str, LayerKernel], batch: int | None, graph: nx.DiGraph,
                  stats: dict[str, ChannelStats], synthetic: _Synthetic | None = None, last: bool = False) -> None:
    """Rule 1 on one chunk: each folded layer fed the original layer's inputs, against the BN's output;
    and rule 2's ``synthetic`` batch, when given, in the same runs where the feeds stack (else in runs of
    its own), its figures added to ``synthetic.stats``. ``runners``' plain and magnitude ones run them
    (dropped after these runs when this is the ``last`` chunk)."""
    feeds = {f.start: o.feeds[f.source] for f in folded}
    rows = chunk[0].shape[0] if chunk else 0
    stacked = _stacked(feeds, rows, synthetic) if synthetic is not None and rows else None
    if stacked is not None:
        both, k = stacked
        inputs = [np.concatenate([x, y]) for x, y in zip(chunk, synthetic.inputs)]
        got_all, terms_all = _alone_runs(runners, checked, both, inputs, batch, last)
        got_all, got_syn = _split(got_all, rows, k)
        terms_all, terms_syn = _split(terms_all, rows, k)
    else:
        got_all, terms_all = _alone_runs(runners, checked, feeds, chunk, batch, last and synthetic is None)
        if synthetic is not None:
            got_syn, terms_syn = _alone_runs(runners, checked, synthetic.feeds, synthetic.inputs, batch, last)
    for f in folded:
        _add_layer_batch(f, o.nodes[f.reference], got_all[f.start], terms_all[f.start],
                         o.nodes.get(f.origin) if f.origin else None, kernels[f.layer], graph, stats)
        if synthetic is not None and f.start in synthetic.made and f.source in synthetic.refs:
            _add_layer_batch(f, synthetic.refs[f.source], got_syn[f.start], terms_syn[f.start], None,
                             kernels[f.layer], graph, synthetic.stats)


def _alone_runs(runners: dict, checked: Side, feeds: dict[str, list[np.ndarray]], inputs: list[np.ndarray],
                batch: int | None, last: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The folded layers run alone on ``feeds``, as they are and in magnitude (on |feeds|), each runner
    dropped after its run when these are its ``last``."""
    got = _layers_in_batches(runners["plain"], feeds, inputs, batch)
    if last:
        _drop(runners, "plain", checked)
    terms = _layers_in_batches(runners["magnitude"], {n: [np.abs(x) for x in xs] for n, xs in feeds.items()},
                               inputs, batch)
    if last:
        _drop(runners, "magnitude", checked)
    return got, terms


def _drop(runners: dict, key: str, side: Side) -> None:
    """Let a runner go, and what reading its model's weights brought into memory."""
    if runners.get(key) is not None:
        runners[key] = None
        _release(side)


def _release(side: Side) -> None:
    """``Frontend.release`` where the frontend has it (a model whose weights are mapped from files)."""
    release = getattr(side.frontend, "release", None)
    if release is not None:
        release(side.model)


def _split(found: dict[str, np.ndarray], rows: int, k: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Outputs of ``rows`` recorded rows followed by ``k`` synthetic ones, cut apart (an output whose leading
    axis is not a whole number of entries per row is left whole on both sides: its shape will not match)."""
    first, second = {}, {}
    for name, y in found.items():
        n = np.shape(y)[0] if np.ndim(y) else 0
        cut = n * rows // (rows + k) if np.ndim(y) and n * rows % (rows + k) == 0 else None
        first[name], second[name] = (y, y) if cut is None else (y[:cut], y[cut:])
    return first, second


def _window(f: FoldedLayer, graph: nx.DiGraph, array: np.ndarray) -> np.ndarray:
    """The reference's channels a piece of a concat split makes (all of them for any other fold)."""
    if f.window is None:
        return array
    axis = channel_axis(graph, f.reference, np.ndim(array)) % np.ndim(array)
    return np.take(array, np.arange(*f.window), axis=axis)


def _add_layer_batch(f: FoldedLayer, ref: np.ndarray, got: np.ndarray, terms: np.ndarray, source: np.ndarray | None,
                     kernel: LayerKernel, graph: nx.DiGraph, stats: dict[str, ChannelStats]) -> None:
    """One batch of a folded layer's output (and its Σ|W'||x|) against the BN's, with its tolerance;
    ``source``: the original layer's own output on the same inputs, when known."""
    ref = _window(f, graph, ref)  # the layer's own output ``source`` holds only its channels already
    # a layer fetched before the Squeeze it was looked through to (or a converter's 2-D op for a 1-D layer)
    got, terms = as_shaped(got, ref.shape), as_shaped(terms, ref.shape)
    if got.shape != ref.shape or terms.shape != ref.shape:
        return
    axis = channel_axis(graph, f.reference, ref.ndim)
    channels = np.size(f.scale) if f.scale is not None else 0
    if ref.ndim <= 1 and channels > 1 and ref.size % channels == 0:  # a flattened map (a Reshape to [C]): rows of C
        ref, got, terms = (np.reshape(a, (-1, channels)) for a in (ref, got, terms))
        axis = -1
    if source is not None and np.shape(source) != ref.shape and np.size(source) == ref.size:
        source = np.reshape(source, ref.shape)  # the layer's own [1, C] before the Reshape the BN read
    (ref_c, axis_c), (got_c, _), (terms_c, _) = (as_channels(a, axis) for a in (ref, got, terms))
    source = as_channels(source, axis)[0] if source is not None and np.shape(source) == np.shape(ref) else None
    channels = ref_c.shape[axis_c]
    known = f.scale is not None and np.size(f.scale) == channels
    inner = f.inner if f.inner is not None and np.size(f.inner) == channels else None
    scale, shift = f.scale if known else None, f.terms if known or inner is not None else None
    if inner is not None and kernel.bias is not None and np.size(kernel.bias) == channels:
        shift = np.asarray(shift, np.float64) + np.abs(np.asarray(kernel.bias, np.float64).reshape(-1))
    if source is not None and (scale is None or shift is None):  # read off the whole batch, not a block
        scale, shift = bn_step(source, ref_c, axis_c)
    found = stats.setdefault(f.layer, ChannelStats(channels))
    extra = [] if source is None else [source]
    for ref_b, got_b, terms_b, *source_b in blocks(axis_c, ref_c, got_c, terms_c, *extra):
        tol = layer_tolerance(terms_b, ref_b, kernel.bias, kernel.reduction, got.dtype.name, 1,
                              source_b[0] if source_b else None, scale, shift, stored=kernel.stored, inner=inner,
                              steps=f.steps)
        found.add(ref_b, got_b, 1, tol, terms_b)


def _kernel(side: Side, layer: str) -> LayerKernel | None:
    try:
        return side.frontend.kernel(side.model, layer)
    except (ValueError, KeyError):
        return None


def _judge_layer(f: FoldedLayer, stats: ChannelStats, kernel: LayerKernel, synthetic: ChannelStats | None
                 ) -> TensorCheck:
    """Rules 1 and 2 on the recorded batches and, when it was run, the synthetic one."""
    rows = channel_rows(kernel.kernel, kernel.kind, kernel.groups, None)
    zero = ~np.any(rows != 0, axis=1) if rows.shape[0] == stats.channels else np.zeros(stats.channels, bool)
    if synthetic is None or synthetic.channels != stats.channels:
        return judge_layer(f.layer, f.bn, f.reference, stats, zero)
    return judge_layer(f.layer, f.bn, f.reference, stats.merged(synthetic), zero, stats.varies())


def _judge_tensor(t: _Compared, atol: float | None) -> TensorCheck:
    if t.mismatch:
        return TensorCheck(t.name, None, t.tensor, t.role, "end to end", float("inf"), float("inf"), 0.0, False, 0, 0,
                           float("inf"))
    return judge_tensor(t.name, t.tensor, t.role, t.stats, t.dtype, atol)


def nudged_model(side: Side, layer_stats: dict[str, ChannelStats] | None = None, seed: int | None = None
                 ) -> Any | None:
    """Rule 3's nudged copy of a model: every weight of every linear layer times 1 ± ρ_c, ρ_c from
    the layer's own check where ``layer_stats`` has one (None when no layer has a constant float kernel)."""
    rng = np.random.default_rng(0 if seed is None else seed)
    kernels = {}
    for node, role in flatten(side.graph).nodes(data="role"):
        k = _kernel(side, node) if role == "linear" else None
        if k is None or not np.issubdtype(np.asarray(k.kernel).dtype, np.floating):
            continue
        w = np.asarray(k.kernel)
        stats = (layer_stats or {}).get(node)
        rho = nudge_rho(stats, k.reduction, w.dtype.name, k.channels)
        shape, axes = grouped_shape(w.shape, k.kind.out_axes, k.groups, k.kind.group_axis)
        nudged = nudge_kernel(w.reshape(shape), channel_view(rho, shape, axes), rng)
        bias = nudge_bias(k.bias, stats, w.dtype.name, k.channels, rng)
        kernels[node] = LayerKernel(nudged.reshape(w.shape), None if bias is None else bias.astype(w.dtype), k.kind,
                                    k.groups)
        _release(side)  # the pages of the kernel read
    return side.frontend.with_kernels(side.model, kernels) if kernels else None


def _nudge(checked: Side, inputs: list[np.ndarray], chunks: list[tuple[int, int]], batch: int | None, outputs: list[_Compared],
           shared: list[_Compared], kept_outputs: list[list[np.ndarray]], kept_nodes: list[dict] | None,
           layer_stats: dict[str, ChannelStats], seed: int | None, atol: float | None = None) -> bool:
    """Rule 3: run nudged copies of the checked model and record how far they move each tensor from
    the checked model (whose outputs and taps were kept from the first pass, or run again); a
    tensor's figure is the largest move of any draw. A second, independent draw is made (up to
    NUDGES) while some tensor is past its budget (``atol``: the outputs' budget, when the user gave
    one): another draw can only widen a budget, so where every tensor is within it, no draw can
    change the verdict."""
    shared = [t for t in shared if t.stats is not None]
    names = [t.name for t in shared]
    base = checked.frontend.tapper(checked.model, names) if kept_nodes is None else None
    built = False
    for draw in range(NUDGES):
        if built and all(_judge_tensor(t, atol if t.role == "output" else None).passed
                         for t in [*outputs, *shared] if t.stats is not None):
            break
        model = nudged_model(checked, layer_stats, None if seed is None and draw == 0 else (seed or 0) + draw)
        if model is None:
            return built
        built = True
        nudged = checked.frontend.tapper(model, names)
        for i, (start, stop) in enumerate(chunks):  # the first pass's chunks, whose outputs were kept
            chunk = [x[start:stop] for x in inputs]
            b = _in_batches(nudged, chunk, batch)
            nodes = kept_nodes[i] if kept_nodes is not None else _in_batches(base, chunk, batch).nodes
            for t, got in zip(outputs, kept_outputs[i]):
                t.add_nudged(b.outputs[t.index], got)
            for t in shared:
                if t.name in nodes and t.name in b.nodes:
                    t.add_nudged(b.nodes[t.name], nodes[t.name])
        model = nudged = b = None  # this draw's model and weights go before the next is made
        _release(checked)
    return built


def _output_diff(t: _Compared, check: TensorCheck, got: np.ndarray) -> OutputDiff:
    stats = t.stats
    return OutputDiff(
        name=t.tensor, shape=tuple(int(n) for n in np.shape(got)), dtype=np.asarray(got).dtype.name,
        max_abs_diff=check.max_abs_diff, mean_abs_diff=stats.mean_abs_diff if stats else float("inf"),
        max_rel_diff=check.max_rel_diff, max_abs=float(stats.peak.max(initial=0.0)) if stats else 0.0,
        per_channel_max_abs_diff=[float(v) for v in stats.diff] if stats else [],
        atol=check.atol, passed=check.passed, worst_channel=check.worst_channel)


def _verification(checks: list[TensorCheck], per_output: list[OutputDiff], output_only: list[str], nudged: bool,
                  inputs: list[np.ndarray], seed: int | None, source: str) -> Verification:
    outs = [c for c in checks if c.role == "output"]
    worst_out = max(outs, key=lambda c: (not c.passed, c.margin), default=None)
    total = sum(np.asarray(x).shape[0] for x in inputs[:1])
    mean = (sum(o.mean_abs_diff * int(np.prod(o.shape)) for o in per_output) /
            max(sum(int(np.prod(o.shape)) for o in per_output), 1))
    result = verdict(checks)
    return Verification(
        verdict=result, reason=reason(result, checks, output_only),
        max_abs_diff=max((c.max_abs_diff for c in outs), default=0.0), mean_abs_diff=float(mean),
        max_rel_diff=max((c.max_rel_diff for c in outs), default=0.0),
        atol=worst_out.atol if worst_out else 0.0, samples=int(total), seed=seed,
        input_shapes={}, inputs_source=source, per_output=per_output, layers=checks,
        output_only=output_only, nudged=nudged)


def reason(result: str, checks: list[TensorCheck], output_only: Sequence[str] = ()) -> str:
    """One sentence on what decided the verdict."""
    folded = [c for c in checks if c.role == "folded"]
    failed = [c for c in checks if not c.passed]
    if failed:
        worst = max(failed, key=lambda c: (c.role == "folded", c.margin))
        if worst.role == "folded":
            return (f"'{worst.layer}' does not compute what '{worst.tensor}' computed: channel {worst.worst_channel} "
                    f"is off by {worst.max_rel_diff:.2e} of its own size, {worst.margin:.3g}x its float tolerance.")
        if not np.isfinite(worst.margin) and worst.channels == 0:
            return f"The {worst.role} tensor '{worst.tensor}' has another shape in the checked model."
        return (f"The {worst.role} tensor '{worst.tensor}' moved by {worst.max_abs_diff:.3e} on channel "
                f"{worst.worst_channel}, {worst.margin:.3g}x what float error in the layers before it explains.")
    if result == "inconclusive":
        quiet = next(c for c in folded if not c.conclusive)
        return (f"No output channel of '{quiet.layer}' varied on these inputs (its input is dead or saturated), so "
                "an error in its kernel could not show: pass inputs that exercise it (--inputs-file, --input-shape).")
    if not folded:
        tail = f" ({len(output_only)} folded layer(s) checked at the outputs only)" if output_only else ""
        return f"Every output is within what float error explains{tail}."
    closest = max(folded, key=lambda c: c.margin)
    tail = f"; {len(output_only)} more checked at the outputs only" if output_only else ""
    return (f"Every folded layer computes what its BN computed within float error (closest: '{closest.layer}' at "
            f"{closest.margin:.2g} of its tolerance){tail}, and every output is within what float error explains.")
