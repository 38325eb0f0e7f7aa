"""The leaderboard: scores, Elo and bootstrap intervals per model, best score first."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..records import columns_of
from .problem import _participation, _prepare, _Problem, _validate
from .solver import _LN10, BASELINE_ELO, _bootstrap, _fit, _sigmoid

# The rating's share of the leaderboard's columns, defined with the rest in records.LeaderboardRow.
LEADERBOARD_COLUMNS = columns_of("model", "rating")
CI_PERCENTILES = (2.5, 97.5)


def score_from_elo(elo, baseline_elo: float = BASELINE_ELO):
    """Expected score (0–100) against the baseline: 100 / (1 + 10**((baseline_elo - elo) / 400))."""
    x = (np.asarray(elo, dtype=float) - baseline_elo) * (_LN10 / 400.0)
    score = 100.0 * _sigmoid(x)
    if isinstance(elo, pd.Series):
        return pd.Series(score, index=elo.index, name=elo.name)
    if isinstance(elo, pd.DataFrame):
        return pd.DataFrame(score, index=elo.index, columns=elo.columns)
    return float(score) if score.ndim == 0 else score


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
    """
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
    board = board.sort_values("model", kind="stable")
    board = board.sort_values("score", ascending=False, na_position="last", kind="stable")
    board = board.reset_index(drop=True)[LEADERBOARD_COLUMNS]
    if problem.style:
        board.attrs["style_coefficients"] = _style_report(problem, point[1][0], boot_gamma if rounds > 0 else None)
    return board


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
