"""The "Why it works" tab: from the seed's example to the folded TConv in four computed steps, then
where folding stops working. Every figure and number comes from ``foldscope_app.workbench.why_view``."""

from __future__ import annotations

import streamlit as st

from foldscope_app.workbench import why_view


def why_ui() -> None:
    st.header("Why a BatchNorm folds into a transposed convolution")
    st.caption("Defaults: the seed note's 2x2 input 1..4, 3x3 all-ones kernel and its second BN example (the seed "
               "note is the worked example that started foldscope). TConv: a transposed convolution; BN: a "
               "BatchNormalization at inference, with its stored mean and variance.")
    o = why_inputs_ui()
    channel = st.selectbox("Output channel to show", range(o["out_channels"])) if o["out_channels"] > 1 else 0
    c = why_view.content(o["size"], o["stride"], o["padding"], o["out_channels"], o["kernel"] == "random", channel)

    st.subheader("1. A TConv scatters: every input pixel stamps a scaled copy of the kernel")
    st.image(c.stamps, width="stretch")
    equality("sum of stamps vs tf.nn.conv2d_transpose", c.diff_tf)

    st.subheader("2. The same TConv is a plain convolution: flipped kernel over a zero-inserted, padded input")
    st.image(c.conv, width="stretch")
    equality("convolution vs scatter", c.diff_conv)

    st.subheader("3. Inference BN is a 1x1 convolution: y = s·x + t")
    st.markdown("s = γ / √(var + ε), t = β − mean · s: " + ", ".join(
        f"channel {i}: s = {s:.6g}, t = {t:.6g}" for i, (s, t) in enumerate(c.affine)))
    st.image(c.bn, width="stretch")
    equality("BN formula vs 1x1 convolution", c.diff_bn)

    st.subheader("4. Two linear maps in a row are one: scale the kernel by s, add t as bias")
    st.image(c.fold, width="stretch")
    equality("folded TConv vs TConv → BN", c.diff_fold)

    st.subheader("5. Where it stops working")
    st.caption("The naive fold is what folding would compute if it ignored what sits between the layer and "
               "the BN: the kernel scaled by s and t added as bias, as in step 4; for a BN before the layer, the "
               "forward fold: the kernel's input channels scaled by s and the response to t added as bias.")
    for case in c.cases:
        st.markdown(f"**{case.title}.** {case.why}")
        st.image(case.picture, width="stretch")
        st.metric(f"max abs diff: {case.title} (true vs naive fold)", f"{case.max_abs_diff:.3g}")


def why_inputs_ui() -> dict:
    c = st.columns(5)
    size = c[0].selectbox("Input size", (2, 3, 4), help="Input values 1..n²")
    stride = c[1].selectbox("Stride", (1, 2))
    padding = c[2].selectbox("Padding", ("VALID", "SAME"))
    out_channels = c[3].selectbox("Output channels", (1, 2))
    kernel = c[4].selectbox("Kernel", ("all ones", "random"))
    return dict(size=size, stride=stride, padding=padding, out_channels=out_channels, kernel=kernel)


def equality(label: str, diff: float) -> None:
    st.metric(f"max abs diff: {label}", f"{diff:.2e}", help="Computed on this page, not asserted.")
