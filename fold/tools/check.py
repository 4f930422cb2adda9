"""Check a fold that any tool made (onnxsim, onnxslim, onnxruntime's optimizer, onnxoptimizer, TensorFlow's
TFLite converter, a compiler, a hand edit): line the candidate up with its original and verify it
with the same verdict as foldscope's own folds (``fold.core.verdict``).

    result = check_files("det.onnx", "det_sim.onnx")
    result.checked.verification.verdict      # "pass", "fail" or "inconclusive"

How the two models are lined up (and what cannot be):

- Same format: by tensor name. Every node of foldscope's graph names the tensor it produces
  (``tensor``: an ONNX node's first output, a GraphDef op's ``op:0``, a TFLite tensor's name, a
  Keras layer's name). A BN of the original whose output the candidate produces with a conv or
  dense node was folded into that node; with a bias add or an activation right after one (a
  GraphDef BiasAdd named like the BN, an ONNX MatMul's Add, an activation kept as its own op),
  into the layer before it; with a BatchNorm, it was kept. When the BN's output name is gone and
  the layer's own output now carries it (onnxsim keeps the conv's name), the BN was folded into
  that layer. Every other tensor both models produce is compared end to end, when its producer
  reads as many tensors and constants as before (a tool that merged a bias add into a conv and
  kept the conv's name changed what that name holds).
- A Keras original and a TFLite candidate (TensorFlow's converter; the pairs of formats whose
  models convert to another, ``Format.converts_to``): by the converter's naming, which the
  original's frontend knows (its part ``converter``, ``ConverterNames``).
- Outputs and inputs: by name (a TFLite signature's ``serving_default_x:0`` is ``x``), else by the
  candidate's own signature (``Frontend.signature_order``), else by position.
- Not lined up: a BN whose output tensor the candidate renamed or split, a tool that merged
  layers across a BN, or a separable layer the candidate split in two (the converter's
  DEPTHWISE_CONV_2D then CONV_2D: the op that absorbed the BN does not read what the original
  layer received); the fold of such a BN is checked through the outputs only, and the report
  lists it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from fold.core.errors import FoldError
from fold.core.graph import count_bns, flatten, node_tensor
from fold.core.verification import SAMPLES, InputSpec
from fold.engine.comparison import Checked, Correspondence, FoldedLayer, Side, compare_models, folded_path
from fold.engine.pipeline import load, model_inputs
from fold.frontends.formats import FRONTENDS, MAX_MODEL_BYTES

#: Pairs of formats ``check`` compares, (original, candidate): a format with itself, and a format with the
#: one its models convert to (``Format.converts_to``: TensorFlow's converter, Keras to TFLite).
PAIRS = {(f.name, f.name) for f in FRONTENDS.values()} | {(f.name, f.converts_to) for f in FRONTENDS.values()
                                                          if f.converts_to}
#: Roles a node may have between a folded layer and the tensor the BN produced.
_AFTER_LAYER = ("other", "activation")


@dataclass
class BnFate:
    """What the candidate did with one BatchNorm of the original.

    status: "folded" (the candidate no longer computes it: folded into ``into``, or, with ``into``
    None, gone where the candidate could not be lined up, which the outputs check) or "kept"
    (``into``: the candidate's BN).
    """

    bn: str
    layer: str
    status: str
    into: str | None = None

    def to_dict(self) -> dict:
        return {"bn": self.bn, "layer": self.layer, "status": self.status, "into": self.into}


@dataclass
class CheckResult:
    """A candidate lined up with its original and verified: what ``foldscope check`` prints
    (``fold.outputs.report.check_text``)."""

    original_name: str
    candidate_name: str
    original: Side
    candidate: Side
    fates: list[BnFate]
    checked: Checked
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """"pass", "fail" or "inconclusive" (its reason: ``checked.verification.reason``)."""
        return self.checked.verification.verdict

    @property
    def bn_original(self) -> int:
        return count_bns(self.original.graph)

    @property
    def bn_candidate(self) -> int:
        return count_bns(self.candidate.graph)

    @property
    def removed(self) -> list[BnFate]:
        return [f for f in self.fates if f.status == "folded"]

    def to_dict(self, original_path: str, candidate_path: str) -> dict:
        """The report: the same shape as a fold's (``pairs`` are the original's BNs)."""
        return {
            "input": original_path, "output": candidate_path,
            "pairs": [{"layer": f.into, "bn": f.bn, "kind": self.original.graph.nodes.get(f.layer, {}).get("op")
                       if f.layer in self.original.graph else None, "status": f.status, "source": f.layer,
                       "reason": None if f.status == "folded" or f.into else "the candidate keeps it"}
                      for f in self.fates],
            "folded": len(self.removed), "skipped": len(self.fates) - len(self.removed),
            "bn_before": self.bn_original, "bn_after": self.bn_candidate,
            "removed": [f.bn for f in self.removed],
            "verification": self.checked.verification.to_dict(),
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
        }


class _ByName:
    """Same format: a tensor of the candidate is the original's tensor of the same name (and an
    output, the candidate's output in the same place)."""

    def __init__(self, original: nx.DiGraph, candidate: nx.DiGraph, outputs: Mapping[str, str]):
        self.candidate = candidate
        self.producer = {node_tensor(candidate, n): n for n in candidate}
        self.outputs = outputs

    def node(self, graph: nx.DiGraph, node: str) -> str | None:
        """The candidate's node producing what ``node`` of the original produces."""
        return self.producer.get(node_tensor(graph, node)) or self.outputs.get(node)

    def absorbed(self, graph: nx.DiGraph, bn: str) -> tuple[str, str] | None:
        """(candidate node producing the BN's output, original node it stands for), if any."""
        found = self.node(graph, bn)
        return None if found is None else (found, bn)


def _matcher(original: Side, candidate: Side, g_orig: nx.DiGraph, g_cand: nx.DiGraph, order: list[int] | None):
    """The tensor matching for the pair of formats; the models' output nodes always match each other."""
    ends = list(g_cand.graph.get("outputs", []))
    outputs = {node: ends[order[k] if order else k] for k, node in enumerate(g_orig.graph.get("outputs", []))
               if (order[k] if order else k) < len(ends)}
    if original.frontend.format.name == candidate.frontend.format.name:
        return _ByName(g_orig, g_cand, outputs)
    return original.frontend.format.part("converter").ConverterNames(g_orig, g_cand, outputs)


def _signature(graph: nx.DiGraph, node: str) -> tuple:
    """What a node computes, as far as a tool that renames constants keeps it: its op and how many
    tensors and constants it reads. A tool that merged a bias add into a conv and kept the conv's
    output name changed what that name holds; such a tensor is not compared."""
    data = graph.nodes[node]
    return data.get("op"), graph.in_degree(node), len(data.get("weights") or {})


def _folded_into(graph: nx.DiGraph, node: str) -> str | None:
    """The linear node a candidate's node is, or follows through at most two single-use ops."""
    for _ in range(3):
        if graph.nodes[node].get("role") == "linear":
            return node
        if graph.nodes[node].get("role") not in _AFTER_LAYER:
            return None
        before = list(graph.predecessors(node))
        if len(before) != 1 or graph.out_degree(before[0]) != 1:
            return None
        node = before[0]
    return None


def _still_a_bn(match, g_orig: nx.DiGraph, g_cand: nx.DiGraph, parts: Sequence[str]) -> str | None:
    """The candidate's BN that an earlier op of a BN (its Mul) still is, if any (the id of its last op)."""
    for part in parts:
        other = match.node(g_orig, part) if part in g_orig else None
        if other is not None and g_cand.nodes[other].get("role") == "bn":
            return g_cand.nodes[other].get("bn_group", other)
    return None


def _bn_after(graph: nx.DiGraph, node: str) -> bool:
    """Whether a BN follows ``node``, right after it or behind ops that only pass its output on (a
    TRANSPOSE back to NCHW, a reshape: anything but a layer, each read by the next alone)."""
    for _ in range(4):
        after = list(graph.successors(node))
        if any(graph.nodes[n].get("role") == "bn" for n in after):
            return True
        if len(after) != 1 or graph.nodes[after[0]].get("role") not in ("other",):
            return False
        node = after[0]
    return False


def _split(c, candidate: Side, layer: str) -> bool:
    """Whether the candidate split the original's separable layer in two (TensorFlow's converter writes
    DEPTHWISE_CONV_2D then CONV_2D): its op that absorbed the BN reads the depthwise part's output, not
    what the original layer received, so it cannot be run alone on that."""
    if c.kind is None or c.kind.family != "separable":
        return False
    try:
        return candidate.frontend.kernel(candidate.model, layer).kind.family != "separable"
    except (ValueError, KeyError):
        return True


def line_up(original: Side, candidate: Side) -> tuple[Correspondence, list[BnFate]]:
    """How the candidate lines up with its original: the fate of every BN, the folded layers, the
    shared tensors, and the outputs' order."""
    g_orig, g_cand = flatten(original.graph), flatten(candidate.graph)
    outputs = _outputs(original, candidate)
    match = _matcher(original, candidate, g_orig, g_cand, outputs)
    fates, folded, split = [], [], []
    for c in original.frontend.candidates(original.model):
        tail = c.bn.split("+")[-1]
        found = match.absorbed(g_orig, tail) if tail in g_orig else None
        if found is not None and g_cand.nodes[found[0]].get("role") == "bn":
            fates.append(BnFate(c.bn, c.layer, "kept", found[0]))
            continue
        kept = _still_a_bn(match, g_orig, g_cand, c.bn.split("+")[:-1]) if found is None else None
        if kept is not None:  # its Mul is still there: a tool that fused an activation renamed its Add's output
            fates.append(BnFate(c.bn, c.layer, "kept", kept))
            continue
        if found is None and c.layer in g_orig:  # the BN's output is gone: does the layer's carry it now?
            before = match.node(g_orig, c.layer)
            if before is not None and not _bn_after(g_cand, before):
                found = (before, tail)
        layer = None if found is None else _folded_into(g_cand, found[0])
        fates.append(BnFate(c.bn, c.layer, "folded", layer))
        if layer is not None and c.layer in g_orig and _split(c, candidate, layer):
            split.append(c)
        elif layer is not None and c.layer in g_orig:  # the BN's own parameters, for the layer's float bound
            affine = c.folded_affine()
            folded.append(FoldedLayer(layer, found[0], c.layer, found[1], c.bn, affine.scale, affine.terms,
                                      origin=c.layer, steps=affine.steps))
    output_only = [f.bn for f in fates if f.status == "folded" and f.into is None] + [c.bn for c in split]
    taken = {n for f in folded for n in folded_path(g_cand, f.layer, f.until)}
    halves = {c.layer for c in split}  # what stands for a split layer is its first half: nothing to compare
    same_format = original.frontend.format.name == candidate.frontend.format.name
    shared = []
    for node, role in g_orig.nodes(data="role"):
        other = match.node(g_orig, node)
        if role != "input" and other is not None and other not in taken and node not in halves and \
                g_cand.nodes[other].get("role") != "input" and \
                (not same_format or _signature(g_orig, node) == _signature(g_cand, other)):
            shared.append((node, other))
    corr = Correspondence(folded, list(dict(shared).items()), outputs, output_only, _inputs(original, candidate))
    return corr, fates


def _plain(name: str) -> str:
    """A TFLite signature tensor's name as the model's input or output: "serving_default_x:0" -> "x"."""
    return re.sub(r"^serving_default_|:0$", "", name)


def _order(original: Sequence[str], candidate: Sequence[str], what: str) -> list[int] | None:
    """For each original name, the index of the candidate's of the same name (else the same position)."""
    if len(original) != len(candidate):
        raise FoldError(f"The candidate has {len(candidate)} {what}; the original has {len(original)}.")
    for names in (list(candidate), [_plain(n) for n in candidate]):
        if set(original) <= set(names):
            return [names.index(n) for n in original]
    return None


def _outputs(original: Side, candidate: Side) -> list[int] | None:
    names = [o.name for o in original.frontend.outputs(original.model)]
    order = _order(names, [o.name for o in candidate.frontend.outputs(candidate.model)], "outputs")
    if order is None:
        return candidate.frontend.signature_order(candidate.model, len(names))
    return order


def _inputs(original: Side, candidate: Side) -> list[int] | None:
    """For each candidate input, the index of the original input it is (None: the same order)."""
    orig = [s.name for s in original.frontend.inputs(original.model)]
    cand = [s.name for s in candidate.frontend.inputs(candidate.model)]
    if len(orig) != len(cand):
        raise FoldError(f"The candidate has {len(cand)} inputs; the original has {len(orig)}.")
    for names in (cand, [_plain(n) for n in cand]):
        if set(names) <= set(orig):
            return [orig.index(n) for n in names]
    return None


def merged_specs(original: Sequence[InputSpec], candidate: Sequence[InputSpec],
                 order: Sequence[int] | None) -> list[InputSpec]:
    """The original's inputs with the dimensions only the candidate fixes (a converted model's batch of 1)."""
    by_original = {(order[i] if order else i): spec for i, spec in enumerate(candidate)}  # original index -> spec
    merged = []
    for i, spec in enumerate(original):
        other = by_original.get(i)
        if other is None or len(other.shape) != len(spec.shape):
            merged.append(spec)
            continue
        merged.append(InputSpec(spec.name, tuple(a if a is not None else b for a, b in zip(spec.shape, other.shape)),
                                spec.dtype))
    return merged


def check(original: Side, candidate: Side, samples: int = SAMPLES, seed: int = 0, *, atol: float | None = None,
          shapes: Mapping[str, Sequence[int]] | None = None, arrays: Mapping[str, np.ndarray] | None = None,
          inputs: list[np.ndarray] | None = None, names: tuple[str, str] = ("original", "candidate")) -> CheckResult:
    """Line ``candidate`` up with ``original`` and verify it on the same inputs (``inputs`` as given,
    else ``arrays`` by input name, else ``samples`` rows of the recipe)."""
    pair = (original.frontend.format.name, candidate.frontend.format.name)
    if pair not in PAIRS:
        raise FoldError(f"foldscope checks a {original.frontend.format.label} original against a "
                        f"{' or '.join(FRONTENDS[b].label for a, b in sorted(PAIRS) if a == pair[0])} candidate; "
                        f"'{names[1]}' is a {candidate.frontend.format.label} file.")
    start = time.perf_counter()
    corr, fates = line_up(original, candidate)
    specs = merged_specs(original.frontend.inputs(original.model), candidate.frontend.inputs(candidate.model),
                         corr.inputs)
    source = "given"
    if inputs is None:
        inputs, source = model_inputs(original.frontend, original.model, samples, seed, shapes=shapes, arrays=arrays,
                                      specs=specs)
    checked = compare_models(original, candidate, corr, inputs, seed=seed if source == "recipe" else None,
                             source=source, atol=atol)
    checked.verification.input_shapes = {s.name: list(np.shape(x)) for s, x in zip(specs, inputs)}
    return CheckResult(names[0], names[1], original, candidate, fates, checked,
                       {"verify": time.perf_counter() - start})


def check_files(original_path: str | os.PathLike, candidate_path: str | os.PathLike, samples: int = SAMPLES,
                seed: int = 0, *, max_bytes: int = MAX_MODEL_BYTES, upload: bool = False, **options: Any) -> CheckResult:
    """``check`` of two model files; ``options`` are the verification's (atol, shapes, arrays) and the
    formats' load options (inputs, outputs for a GraphDef)."""
    verify_options = {k: options.pop(k) for k in ("atol", "shapes", "arrays") if k in options}
    start = time.perf_counter()
    sides = []
    for path in (original_path, candidate_path):
        frontend, model = load(path, max_bytes, upload=upload, **options)
        sides.append(Side(frontend, model, frontend.graph(model)))
    loaded = time.perf_counter() - start
    result = check(*sides, samples, seed, names=(Path(original_path).name, Path(candidate_path).name),
                   **verify_options)
    result.timings_s = {"load": loaded, **result.timings_s}
    return result


def check_notes(fates: Sequence[BnFate]) -> dict[str, str]:
    """Node -> what a checked tool did with it, in words (for hover texts)."""
    found: dict[str, str] = {}
    for f in fates:
        if f.status == "kept":
            found.update({bn: "kept by the candidate" for bn in f.bn.split("+")})
        elif f.into:
            found[f.layer] = f"the candidate folded {f.bn} into it ({f.into})"
            found.update({bn: f"folded away into {f.into}" for bn in f.bn.split("+")})
        else:
            found.update({bn: "gone from the candidate; not lined up (checked at the outputs)" for bn in f.bn.split("+")})
    return found
