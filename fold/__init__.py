"""foldscope: find, fold, explain and verify BatchNorm folding in real models.

The math, the kinds table, the rules and the graph schema import only NumPy and networkx;
the Keras-facing API (``fold_model``, ``fold_file``, ``verify``) is imported on first use so
that ``viz`` and other light users never pay for TensorFlow.
"""

from fold.affine import Affine, bn_affine, fold_kernel
from fold.errors import FoldError, UnsafeModelError
from fold.rules import RULES, Decision

_LAZY = {"FoldResult", "fold_file", "fold_model", "verify"}

__all__ = ["Affine", "Decision", "FoldError", "RULES", "UnsafeModelError", "bn_affine",
           "fold_kernel", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in _LAZY:
        from fold import api

        return getattr(api, name)
    raise AttributeError(f"module 'fold' has no attribute {name!r}")
