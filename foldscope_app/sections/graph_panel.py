"""The interactive graph before and after folding: pan, zoom, hover, click a node for its panel
(and its pair), find a layer ("/"), open blocks and nested models, jump to a block, colour by where
the error enters; the static picture and the Model Explorer files as downloads.

The graph is one Streamlit component (``graph_component``): the script and stylesheet that draw a
scene in the HTML report too (``viz.interactive.script``), mounted in the page, telling it which
node was clicked or found."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from foldscope_app.sections import url
from foldscope_app.workbench.node_panel import NodePanel
from foldscope_app.workbench.workbench import Workbench
from viz import fold_graph
from viz.fold_graph import BlockView
from viz.blocks import ancestors, block_path
from viz.interactive import script, stylesheet

# The component's module: the drawing script, then the entry point Streamlit calls with each new
# scene (the same element each time: the script keeps its view, and the user's pan and zoom).
_MOUNT = """
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  foldscopeGraph(parentElement, data, {
    onSelect: (id) => setTriggerValue('clicked', id),
    onFind: (name) => setTriggerValue('found', name),
  });
}
"""
_GRAPH = st.components.v2.component("foldscope_graph", js=script() + _MOUNT, css=stylesheet())


def graph_component(scene: dict, key: str, on_click: Callable[[str], None] | None = None,
                    on_find: Callable[[str], None] | None = None) -> None:
    """Draw ``scene``; a click on a node calls ``on_click(node)``, a name found calls ``on_find(name)``
    (each before the rerun it starts)."""
    def trigger(name: str, handler: Callable[[str], None] | None) -> Callable[[], None]:
        def call() -> None:
            value = getattr(st.session_state[key], name, None)
            if handler is not None and isinstance(value, str):
                handler(value)
        return call

    _GRAPH(data=scene, key=key, on_clicked_change=trigger("clicked", on_click),
           on_found_change=trigger("found", on_find))


def pair_key(wb: Workbench) -> str:
    """The session key of the Fold tab's "Pair to inspect" box."""
    return f"pair:{wb.key}"


def graph_ui(wb: Workbench, pair_layer: str | None, view: str = "fold") -> None:
    """The graphs of a workbench's fold, opening on ``pair_layer``; ``view`` names them on the page ("fold":
    the Fold tab's own, whose clicks pick the pair inspected; "ops": a Keras model's op view)."""
    keys = {name: f"{name}:{wb.key}" for name in
            ("center", "found", "inspect", "anchor", "open", "blocks", "whole", "jump", "graph")}
    c2, c3 = st.columns([4, 1.4])
    nested = wb.nested_models()
    expanded = tuple(c2.multiselect("Open nested models", nested, key=keys["open"]) if nested else ())
    colour = c3.toggle("Colour by each layer's check", key=f"colour:{wb.key}",
                       help="Colours every compared layer by its |diff| against its tolerance (log scale; above 1 it "
                            "fails): a folded layer against the BN it absorbed, every other layer against itself.")

    def on_found(found: str) -> None:  # centre on it, ring it, open its panel; a layer or BN of a pair: the pair
        reveal(found, wb.blocks(expanded), keys)
        if view == "fold":
            pick_pair(wb, found, keys, anchor=True)

    def on_click(node: str) -> None:  # its panel; a layer or BN of a pair becomes the pair inspected
        st.session_state[keys["inspect"]] = node
        if view == "fold":
            pick_pair(wb, node, keys, anchor=False)

    linked = url.arriving("node") if view == "fold" else None
    if linked is not None and linked in wb.graphs(expanded)[0]:  # a link names the node whose panel it opens
        reveal(linked, wb.blocks(expanded), keys)  # (and its pair: the pair box read the link already)
    opened = blocks_ui(wb.blocks(expanded), fold_graph.collapsed_at_first(wb.graphs(expanded)[0]), keys, expanded)
    with st.spinner("Laying out the graph..."):
        base = wb.graph_figure(expanded, colour, opened)
    if opened is not None:  # the whole graph is one toggle away: have it ready
        wb.prepare_whole_graph(expanded, colour)
    # The view opens on the first pair and moves only when asked (a layer found, a pair picked in the
    # box, a block jumped to). A click in the graph marks the node and opens its panel, the view stays.
    anchor = st.session_state.get(keys["anchor"]) or pair_layer
    center = st.session_state.get(keys["center"]) or anchor
    inspected = st.session_state.get(keys["inspect"])
    blocks = None if opened is None else wb.block_view(expanded, opened)
    scene = fold_graph.view(base, wb.graphs(expanded)[0], selected=inspected or anchor, center=center,
                            found=st.session_state.get(keys["found"]), blocks=blocks,
                            revision=f"{wb.key}:{expanded}:{opened}:{center}")
    st.caption("Drag to pan, scroll to zoom (both panes move together), hover a node for its details and its "
               "counterpart in the other pane, click one for its panel below"
               + (" (a layer or a BatchNorm: its pair is inspected)" if view == "fold" else "")
               + "; press / to find a layer. Blue outline: a BN was folded into it (a block: inside it); red: a BN "
                 "folding removes (a ghost on the right); a thick node is a closed block, a frame an open one; a "
                 "pink ring marks the layer found.")
    graph_component(scene, keys["graph"], on_click, on_found)
    if colour:
        worst = wb.verification.worst()
        if worst is not None:
            st.caption(f"Closest to its tolerance: '{worst.layer}' (against '{worst.tensor}'), |diff| at "
                       f"{worst.margin:.2g} of it, max rel diff {worst.max_rel_diff:.2e}.")
    if view == "fold":
        url.show(node=inspected)
    if inspected:
        node = fold_graph.drawn(inspected, wb.graphs(expanded)[0], blocks) or inspected
        panel = wb.panel_of(expanded, node)
        if panel is not None:
            node_panel_ui(panel, keys)
    downloads_ui(wb, view)


def reveal(node: str, every: BlockView, keys: dict[str, str]) -> None:
    """Centre the graph on ``node``, ring it, open its panel, and open the block around it (unless
    every block is open already)."""
    st.session_state[keys["center"]] = st.session_state[keys["found"]] = st.session_state[keys["inspect"]] = node
    around = [b for b in block_path(node) if b in every.blocks]
    if around and not st.session_state.get(keys["whole"]):
        st.session_state[keys["blocks"]] = sorted({*st.session_state.get(keys["blocks"], []), around[-1]})


def pick_pair(wb: Workbench, node: str, keys: dict[str, str], anchor: bool) -> None:
    """A layer or BN of a candidate pair makes that pair the one the Fold tab inspects (and, with
    ``anchor``, the one the graph opens on next)."""
    index = fold_graph.pair_index(wb.result.decisions, node)
    if index is not None:
        st.session_state[pair_key(wb)] = index
        if anchor:
            st.session_state[keys["anchor"]] = wb.result.decisions[index].layer


def blocks_ui(every: BlockView, large: bool, keys: dict[str, str],
              expanded: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """Which blocks of ``every`` (a view's blocks, all closed) are open (None: all of them, the whole
    graph; a ``large`` graph opens with every block closed), and the block list to jump by."""
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
    whole = b1.toggle("Every block open", value=not large,
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


def node_panel_ui(panel: NodePanel, keys: dict[str, str], what: str = "Fold") -> None:
    """A clicked or found node's details: attributes, weights, fold status (``what`` names it) and its
    own check."""
    with st.container(border=True, key=f"node-panel-{keys['graph'].replace(':', '-')}"):
        st.markdown(f"**Node panel: {panel.title}**")
        left, right = st.columns([1, 1.4])
        # tables, not data frames: a panel is a few rows, read whole (and as text)
        left.table(pd.DataFrame(panel.attributes, columns=["attribute", "value"]).set_index("attribute"))
        if panel.fold:
            right.markdown(f"**{what}:** {panel.fold}")
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

            right.button("Open this block", key=f"open-block:{keys['graph']}", on_click=open_it)


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
