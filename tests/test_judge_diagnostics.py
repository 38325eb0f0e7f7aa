"""Judge diagnostics on scripted judges of known behaviour: the figures must find the behaviour we put in."""

from __future__ import annotations

import math
import warnings as python_warnings

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit, log_expit
from sklearn.metrics import cohen_kappa_score

from arena_eval.judge_diagnostics import (
    BASE_COLUMNS,
    judge_diagnostics,
    length_coefficient,
    pairwise_agreement,
    verdict_class,
    warnings,
)
from arena_eval.records import Judgment

BASELINE = "base"
STRENGTH = {BASELINE: 0.0, "weak": -1.0, "even": 0.0, "strong": 1.0}  # the mean quality of each model's answers
QUESTIONS = 60


class World:
    """3 contestants × 60 questions against the baseline, two games each (360 games). Every answer has a quality
    (its model's strength plus noise) and a length in output tokens; lengths are distinct and independent of
    quality, so a judge of quality is blind to length and a judge of length blind to quality."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.answers = [f"{model}/q{q:02d}" for model in STRENGTH for q in range(QUESTIONS)]
        lengths = rng.permutation(np.arange(len(self.answers))) * 5 + 100
        self.tokens = {a: int(n) for a, n in zip(self.answers, lengths)}
        self.quality = {a: STRENGTH[a.split("/")[0]] + rng.normal() for a in self.answers}
        self.games = []  # (contestant, question_id, game, answer in A, answer in B)
        for contestant in ("weak", "even", "strong"):
            for q in range(QUESTIONS):
                base, other = f"{BASELINE}/q{q:02d}", f"{contestant}/q{q:02d}"
                self.games.append((contestant, f"q{q:02d}", 1, base, other))
                self.games.append((contestant, f"q{q:02d}", 2, other, base))

    def judge(self, name: str, decide) -> list[Judgment]:
        """Judgments of a judge whose verdict on (answer in A, answer in B) is decide(a, b)."""
        return [judgment(name, q, contestant, game, a, b, decide(a, b)) for contestant, q, game, a, b in self.games]

    def better(self, a: str, b: str) -> str:
        """The perfect judge: the better answer wins, strongly when clearly better."""
        gap = self.quality[a] - self.quality[b]
        return ("A>>B" if gap > 1 else "A>B") if gap > 0 else ("B>>A" if gap < -1 else "B>A")


def judgment(judge, q, contestant, game, a, b, verdict, flags=None) -> Judgment:
    return Judgment(f"{judge}:{a}:{b}", f"cfg-{judge}", q, contestant, BASELINE, game, a, b, verdict, "", 1,
                    flags=flags)


def swap(verdict: str) -> str:
    return verdict.translate(str.maketrans("AB", "BA"))


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def judges(world):
    """Five scripted judges: perfect; perfect with 20% of games flipped (and a few unparsed); always position A;
    always the longer answer; perfect but unparsed one game in four."""
    flip = np.random.default_rng(1)
    noisy = []
    for j in world.judge("noisy", world.better):
        draw = flip.uniform()
        verdict = swap(j.verdict) if draw < 0.2 else (None if draw > 0.97 else j.verdict)
        noisy.append(judgment("noisy", j.question_id, j.contestant, j.game, j.answer_a_id, j.answer_b_id, verdict))
    silent = np.random.default_rng(2)
    return {
        "perfect": world.judge("perfect", world.better),
        "noisy": noisy,
        "always-a": world.judge("always-a", lambda a, b: "A>B"),
        "longer": world.judge("longer", lambda a, b: "A>B" if world.tokens[a] > world.tokens[b] else "B>A"),
        "mute": world.judge("mute", lambda a, b: None if silent.uniform() < 0.25 else world.better(a, b)),
    }


@pytest.fixture(scope="module")
def frame(world, judges):
    with python_warnings.catch_warnings():
        python_warnings.simplefilter("error")  # no FutureWarning from scikit-learn's penalty spelling, no ConvergenceWarning
        return judge_diagnostics(judges, world.tokens).set_index("judge")


def test_one_row_per_judge_in_order_then_pooled_with_agreement_columns_per_judge(judges, world):
    raw = judge_diagnostics(judges, world.tokens)
    assert list(raw["judge"]) == ["perfect", "noisy", "always-a", "longer", "mute", "pooled"]
    expected = BASE_COLUMNS + [f"{kind}_{j}" for j in judges for kind in ("agreement", "kappa", "games_with")]
    assert list(raw.columns) == expected
    assert raw.columns[:11].tolist() == [
        "judge", "games", "unparsed_rate", "consistency", "first_position_win_rate", "decisive_games",
        "longer_answer_win_rate", "length_games", "length_coefficient", "suspicious_rate", "self_preference"]


def test_a_judge_that_always_prefers_position_a_is_never_consistent(frame):
    row = frame.loc["always-a"]
    assert row["first_position_win_rate"] == 1.0
    assert row["consistency"] == 0.0
    assert math.isnan(row["length_coefficient"])  # one outcome only: the slope is not identified
    # A constant rater agrees with anyone only by chance: kappa 0.
    assert row["kappa_perfect"] == pytest.approx(0.0, abs=1e-12)


def test_a_judge_that_prefers_the_longer_answer_is_found_by_its_length_figures(frame):
    row = frame.loc["longer"]
    assert row["longer_answer_win_rate"] == 1.0
    assert row["length_games"] == 360
    # Length decides every game: the outcomes are separated by the length difference and the unpenalised
    # slope is +inf (the largest possible).
    assert row["length_coefficient"] == math.inf
    # It has no position bias: each pair of answers sits once in each position, so the longer one is in
    # position A in exactly half the games.
    assert row["first_position_win_rate"] == 0.5
    # Quality judges are blind to length: their longer-answer rate is near 0.5 (binomial sd over 180 pairs of
    # games 0.037; tolerance about 3 sd) and their slope small.
    assert frame.loc["perfect", "longer_answer_win_rate"] == pytest.approx(0.5, abs=0.11)
    assert abs(frame.loc["perfect", "length_coefficient"]) < 0.4


def test_a_judge_with_a_known_error_rate_agrees_with_the_perfect_judge_that_often(frame, judges):
    row = frame.loc["noisy"]
    parsed = sum(j.verdict is not None for j in judges["noisy"])
    assert row["games_with_perfect"] == parsed
    # 20% of games flipped: agreement 0.8 (binomial sd over ~350 games 0.021; tolerance 3 sd).
    assert row["agreement_perfect"] == pytest.approx(0.8, abs=0.065)
    # Each pair is consistent when neither or both games are flipped: 0.8² + 0.2² = 0.68 (sd 0.035; 3 sd).
    assert row["consistency"] == pytest.approx(0.68, abs=0.105)
    assert frame.loc["perfect", "consistency"] == 1.0
    # Agreement and kappa are symmetric.
    assert frame.loc["perfect", "agreement_noisy"] == row["agreement_perfect"]
    assert frame.loc["perfect", "kappa_noisy"] == row["kappa_perfect"]
    assert math.isnan(row["agreement_noisy"]) and math.isnan(row["kappa_noisy"])


def test_kappa_is_cohens_kappa_on_the_stored_verdict_classes(frame, judges):
    def classes(judgments):
        out = {}
        for j in judgments:
            if j.verdict is not None:
                out[(j.answer_a_id, j.answer_b_id)] = "tie" if "=" in j.verdict else ("first" if j.verdict[0] == "A" else "second")
        return out

    for first, second in (("perfect", "noisy"), ("noisy", "mute"), ("longer", "perfect")):
        x, y = classes(judges[first]), classes(judges[second])
        shared = sorted(set(x) & set(y))
        expected = cohen_kappa_score([x[k] for k in shared], [y[k] for k in shared])
        assert frame.loc[first, f"kappa_{second}"] == pytest.approx(expected, abs=1e-12)
        assert frame.loc[first, f"agreement_{second}"] == pytest.approx(np.mean([x[k] == y[k] for k in shared]))
        assert frame.loc[first, f"games_with_{second}"] == len(shared)


def test_kappa_on_six_games_worked_out_by_hand():
    # Six games both judges parsed (X uses strong labels, Y plain ones: same classes):
    #   game  X       Y
    #   1     first   first    agree
    #   2     first   first    agree
    #   3     first   second
    #   4     second  second   agree
    #   5     second  tie
    #   6     tie     tie      agree
    # observed agreement p_o = 4/6 = 2/3
    # X: first 3, tie 1, second 2; Y: first 2, tie 2, second 2
    # chance agreement p_e = (3·2 + 1·2 + 2·2) / 6² = 12/36 = 1/3
    # kappa = (p_o − p_e) / (1 − p_e) = (1/3) / (2/3) = 0.5
    # Game 7 only Y parsed and game 8 only X judged: both left out.
    x_verdicts = ["A>>B", "A>B", "A>>B", "B>>A", "B>A", "A=B", "A>B", "B>A"]
    y_verdicts = ["A>B", "A>B", "B>A", "B>A", "A=B", "A=B", None]
    x = [judgment("x", f"q{i}", "c", 1, f"a{i}", f"b{i}", v) for i, v in enumerate(x_verdicts)]
    y = [judgment("y", f"q{i}", "c", 1, f"a{i}", f"b{i}", v) for i, v in enumerate(y_verdicts)]
    n, agreement, kappa = pairwise_agreement(x, y)
    assert (n, agreement, kappa) == (6, pytest.approx(2 / 3), pytest.approx(0.5))
    frame = judge_diagnostics({"x": x, "y": y}, {}).set_index("judge")
    assert frame.loc["x", "kappa_y"] == pytest.approx(0.5) and frame.loc["y", "kappa_x"] == pytest.approx(0.5)
    assert frame.loc["x", "games_with_y"] == 6


def test_agreement_matches_games_by_their_answers_and_positions_not_by_game_id():
    x = [judgment("x", "q", "c", 1, "a", "b", "A>B")]
    same_game_other_id = [judgment("y", "q", "c", 1, "a", "b", "A>>B")]
    swapped_positions = [judgment("y", "q", "c", 2, "b", "a", "A>B")]
    assert pairwise_agreement(x, same_game_other_id)[:2] == (1, 1.0)
    assert math.isnan(pairwise_agreement(x, same_game_other_id)[2])  # one class throughout: kappa undefined
    n, agreement, kappa = pairwise_agreement(x, swapped_positions)
    assert n == 0 and math.isnan(agreement) and math.isnan(kappa)


def test_the_single_judge_figures_on_eight_games_counted_by_hand():
    tokens = {"base/q1": 100, "c/q1": 200, "base/q2": 300, "c/q2": 300, "base/q3": 50, "c/q3": None,
              "base/q4": 400, "c/q4": 100}
    rows = [
        judgment("j", "q1", "c", 1, "base/q1", "c/q1", "B>A"),  # B (longer) wins: the contestant
        judgment("j", "q1", "c", 2, "c/q1", "base/q1", "A>>B"),  # A (longer) wins: the contestant; consistent
        judgment("j", "q2", "c", 1, "base/q2", "c/q2", "A>B"),  # equal lengths: not in the length rate
        judgment("j", "q2", "c", 2, "c/q2", "base/q2", "A>B"),  # A wins both: inconsistent
        judgment("j", "q3", "c", 1, "base/q3", "c/q3", "A=B", flags="quoted-label"),  # a tie: not decisive
        judgment("j", "q3", "c", 2, "c/q3", "base/q3", None, flags="cut-off"),  # unparsed
        judgment("j", "q4", "c", 1, "base/q4", "c/q4", "B>A"),  # the shorter answer wins
        judgment("j", "q4", "c", 2, "c/q4", "base/q4", "A>B"),  # the shorter again; consistent
    ]
    row = judge_diagnostics({"j": rows}, tokens).set_index("judge").loc["j"]
    assert row["games"] == 8
    assert row["unparsed_rate"] == 1 / 8
    assert row["consistency"] == 2 / 3  # q1 and q4 agree, q2 does not; q3 has one parsed game
    assert row["decisive_games"] == 6
    assert row["first_position_win_rate"] == 4 / 6  # q1 g2, q2 g1, q2 g2, q4 g2
    assert row["length_games"] == 4 and row["longer_answer_win_rate"] == 2 / 4  # q1 twice yes, q4 twice no
    assert row["suspicious_rate"] == 2 / 8
    assert math.isnan(row["length_coefficient"])  # 6 decisive games of known length: under 10
    assert math.isnan(row["self_preference"])


def test_the_pooled_row_holds_every_judges_games(frame, judges):
    pooled = frame.loc["pooled"]
    assert pooled["games"] == 5 * 360
    unparsed = sum(j.verdict is None for games in judges.values() for j in games)
    assert pooled["unparsed_rate"] == pytest.approx(unparsed / (5 * 360))
    # Consistency pools the judges' pairs: a pair is two games of one judge, never of two.
    pairs = {name: _pairs(games) for name, games in judges.items()}
    agreeing = sum(a for a, _ in pairs.values())
    total = sum(n for _, n in pairs.values())
    assert pooled["consistency"] == pytest.approx(agreeing / total)
    decisive = frame.loc[list(judges), "decisive_games"]
    assert pooled["decisive_games"] == decisive.sum()
    assert pooled["first_position_win_rate"] == pytest.approx(
        (frame.loc[list(judges), "first_position_win_rate"] * decisive).sum() / decisive.sum())
    assert all(math.isnan(pooled[f"{kind}_{j}"]) for j in judges for kind in ("agreement", "kappa", "games_with"))


def _pairs(games):
    from arena_eval.config import VerdictWeights
    from arena_eval.judge import battle_outcome

    outcome = {}
    for j in games:
        if j.verdict is not None:
            outcome.setdefault((j.contestant, j.question_id), {})[j.game] = battle_outcome(j.verdict, j.game, VerdictWeights())[0]
    both = [o for o in outcome.values() if len(o) == 2]
    return sum(o[1] == o[2] for o in both), len(both)


def test_length_coefficient_recovers_a_known_slope_and_equals_the_unpenalised_maximum_likelihood():
    # A judge that prefers position A with log-odds 0.3 + 1.5 z, z the standardised length difference.
    rng = np.random.default_rng(7)
    la, lb = rng.integers(50, 1500, 2000), rng.integers(50, 1500, 2000)
    z = (la - lb) / (la - lb).std()
    a_won = rng.uniform(size=2000) < expit(0.3 + 1.5 * z)
    slope = length_coefficient(la, lb, a_won)
    # The slope's standard error here is about 0.07; tolerance 3 SE.
    assert slope == pytest.approx(1.5, abs=0.21)

    # The same maximum-likelihood fit by scipy, written out: −Σ log σ(±(b0 + b1 z)).
    def loss(beta):
        eta = beta[0] + beta[1] * z
        return -(log_expit(eta[a_won]).sum() + log_expit(-eta[~a_won]).sum())

    reference = minimize(loss, np.zeros(2), method="BFGS", options={"gtol": 1e-9})
    assert slope == pytest.approx(reference.x[1], abs=1e-4)


@pytest.mark.parametrize(
    "la, lb, a_won, expected",
    [
        ([200] * 12, [100] * 12, [True, False] * 6, math.nan),  # no variation in the difference
        (range(9), [0] * 9, [True, False, True, False, True, False, True, False, True], math.nan),  # 9 games
        (range(12), [0] * 12, [True] * 12, math.nan),  # one outcome only
        (range(12), [0] * 12, [False] * 6 + [True] * 6, math.inf),  # longer A always wins: separated
        (range(12), [0] * 12, [True] * 6 + [False] * 6, -math.inf),  # shorter A always wins
        ([0, 1, 1, 2] * 3, [0] * 12, [False, False, True, True] * 3, math.inf),  # quasi-separated at a tie
    ],
)
def test_length_coefficient_edge_cases(la, lb, a_won, expected):
    result = length_coefficient(list(la), list(lb), a_won)
    assert (math.isnan(result) and math.isnan(expected)) or result == expected


def test_self_preference_is_the_judges_own_score_minus_the_pooled_score_over_its_models_contestants():
    games = {name: [judgment(name, "q", "c1", 1, "base/q", "c1/q", "A>B")] for name in ("gpt", "claude", "local")}
    scores = {
        "gpt": {"base": 50.0, "c1": 60.0, "c2": 70.0, "c3": 40.0},
        "claude": {"base": 50.0, "c1": 58.0, "c2": 66.0, "c3": 50.0},
        "local": {"base": 50.0, "c1": 50.0, "c2": 55.0, "c3": 45.0},
        "pooled": {"base": 50.0, "c1": 55.0, "c2": 62.0, "c3": 45.0},
    }
    judge_models = {"gpt": {"gpt-x"}, "claude": {"claude-y", "claude-z"}, "local": {"llama"}}
    contestant_models = {"base": "gpt-x", "c1": "gpt-x", "c2": "gpt-x", "c3": "claude-y"}
    frame = judge_diagnostics(games, {}, scores, judge_models, contestant_models).set_index("judge")
    assert frame.loc["gpt", "self_preference"] == pytest.approx(((60 - 55) + (70 - 62)) / 2)  # the baseline is pinned
    assert frame.loc["claude", "self_preference"] == pytest.approx(50 - 45)
    assert math.isnan(frame.loc["local", "self_preference"])  # none of its models answers
    assert math.isnan(frame.loc["pooled", "self_preference"])
    without = judge_diagnostics(games, {}).set_index("judge")
    assert without["self_preference"].isna().all()


def test_a_judge_named_pooled_is_refused():
    with pytest.raises(ValueError, match="pooled"):
        judge_diagnostics({"pooled": []}, {})


def test_verdict_classes():
    assert [verdict_class(v) for v in ("A>>B", "A>B", "A=B", "B>A", "B>>A")] == [
        "first", "first", "tie", "second", "second"]


def test_warnings_name_the_unreliable_judges_and_their_figures(frame):
    text = warnings(frame.reset_index())
    by_judge = {name: [w for w in text if w.startswith(f"judge {name}:")] for name in frame.index}
    assert by_judge["perfect"] == [] and by_judge["pooled"] == []
    always_a = " ".join(by_judge["always-a"])
    assert "consistency 0.00" in always_a and "position A wins 100%" in always_a
    assert "kappa against every other judge" in always_a
    assert any("longer answer wins 100%" in w and "verbose" in w for w in by_judge["longer"])
    assert not any("position A" in w for w in by_judge["longer"])
    mute = frame.loc["mute", "unparsed_rate"]
    assert len(by_judge["mute"]) == 1
    assert f"{mute:.0%} of its replies gave no verdict" in by_judge["mute"][0]
    # The noisy judge is consistent enough (0.68) and agrees with the others beyond chance: no warning.
    assert by_judge["noisy"] == []


def test_no_kappa_warning_without_other_judges(world, judges):
    alone = judge_diagnostics({"always-a": judges["always-a"]}, world.tokens)
    assert not any("kappa" in w for w in warnings(alone))
