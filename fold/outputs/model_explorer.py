"""Open a fold in Google's Model Explorer: the graphs before and after, their node data, and a mapping.

Written with Model Explorer's own builders (``model_explorer.graph_builder`` and
``model_explorer.node_data_builder`` from ``ai-edge-model-explorer``), in the files its web
app loads:

    before.json, after.json                  a GraphCollection each; nested models become
                                             namespaces ("outer/inner"), which Model Explorer
                                             shows as layers to expand
    before_fold.json, after_fold.json        node data: the fold status of every node
    after_layer_diff.json                    node data: each compared tensor's |diff| / tolerance
                                             (the verification's checks, when given)
    mapping.json                             {"mappingEntries": [...]}: a folded layer and its BN
                                             on the left, the folded layer on the right; every
                                             other node to itself (for the split view's sync)

    model-explorer before.json after.json    (then load the node data and the mapping in the UI)
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import networkx as nx

from fold.core.graph import flatten
from fold.core.result import FoldResult
from fold.core.rules import fold_notes
from fold.core.verdict import TensorCheck
from fold.core.errors import needs

#: Fold status of a node, as node data values (unchanged, a BN folded into it, a BN folded away, a BN
#: left), with the colour Model Explorer gives them.
UNCHANGED, FOLDED_INTO, FOLDED_AWAY, LEFT = 0, 1, 2, 3
STATUS_COLORS = {UNCHANGED: "#ffffff", FOLDED_INTO: "#9ecae1", FOLDED_AWAY: "#fcbba1", LEFT: "#fdd49e"}
#: ...and in words: Model Explorer's node data holds numbers, so its name says what each one means.
STATUS_WORDS = {UNCHANGED: "unchanged", FOLDED_INTO: "a BN folded into it", FOLDED_AWAY: "a BN folded away",
                LEFT: "a BN left (why: its 'fold' attribute)"}
STATUS_NAME = "fold status: " + ", ".join(f"{value} {words}" for value, words in STATUS_WORDS.items())


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _shape(shape) -> str:
    return "?" if shape is None else "x".join("?" if d is None else str(d) for d in shape)


def me_graph(graph: nx.DiGraph, graph_id: str, notes: dict[str, str]):
    """A Model Explorer ``Graph`` of a foldscope graph; ``notes`` adds a "fold" attribute to nodes."""
    from model_explorer import graph_builder as gb

    flat = flatten(graph)
    nodes = []
    for node, data in flat.nodes(data=True):
        attrs = [gb.KeyValue("op", str(data.get("op", "?"))), gb.KeyValue("role", str(data.get("role", "")))]
        attrs += [gb.KeyValue(f"config.{k}", _text(v)) for k, v in (data.get("config") or {}).items()]
        attrs += [gb.KeyValue(f"weight.{k}", _shape(v)) for k, v in (data.get("weights") or {}).items()]
        if node in notes:
            attrs.append(gb.KeyValue("fold", notes[node]))
        shapes = [s for *_, s in flat.out_edges(node, data="shape")]
        outputs = [gb.MetadataItem("0", [gb.KeyValue("shape", _shape(shapes[0]))])] if shapes else []
        nodes.append(gb.GraphNode(
            id=node, label=str(data.get("op", "?")), namespace=data.get("namespace", ""), attrs=attrs,
            incomingEdges=[gb.IncomingEdge(sourceNodeId=u) for u in flat.predecessors(node)],
            outputsMetadata=outputs))
    return gb.Graph(id=graph_id, nodes=nodes)


def fold_status(result: FoldResult) -> tuple[dict[str, int], dict[str, int]]:
    """The node data values (a status above) of every node the fold concerns, before and after."""
    before, after = {}, {}
    for d in result.decisions:
        if d.folded:
            before.update(dict.fromkeys(d.layers, FOLDED_INTO))
            after.update(dict.fromkeys(d.layers, FOLDED_INTO))
            before.update(dict.fromkeys(d.bn_nodes, FOLDED_AWAY))
        else:
            before.update(dict.fromkeys(d.bn_nodes, LEFT))
            after.update(dict.fromkeys(d.bn_nodes, LEFT))
    return before, after


def _status_data(values: dict[str, int], graph: nx.DiGraph):
    from model_explorer import node_data_builder as nd

    results = {node: nd.NodeDataResult(value=values.get(node, UNCHANGED)) for node in flatten(graph)}
    thresholds = [nd.ThresholdItem(value=v, bgColor=c) for v, c in sorted(STATUS_COLORS.items())]
    return nd.GraphNodeData(results=results, thresholds=thresholds, name=STATUS_NAME)


def _diff_data(checks: Sequence[TensorCheck]):
    from model_explorer import node_data_builder as nd

    results = {c.layer: nd.NodeDataResult(value=float(min(c.margin, 1e6))) for c in checks}
    gradient = [nd.GradientItem(stop=0, bgColor="#e5f5e0"), nd.GradientItem(stop=0.5, bgColor="#fee08b"),
                nd.GradientItem(stop=1, bgColor="#d73027")]
    return nd.GraphNodeData(results=results, gradient=gradient, name="check: |diff| / tolerance (above 1: fails)")


def mapping(result: FoldResult) -> dict:
    """The split view's mapping: a folded layer and its BN nodes to the folded layer; others to themselves."""
    entries, mapped = [], set()
    for d in result.folded_pairs:
        right = list(dict.fromkeys([d.layer, d.output_node or d.layer]))
        entries.append({"leftNodeIds": [d.layer, *d.bn_nodes], "rightNodeIds": right})
        mapped |= {d.layer, *d.bn_nodes, *right}
    after = flatten(result.graph_after)
    entries += [{"leftNodeIds": [n], "rightNodeIds": [n]} for n in flatten(result.graph_before)
                if n in after and n not in mapped]
    return {"mappingEntries": entries}


def export(result: FoldResult, directory: str | Path, diffs: Sequence[TensorCheck] | None = None) -> list[Path]:
    """Write the Model Explorer files of a fold into ``directory``; returns their paths."""
    with needs("model-explorer", "Writing Model Explorer files"):
        from model_explorer import graph_builder as gb
        from model_explorer.utils import remove_none

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    before, after = fold_status(result)
    notes = fold_notes(result.decisions)
    written = []
    for stem, graph, values in (("before", result.graph_before, before), ("after", result.graph_after, after)):
        collection = gb.GraphCollection(label=f"{result.name} ({stem} folding)",
                                        graphs=[me_graph(graph, stem, notes)])
        written.append(out / f"{stem}.json")
        written[-1].write_text(json.dumps(remove_none(asdict(collection))))
        written.append(out / f"{stem}_fold.json")
        _status_data(values, graph).save_to_file(str(written[-1]))
    if diffs is not None:
        written.append(out / "after_layer_diff.json")
        _diff_data(diffs).save_to_file(str(written[-1]))
    written.append(out / "mapping.json")
    written[-1].write_text(json.dumps(mapping(result), indent=1))
    return written


def export_zip(result: FoldResult, checks: Sequence[TensorCheck] | None = None) -> bytes:
    """The Model Explorer files of a fold (``export``) in one zip archive."""
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in export(result, Path(tmp), checks):
            archive.write(path, path.name)
    return buffer.getvalue()
