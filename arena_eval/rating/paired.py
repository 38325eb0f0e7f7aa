"""Paired comparisons between contestants (docs/design.md, section "Paired comparisons and ranks").

Every contestant answers the same questions, so two contestants are compared on the same bootstrap rounds: in a
round of ``bootstrap: questions`` all models are fitted on one resample of the questions, and the difference of
their ratings in that round is one draw of the paired difference. Its percentiles give the interval, its sign the
two-sided bootstrap p-value. An unpaired test (do the two intervals overlap?) ignores that the questions are
shared, and needs a difference about twice as large to see it.

Pure functions over arrays: the rounds (rounds × models) come from ``solver._bootstrap`` or ``bootstrap_elo``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .leaderboard import CI_PERCENTILES, score_from_elo

PAIR_COLUMNS = [
    "a", "b", "difference", "ci_low", "ci_high", "elo_difference", "elo_ci_low", "elo_ci_high", "p_value", "rounds",
]


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided p-value of "no difference" from the paired bootstrap draws of a difference.

    p = 2 · min(share of rounds ≤ 0, share of rounds ≥ 0), each share counted as (k + 1) / (n + 1) so that a
    finite number of rounds never claims p = 0 (the smallest p with 1000 rounds is 2/1001). Rounds where either
    side was absent (NaN) are left out; with no usable round the p-value is NaN.
    """
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    n = d.size
    if n == 0:
        return float("nan")
    below = (np.count_nonzero(d <= 0) + 1) / (n + 1)
    above = (np.count_nonzero(d >= 0) + 1) / (n + 1)
    return float(min(1.0, 2.0 * min(below, above)))


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (same order as given; NaN stays NaN, not counted).

    Sorted ascending, the i-th smallest (from 0) of m is multiplied by m − i, the running maximum keeps the
    adjusted values in order, and they are capped at 1. Controls the family-wise error rate under any dependence.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out


def sign_test(better: int, worse: int) -> float:
    """Two-sided exact sign test over questions (ties left out): scipy's binomial test of better in better + worse
    at 1/2. 1.0 when no question tells the two apart."""
    n = int(better) + int(worse)
    if n == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(int(better), n, 0.5, alternative="two-sided").pvalue)


def paired_differences(
    models: Sequence[str],
    elo: np.ndarray,
    rounds: np.ndarray,
    pairs: Sequence[tuple[str, str]],
) -> pd.DataFrame:
    """One row per (a, b): the point difference a − b in score points and in Elo, their 95% paired intervals,
    and the two-sided paired-bootstrap p-value (``bootstrap_p_value`` on the Elo differences; the score is a
    monotone function of Elo against the same baseline, so the sign, and the p-value, are the same).

    ``models`` names the columns of ``elo`` (point Elo per model) and ``rounds`` (Elo per bootstrap round ×
    model, NaN where a model was absent from a round). ``rounds`` may have no rows: the intervals and p-values
    are then NaN.
    """
    index = {m: i for i, m in enumerate(models)}
    point = np.asarray(elo, dtype=float)
    boot = np.asarray(rounds, dtype=float).reshape(-1, len(models))
    boot_score = score_from_elo(boot) if boot.size else boot
    point_score = score_from_elo(point)
    rows = []
    for a, b in pairs:
        i, j = index[a], index[b]
        d_elo = boot[:, i] - boot[:, j]
        d_score = boot_score[:, i] - boot_score[:, j]
        usable = np.isfinite(d_elo)
        if usable.any():
            lo, hi = np.percentile(d_score[usable], CI_PERCENTILES)
            elo_lo, elo_hi = np.percentile(d_elo[usable], CI_PERCENTILES)
        else:
            lo = hi = elo_lo = elo_hi = float("nan")
        rows.append([a, b, point_score[i] - point_score[j], lo, hi, point[i] - point[j], elo_lo, elo_hi,
                     bootstrap_p_value(d_elo), int(usable.sum())])
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def ranks(scores: np.ndarray) -> np.ndarray:
    """Rank of each model (last axis) in each row: 1 + the number of models with a strictly higher score, so
    equal scores share the better rank. NaN scores get a NaN rank and do not count against the others."""
    s = np.asarray(scores, dtype=float)
    higher = (s[..., None, :] > s[..., :, None]).sum(-1)  # [..., i] = models scoring above model i
    out = 1.0 + higher
    out[~np.isfinite(s)] = np.nan
    return out


def rank_intervals(point: np.ndarray, rounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank (from the point scores) and its 95% bootstrap interval per model.

    ``rank_low`` and ``rank_high`` are the 2.5th and 97.5th percentiles of the model's rank over the rounds it is
    in, taken at observed values (the lower and the higher of the two neighbours), so they are whole ranks and the
    interval errs on the wide side. A model in no round gets NaN bounds.
    """
    rank = ranks(np.asarray(point, dtype=float))
    boot = ranks(np.asarray(rounds, dtype=float).reshape(-1, len(rank)))
    low = np.full(len(rank), np.nan)
    high = np.full(len(rank), np.nan)
    for i in range(len(rank)):
        seen = boot[:, i][np.isfinite(boot[:, i])]
        if seen.size:
            low[i] = np.quantile(seen, CI_PERCENTILES[0] / 100, method="lower")
            high[i] = np.quantile(seen, CI_PERCENTILES[1] / 100, method="higher")
    return rank, low, high


def tied_with_best(
    models: Sequence[str], elo: np.ndarray, rounds: np.ndarray, alpha: float = 0.05
) -> np.ndarray:
    """Whether each model is not significantly different from the best-scoring one: the paired bootstrap test
    against the top model, Holm-corrected over the other models, p ≥ ``alpha``. The top model itself is True; a
    model without a rating is False. Without rounds nothing can be told apart: every rated model is True."""
    point = np.asarray(elo, dtype=float)
    out = np.zeros(len(models), dtype=bool)
    rated = np.flatnonzero(np.isfinite(point))
    if rated.size == 0:
        return out
    best = int(rated[np.argmax(point[rated])])
    out[best] = True
    others = [int(i) for i in rated if i != best]
    if not others:
        return out
    if np.asarray(rounds).size == 0:
        out[others] = True
        return out
    table = paired_differences(models, point, rounds, [(models[best], models[i]) for i in others])
    adjusted = holm(table.p_value.to_numpy())
    out[others] = ~(adjusted < alpha)  # NaN (no usable round) cannot be told apart: tied
    return out
