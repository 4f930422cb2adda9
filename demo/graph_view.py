"""The page's graph view of a fold: what each node's hover says, which pair a click picks, which
nested models are open, and the static picture to download. Logic only; the figure is drawn
by ``viz.interactive`` and shown by the page."""

from __future__ import annotations

import io
from collections.abc import Collection, Mapping, Sequence

import networkx as nx

from demo.pictures import picture
from fold.core.graph import flatten
from fold.core.result import FoldResult
from fold.core.rules import Decision, fold_notes
from fold.core.verdict import TensorCheck
from viz.graph import draw_before_after
from viz.interactive import before_after_figure, with_view


def nested_models(graph: nx.DiGraph) -> list[str]:
    """The nested models of a graph (paths, outermost first), which the view can open."""
    found = []
    for node, data in graph.nodes(data=True):
        if "subgraph" in data:
            found.append(node)
            found += [f"{node}/{inner}" for inner in nested_models(data["subgraph"])]
    return found


def open_graphs(result: FoldResult, expanded: Collection[str]) -> tuple[nx.DiGraph, nx.DiGraph]:
    """Both graphs with the ``expanded`` nested models opened (the others stay one node each)."""
    return flatten(result.graph_before, expanded), flatten(result.graph_after, expanded)


def visible(node: str, graph: nx.DiGraph) -> str | None:
    """The node of ``graph`` that shows ``node``: itself, or the closed nested model holding it."""
    parts = node.split("/")
    for k in range(len(parts), 0, -1):
        if "/".join(parts[:k]) in graph:
            return "/".join(parts[:k])
    return None


def figure(result: FoldResult, *, expanded: Collection[str] = (), checks: Sequence[TensorCheck] | None = None,
           graphs: tuple[nx.DiGraph, nx.DiGraph] | None = None) -> dict:
    """The interactive before/after figure of a fold, as a Plotly figure dict (``viz.interactive.with_view``
    then picks the view); ``checks`` (the verification's) colour the nodes by |diff| / tolerance.
    ``graphs``: ``open_graphs(result, expanded)``, when the caller has them already."""
    before, after = graphs or open_graphs(result, expanded)
    folded = [d.layer for d in result.folded_pairs]
    removed = [bn for d in result.folded_pairs for bn in d.bn_nodes]
    by_node: Mapping[str, float] | None = None
    if checks is not None:
        by_node = {c.layer: c.margin for c in checks}
        by_node.update({d.output_node: by_node[d.layer] for d in result.folded_pairs
                        if d.layer in by_node and d.output_node})
    return before_after_figure(before, after, folded_layers=folded, removed_bns=removed, notes=fold_notes(result.decisions),
                               diffs=by_node).to_dict()


def view(figure_: dict, before: nx.DiGraph, *, selected: str | None = None, center: str | None = None,
         revision: str = "graph") -> dict:
    """The figure opening around ``center`` with ``selected`` ringed; a node inside a nested model
    that ``before`` (the figure's "before" graph, as ``open_graphs`` opened it) keeps closed is
    shown by that model's node."""
    return with_view(figure_, selected=visible(selected, before) if selected else None,
                     center=visible(center, before) if center else None, revision=revision)


def pair_index(decisions: Sequence[Decision], node: str) -> int | None:
    """The candidate pair a clicked node belongs to (as its layer or one of its BN nodes), if any."""
    for i, d in enumerate(decisions):
        if node == d.layer or node in d.bn_nodes or node == d.output_node:
            return i
    return None


def clicked_node(selection: Mapping | None) -> str | None:
    """The node id of the last point a Plotly selection event picked (None when it picked none)."""
    points = ((selection or {}).get("selection") or {}).get("points") or []
    for point in reversed(points):
        node = point.get("customdata")
        if isinstance(node, list):
            node = node[0] if node else None
        if isinstance(node, str):
            return node
    return None


def model_explorer_zip(result: FoldResult, checks: Sequence[TensorCheck] | None = None) -> bytes:
    """The Model Explorer files of a fold (``fold.model_explorer.export``) in one zip archive."""
    import tempfile
    import zipfile
    from pathlib import Path

    from fold.model_explorer import export

    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in export(result, Path(tmp), checks):
            archive.write(path, path.name)
    return buffer.getvalue()


def static_picture(result: FoldResult, fmt: str) -> bytes:
    """The whole before/after graph as a PNG or an SVG (the matplotlib drawing)."""
    return picture(draw_before_after(result.graph_before, result.graph_after,
                                     folded_layers=[d.layer for d in result.folded_pairs],
                                     removed_bns=[bn for d in result.folded_pairs for bn in d.bn_nodes]), fmt)
