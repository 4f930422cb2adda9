"""What a model's format adds to the Fold tab: for a Keras model, the same model folded at op level
and what TensorFlow's TFLite converter makes of it; for an ONNX model, what the field's ONNX tools do."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from fold.core.graph import flatten
from fold.outputs import result_views
from foldscope_app.sections.graph_panel import graph_ui
from foldscope_app.workbench.workbench import Workbench

#: What TensorFlow's converter comparison costs (two conversions, each checked against Keras), per
#: layer, as measured on the zoo's DenseNet121 (116 s for 429 layers) on a 2-core machine.
CONVERTER_S_PER_LAYER = 0.27
#: The largest converter graph drawn on the page (beyond it the picture is a download).
TALLEST_PICTURE_OPS = 120


def keras_ui(wb: Workbench) -> None:
    """The op-level view of a Keras model and what TensorFlow's TFLite converter makes of it."""
    if st.toggle("Op view: the same model as TensorFlow ops, folded at op level"):
        with st.spinner("Tracing and folding the op graph..."):
            ops = wb.ops()
        r = ops.result
        st.caption(f"{len(r.folded_pairs)} of {len(r.decisions)} BatchNorms folded at op level "
                   f"({r.bn_before} → {r.bn_after}).")
        st.dataframe(pd.DataFrame(result_views.decision_rows(r.decisions)), hide_index=True)
        graph_ui(ops, r.folded_pairs[0].layer if r.folded_pairs else None, view="ops")
        if st.checkbox("Show the Const ops too (weights are otherwise attached to the ops that read them)"):
            st.image(wb.consts_png())
    layers = len(flatten(wb.result.graph_before))
    cost = (f" This model has {layers} layers: expect about {CONVERTER_S_PER_LAYER * layers:.0f} s."
            if layers > 100 else "")
    if st.toggle("What TensorFlow's TFLite converter did", help="Converts the original and the folded model with "
                 f"TensorFlow's converter and checks both against Keras.{cost}"):
        with st.spinner(f"Converting with TensorFlow's converter...{cost}"):
            original, folded = wb.converter_views()
        c1, c2 = st.columns(2)
        for col, title, view in ((c1, "converter on the original", original), (c2, "converter on foldscope's fold", folded)):
            col.metric(f"max abs diff vs Keras: {title}", f"{view.max_abs_diff:.3e}")
            col.caption(f"{len(view.ops)} ops: " + ", ".join(sorted(set(view.ops))))
            if view.remaining:
                col.warning(f"{len(view.remaining)} conv → MUL/ADD chain(s) left unfolded by the converter.")
        ops = len(original.ops)
        if ops <= TALLEST_PICTURE_OPS:
            st.caption("The converter's op graph (original model):")
            st.image(wb.converter_png())
        else:  # a picture of hundreds of ops is thousands of pixels tall: a download, not a page
            st.download_button(f"Download the converter's op graph ({ops} ops, PNG)", wb.converter_png,
                               on_click="ignore", file_name=f"{wb.name}_converter_graph.png", mime="image/png")
        st.download_button("Download the folded model as .tflite", wb.folded_tflite, on_click="ignore",
                           file_name=f"{wb.name}_folded.tflite", mime="application/octet-stream")


def onnx_ui(wb: Workbench) -> None:
    """onnxsim, onnxslim, onnxoptimizer and onnxruntime's offline optimizer on the same model, beside foldscope."""
    st.subheader("What the ONNX tools did")
    st.caption("Each tool runs on the same model; every result runs in onnxruntime with its own graph "
               "optimizations off, on the same inputs as foldscope's verification.")
    with st.spinner("Running onnxsim, onnxslim, onnxoptimizer and onnxruntime's optimizer..."):
        rows = wb.peers_table()
    for col, row in zip(st.columns(len(rows)), rows):
        col.metric(f"BN left: {row['tool']}", row["BatchNormalization left"] or "failed",
                   help=f"{row['action']}; max abs diff {row['max abs diff'] or 'n/a'}")
    st.dataframe(pd.DataFrame(rows), hide_index=True)


#: Format name -> what that format adds below the fold.
FORMAT_VIEWS: dict[str, Callable[[Workbench], None]] = {"keras": keras_ui, "onnx": onnx_ui}
