"""The seed note's own numbers (``shared/seed.md``), copied from the note once, for every test that
holds the code to them; independent of ``foldscope_app/examples/seed.py``, which ``tests/test_seed.py`` checks
against them.

The note runs a VALID, stride-1 ``conv2d_transpose`` of the 2x2 input 1..4 with a 3x3 all-ones
kernel, then a BN: in its first example with scale 1.05, offset 0.015 and the TConv output's own
mean and variance (epsilon 0), printing three results; in its second listing with the constants
of a trained BN.
"""

from __future__ import annotations

import numpy as np

#: The input as the note feeds it, (1, 2, 2, 1), and the TConv's 4x4 output.
X = np.arange(1, 5, dtype="float32").reshape(1, 2, 2, 1)
TCONV_OUT = np.array([[1, 3, 3, 2], [4, 10, 10, 6], [4, 10, 10, 6], [3, 7, 7, 4]], dtype=np.float64)

#: The first example's BN: scale and offset (mean and variance: the TConv output's own, epsilon 0).
SCALE, OFFSET = 1.05, 0.015
#: Its printouts: "numpy batch_norm" and "folded tconv" (rows of the 4x4 output).
NUMPY_BN = np.array([
    [-1.6051569, -0.90454847, -0.90454847, -1.2548528],
    [-0.5542443, 1.5475807, 1.5475807, 0.14636408],
    [-0.5542443, 1.5475807, 1.5475807, 0.14636408],
    [-0.90454847, 0.49666822, 0.49666822, -0.5542443],
])
FOLDED_TCONV = np.array([
    [-1.6051569, -0.9045485, -0.9045485, -1.2548528],
    [-0.5542443, 1.5475811, 1.5475811, 0.1463641],
    [-0.5542443, 1.5475811, 1.5475811, 0.1463641],
    [-0.9045485, 0.49666822, 0.49666822, -0.5542443],
])

#: The BN constants of the second listing, as it writes them.
EXAMPLE_2 = {"gamma": 1.0177339315414429, "beta": 0.015628524124622345, "mean": 1.027155211195349693,
             "var": 0.25580066442489624, "eps": 0.0010000000474974513}
