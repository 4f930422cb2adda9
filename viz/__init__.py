"""foldscope's figures: data in, ``matplotlib.figure.Figure`` out; no Streamlit, no Keras, no pyplot state."""

from viz.channels import plot_channels
from viz.graph import draw_before_after, draw_graph, layered_layout, neighbourhood
from viz.heatmaps import plot_heatmaps, plot_vectors, select_slice

__all__ = ["draw_before_after", "draw_graph", "layered_layout", "neighbourhood", "plot_channels",
           "plot_heatmaps", "plot_vectors", "select_slice"]
