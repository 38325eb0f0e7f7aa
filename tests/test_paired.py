"""The paired statistics of rating/paired.py against hand-computed cases and well-kept libraries."""

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from arena_eval.rating import compare_battles, compute_leaderboard, score_from_elo
from arena_eval.rating.leaderboard import category_leaderboard_with_rounds, leaderboard_with_rounds
from arena_eval.rating.paired import (
    RatingRounds,
    all_pairs,
    bootstrap_p_value,
    compare_pairs,
    holm,
    paired_differences,
    question_counts,
    question_points,
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


# --- compare: a hand-computed case of three contestants ------------------------------------------------------

def _three_contestants() -> pd.DataFrame:
    """base, A and B on four questions, two games each against base (A's and B's points per question by hand)."""
    games = {  # question → A's two games, B's two games: (winner, weight)
        "q1": [("model_b", 1), ("model_b", 1), ("model_b", 1), ("model_a", 1)],  # A 1.0, B 0.5
        "q2": [("tie", 1), ("model_b", 1), ("tie", 1), ("model_b", 1)],  # A 0.75, B 0.75
        "q3": [("model_a", 1), ("model_a", 1), ("model_b", 3), ("model_a", 1)],  # A 0, B 3/4
        "q4": [("model_b", 1), ("tie", 1), ("model_a", 1), ("model_a", 1)],  # A 0.75, B 0
    }
    rows = [(q, "base", "A" if i < 2 else "B", w, n) for q, gs in games.items() for i, (w, n) in enumerate(gs)]
    # one of A's games stored the other way round (A as model_a): the points follow the model, not the column
    rows[0] = ("q1", "A", "base", "model_a", 1)
    return pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner", "weight"])


def test_question_points_and_counts_by_hand():
    points = question_points(_three_contestants(), "base")
    assert points.columns.tolist() == ["A", "B", "base"]
    assert points["A"].tolist() == [1.0, 0.75, 0.0, 0.75]
    assert points["B"].tolist() == [0.5, 0.75, 0.75, 0.0]
    assert points["base"].tolist() == [0.5] * 4
    counts = question_counts(points, [("A", "B"), ("A", "base"), ("B", "base")])
    assert counts[["questions", "better", "same", "worse"]].values.tolist() == [[4, 2, 1, 1], [4, 3, 0, 1],
                                                                                 [4, 2, 1, 1]]
    assert counts.p_sign.tolist() == pytest.approx([binomtest(2, 3).pvalue, binomtest(3, 4).pvalue,
                                                    binomtest(2, 3).pvalue])


def test_compare_of_three_contestants_by_hand():
    # Point scores are the weighted win rates: A (2 + 1.5 + 0 + 1.5) / 8 = 62.5, B (1 + 1.5 + 3 + 0) / 10 = 55.
    elo = lambda s: 1000 + 400 * np.log10(s / (100 - s))  # noqa: E731
    models = ["A", "B", "base"]
    # Nine rounds, Elo − 1000: A − base never ≤ 0, B − base once, A − B three times.
    a = np.array([60, 70, 80, 90, 100, 110, 120, 130, 140.0])
    b = np.array([-10, 80, 90, 100, 50, 60, 70, 80, 90.0])
    rated = RatingRounds(models, np.array([elo(62.5), elo(55.0), 1000.0]), 1000 + np.stack([a, b, 0 * a], 1))
    table = compare_pairs(rated, question_points(_three_contestants(), "base"), all_pairs(models), family=True)
    assert table[["a", "b"]].values.tolist() == [["A", "B"], ["A", "base"], ["B", "base"]]
    assert table.difference.tolist() == pytest.approx([7.5, 12.5, 5.0])
    # p = 2 · (k + 1) / (n + 1) with k the rounds on the losing side: 3, 0, 1 of 9.
    assert table.p_value.tolist() == pytest.approx([0.8, 0.2, 0.4])
    # Holm: 0.2 · 3 = 0.6, 0.4 · 2 = 0.8, 0.8 · 1 = 0.8.
    assert table.p_holm.tolist() == pytest.approx([0.8, 0.6, 0.8])
    # A − B in Elo, sorted: −10 −10 −10 50 50 50 50 50 70; 2.5th percentile at 0.2 of the way from the first to
    # the second (−10), 97.5th at 7.8 (50 + 0.8 · 20 = 66).
    first = table.iloc[0]
    assert (first.elo_ci_low, first.elo_ci_high) == pytest.approx((-10.0, 66.0))
    assert (first.questions, first.better, first.same, first.worse, first.rounds) == (4, 2, 1, 1, 9)


def test_compare_battles_end_to_end_on_the_hand_computed_case():
    table = compare_battles(_three_contestants(), "base", [("A", "B")], rounds=200, seed=3)
    row = table.iloc[0]
    assert row.difference == pytest.approx(7.5, abs=1e-3)  # the fit is the win rate, up to the ridge
    assert (row.better, row.same, row.worse) == (2, 1, 1)
    assert row.ci_low <= row.difference <= row.ci_high and 0 < row.p_value <= 1
    every = compare_battles(_three_contestants(), "base", rounds=200, seed=3)
    assert every[["a", "b"]].values.tolist() == [["A", "B"], ["A", "base"], ["B", "base"]]  # best first
    assert every.p_holm.tolist() == pytest.approx(holm(every.p_value).tolist())


@pytest.mark.parametrize("pairs, message", [
    ([("A", "nobody")], "unknown contestant 'nobody'; contestants: A, B, base"),
    ([("A", "A")], "'A' compared with itself"),
])
def test_compare_battles_refuses_what_cannot_be_compared(pairs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        compare_battles(_three_contestants(), "base", pairs, rounds=20)


def test_compare_needs_two_questions_in_common():
    battles = pd.concat([_three_contestants(), pd.DataFrame(
        [("q9", "base", "C", "model_b", 1), ("q9", "base", "C", "tie", 1)],
        columns=["question_id", "model_a", "model_b", "winner", "weight"])])
    with pytest.raises(ValueError, match="fewer than 2 questions in common.*A and C: 0"):
        compare_battles(battles, "base", [("A", "C")], rounds=20)


# --- ranks on the leaderboard --------------------------------------------------------------------------------

def test_leaderboard_ranks_come_from_the_same_rounds():
    board, rated = leaderboard_with_rounds(_three_contestants(), "base", rounds=300, seed=5)
    assert board.model.tolist() == ["A", "B", "base"] and board["rank"].tolist() == [1, 2, 3]
    assert (board.rank_low <= board["rank"]).all() and (board["rank"] <= board.rank_high).all()
    assert rated.rounds.shape == (300, 3)
    low, high = rank_intervals(rated.elo, rated.rounds)[1:]
    order = [rated.models.index(m) for m in board.model]
    assert board.rank_low.tolist() == low[order].tolist() and board.rank_high.tolist() == high[order].tolist()
    assert board.tied_with_best.tolist() == tied_with_best(rated.models, rated.elo, rated.rounds)[order].tolist()
    assert compute_leaderboard(_three_contestants(), "base", rounds=0)["rank"].tolist() == [1, 2, 3]


def test_category_leaderboard_compares_on_combined_rounds():
    battles = _three_contestants()
    other = battles.assign(question_id=battles.question_id + "b", model_a=battles.model_a.replace("base", "B"),
                           model_b=battles.model_b.replace({"base": "B", "B": "base"}))
    frame = pd.concat([battles.assign(category="x"), other.assign(category="y")], ignore_index=True)
    board, rated = category_leaderboard_with_rounds(frame, {"x": "base", "y": "B"}, rounds=200, seed=1)
    assert np.isfinite(rated.rounds).all() and rated.rounds.shape == (200, 3)
    # Each round's Elo is the round's weighted mean score on the Elo scale: its percentiles are the board's.
    scores = score_from_elo(rated.rounds)
    for row in board.itertuples():
        i = rated.models.index(row.model)
        assert np.percentile(scores[:, i], [2.5, 97.5]) == pytest.approx([row.ci_low, row.ci_high])
        assert score_from_elo(rated.elo[i]) == pytest.approx(row.score)
    assert set(board["rank"]) <= {1, 2, 3}


# --- the known-truth simulation, a few seeds (bench/bench_paired.py runs 200) ---------------------------------

def test_simulation_quick_paired_test_finds_three_points_and_rank_intervals_cover():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import bench_paired as sim

    found = false = 0
    for seed in range(8):
        _, table, _ = sim.experiment({"A": 53.0, "B": 50.0}, 500, 100, seed, pairs=[("A", "B")])
        found += table.p_value.iloc[0] < 0.05
        _, table, _ = sim.experiment({"A": 50.0, "B": 50.0}, 500, 100, 100 + seed, pairs=[("A", "B")])
        false += table.p_value.iloc[0] < 0.05
    assert found >= 6 and false <= 2  # 200 seeds: ≥ 80 % and ≤ 5 % (docs/benchmarks.md)
    truth = sorted({"base": 50.0, **sim.RANK_SCORES}.items(), key=lambda x: -x[1])
    true_rank = {m: i + 1 for i, (m, _) in enumerate(truth)}
    board, _, _ = sim.experiment(sim.RANK_SCORES, 500, 200, 7)
    inside = [r.rank_low <= true_rank[r.model] <= r.rank_high for r in board.itertuples()]
    assert sum(inside) >= 6


def test_sign_test_equals_scipy_binomtest_over_a_grid():
    for better in range(0, 41, 3):
        for worse in range(0, 41, 2):
            expected = binomtest(better, better + worse, 0.5).pvalue if better + worse else 1.0
            assert sign_test(better, worse) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_games_between_contestants_do_not_count_as_points_against_the_baseline():
    # pairing: all adds games of A against B; the question's points stay each one's against the baseline
    between = pd.DataFrame([("q1", "A", "B", "model_b", 1), ("q3", "B", "A", "model_a", 3)],
                           columns=["question_id", "model_a", "model_b", "winner", "weight"])
    battles = pd.concat([_three_contestants(), between], ignore_index=True)
    assert question_points(battles, "base").equals(question_points(_three_contestants(), "base"))
    table = compare_battles(battles, "base", [("A", "B")], rounds=100, seed=1)
    assert (table.better.iloc[0], table.same.iloc[0], table.worse.iloc[0]) == (2, 1, 1)
