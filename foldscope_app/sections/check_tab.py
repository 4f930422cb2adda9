"""The Check tab: a fold another tool made, against its original: the verdict, where each BatchNorm
went, both graphs on one layout (the failing layer ringed with its counterpart, Find, blocks, a
node's panel), both models' outputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from fold.outputs import result_views
from foldscope_app.sections import url
from foldscope_app.sections.graph_panel import blocks_ui, graph_component, node_panel_ui, reveal
from foldscope_app.sections.verdict_panel import HTML_HELP, outputs_ui, verdict_ui
from foldscope_app.workbench.workbench import CheckBench
from viz import fold_graph


def check_ui(cb: CheckBench) -> None:
    r, v = cb.result, cb.verification
    verdict_ui(v)
    cols = st.columns(4)
    cols[0].metric("BatchNorms", f"{r.bn_original} → {r.bn_candidate}",
                   help=f"In {r.original_name} and in {r.candidate_name}")
    cols[1].metric("folded by the candidate", len(r.removed))
    cols[2].metric("max abs diff (outputs)", f"{v.max_abs_diff:.3e}")
    cols[3].metric("max rel diff", f"{v.max_rel_diff:.3e}")
    st.subheader("Where each BatchNorm went")
    rows = cb.fates_table()
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
            "layer max rel diff": st.column_config.NumberColumn(format="%.2e")})
    else:
        st.info(f"{r.original_name} has no BatchNormalization.")
    st.subheader(f"{r.original_name} and {r.candidate_name}")
    graph_ui(cb)
    outputs_ui(cb)
    st.download_button("Download this tab as one HTML file", cb.html_report, on_click="ignore",
                       file_name=f"{Path(r.candidate_name).stem}_check.html", mime="text/html", key=f"html:{cb.key}",
                       help=HTML_HELP)


def graph_ui(cb: CheckBench) -> None:
    """Both graphs side by side on one layout, opening on the failing layer, ringed with its counterpart."""
    keys = {name: f"{name}:{cb.key}:check" for name in
            ("center", "found", "inspect", "blocks", "whole", "jump", "graph")}
    before = cb.graphs()[0]

    def on_found(found: str) -> None:  # centre on it, ring it, open its panel and the blocks around it
        reveal(found, cb.blocks(), keys)

    def on_click(node: str) -> None:
        st.session_state[keys["inspect"]] = node

    linked = url.arriving("node")
    if linked is not None and (linked in before or linked in cb.graphs()[1]):
        on_found(linked)

    opened = blocks_ui(cb.blocks(), fold_graph.collapsed_at_first(before), keys)
    with st.spinner("Laying out both graphs..."):
        base = cb.figure(opened)
    blocks = None if opened is None else cb.block_view(opened)
    center = st.session_state.get(keys["center"])
    inspected = st.session_state.get(keys["inspect"])
    scene = result_views.check_view(base, cb.result, cb.graphs(), blocks=blocks, selected=inspected, center=center,
                                    found=st.session_state.get(keys["found"]), revision=f"{cb.key}:{opened}:{center}")
    worst = result_views.failing(cb.result)
    st.caption("The candidate's nodes sit where the original's they line up with are (by tensor name, or the BN "
               "each fused layer absorbed); a node that lines up with nothing sits among its own graph's neighbours. "
               "A layer a BN went into is outlined, the BNs it removed are ghosts, every compared node is coloured "
               "by its check. Hover a node to mark its counterpart, click it for its panel, press / to find one."
               + (f" Ringed: the failing layer, '{worst.layer}' (|diff| at {worst.margin:.3g} of its tolerance), and "
                  f"its counterpart in the original." if worst is not None else ""))
    graph_component(scene, keys["graph"], on_click, on_found)
    url.show(node=inspected)
    if inspected:
        node = result_views.drawn_node(inspected, before, blocks) or inspected
        panel = cb.panel_of(node)
        if panel is not None:
            node_panel_ui(panel, keys, what="What the candidate did")
