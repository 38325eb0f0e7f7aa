"""The paired statistics of rating/paired.py against hand-computed cases and well-kept libraries."""

import numpy as np
import pytest
from scipy.stats import binomtest

from arena_eval.rating.paired import (
    bootstrap_p_value,
    holm,
    paired_differences,
    rank_intervals,
    ranks,
    sign_test,
    tied_with_best,
)


def test_holm_hand_computed_and_against_statsmodels():
    p = [0.01, 0.04, 0.03, 0.005]
    # Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → running max 0.06.
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    rng = np.random.default_rng(0)
    for size in (1, 2, 5, 40):
        values = rng.uniform(0, 0.2, size)
        assert holm(values) == pytest.approx(multipletests(values, method="holm")[1], abs=1e-12)


def test_holm_leaves_nan_out_of_the_family():
    adjusted = holm([0.01, np.nan, 0.02])
    assert np.isnan(adjusted[1])
    assert adjusted[[0, 2]] == pytest.approx([0.02, 0.02])


def test_sign_test_hand_computed_and_against_scipy():
    # 8 better, 2 worse: P(X >= 8) = (45 + 10 + 1) / 1024, doubled.
    assert sign_test(8, 2) == pytest.approx(2 * 56 / 1024)
    assert sign_test(30, 12) == pytest.approx(binomtest(30, 42, 0.5).pvalue)
    assert sign_test(0, 0) == 1.0


def test_bootstrap_p_value_counts_both_tails():
    assert bootstrap_p_value(np.array([1.0] * 99)) == pytest.approx(2 / 100)
    # 3 of 9 rounds at or below 0: 2 · (3 + 1) / 10.
    assert bootstrap_p_value(np.array([-1, 0, -2, 1, 2, 3, 4, 5, 6.0])) == pytest.approx(0.8)
    assert np.isnan(bootstrap_p_value(np.array([np.nan])))


def test_paired_differences_of_a_hand_made_set_of_rounds():
    models = ["base", "a", "b"]
    elo = np.array([1000.0, 1100.0, 1050.0])
    rounds = np.array([[1000.0, 1100 + k, 1050 + k] for k in range(-5, 6)])  # a − b is 50 in every round
    row = paired_differences(models, elo, rounds, [("a", "b")]).iloc[0]
    assert row.elo_difference == 50 and row.elo_ci_low == pytest.approx(50) and row.elo_ci_high == pytest.approx(50)
    assert row.p_value == pytest.approx(2 / 12)
    score = lambda e: 100 / (1 + 10 ** ((1000 - e) / 400))  # noqa: E731
    assert row.difference == pytest.approx(score(1100) - score(1050))


def test_ranks_share_the_better_rank_and_skip_nan():
    assert ranks(np.array([50.0, 70, 70, np.nan, 10])).tolist()[:3] == [3, 1, 1]
    assert np.isnan(ranks(np.array([np.nan, 1.0]))[0])
    rank, low, high = rank_intervals(np.array([3.0, 2, 1]), np.array([[3.0, 2, 1], [2, 3, 1], [3, 2, 1]]))
    assert rank.tolist() == [1, 2, 3] and low.tolist() == [1, 1, 3] and high.tolist() == [2, 2, 3]


def test_tied_with_best_is_holm_corrected():
    rng = np.random.default_rng(1)
    models = ["base", "top", "close", "far"]
    truth = np.array([1000.0, 1100, 1098, 900])
    rounds = truth + rng.normal(0, 20, (1000, 4)) * [0, 1, 1, 1]
    assert tied_with_best(models, truth, rounds).tolist() == [False, True, True, False]
    assert tied_with_best(models, truth, np.empty((0, 4))).tolist() == [True, True, True, True]
