"""The page's quantization view of a fold: which layers the bars show, which layer opens first,
the table of every layer and the figures' data. Logic only; the numbers come from
``fold.tools.quantization`` and the figures from ``viz.quant_plots``."""

from __future__ import annotations

from matplotlib.figure import Figure

from fold.tools.quantization import FIGURES, LayerQuant, QuantReport
from viz.quant_plots import SERIES, plot_ranges, plot_sqnr

#: How the page names the four per-layer figures (as the bars' legend does) and the four end-to-end ones.
LAYER_LABELS = {key: label for key, label, _ in SERIES}
OUTPUT_LABELS = {"original_per_tensor": "output, BN in float", "folded_per_tensor": "output, folded per tensor",
                 "folded_per_channel": "output, folded per channel", "folded_cle_per_tensor": "output, folded + CLE"}
#: At most this many layers get bars (a ResNet has 53 folded layers): the ones folding costs most.
BARS = 16


def loss_db(layer: LayerQuant) -> float:
    """What folding costs a layer's per-tensor int8 kernel (dB; 0 when a figure is missing)."""
    before, after = layer.mean_db("per_tensor_before"), layer.mean_db("per_tensor_after")
    return 0.0 if before is None or after is None else before - after


def worst_first(report: QuantReport) -> list[int]:
    """Indices of the report's layers, the layer folding costs most first (ties: graph order)."""
    return sorted(range(len(report.layers)), key=lambda i: (-loss_db(report.layers[i]), i))


def shown_layers(report: QuantReport, limit: int = BARS) -> list[int]:
    """The layers the bars show, in graph order: all of them, or the ``limit`` folding costs most."""
    return sorted(worst_first(report)[:limit])


def sqnr_figure(report: QuantReport, limit: int = BARS) -> Figure:
    shown = shown_layers(report, limit)
    layers = [report.layers[i] for i in shown]
    values = {key: [layer.mean_db(key) for layer in layers] for key in FIGURES}
    title = None if len(shown) == len(report.layers) else \
        f"the {len(shown)} of {len(report.layers)} folded layers whose per-tensor SQNR folding lowers most"
    return plot_sqnr([layer.layer for layer in layers], values, title=title)


def ranges_figure(layer: LayerQuant, equalized: bool) -> Figure:
    """The layer's per-channel weight ranges, after equalization too when asked and it applies."""
    cle = layer.peaks_cle if equalized else None
    return plot_ranges(layer.peaks_after, cle, title=f"{layer.layer} (folded {layer.bn})")


#: The table's columns: each figure (the JSON report's key, spelled out), and its worst channel.
MEAN_COLUMNS = {key: key.replace("_", " ") for key in FIGURES}
WORST_COLUMNS = {key: f"worst channel, {column}" for key, column in MEAN_COLUMNS.items()}
DECIBEL_COLUMNS = ("lost by folding (dB)", *MEAN_COLUMNS.values(), *WORST_COLUMNS.values())


def table(report: QuantReport) -> list[dict]:
    """One row per folded layer: its range ratio, the four SQNRs and their worst channels (dB)."""
    return [{"layer": layer.layer, "bn": layer.bn, "channels": layer.channels,
             "range ratio after": layer.range_ratio_after, "lost by folding (dB)": loss_db(layer),
             **{column: layer.mean_db(key) for key, column in MEAN_COLUMNS.items()},
             **{column: layer.worst_db(key) for key, column in WORST_COLUMNS.items()}}
            for layer in report.layers]


# -- real int8 (``fold.tools.int8_report``) ---------------------------------------------------------------------

#: The variants the page shows, with their labels.
INT8_LABELS = {"original_per_tensor": "original", "folded_per_tensor": "folded per tensor",
               "folded_per_channel": "folded per channel", "folded_cle_per_tensor": "folded + CLE",
               "folded_cle_bias_per_tensor": "+ high bias + bias corr."}
GRANULARITY_LABELS = {"per_output_channel": "per output channel", "per_tensor": "per tensor (XNNPACK)",
                      "per_input_channel": "per input channel (TensorRT)"}


def note_text(note: str) -> str:
    """A real-int8 note as the page says it: the variant it opens with named in words ("folded +
    CLE: ..."), not by its key ("folded_cle_per_tensor: ...")."""
    key, colon, rest = note.partition(": ")
    return f"{INT8_LABELS[key]}: {rest}" if colon and key in INT8_LABELS else note


def int8_table(report) -> list[dict]:
    """One row per folded layer: where it is judged and its SQNR in every variant (dB)."""
    return [{"layer": q.layer, "bn": q.bn, "judged at": q.tensor, "BN scale spread": q.scale_spread,
             **{label: q.sqnr_db[key] for key, label in INT8_LABELS.items()}} for q in report.layers]


def granularity_table(report) -> list[dict]:
    """One row per folded transposed convolution: its weights' SQNR under each target's granularity."""
    return [{"layer": g.layer, "bn": g.bn, **{label: g.weight_sqnr_db[key] for key, label in GRANULARITY_LABELS.items()}}
            for g in report.granularity]
