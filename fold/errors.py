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
    """What went wrong, for a row of results: a FoldError's own sentence, any other exception's type
    and message."""
    if isinstance(exc, FoldError):
        return one_line(exc, limit)
    return f"{type(exc).__name__}: {one_line(exc, limit)}"
