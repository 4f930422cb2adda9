"""Errors a user can cause. Their message is one sentence naming what was received."""


class FoldError(Exception):
    """A bad input (file, model or option) described in one sentence for the user."""


class UnsafeModelError(FoldError):
    """The model file asks for code to be executed (a Lambda or an unknown custom class)."""
