"""Blocks of a large graph (viz.blocks), their view (viz.fold_graph) and the node panel
(foldscope_app.workbench.node_panel), headless: graphs, the scene's data, numbers."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from fold.engine.pipeline import fold
from foldscope_app.examples import model_zoo
from foldscope_app.workbench import node_panel
from foldscope_app.workbench.workbench import inspect_keras
from tests.helpers import KERAS
from viz import fold_graph
from viz.blocks import block_node, block_path, collapse, find_blocks, shown_as, summarise
from viz.interactive import DIFF_BANDS


@pytest.fixture(scope="module")
def densenet():
    return fold(KERAS, model_zoo.application("DenseNet121", input_size=64))


def _nodes(scene: dict, pane: str, ghosts: bool = False) -> dict[str, dict]:
    return {n["id"]: n for p in scene["panes"] if p["name"] == pane for n in p["nodes"] if n["ghost"] == ghosts}


def _pane(scene: dict, pane: str) -> dict:
    return next(p for p in scene["panes"] if p["name"] == pane)


def test_densenet_blocks_are_its_dense_blocks_and_their_transitions(densenet):
    blocks = find_blocks(densenet.graph_before)
    top = [b for b, block in blocks.items() if block.parent is None]
    assert top == ["conv1", "conv2", "pool2", "conv3", "pool3", "conv4", "pool4", "conv5"]
    for stage, units in (("conv2", 6), ("conv3", 12), ("conv4", 24), ("conv5", 16)):  # DenseNet121's 6-12-24-16
        inner = [b for b, block in blocks.items() if block.parent == stage]
        assert inner == [f"{stage}_block{i}" for i in range(1, units + 1)]
        # each dense unit: BN, ReLU, 1x1 conv, BN, ReLU, 3x3 conv, concat
        assert all(len(blocks[b].members) == 7 for b in inner)
        assert len(blocks[stage].members) == 7 * units
    assert set(blocks["pool2"].members) == {"pool2_bn", "pool2_relu", "pool2_conv", "pool2_pool"}


def test_a_collapsed_block_counts_the_bns_folded_and_skipped_inside(densenet):
    graph, blocks = densenet.graph_before, find_blocks(densenet.graph_before)
    folded = [bn for d in densenet.folded_pairs for bn in d.bn_nodes]
    skipped = [bn for d in densenet.decisions if not d.folded for bn in d.bn_nodes]
    for stage in ("conv2", "conv3", "conv4", "conv5", "pool2"):
        summary = summarise(blocks[stage], graph, folded, skipped)
        mine = [d for d in densenet.decisions if d.bn.startswith(stage + "_")]
        assert summary.bns == len(mine) == sum(graph.nodes[n]["role"] == "bn" for n in blocks[stage].members)
        assert (summary.folded, summary.skipped) == (sum(d.folded for d in mine), sum(not d.folded for d in mine))
    conv2 = summarise(blocks["conv2"], graph, folded, skipped)
    # in a dense unit the first BN follows a concat (skipped), the second follows the 1x1 conv (folded)
    assert (conv2.layers, conv2.bns, conv2.folded, conv2.skipped) == (42, 12, 6, 6)
    assert conv2.text() == "42 layers, 12 BatchNorms: 6 folded, 6 skipped"


def test_closing_every_block_leaves_one_node_each_and_opening_them_restores_every_node(densenet):
    graph = densenet.graph_before
    blocks = find_blocks(graph)
    closed = collapse(graph, blocks, ())
    assert {block_node(b) for b, block in blocks.items() if block.parent is None} <= set(closed)
    assert len(closed) == 8 + sum(1 for n in graph if not block_path(n))  # the top blocks and the layers outside any
    assert closed.nodes["[conv3]"]["layers"] == 84 and closed.has_edge("[conv2]", "[pool2]")
    assert nx.is_directed_acyclic_graph(closed)
    opened = collapse(graph, blocks, list(blocks))
    assert set(opened) == set(graph) and set(opened.edges) == set(graph.edges)
    assert collapse(graph, blocks, None) is graph
    # opening an inner block opens its parent: conv3's other units stay closed
    one = collapse(graph, blocks, ["conv3_block2"])
    assert "[conv3]" not in one and "[conv3_block1]" in one and "conv3_block2_1_conv" in one
    assert "[conv2]" in one and shown_as(graph, blocks, ["conv3_block2"])["conv3_block5_concat"] == "[conv3_block5]"


def _chain(names: list[str]) -> nx.DiGraph:
    g = nx.DiGraph(name="chain")
    for name in names:
        g.add_node(name, op="Conv", role="linear", config={}, weights={}, calls=1)
    nx.add_path(g, names)
    return g


def test_scopes_make_blocks_a_wrapper_around_everything_and_single_nodes_do_not():
    onnx_names = [f"/layer{s}/layer{s}.{u}/{op}" for s in (1, 2) for u in (0, 1) for op in ("conv1/Conv", "Relu", "Add")]
    blocks = find_blocks(_chain(["input", *onnx_names, "/fc/Gemm"]))
    assert [b for b, block in blocks.items() if block.parent is None] == ["/layer1", "/layer2"]
    assert blocks["/layer1/layer1.0"].parent == "/layer1" and len(blocks["/layer1/layer1.0"].members) == 3
    assert "/layer1/layer1.0/conv1" not in blocks and "/fc" not in blocks  # one node each
    traced = [f"model/conv{s}_block{u}_{k}_conv/Conv2D" for s in (2, 3) for u in (1, 2) for k in range(6)]
    blocks = find_blocks(_chain(["input", *traced]))  # "model/" holds all but one: no block
    assert "model" not in blocks and blocks["model/conv2"].parent is None
    assert blocks["model/conv2_block1"].parent == "model/conv2"
    assert block_path("block_3_expand_BN") == ["block_3"] and block_path("inner/d") == ["inner"]


@pytest.fixture(scope="module")
def wb():
    return inspect_keras("blocks-unet", model_zoo.unet(), samples=2)


def test_a_figure_of_closed_blocks_summarises_them_and_rings_the_found_layer(wb):
    graphs = wb.graphs(())
    blocks = find_blocks(graphs[0])
    assert "down0" in blocks  # the U-Net's stages: down0_conv0, down0_bn0, ...
    view = fold_graph.block_view(wb.result, graphs, ())
    scene = fold_graph.figure(wb.result, graphs=graphs, blocks=view)
    nodes = _nodes(scene, "before")
    summary = view.summaries["down0"]
    assert summary.bns == sum(d.bn.startswith("down0_") for d in wb.result.decisions) > 0
    assert summary.text() in nodes["[down0]"]["hover"] and "block of" in nodes["[down0]"]["hover"][1]
    assert nodes["[down0]"]["lines"] == [["down0", 12.0], [f"block of {summary.layers} layers ▸", 10.0]]
    assert nodes["[down0]"]["block"] and not nodes[next(n for n in nodes if not n.startswith("["))]["block"]
    closed = sum(n.startswith("[") for n in nodes)
    assert _pane(scene, "before")["title"] == f"before: {len(graphs[0])} layers, {closed} blocks closed"
    viewed = fold_graph.view(scene, graphs[0], found="down0_bn1", center="down0_bn1", blocks=view)
    assert viewed["view"]["found"] == viewed["view"]["center"] == "[down0]"  # the closed block holding it
    assert viewed["find"]["down0_bn1"] == "[down0]"  # Find knows the layer inside, and where it is drawn


def test_the_legend_follows_the_colouring(wb):
    plain = wb.graph_figure((), False)
    coloured = wb.graph_figure((), True)
    legend = lambda scene: [entry["label"] for entry in scene["legend"]]  # noqa: E731
    assert "conv / dense" in legend(plain) and not set(legend(plain)) & {name for name, _ in DIFF_BANDS}
    assert "conv / dense" not in legend(coloured) and "BatchNorm" not in legend(coloured)
    assert [name for name, _ in DIFF_BANDS] + ["not compared"] == legend(coloured)[:len(DIFF_BANDS) + 1]
    assert plain["scale"] is None and coloured["scale"]["high"] == 1.0


def test_the_node_panel_of_a_folded_layer_and_its_bn(wb):
    decision = next(d for d in wb.result.decisions if d.folded)
    panel = wb.panel_of((), decision.layer)
    kernel = wb.result.original.get_layer(decision.layer).get_weights()[0]
    row = next(r for r in panel.weights if r["weight"] == "kernel")
    assert row["shape"] == "×".join(map(str, kernel.shape))
    assert (row["min"], row["max"]) == (pytest.approx(float(kernel.min())), pytest.approx(float(kernel.max())))
    assert row["mean |w|"] == pytest.approx(float(np.abs(kernel).mean()))
    folded_kernel = wb.result.folded.get_layer(decision.layer).get_weights()[0]
    after = next(r for r in panel.weights if r["weight"] == "kernel, folded")
    assert after["max"] == pytest.approx(float(folded_kernel.max())) and after["max"] != row["max"]
    assert panel.fold.startswith(f"folded: {decision.bn} is folded into it")
    check = next(c for c in wb.verification.folded_layers if c.layer == decision.layer)
    assert panel.check.startswith("PASS") and f"{check.margin:.2g} of its tolerance" in panel.check
    assert dict(panel.attributes)["class"] == decision.op and panel.pair == wb.result.decisions.index(decision)
    bn = wb.panel_of((), decision.bn)
    assert bn.fold == f"folded away into {decision.layer}" and bn.pair == panel.pair
    scale = next(r for r in bn.weights if r["weight"].startswith("scale"))
    assert scale["max"] == pytest.approx(float(decision.affine.scale.max()))


def test_the_node_panel_of_a_block_and_of_a_plain_layer(wb):
    panel = wb.panel_of((), "[down0]")
    summary = wb.blocks(()).summaries["down0"]
    assert panel.block == "down0" and panel.fold == summary.text() and "worst folded layer inside" in panel.check
    relu = next(n for n, r in wb.graphs(())[0].nodes(data="role") if r == "activation")
    plain = wb.panel_of((), relu)
    assert plain.fold == "" and plain.pair is None and plain.weights == []
    assert wb.panel_of((), "not a node") is None
    assert node_panel.node_panel(wb.result, wb.verification, wb.graphs(())[0], relu).title == relu


def test_a_found_bn_folding_removed_is_ringed_in_both_panes_its_ghost_in_the_after_pane(wb):
    decision = next(d for d in wb.result.decisions if d.folded)
    graphs = wb.graphs(())
    scene = fold_graph.view(wb.graph_figure((), False), graphs[0], found=decision.bn)
    assert scene["view"]["found"] == decision.bn
    ghost = _nodes(scene, "after", ghosts=True)[decision.bn]  # where the script rings it in the "after" pane
    assert ghost["box"] == _nodes(scene, "before")[decision.bn]["box"]
    assert fold_graph.view(wb.graph_figure((), False), graphs[0])["view"]["found"] is None
