"""foldscope's web page: browse a model's BatchNorm folding, and see why TConv + BN folding works.

Layout and widgets only: the numbers come from ``fold`` and the figures from ``viz``.
Run with ``make run``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pandas as pd
import streamlit as st

from fold.quiet import import_tensorflow_quietly

import_tensorflow_quietly()

from demo import explain, zoo  # noqa: E402
from demo import seed as seed_note  # noqa: E402
from demo import workbench  # noqa: E402
from demo.explain_tf import tensorflow_tconv  # noqa: E402
from demo import check_view, graph_view, quant_view  # noqa: E402
from demo.workbench import Workbench, png  # noqa: E402
from fold.errors import FoldError, one_line  # noqa: E402
from fold.files import MAX_MODEL_BYTES  # noqa: E402
from fold.frontend import FRONTENDS, SUFFIXES  # noqa: E402
from fold.report import VERDICTS, layer_verdict  # noqa: E402
from viz import draw_graph, plot_channels, plot_heatmaps, plot_vectors, select_slice  # noqa: E402
from viz import explain as viz_explain  # noqa: E402

#: Everything derived from one model is cached under the key its workbench carries.
BY_KEY = {Workbench: lambda wb: wb.key, workbench.CheckBench: lambda cb: cb.key}


# --- cached work: one Workbench per model source, shared safely (never mutated) ------------

@st.cache_resource(show_spinner=False, max_entries=1)
def seed_workbench() -> Workbench:
    return workbench.seed_workbench()


@st.cache_resource(show_spinner=False, max_entries=1)
def seed_ops_workbench() -> Workbench:
    return workbench.seed_ops_workbench()


@st.cache_resource(show_spinner=False, max_entries=8)
def playground_workbench(settings: tuple) -> Workbench:
    return workbench.playground_workbench(dict(settings))


@st.cache_resource(show_spinner=False, max_entries=3)
def zoo_workbench(name: str) -> Workbench:
    return workbench.zoo_workbench(name)


@st.cache_resource(show_spinner=False, max_entries=3)
def upload_workbench(digest: str, name: str, _data: bytes, _inputs: bytes | None) -> Workbench:
    return workbench.upload_workbench(name, _data, _inputs)


@st.cache_resource(show_spinner=False, max_entries=3)
def check_workbench(digest: str, names: tuple[str, str], _original: bytes, _candidate: bytes,
                    _inputs: bytes | None) -> workbench.CheckBench:
    return workbench.check_workbench((names[0], _original), (names[1], _candidate), _inputs)


@st.cache_data(show_spinner=False, max_entries=4, hash_funcs=BY_KEY)
def check_figure(cb: workbench.CheckBench) -> dict:
    return check_view.figure(cb.result)


@st.cache_data(show_spinner=False, max_entries=8, hash_funcs=BY_KEY)
def folded_bytes(wb: Workbench) -> bytes:
    return wb.folded_file()


@st.cache_resource(show_spinner=False, max_entries=4, hash_funcs=BY_KEY)
def op_view(wb: Workbench):
    from fold.frontends.graphdef.io import graph_def_from_keras, graph_model
    from fold.pipeline import fold

    graphdef = FRONTENDS["graphdef"].frontend()
    return fold(graphdef, graph_model(graph_def_from_keras(wb.keras_model), wb.name))


@st.cache_resource(show_spinner=False, max_entries=4, hash_funcs=BY_KEY)
def op_checks(wb: Workbench):
    """The verification of the op view's fold."""
    from fold.pipeline import verify

    return verify(op_view(wb), inputs=wb.checked.inputs).verification


@st.cache_resource(show_spinner=False, max_entries=4, hash_funcs=BY_KEY)
def converter_views(wb: Workbench):
    from demo.converter import converter_view

    return converter_view(wb.keras_model, samples=1), converter_view(wb.result.folded, samples=1)


@st.cache_data(show_spinner=False, max_entries=8, hash_funcs=BY_KEY)
def folded_tflite(wb: Workbench) -> bytes:
    from fold.frontends.keras.io import to_tflite

    return to_tflite(wb.result.folded)


@st.cache_resource(show_spinner=False, max_entries=4, hash_funcs=BY_KEY)
def onnx_peers(wb: Workbench):
    from demo.peers import peer_runs

    return peer_runs(wb.result.original, wb.checked.inputs)


@st.cache_data(show_spinner=False, max_entries=32, hash_funcs=BY_KEY)
def channel_png(wb: Workbench, index: int) -> bytes:
    """The per-channel scale, shift and kernel ranges of candidate pair ``index``."""
    decision = wb.result.decisions[index]
    detail = wb.detail(decision)
    return png(plot_channels(detail.scale, detail.shift, detail.range_before, detail.range_after,
                             title=f"{decision.layer} ← {decision.bn}"))


def fold_result(wb: Workbench, view: str):
    """The workbench's fold (``view`` "fold") or the fold of its op view ("ops")."""
    return wb.result if view == "fold" else op_view(wb)


@st.cache_resource(show_spinner=False, max_entries=8, hash_funcs=BY_KEY)
def graph_figure(wb: Workbench, view: str, expanded: tuple, colour: bool) -> dict:
    """The figure of a fold's graphs (layout, nodes, hover texts): built once, viewed many times."""
    checks = (wb.verification if view == "fold" else op_checks(wb)).layers if colour else None
    return graph_view.figure(fold_result(wb, view), expanded=expanded, checks=checks)


@st.cache_data(show_spinner=False, max_entries=8, hash_funcs=BY_KEY)
def static_picture(wb: Workbench, view: str, fmt: str) -> bytes:
    return graph_view.static_picture(fold_result(wb, view), fmt)


@st.cache_data(show_spinner=False, max_entries=8, hash_funcs=BY_KEY)
def graph_png(wb: Workbench, view: str) -> bytes:
    """One graph of the workbench's model: its op graph with the Consts ("consts") or the
    graph of what TensorFlow's converter made of it ("tflite")."""
    if view == "consts":
        from fold.frontends.graphdef import FRONTEND as GRAPHDEF

        graph = GRAPHDEF.graph(op_view(wb).original, show_consts=True)
    else:
        graph = converter_views(wb)[0].graph
    return png(draw_graph(graph, title=graph.graph.get("name")))


@st.cache_resource(show_spinner=False, max_entries=4, hash_funcs=BY_KEY)
def quant_report(wb: Workbench):
    """The quantization view of the workbench's fold, on the verification's inputs."""
    from fold.quantization import quant_report

    return quant_report(wb.result, wb.checked)


@st.cache_data(show_spinner=False, max_entries=8, hash_funcs=BY_KEY)
def sqnr_png(wb: Workbench) -> bytes:
    return png(quant_view.sqnr_figure(quant_report(wb)))


@st.cache_data(show_spinner=False, max_entries=32, hash_funcs=BY_KEY)
def ranges_png(wb: Workbench, index: int, equalized: bool) -> bytes:
    return png(quant_view.ranges_figure(quant_report(wb).layers[index], equalized))


@st.cache_data(show_spinner=False, max_entries=4, hash_funcs=BY_KEY)
def equalized_bytes(wb: Workbench) -> bytes:
    return wb.frontend.to_bytes(quant_report(wb).equalized)


# --- sidebar -------------------------------------------------------------------------------

def playground_ui() -> Workbench:
    """The playground's widgets, and the workbench of the model they describe."""
    kind = st.selectbox("Layer kind", zoo.PLAYGROUND_KINDS, index=2)
    c1, c2 = st.columns(2)
    channels_in = c1.number_input("Channels in", 1, 64, 3)
    channels_out = c2.number_input("Channels out", 1, 64, 4)
    kernel_size = c1.number_input("Kernel size", 1, 7, 3)
    stride = c2.number_input("Stride", 1, 4, 2)
    padding = c1.selectbox("Padding", ("same", "valid"))
    dilation = c2.number_input("Dilation", 1, 4, 1, help="TensorFlow's CPU kernels need stride 1 with dilation > 1; "
                                                         "transposed convolutions support only dilation 1 on CPU.")
    output_padding = st.selectbox("Output padding (Conv2DTranspose)", ("auto", 0, 1, 2, 3))
    use_bias = st.checkbox("Layer has a bias", True)
    activation = st.selectbox("Activation", list(zoo.Activation), format_func=lambda a: a.value)
    epsilon = st.select_slider("BN epsilon", (0.0, 1e-5, 1e-3, 1e-1), value=1e-3)
    spread = st.slider("Spread of BN statistics", 0.0, 3.0, 1.0, 0.1)
    tiny_variance = st.checkbox("Tiny variance on channel 0 (1e-10)",
                                help="Blows up channel 0 of the folded kernel: see the Quantization tab.")
    next_layer = st.checkbox("Then a 1x1 Conv2D", True,
                             help="A second layer, which cross-layer equalization needs to even out the folded "
                                  "kernel's channel ranges (Quantization tab).")
    size = st.slider("Input size", 2, 32, 8)
    seed = st.number_input("Random seed", 0, 10_000, 0)
    settings = dict(kind=kind, channels_in=int(channels_in), channels_out=int(channels_out),
                    kernel_size=int(kernel_size), stride=int(stride), padding=padding, dilation=int(dilation),
                    output_padding=None if output_padding == "auto" else int(output_padding), use_bias=use_bias,
                    activation=activation, epsilon=float(epsilon), spread=float(spread),
                    tiny_variance=tiny_variance, size=int(size), seed=int(seed), next_layer=next_layer)
    with st.spinner("Building and folding..."):
        return playground_workbench(tuple(settings.items()))


def seed_ui() -> Workbench:
    with st.spinner("Folding the seed example..."):
        return seed_workbench()


def seed_ops_ui() -> Workbench:
    with st.spinner("Folding the seed's TensorFlow graph..."):
        return seed_ops_workbench()


def zoo_ui() -> Workbench:
    name = st.selectbox("Architecture", list(zoo.ZOO))
    st.caption("keras.applications models are built with weights=None and random BN statistics, all from seed 0.")
    with st.spinner(f"Building and folding {name} (a few seconds)..."):
        return zoo_workbench(name)


MODEL_HELP = (f"{'; '.join(f'{f.label} ({chr(44).join(f.suffixes)})' for f in FRONTENDS.values())}; at most "
              f"{MAX_MODEL_BYTES // 2**20} MiB. Keras files are loaded with safe_mode on.")


def inputs_ui(key: str) -> bytes | None:
    """An optional uploader for the verification inputs (the command line's --inputs-file)."""
    upload = st.file_uploader("Verification inputs (optional)", type=["npz", "npy"], key=key,
                              help="A .npz of arrays keyed by input name (a .npy for a single-input model): the "
                                   "inputs the fold is verified on, instead of random samples.")
    return None if upload is None else upload.getvalue()


def _digest(*parts: bytes | None) -> str:
    return hashlib.sha256(b"\0".join(p or b"" for p in parts)).hexdigest()


def upload_ui() -> Workbench | None:
    upload = st.file_uploader("A model file", type=[s.lstrip(".") for s in SUFFIXES], help=MODEL_HELP)
    inputs = inputs_ui("upload_inputs")
    if upload is None:
        return None
    data = upload.getvalue()
    with st.spinner(f"Loading and folding {upload.name}..."):
        return upload_workbench(_digest(data, inputs), upload.name, data, inputs)


def check_ui() -> workbench.CheckBench | None:
    """Two uploads: a model, and the fold another tool (onnxsim, a converter, a compiler) made of it."""
    types = [s.lstrip(".") for s in SUFFIXES]
    original = st.file_uploader("The original model", type=types, help=MODEL_HELP, key="check_original")
    candidate = st.file_uploader("The fold another tool made of it", type=types, key="check_candidate",
                                 help="The same format (a .tflite for a Keras original): what onnxsim, onnxruntime's "
                                      "optimizer, onnxoptimizer, TensorFlow's converter or a compiler wrote.")
    inputs = inputs_ui("check_inputs")
    if original is None or candidate is None:
        return None
    a, b = original.getvalue(), candidate.getvalue()
    with st.spinner(f"Lining up {candidate.name} with {original.name} and checking it..."):
        return check_workbench(_digest(a, b, inputs), (original.name, candidate.name), a, b, inputs)


#: The sidebar's model sources: label -> the widgets that pick a model and return its workbench.
SOURCES: dict[str, Callable[[], Workbench | workbench.CheckBench | None]] = {
    "The seed example": seed_ui,
    "The seed, as TensorFlow ops": seed_ops_ui,
    "Playground": playground_ui,
    "Model zoo": zoo_ui,
    "Upload": upload_ui,
    "Check a fold made elsewhere": check_ui,
}


def source_ui() -> Workbench | workbench.CheckBench | None:
    """Pick and build a model source in the sidebar; None when there is nothing to show."""
    with st.sidebar:
        st.title("foldscope")
        source = st.radio("Model source", list(SOURCES), key="source")
        try:
            return SOURCES[source]()
        except FoldError as exc:
            st.error(str(exc))
        except Exception as exc:  # a model we cannot build or run: say so, no traceback
            st.error(f"Could not fold this model: {type(exc).__name__}: {one_line(exc)}")
        return None


# --- main area -----------------------------------------------------------------------------

def verdict_ui(v) -> None:
    """The verdict in words, what decided it, the worst layer and the inputs it was reached on."""
    say = {"pass": st.success, "fail": st.error, "inconclusive": st.warning}[v.verdict]
    say(f"**{VERDICTS[v.verdict]}.** {v.reason}")
    worst = v.worst_layer()
    shapes = "; ".join(f"{name} {'×'.join(map(str, shape))}" for name, shape in v.input_shapes.items())
    source = {"recipe": f"random inputs, seed {v.seed}", "file": "the inputs file", "given": "the model's own input"}
    st.caption(f"Verified on {v.samples} sample(s) ({source[v.inputs_source]}): {shapes}."
               + (f" Worst layer: '{worst.layer}' ({worst.bn}), max rel diff {worst.max_rel_diff:.2e} on channel "
                  f"{worst.worst_channel}, {worst.margin:.2g}× its float tolerance." if worst else "")
               + (f" Checked at the outputs only: {', '.join(v.output_only)}." if v.output_only else ""))


def metrics_ui(wb: Workbench) -> None:
    v, r = wb.verification, wb.result
    verdict_ui(v)
    cols = st.columns([1.5, 1, 1, 1, 1])  # room for the full first label
    cols[0].metric("max abs diff (outputs)", f"{v.max_abs_diff:.3e}",
                   help=f"The outputs' budget (what float error in the layers before them explains): {v.atol:.1e}")
    cols[1].metric("mean abs diff", f"{v.mean_abs_diff:.3e}")
    cols[2].metric("max rel diff", f"{v.max_rel_diff:.3e}",
                   help="An output channel's max |diff| over that channel's own max |output|, the largest of them")
    cols[3].metric("BatchNorm layers", f"{r.bn_before} → {r.bn_after}")
    cols[4].metric("pairs folded", f"{len(r.folded_pairs)} / {len(r.decisions)}")


def seed_table_ui(wb: Workbench) -> None:
    """The three results the seed note printed, side by side, with their differences."""
    numpy_bn = seed_note.numpy_batch_norm()[:, :, 0]
    tf_bn = wb.reference[0][0, :, :, 0]
    folded = wb.folded_outputs[0][0, :, :, 0]
    rows, cols = np.indices(numpy_bn.shape)
    st.subheader("The seed's three results")
    digits = {name: st.column_config.NumberColumn(format="%.8f")
              for name in ("numpy batch_norm", "tensorflow batch_norm", "folded tconv")}
    st.dataframe(pd.DataFrame({
        "row": rows.ravel(), "col": cols.ravel(), "numpy batch_norm": numpy_bn.ravel(),
        "tensorflow batch_norm": tf_bn.ravel(), "folded tconv": folded.ravel(),
        "|tensorflow - folded|": np.abs(tf_bn - folded).ravel(),
    }), hide_index=True, height=250, column_config={
        **digits, "|tensorflow - folded|": st.column_config.NumberColumn(format="%.2e")})
    st.caption(f"max |numpy - folded| = {np.max(np.abs(numpy_bn - folded)):.2e}; "
               f"max |tensorflow - folded| = {np.max(np.abs(tf_bn - folded)):.2e}")


def pairs_ui(wb: Workbench) -> str | None:
    """The table of every candidate pair; returns the layer of the pair picked for details."""
    decisions = wb.result.decisions
    st.subheader("Candidate pairs")
    if not decisions:
        st.info("This model has no BatchNormalization layer: nothing to fold.")
        return None
    table = pd.DataFrame([d.to_dict() for d in decisions]).fillna("")
    checks = {c.layer: c for c in wb.verification.folded_layers}
    table.insert(4, "check", [layer_verdict(checks.get(d.layer), d, wb.verification) for d in decisions])
    table.insert(5, "layer max rel diff", [checks[d.layer].max_rel_diff if d.layer in checks else None
                                           for d in decisions])
    st.dataframe(table, hide_index=True, height=min(400, 38 + 35 * len(decisions)),
                 column_config={"layer max rel diff": st.column_config.NumberColumn(
                     format="%.2e", help="The folded layer fed what the original layer received, against the BN's "
                                         "output: a channel's max |diff| over its own max |output|")})
    labels = [f"{d.layer} → {d.bn} ({d.status})" for d in decisions]
    key = f"pair:{wb.key}"
    clicked = graph_view.clicked_node(st.session_state.get(f"graph:{wb.key}:fold"))
    if clicked is not None and clicked != st.session_state.get(f"{key}:click"):  # a click in the graph picks a pair
        st.session_state[f"{key}:click"] = clicked
        index = graph_view.pair_index(decisions, clicked)
        if index is not None:
            st.session_state[key] = index
    def centre_on_pair() -> None:  # picking a pair here (not by a click in the graph) moves the graph to it
        st.session_state[f"anchor:{wb.key}:fold"] = decisions[st.session_state[key]].layer
        st.session_state[f"center:{wb.key}:fold"] = decisions[st.session_state[key]].layer

    picked = st.selectbox("Pair to inspect", range(len(decisions)), format_func=labels.__getitem__, key=key,
                          on_change=centre_on_pair, help="Or click a layer or a BatchNorm of a pair in the graph below.")
    decision = decisions[picked]
    detail = wb.detail(decision)
    if detail is None:
        st.warning(f"Skipped: {decision.reason}")
    else:
        st.image(channel_png(wb, picked))
    return decision.layer


def graph_ui(wb: Workbench, pair_layer: str | None, view: str = "fold") -> None:
    """The interactive before/after graph: pan, zoom, hover, click a pair, find a layer, open
    nested models, colour by where the error enters; the static picture as a download."""
    result = fold_result(wb, view)
    before = result.graph_before
    c1, c2, c3 = st.columns([2, 2, 1.4])
    names = sorted(set(graph_view.open_graphs(result, graph_view.nested_models(before))[0]))
    center_key, find_key = f"center:{wb.key}:{view}", f"find:{wb.key}:{view}"

    def centre_on_found() -> None:
        st.session_state[center_key] = st.session_state[find_key]

    c1.selectbox("Find a layer", names, index=None, placeholder="type a layer name", key=find_key,
                 on_change=centre_on_found)
    nested = graph_view.nested_models(before)
    expanded = tuple(c2.multiselect("Open nested models", nested, key=f"open:{wb.key}:{view}") if nested else ())
    colour = c3.toggle("Colour by each layer's check", key=f"colour:{wb.key}:{view}",
                       help="Colours every compared layer by its |diff| against its tolerance (log scale; above 1 it "
                            "fails): a folded layer against the BN it absorbed, every other layer against itself.")
    with st.spinner("Laying out the graph..."):
        base = graph_figure(wb, view, expanded, colour)
    # The view opens on the first pair and moves only when asked (a layer found, a pair picked in the
    # box). A click in the graph picks a pair without changing the figure: Plotly already shows the
    # clicked node selected, and an unchanged figure is not drawn again (1600 points take a second).
    anchor = st.session_state.get(f"anchor:{wb.key}:{view}") or pair_layer
    center = st.session_state.get(center_key) or anchor
    fig = graph_view.view(base, result, expanded, selected=anchor if view == "fold" else None, center=center,
                          revision=f"{wb.key}:{view}:{expanded}:{center}")
    st.caption("Drag to pan, scroll to zoom (both panes move together), hover a node for its details"
               + (", click a layer or a BatchNorm to inspect its pair." if view == "fold" else ".")
               + " Blue outline: a BN was folded into it; red: a BN folding removes (a ghost on the right).")
    st.plotly_chart(fig, key=f"graph:{wb.key}:{view}", on_select="rerun" if view == "fold" else "ignore",
                    selection_mode="points", config={"scrollZoom": True, "displaylogo": False})
    if colour:
        worst = (wb.verification if view == "fold" else op_checks(wb)).worst()
        if worst is not None:
            st.caption(f"Closest to its tolerance: '{worst.layer}' (against '{worst.tensor}'), |diff| at "
                       f"{worst.margin:.2g} of it, max rel diff {worst.max_rel_diff:.2e}.")
    d1, d2, d3, _ = st.columns([1, 1, 1.6, 1.4])
    for col, fmt in ((d1, "png"), (d2, "svg")):
        col.download_button(f"Static picture (.{fmt})", lambda fmt=fmt: static_picture(wb, view, fmt),
                            file_name=f"{wb.name}_{view}_graph.{fmt}", mime=f"image/{'svg+xml' if fmt == 'svg' else fmt}",
                            key=f"picture:{wb.key}:{view}:{fmt}", on_click="ignore")
    d3.download_button("Open in Model Explorer (.zip)", key=f"explorer:{wb.key}:{view}", on_click="ignore",
                       data=lambda: graph_view.model_explorer_zip(fold_result(wb, view),
                                                                  wb.verification.layers if view == "fold" else None),
                       file_name=f"{wb.name}_{view}_model_explorer.zip", mime="application/zip",
                       help="The graphs before and after, each node's fold status (and its layer diff when coloured) "
                            "and a mapping for the split view, as Google's Model Explorer reads them: "
                            "`model-explorer before.json after.json`.")


def heatmaps_ui(wb: Workbench) -> None:
    st.subheader("Outputs: original vs folded")
    names = wb.output_names
    c1, c2, c3 = st.columns(3)
    index = c1.selectbox("Output", range(len(names)), format_func=names.__getitem__)
    reference = wb.reference[index]
    axis = wb.outputs[index].channel_axis
    sample = int(c2.number_input("Sample", 0, reference.shape[0] - 1, 0))
    channel = None if reference.ndim <= 2 else int(c3.number_input("Channel", 0, reference.shape[axis] - 1, 0))
    st.image(output_png(wb, index, sample, channel), width="stretch")


@st.cache_data(show_spinner=False, max_entries=32, hash_funcs=BY_KEY)
def output_png(wb: Workbench, index: int, sample: int, channel: int | None) -> bytes:
    """Both models' output ``index``: a curve per sample for vectors (Dense, softmax), else the
    heatmaps of one channel with their difference."""
    name, reference, folded = wb.output_names[index], wb.reference[index], wb.folded_outputs[index]
    if channel is None:
        return png(plot_vectors(np.ravel(reference[sample]), np.ravel(folded[sample]), title=f"{name}, sample {sample}"))
    axis = wb.outputs[index].channel_axis
    return png(plot_heatmaps(select_slice(reference, sample, channel, axis), select_slice(folded, sample, channel, axis),
                             title=f"{name}, sample {sample}, channel {channel}"))


def fold_page(wb: Workbench) -> None:
    if wb.notice:
        st.warning(wb.notice)
    metrics_ui(wb)
    if wb.key == "seed":
        seed_table_ui(wb)
    pair_layer = pairs_ui(wb)
    st.subheader("Graph before and after folding")
    graph_ui(wb, pair_layer)
    heatmaps_ui(wb)
    st.download_button(f"Download the folded model ({wb.suffix})", lambda: folded_bytes(wb), on_click="ignore",
                       file_name=f"{wb.name}_folded{wb.suffix}", mime="application/octet-stream")
    if wb.keras_model is not None:
        keras_extras_ui(wb)
    if wb.frontend.format.name == "onnx":
        onnx_peers_ui(wb)
    with st.expander("What foldscope checks before folding"):
        st.caption(f"The rules of the {wb.frontend.format.label} frontend, in order; the first objection decides.")
        st.table(pd.DataFrame([{"rule": r.name, "condition": r.summary} for r in wb.frontend.rules]))


def keras_extras_ui(wb: Workbench) -> None:
    """The op-level view of a Keras model and what TensorFlow's TFLite converter makes of it."""
    if st.toggle("Op view: the same model as TensorFlow ops, folded at op level"):
        with st.spinner("Tracing and folding the op graph..."):
            ops = op_view(wb)
        st.caption(f"{len(ops.folded_pairs)} of {len(ops.decisions)} BatchNorms folded at op level "
                   f"({ops.bn_before} → {ops.bn_after}).")
        st.dataframe(pd.DataFrame([d.to_dict() for d in ops.decisions]).fillna(""), hide_index=True)
        graph_ui(wb, ops.folded_pairs[0].layer if ops.folded_pairs else None, view="ops")
        if st.checkbox("Show the Const ops too (weights are otherwise attached to the ops that read them)"):
            st.image(graph_png(wb, "consts"))
    if st.toggle("What TensorFlow's TFLite converter did"):
        with st.spinner("Converting with TensorFlow's converter..."):
            original, folded = converter_views(wb)
        c1, c2 = st.columns(2)
        for col, title, view in ((c1, "converter on the original", original), (c2, "converter on foldscope's fold", folded)):
            col.metric(f"max abs diff vs Keras: {title}", f"{view.max_abs_diff:.3e}")
            col.caption(f"{len(view.ops)} ops: " + ", ".join(sorted(set(view.ops))))
            if view.remaining:
                col.warning(f"{len(view.remaining)} conv → MUL/ADD chain(s) left unfolded by the converter.")
        st.caption("The converter's op graph (original model):")
        st.image(graph_png(wb, "tflite"))
        st.download_button("Download the folded model as .tflite", lambda: folded_tflite(wb), on_click="ignore",
                           file_name=f"{wb.name}_folded.tflite", mime="application/octet-stream")


def onnx_peers_ui(wb: Workbench) -> None:
    """onnxsim, onnxoptimizer and onnxruntime's offline optimizer on the same model, beside foldscope."""
    st.subheader("What the ONNX tools did")
    st.caption("Each tool runs on the same model; every result runs in onnxruntime with its own graph "
               "optimizations off, on the same inputs as foldscope's verification.")
    with st.spinner("Running onnxsim, onnxoptimizer and onnxruntime's optimizer..."):
        runs = onnx_peers(wb)
    from demo.peers import count_batchnorms

    before = count_batchnorms(wb.result.original.proto)
    rows = [{"tool": "foldscope", "action": "fold every pair the rules allow",
             "BatchNormalization left": f"{count_batchnorms(wb.result.folded.proto)} of {before}",
             "max abs diff": f"{wb.verification.max_abs_diff:.3e}", "seconds": round(wb.result.timings_s["fold"], 3),
             "error": ""}]
    rows += [{"tool": r.tool, "action": r.action,
              "BatchNormalization left": "" if r.bn_left is None else f"{r.bn_left} of {before}",
              "max abs diff": "" if r.max_abs_diff is None else f"{r.max_abs_diff:.3e}",
              "seconds": round(r.seconds, 3), "error": r.error or ""} for r in runs]
    cols = st.columns(len(rows))
    for col, row in zip(cols, rows):
        col.metric(f"BN left: {row['tool']}", row["BatchNormalization left"] or "failed",
                   help=f"{row['action']}; max abs diff {row['max abs diff'] or 'n/a'}")
    st.dataframe(pd.DataFrame(rows), hide_index=True)


# --- "Quantization" -----------------------------------------------------------------------

def output_sqnr_ui(report) -> None:
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


def layer_quant_ui(wb: Workbench, report) -> None:
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
    st.image(ranges_png(wb, index, equalized and layer.peaks_cle is not None))


def quant_page(wb: Workbench) -> None:
    st.subheader("What int8 weights lose after folding")
    st.caption("Folding multiplies output channel c's weights by s = γ / √(var + ε). Quantized with one int8 scale "
               "for the whole tensor (max |w| / 127), the channel with the largest weights sets the scale and the "
               "others keep a few levels; one scale per output channel, or cross-layer equalization (CLE), restores "
               "them. Symmetric int8 weights, round to nearest; a layer's SQNR is the mean over its output channels.")
    try:
        with st.spinner("Quantizing every kernel and running the model with int8 weights..."):
            report = quant_report(wb)
    except Exception as exc:  # a model foldscope folds but cannot copy or run with new weights: say so
        st.error(f"Could not quantize this model's weights: {type(exc).__name__}: {one_line(exc)}")
        return
    if not report.layers:
        st.info("No layer was folded here: folding changes nothing for int8.")
        return
    st.caption("The model's output SQNR against the float original (int8 weights, float activations), "
               "and what folding changes:")
    output_sqnr_ui(report)
    st.image(sqnr_png(wb))
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
        st.download_button(f"Download the folded + equalized model ({wb.suffix})", lambda: equalized_bytes(wb),
                           on_click="ignore", file_name=f"{wb.name}_folded_cle{wb.suffix}",
                           mime="application/octet-stream")


# --- "Why it works" ------------------------------------------------------------------------

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


@st.cache_data(show_spinner=False, max_entries=48)
def why_content(size: int, stride: int, padding: str, out_channels: int, random_kernel: bool, channel: int) -> dict:
    """The walkthrough's figures (PNG) and numbers for one choice of inputs: the page's reruns
    (any widget on any tab) then cost nothing here."""
    w = explain.demo(size, stride, padding, out_channels, random_kernel)
    cases = []
    for title, case in explain.counterexamples(w).items():
        draw = viz_explain.bn_before_figure if isinstance(case, explain.BnBeforeCounterexample) \
            else viz_explain.counterexample_figure
        cases.append((title, case.why, png(draw(case, channel if case.reference.shape[-1] > channel else 0)),
                      case.max_abs_diff))
    return {
        "stamps": png(viz_explain.stamps_figure(w, channel)), "conv": png(viz_explain.conv_figure(w, channel)),
        "bn": png(viz_explain.bn_1x1_figure(w, channel)), "fold": png(viz_explain.fold_figure(w, channel)),
        "diff_tf": explain.max_abs_diff(w.scatter_output, tensorflow_tconv(w.x, w.kernel, stride, padding)),
        "diff_conv": w.diff_scatter_vs_conv, "diff_bn": w.diff_bn_vs_1x1, "diff_fold": w.diff_folded_vs_bn,
        "affine": list(zip(w.affine.scale, w.affine.shift)), "cases": cases,
    }


def why_page() -> None:
    st.header("Why a BatchNorm folds into a transposed convolution")
    st.caption("Defaults: the seed note's 2x2 input 1..4, 3x3 all-ones kernel and its second BN example.")
    o = why_inputs_ui()
    channel = st.selectbox("Output channel to show", range(o["out_channels"])) if o["out_channels"] > 1 else 0
    c = why_content(o["size"], o["stride"], o["padding"], o["out_channels"], o["kernel"] == "random", channel)

    st.subheader("1. A TConv scatters: every input pixel stamps a scaled copy of the kernel")
    st.image(c["stamps"], width="stretch")
    equality("sum of stamps vs tf.nn.conv2d_transpose", c["diff_tf"])

    st.subheader("2. The same TConv is a plain convolution: flipped kernel over a zero-inserted, padded input")
    st.image(c["conv"], width="stretch")
    equality("convolution vs scatter", c["diff_conv"])

    st.subheader("3. Inference BN is a 1x1 convolution: y = s·x + t")
    st.markdown("s = γ / √(var + ε), t = β − mean · s: " + ", ".join(
        f"channel {i}: s = {s:.6g}, t = {t:.6g}" for i, (s, t) in enumerate(c["affine"])))
    st.image(c["bn"], width="stretch")
    equality("BN formula vs 1x1 convolution", c["diff_bn"])

    st.subheader("4. Two linear maps in a row are one: scale the kernel by s, add t as bias")
    st.image(c["fold"], width="stretch")
    equality("folded TConv vs TConv → BN", c["diff_fold"])

    st.subheader("5. Where it stops working")
    for title, why, picture, diff in c["cases"]:
        st.markdown(f"**{title}.** {why}")
        st.image(picture, width="stretch")
        st.metric(f"max abs diff: {title} (true vs naive fold)", f"{diff:.3g}")


def check_page(cb: workbench.CheckBench) -> None:
    """A fold another tool made: the verdict, where each BN went, both graphs, both models' outputs."""
    r, v = cb.result, cb.verification
    verdict_ui(v)
    cols = st.columns(4)
    cols[0].metric("BatchNorms", f"{r.bn_original} → {r.bn_candidate}",
                   help=f"In {r.original_name} and in {r.candidate_name}")
    cols[1].metric("folded by the candidate", len(r.removed))
    cols[2].metric("max abs diff (outputs)", f"{v.max_abs_diff:.3e}")
    cols[3].metric("max rel diff", f"{v.max_rel_diff:.3e}")
    st.subheader("Where each BatchNorm went")
    rows = check_view.fates_table(r)
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
            "layer max rel diff": st.column_config.NumberColumn(format="%.2e")})
    else:
        st.info(f"{r.original_name} has no BatchNormalization.")
    st.subheader(f"{r.original_name} and {r.candidate_name}")
    st.caption("The candidate's nodes sit where the original's they line up with are (by tensor name); a layer a BN "
               "went into is outlined, the BNs it removed are ghosts, every compared node is coloured by its check.")
    st.plotly_chart(check_figure(cb), key=f"graph:{cb.key}", config={"scrollZoom": True, "displaylogo": False})
    heatmaps_ui(cb)


def main() -> None:
    st.set_page_config(page_title="foldscope", layout="wide")
    wb = source_ui()
    # Only the open tab runs (the others' content would be drawn for nothing on every rerun).
    if isinstance(wb, workbench.CheckBench) or st.session_state.get("source") == "Check a fold made elsewhere":
        check_tab, why_tab = st.tabs(["Check", "Why it works"], key="check_tab", on_change="rerun")
        pages = ((check_tab, check_page),)
    else:
        fold_tab, quant_tab, why_tab = st.tabs(["Fold", "Quantization", "Why it works"], key="tab", on_change="rerun")
        pages = ((fold_tab, fold_page), (quant_tab, quant_page))
    for tab, page in pages:
        if tab.open is not False:
            with tab:
                if wb is None:
                    st.info(f"Pick a model source in the sidebar (for an upload: choose a {', '.join(SUFFIXES)} file; "
                            "to check another tool's fold: the original and the candidate).")
                else:
                    page(wb)
    if why_tab.open is not False:
        with why_tab:
            why_page()


main()
