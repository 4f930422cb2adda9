"""The verdict's arithmetic (fold.core.verdict): NumPy only, checked against numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fold.core.verdict import (
    BUDGET, FLOOR, INCONCLUSIVE, LAMBDA, NUDGE, PASS, ChannelStats, abs_diff, as_channels, bn_step, judge_layer,
    judge_tensor, layer_tolerance, nudge_bias, nudge_factors, nudge_rho, synthetic_gain, tensor_budget, unit_roundoff,
    verdict,
)

U = 2.0**-24


def test_unit_roundoff_of_each_dtype():
    assert unit_roundoff("float32") == U and unit_roundoff("float16") == 2.0**-11
    assert unit_roundoff("float64") == 2.0**-53 and unit_roundoff("bfloat16") == 2.0**-8


def test_layer_tolerance_by_hand():
    """Two channels on the last axis, n = 4 terms per output, no y known: 2 λ √n u A + u_p A + 2 u |bn|
    + 8 u (A + T) + (8 u + 7 u_p) T, with T the folded bias when the BN's parameters are not given."""
    terms = np.array([[1.0, 2.0]], np.float32)
    ref = np.array([[0.5, -1.0]], np.float32)
    tol = layer_tolerance(terms, ref, np.array([0.25, 0.0]), 4, "float32", axis=1)
    assert 2 * LAMBDA * 2 == 40
    np.testing.assert_allclose(tol, [[(40 + 1) * U + 2 * U * 0.5 + 8 * U * 1.25 + 15 * U * 0.25,
                                      (40 + 1) * U * 2 + 2 * U * 1.0 + 8 * U * 2]])


def test_layer_tolerance_charges_the_rounding_of_what_a_cancelling_shift_is_made_of():
    """PP-OCRv3's detector, 'Conv_44' channel 284: β = -0.9533, s μ = -0.9541, so b' = 0.0008; a peer that
    computes b' in float32 rounds numbers of size 0.95 (8e-9 off), which 7 u T covers and u |b'| does not."""
    beta, s_mu, s = -0.9533, -0.9541, 1.25
    y = np.array([[0.01], [-0.02]])
    ref = s * y + (beta - s_mu)
    t = np.array([abs(beta) + abs(s_mu)])
    tol = layer_tolerance(np.zeros_like(y), ref, np.array([beta - s_mu]), 1, "float32", 1, source=y,
                          scale=np.array([s]), terms=t)
    np.testing.assert_allclose(tol, 2 * U * np.abs(ref) + 8 * U * s * np.abs(y) + 15 * U * t)
    peer_bias = np.float32(np.float32(beta) - np.float32(s_mu))  # b' as a float32 folder computes it
    assert abs(float(peer_bias) - (beta - s_mu)) > 4 * U * abs(beta - s_mu)  # the old bound's term misses it
    assert abs(float(peer_bias) - (beta - s_mu)) < tol.min()
    # without the BN's parameters, they are read off y and bn: an exact affine map
    ys = np.array([[0.0], [1.0], [-2.0]])
    scale, shift = bn_step(ys, 3 * ys - 5, axis=1)
    assert scale == pytest.approx([3.0]) and shift == pytest.approx([5.0])


def test_layer_tolerance_in_float16_storage_charges_u16_for_each_weight_and_the_bias_terms():
    """Weights and bias stored as float16, computed in float32: u_p = 2^-11 on A and on 7 T."""
    u16 = 2.0**-11
    a, ref, y = np.array([[3.0]]), np.array([[0.5]]), np.array([[0.4]])
    plain = layer_tolerance(a, ref, None, 9, "float32", 1, source=y, scale=np.array([1.0]), terms=np.array([2.0]))
    stored = layer_tolerance(a, ref, None, 9, "float32", 1, source=y, scale=np.array([1.0]), terms=np.array([2.0]),
                             stored="float16")
    np.testing.assert_allclose(stored - plain, (u16 - U) * 3.0 + 7 * (u16 - U) * 2.0)
    assert layer_tolerance(a, ref, None, 9, "float16", 1, stored="float32")[0, 0] > stored[0, 0]  # never below u


def test_non_finite_values_have_no_tolerance():
    tol = layer_tolerance(np.array([[np.inf, 1.0]]), np.array([[np.nan, 1.0]]), None, 1, "float32", 1)
    assert tol[0, 0] == 0 and tol[0, 1] > 0


def test_abs_diff_treats_matching_non_finite_values_as_equal():
    ref = np.array([1.0, np.nan, np.inf, 2.0])
    assert list(abs_diff(ref, np.array([1.0, np.nan, np.inf, 2.5]))) == [0.0, 0.0, 0.0, 0.5]
    assert np.isinf(abs_diff(ref, np.array([1.0, 0.0, np.inf, 2.0]))).sum() == 1
    assert abs_diff(np.float32([1.0]), np.float32([1.5])).dtype == np.float32  # float32 stays float32


def test_channel_stats_over_two_batches_channels_first():
    stats = ChannelStats(2)
    # (batch, channel, pixel): channel 0 is constant, channel 1 varies; the second batch moves channel 1 most
    ref1 = np.array([[[1.0, 1.0], [0.0, 2.0]]])
    ref2 = np.array([[[1.0, 1.0], [-3.0, 1.0]]])
    tol = np.full((1, 2, 2), 0.1)
    stats.add(ref1, ref1 + np.array([[[0.0, 0.05], [0.0, 0.0]]]), 1, tol)
    stats.add(ref2, ref2 + np.array([[[0.0, 0.0], [0.3, 0.0]]]), 1, tol * 2)
    np.testing.assert_allclose(stats.diff, [0.05, 0.3])
    np.testing.assert_allclose(stats.peak, [1.0, 3.0])
    np.testing.assert_allclose(stats.ratio, [0.5, 1.5])
    np.testing.assert_allclose(stats.tol_at_ratio, [0.1, 0.2])
    assert list(stats.varies()) == [False, True]
    assert stats.relative == pytest.approx([0.05, 0.1])
    assert stats.mean_abs_diff == pytest.approx(0.35 / 8)


def test_a_folded_layer_fails_past_its_tolerance_and_names_its_worst_channel():
    stats = ChannelStats(2)
    ref = np.array([[0.0, 1.0], [2.0, -1.0]])
    stats.add(ref, ref + [[0.0, 0.0], [0.0, 0.02]], 1, np.full((2, 2), 0.01))
    check = judge_layer("conv", "bn", "bn", stats, np.zeros(2, bool))
    assert not check.passed and check.worst_channel == 1 and check.margin == pytest.approx(2.0)
    assert check.atol == pytest.approx(0.01) and check.exercised == 2 and check.not_exercised == []


def test_a_channel_its_inputs_leave_constant_is_not_exercised_unless_its_kernel_is_zero():
    stats = ChannelStats(3)
    ref = np.array([[0.5, 1.0, 0.25], [0.5, 2.0, 0.25]])  # channels 0 and 2 constant
    stats.add(ref, ref, 1, np.full((2, 3), 1e-3))
    check = judge_layer("conv", "bn", "bn", stats, np.array([False, False, True]))  # channel 2: all-zero kernel
    assert check.passed and check.not_exercised == [0] and check.exercised == 1 and check.conclusive
    quiet = judge_layer("conv", "bn", "bn", stats_of(np.array([[0.5], [0.5]])), np.zeros(1, bool))
    assert quiet.passed and not quiet.conclusive and verdict([quiet]) == INCONCLUSIVE
    zero = judge_layer("conv", "bn", "bn", stats_of(np.array([[0.5], [0.5]])), np.ones(1, bool))
    assert zero.conclusive and verdict([zero]) == PASS  # nothing to get wrong but its bias, which was checked


def stats_of(ref: np.ndarray) -> ChannelStats:
    stats = ChannelStats(ref.shape[1])
    stats.add(ref, ref, 1, np.full(ref.shape, 1e-3))
    return stats


def test_a_tensor_budget_is_what_the_nudge_moves_it_plus_its_floor():
    stats = ChannelStats(3)
    ref = np.array([[1.0, 10.0, 4.0]])
    stats.add(ref, ref + [[1e-6, 0.0, 2e-5]], 1)
    stats.add_nudged(ref + [[1e-6, 1e-5, 0.0]], ref, 1)
    # m / p per channel: 1e-6, 1e-6, 0 -> median 1e-6; channel 2, which the nudge missed, gets 1e-6 * 4
    budget = tensor_budget(stats, "float32")
    want = BUDGET * np.array([1e-6, 1e-5, 4e-6]) + FLOOR * U * np.array([1.0, 10.0, 4.0])
    np.testing.assert_allclose(budget, want)
    check = judge_tensor("out", "out", "output", stats, "float32")
    assert check.passed is bool(2e-5 <= want[2]) and check.worst_channel == 2
    assert judge_tensor("out", "out", "output", stats, "float32", atol=1e-5).passed is False  # the user's atol


def test_nudge_sizes_by_rule_three():
    rng = np.random.default_rng(0)
    stats = ChannelStats(2)
    stats.add(np.zeros((1, 2)), np.array([[0.0, 3e-6]]), 1, np.ones((1, 2)), terms=np.array([[1.0, 2.0]]))
    rho = nudge_rho(stats, 9, "float32", 2)
    np.testing.assert_allclose(rho, [NUDGE * 3 * U, NUDGE * 3 * 3e-6 / 2.0])
    factors = nudge_factors(np.full((3, 2), 0.5), np.zeros((3, 2)), rng)
    assert set(np.unique(factors)) <= {0.5, 1.5}
    moved = nudge_bias(np.array([1.0, 0.0]), stats, "float32", 2, rng) - np.array([1.0, 0.0])
    np.testing.assert_allclose(np.abs(moved), [NUDGE * U * 1.0, NUDGE * 3e-6])
    assert nudge_bias(None, stats, "float32", 2, rng) is None


def test_as_channels_keeps_the_layout_and_gives_vectors_one_channel():
    a, axis = as_channels(np.zeros((2, 3, 4), np.float16), 1)
    assert a.dtype == np.float32 and axis == 1 and a.shape == (2, 3, 4)
    v, axis = as_channels(np.arange(5), -1)
    assert v.shape == (5, 1) and axis == 1 and v.dtype == np.float64


def test_verdict_fails_on_any_failure_first():
    stats = stats_of(np.array([[0.5], [0.5]]))
    quiet = judge_layer("a", "bn", "bn", stats, np.zeros(1, bool))
    failing = judge_tensor("b", "b", "output", stats_with_diff(), "float32", atol=0.0)
    assert verdict([quiet]) == INCONCLUSIVE and verdict([quiet, failing]) == "fail"


def stats_with_diff() -> ChannelStats:
    stats = ChannelStats(1)
    stats.add(np.array([[1.0]]), np.array([[2.0]]), 1)
    return stats


def test_synthetic_gain_by_hand():
    """Rows |w|_2 = 1 and 1e-4 beside shifts of size T = 1 and 2: REACH u T / |w|_2 = 4000 * 2^-24 * 2 / 1e-4
    for the tiny row; at least 1; a float16 batch no further than 1000 / max |w|_1."""
    rows = np.array([[0.6, 0.8], [1e-4, 0.0], [0.0, 0.0]])
    gain = synthetic_gain(rows, np.array([1.0, 2.0, 50.0]), "float32")
    assert gain == pytest.approx(4000 * U * 2 / 1e-4)
    assert synthetic_gain(rows[:1], np.array([1.0]), "float32") == 1.0
    assert synthetic_gain(rows, np.array([1.0, 2.0, 50.0]), "float16") == pytest.approx(1000 / 1.4)
    assert synthetic_gain(rows, np.array([1.0, 2.0, 50.0]), "float32", stored="float16") > gain  # u_p counts


def test_merged_channel_stats_are_both_batches_together():
    recorded, synthetic = ChannelStats(2), ChannelStats(2)
    ref = np.array([[1.0, 2.0], [1.0, 3.0]])
    recorded.add(ref, ref + np.array([0.0, 1e-7]), 1, np.full(ref.shape, 1e-6))
    synthetic.add(10 * ref - 4, 10 * ref - 4 + np.array([3e-6, 0.0]), 1, np.full(ref.shape, 1e-6))
    both = recorded.merged(synthetic)
    assert list(recorded.varies()) == [False, True] and list(both.varies()) == [True, True]
    np.testing.assert_allclose(both.ratio, [3.0, 0.1], rtol=1e-6)
    assert both.count == 8 and both.peak[1] == pytest.approx(26.0) and both.low[0] == pytest.approx(1.0)
    check = judge_layer("conv", "bn", "bn", both, np.zeros(2, bool), recorded.varies())
    assert not check.passed and check.worst_channel == 0 and check.synthetic == [0]
    assert check.mode == "own and synthetic inputs"
