"""The Quantization tab: what int8 weights lose after folding, per layer and end to end, and the
remedies (one scale per channel, cross-layer equalization)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from fold.core.errors import FoldError
from fold.tools.int8_report import check_runtime
from fold.tools.quantization import QuantReport
from foldscope_app.sections.graph_panel import graph_component
from foldscope_app.sections.server import failed
from foldscope_app.workbench import quant_view
from foldscope_app.workbench.workbench import PROGRESS, Workbench


def quant_ui(wb: Workbench) -> None:
    real = st.radio("View", ("int8 weights (simulated, float activations)", "real int8 (the runtime's own models)"),
                    horizontal=True, key=f"int8:{wb.key}",
                    help="Simulated: foldscope quantizes each kernel itself. Real: the runtime's own quantizer "
                         "builds int8 models (weights and activations) and the runtime runs them.")
    if real.startswith("real"):
        real_int8_ui(wb)
    else:
        weights_ui(wb)


def real_int8_ui(wb: Workbench) -> None:
    """The runtime's own int8 models of every variant, each folded layer against the BN output it replaced."""
    st.subheader("What real int8 loses after folding")
    try:
        check_runtime(wb.frontend.format, None)
    except FoldError as exc:
        st.info(str(exc))
        return
    bar = st.empty()

    def tell(variant: str, k: int, n: int) -> None:
        bar.progress(k / n, text=f"int8 model {k + 1} of {n}: {quant_view.INT8_LABELS.get(variant, variant)}, "
                                 "quantized and run by the runtime's own tools (a few seconds each)...")

    token = PROGRESS.set(tell)
    try:
        with st.spinner("Calibrating the runtime's own int8 models...", show_time=True):
            report = wb.int8_report()
    except FoldError as exc:
        st.error(str(exc))
        return
    finally:
        PROGRESS.reset(token)
        bar.empty()
    c = report.calibration
    st.caption(f"{report.runtime} {report.version}: int8 weights and activations, calibrated and compared on the "
               f"verification's {c['samples']} sample(s). A layer's SQNR is the mean over its output channels of "
               "its dequantized int8 output against the float original's BN output it replaced.")
    labels = quant_view.INT8_LABELS
    for col, (key, label) in zip(st.columns(len(labels)), labels.items()):
        value = report.output_sqnr_db[key]
        col.metric(f"output: {label}", "n/a" if value is None else f"{value:.1f} dB")
    worst = report.worst()
    if worst is not None:
        st.warning(f"Loses most, folded per tensor: '{worst.layer}' ({worst.bn}), "
                   f"{worst.sqnr_db['folded_per_tensor']:.1f} dB.")
    decibels = st.column_config.NumberColumn(format="%.1f")
    st.dataframe(pd.DataFrame(quant_view.int8_table(report)), hide_index=True,
                 column_config={"BN scale spread": st.column_config.NumberColumn(format="%.3g"),
                                **{label: decibels for label in labels.values()}})
    graph_ui(wb, report)
    if report.granularity:
        st.caption("Each folded transposed convolution's weights under the granularity each target uses "
                   "(simulated, weights only):")
        st.dataframe(pd.DataFrame(quant_view.granularity_table(report)), hide_index=True,
                     column_config={label: decibels for label in quant_view.GRANULARITY_LABELS.values()})
        for g in report.granularity:
            lost = [n for n, ok in g.rescued_by_per_channel().items() if not ok]
            if lost:
                st.warning(f"'{g.layer}': per-channel quantization does not rescue this fold on a target that "
                           f"quantizes {' or '.join(quant_view.GRANULARITY_LABELS[n] for n in lost)} "
                           "(more than 6 dB lost).")
    for note in report.notes:
        st.caption(quant_view.note_text(note))


def graph_ui(wb: Workbench, report) -> None:
    """The graph coloured by one variant's int8 SQNR, opening on the layer that loses most in it."""
    labels = {k: v for k, v in quant_view.INT8_LABELS.items() if any(q.sqnr_db[k] is not None for q in report.layers)}
    if not labels:
        return
    variant = st.selectbox("Colour the graph by the int8 SQNR of", list(labels), format_func=labels.get,
                           index=list(labels).index("folded_per_tensor") if "folded_per_tensor" in labels else 0,
                           key=f"int8-graph:{wb.key}")
    st.caption("Every folded layer coloured by its SQNR in that int8 model (red: int8 loses the signal, green: it "
               "keeps it; grey: no figure); the view opens on the layer that loses most, ringed. Hover a node "
               "for its figure.")
    graph_component(wb.int8_graph(variant), f"int8-graph-figure:{wb.key}")


def weights_ui(wb: Workbench) -> None:
    st.subheader("What int8 weights lose after folding")
    st.caption("Folding multiplies output channel c's weights by s = γ / √(var + ε). Quantized with one int8 scale "
               "for the whole tensor (max |w| / 127), the channel with the largest weights sets the scale and the "
               "others keep a few levels; one scale per output channel, or cross-layer equalization (CLE), restores "
               "them. Symmetric int8 weights, round to nearest; a layer's SQNR is the mean over its output channels.")
    try:
        with st.spinner("Quantizing every kernel and running the model with int8 weights..."):
            report = wb.quant_report()
    except Exception as exc:  # a model foldscope folds but cannot copy or run with new weights: say so
        st.error(failed(exc, "quantize this model's weights"))
        return
    if not report.layers:
        st.info("No layer was folded here: folding changes nothing for int8.")
        return
    st.caption("The model's output SQNR against the float original (int8 weights, float activations), "
               "and what folding changes:")
    output_sqnr_ui(report)
    st.image(wb.sqnr_png())
    decibels = st.column_config.NumberColumn(format="%.1f")
    st.dataframe(pd.DataFrame(quant_view.table(report)), hide_index=True,
                 height=min(400, 38 + 35 * len(report.layers)),
                 column_config={"range ratio after": st.column_config.NumberColumn(format="%.3g"),
                                **{c: decibels for c in quant_view.DECIBEL_COLUMNS}})
    layer_quant_ui(wb, report)
    if report.pairs:
        check = report.equalized_check
        st.caption(f"Equalized {len(report.pairs)} pair(s): " + ", ".join(f"{a} → {b}" for a, b in report.pairs)
                   + f". The equalized model's outputs differ from the folded model's by at most "
                     f"{check.max_abs_diff:.2e} ({check.max_rel_diff:.2e} relative).")
        st.download_button(f"Download the folded + equalized model ({wb.suffix})", wb.equalized_file,
                           on_click="ignore", file_name=f"{wb.name}_folded_cle{wb.suffix}",
                           mime="application/octet-stream")


def output_sqnr_ui(report: QuantReport) -> None:
    """The end-to-end figures: each variant's output SQNR against the float original."""
    out = report.output_sqnr_db
    labels = quant_view.OUTPUT_LABELS
    base = out["original_per_tensor"]
    for col, (key, label) in zip(st.columns(len(labels)), labels.items()):
        value = out[key]
        delta = None if value is None or key == "original_per_tensor" else f"{value - base:+.1f} dB"
        col.metric(label, "n/a" if value is None else f"{value:.1f} dB", delta,
                   help="SQNR of the whole output against the float original; int8 weights, float activations."
                        + (" No folded layer is followed, through ReLU or nothing, by a layer it alone feeds."
                           if key == "folded_cle_per_tensor" and value is None else ""))


def layer_quant_ui(wb: Workbench, report: QuantReport) -> None:
    """One layer's channel ranges, with the channels that set the per-tensor scale, before and after CLE."""
    order = quant_view.worst_first(report)
    index = st.selectbox("Layer", order, key=f"quant:{wb.key}", format_func=lambda i: (
        f"{report.layers[i].layer} (folding costs {quant_view.loss_db(report.layers[i]):.1f} dB per tensor)"))
    layer = report.layers[index]
    equalized = st.toggle("Apply cross-layer equalization", key=f"cle:{wb.key}", disabled=layer.peaks_cle is None,
                          help="Nagel et al. 2019: divide this layer's output channel i by s_i and multiply the next "
                               "layer's input channel i by s_i, s_i = √(r1_i r2_i) / r2_i; the float outputs do not "
                               "change." + (" This layer is in no equalized pair." if layer.peaks_cle is None else ""))
    cols = st.columns(5)
    cols[0].metric("range ratio after folding", f"{layer.range_ratio_after:.3g}" if layer.range_ratio_after else "n/a",
                   help="largest over smallest per-channel max |W·s|")
    for col, (key, label) in zip(cols[1:], quant_view.LAYER_LABELS.items()):
        figure = layer.sqnr[key]
        col.metric(label, "n/a" if figure is None else f"{figure.mean:.1f} dB",
                   help=None if figure is None else f"mean over channels; the worst, channel {figure.worst_channel}, "
                                                    f"has {figure.worst:.1f} dB")
    st.image(wb.ranges_png(index, equalized and layer.peaks_cle is not None))
