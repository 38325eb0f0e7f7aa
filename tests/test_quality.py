"""Benchmark quality (arena_eval.quality): every figure on a hand-computed case, checks against scipy and numpy,
the reference reader, question diagnostics and pruning on scripted truths. Hand computations are in the
comments; docs/quality.md works the same example."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau, spearmanr

from arena_eval.errors import ConfigError
from arena_eval.quality import (
    benchmark_quality,
    bootstrap_scores,
    prune_questions,
    question_diagnostics,
    read_reference,
)
from arena_eval.rating import compute_leaderboard

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "arena-hard-v0.1"
PUBLISHED = SHARED / "published_leaderboard_20240731.csv"

# Four bootstrap rounds of three contestants and the baseline, written by hand. With 4 rounds numpy's percentile
# sits at position 0.025·3 = 0.075 (2.5 %) and 2.925 (97.5 %) of the sorted values:
#   A 58 60 62 64 → [58 + 0.075·2, 62 + 0.925·2] = [58.15, 63.85]
#   B 48 49 51 53 → [48.075, 52.85]
#   C 40 41 44 49 → [40.075, 48.625]
#   base 50 always → [50, 50]
BOOT = pd.DataFrame({"A": [60, 62, 58, 64], "B": [51, 48, 53, 49], "C": [40, 49, 41, 44], "base": [50] * 4},
                    dtype=float)
POINT = pd.Series({"A": 61.0, "B": 50.2, "C": 43.5, "base": 50.0})
# The reference puts C above the baseline, confidently; we put the baseline above C, confidently.
REFERENCE = pd.DataFrame({"model": ["A", "B", "C", "base"], "score": [80.0, 60.0, 55.0, 50.0],
                          "ci_low": [78.0, 58.0, 53.0, 50.0], "ci_high": [82.0, 62.0, 57.0, 50.0]})


def test_intervals_and_separability_on_a_hand_computed_case():
    report = benchmark_quality(BOOT, POINT)
    intervals = report.intervals.set_index("model")
    assert list(intervals.index) == ["A", "B", "base", "C"]  # best point score first
    assert intervals.loc["A", ["ci_low", "ci_high"]].tolist() == pytest.approx([58.15, 63.85])
    assert intervals.loc["B", ["ci_low", "ci_high"]].tolist() == pytest.approx([48.075, 52.85])
    assert intervals.loc["C", ["ci_low", "ci_high"]].tolist() == pytest.approx([40.075, 48.625])
    assert intervals.loc["base", ["ci_low", "ci_high"]].tolist() == [50.0, 50.0]
    # Separated: A–B, A–C, A–base (58.15 above every other high end), C–base (48.625 < 50).
    # Overlapping: B–C (48.075 < 48.625) and B–base (50 inside B's interval). 4 of 6 pairs.
    assert (report.n_models, report.pairs, report.separated_pairs) == (4, 6, 4)
    assert report.separability == pytest.approx(4 / 6)
    plain = report.to_dict()
    assert plain["separability"] == pytest.approx(4 / 6) and plain["spearman"] is None and plain["matched"] is None
    assert plain["intervals"][0] == {"model": "A", "score": 61.0, "ci_low": pytest.approx(58.15),
                                     "ci_high": pytest.approx(63.85)}


def test_touching_intervals_overlap():
    # x is 40 in every round: [40, 40]. y's sorted rounds 40 40 40 60 give [40, 40 + 0.925·20] = [40, 58.5]: its
    # low end touches x's high end, which counts as overlapping. z at 58.6 clears y's 58.5 by a hair.
    boot = pd.DataFrame({"x": [40.0] * 4, "y": [40.0, 60.0, 40.0, 40.0], "z": [58.6] * 4})
    report = benchmark_quality(boot, pd.Series({"x": 40.0, "y": 45.0, "z": 58.6}))
    assert report.intervals.set_index("model").loc["y", "ci_high"] == pytest.approx(58.5)
    assert report.separated_pairs == 2  # x–z and y–z; x–y touch


def test_reference_figures_on_a_hand_computed_case():
    report = benchmark_quality(BOOT, POINT, REFERENCE)
    assert report.matched == ("A", "B", "C", "base") and report.only_ours == () and report.only_reference == ()
    # Ranks (ascending): ours C1 base2 B3 A4, the reference's base1 C2 B3 A4: Σd² = 2, rho = 1 − 6·2/(4·15) = 0.8;
    # one discordant pair of six (C–base): tau = (5 − 1)/6.
    assert report.spearman == pytest.approx(0.8)
    assert report.kendall == pytest.approx(4 / 6)
    # Per round: r0 (A60 B51 C40 base50) rho 0.8 tau 4/6; r1 (A62 B48 C49 base50) ranks B1 C2 base3 A4, Σd² = 8,
    # rho 0.2, tau 0; r2 as r0; r3 (A64 B49 C44 base50) ranks C1 B2 base3 A4, Σd² = 6, rho 0.4, tau 2/6.
    # rho sorted 0.2 0.4 0.8 0.8 → [0.2 + 0.075·0.2, 0.8]; tau sorted 0 1/3 2/3 2/3 → [0.075/3, 2/3].
    assert (report.spearman_ci_low, report.spearman_ci_high) == pytest.approx((0.215, 0.8))
    assert (report.kendall_ci_low, report.kendall_ci_high) == pytest.approx((0.025, 2 / 3))
    assert report.correlation_rounds == 4
    # The reference separates all six pairs by its intervals. Ours: A–B, A–C, A–base +1; B–C, B–base 0 (overlap);
    # C–base −1 (we put the baseline above C). (3 − 1)/6.
    assert report.reference_separated_pairs == 6
    assert report.agreement_with_confidence == pytest.approx(2 / 6)
    # P(higher in the reference scores above): A over anyone 1; B over C 3/4 (round 1: 48 < 49); B over base 2/4;
    # C over base 0/4. Brier: (0 + 0 + 0 + 0.25² + 0.5² + 1²)/6.
    assert report.brier_pairs == 6
    assert report.pair_brier == pytest.approx((0.0625 + 0.25 + 1.0) / 6)


def test_agreement_counts_only_the_pairs_the_reference_separates():
    # C's reference interval [49, 61] now overlaps B's [58, 62] and the baseline's [50, 50]: those two pairs leave
    # the average, and so does our one confident disagreement (C–base). Left: A–B, A–C, A–base +1, B–base 0.
    wide = REFERENCE.assign(ci_low=[78.0, 58.0, 49.0, 50.0], ci_high=[82.0, 62.0, 61.0, 50.0])
    report = benchmark_quality(BOOT, POINT, wide)
    assert report.reference_separated_pairs == 4
    assert report.agreement_with_confidence == pytest.approx(3 / 4)
    # Without intervals every pair of different scores counts: all six again.
    bare = benchmark_quality(BOOT, POINT, REFERENCE[["model", "score"]])
    assert bare.reference_separated_pairs == 6
    assert bare.agreement_with_confidence == pytest.approx(2 / 6)
    # The Brier score does not depend on the reference's intervals.
    assert bare.pair_brier == report.pair_brier == pytest.approx((0.0625 + 0.25 + 1.0) / 6)


def test_a_reversed_reference_scores_minus_one_and_an_identical_one_plus_one():
    reversed_ = pd.DataFrame({"model": POINT.index, "score": 100.0 - POINT.to_numpy()})
    report = benchmark_quality(BOOT, POINT, reversed_)
    assert report.spearman == pytest.approx(-1.0) and report.kendall == pytest.approx(-1.0)
    # Our four separated pairs are all the wrong way round; the two overlapping ones count 0.
    assert report.agreement_with_confidence == pytest.approx(-4 / 6)
    assert report.agreement_with_confidence < 0
    assert report.pair_brier > 0.5

    ours = benchmark_quality(BOOT, POINT).intervals
    identical = benchmark_quality(BOOT, POINT, ours)
    assert identical.spearman == pytest.approx(1.0) and identical.kendall == pytest.approx(1.0)
    # Its intervals are ours: it separates exactly the pairs we separate, the same way.
    assert identical.reference_separated_pairs == 4 and identical.agreement_with_confidence == pytest.approx(1.0)
    # Order A > B > base > C; only B over C (3/4) and B over base (2/4) are uncertain.
    assert identical.pair_brier == pytest.approx((0.0625 + 0.25) / 6)


def test_correlations_match_scipy_round_by_round():
    rng = np.random.default_rng(7)
    models = [f"m{i}" for i in range(7)]
    boot = pd.DataFrame(np.round(rng.normal(50, 10, (60, 7))), columns=models)  # rounded: ties within rounds
    point = boot.mean().round()
    reference = pd.DataFrame({"model": models + ["extra"], "score": [3, 1, 4, 1, 5, 9, 2, 6]})
    report = benchmark_quality(boot, point, reference)
    ref = np.array([3, 1, 4, 1, 5, 9, 2])
    assert report.spearman == pytest.approx(spearmanr(point.to_numpy(), ref).statistic)
    assert report.kendall == pytest.approx(kendalltau(point.to_numpy(), ref).statistic)
    rhos = [spearmanr(row, ref).statistic for row in boot.to_numpy()]
    taus = [kendalltau(row, ref).statistic for row in boot.to_numpy()]
    assert (report.spearman_ci_low, report.spearman_ci_high) == pytest.approx(tuple(np.percentile(rhos, [2.5, 97.5])))
    assert (report.kendall_ci_low, report.kendall_ci_high) == pytest.approx(tuple(np.percentile(taus, [2.5, 97.5])))
    assert report.only_reference == ("extra",)
    assert report.to_dict()["unmatched"] == {"ours": [], "reference": ["extra"]}


def test_intervals_are_the_leaderboards():
    rng = np.random.default_rng(3)
    rows = [(f"q{q}", "base", f"m{m}", rng.choice(["model_a", "model_b", "tie"], p=[0.5 - 0.1 * m, 0.4 + 0.1 * m, 0.1]),
             float(rng.choice([1, 3]))) for q in range(60) for m in range(3) for _ in range(2)]
    battles = pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner", "weight"])
    board = compute_leaderboard(battles, "base", rounds=50, seed=5).set_index("model")
    boot = bootstrap_scores(battles, "base", rounds=50, seed=5)
    report = benchmark_quality(boot, board["score"])
    ours = report.intervals.set_index("model").loc[board.index]
    np.testing.assert_allclose(ours[["ci_low", "ci_high"]].to_numpy(), board[["ci_low", "ci_high"]].to_numpy())


def test_benchmark_quality_errors():
    with pytest.raises(ValueError, match="shares 2 model.*at least 3"):
        benchmark_quality(BOOT, POINT, pd.DataFrame({"model": ["A", "B", "Z"], "score": [1.0, 2.0, 3.0]}))
    with pytest.raises(ValueError, match="no rounds"):
        benchmark_quality(BOOT.iloc[:0], POINT)
    with pytest.raises(ValueError, match="no column for model.*D"):
        benchmark_quality(BOOT, pd.concat([POINT, pd.Series({"D": 40.0})]))
    with pytest.raises(ValueError, match="more than once"):
        benchmark_quality(BOOT, POINT, pd.concat([REFERENCE, REFERENCE.iloc[:1]]))
    with pytest.raises(ValueError, match="missing column"):
        benchmark_quality(BOOT, POINT, REFERENCE.rename(columns={"score": "elo"}))


# --- the reference reader -------------------------------------------------------------------------------

def test_read_reference_accepts_a_bom_and_ignores_extra_columns(tmp_path):
    path = tmp_path / "ref.csv"
    path.write_bytes("\ufeffModel , score,ci_low,ci_high,notes\nA,80,78,82,x\n B ,60,,,y\nbase,50,50,50,\n"
                     .encode("utf-8"))
    frame = read_reference(path)
    assert list(frame.columns) == ["model", "score", "ci_low", "ci_high"]
    assert frame["model"].tolist() == ["A", "B", "base"]
    assert frame["score"].tolist() == [80.0, 60.0, 50.0]
    assert frame.loc[0, ["ci_low", "ci_high"]].tolist() == [78.0, 82.0]
    assert frame.loc[1, ["ci_low", "ci_high"]].isna().all()  # an empty interval is no interval
    bare = tmp_path / "bare.csv"
    bare.write_text("model,score\nA,1\nB,2\n")
    assert read_reference(bare)[["ci_low", "ci_high"]].isna().all().all()


@pytest.mark.skipif(not PUBLISHED.exists(), reason="reference data ../shared/data is not present")
def test_read_reference_reads_arena_hards_published_leaderboard():
    frame = read_reference(PUBLISHED).set_index("model")
    assert len(frame) == 60
    assert frame.loc["gpt-4-turbo-2024-04-09"].tolist() == [82.63, 80.75, 84.6]  # rating_q025, rating_q975
    assert frame.loc["gpt-4-0314"].tolist() == [50.0, 50.0, 50.0]  # its baseline


@pytest.mark.parametrize("text, message", [
    ("name,score\nA,1\n", r"ref\.csv: no `model` column .*found: name, score"),
    ("model,elo\nA,1\n", r"ref\.csv: no `score` column"),
    ("model,score\nA,1\nB,high\n", r"ref\.csv:3: `score` of 'B' is 'high', not a number"),
    ("model,score\nA,\n", r"ref\.csv:2: `score` of 'A' is ''"),
    ("model,score\nA,1\nA,2\n", r"ref\.csv:3: model 'A' is listed twice"),
    ("model,score\n,1\n", r"ref\.csv:2: empty model name"),
    ("model,score,ci_low\nA,1,0\n", r"`ci_low` without `ci_high`"),
    ("model,score,rating_q975\nA,1,2\n", r"`rating_q975` without `rating_q025`"),
    ("model,score,ci_low,ci_high\nA,1,3,2\n", r"ref\.csv:2: the interval of 'A' runs backwards"),
    ("model,score\n", r"lists no models"),
    ("", r"is empty"),
])
def test_read_reference_errors_name_the_file_and_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "ref.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_reference(path)


def test_read_reference_of_a_missing_or_binary_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.csv: reference leaderboard not found"):
        read_reference(tmp_path / "nope.csv")
    path = tmp_path / "ref.csv"
    path.write_bytes(b"model,score\n\xff\xfe,1\n")
    with pytest.raises(ConfigError, match=r"ref\.csv: cannot read"):
        read_reference(path)


# --- question diagnostics -------------------------------------------------------------------------------

def games(question, contestant, *outcomes, baseline="base"):
    """Battle rows of `contestant` against the baseline; outcomes from the contestant's side: win, loss, tie."""
    winner = {"win": "model_b", "loss": "model_a", "tie": "tie"}
    return [(question, baseline, contestant, winner[o], 1.0) for o in outcomes]


def scripted_questions() -> pd.DataFrame:
    rows = []
    for m in ("m0", "m1", "m2", "m3"):
        rows += games("q1", m, "win", "win")  # everyone wins
        rows += games("q2", m, "loss", "loss")  # everyone loses
        rows += games("q6", m, "tie", "tie")  # everyone ties
        rows += games("q3", m, *(["win"] * 2 if m in ("m2", "m3") else ["loss"] * 2))
        rows += games("q4", m, *({"m3": ["win"] * 2, "m2": ["tie"] * 2}.get(m, ["loss"] * 2)))
        rows += games("q5", m, *(["loss"] * 2 if m == "m0" else ["win"] * 2))
    return pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner", "weight"])


def test_questions_that_do_not_separate_contestants_rank_least_useful():
    frame = question_diagnostics(scripted_questions())
    assert list(frame.columns) == ["question_id", "discrimination", "spread", "tie_rate", "games", "contestants"]
    assert set(frame["question_id"][:3]) == {"q1", "q2", "q6"}
    assert (frame["discrimination"][:3] == 0).all() and (frame["spread"][:3] == 0).all()
    assert set(frame["question_id"][3:]) == {"q3", "q4", "q5"} and (frame["discrimination"][3:] > 0).all()
    by_question = frame.set_index("question_id")
    # q3: win rates 0 0 1 1; rest scores (the other five questions, 10 games each) m0 3/10, m1 5/10, m2 6/10,
    # m3 7/10. dx = −.225 −.025 .075 .175, dy = −.5 −.5 .5 .5: slope .25/.0875 = 20/7; sd of 0 0 1 1 = 0.5.
    assert by_question.loc["q3", "discrimination"] == pytest.approx(20 / 7)
    assert by_question.loc["q3", "spread"] == pytest.approx(50.0)
    assert by_question["tie_rate"].to_dict() == {"q1": 0.0, "q2": 0.0, "q6": 1.0, "q3": 0.0, "q4": 0.25, "q5": 0.0}
    assert (by_question["games"] == 8).all() and (by_question["contestants"] == 4).all()
    # The baseline is found as the model in every battle; naming it changes nothing.
    pd.testing.assert_frame_equal(frame, question_diagnostics(scripted_questions(), baseline="base"))


def test_judge_disagreement_is_carried_per_question():
    frame = question_diagnostics(scripted_questions(), judgments_disagreement={"q3": 0.5, "q1": 0.0})
    by_question = frame.set_index("question_id")["judge_disagreement"]
    assert by_question["q3"] == 0.5 and by_question["q1"] == 0.0 and by_question.drop(["q1", "q3"]).isna().all()


def test_discrimination_is_the_least_squares_slope_on_the_rest_score():
    rng = np.random.default_rng(11)
    rows = []
    for q in range(12):
        for m in range(5):
            for _ in range(2):
                rows.append((f"q{q}", "base", f"m{m}", rng.choice(["model_a", "model_b", "tie"]),
                             float(rng.choice([1, 3]))))
    battles = pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner", "weight"])
    frame = question_diagnostics(battles).set_index("question_id")
    share = {"model_b": 1.0, "tie": 0.5, "model_a": 0.0}
    points = battles.assign(points=battles["winner"].map(share) * battles["weight"])
    table = points.groupby(["question_id", "model_b"])[["points", "weight"]].sum()
    for q in frame.index:
        mine = table.xs(q, level="question_id")
        rest = table.drop(q, level="question_id").groupby("model_b").sum()
        x = (rest["points"] / rest["weight"]).to_numpy()
        y = (mine["points"] / mine["weight"]).to_numpy()
        assert frame.loc[q, "discrimination"] == pytest.approx(np.polyfit(x, y, 1)[0])
        assert frame.loc[q, "spread"] == pytest.approx(100 * y.std())


# --- pruning --------------------------------------------------------------------------------------------

STRENGTHS = np.array([-2.4, -1.7, -1.0, -0.4, 0.4, 1.0, 1.7, 2.4])  # log-odds against the baseline


def synthetic_benchmark(n_questions=500, seed=0):
    """Eight contestants of known strengths, two games each per question against the baseline. A quarter of the
    questions ignore the strengths (coin flips around a difficulty); the rest follow them, each with its own
    discrimination in [0.5, 2.5]. 10 % ties; a decisive game weighs 3 three times in ten."""
    rng = np.random.default_rng(seed)
    discrimination = np.where(rng.random(n_questions) < 0.25, 0.0, rng.uniform(0.5, 2.5, n_questions))
    difficulty = rng.normal(0.0, 1.0, n_questions)
    k = len(STRENGTHS)
    q = np.repeat(np.arange(n_questions), 2 * k)
    c = np.tile(np.repeat(np.arange(k), 2), n_questions)
    p_win = 1.0 / (1.0 + np.exp(-(discrimination[q] * STRENGTHS[c] + difficulty[q])))
    tie = rng.random(len(q)) < 0.1
    won = ~tie & (rng.random(len(q)) < p_win)
    battles = pd.DataFrame({
        "question_id": [f"q{i:03d}" for i in q],
        "model_a": "base",
        "model_b": [f"m{i}" for i in c],
        "winner": np.where(tie, "tie", np.where(won, "model_b", "model_a")),
        "weight": np.where(~tie & (rng.random(len(q)) < 0.3), 3.0, 1.0),
    })
    return battles, discrimination


@pytest.mark.slow
def test_pruning_to_a_quarter_keeps_the_ranking_on_held_out_splits():
    battles, discrimination = synthetic_benchmark()
    result = prune_questions(battles, "base", 125)
    assert (result.size, result.n_questions, result.kept_fraction) == (125, 500, 0.25)
    assert len(result.question_ids) == len(set(result.question_ids)) == 125
    assert len(result.per_split) == 20 and (result.per_split["kept"] == 62).all()
    assert result.kendall_tau >= 0.9
    # Checked on games the choice did not see, a quarter of the questions separates nearly as many pairs as the
    # held-out half, and clearly more than a random quarter (0.78, 0.83 and 0.61 here).
    assert result.separability_held_out
    assert result.separability >= result.full_separability - 0.1
    assert result.separability >= result.random_separability + 0.1
    # The rule keeps questions that follow the strengths, not the coin flips.
    kept = [int(q[1:]) for q in result.question_ids]
    assert (discrimination[kept] > 0).mean() >= 0.95
    plain = result.to_dict()
    assert plain["question_ids"][0] == result.question_ids[0] and len(plain["per_split"]) == 20


@pytest.mark.slow  # a second or more on 2 cores
def test_pruning_is_deterministic_for_a_seed():
    battles, _ = synthetic_benchmark(n_questions=60, seed=1)
    first = prune_questions(battles, "base", 15, seed=3, splits=3, rounds=20)
    again = prune_questions(battles, "base", 15, seed=3, splits=3, rounds=20)
    assert first.question_ids == again.question_ids
    pd.testing.assert_frame_equal(first.per_split, again.per_split)
    assert first.to_dict() == again.to_dict()
    assert first.per_split["kendall_tau"].notna().all()
    other = prune_questions(battles, "base", 15, seed=4, splits=3, rounds=20)
    assert not other.per_split.equals(first.per_split)  # the seed draws the splits
    # The kept questions are the most discriminating ones (the seed only breaks ties).
    frame = question_diagnostics(battles).set_index("question_id")
    kept = frame.loc[list(first.question_ids), "discrimination"]
    assert kept.is_monotonic_decreasing
    assert kept.min() >= frame.drop(list(first.question_ids))["discrimination"].max()


@pytest.mark.parametrize("size, message", [
    (1, "too small: keep at least 2"), (0, "too small"), (60, "keeps every question: the battles hold 60"),
    (61, "keeps every question"), (2.5, "whole number"),
])
def test_pruning_refuses_sizes_that_keep_too_few_or_every_question(size, message):
    battles, _ = synthetic_benchmark(n_questions=60, seed=1)
    with pytest.raises(ValueError, match=message):
        prune_questions(battles, "base", size)


def test_pruning_refuses_an_unknown_baseline():
    battles, _ = synthetic_benchmark(n_questions=20, seed=1)
    with pytest.raises(ValueError, match="baseline 'gpt' has no battles"):
        prune_questions(battles, "gpt", 5)


def test_pruning_checks_separability_on_games_the_choice_did_not_see():
    battles, _ = synthetic_benchmark(n_questions=60, seed=2)
    assert prune_questions(battles, "base", 15, splits=2, rounds=20).separability_held_out
    # One game per question and contestant: nothing to hold out; the result says its separability is in-sample.
    single = battles.groupby(["question_id", "model_b"], sort=False).head(1)
    assert not prune_questions(single, "base", 15, splits=2, rounds=20).separability_held_out


def test_intervals_that_touch_up_to_the_solvers_rounding_overlap():
    """A contestant that tied the baseline in its best rounds scores 49.999999998 there, not 50 (the fit's
    tolerance): its interval still touches the baseline's [50, 50]."""
    from arena_eval.quality import separability

    assert separability([50.0, 37.5], [50.0, 49.999999998]) == 0.0
    assert separability([50.0, 37.5], [50.0, 49.99]) == 1.0
