"""The interactive graph before and after folding: pan, zoom, hover, click a pair, find a layer,
open nested models, colour by where the error enters; the static picture and the Model Explorer
files as downloads."""

from __future__ import annotations

import streamlit as st

from demo import graph_view
from demo.workbench import Workbench


def graph_ui(wb: Workbench, pair_layer: str | None, view: str = "fold") -> None:
    """The graphs of ``view``: "fold" (the workbench's fold), "ops" (its op view's); the view opens
    on ``pair_layer``."""
    c1, c2, c3 = st.columns([2, 2, 1.4])
    center_key, find_key = f"center:{wb.key}:{view}", f"find:{wb.key}:{view}"

    def centre_on_found() -> None:
        st.session_state[center_key] = st.session_state[find_key]

    c1.selectbox("Find a layer", wb.layer_names(view), index=None, placeholder="type a layer name", key=find_key,
                 on_change=centre_on_found)
    nested = wb.nested_models(view)
    expanded = tuple(c2.multiselect("Open nested models", nested, key=f"open:{wb.key}:{view}") if nested else ())
    colour = c3.toggle("Colour by each layer's check", key=f"colour:{wb.key}:{view}",
                       help="Colours every compared layer by its |diff| against its tolerance (log scale; above 1 it "
                            "fails): a folded layer against the BN it absorbed, every other layer against itself.")
    with st.spinner("Laying out the graph..."):
        base = wb.graph_figure(view, expanded, colour)
    # The view opens on the first pair and moves only when asked (a layer found, a pair picked in the
    # box). A click in the graph picks a pair without changing the figure: Plotly already shows the
    # clicked node selected, and an unchanged figure is not drawn again (1600 points take a second).
    anchor = st.session_state.get(f"anchor:{wb.key}:{view}") or pair_layer
    center = st.session_state.get(center_key) or anchor
    fig = graph_view.view(base, wb.graphs(view, expanded)[0], selected=anchor if view == "fold" else None,
                          center=center, revision=f"{wb.key}:{view}:{expanded}:{center}")
    st.caption("Drag to pan, scroll to zoom (both panes move together), hover a node for its details"
               + (", click a layer or a BatchNorm to inspect its pair." if view == "fold" else ".")
               + " Blue outline: a BN was folded into it; red: a BN folding removes (a ghost on the right).")
    st.plotly_chart(fig, key=f"graph:{wb.key}:{view}", on_select="rerun" if view == "fold" else "ignore",
                    selection_mode="points", config={"scrollZoom": True, "displaylogo": False})
    if colour:
        worst = wb.checks_of(view).worst()
        if worst is not None:
            st.caption(f"Closest to its tolerance: '{worst.layer}' (against '{worst.tensor}'), |diff| at "
                       f"{worst.margin:.2g} of it, max rel diff {worst.max_rel_diff:.2e}.")
    downloads_ui(wb, view)


def downloads_ui(wb: Workbench, view: str) -> None:
    """The whole graph as a PNG or an SVG, and the Model Explorer files, each made when clicked."""
    d1, d2, d3, _ = st.columns([1, 1, 1.6, 1.4])
    for col, fmt in ((d1, "png"), (d2, "svg")):
        col.download_button(f"Static picture (.{fmt})", lambda fmt=fmt: wb.static_picture(view, fmt),
                            file_name=f"{wb.name}_{view}_graph.{fmt}", mime=f"image/{'svg+xml' if fmt == 'svg' else fmt}",
                            key=f"picture:{wb.key}:{view}:{fmt}", on_click="ignore")
    d3.download_button("Open in Model Explorer (.zip)", key=f"explorer:{wb.key}:{view}", on_click="ignore",
                       data=lambda: wb.model_explorer_zip(view),
                       file_name=f"{wb.name}_{view}_model_explorer.zip", mime="application/zip",
                       help="The graphs before and after, each node's fold status (and its layer diff when coloured) "
                            "and a mapping for the split view, as Google's Model Explorer reads them: "
                            "`model-explorer before.json after.json`.")
