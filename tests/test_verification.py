"""Verification figures: NumPy only, checked by hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from fold.core.verification import abs_diff, compare, default_atol


def test_figures_per_output_and_channel():
    ref = np.zeros((2, 3, 4))
    out = ref.copy()
    out[1, 2, 3] = 0.5
    out[0, 0, 1] = -0.25
    v = compare([ref, np.ones(5)], [out, np.ones(5)], ["a", "b"], atol=0.4)
    a, b = v.per_output
    assert a.max_abs_diff == 0.5 and a.per_channel_max_abs_diff == [0.0, 0.25, 0.0, 0.5]
    assert v.mean_abs_diff == pytest.approx(0.75 / 29)
    assert b.max_abs_diff == 0.0 and not v.passed


def test_channels_first_axis():
    ref = np.zeros((1, 3, 2, 2))
    out = ref.copy()
    out[0, 2] = 1.0
    (o,) = compare([ref], [out], ["x"], channel_axes=[1]).per_output
    assert o.per_channel_max_abs_diff == [0.0, 0.0, 1.0]


def test_non_finite_values_never_pass():
    ref = np.array([1.0, np.nan, np.inf, 2.0])
    assert list(abs_diff(ref, np.array([1.0, np.nan, np.inf, 2.5]))) == [0.0, 0.0, 0.0, 0.5]
    assert np.isinf(abs_diff(ref, np.array([1.0, 0.0, np.inf, 2.0]))).sum() == 1
    v = compare([ref], [np.array([1.0, np.nan, -np.inf, 2.0])], ["x"])
    assert v.max_abs_diff == np.inf and not v.passed and np.isfinite(v.atol)


def test_default_atol_scales_with_output_and_dtype():
    assert default_atol([np.array([3.0, -50.0])], "float32") == pytest.approx(50e-4)
    assert default_atol([np.array([0.1])], "float16") == pytest.approx(1e-2)
