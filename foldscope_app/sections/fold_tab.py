"""The Fold tab: the verdict and the numbers, every candidate pair (one to inspect per channel), the
graph before and after, both models' outputs, the folded model, what the model's format adds and
the rules foldscope checked."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from fold.core.errors import listed
from fold.outputs import result_views
from fold.outputs.report import counts_text
from foldscope_app.sections import url
from foldscope_app.sections.format_extras import FORMAT_VIEWS
from foldscope_app.sections.graph_panel import graph_ui, pair_key
from foldscope_app.sections.verdict_panel import HTML_HELP, outputs_ui, verdict_ui
from foldscope_app.workbench import fold_view
from foldscope_app.workbench.workbench import Workbench


#: Said under the verdict while the ONNX tools still run at the bottom of the tab.
STILL_RUNNING = ("Still running further down the page: onnxsim, onnxslim, onnxoptimizer and onnxruntime's "
                 "optimizer on this model, each checked like a fold (seconds on a small model, up to half a "
                 "minute on a large one).")


def fold_ui(wb: Workbench) -> None:
    if wb.notice:
        st.warning(wb.notice)
    metrics_ui(wb)
    busy = st.empty()  # under the verdict, where the eye is: what still runs further down
    if wb.key == "seed":
        seed_table_ui(wb)
    pair_layer = pairs_ui(wb)
    st.subheader("Graph before and after folding")
    graph_ui(wb, pair_layer)
    outputs_ui(wb)
    d1, d2, _ = st.columns([1.3, 1.3, 2])
    d1.download_button(f"Download the folded model ({wb.suffix})", wb.folded_file, on_click="ignore",
                       file_name=f"{wb.name}_folded{wb.suffix}", mime="application/octet-stream")
    d2.download_button("Download this tab as one HTML file", wb.html_report, on_click="ignore",
                       file_name=f"{wb.name}_report.html", mime="text/html", key=f"html:{wb.key}",
                       help=HTML_HELP)
    if wb.frontend.format.name in FORMAT_VIEWS:
        if wb.frontend.format.name == "onnx" and wb.peers_pending():
            busy.info(STILL_RUNNING, icon="⏳")
        FORMAT_VIEWS[wb.frontend.format.name](wb)
        busy.empty()
    with st.expander("What foldscope checks before folding"):
        st.caption(f"The rules of the {wb.frontend.format.label} frontend, in order; the first objection decides.")
        st.table(pd.DataFrame([{"rule": r.name, "condition": r.summary} for r in wb.frontend.rules]))


def metrics_ui(wb: Workbench) -> None:
    v, r = wb.verification, wb.result
    verdict_ui(v)
    cols = st.columns([1.5, 1, 1, 1, 1])  # room for the full first label
    cols[0].metric("max abs diff (outputs)", f"{v.max_abs_diff:.3e}",
                   help=f"The outputs' budget (what float error in the layers before them explains): {v.atol:.1e}")
    cols[1].metric("mean abs diff", f"{v.mean_abs_diff:.3e}")
    cols[2].metric("max rel diff", f"{v.max_rel_diff:.3e}",
                   help="An output channel's max |diff| over that channel's own max |output|, the largest of them")
    cols[3].metric("BatchNorms", f"{r.bn_before} → {r.bn_after}",
                   help="BN layers and nodes, and Mul -> Add blocks the file names or shapes as a BN")
    cols[4].metric("pairs folded", f"{len(r.folded_pairs)} / {len(r.decisions)}")
    n = r.counts()
    if n["affine_before"] or n["affine_folded"] or n["bias_merges"]:  # counted apart from the BNs
        st.caption(counts_text(r) + ".")


def seed_table_ui(wb: Workbench) -> None:
    """The three results the seed note printed, side by side, with their differences."""
    seed = fold_view.seed_results(wb.reference, wb.folded_outputs)
    st.subheader("The seed's three results")
    st.caption("The seed note computed one TConv -> BN three ways: the BN in NumPy, the BN in TensorFlow, and the "
               "TConv with the BN folded into its kernel and bias. Each row is one output value; the three agree "
               "to float32 rounding.")
    digits = {name: st.column_config.NumberColumn(format="%.8f")
              for name in ("numpy batch_norm", "tensorflow batch_norm", "folded tconv")}
    st.dataframe(pd.DataFrame(seed.columns), hide_index=True, height=250, column_config={
        **digits, "|tensorflow - folded|": st.column_config.NumberColumn(format="%.2e")})
    st.caption(f"max |numpy - folded| = {seed.numpy_vs_folded:.2e}; "
               f"max |tensorflow - folded| = {seed.tensorflow_vs_folded:.2e}")


def pairs_ui(wb: Workbench) -> str | None:
    """The table of every candidate pair; returns the layer of the pair picked for details."""
    decisions = wb.result.decisions
    st.subheader("Candidate pairs")
    if not decisions:
        st.info("This model has no BatchNormalization layer: nothing to fold.")
        url.show(pair=None)
        return None
    st.dataframe(pd.DataFrame(wb.pairs_table()), hide_index=True, height=min(400, 38 + 35 * len(decisions)),
                 column_config={**{column: st.column_config.TextColumn(width=width)
                                   for column, width in fold_view.pairs_widths(decisions).items()},
                                "layer max rel diff": st.column_config.NumberColumn(
                     format="%.2e", help="The folded layer fed what the original layer received, against the BN's "
                                         "output: a channel's max |diff| over its own max |output|")})
    skipped = result_views.skip_reasons(decisions)
    if skipped:  # the table cuts long reasons: each one in full, once
        with st.expander(f"Why {sum(len(p) for p in skipped.values())} pair(s) were left alone", expanded=False):
            st.markdown("\n".join(f"- **{listed(pairs, 3)}** ({len(pairs)}): {reason}"
                                   for reason, pairs in skipped.items()))
    key = pair_key(wb)

    def centre_on_pair() -> None:  # picking a pair here (not by a click in the graph) moves the graph to it
        st.session_state[f"anchor:{wb.key}"] = decisions[st.session_state[key]].layer
        st.session_state[f"center:{wb.key}"] = decisions[st.session_state[key]].layer

    linked = url.arriving("pair")  # a link names its pair by its layer
    index = next((i for i, d in enumerate(decisions) if d.layer == linked), None)
    if index is not None:
        st.session_state[key] = index
        centre_on_pair()

    picked = st.selectbox("Pair to inspect", range(len(decisions)), index=wb.first_pair,
                          format_func=lambda i: result_views.pair_label(decisions[i]), key=key,
                          on_change=centre_on_pair, help="Or click a layer or a BatchNorm of a pair in the graph below.")
    decision = decisions[picked]
    url.show(pair=decision.layer)
    if wb.detail(decision) is None:
        st.warning(f"Skipped: {decision.reason}")
    else:
        st.image(wb.channel_png(picked))
    return decision.layer
