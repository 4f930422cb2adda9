"""The colours both graph figures give a node: one per role (``fold.core.graph.ROLES``), and the
outlines of a layer a BN was folded into and of a BN that folding removes; and a figure's colours
on a dark page."""

ROLE_COLORS: dict[str, str] = {
    "input": "#a6cee3",
    "linear": "#fdbf6f",
    "bn": "#b2df8a",
    "activation": "#cab2d6",
    "model": "#80cdc1",
    "other": "#e0e0e0",
    "block": "#fff2cc",  # a collapsed block (``viz.blocks``), not a role of the model's graph
}
ROLE_LABELS = {"input": "input", "linear": "conv / dense", "bn": "BatchNorm",
               "activation": "activation", "model": "nested model", "other": "other",
               "block": "block (collapsed)"}
#: Outline of a layer a BN was folded into.
FOLDED_COLOR = "#1f4fbf"
#: Dashed outline of a BN that folding removes (its face is faded).
REMOVED_COLOR = "#d62728"
#: Ring around the node "Find a layer" found.
FOUND_COLOR = "#ff00a8"


#: A figure shown on a dark page (Streamlit's dark theme): its background, its letters, its frames.
DARK_BACKGROUND, DARK_TEXT, DARK_EDGE = "#0e1117", "#fafafa", "#a0a4ab"
