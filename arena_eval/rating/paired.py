"""Paired comparisons between contestants (docs/design.md, section "Paired comparisons and ranks").

Every contestant answers the same questions, so two contestants are compared on the same bootstrap rounds: in a
round of ``bootstrap: questions`` all models are fitted on one resample of the questions, and the difference of
their ratings in that round is one draw of the paired difference. Its percentiles give the interval, its sign the
two-sided bootstrap p-value. An unpaired test (do the two intervals overlap?) ignores that the questions are
shared, and needs a difference about twice as large to see it.

Pure functions over arrays: the rounds (rounds × models) come from ``solver._bootstrap`` or ``bootstrap_elo``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .scale import CI_PERCENTILES, score_from_elo

PAIR_COLUMNS = [
    "a", "b", "difference", "ci_low", "ci_high", "elo_difference", "elo_ci_low", "elo_ci_high", "p_value", "rounds",
]
# `compare`'s columns: the paired bootstrap's, the questions in common and how the two fared on them, the sign test
# over those questions; `p_holm` follows `p_value` when a family of pairs is compared (docs/design.md §3.4.8).
COMPARE_COLUMNS = [
    "a", "b", "difference", "ci_low", "ci_high", "elo_difference", "elo_ci_low", "elo_ci_high", "p_value",
    "questions", "better", "same", "worse", "p_sign", "rounds",
]
_PAIR_CHUNK = 1 << 21  # rounds × pairs floats per block of pairs: 16 MiB per array


@dataclass(frozen=True)
class RatingRounds:
    """The bootstrap behind a leaderboard, on one scale: each model's point Elo and its Elo in every round.

    In a round every model was fitted on the same resample (of questions, or battle rows), so the difference of
    two models' Elo in a round is one paired draw. With a baseline per category the Elo is the weighted mean
    score put back on the Elo scale (leaderboard.elo_from_score), per round as for the point.
    """

    models: list[str]
    elo: np.ndarray  # (models,): NaN for a model without a rating
    rounds: np.ndarray  # (rounds, models): NaN where a model was absent from a round

    def __post_init__(self) -> None:
        if self.rounds.ndim != 2 or self.rounds.shape[1] != len(self.models) or len(self.elo) != len(self.models):
            raise ValueError(f"rounds {self.rounds.shape} and elo {np.shape(self.elo)} do not match "
                             f"{len(self.models)} models")


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
    """Two-sided exact sign test over questions (ties left out): the binomial test of better in better + worse
    at 1/2. 1.0 when no question tells the two apart. Equal to scipy.stats.binomtest's two-sided p-value (the
    distribution is symmetric, so it is twice the smaller tail, capped at 1); computed with scipy.special, whose
    import takes a tenth of scipy.stats'."""
    return float(sign_tests(np.array([better]), np.array([worse]))[0])


def sign_tests(better: np.ndarray, worse: np.ndarray) -> np.ndarray:
    """`sign_test` of each (better, worse), at once."""
    from scipy.special import bdtr

    better, worse = np.asarray(better, dtype=np.int64), np.asarray(worse, dtype=np.int64)
    n = better + worse
    tail = bdtr(np.minimum(better, worse), np.maximum(n, 1), 0.5)
    return np.where(n > 0, np.minimum(1.0, 2.0 * tail), 1.0)


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
    are then NaN. All pairs are computed together, in blocks of columns (rounds × pairs).
    """
    index = {m: i for i, m in enumerate(models)}
    point = np.asarray(elo, dtype=float)
    boot = np.asarray(rounds, dtype=float).reshape(-1, len(models))
    boot_score = score_from_elo(boot) if boot.size else boot
    point_score = score_from_elo(point)
    first = np.array([index[a] for a, _ in pairs], dtype=int)
    second = np.array([index[b] for _, b in pairs], dtype=int)
    n = len(first)
    lo, hi, elo_lo, elo_hi, p, used = (np.full(n, np.nan) for _ in range(6))
    used[:] = 0
    block = max(1, _PAIR_CHUNK // max(1, len(boot)))
    for start in range(0, n if len(boot) else 0, block):
        part = slice(start, min(n, start + block))
        d_elo = boot[:, first[part]] - boot[:, second[part]]
        d_score = boot_score[:, first[part]] - boot_score[:, second[part]]
        lo[part], hi[part] = _column_percentiles(d_score)
        elo_lo[part], elo_hi[part] = _column_percentiles(d_elo)
        finite = np.isfinite(d_elo)
        count = finite.sum(0)
        below = (np.count_nonzero(finite & (d_elo <= 0), axis=0) + 1) / (count + 1)
        above = (np.count_nonzero(finite & (d_elo >= 0), axis=0) + 1) / (count + 1)
        p[part] = np.where(count > 0, np.minimum(1.0, 2.0 * np.minimum(below, above)), np.nan)
        used[part] = count
    return pd.DataFrame({
        "a": [a for a, _ in pairs], "b": [b for _, b in pairs],
        "difference": point_score[first] - point_score[second] if n else np.empty(0),
        "ci_low": lo, "ci_high": hi,
        "elo_difference": point[first] - point[second] if n else np.empty(0),
        "elo_ci_low": elo_lo, "elo_ci_high": elo_hi, "p_value": p, "rounds": used.astype(int),
    }, columns=PAIR_COLUMNS)


def _column_percentiles(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 2.5th and 97.5th percentiles of each column over its finite values (NaN for a column without one)."""
    finite = np.isfinite(values)
    if finite.all():
        low, high = np.percentile(values, CI_PERCENTILES, axis=0)
        return low, high
    low = np.full(values.shape[1], np.nan)
    high = np.full(values.shape[1], np.nan)
    whole = finite.all(0)
    if whole.any():
        low[whole], high[whole] = np.percentile(values[:, whole], CI_PERCENTILES, axis=0)
    for j in np.flatnonzero(~whole & finite.any(0)):
        low[j], high[j] = np.percentile(values[finite[:, j], j], CI_PERCENTILES)
    return low, high


def ranks(scores: np.ndarray) -> np.ndarray:
    """Rank of each model (last axis) in each row: 1 + the number of models with a strictly higher score, so
    equal scores share the better rank. NaN scores get a NaN rank and do not count against the others."""
    s = np.asarray(scores, dtype=float)
    flat = s.reshape(-1, s.shape[-1]) if s.ndim else s.reshape(1, 1)
    filled = np.where(np.isfinite(flat), flat, -np.inf)  # never strictly higher than a rated model
    ordered = np.sort(filled, axis=1)
    out = np.empty(flat.shape)
    width = flat.shape[1]
    for row in range(len(flat)):  # rows × log(models): also for hundreds of models over 1000 rounds
        out[row] = 1.0 + width - np.searchsorted(ordered[row], filled[row], side="right")
    out[~np.isfinite(flat)] = np.nan
    return out.reshape(s.shape)


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


def question_points(battles: pd.DataFrame, baseline: str | Mapping[str, str]) -> pd.DataFrame:
    """Each model's mean points against the baseline on each question (questions × models, sorted).

    A battle of the model against the question's baseline gives it 1 (won), ½ (tie) or 0 (lost), whichever
    position it held; the mean is weighted by the battles' weights (a strong verdict counts 3 times, as in the
    rating) over both positions and every judge. The baseline itself holds ½ on every question it played: the
    score's 50. ``baseline`` is one name, or question id → that question's baseline (a baseline per category).
    Battles between two other models, and weights ≤ 0, are left out. NaN: the model has no battle there.
    """
    frame = battles.loc[(battles["weight"] > 0) & (battles["model_a"] != battles["model_b"]),
                        ["question_id", "model_a", "model_b", "winner", "weight"]]
    question = frame["question_id"].astype(str)
    if isinstance(baseline, str):
        base = pd.Series(baseline, index=frame.index)
    else:
        base = question.map(lambda q: baseline.get(q))
    rows, keep = _against_baseline(frame, base)
    sums = rows.groupby(["question_id", "model"], sort=True)[["points", "weight"]].sum()
    table = (sums["points"] / sums["weight"]).unstack("model")
    bases = base.to_numpy()[keep]
    for name in sorted(set(bases.tolist())):
        played = np.unique(rows["question_id"].to_numpy()[bases == name])
        if name not in table.columns:
            table[name] = np.nan
        table.loc[played, name] = 0.5
    return table.sort_index().sort_index(axis=1)


def question_point_sums(battles: pd.DataFrame, baselines: Collection[str]) -> pd.DataFrame:
    """Per (question_id, model): the points won against a baseline (a win its weight, a tie half) and the battles'
    weight, summed, for battles of a model against one of ``baselines`` (the run's, or a category's) in either
    position. Battles between two other models, and weights ≤ 0, are left out."""
    frame = battles.loc[(battles["weight"] > 0) & (battles["model_a"] != battles["model_b"]),
                        ["question_id", "model_a", "model_b", "winner", "weight"]]
    names = set(baselines)
    base = pd.Series(np.where(frame["model_a"].isin(names), frame["model_a"],
                              np.where(frame["model_b"].isin(names), frame["model_b"], None)), index=frame.index)
    rows, _ = _against_baseline(frame.assign(question_id=frame["question_id"].astype(str)), base)
    return rows.groupby(["question_id", "model"], sort=True)[["points", "weight"]].sum()


def _against_baseline(frame: pd.DataFrame, base: pd.Series) -> tuple[pd.DataFrame, np.ndarray]:
    """The battles with exactly one side at the row's baseline, as (question_id, model, points × weight, weight)
    from the other side's view, and which rows of `frame` those are."""
    a_is_base = (frame["model_a"] == base).to_numpy()
    b_is_base = (frame["model_b"] == base).to_numpy()
    keep = a_is_base ^ b_is_base
    other = np.where(a_is_base, frame["model_b"], frame["model_a"])[keep]
    winner = frame["winner"].to_numpy()[keep]
    won = np.where(a_is_base[keep], winner == "model_b", winner == "model_a")
    points = np.where(winner == "tie", 0.5, won.astype(float))
    weight = frame["weight"].to_numpy(dtype=float)[keep]
    rows = pd.DataFrame({"question_id": frame["question_id"].astype(str).to_numpy()[keep], "model": other.astype(str),
                         "points": points * weight, "weight": weight})
    return rows, keep


def question_counts(points: pd.DataFrame, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Per (a, b): ``questions`` where both have points, and on how many of them a's mean points are above
    (``better``), equal to (``same``) or below (``worse``) b's; ``p_sign`` the sign test over them (ties out)."""
    table = np.column_stack([points.to_numpy(dtype=float), np.full(len(points), np.nan)])
    index = {m: i for i, m in enumerate(points.columns)}
    absent = table.shape[1] - 1  # a model without points: the NaN column
    x = table[:, [index.get(a, absent) for a, _ in pairs]]
    y = table[:, [index.get(b, absent) for _, b in pairs]]
    both = np.isfinite(x) & np.isfinite(y)
    # Mean points are ratios of weights: compare them with a tolerance, not bit for bit.
    gap = np.where(both, x - y, 0.0)
    better = np.count_nonzero(both & (gap > 1e-9), axis=0)
    worse = np.count_nonzero(both & (gap < -1e-9), axis=0)
    common = both.sum(0)
    return pd.DataFrame({"questions": common, "better": better, "same": common - better - worse, "worse": worse,
                         "p_sign": sign_tests(better, worse)})


def compare_pairs(rated: RatingRounds, points: pd.DataFrame, pairs: Sequence[tuple[str, str]],
                  family: bool = False) -> pd.DataFrame:
    """`compare`'s table (COMPARE_COLUMNS): per pair the paired bootstrap (paired_differences) and the questions
    (question_counts). With ``family`` (every pair of a run compared at once), ``p_holm``: the p-values
    Holm-corrected over the pairs given."""
    table = paired_differences(rated.models, rated.elo, rated.rounds, pairs)
    counts = question_counts(points, pairs)
    out = pd.concat([table.drop(columns="rounds"), counts, table[["rounds"]]], axis=1)[COMPARE_COLUMNS]
    if family:
        out.insert(out.columns.get_loc("p_value") + 1, "p_holm", holm(out["p_value"].to_numpy()))
    return out


def all_pairs(models: Sequence[str]) -> list[tuple[str, str]]:
    """Every unordered pair of `models`, each once, in their order (a before b)."""
    return [(a, b) for i, a in enumerate(models) for b in models[i + 1:]]
