"""Errors a user can cause. Their message is one sentence naming what was received."""

import re

#: Terminal escape sequences (colours, cursor moves) and other control characters a library may
#: put in its messages; a one-line error carries none of them.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")


class FoldError(Exception):
    """A bad input (file, model or option) described in one sentence for the user."""


class UnsafeModelError(FoldError):
    """The model file asks for code to be executed (a Lambda or an unknown custom class)."""


def plain(text: str) -> str:
    """``text`` without terminal escape sequences or control characters, on one line."""
    return " ".join(_CONTROL.sub(" ", str(text)).split())


def one_line(exc: BaseException, limit: int = 240) -> str:
    """An exception's message on one line, without escape codes, cut to ``limit`` characters."""
    text = plain(str(exc)) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(exc: BaseException, limit: int = 240) -> str:
    """What went wrong in another tool, for its row of results: a FoldError's own sentence, any other
    exception's type and message (the tool's own words, which its row reports)."""
    if isinstance(exc, FoldError):
        return one_line(exc, limit)
    return f"{type(exc).__name__}: {one_line(exc, limit)}"


#: Packages whose code may raise while foldscope works, by the name a user knows them by.
_PACKAGES = {"keras": "Keras", "tf_keras": "Keras", "tensorflow": "TensorFlow", "onnxruntime": "onnxruntime",
             "onnx": "ONNX", "ai_edge_litert": "LiteRT", "ai_edge_quantizer": "ai-edge-quantizer",
             "h5py": "h5py", "numpy": "NumPy", "networkx": "networkx", "plotly": "Plotly",
             "matplotlib": "matplotlib"}
_PACKAGE = re.compile(r"[/\\]site-packages[/\\]([A-Za-z0-9_]+)")


def raised_in(exc: BaseException) -> str | None:
    """The library whose code raised ``exc`` (the innermost frame's package: "Keras", "TensorFlow",
    ...), None for foldscope's own code."""
    tb, package = exc.__traceback__, None
    while tb is not None:
        found = _PACKAGE.search(tb.tb_frame.f_code.co_filename)
        package = found.group(1) if found else None
        tb = tb.tb_next
    return None if package is None else _PACKAGES.get(package, package)


def unexpected(exc: BaseException) -> str:
    """An error foldscope did not expect, in words, as a clause for the user: that memory ran out, or
    where it failed ("Keras failed on it in a way foldscope did not expect"), never Python's
    exception name or a framework's internals (those are for a log, or ``FOLDSCOPE_DEBUG=1`` on the
    command line)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError":
        return "there was not enough memory for it"
    where = raised_in(exc)
    if where is None:
        return "foldscope itself failed on it, in a way it should not (a bug)"
    return f"{where} failed on it in a way foldscope did not expect"


def in_words(exc: BaseException, limit: int = 240) -> str:
    """What went wrong in foldscope's own work, for the user: a FoldError's own sentence, anything
    else ``unexpected``."""
    return one_line(exc, limit) if isinstance(exc, FoldError) else unexpected(exc)
