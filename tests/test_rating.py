import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from arena_eval.rating import LEADERBOARD_COLUMNS, compute_leaderboard, score_from_elo
from arena_eval.rating import solver as rating
from arena_eval.rating.problem import aggregate_battles
from arena_eval.rating.solver import bootstrap_elo, fit_bradley_terry
from arena_eval.rating.win_rate import win_rate_oracle

COLUMNS = ["question_id", "model_a", "model_b", "winner", "weight"]
SWAP = {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}


def vs_baseline(seed, n_models=4, n_questions=200, baseline="base"):
    """Two games per question per model against the baseline, positions swapped; weights 1 and 3."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(n_models):
        win, tie = rng.uniform(0.2, 0.6), rng.uniform(0.05, 0.3)
        for q in range(n_questions):
            for game in range(2):
                outcome = rng.choice(["model_a", "model_b", "tie"], p=[win, 1 - win - tie, tie])
                weight = float(rng.choice([1, 3]))
                if game == 0:
                    rows.append((f"q{q}", f"m{m}", baseline, outcome, weight))
                else:
                    rows.append((f"q{q}", baseline, f"m{m}", SWAP[outcome], weight))
    return pd.DataFrame(rows, columns=COLUMNS)


def tournament(seed, n_models=6, n_battles=3000):
    """Random pairs among all models (baseline included) with outcomes from true strengths."""
    rng = np.random.default_rng(seed)
    models = ["base"] + [f"m{i}" for i in range(n_models - 1)]
    strength = dict(zip(models, rng.normal(0, 1, n_models)))
    rows = []
    for i in range(n_battles):
        a, b = rng.choice(models, 2, replace=False)
        p_a = 1 / (1 + np.exp(strength[b] - strength[a]))
        outcome = rng.choice(["model_a", "model_b", "tie"], p=[0.8 * p_a, 0.8 * (1 - p_a), 0.2])
        rows.append((f"q{i % 300}", a, b, outcome, float(rng.choice([1, 3]))))
    return pd.DataFrame(rows, columns=COLUMNS)


def test_single_baseline_score_equals_weighted_win_rate():
    battles = vs_baseline(seed=1)
    board = compute_leaderboard(battles, "base", rounds=20).set_index("model")
    oracle = win_rate_oracle(battles, "base")
    assert list(oracle.index) == ["m0", "m1", "m2", "m3"]
    for model, rate in oracle.items():
        assert round(board.loc[model, "score"], 2) == round(rate, 2)


def test_oracle_counts_ties_as_half_and_uses_weights():
    battles = pd.DataFrame(
        [("q1", "m", "base", "model_a", 3.0), ("q1", "base", "m", "tie", 1.0), ("q2", "base", "m", "model_a", 1.0)],
        columns=COLUMNS,
    )
    assert win_rate_oracle(battles, "base")["m"] == pytest.approx(100 * 3.5 / 5)
    assert fit_bradley_terry(battles, "base")["m"] == pytest.approx(1000 + 400 * np.log10(3.5 / 1.5), abs=1e-3)


def test_tournament_matches_sklearn_logistic_regression():
    battles = tournament(seed=2)
    rows = aggregate_battles(battles)
    models = sorted((set(rows["model_a"]) | set(rows["model_b"])) - {"base"})
    X, y, w = [], [], []
    for row in rows.itertuples():
        x = np.zeros(len(models))
        if row.model_a != "base":
            x[models.index(row.model_a)] += np.log(10)
        if row.model_b != "base":
            x[models.index(row.model_b)] -= np.log(10)
        # A tie is half a win for each side: two half-weight rows.
        outcomes = [(1, 0.5), (0, 0.5)] if row.winner == "tie" else [(int(row.winner == "model_a"), 1.0)]
        for label, share in outcomes:
            X.append(x)
            y.append(label)
            w.append(row.weight * share)
    # C=inf is scikit-learn's spelling of penalty=None since 1.8.
    reference = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-10, max_iter=10000)
    reference.fit(np.array(X), np.array(y), sample_weight=np.array(w))

    elo = fit_bradley_terry(battles, "base")
    expected = pd.Series(1000 + 400 * reference.coef_[0], index=models)
    assert elo["base"] == 1000.0
    np.testing.assert_allclose(elo[models] - 1000, expected - 1000, atol=0.01)


def test_weights_equal_repeated_rows():
    battles = tournament(seed=3, n_battles=400)
    expanded = battles.loc[battles.index.repeat(battles["weight"].astype(int))].assign(weight=1.0)
    assert (aggregate_battles(battles) == aggregate_battles(expanded)).all().all()
    pd.testing.assert_series_equal(fit_bradley_terry(battles, "base"), fit_bradley_terry(expanded, "base"))
    for by in ("rows", "questions"):
        pd.testing.assert_frame_equal(
            bootstrap_elo(battles, "base", rounds=30, by=by),
            bootstrap_elo(expanded, "base", rounds=30, by=by),
        )


def test_separated_model_stays_finite_without_warnings():
    battles = tournament(seed=4, n_battles=600)
    champion = battles["model_a"].eq("m1") | battles["model_b"].eq("m1")
    battles.loc[champion, "winner"] = np.where(battles.loc[champion, "model_a"] == "m1", "model_a", "model_b")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        board = compute_leaderboard(battles, "base", rounds=100).set_index("model")
        loser_board = compute_leaderboard(
            battles.assign(winner=battles["winner"].map(SWAP)), "base", rounds=100
        ).set_index("model")
    assert np.isfinite(board.loc["m1", ["elo", "elo_ci_low", "elo_ci_high"]].astype(float)).all()
    assert board.loc["m1", "score"] > 99.9
    assert board.index[0] == "m1"
    assert np.isfinite(loser_board.loc["m1", "elo"]) and loser_board.loc["m1", "score"] < 0.1


def test_bootstrap_is_seeded():
    battles = vs_baseline(seed=5, n_questions=100)
    first = bootstrap_elo(battles, "base", rounds=50, seed=7)
    again = bootstrap_elo(battles, "base", rounds=50, seed=7)
    other = bootstrap_elo(battles, "base", rounds=50, seed=8)
    assert first.shape == (50, 5)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)
    assert (first["base"] == 1000.0).all()


@pytest.mark.parametrize("by", ["questions", "rows"])
def test_bootstrap_does_not_depend_on_chunking(by, monkeypatch):
    battles = tournament(seed=17, n_battles=300)
    whole = bootstrap_elo(battles, "base", rounds=40, by=by)
    monkeypatch.setattr(rating, "_ROUND_FLOATS", 1000)  # a few rounds per chunk
    monkeypatch.setattr(rating, "_HESSIAN_FLOATS", 50)  # one round per Newton batch
    pd.testing.assert_frame_equal(bootstrap_elo(battles, "base", rounds=40, by=by), whole, rtol=1e-9)


@pytest.mark.parametrize("by", ["questions", "rows"])
def test_interval_contains_point_estimate(by):
    board = compute_leaderboard(tournament(seed=6), "base", rounds=200, by=by)
    assert list(board.columns) == LEADERBOARD_COLUMNS
    assert (board["ci_low"] <= board["score"]).all() and (board["score"] <= board["ci_high"]).all()
    assert (board["elo_ci_low"] <= board["elo"]).all() and (board["elo"] <= board["elo_ci_high"]).all()
    assert (board.loc[board["model"] != "base", "ci_high"] > board.loc[board["model"] != "base", "ci_low"]).all()
    assert board["score"].is_monotonic_decreasing


@pytest.mark.parametrize(("by", "weights"), [("rows", [1.0, 3.0]), ("questions", [1.0])])
def test_bootstrap_spread_matches_binomial(by, weights):
    # One model against the baseline: a round's score is a resampled win proportion, whose standard
    # deviation is 100·sqrt(p(1−p)/n) over the n expanded battles (one per question here).
    rng = np.random.default_rng(16)
    n_rows = 600
    battles = pd.DataFrame({
        "question_id": [f"q{i}" for i in range(n_rows)],
        "model_a": "m",
        "model_b": "base",
        "winner": rng.choice(["model_a", "model_b"], n_rows, p=[0.7, 0.3]),
        "weight": rng.choice(weights, n_rows),
    })
    p = win_rate_oracle(battles, "base")["m"] / 100
    expected = 100 * np.sqrt(p * (1 - p) / battles["weight"].sum())
    spread = score_from_elo(bootstrap_elo(battles, "base", rounds=1000, by=by)["m"]).std()
    assert spread == pytest.approx(expected, rel=0.1)


def test_interval_shrinks_with_more_questions():
    def width(n_questions):
        board = compute_leaderboard(vs_baseline(seed=9, n_questions=n_questions), "base", rounds=200)
        board = board[board["model"] != "base"]
        return (board["ci_high"] - board["ci_low"]).mean()

    assert width(800) < 0.6 * width(50)


def test_baseline_row_is_pinned():
    board = compute_leaderboard(tournament(seed=10, n_battles=500), "base", rounds=50).set_index("model")
    assert board.loc["base", ["score", "ci_low", "ci_high"]].tolist() == [50.0, 50.0, 50.0]
    assert board.loc["base", ["elo", "elo_ci_low", "elo_ci_high"]].tolist() == [1000.0, 1000.0, 1000.0]


def test_counts_and_no_bootstrap():
    battles = pd.DataFrame(
        [
            ("q1", "a", "base", "model_a", 3.0),
            ("q1", "base", "a", "tie", 1.0),
            ("q2", "b", "base", "model_b", 2.0),
            ("q3", "a", "b", "model_b", 1.0),
        ],
        columns=COLUMNS,
    )
    board = compute_leaderboard(battles, "base", rounds=0).set_index("model")
    assert board["battles"].to_dict() == {"a": 5.0, "b": 3.0, "base": 6.0}
    assert board["questions"].to_dict() == {"a": 2, "b": 2, "base": 2}
    assert board[["ci_low", "ci_high", "elo_ci_low", "elo_ci_high"]].isna().all().all()


def test_unusable_model_gets_nan_not_a_crash():
    battles = vs_baseline(seed=11, n_models=2, n_questions=30)
    extra = pd.DataFrame(
        [
            ("q1", "ghost", "base", "model_a", 0.0),  # only zero weight
            ("q1", "x", "y", "model_a", 1.0),  # never linked to the baseline
            ("q2", "y", "x", "tie", 1.0),
        ],
        columns=COLUMNS,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        board = compute_leaderboard(pd.concat([battles, extra]), "base", rounds=30).set_index("model")
    assert board.loc[["ghost", "x", "y"], ["score", "elo", "ci_low", "ci_high"]].isna().all().all()
    assert board.loc[["m0", "m1"], "score"].notna().all()
    assert list(board.index[-3:]) == ["ghost", "x", "y"]


def test_model_absent_from_a_round_is_nan_in_that_round():
    battles = vs_baseline(seed=12, n_models=2, n_questions=40)
    rare = pd.DataFrame([("q0", "rare", "base", "model_a", 1.0)], columns=COLUMNS)
    boot = bootstrap_elo(pd.concat([battles, rare]), "base", rounds=100)
    assert boot["rare"].isna().any() and boot["rare"].notna().any()
    assert boot[["m0", "m1", "base"]].notna().all().all()


def test_score_from_elo():
    assert score_from_elo(1000.0) == 50.0
    assert score_from_elo(1400.0) == pytest.approx(100 / 1.1)
    np.testing.assert_allclose(score_from_elo(np.array([600.0, 1000.0])), [100 / 11, 50.0])
    assert score_from_elo(1100.0, baseline_elo=1100.0) == 50.0
    assert score_from_elo(-1e6) == 0.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda df: df.assign(winner=df["winner"].replace("tie", "draw")), "draw"),
        (lambda df: df.iloc[:0], "empty"),
        (lambda df: df.assign(weight=-1.0), "weight"),
        (lambda df: df.drop(columns="winner"), "winner"),
    ],
)
def test_bad_battles_raise(change, message):
    battles = change(tournament(seed=13, n_battles=100))
    with pytest.raises(ValueError, match=message):
        compute_leaderboard(battles, "base", rounds=10)


def test_missing_baseline_raises():
    battles = tournament(seed=14, n_battles=100)
    with pytest.raises(ValueError, match="'gpt-x'"):
        compute_leaderboard(battles, "gpt-x", rounds=10)
    involves_base = battles["model_a"].eq("base") | battles["model_b"].eq("base")
    with pytest.raises(ValueError, match="'base'"):
        fit_bradley_terry(battles.assign(weight=np.where(involves_base, 0.0, 1.0)), "base")


def test_bad_bootstrap_mode_raises():
    with pytest.raises(ValueError, match="'games'"):
        bootstrap_elo(tournament(seed=15, n_battles=100), "base", rounds=5, by="games")


# --- style control --------------------------------------------------------------------------------------

STYLE = ["style_length", "style_bold"]


def verbose_arena(seed, n_questions=600, length_effect=3.0):
    """A judge that likes long answers: "verbose" is exactly as good as the baseline but writes ~3x more,
    "strong" is better at the baseline's length. Outcomes follow logit P(model_a wins) =
    ln10·(θ_a − θ_b) + length_effect·(L_a − L_b)/(L_a + L_b + 1); lengths vary per answer."""
    rng = np.random.default_rng(seed)
    truth = {"strong": 0.3, "verbose": 0.0}  # log10-odds against the baseline
    rows = []
    for q in range(n_questions):
        base_length = rng.lognormal(np.log(300), 0.5)
        for model, factor in (("strong", 1.0), ("verbose", 3.0)):
            length = base_length * factor * rng.lognormal(0.0, 0.6)
            feature = (base_length - length) / (base_length + length + 1)
            p_base = 1 / (1 + np.exp(np.log(10) * truth[model] - length_effect * feature))
            for _ in range(2):
                winner = "model_a" if rng.random() < p_base else "model_b"
                rows.append((f"q{q}", "base", model, winner, 1.0, feature, rng.normal(0, 0.3)))
    return pd.DataFrame(rows, columns=COLUMNS + STYLE)


def with_style(battles, seed, effect=0.0):
    """Random style features for existing battles; with `effect`, the winner leans towards the larger one."""
    rng = np.random.default_rng(seed)
    battles = battles.copy()
    for column in STYLE:
        battles[column] = rng.uniform(-0.9, 0.9, len(battles))
    if effect:
        flip = rng.random(len(battles)) < effect * np.abs(battles["style_length"])
        favoured = np.where(battles["style_length"] > 0, "model_a", "model_b")
        battles.loc[flip, "winner"] = favoured[flip]
    return battles


def test_style_control_removes_a_verbosity_advantage():
    battles = verbose_arena(seed=20)
    plain = compute_leaderboard(battles, "base", rounds=200).set_index("model")
    controlled_board = compute_leaderboard(battles, "base", rounds=200, style=STYLE)
    controlled = controlled_board.set_index("model")

    # The plain fit credits the verbose contestant with the judge's taste for length ...
    assert plain.loc["verbose", "ci_low"] > 65
    # ... style control puts it back level with the baseline, and leaves the better contestant where it is.
    assert abs(controlled.loc["verbose", "score"] - 50) < 5
    assert controlled.loc["verbose", "ci_low"] < 50 < controlled.loc["verbose", "ci_high"]
    true_strong = 100 / (1 + 10**-0.3)
    assert abs(controlled.loc["strong", "score"] - true_strong) < 5
    assert controlled.loc["strong", "ci_low"] < true_strong < controlled.loc["strong", "ci_high"]

    fitted = controlled_board.attrs["style_coefficients"]
    assert set(fitted) == set(STYLE)
    length = fitted["style_length"]
    assert length["ci_low"] < length["coef"] < length["ci_high"] and length["ci_low"] > 0
    # Per unit of the raw feature (coef / sd) the fit recovers the judge's length effect.
    assert length["coef"] / length["sd"] == pytest.approx(3.0, rel=0.2)
    assert length["elo_per_sd"] == pytest.approx(400 / np.log(10) * length["coef"])
    # The noise feature is fitted but comes out near zero.
    assert fitted["style_bold"]["ci_low"] < 0 < fitted["style_bold"]["ci_high"]


@pytest.mark.parametrize("make", [lambda: vs_baseline(seed=21), lambda: tournament(seed=22, n_battles=1500)])
@pytest.mark.parametrize("by", ["questions", "rows"])
def test_style_alike_answers_give_the_plain_result(make, by):
    from arena_eval.style import StyleCounts, style_features

    battles = make()
    alike = style_features(StyleCounts(420, 2, 7, 3), StyleCounts(420, 2, 7, 3))
    assert alike == (0.0, 0.0, 0.0, 0.0)
    styled = battles.assign(style_length=alike[0], style_bold=alike[3])
    board = compute_leaderboard(styled, "base", rounds=50, by=by, style=STYLE)
    pd.testing.assert_frame_equal(board, compute_leaderboard(battles, "base", rounds=50, by=by), check_exact=True)
    for column in STYLE:
        fitted = board.attrs["style_coefficients"][column]
        assert np.isnan(fitted["coef"]) and fitted["sd"] == 0.0


@pytest.mark.parametrize("make", [lambda: vs_baseline(seed=23, n_questions=150), lambda: tournament(seed=24, n_battles=1500)])
def test_style_fit_matches_sklearn_logistic_regression(make):
    battles = with_style(make(), seed=25, effect=0.4)
    models = sorted((set(battles["model_a"]) | set(battles["model_b"])) - {"base"})
    # The design docs/design.md §3.4.1 describes, built directly: ±ln10 model columns and the style features scaled
    # to unit weighted standard deviation over the battles taken in both orientations (mean 0 by symmetry).
    weight = battles["weight"].to_numpy()
    raw = battles[STYLE].to_numpy()
    sd = np.sqrt((weight[:, None] * raw**2).sum(0) / weight.sum())
    X, y, w = [], [], []
    for row, features in zip(battles.itertuples(), raw / sd):
        x = np.zeros(len(models))
        if row.model_a != "base":
            x[models.index(row.model_a)] += np.log(10)
        if row.model_b != "base":
            x[models.index(row.model_b)] -= np.log(10)
        outcomes = [(1, 0.5), (0, 0.5)] if row.winner == "tie" else [(int(row.winner == "model_a"), 1.0)]
        for label, share in outcomes:
            X.append(np.concatenate([x, features]))
            y.append(label)
            w.append(row.weight * share)
    reference = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-10, max_iter=10000)
    reference.fit(np.array(X), np.array(y), sample_weight=np.array(w))

    elo = fit_bradley_terry(battles, "base", style=STYLE)
    expected = pd.Series(1000 + 400 * reference.coef_[0][: len(models)], index=models)
    assert elo["base"] == 1000.0
    np.testing.assert_allclose(elo[models] - 1000, expected - 1000, atol=0.01)
    coefficients = elo.attrs["style_coefficients"]
    np.testing.assert_allclose([coefficients[c] for c in STYLE], reference.coef_[0][len(models):], atol=1e-4)
    assert coefficients["style_length"] > 0.1  # the winners lean towards the longer answer

    board = compute_leaderboard(battles, "base", rounds=0, style=STYLE).set_index("model")
    np.testing.assert_allclose(board.loc[models, "elo"], elo[models], rtol=0, atol=1e-9)
    reported = board.attrs["style_coefficients"]["style_length"]
    assert reported["coef"] == pytest.approx(coefficients["style_length"]) and np.isnan(reported["ci_low"])
    np.testing.assert_allclose(reported["sd"], sd[0])


def test_style_fit_does_not_depend_on_which_side_is_model_a():
    battles = with_style(tournament(seed=26, n_battles=1500), seed=27, effect=0.4)
    turned = battles.copy()
    swap = np.random.default_rng(28).random(len(battles)) < 0.5
    turned.loc[swap, ["model_a", "model_b"]] = battles.loc[swap, ["model_b", "model_a"]].to_numpy()
    turned.loc[swap, "winner"] = battles.loc[swap, "winner"].map(SWAP)
    turned.loc[swap, STYLE] = -battles.loc[swap, STYLE]
    first = compute_leaderboard(battles, "base", rounds=100, style=STYLE)
    second = compute_leaderboard(turned, "base", rounds=100, style=STYLE)
    pd.testing.assert_frame_equal(first, second, rtol=1e-7)
    for column in STYLE:
        for key, value in first.attrs["style_coefficients"][column].items():
            assert second.attrs["style_coefficients"][column][key] == pytest.approx(value, rel=1e-7)


@pytest.mark.parametrize("by", ["questions", "rows"])
def test_style_bootstrap_keeps_features_with_their_battles(by, monkeypatch):
    battles = with_style(vs_baseline(seed=29, n_questions=80), seed=30, effect=0.3)
    # Weighted rows and the same rows repeated: identical units, identical draws, identical rounds.
    expanded = battles.loc[battles.index.repeat(battles["weight"].astype(int))].assign(weight=1.0)
    whole = bootstrap_elo(battles, "base", rounds=40, by=by, style=STYLE)
    pd.testing.assert_frame_equal(bootstrap_elo(expanded, "base", rounds=40, by=by, style=STYLE), whole, rtol=1e-9)
    # Chunks of rounds change nothing either, nor does taking the first Newton step from the rows instead of
    # from per-unit sums (too wide for _ROUND_FLOATS = 1000).
    monkeypatch.setattr(rating, "_ROUND_FLOATS", 1000)
    monkeypatch.setattr(rating, "_CACHE_FLOATS", 1000)
    chunked = bootstrap_elo(battles, "base", rounds=40, by=by, style=STYLE)
    pd.testing.assert_frame_equal(chunked, whole, rtol=1e-9)
    np.testing.assert_allclose(
        chunked.attrs["style_coefficients"]["style_length"], whole.attrs["style_coefficients"]["style_length"], rtol=1e-9
    )
    lengths = np.array(whole.attrs["style_coefficients"]["style_length"])
    assert lengths.shape == (40,) and lengths.std() > 0


def test_style_bootstrap_in_a_tournament_does_not_depend_on_chunking(monkeypatch):
    battles = with_style(tournament(seed=31, n_battles=400), seed=32, effect=0.3)
    whole = compute_leaderboard(battles, "base", rounds=30, style=STYLE)
    monkeypatch.setattr(rating, "_CACHE_FLOATS", 1000)
    monkeypatch.setattr(rating, "_HESSIAN_FLOATS", 50)  # one round per Newton batch
    chunked = compute_leaderboard(battles, "base", rounds=30, style=STYLE)
    pd.testing.assert_frame_equal(chunked, whole, rtol=1e-9)
    for column in STYLE:
        for key, value in whole.attrs["style_coefficients"][column].items():
            assert chunked.attrs["style_coefficients"][column][key] == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize("make", [lambda: vs_baseline(seed=37), lambda: tournament(seed=38, n_battles=1500)])
def test_style_held_at_one_level_per_model_is_left_out(make):
    # Every model always writes the same number of bold spans: the bold feature of a battle is a difference
    # of per-model levels, i.e. a sum of the models' own columns. It says nothing the model strengths don't.
    battles = with_style(make(), seed=39, effect=0.4)
    rng = np.random.default_rng(40)
    level = {m: rng.uniform(-0.5, 0.5) for m in set(battles["model_a"]) | set(battles["model_b"])}
    battles["style_bold"] = battles["model_a"].map(level) - battles["model_b"].map(level)
    board = compute_leaderboard(battles, "base", rounds=30, style=STYLE)
    bold, length = board.attrs["style_coefficients"]["style_bold"], board.attrs["style_coefficients"]["style_length"]
    assert not bold["fitted"] and np.isnan(bold["coef"]) and bold["sd"] > 0
    assert length["fitted"] and length["coef"] > 0.1
    pd.testing.assert_frame_equal(board, compute_leaderboard(battles, "base", rounds=30, style=["style_length"]))
    # A little variation within each model's battles is enough to fit it.
    battles["style_bold"] += rng.normal(0, 0.1, len(battles))
    bold = compute_leaderboard(battles, "base", rounds=0, style=STYLE).attrs["style_coefficients"]["style_bold"]
    assert bold["fitted"] and np.isfinite(bold["coef"])


def test_style_with_separated_data_stays_finite():
    # The longer answer always wins: the style coefficient alone would run off to infinity.
    battles = with_style(vs_baseline(seed=33, n_questions=60), seed=34)
    battles["winner"] = np.where(battles["style_length"] > 0, "model_a", "model_b")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        board = compute_leaderboard(battles, "base", rounds=30, style=STYLE)
    assert np.isfinite(board[["score", "elo", "ci_low", "ci_high"]].to_numpy(float)).all()
    assert np.isfinite(board.attrs["style_coefficients"]["style_length"]["coef"])


@pytest.mark.parametrize(
    ("change", "style", "error", "message"),
    [
        (lambda df: df, ["style_missing"], ValueError, "style_missing"),
        (lambda df: df.assign(style_length=np.nan), STYLE, ValueError, "finite"),
        (lambda df: df.assign(style_length="long"), STYLE, ValueError, "finite"),
        (lambda df: df, ["weight"], ValueError, "battle columns"),
        (lambda df: df, ["style_length", "style_length"], ValueError, "more than once"),
        (lambda df: df, "style_length", TypeError, "list"),
    ],
)
def test_bad_style_raises(change, style, error, message):
    battles = change(with_style(tournament(seed=35, n_battles=100), seed=36))
    with pytest.raises(error, match=message):
        compute_leaderboard(battles, "base", rounds=5, style=style)
