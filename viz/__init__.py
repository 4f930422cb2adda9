"""foldscope's figures: data in, a ``matplotlib.figure.Figure`` out (a Plotly figure where the view
must be interactive: ``viz.interactive``, ``channels_chart``); no Streamlit, no Keras, no pyplot state."""

from viz.channels import channels_chart, plot_channels
from viz.graph import draw_before_after, draw_graph
from viz.heatmaps import plot_heatmaps, plot_vectors, select_slice
from viz.layout import before_after_positions, layered_layout, neighbourhood

__all__ = ["before_after_positions", "channels_chart", "draw_before_after", "draw_graph", "layered_layout", "neighbourhood",
           "plot_channels", "plot_heatmaps", "plot_vectors", "select_slice"]
