"""The page's state in its URL, so that a copied link reopens the same view.

The widgets that pick what is shown carry their own values (Streamlit's ``bind="query-params"``):
the source, the zoo's model, the playground's settings, the open tab. This module carries the view
inside a model, which no widget holds: the pair inspected (``pair``, its layer) and the node whose
panel is open (``node``). A file someone uploaded cannot travel in a URL (``sources.UPLOADED``).
"""

from __future__ import annotations

import streamlit as st

_TAKEN = "url:taken"


def arriving(name: str) -> str | None:
    """What the URL the session opened with says of ``name``, once: the first run that asks takes it
    (later runs follow the user, not the link)."""
    taken = st.session_state.setdefault(_TAKEN, set())
    if name in taken:
        return None
    taken.add(name)
    return st.query_params.get(name)


def show(**values: str | None) -> None:
    """Write the view's state into the URL (None: leave it out)."""
    for name, value in values.items():
        if value is None:
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != value:
            st.query_params[name] = value
