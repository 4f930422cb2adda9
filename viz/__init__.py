"""foldscope's figures: data in, a ``matplotlib.figure.Figure`` out (the interactive graph is a scene
its own script draws: ``viz.interactive``); no Streamlit, no Keras, no pyplot state."""

from viz.channels import plot_channels
from viz.heatmaps import plot_heatmaps, plot_vectors, select_slice
from viz.layout import layered_layout, neighbourhood, pane_layouts
from viz.static_graph import draw_before_after, draw_graph

__all__ = ["draw_before_after", "draw_graph", "layered_layout", "neighbourhood", "pane_layouts", "plot_channels",
           "plot_heatmaps", "plot_vectors", "select_slice"]
