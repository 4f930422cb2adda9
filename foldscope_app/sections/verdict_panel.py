"""What a verification shows on every tab that has one: the verdict in words, and both models' outputs."""

from __future__ import annotations

import streamlit as st

from fold.core.verdict import VERDICTS
from fold.core.verification import SAMPLES, Verification
from fold.outputs.report import runtimes_text, synthetic_text
from foldscope_app.examples import model_zoo
from foldscope_app.workbench.workbench import CheckBench, Workbench

#: What the HTML report download says it is.
HTML_HELP = ("The verdict, the tables, the interactive graph (pan, zoom, hover, find a node), the per-channel plots and "
             "the outputs in one file that opens offline in any browser (`python -m fold ... --html` writes the same). "
             "Built when clicked, once: about half a minute for DenseNet121.")


def verdict_ui(v: Verification) -> None:
    """The verdict in words, what decided it, the worst layer and the inputs it was reached on."""
    say = {"pass": st.success, "fail": st.error, "inconclusive": st.warning}[v.verdict]
    say(f"**{VERDICTS[v.verdict]}.** {v.reason}")
    worst = v.worst_layer()
    shapes = "; ".join(f"{name} {'×'.join(map(str, shape))}" for name, shape in v.input_shapes.items())
    source = {"recipe": f"random inputs, seed {v.seed}", "file": "the inputs file", "given": "the model's own input"}
    fewer = (f" Fewer samples than the command line's {SAMPLES}: {model_zoo.LARGE_SAMPLES_REASON}; `python -m fold` "
             f"checks {SAMPLES}." if v.inputs_source == "recipe" and v.samples < SAMPLES else "")
    st.caption(f"Verified on {v.samples} sample(s) ({source[v.inputs_source]}): {shapes}.{fewer}"
               + (f" Ran in {runtimes_text(v.runtimes)}." if v.runtimes else "")
               + (f" Worst layer: '{worst.layer}' ({worst.bn}), max rel diff {worst.max_rel_diff:.2e} on channel "
                  f"{worst.worst_channel}, {worst.margin:.2g}× its float tolerance." if worst else "")
               + (f" Checked at the outputs only: {', '.join(v.output_only)}." if v.output_only else "")
               + (f" {synthetic_text(v)}" if v.folded_layers else ""))


def outputs_ui(bench: Workbench | CheckBench) -> None:
    """Both models' outputs, one at a time: an output, a sample and (for images) a channel."""
    st.subheader("Outputs: original vs folded")
    names = bench.output_names
    c1, c2, c3 = st.columns(3)
    index = c1.selectbox("Output", range(len(names)), format_func=names.__getitem__)
    reference = bench.reference[index]
    axis = bench.outputs[index].channel_axis
    sample = int(c2.number_input("Sample", 0, reference.shape[0] - 1, 0))
    channel = None if reference.ndim <= 2 else int(c3.number_input("Channel", 0, reference.shape[axis] - 1, 0))
    st.image(bench.output_png(index, sample, channel, st.context.theme.type == "dark"), width="stretch")
