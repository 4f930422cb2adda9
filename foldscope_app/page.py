"""foldscope's web page: the sidebar picks a model source, the tabs show its sections.

Each section is a module of ``foldscope_app.sections`` with a ``*_ui`` function that lays out what the
model's workbench (``foldscope_app.workbench.workbench``) computed and cached; only the open tab runs.
Run with ``make run`` (the repository's ``app.py`` runs ``main``) or ``streamlit run foldscope_app/page.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import streamlit as st

#: The folder that holds this package: run as a script (``streamlit run foldscope_app/page.py``, which puts
#: only this file's own folder on the path), the page imports the library next to it.
ROOT = str(Path(__file__).resolve().parents[1])
if __name__ == "__main__" and ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from fold.core.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

from fold.frontends.formats import SUFFIXES  # noqa: E402
from foldscope_app.sections.check_tab import check_ui  # noqa: E402
from foldscope_app.sections.fold_tab import fold_ui  # noqa: E402
from foldscope_app.sections.quantization_tab import quant_ui  # noqa: E402
from foldscope_app.sections.server import failed, keep_keras_state  # noqa: E402
from foldscope_app.sections.sources import CHECK, NO_FILE_IN_LINKS, SOURCES, UPLOADED  # noqa: E402
from foldscope_app.sections.why_tab import why_ui  # noqa: E402
from foldscope_app.workbench.workbench import CheckBench, Workbench  # noqa: E402

Section = Callable[[Workbench | CheckBench], None]
#: The tabs of a model's page and of a check's, each before "Why it works": label -> its section.
MODEL_TABS: dict[str, Section] = {"Fold": fold_ui, "Quantization": quant_ui}
CHECK_TABS: dict[str, Section] = {"Check": check_ui}
WHY = "Why it works"


def source_ui() -> tuple[Workbench | CheckBench | None, str | None]:
    """Pick and build a model source in the sidebar: its workbench (None when there is nothing to
    show) and, when it was refused, why, in one sentence for the main area."""
    with st.sidebar:
        st.title("foldscope")
        source = st.radio("Model source", list(SOURCES), key="source", bind="query-params")
        if source in UPLOADED:
            st.caption(NO_FILE_IN_LINKS)
        try:
            return SOURCES[source](), None
        except Exception as exc:  # a model we cannot build or run: say so in words, no traceback
            return None, failed(exc, "fold this model")


def section_ui(section: Section, bench: Workbench | CheckBench | None, error: str | None) -> None:
    if error is not None:
        st.error(error, icon="⚠️")  # where the eye is, not at the bottom of the sidebar
    elif bench is None:
        st.info(f"Pick a model source in the sidebar (for an upload: choose a {', '.join(SUFFIXES)} file; "
                "to check another tool's fold: the original and the candidate).")
    else:
        section(bench)


#: The first thing a newcomer reads: what the tool does and what to try first.
INTRO = ("**foldscope folds every BatchNorm into the layer before it** (convolutions, dense layers and "
         "transposed convolutions) **and proves the folded model computes what the original did**, layer by "
         "layer, within float error. It opens on the seed example: the worked example of the question that "
         "started the project (does a BN fold into a transposed convolution?). Pick another model in the "
         "sidebar (a layer of your own, an architecture, your own file, or a fold another tool made); "
         f"**{WHY}** shows why the fold is exact, step by step.")


def main() -> None:
    keep_keras_state()  # before this run ends: sessions build Keras models side by side
    st.set_page_config(page_title="foldscope", layout="wide")
    st.markdown(INTRO)
    bench, error = source_ui()
    sections, key = (CHECK_TABS, "check_tab") if st.session_state.get("source") == CHECK else (MODEL_TABS, "tab")
    *tabs, why_tab = st.tabs([*sections, WHY], key=key, on_change="rerun", bind="query-params")
    # Only the open tab runs (the others' content would be drawn for nothing on every rerun).
    for tab, section in zip(tabs, sections.values()):
        if tab.open is not False:
            with tab:
                section_ui(section, bench, error)
    if why_tab.open is not False:
        with why_tab:
            why_ui()


if __name__ == "__main__":  # as Streamlit runs a script; app.py calls main itself
    main()
