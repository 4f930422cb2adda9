"""The Check tab: a fold another tool made, against its original: the verdict, where each BatchNorm
went, both graphs on one layout, both models' outputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from foldscope_app.sections.verdict_panel import HTML_HELP, outputs_ui, verdict_ui
from foldscope_app.workbench.workbench import CheckBench


def check_ui(cb: CheckBench) -> None:
    r, v = cb.result, cb.verification
    verdict_ui(v)
    cols = st.columns(4)
    cols[0].metric("BatchNorms", f"{r.bn_original} → {r.bn_candidate}",
                   help=f"In {r.original_name} and in {r.candidate_name}")
    cols[1].metric("folded by the candidate", len(r.removed))
    cols[2].metric("max abs diff (outputs)", f"{v.max_abs_diff:.3e}")
    cols[3].metric("max rel diff", f"{v.max_rel_diff:.3e}")
    st.subheader("Where each BatchNorm went")
    rows = cb.fates_table()
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
            "layer max rel diff": st.column_config.NumberColumn(format="%.2e")})
    else:
        st.info(f"{r.original_name} has no BatchNormalization.")
    st.subheader(f"{r.original_name} and {r.candidate_name}")
    st.caption("The candidate's nodes sit where the original's they line up with are (by tensor name); a layer a BN "
               "went into is outlined, the BNs it removed are ghosts, every compared node is coloured by its check.")
    st.plotly_chart(cb.figure(), key=f"graph:{cb.key}", config={"scrollZoom": True, "displaylogo": False})
    outputs_ui(cb)
    st.download_button("Download this tab as one HTML file", cb.html_report, on_click="ignore",
                       file_name=f"{Path(r.candidate_name).stem}_check.html", mime="text/html", key=f"html:{cb.key}",
                       help=HTML_HELP)
