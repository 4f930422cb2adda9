"""A matplotlib figure as the bytes of an image file: what the page shows and downloads."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure
from matplotlib.text import Text

from viz.palette import DARK_BACKGROUND, DARK_EDGE, DARK_TEXT


def picture(figure: Figure, fmt: str = "png") -> bytes:
    """``figure`` rendered as a PNG (or ``fmt``: "svg"), 100 dpi, cropped to what is drawn."""
    buffer = io.BytesIO()
    # no date in an SVG: the same figure gives the same bytes (a report built twice is the same file)
    figure.savefig(buffer, format=fmt, dpi=100, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()


def darkened(figure: Figure) -> Figure:
    """``figure`` recoloured for a dark page: its background and its axes' faces dark, every letter
    light, the frames grey; the data's colours stay. Changes this figure only (matplotlib's global
    settings are the other sessions' too)."""
    figure.set_facecolor(DARK_BACKGROUND)
    for ax in figure.axes:
        ax.set_facecolor(DARK_BACKGROUND)
        ax.tick_params(colors=DARK_EDGE, labelcolor=DARK_TEXT)
        for spine in ax.spines.values():
            spine.set_edgecolor(DARK_EDGE)
        legend = ax.get_legend()
        if legend is not None:
            legend.get_frame().set_facecolor(DARK_BACKGROUND)
    for text in figure.findobj(Text):
        text.set_color(DARK_TEXT)
    return figure


#: No SVG of the page's figures is smaller than this: their lettering alone, drawn as paths, is
#: about 20 KB (measured: 22 KB for the smallest, a one-channel scale and shift), so a PNG up to
#: this size is kept without rendering the SVG.
SVG_AT_LEAST = 20_000
#: A pixel of a compact PNG is at most this far from the PNG's own, per colour channel (of 255).
COMPACT_ERROR = 4


def compact_png(png: bytes) -> bytes:
    """A matplotlib PNG as 256 colours (half the bytes of RGBA for figures of flat colours and
    antialiased lines), unless some pixel would move by more than ``COMPACT_ERROR``: then the PNG."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    fewer = image.quantize(256, method=Image.Quantize.MAXCOVERAGE)
    error = np.abs(np.asarray(fewer.convert("RGB"), dtype=np.int16) - np.asarray(image, dtype=np.int16))
    if error.size and error.max() > COMPACT_ERROR:
        return png
    buffer = io.BytesIO()
    fewer.save(buffer, format="png", optimize=True)
    return min(buffer.getvalue(), png, key=len)


def smallest(figure: Figure) -> tuple[bytes, str]:
    """``figure`` as the smaller of its compact PNG and its SVG (the same look), with that file's
    MIME type: bars over a few channels are smaller as pixels, a long curve often as vectors. A figure
    that draws an image (a heatmap) is its PNG: its SVG holds the same pixels, as a PNG, and more."""
    png = compact_png(picture(figure, "png"))
    if len(png) <= SVG_AT_LEAST or any(ax.images for ax in figure.axes):  # an SVG embeds an image's pixels
        return png, "image/png"
    svg = picture(figure, "svg")
    return (png, "image/png") if len(png) <= len(svg) else (svg, "image/svg+xml")
