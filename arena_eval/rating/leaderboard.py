"""The leaderboard: scores, Elo and bootstrap intervals per model, best score first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..records import columns_of
from .paired import RatingRounds, rank_intervals, tied_with_best
from .problem import _participation, _prepare, _Problem, _validate
from .scale import CI_PERCENTILES, elo_from_score, score_from_elo
from .solver import _LN10, _bootstrap, _fit
from .solver import bootstrap_elo as _bootstrap_elo

# The rating's share of the leaderboard's columns, defined with the rest in records.LeaderboardRow.
LEADERBOARD_COLUMNS = columns_of("model", "rating")


def compute_leaderboard(
    battles: pd.DataFrame,
    baseline: str,
    rounds: int = 1000,
    seed: int = 42,
    by: str = "questions",
    style: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Score, Elo and 95% bootstrap intervals per model, best score first.

    Column ``battles`` is the total weight of the rows a model is in, ``questions`` the number of distinct
    question ids among its rows of positive weight. ``rounds=0`` skips the bootstrap and leaves the interval
    columns NaN (the baseline's too). A model not linked to the baseline by battles gets NaN ratings.

    ``style`` names battle columns of style features (model_a's answer against model_b's); the ratings are
    then style-controlled, and ``attrs["style_coefficients"]`` reports, per column, ``coef`` (log-odds of
    model_a winning per standard deviation of the feature), its 95% bootstrap interval ``ci_low``/``ci_high``,
    ``elo_per_sd`` (the same effect in Elo points), ``sd`` (the scale used) and ``fitted``. A column is left
    out of the fit (``fitted`` False, coefficients NaN) when it is constant (sd 0) or when it does not vary
    within the models' battles, so that it cannot be told apart from the models' own strengths.

    ``rank`` (1 = best score; equal scores share the better rank), ``rank_low`` and ``rank_high`` (the 2.5th and
    97.5th percentiles of the model's rank over the rounds) and ``tied_with_best`` (not told apart from the top
    model by the paired bootstrap, Holm-corrected; paired.tied_with_best) come from the same rounds.
    """
    return leaderboard_with_rounds(battles, baseline, rounds, seed, by, style)[0]


def leaderboard_with_rounds(
    battles: pd.DataFrame,
    baseline: str,
    rounds: int = 1000,
    seed: int = 42,
    by: str = "questions",
    style: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, RatingRounds]:
    """`compute_leaderboard`, and the bootstrap rounds behind it (paired comparisons read them)."""
    frame = _validate(battles, need_questions=True, style=style)
    problem = _prepare(frame, baseline, by, style)
    point = _fit(problem, *problem.totals())
    elo = point[0][0]
    boot, boot_gamma = _bootstrap(problem, point, rounds, seed)
    if rounds > 0:
        elo_low, elo_high = _percentiles(boot)
        score_low, score_high = _percentiles(score_from_elo(boot))
    else:
        elo_low = elo_high = score_low = score_high = np.full(len(problem.models), np.nan)

    battles_count, questions_count = _participation(frame, problem.models)
    board = pd.DataFrame({
        "model": problem.models,
        "score": score_from_elo(elo),
        "ci_low": score_low,
        "ci_high": score_high,
        "elo": elo,
        "elo_ci_low": elo_low,
        "elo_ci_high": elo_high,
        "battles": battles_count,
        "questions": questions_count,
    })
    rated = RatingRounds(list(problem.models), elo, boot)
    _add_ranks(board, rated)
    board = board.sort_values("model", kind="stable")
    board = board.sort_values("score", ascending=False, na_position="last", kind="stable")
    board = board.reset_index(drop=True)[LEADERBOARD_COLUMNS]
    if problem.style:
        board.attrs["style_coefficients"] = _style_report(problem, point[1][0], boot_gamma if rounds > 0 else None)
    return board, rated


def _add_ranks(board: pd.DataFrame, rated: RatingRounds) -> None:
    """The rank columns of `board` (rows in `rated.models`' order) from the point Elo and the rounds."""
    rank, low, high = rank_intervals(rated.elo, rated.rounds)
    board["rank"], board["rank_low"], board["rank_high"] = rank, low, high
    tied = tied_with_best(rated.models, rated.elo, rated.rounds)
    board["tied_with_best"] = pd.Series(tied, dtype=object).where(np.isfinite(rated.elo), None).to_numpy()


def compute_category_leaderboard(
    battles: pd.DataFrame,
    baselines: Mapping[str, str],
    rounds: int = 1000,
    seed: int = 42,
    by: str = "questions",
    style: Sequence[str] | None = None,
) -> pd.DataFrame:
    """A leaderboard over categories that each have their own baseline (arena-hard v2.0: one for hard prompts,
    another for creative writing). ``battles`` has a ``category`` column and, in each category, that category's
    baseline (``baselines``: category → name) as model_a.

    Each category is rated on its own against its baseline (``compute_leaderboard``); ``attrs["category_scores"]``
    gives model → {category: score}, a category's baseline holding 50 in it. A model's overall ``score`` is the mean
    of its category scores weighted by each category's number of questions, over the categories it was rated in;
    its interval takes the same weighted mean in each bootstrap round (categories resampled each on its own,
    i.e. a bootstrap stratified by category) and reads the 2.5 and 97.5 percentiles. ``elo`` is that score on
    the Elo scale against a baseline at 1000. ``battles`` and ``questions`` count across categories. The ranks
    and ``tied_with_best`` read those weighted means, round by round: within a category every model is fitted on
    the same resample, so the rounds stay paired.
    """
    return category_leaderboard_with_rounds(battles, baselines, rounds, seed, by, style)[0]


def category_leaderboard_with_rounds(
    battles: pd.DataFrame,
    baselines: Mapping[str, str],
    rounds: int = 1000,
    seed: int = 42,
    by: str = "questions",
    style: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, RatingRounds]:
    """`compute_category_leaderboard`, and its rounds: each model's weighted mean score in every round (on the
    Elo scale), the paired draws of `compare`."""
    if "category" not in battles.columns:
        raise ValueError("battles need a `category` column to be rated per category")
    points: dict[str, pd.Series] = {}
    boots: dict[str, pd.DataFrame] = {}
    weights: dict[str, int] = {}
    for index, (category, frame) in enumerate(sorted(battles.groupby("category", sort=True), key=lambda x: str(x[0]))):
        if category not in baselines:
            raise ValueError(f"category {category!r} has no baseline")
        base = baselines[category]
        frame = frame.drop(columns="category")
        board = compute_leaderboard(frame, base, rounds=0, seed=seed, by=by, style=style)
        points[category] = board.set_index("model")["score"]
        if rounds > 0:
            boots[category] = score_from_elo(_bootstrap_elo(frame, base, rounds, seed + index, by, style))
        weights[category] = frame.loc[frame.weight > 0, "question_id"].nunique()
    models = sorted(set().union(*(set(p.index) for p in points.values())))
    category_scores = {m: {c: float(p[m]) for c, p in points.items() if m in p.index and np.isfinite(p[m])}
                       for m in models}
    score = np.full(len(models), np.nan)
    low, high = score.copy(), score.copy()
    boot_score = np.full((rounds if boots else 0, len(models)), np.nan)
    for i, m in enumerate(models):
        rated = category_scores[m]
        if not rated:
            continue
        total = sum(weights[c] for c in rated)
        score[i] = sum(weights[c] * s for c, s in rated.items()) / total
        if boots:
            rounds_m = sum(weights[c] * boots[c][m].to_numpy() for c in rated) / total
            boot_score[:, i] = rounds_m
            if np.isfinite(rounds_m).any():
                low[i], high[i] = np.nanpercentile(rounds_m, CI_PERCENTILES)
    battles_count, questions_count = _participation(_validate(battles.drop(columns="category"), need_questions=True,
                                                              style=style), models)
    board = pd.DataFrame({
        "model": models, "score": score, "ci_low": low, "ci_high": high, "elo": elo_from_score(score),
        "elo_ci_low": elo_from_score(low), "elo_ci_high": elo_from_score(high),
        "battles": battles_count, "questions": questions_count,
    })
    combined = RatingRounds(models, np.where(np.isfinite(score), elo_from_score(score), np.nan),
                            np.where(np.isfinite(boot_score), elo_from_score(boot_score), np.nan))
    _add_ranks(board, combined)
    board = board.sort_values("score", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    board = board[LEADERBOARD_COLUMNS]
    board.attrs["category_scores"] = category_scores
    return board, combined


def _style_report(problem: _Problem, gamma: np.ndarray, boot: np.ndarray | None) -> dict[str, dict[str, float]]:
    coef = problem.full_style(gamma[None])[0]
    if boot is not None and len(boot):
        low, high = _percentiles(problem.full_style(boot))
    else:
        low = high = np.full(len(coef), np.nan)
    return {
        name: {
            "coef": float(coef[i]),
            "ci_low": float(low[i]),
            "ci_high": float(high[i]),
            "elo_per_sd": float(coef[i] * 400.0 / _LN10),
            "sd": float(problem.style_sd[i]),
            "fitted": bool(problem.style_fitted[i]),
        }
        for i, name in enumerate(problem.style)
    }


def _percentiles(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    low = np.full(values.shape[1], np.nan)
    high = np.full(values.shape[1], np.nan)
    seen = ~np.isnan(values).all(0)  # nanpercentile warns on all-NaN columns
    if seen.any():
        low[seen], high[seen] = np.nanpercentile(values[:, seen], CI_PERCENTILES, axis=0)
    return low, high
