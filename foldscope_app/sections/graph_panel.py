"""The interactive graph before and after folding: pan, zoom, hover, click a node for its panel
(and its pair), find a layer, open blocks and nested models, jump to a block, colour by where the
error enters; the static picture and the Model Explorer files as downloads."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from foldscope_app.workbench.node_panel import NodePanel
from foldscope_app.workbench.workbench import Workbench
from viz import fold_graph
from viz.blocks import ancestors, block_path


def pair_key(wb: Workbench) -> str:
    """The session key of the Fold tab's "Pair to inspect" box."""
    return f"pair:{wb.key}"


def graph_ui(wb: Workbench, pair_layer: str | None, view: str = "fold") -> None:
    """The graphs of a workbench's fold, opening on ``pair_layer``; ``view`` names them on the page ("fold":
    the Fold tab's own, whose clicks pick the pair inspected; "ops": a Keras model's op view)."""
    keys = {name: f"{name}:{wb.key}" for name in
            ("center", "find", "found", "inspect", "anchor", "open", "blocks", "whole", "jump", "graph")}
    _note_click(keys)
    c1, c2, c3 = st.columns([2, 2, 1.4])

    def on_found() -> None:  # centre on it, ring it, open its panel; a layer or BN of a pair becomes the pair inspected
        found = st.session_state[keys["find"]]
        st.session_state[keys["center"]] = st.session_state[keys["found"]] = found
        if found is not None:
            st.session_state[keys["inspect"]] = found
        around = [b for b in block_path(found) if b in wb.blocks(expanded).blocks] if found else []
        if around and not st.session_state.get(keys["whole"]):  # open the blocks around it, to show it
            st.session_state[keys["blocks"]] = sorted({*st.session_state.get(keys["blocks"], []), around[-1]})
        index = fold_graph.pair_index(wb.result.decisions, found) if view == "fold" and found else None
        if index is not None:
            st.session_state[pair_key(wb)] = index
            st.session_state[keys["anchor"]] = wb.result.decisions[index].layer

    c1.selectbox("Find a layer", wb.layer_names(), index=None, placeholder="type a layer name", key=keys["find"],
                 on_change=on_found)
    nested = wb.nested_models()
    expanded = tuple(c2.multiselect("Open nested models", nested, key=keys["open"]) if nested else ())
    colour = c3.toggle("Colour by each layer's check", key=f"colour:{wb.key}",
                       help="Colours every compared layer by its |diff| against its tolerance (log scale; above 1 it "
                            "fails): a folded layer against the BN it absorbed, every other layer against itself.")
    opened = blocks_ui(wb, expanded, keys)
    with st.spinner("Laying out the graph..."):
        base = wb.graph_figure(expanded, colour, opened)
    # The view opens on the first pair and moves only when asked (a layer found, a pair picked in the
    # box, a block jumped to). A click in the graph picks a pair without changing the figure: Plotly
    # already shows the clicked node selected, and an unchanged figure is not drawn again (1600
    # points take a second).
    anchor = st.session_state.get(keys["anchor"]) or pair_layer
    center = st.session_state.get(keys["center"]) or anchor
    blocks = None if opened is None else wb.block_view(expanded, opened)
    fig = fold_graph.view(base, wb.graphs(expanded)[0], selected=anchor if view == "fold" else None,
                          center=center, found=st.session_state.get(keys["found"]), blocks=blocks,
                          revision=f"{wb.key}:{expanded}:{opened}:{center}")
    st.caption("Drag to pan, scroll to zoom (both panes move together), hover a node for its details, click one "
               "for its panel below" + (" (a layer or a BatchNorm: its pair is inspected)." if view == "fold" else ".")
               + " Blue outline: a BN was folded into it (a block: inside it); red: a BN folding removes (a ghost "
                 "on the right); a large node is a closed block; a pink ring marks the layer found.")
    st.plotly_chart(fig, key=keys["graph"], on_select="rerun", selection_mode="points",
                    config={"scrollZoom": True, "displaylogo": False})
    if colour:
        worst = wb.verification.worst()
        if worst is not None:
            st.caption(f"Closest to its tolerance: '{worst.layer}' (against '{worst.tensor}'), |diff| at "
                       f"{worst.margin:.2g} of it, max rel diff {worst.max_rel_diff:.2e}.")
    inspected = st.session_state.get(keys["inspect"])
    if inspected:
        node = fold_graph.drawn(inspected, wb.graphs(expanded)[0], blocks) or inspected
        panel = wb.panel_of(expanded, node)
        if panel is not None:
            node_panel_ui(panel, wb, view, keys)
    downloads_ui(wb, view)


def _note_click(keys: dict[str, str]) -> None:
    """A new click in the graph (since the last run) opens that node's panel."""
    clicked = fold_graph.clicked_node(st.session_state.get(keys["graph"]))
    if clicked is not None and clicked != st.session_state.get(f"{keys['graph']}:seen"):
        st.session_state[f"{keys['graph']}:seen"] = clicked
        st.session_state[keys["inspect"]] = clicked


def blocks_ui(wb: Workbench, expanded: tuple[str, ...], keys: dict[str, str]) -> tuple[str, ...] | None:
    """Which blocks are open (None: all of them, the whole graph), and the block list to jump by."""
    every = wb.blocks(expanded)
    if not every.blocks:
        return None
    ids = list(every.blocks)

    def label(block: str) -> str:
        depth = len(ancestors(block, every.blocks))
        return f"{'· ' * depth}{every.blocks[block].label}: {every.summaries[block].text()}"

    def jump() -> None:
        target = st.session_state[keys["jump"]]
        if target is not None:
            st.session_state[keys["center"]] = target
            st.session_state[keys["inspect"]] = target

    b1, b2, b3 = st.columns([1.2, 2.8, 2])
    whole = b1.toggle("Every block open", value=not fold_graph.collapsed_at_first(wb.graphs(expanded)[0]),
                      key=keys["whole"], help=f"{len(ids)} blocks, grouped by the layers' names. Large graphs open "
                                              "with every block closed, each drawn as one node.")
    chosen = b2.multiselect("Open blocks", ids, key=keys["blocks"], format_func=label, disabled=whole,
                            placeholder="every block closed: pick blocks to open")
    b3.selectbox("Jump to a block", ids, index=None, format_func=label, key=keys["jump"], on_change=jump,
                 placeholder="centre the graph on a block")
    with st.expander(f"Blocks: what each holds ({len(ids)})"):  # a table: the page's data frames are the pairs'
        st.table(pd.DataFrame([{"block": b, "inside": every.blocks[b].parent or "", **vars(every.summaries[b])}
                               for b in ids]).set_index("block"))
    return None if whole else tuple(sorted(set(chosen) | set(expanded)))


def node_panel_ui(panel: NodePanel, wb: Workbench, view: str, keys: dict[str, str]) -> None:
    """A clicked or found node's details: attributes, weights, fold status and its own check."""
    with st.container(border=True, key=f"node-panel-{view}"):
        st.markdown(f"**Node panel: {panel.title}**")
        left, right = st.columns([1, 1.4])
        # tables, not data frames: a panel is a few rows, read whole (and as text)
        left.table(pd.DataFrame(panel.attributes, columns=["attribute", "value"]).set_index("attribute"))
        if panel.fold:
            right.markdown(f"**Fold:** {panel.fold}")
        if panel.check:
            right.markdown(f"**Check:** {panel.check}")
        if panel.weights:
            right.table(pd.DataFrame([{k: "" if v is None else f"{v:.4g}" if isinstance(v, float) else v
                                       for k, v in row.items()} for row in panel.weights]).set_index("weight"))
        elif panel.block is None:
            right.caption("No weights.")
        if panel.block is not None and not st.session_state.get(keys["whole"]):
            def open_it() -> None:
                st.session_state[keys["blocks"]] = sorted({*st.session_state.get(keys["blocks"], []), panel.block})

            right.button("Open this block", key=f"open-block:{wb.key}", on_click=open_it)


def downloads_ui(wb: Workbench, view: str) -> None:
    """The whole graph as a PNG or an SVG, and the Model Explorer files, each made when clicked."""
    d1, d2, d3, _ = st.columns([1, 1, 1.6, 1.4])
    for col, fmt in ((d1, "png"), (d2, "svg")):
        col.download_button(f"Static picture (.{fmt})", lambda fmt=fmt: wb.static_picture(fmt),
                            file_name=f"{wb.name}_{view}_graph.{fmt}", mime=f"image/{'svg+xml' if fmt == 'svg' else fmt}",
                            key=f"picture:{wb.key}:{fmt}", on_click="ignore")
    d3.download_button("Open in Model Explorer (.zip)", key=f"explorer:{wb.key}", on_click="ignore",
                       data=lambda: wb.model_explorer_zip(),
                       file_name=f"{wb.name}_{view}_model_explorer.zip", mime="application/zip",
                       help="The graphs before and after, each node's fold status (and its layer diff when coloured) "
                            "and a mapping for the split view, as Google's Model Explorer reads them: "
                            "`model-explorer before.json after.json`.")
