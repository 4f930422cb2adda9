"""A matplotlib figure as the bytes of an image file: what the page shows and downloads."""

from __future__ import annotations

import io

from matplotlib.figure import Figure


def picture(figure: Figure, fmt: str = "png") -> bytes:
    """``figure`` rendered as a PNG (or ``fmt``: "svg"), 100 dpi, cropped to what is drawn."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=100, bbox_inches="tight")
    return buffer.getvalue()
