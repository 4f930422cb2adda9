"""Text widths in the graph's font, so that a node's box is as wide as its label.

Every drawing of the graph writes its labels in DejaVu Sans (``FONT_FAMILY``: the browser's stack,
Verdana's metrics where DejaVu is missing; matplotlib's own default font): a width here is the sum
of the glyphs' advances in matplotlib's copy of the font, read once per character. Kerning is left
out (it only narrows DejaVu's text), and the browser drawing shrinks a label that would still
overrun its box, so a label never leaves it.
"""

from __future__ import annotations

import math
from functools import cache

#: The CSS font stack of the graph's labels (``viz/assets/graph.css`` names the same).
FONT_FAMILY = '"DejaVu Sans", Verdana, sans-serif'
_EM = 1000.0  # the size the advances are read at (px); widths scale linearly


@cache
def _font(bold: bool):
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans",
                                                             weight="bold" if bold else "normal"))
    font = FT2Font(path)
    font.set_size(_EM, 72)  # 72 dpi: one point is one pixel
    return font


@cache
def _advance(char: str, bold: bool) -> float:
    """One character's advance at ``_EM`` px (a character the font lacks: DejaVu's box glyph)."""
    from matplotlib.ft2font import LoadFlags

    font = _font(bold)
    glyph = font.load_char(ord(char), flags=LoadFlags.NO_HINTING)
    return glyph.linearHoriAdvance / 65536


def text_width(text: str, size: float, bold: bool = False) -> float:
    """The width in px of ``text`` set in the graph's font at ``size`` px."""
    return sum(_advance(c, bold) for c in text) * size / _EM


#: A node's label: its name in ``NAME_SIZE`` px, what it is (op, or a block's size) in ``SUB_SIZE`` px.
NAME_SIZE, SUB_SIZE = 12.0, 10.0
LINE_HEIGHT = 1.3  # of a line's font size
PAD_X, PAD_Y = 8.0, 5.0
#: Names longer than this are cut with an ellipsis (the full name is in the hover and the panel).
MAX_CHARS = 34


def short_name(name: str, limit: int = MAX_CHARS) -> str:
    """A node's name as its label shows it: within ``limit`` characters, whole; a longer scoped name
    ("/backbone/stage1/conv1/Conv") by its last two parts ("conv1/Conv"; its scopes are the frames
    around it), its head cut with an ellipsis if still too long; any other long name cut at the end."""
    name = str(name)
    if len(name) <= limit:
        return name
    parts = [p for p in name.split("/") if p]
    if len(parts) > 1:
        tail = "/".join(parts[-2:])
        return tail if len(tail) <= limit else "…" + tail[-(limit - 1):]
    return name[: limit - 1] + "…"


def label_size(lines: list[tuple[str, float]]) -> tuple[float, float]:
    """The box around ``lines`` ((text, font size px) each, top to bottom): the widest line and the
    lines' heights, with the padding around them, in whole pixels (rounded up)."""
    width = max((text_width(text, size) for text, size in lines), default=0.0)
    return (float(math.ceil(width + 2 * PAD_X)),
            float(math.ceil(sum(size * LINE_HEIGHT for _, size in lines) + 2 * PAD_Y)))


def shape_text(shape) -> str:
    """A tensor shape as the labels write it: 1×224×224×3, an unknown size as "?"."""
    return "?" if shape is None else "×".join("?" if d is None else str(d) for d in shape)


def label_lines(graph, node, shape: bool = False) -> list[tuple[str, float]]:
    """A node's label, (text, font size px) per line: its name, then what it is (its op; a nested
    model's layer count; a closed block's size), and with ``shape`` its output shape."""
    data = graph.nodes[node]
    if data.get("role") == "block":
        return [(short_name(str(data["block"]).rstrip("/").rsplit("/", 1)[-1]), NAME_SIZE),
                (f"block of {data['layers']} layers ▸", SUB_SIZE)]
    op = str(data.get("op", "?"))
    if "subgraph" in data:
        op = f"{op}, {len(data['subgraph'])} layers"
    lines = [(short_name(node), NAME_SIZE), (short_name(op), SUB_SIZE)]
    if shape:
        shapes = [s for *_, s in graph.out_edges(node, data="shape") if s is not None]
        lines += [(shape_text(s), SUB_SIZE) for s in shapes[:1]]
    return lines
