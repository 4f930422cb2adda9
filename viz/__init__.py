"""foldscope's figures: data in, a ``matplotlib.figure.Figure`` out (a Plotly figure where the view
must be interactive: ``viz.interactive``); no Streamlit, no Keras, no pyplot state."""

from viz.channels import plot_channels
from viz.heatmaps import plot_heatmaps, plot_vectors, select_slice
from viz.layout import before_after_positions, layered_layout, neighbourhood
from viz.static_graph import draw_before_after, draw_graph

__all__ = ["before_after_positions", "draw_before_after", "draw_graph", "layered_layout", "neighbourhood",
           "plot_channels", "plot_heatmaps", "plot_vectors", "select_slice"]
