"""Errors a user can cause (their message is one sentence naming what was received), the one
sentence for a feature whose optional packages are not installed, and the one line said for any
other exception: a bug in foldscope, located at the op or layer it met it on."""

import importlib.util
import re
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

#: Terminal escape sequences (colours, cursor moves) and other control characters a library may
#: put in its messages; a one-line error carries none of them.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")


class FoldError(Exception):
    """A bad input (file, model or option) described in one sentence for the user."""


class UnsafeModelError(FoldError):
    """The model file asks for code to be executed (a Lambda or an unknown custom class)."""


#: foldscope's own import names: one of them missing is a broken install or a bug, never a missing extra.
OWN_PACKAGES = ("fold", "viz", "foldscope_app")


class MissingExtra(FoldError):
    """A feature whose optional packages (an extra of the ``foldscope`` distribution) are not installed:
    one sentence naming the feature, the missing package and the pip command that adds it."""

    def __init__(self, feature: str, extra: str, package: str | None = None):
        missing = f" ({package} is not installed)" if package else ""
        super().__init__(f"{feature} needs foldscope's {extra} extra{missing}: pip install 'foldscope[{extra}]'.")
        self.feature, self.extra, self.package = feature, extra, package


@contextmanager
def needs(extra: str, feature: str) -> Iterator[None]:
    """Imports inside that fail for a package foldscope does not own raise ``MissingExtra`` (``feature``
    needs ``extra``); a missing module of foldscope's own is raised as it is."""
    try:
        yield
    except ModuleNotFoundError as exc:
        package = (exc.name or "").partition(".")[0]
        if not package or package in OWN_PACKAGES:
            raise
        raise MissingExtra(feature, extra, package) from exc


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it (False when a test blocked it
    with ``sys.modules[module] = None``)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(extra: str, feature: str, *modules: str) -> None:
    """``MissingExtra`` unless every one of ``modules`` (import names) is installed."""
    missing = next((m for m in modules if not installed(m)), None)
    if missing is not None:
        raise MissingExtra(feature, extra, missing.partition(".")[0])


class InternalError(Exception):
    """An exception that is no FoldError, raised while foldscope read, folded or ran one op or layer
    of a model (a bug in foldscope, not in the file): ``where`` names it, ``__cause__`` is the exception."""

    def __init__(self, where: str, cause: BaseException):
        super().__init__(f"{where}: {type(cause).__name__}: {one_line(cause, 160)}")
        self.where = where


@contextmanager
def at(where: str) -> Iterator[None]:
    """Locate any exception but a FoldError raised inside at ``where`` ("op 'MUL:6' (MUL)"); the
    innermost place wins."""
    try:
        yield
    except (FoldError, InternalError):
        raise
    except Exception as exc:
        raise InternalError(where, exc) from exc


def internal_error(exc: BaseException, what: str) -> str:
    """The one line for an exception that is no FoldError, met on ``what`` (a file, or two): the file,
    the op or layer when known, the exception, and whose fault it is."""
    if _out_of_memory(exc):
        return f"there was not enough memory to work on {what}."
    where = f" at {exc.where}" if isinstance(exc, InternalError) else ""
    cause = exc.__cause__ if isinstance(exc, InternalError) and exc.__cause__ is not None else exc
    library = None if where else raised_in(cause)
    if library is not None:
        return (f"{library} failed on {what} in a way foldscope did not expect ({type(cause).__name__}: "
                f"{one_line(cause, 160)}); FOLDSCOPE_DEBUG=1 shows where.")
    return (f"foldscope failed on {what}{where} ({type(cause).__name__}: {one_line(cause, 160)}); this is a "
            "bug in foldscope, not in the file: please report it.")


def plain(text: str) -> str:
    """``text`` without terminal escape sequences or control characters, on one line."""
    return " ".join(_CONTROL.sub(" ", str(text)).split())


def human_size(n: int) -> str:
    """Bytes as B, KiB, MiB or GiB with at most one decimal."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{n} B"


def size_pair(size: int, limit: int) -> str:
    """"X, over the Y" with enough precision that X and Y never read the same."""
    if human_size(size) == human_size(limit):
        return f"{size:,} bytes, over the {limit:,} byte"
    return f"{human_size(size)}, over the {human_size(limit)}"


def listed(items: Sequence[str], limit: int = 5) -> str:
    """``items`` joined by commas: all of them, or the first ``limit`` and how many more ("a, b and 3
    more"), so a message that gives a count never lists fewer without saying so."""
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def ended(returncode: int) -> str:
    """How a child process that failed ended, in words: "crashed (signal 11, SIGSEGV)", "exited with status 3"."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = f", {signal.Signals(-returncode).name}"
    except ValueError:
        name = ""
    return f"crashed (signal {-returncode}{name})"


def one_line(exc: BaseException, limit: int = 240) -> str:
    """An exception's message on one line, without escape codes, cut to ``limit`` characters."""
    text = plain(str(exc)) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(exc: BaseException, limit: int = 240) -> str:
    """What went wrong, for a row of results: a FoldError's own sentence, a located bug in foldscope,
    any other exception's type and message (another tool's own words, which its row reports)."""
    if isinstance(exc, FoldError):
        return one_line(exc, limit)
    if isinstance(exc, InternalError):
        return f"a bug in foldscope at {one_line(exc, limit)}"
    return f"{type(exc).__name__}: {one_line(exc, limit)}"


#: Packages whose code may raise while foldscope works, by the name a user knows them by.
_PACKAGES = {"keras": "Keras", "tf_keras": "Keras", "tensorflow": "TensorFlow", "onnxruntime": "onnxruntime",
             "onnx": "ONNX", "ai_edge_litert": "LiteRT", "ai_edge_quantizer": "ai-edge-quantizer",
             "h5py": "h5py", "numpy": "NumPy", "networkx": "networkx", "py_mini_racer": "mini-racer",
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


def _out_of_memory(exc: BaseException) -> bool:
    cause = exc.__cause__ if isinstance(exc, InternalError) and exc.__cause__ is not None else exc
    return isinstance(cause, MemoryError) or type(cause).__name__ == "ResourceExhaustedError"


def unexpected(exc: BaseException) -> str:
    """An error foldscope did not expect, in words, as a clause for the user: that memory ran out, or
    where it failed ("Keras failed on it in a way foldscope did not expect"), never Python's
    exception name or a framework's internals (those are for a log, or ``FOLDSCOPE_DEBUG=1`` on the
    command line)."""
    if _out_of_memory(exc):
        return "there was not enough memory for it"
    if isinstance(exc, InternalError):
        return f"foldscope itself failed on it at {exc.where}, in a way it should not (a bug)"
    where = raised_in(exc)
    if where is None:
        return "foldscope itself failed on it, in a way it should not (a bug)"
    return f"{where} failed on it in a way foldscope did not expect"


def in_words(exc: BaseException, limit: int = 240) -> str:
    """What went wrong in foldscope's own work, for the user: a FoldError's own sentence, anything
    else ``unexpected``."""
    return one_line(exc, limit) if isinstance(exc, FoldError) else unexpected(exc)
