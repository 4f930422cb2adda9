"""Samsung ONE's six Net_TConv_BN recipes (``res/TensorFlowLiteRecipes/Net_TConv_BN_00x/test.recipe``),
the cases luci's FuseBatchNormWithTConvPass is tested on, as ``TConvCase``s with the recipes' own
numbers: shapes, strides and paddings as written, the explicit MUL/ADD parameters as written, and the
recipes' gaussian(0, 0.1) fillers drawn from a seed.

    000  1 -> 1 channel, 3x3, no bias
    001  2 -> 1, 3x3, no bias (options with activation NONE)
    002  2 -> 2, the 5x1 kernel of Samsung/ONE#5835, RELU6 on the ADD
    003  2 -> 1, 3x3, a bias (1.03)
    004  2 -> 16, 3x3, a bias, MUL and ADD operands of shape (1, 1, 1, 16), the recipe's random values
    005  as 002 with RELU
"""

from __future__ import annotations

import numpy as np

from tests.tflite_support import TConvCase

#: The ADD's explicit operands and the MUL's of recipes 000-003 and 005.
_SHIFT1, _SCALE1 = [-2.04724], [2.00834]
_SHIFT2, _SCALE2 = [-2.04724, -7.80109], [2.00834, 1.00344]

RECIPES: dict[str, TConvCase] = {
    "Net_TConv_BN_000": TConvCase(cin=1, cout=1, hw=(2, 2)),
    "Net_TConv_BN_001": TConvCase(cin=2, cout=1, hw=(2, 2)),
    "Net_TConv_BN_002": TConvCase(cin=2, cout=2, kernel=(5, 1), hw=(1, 1), act="RELU6"),
    "Net_TConv_BN_003": TConvCase(cin=2, cout=1, hw=(2, 2), bias=True),
    "Net_TConv_BN_004": TConvCase(cin=2, cout=16, hw=(2, 2), bias=True, operand_shape="111C", bias_shape="111C"),
    "Net_TConv_BN_005": TConvCase(cin=2, cout=2, kernel=(5, 1), hw=(1, 1), act="RELU"),
}


def recipe_params(name: str, seed: int = 0) -> dict:
    """filter, bias, scale (the MUL's operand) and shift (the ADD's) of a recipe, float32."""
    case = RECIPES[name]
    rng = np.random.default_rng(seed)
    gaussian = lambda *shape: rng.normal(0.0, 0.1, shape).astype(np.float32)  # noqa: E731 - the recipes' filler
    params = {"filter": gaussian(case.cout, *case.kernel, case.cin), "bias": None}
    if name == "Net_TConv_BN_004":
        params |= {"bias": gaussian(16), "scale": gaussian(16), "shift": gaussian(16)}
    else:
        params |= {"bias": np.array([1.03], np.float32) if case.bias else None,
                   "scale": np.array(_SCALE1 if case.cout == 1 else _SCALE2, np.float32),
                   "shift": np.array(_SHIFT1 if case.cout == 1 else _SHIFT2, np.float32)}
    return params
