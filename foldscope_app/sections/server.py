"""The page's server process: Streamlit's cleanup after every script run, without
``keras.backend.clear_session``, and what a failure says to the user and to the server's log.

Streamlit (1.67: ``script_runner._clean_problem_modules``) clears Keras' session after each run of
any session. Keras keeps its layer-name counters and name scopes per thread, and the clear replaces
them for every thread at once: a session building a model while another session's run ends names
two of its layers "input_layer" ("The name "input_layer" is used 4 times in the model"). The clear
also flushes TensorFlow's kernel cache under the sessions still running, and collects garbage over
the whole heap with the GIL held (0.2 to 0.7 s once the zoo's models are cached) after every run.
The page keeps no Keras state across runs but its cached models (a run's thread takes its own
state with it), so the rest of that cleanup is all it keeps: closing pyplot's figures. (The full
garbage collection Streamlit adds after each run is off too: ``runner.postScriptGC`` in
``foldscope_app/.streamlit/config.toml``.)
"""

from __future__ import annotations

import logging
import sys

from streamlit.runtime.scriptrunner import script_runner

from fold.core.errors import FoldError, unexpected

LOG = logging.getLogger("foldscope.page")


def _close_pyplot_figures() -> None:
    """What remains of Streamlit's cleanup after a run: pyplot's open figures closed."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


def keep_keras_state() -> None:
    """Streamlit's cleanup after a run, without Keras' ``clear_session`` (idempotent)."""
    script_runner._clean_problem_modules = _close_pyplot_figures


def failed(exc: Exception, could_not: str) -> str:
    """What the page says when it could not do ``could_not`` ("fold this model"): a FoldError's own
    sentence; for an error foldscope did not expect, where it failed, in words (its traceback goes to
    the server's log)."""
    if isinstance(exc, FoldError):
        return str(exc)
    LOG.warning("Could not %s", could_not, exc_info=exc)
    return f"Could not {could_not}: {unexpected(exc)}; the server's log has the details."
