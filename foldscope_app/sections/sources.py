"""The sidebar's model sources: each source's widgets, and the workbench of the model they pick.

Workbenches are the only thing the page caches itself (``st.cache_resource``, shared by every
session, bounded); everything derived from one is cached on it (``foldscope_app.workbench.workbench``).
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from fold.frontends.formats import FRONTENDS, MAX_MODEL_BYTES, SUFFIXES
from foldscope_app.examples import model_zoo
from foldscope_app.workbench import workbench
from foldscope_app.workbench.workbench import CheckBench, Workbench

#: The source whose tabs are a check's, not a fold's.
CHECK = "Check a fold made elsewhere"
UPLOAD = "Upload"
#: The uploaders' limit in MB, as Streamlit counts it: the library's own limit (``fold.frontends.formats``).
UPLOAD_MB = MAX_MODEL_BYTES // 2**20
MODEL_HELP = (f"{'; '.join(f'{f.label} ({chr(44).join(f.suffixes)})' for f in FRONTENDS.values())}; at most "
              f"{MAX_MODEL_BYTES // 2**20} MiB. Keras files are loaded with safe_mode on.")


# --- one workbench per model, shared safely (never mutated) ---------------------------------

@st.cache_resource(show_spinner=False, max_entries=1)
def seed_workbench() -> Workbench:
    return workbench.seed_workbench()


@st.cache_resource(show_spinner=False, max_entries=1)
def seed_ops_workbench() -> Workbench:
    return workbench.seed_ops_workbench()


@st.cache_resource(show_spinner=False, max_entries=8)
def playground_workbench(settings: tuple) -> Workbench:
    return workbench.playground_workbench(dict(settings))


@st.cache_resource(show_spinner=False, max_entries=len(model_zoo.ZOO))  # the whole zoo: a room asks for all of it
def zoo_workbench(name: str) -> Workbench:
    return workbench.zoo_workbench(name)


@st.cache_resource(show_spinner=False, max_entries=3)
def upload_workbench(key: str, name: str, _data: bytes, _inputs: bytes | None) -> Workbench:
    return workbench.upload_workbench(name, _data, _inputs, key=key)


@st.cache_resource(show_spinner=False, max_entries=3)
def check_workbench(key: str, names: tuple[str, str], _original: bytes, _candidate: bytes,
                    _inputs: bytes | None) -> CheckBench:
    return workbench.check_workbench((names[0], _original), (names[1], _candidate), _inputs, key=key)


# --- the widgets of each source --------------------------------------------------------------

def _bound(name: str) -> dict:
    """A widget whose value the page's URL carries as ``name`` (a link reopens it)."""
    return {"key": name, "bind": "query-params"}


def seed_ui() -> Workbench:
    with st.spinner("Folding the seed example..."):
        return seed_workbench()


def seed_ops_ui() -> Workbench:
    with st.spinner("Folding the seed's TensorFlow graph..."):
        return seed_ops_workbench()


def playground_ui() -> Workbench:
    """The playground's widgets, and the workbench of the model they describe."""
    kind = st.selectbox("Layer kind", model_zoo.PLAYGROUND_KINDS, index=2, **_bound("kind"))
    c1, c2 = st.columns(2)
    channels_in = c1.number_input("Channels in", 1, 64, 3, **_bound("cin"))
    channels_out = c2.number_input("Channels out", 1, 64, 4, **_bound("cout"))
    kernel_size = c1.number_input("Kernel size", 1, 7, 3, **_bound("kernel"))
    stride = c2.number_input("Stride", 1, 4, 2, **_bound("stride"))
    padding = c1.selectbox("Padding", ("same", "valid"), **_bound("padding"))
    # Only what the layer accepts is offered: TensorFlow's CPU kernels dilate with stride 1 only, and
    # never a transposed convolution; an output padding must be smaller than the stride.
    dilatable = kind != "Conv2DTranspose" and kind != "Dense" and int(stride) == 1
    dilation = c2.number_input("Dilation", 1, 4, 1, disabled=not dilatable, **_bound("dilation"),
                               help="Dilation > 1 needs stride 1 (TensorFlow's CPU kernels), and a transposed "
                                    "convolution takes dilation 1 only." if not dilatable else None)
    dilation = dilation if dilatable else 1
    transposed = kind == "Conv2DTranspose"
    output_padding = st.selectbox("Output padding (Conv2DTranspose)", ("auto", *range(int(stride))),
                                  disabled=not transposed, **_bound("output_padding"),
                                  help=f"Smaller than the stride ({int(stride)}): 0 to {int(stride) - 1}.")
    output_padding = output_padding if transposed else "auto"
    use_bias = st.checkbox("Layer has a bias", True, **_bound("bias"))
    activation = st.selectbox("Activation", list(model_zoo.Activation), format_func=lambda a: a.value,
                              **_bound("activation"))
    epsilon = st.select_slider("BN epsilon", (0.0, 1e-5, 1e-3, 1e-1), value=1e-3, **_bound("epsilon"))
    spread = st.slider("Spread of BN statistics", 0.0, 3.0, 1.0, 0.1, **_bound("spread"))
    tiny_variance = st.checkbox("Tiny variance on channel 0 (1e-10)", **_bound("tiny_variance"),
                                help="Blows up channel 0 of the folded kernel: see the Quantization tab.")
    next_layer = st.checkbox("Then a 1x1 Conv2D", True, **_bound("then_conv"),
                             help="A second layer, which cross-layer equalization needs to even out the folded "
                                  "kernel's channel ranges (Quantization tab).")
    size = st.slider("Input size", 2, 32, 8, **_bound("size"))
    seed = st.number_input("Random seed", 0, 10_000, 0, **_bound("seed"))
    settings = dict(kind=kind, channels_in=int(channels_in), channels_out=int(channels_out),
                    kernel_size=int(kernel_size), stride=int(stride), padding=padding, dilation=int(dilation),
                    output_padding=None if output_padding == "auto" else int(output_padding), use_bias=use_bias,
                    activation=activation, epsilon=float(epsilon), spread=float(spread),
                    tiny_variance=tiny_variance, size=int(size), seed=int(seed), next_layer=next_layer)
    with st.spinner("Building and folding..."):
        return playground_workbench(tuple(settings.items()))


def zoo_ui() -> Workbench:
    name = st.selectbox("Architecture", list(model_zoo.ZOO), key="model", bind="query-params")
    entry = model_zoo.ZOO[name]
    st.caption(model_zoo.caption(entry))
    wait = "a large model: up to a minute or two on a small machine" if entry.large else "a few seconds"
    with st.spinner(f"Building, folding and verifying {name} ({wait})...", show_time=True):
        return zoo_workbench(name)


def inputs_ui(key: str) -> bytes | None:
    """An optional uploader for the verification inputs (the command line's --inputs-file)."""
    upload = st.file_uploader("Verification inputs (optional)", type=["npz", "npy"], key=key, max_upload_size=UPLOAD_MB,
                              help="A .npz of arrays keyed by input name (a .npy for a single-input model): the "
                                   "inputs the fold is verified on, instead of random samples.")
    return None if upload is None else upload.getvalue()


def upload_ui() -> Workbench | None:
    upload = st.file_uploader("A model file", type=[s.lstrip(".") for s in SUFFIXES], help=MODEL_HELP,
                              max_upload_size=UPLOAD_MB)
    inputs = inputs_ui("upload_inputs")
    if upload is None:
        return None
    data = upload.getvalue()
    with st.spinner(f"Loading and folding {upload.name}..."):
        return upload_workbench(workbench.upload_key(upload.name, data, inputs), upload.name, data, inputs)


def check_uploads_ui() -> CheckBench | None:
    """Two uploads: a model, and the fold another tool (onnxsim, a converter, a compiler) made of it."""
    types = [s.lstrip(".") for s in SUFFIXES]
    original = st.file_uploader("The original model", type=types, help=MODEL_HELP, key="check_original",
                                max_upload_size=UPLOAD_MB)
    candidate = st.file_uploader("The fold another tool made of it", type=types, key="check_candidate",
                                 max_upload_size=UPLOAD_MB,
                                 help="The same format (a .tflite for a Keras original): what onnxsim, onnxruntime's "
                                      "optimizer, onnxoptimizer, TensorFlow's converter or a compiler wrote.")
    inputs = inputs_ui("check_inputs")
    if original is None or candidate is None:
        return None
    a, b = (original.name, original.getvalue()), (candidate.name, candidate.getvalue())
    with st.spinner(f"Lining up {candidate.name} with {original.name} and checking it..."):
        return check_workbench(workbench.check_key(a, b, inputs), (a[0], b[0]), a[1], b[1], inputs)


#: The sidebar's model sources: label (the URL's ``source``) -> the widgets that pick a model and return
#: its workbench.
SOURCES: dict[str, Callable[[], Workbench | CheckBench | None]] = {
    "The seed example": seed_ui,
    "The seed, as TensorFlow ops": seed_ops_ui,
    "Playground": playground_ui,
    "Model zoo": zoo_ui,
    UPLOAD: upload_ui,
    CHECK: check_uploads_ui,
}
#: The sources whose model is a file the user uploaded: a link cannot carry it.
UPLOADED = (UPLOAD, CHECK)
NO_FILE_IN_LINKS = ("A link to this page opens this source, not your file: a file cannot travel in a URL, so whoever "
                    "opens it uploads the file again.")
