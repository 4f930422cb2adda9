"""Errors a user can cause. Their message is one sentence naming what was received."""


class FoldError(Exception):
    """A bad input (file, model or option) described in one sentence for the user."""


class UnsafeModelError(FoldError):
    """The model file asks for code to be executed (a Lambda or an unknown custom class)."""


def one_line(exc: BaseException, limit: int = 240) -> str:
    """An exception's message folded onto one line and cut to ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
