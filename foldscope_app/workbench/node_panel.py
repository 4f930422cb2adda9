"""What the graph's node panel says about one clicked or found node: a layer's attributes, weight
shapes and value statistics, its fold status with the reason and its own check; a closed block's
layers, BatchNorms and worst check; a check's node, in either model. Logic only; the page draws it (``foldscope_app.sections.graph_panel``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from fold.core.errors import listed
from fold.core.result import FoldResult
from fold.core.verification import Verification
from fold.outputs.report import layer_verdict
from fold.tools.check import CheckResult, check_notes
from viz.blocks import block_of
from viz.fold_graph import BlockView, pair_index

_LISTED = 6  # neighbours and inner blocks named before "and N more"


@dataclass(frozen=True)
class NodePanel:
    """The panel of one node.

    title:      the layer's name, or "block <id>".
    attributes: (name, value) rows: class, role, settings, shapes, neighbours.
    weights:    one row per weight: its name, shape, and min, max and mean |w| where read.
    fold:       what the fold did to it and why ("" when it is in no candidate pair).
    check:      its own check in words ("" when none compared it).
    pair:       the candidate pair it is part of (index into the decisions), if any.
    block:      the block's id, for a closed block's panel.
    """

    title: str
    attributes: list[tuple[str, str]]
    weights: list[dict] = field(default_factory=list)
    fold: str = ""
    check: str = ""
    pair: int | None = None
    block: str | None = None


def _shape(shape) -> str:
    return "?" if shape is None else "×".join("?" if d is None else str(d) for d in shape)


def _listed(names: list[str]) -> str:
    return listed(names, _LISTED) or "none"


def _stats(name: str, values: np.ndarray | None, shape=None) -> dict:
    row = {"weight": name, "shape": _shape(values.shape if values is not None else shape),
           "min": None, "max": None, "mean |w|": None}
    if values is not None and values.size:
        values = np.asarray(values, dtype=np.float64)
        row.update({"min": float(values.min()), "max": float(values.max()), "mean |w|": float(np.abs(values).mean())})
    return row


def _weights(result: FoldResult, node: str, data: dict) -> list[dict]:
    """The node's weights: the kernel and bias a fold reads, before and after it (a folded
    layer), or a folded BN's scale and shift; other weights by shape only."""
    decision = next((d for d in result.decisions if node in (d.layer, *d.bn_nodes)), None)
    rows = []
    try:
        found = result.frontend.kernel(result.original, node)
    except (ValueError, KeyError, IndexError):  # not a layer with a kernel foldscope reads
        found = None
    if found is not None:
        rows += [_stats("kernel", np.asarray(found.kernel))]
        if found.bias is not None:
            rows.append(_stats("bias", np.asarray(found.bias)))
        if decision is not None and decision.folded and node == decision.layer:
            after = result.frontend.kernel(result.folded, node)
            rows.append(_stats("kernel, folded", np.asarray(after.kernel)))
            if after.bias is not None:
                rows.append(_stats("bias, folded", np.asarray(after.bias)))
    elif decision is not None and decision.folded and decision.affine is not None and node != decision.layer:
        rows += [_stats("scale (γ / σ)", decision.affine.scale), _stats("shift (β - μ γ / σ)", decision.affine.shift)]
    read = {"kernel", "bias"} if found is not None else set()
    rows += [_stats(name, None, shape) for name, shape in (data.get("weights") or {}).items()
             if found is None or name not in read and not name.endswith(("kernel", "bias"))]
    return rows


def _fold(result: FoldResult, node: str, index: int | None) -> str:
    if index is None:
        return ""
    d = result.decisions[index]
    if not d.folded:
        return f"{'BatchNorm' if node != d.layer else 'layer'} of the pair {d.layer} → {d.bn}: not folded ({d.rule}): {d.reason}"
    if node == d.layer:
        return f"folded: {d.bn} is folded into it (scale and shift per output channel)"
    if node in d.bn_nodes:
        return f"folded away into {d.layer}"
    return f"produces what {d.bn} produced once {d.layer} absorbed it"


def _check(result: FoldResult, verification: Verification, node: str, index: int | None) -> str:
    if index is not None:
        d = result.decisions[index]
        if not d.folded:
            return "not folded: nothing of its own to check"
        check = next((c for c in verification.folded_layers if c.layer == d.layer), None)
        verdict = layer_verdict(check, d, verification)
        if check is None:
            return f"{verdict}: checked at the model's outputs only" if verdict else ""
        exercised = "" if check.exercised is None else f", {check.exercised} of {check.channels} channels exercised"
        if check.synthetic:
            exercised += f" ({len(check.synthetic)} only by a synthetic batch)"
        return (f"{verdict}: {d.layer} fed what the original layer received, against {d.bn}: |diff| at "
                f"{check.margin:.2g} of its tolerance, max abs diff {check.max_abs_diff:.2e}, max rel diff "
                f"{check.max_rel_diff:.2e}{exercised}")
    check = next((c for c in verification.layers if c.layer == node and c.role != "folded"), None)
    if check is None:
        return ""
    return (f"{'PASS' if check.passed else 'FAIL'} ({check.role}, end to end): |diff| at {check.margin:.2g} of its "
            f"tolerance, max abs diff {check.max_abs_diff:.2e}")


def layer_attributes(graph: nx.DiGraph, node: str) -> list[tuple[str, str]]:
    """A layer's rows: class, role, where it sits, its settings, output shapes and neighbours."""
    data = graph.nodes[node]
    shapes = sorted({_shape(s) for *_, s in graph.out_edges(node, data="shape")})
    attributes = [("class", str(data.get("op", "?"))), ("role", str(data.get("role", "?")))]
    if data.get("namespace"):
        attributes.append(("inside", str(data["namespace"])))
    attributes += [(str(k), str(v)) for k, v in (data.get("config") or {}).items()]
    if data.get("calls", 1) != 1:
        attributes.append(("calls", str(data["calls"])))
    return attributes + [("output", ", ".join(shapes) or "?"), ("inputs from", _listed(list(graph.predecessors(node)))),
                         ("outputs to", _listed(list(graph.successors(node))))]


def weight_shapes(graph: nx.DiGraph, node: str) -> list[dict]:
    """A layer's weights by shape only (what the graph knows of them)."""
    return [_stats(name, None, shape) for name, shape in (graph.nodes[node].get("weights") or {}).items()]


def layer_panel(result: FoldResult, verification: Verification, graph: nx.DiGraph, node: str) -> NodePanel:
    """The panel of layer ``node`` of ``graph`` (the open graph before folding)."""
    index = pair_index(result.decisions, node)
    return NodePanel(str(node), layer_attributes(graph, node), _weights(result, node, graph.nodes[node]),
                     _fold(result, node, index), _check(result, verification, node, index), index)


def block_panel(result: FoldResult, verification: Verification, blocks: BlockView, block: str) -> NodePanel:
    """The panel of a block: what it holds, its pairs' fates and its worst folded layer."""
    members = set(blocks.blocks[block].members)
    summary = blocks.summaries[block]
    pairs = [d for d in result.decisions if d.layer in members or set(d.bn_nodes) & members]
    folded = {d.layer for d in pairs if d.folded}
    checks = [c for c in verification.folded_layers if c.layer in folded]
    worst = max(checks, key=lambda c: (not c.passed, c.margin), default=None)
    check = "" if worst is None else (
        f"worst folded layer inside: {worst.layer}, {'FAIL' if not worst.passed else 'PASS'}, |diff| at "
        f"{worst.margin:.2g} of its tolerance ({len(checks)} folded layers checked)")
    return NodePanel(f"block {block}", block_attributes(blocks, block), [], summary.text(), check, None, block)


def block_attributes(blocks: BlockView, block: str) -> list[tuple[str, str]]:
    """A block's rows: its layers and BatchNorms, the blocks inside it, the block around it."""
    summary = blocks.summaries[block]
    inner = [b.label for b in blocks.blocks.values() if b.parent == block]
    return [("layers", str(summary.layers)), ("BatchNorms", str(summary.bns)), ("blocks inside", _listed(inner)),
            ("inside", blocks.blocks[block].parent or "the model")]


def node_panel(result: FoldResult, verification: Verification, graph: nx.DiGraph, node: str,
               blocks: BlockView | None = None) -> NodePanel | None:
    """The panel of a drawn node: a layer of ``graph`` (the open graph before folding) or a closed
    block of ``blocks``; None for anything else (a node of the folded graph only)."""
    block = block_of(node, blocks.blocks) if blocks is not None else None
    if block is not None:
        return block_panel(result, verification, blocks, block)
    return layer_panel(result, verification, graph, node) if node in graph else None


def check_panel(result: CheckResult, graphs: tuple[nx.DiGraph, nx.DiGraph, dict[str, str]], node: str,
                blocks: BlockView | None = None) -> NodePanel | None:
    """What the node panel of a check says about a drawn node: a layer of either model (its attributes
    in the original where it has them, else in the candidate), what the candidate did with it and its
    own check; a closed block's summary."""
    before, after, names = graphs
    block = block_of(node, blocks.blocks) if blocks is not None else None
    if block is not None:
        return NodePanel(f"block {block}", block_attributes(blocks, block), [], blocks.summaries[block].text(),
                         block=block)
    graph = before if node in before else after if node in after else None
    if graph is None:
        return None
    shown = {v: k for k, v in names.items()}
    checks = [c for c in result.checked.verification.layers if names.get(c.layer, c.layer) == node or c.tensor == node]
    check = "; ".join(f"{'PASS' if c.passed else 'FAIL'} ({c.role}, {c.mode}): the candidate's {c.layer} against the "
                      f"original's {c.tensor}, |diff| at {c.margin:.2g} of its tolerance, max abs diff "
                      f"{c.max_abs_diff:.2e}" for c in checks)
    where = "in both models" if node in before and node in after else \
        "in the original only" if node in before else f"in the candidate only (named {shown.get(node, node)} there)"
    return NodePanel(str(node), [*layer_attributes(graph, node), ("drawn", where)], weight_shapes(graph, node),
                     check_notes(result.fates).get(node, ""), check)
