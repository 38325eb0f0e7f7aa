"""How good is the benchmark itself: separability, agreement with a reference leaderboard, which questions carry
the ranking, and a smaller question set that keeps it (issue 14; docs/quality.md).

Pure functions over bootstrap scores and battles; `read_reference` is the one edge that reads a file.

Benchmark quality (`benchmark_quality`), after the Arena-Hard paper (Li et al. 2024, arXiv 2406.11939):

- intervals: each model's 2.5th and 97.5th percentile of its per-round bootstrap scores, as the leaderboard
  computes them (NaN rounds left out); the baseline counts as a model, with its interval [50, 50];
- separability: the share of model pairs whose intervals do not overlap (one's low end strictly above the
  other's high end);
- spearman / kendall: rank correlations (Spearman's rho, Kendall's tau-b) of our point scores with the
  reference's scores over the models in both; their 95 % intervals are the percentiles of the same correlation
  computed on every bootstrap round's scores (rounds missing one of those models are left out);
- agreement_with_confidence: over the reference pairs the reference itself separates (by its intervals when
  both models have them, else by any score difference), +1 when our intervals separate the pair in the same
  order, -1 in the other order, 0 when ours overlap; the mean;
- pair_brier: over the reference pairs with different reference scores, the mean of (p - y)^2, p our bootstrap
  probability that the reference's higher model scores above the other (share of rounds, a tie counting
  half), y = 1. 0 is perfect, 0.25 is a coin flip, 1 is confidently wrong everywhere.

Question diagnostics (`question_diagnostics`). A question's **discrimination** is the slope of a least-squares
line through the contestants' points (x = the contestant's weighted win rate against the baseline on every
other question, y = its weighted win rate on this question). It is the linear counterpart of an item-response
model's discrimination, cheap (one pass over a questions × contestants matrix) and read on one scale: about 1
for a question that separates contestants as much as the benchmark does on average, 0 for one that does not
separate them at all (every contestant wins it, or loses it, alike: exactly 0), negative for one that orders
them against the rest of the benchmark (usually judge noise). The raw variance across contestants (reported as
`spread`) would also rank constant questions last, but it rewards noise as much as signal: a question decided
by coin flips varies as much as one that follows the contestants' strengths. The rest score leaves the question
itself out, so that a small benchmark does not correlate a question with itself.

Pruning (`prune_questions`): keep the `size` questions of highest discrimination (see `prune_questions` for the
rule and how its held-out estimate is made).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .errors import ConfigError
from .lines import open_regular, shown
from .rating import compute_leaderboard, score_from_elo
from .rating.leaderboard import CI_PERCENTILES
from .rating.problem import _validate
from .rating.solver import bootstrap_elo

MIN_MATCHED = 3  # models a reference must share with the run: below this no rank correlation means anything
QUESTION_COLUMNS = ["question_id", "discrimination", "spread", "tie_rate", "games", "contestants"]
_CHUNK_FLOATS = 1 << 22  # rounds × pairs per block in the pairwise computations: 32 MiB


# --- benchmark quality -------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class QualityReport:
    """What `benchmark_quality` finds; the reference fields are None without a reference."""

    n_models: int
    pairs: int  # model pairs compared: n_models · (n_models − 1) / 2
    separated_pairs: int
    separability: float
    intervals: pd.DataFrame  # model, score, ci_low, ci_high; best score first
    matched: tuple[str, ...] | None = None  # models in ours and in the reference
    only_ours: tuple[str, ...] | None = None
    only_reference: tuple[str, ...] | None = None
    spearman: float | None = None
    spearman_ci_low: float | None = None
    spearman_ci_high: float | None = None
    kendall: float | None = None
    kendall_ci_low: float | None = None
    kendall_ci_high: float | None = None
    correlation_rounds: int | None = None  # bootstrap rounds the correlation intervals come from
    agreement_with_confidence: float | None = None
    reference_separated_pairs: int | None = None  # the pairs agreement_with_confidence averages over
    pair_brier: float | None = None
    brier_pairs: int | None = None  # the pairs pair_brier averages over

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values: NaN becomes None, `intervals` a list of records, `unmatched` holds the names
        only in ours and only in the reference."""
        out: dict[str, Any] = {
            "n_models": self.n_models,
            "pairs": self.pairs,
            "separated_pairs": self.separated_pairs,
            "separability": _plain(self.separability),
            "intervals": [{k: _plain(v) for k, v in row.items()} for row in self.intervals.to_dict("records")],
            "matched": None if self.matched is None else list(self.matched),
            "unmatched": None if self.matched is None else {
                "ours": list(self.only_ours or ()), "reference": list(self.only_reference or ())},
        }
        for name in ("spearman", "spearman_ci_low", "spearman_ci_high", "kendall", "kendall_ci_low",
                     "kendall_ci_high", "correlation_rounds", "agreement_with_confidence",
                     "reference_separated_pairs", "pair_brier", "brier_pairs"):
            out[name] = _plain(getattr(self, name))
        return out


def bootstrap_scores(
    battles: pd.DataFrame,
    baseline: str,
    rounds: int = 1000,
    seed: int = 42,
    by: str = "questions",
    style: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Score (0–100) of every model (columns) in each bootstrap round (rows): the very rounds whose percentiles
    `compute_leaderboard` reports as intervals for the same arguments."""
    return score_from_elo(bootstrap_elo(battles, baseline, rounds=rounds, seed=seed, by=by, style=style))


def benchmark_quality(
    boot_scores: pd.DataFrame, point: pd.Series, reference: pd.DataFrame | None = None
) -> QualityReport:
    """Separability of our leaderboard and, with a reference leaderboard, how far the two agree.

    ``boot_scores``: bootstrap rounds × models, 0–100 scores (`bootstrap_scores`); ``point``: each model's point
    score; the models are those of ``point`` with a finite score. ``reference``: columns ``model``, ``score``,
    optionally ``ci_low`` and ``ci_high`` (`read_reference`); it must share at least 3 models with ours.
    Definitions: the module's docstring and docs/quality.md.
    """
    if not isinstance(boot_scores, pd.DataFrame):
        raise TypeError(f"boot_scores must be a pandas DataFrame, not {type(boot_scores).__name__}")
    if not isinstance(point, pd.Series):
        raise TypeError(f"point must be a pandas Series indexed by model, not {type(point).__name__}")
    if point.index.has_duplicates:
        raise ValueError(f"point names a model more than once: {_names(point.index[point.index.duplicated()])}")
    point = pd.to_numeric(point, errors="coerce").astype(float)
    point = point[np.isfinite(point.to_numpy())]
    missing = [m for m in point.index if m not in boot_scores.columns]
    if missing:
        raise ValueError(f"boot_scores has no column for model(s) {_names(missing)}")
    if len(boot_scores) == 0:
        raise ValueError("boot_scores has no rounds: separability needs the bootstrap (rounds > 0)")
    models = list(point.index)
    boot = boot_scores[models].to_numpy(dtype=float)
    low, high = _intervals(boot)
    intervals = pd.DataFrame({"model": models, "score": point.to_numpy(), "ci_low": low, "ci_high": high})
    intervals = intervals.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    ours = _interval_order(low, high)
    pairs = len(models) * (len(models) - 1) // 2
    separated = int(np.count_nonzero(np.triu(ours, 1)))
    report = dict(
        n_models=len(models), pairs=pairs, separated_pairs=separated,
        separability=separated / pairs if pairs else math.nan, intervals=intervals,
    )
    if reference is None:
        return QualityReport(**report)

    ref = _reference_frame(reference)
    names, known = set(ref.index), set(models)
    matched = [m for m in models if m in names]
    only_ours = tuple(m for m in models if m not in names)
    only_reference = tuple(m for m in ref.index if m not in known)
    if len(matched) < MIN_MATCHED:
        raise ValueError(
            f"the reference shares {len(matched)} model(s) with this run ({_names(matched) or 'none'}); it needs "
            f"at least {MIN_MATCHED} with the same names. Ours: {_names(models)}; the reference's: {_names(ref.index)}"
        )
    ref = ref.loc[matched]
    index = [models.index(m) for m in matched]
    ref_score = ref["score"].to_numpy()
    ours_matched = point[matched].to_numpy()[None]
    spearman, kendall = float(_spearman(ours_matched, ref_score)[0]), float(_kendall(ours_matched, ref_score)[0])
    rounds = boot[:, index]
    rounds = rounds[~np.isnan(rounds).any(1)]
    spearman_low, spearman_high = _percentile_pair(_spearman(rounds, ref_score))
    kendall_low, kendall_high = _percentile_pair(_kendall(rounds, ref_score))

    # The reference's order of each pair: +1 first above, −1 below, 0 tied; "separated" by its intervals where
    # both models have one, else by any score difference.
    ref_order = np.sign(ref_score[:, None] - ref_score[None, :])
    ref_low, ref_high = ref["ci_low"].to_numpy(), ref["ci_high"].to_numpy()
    has_interval = np.isfinite(ref_low) & np.isfinite(ref_high)
    both = has_interval[:, None] & has_interval[None, :]
    ref_separated = np.where(both, _interval_order(ref_low, ref_high), ref_order)
    upper = np.triu(np.ones((len(matched), len(matched)), dtype=bool), 1)
    ref_pairs = upper & (ref_separated != 0)
    our_order = ours[np.ix_(index, index)]
    agreement = (ref_separated * our_order)[ref_pairs]

    first, second = np.nonzero(upper & (ref_order != 0))
    above = np.where(ref_order[first, second] > 0, first, second)  # the reference's higher model of each pair
    below = np.where(ref_order[first, second] > 0, second, first)
    p = _win_share(boot[:, index], above, below)
    scored = np.isfinite(p)
    brier = float(np.mean((p[scored] - 1.0) ** 2)) if scored.any() else math.nan

    return QualityReport(
        **report,
        matched=tuple(matched), only_ours=only_ours, only_reference=only_reference,
        spearman=spearman, spearman_ci_low=spearman_low, spearman_ci_high=spearman_high,
        kendall=kendall, kendall_ci_low=kendall_low, kendall_ci_high=kendall_high,
        correlation_rounds=len(rounds),
        agreement_with_confidence=float(agreement.mean()) if agreement.size else math.nan,
        reference_separated_pairs=int(agreement.size),
        pair_brier=brier, brier_pairs=int(scored.sum()),
    )


def read_reference(path: str | Path) -> pd.DataFrame:
    """A reference leaderboard: CSV with columns ``model`` and ``score``, optionally ``ci_low`` and ``ci_high``
    (arena-hard's ``rating_q025`` and ``rating_q975`` stand for them); other columns are ignored, header names
    are read without regard to case or surrounding spaces, and a UTF-8 byte-order mark is accepted.

    Returns columns model, score, ci_low, ci_high (NaN where the file gives no interval). Errors are
    `ConfigError`s naming the file (and the line or column).
    """
    path = Path(path)
    try:
        with open_regular(path, "reference leaderboard") as handle:  # not a link to a device: it may never end
            raw = pd.read_csv(handle, encoding="utf-8-sig", dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ConfigError(f"{path}: the reference leaderboard is empty; it needs a header with model,score "
                          "and one line per model") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise ConfigError(f"{path}: cannot read the reference leaderboard as UTF-8 CSV ({error})") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    if raw.columns.has_duplicates:
        raise ConfigError(f"{path}: the header repeats column(s) {_names(raw.columns[raw.columns.duplicated()])}")
    found = _names(raw.columns) or "none"
    for column in ("model", "score"):
        if column not in raw.columns:
            raise ConfigError(f"{path}: no `{column}` column (a reference needs model and score; found: {found})")
    interval = ("ci_low", "ci_high") if "ci_low" in raw.columns or "ci_high" in raw.columns else (
        ("rating_q025", "rating_q975") if "rating_q025" in raw.columns or "rating_q975" in raw.columns else None)
    if interval is not None:
        for column in interval:
            if column not in raw.columns:
                other = interval[1] if column == interval[0] else interval[0]
                raise ConfigError(f"{path}: `{other}` without `{column}`; give both ends of the interval or neither")
    if len(raw) == 0:
        raise ConfigError(f"{path}: the reference leaderboard lists no models")

    models = raw["model"].str.strip()
    line = pd.Series(np.arange(len(raw)) + 2, index=raw.index)  # line 1 is the header
    empty = models == ""
    if empty.any():
        raise ConfigError(f"{path}:{line[empty].iloc[0]}: empty model name")
    duplicated = models.duplicated()
    if duplicated.any():
        raise ConfigError(f"{path}:{line[duplicated].iloc[0]}: model {shown(models[duplicated].iloc[0])} is listed twice")

    def numbers(column: str, required: bool) -> np.ndarray:
        text = raw[column].str.strip()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) & ((text != "").to_numpy() | required)
        if bad.any():
            row = int(np.argmax(bad))
            raise ConfigError(f"{path}:{line.iloc[row]}: `{column}` of {shown(models.iloc[row])} is {shown(text.iloc[row])}, "
                              "not a number")
        return values

    frame = pd.DataFrame({"model": models.to_numpy(), "score": numbers("score", True)})
    if interval is None:
        frame["ci_low"] = frame["ci_high"] = np.nan
    else:
        frame["ci_low"], frame["ci_high"] = numbers(interval[0], False), numbers(interval[1], False)
        reversed_ = frame["ci_low"] > frame["ci_high"]
        if reversed_.any():
            row = int(np.argmax(reversed_.to_numpy()))
            raise ConfigError(f"{path}:{line.iloc[row]}: the interval of {shown(models.iloc[row])} runs backwards "
                              f"({interval[0]} above {interval[1]})")
    return frame


def _reference_frame(reference: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(reference, pd.DataFrame):
        raise TypeError(f"reference must be a pandas DataFrame, not {type(reference).__name__}")
    missing = [c for c in ("model", "score") if c not in reference.columns]
    if missing:
        raise ValueError(f"reference is missing column(s) {', '.join(missing)}")
    frame = pd.DataFrame({
        "model": reference["model"].astype(str).str.strip().to_numpy(),
        "score": pd.to_numeric(reference["score"], errors="coerce").to_numpy(dtype=float),
    })
    for column in ("ci_low", "ci_high"):
        present = column in reference.columns
        frame[column] = pd.to_numeric(reference[column], errors="coerce").to_numpy(dtype=float) if present else np.nan
    twice = frame["model"].duplicated()
    if twice.any():
        raise ValueError(f"reference lists model(s) more than once: {_names(frame['model'][twice])}")
    if not np.isfinite(frame["score"].to_numpy()).all():
        bad = frame["model"][~np.isfinite(frame["score"].to_numpy())]
        raise ValueError(f"reference scores must be numbers; not for {_names(bad)}")
    return frame.set_index("model")


def _intervals(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2.5th and 97.5th percentiles of each column, NaN rounds left out (as the leaderboard does)."""
    low = np.full(values.shape[1], np.nan)
    high = np.full(values.shape[1], np.nan)
    seen = ~np.isnan(values).all(0)
    if seen.any():
        low[seen], high[seen] = np.nanpercentile(values[:, seen], CI_PERCENTILES, axis=0)
    return low, high


# Gaps narrower than this (score points) are the solver's rounding, not separation: a contestant that tied the
# baseline in every round scores 49.999999998, not 50, and [37.5, 49.999999998] must still touch [50, 50].
SEPARATION_TOLERANCE = 1e-6


def _interval_order(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(n × n): +1 where row i's interval lies strictly above column j's, −1 strictly below, 0 where they overlap
    or touch (within SEPARATION_TOLERANCE), or either is unknown."""
    above = low[:, None] > high[None, :] + SEPARATION_TOLERANCE
    below = high[:, None] + SEPARATION_TOLERANCE < low[None, :]
    return above.astype(int) - below.astype(int)


def separability(low: Sequence[float], high: Sequence[float]) -> float:
    """The share of pairs whose intervals [low, high] do not overlap (models with an unknown end left out; NaN
    with fewer than two): a leaderboard's separability straight from its ci_low and ci_high columns."""
    return _separability(np.asarray(low, dtype=float), np.asarray(high, dtype=float))


def _separability(low: np.ndarray, high: np.ndarray) -> float:
    known = np.isfinite(low) & np.isfinite(high)
    n = int(known.sum())
    if n < 2:
        return math.nan
    return float(np.count_nonzero(np.triu(_interval_order(low[known], high[known]), 1))) / (n * (n - 1) / 2)


def _percentile_pair(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan
    low, high = np.percentile(values, CI_PERCENTILES)
    return float(low), float(high)


def _spearman(rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row with `reference` (ties get average ranks), NaN where either is constant."""
    if not len(rows):
        return np.empty(0)
    return _pearson(rankdata(rows, axis=1), rankdata(reference))


def _pearson(rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    x = rows - rows.mean(1, keepdims=True)
    y = reference - reference.mean()
    scale = np.sqrt((x * x).sum(1) * (y * y).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, (x @ y) / scale, np.nan)


def _kendall(rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row with `reference`: Σ sign(xi − xj)·sign(yi − yj) over pairs, divided by
    √(untied pairs in x × untied pairs in y); NaN where either is constant. The same as scipy's kendalltau."""
    first, second = np.triu_indices(len(reference), 1)
    ref_sign = np.sign(reference[first] - reference[second])
    out = np.full(len(rows), np.nan)
    step = max(1, _CHUNK_FLOATS // max(1, len(first)))
    for lo in range(0, len(rows), step):
        block = rows[lo:lo + step]
        sign = np.sign(block[:, first] - block[:, second])
        scale = np.sqrt((sign * sign).sum(1) * (ref_sign * ref_sign).sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            out[lo:lo + step] = np.where(scale > 0, (sign @ ref_sign) / scale, np.nan)
    return out


def _win_share(boot: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per pair: the share of rounds (where both have a score) with `first` scoring above `second`, a tie half."""
    wins = np.zeros(len(first))
    seen = np.zeros(len(first))
    step = max(1, _CHUNK_FLOATS // max(1, len(first)))
    for lo in range(0, len(boot), step):
        diff = boot[lo:lo + step, first] - boot[lo:lo + step, second]
        known = ~np.isnan(diff)
        wins += ((diff > 0) + 0.5 * (diff == 0)).sum(0)
        seen += known.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen > 0, wins / seen, np.nan)


# --- question diagnostics ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Outcomes:
    """Battles as per-question, per-contestant totals: the points (wins + ½ ties) and weight of each
    contestant's battles on each question, plus each question's games and ties."""

    questions: np.ndarray  # question ids, sorted
    contestants: list[str]
    points: np.ndarray  # (questions × contestants)
    weight: np.ndarray
    games: np.ndarray  # (questions,) battle rows
    ties: np.ndarray


def _outcomes(battles: pd.DataFrame, baseline: str | None) -> _Outcomes:
    frame = _validate(battles, need_questions=True)
    frame = frame[frame["model_a"] != frame["model_b"]]
    if len(frame) == 0:
        raise ValueError("battles holds only self-battles: there is nothing to diagnose")
    a, b = frame["model_a"].to_numpy(), frame["model_b"].to_numpy()
    everyone = pd.unique(np.concatenate([a, b]))
    if baseline is None:
        common = [m for m in everyone if ((a == m) | (b == m)).all()]
        baseline = common[0] if len(common) == 1 else None
    elif baseline not in set(everyone):
        raise ValueError(f"baseline {baseline!r} has no battles (models in battles: {_names(sorted(everyone))})")
    winner, weight = frame["winner"].to_numpy(), frame["weight"].to_numpy()
    tie = 0.5 * (winner == "tie")
    sides = pd.DataFrame({
        "question_id": np.concatenate([frame["question_id"].to_numpy()] * 2),
        "model": np.concatenate([a, b]),
        "points": np.concatenate([weight * ((winner == "model_a") + tie), weight * ((winner == "model_b") + tie)]),
        "weight": np.concatenate([weight, weight]),
    })
    if baseline is not None:
        sides = sides[sides["model"] != baseline]
    sums = sides.groupby(["question_id", "model"], sort=True)[["points", "weight"]].sum()
    per_question = frame.groupby("question_id", sort=True)["winner"]
    questions = per_question.size().index
    points = sums["points"].unstack("model").reindex(questions).fillna(0.0)
    return _Outcomes(
        questions=questions.to_numpy(),
        contestants=list(points.columns),
        points=points.to_numpy(dtype=float),
        weight=sums["weight"].unstack("model").reindex(index=questions, columns=points.columns).fillna(0.0)
        .to_numpy(dtype=float),
        games=per_question.size().to_numpy(),
        ties=(frame["winner"] == "tie").groupby(frame["question_id"], sort=True).sum().to_numpy(),
    )


def _discrimination(points: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per question (row): the discrimination (slope of the question's win rate on the rest score), the spread
    (standard deviation of the contestants' win rates, 0–100) and the contestants with games on it."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(weight > 0, points / weight, np.nan)
        rest_weight = weight.sum(0) - weight
        rest = np.where(rest_weight > 0, (points.sum(0) - points) / rest_weight, np.nan)
        known = np.isfinite(rate) & np.isfinite(rest)
        n = known.sum(1)
        x = np.where(known, rest, 0.0)
        y = np.where(known, rate, 0.0)
        dx = np.where(known, x - x.sum(1, keepdims=True) / n[:, None], 0.0)
        dy = np.where(known, y - y.sum(1, keepdims=True) / n[:, None], 0.0)
        sxx = (dx * dx).sum(1)
        slope = np.where((n >= 2) & (sxx > 0), (dx * dy).sum(1) / sxx, np.nan)
        spread = np.where(n >= 1, 100.0 * np.sqrt((dy * dy).sum(1) / n), np.nan)
    # Every contestant's rate the same: exactly no information about their order, whatever rounding says.
    lowest = np.where(known, rate, np.inf).min(1)
    highest = np.where(known, rate, -np.inf).max(1)
    constant = (n >= 1) & (lowest == highest)
    slope[constant & (n >= 2)] = 0.0
    spread[constant] = 0.0
    return slope, spread, n


def _usefulness_order(discrimination: np.ndarray, spread: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Question positions, least useful first: questions without information (constant outcomes, fewer than two
    contestants, an undefined slope) first, then ascending discrimination, then ascending spread, then
    `tiebreak`."""
    informative = np.isfinite(discrimination) & (spread > 0)
    key = np.where(informative, discrimination, -np.inf)
    return np.lexsort((tiebreak, np.nan_to_num(spread, nan=-1.0), key, informative))


def question_diagnostics(
    battles: pd.DataFrame,
    judgments_disagreement: Mapping[str, float] | None = None,
    baseline: str | None = None,
) -> pd.DataFrame:
    """One row per question, least useful first: question_id, discrimination, spread, tie_rate, games,
    contestants, and judge_disagreement when given.

    - discrimination: slope of the question's weighted win rate on the rest score, across contestants (module
      docstring); 0 when every contestant fares alike, NaN with fewer than two contestants;
    - spread: standard deviation across contestants of their weighted win rate (0–100) on the question;
    - tie_rate: the share of the question's games (battle rows, whatever their weight) judged a tie;
    - games: battle rows on the question; contestants: contestants with battles of positive weight on it;
    - judge_disagreement: ``judgments_disagreement[question_id]`` (the caller's share of games where two judges'
      verdict classes differ), NaN for a question it does not name.

    The contestants are every model but the ``baseline``; without one, the model in every battle (the run's
    baseline) if there is exactly one, else every model (each one's win rate then counts all its opponents).
    Order: questions with no information on the contestants' order first (constant outcomes, fewer than two
    contestants), then ascending discrimination, ties by ascending spread, then question id.
    """
    data = _outcomes(battles, baseline)
    slope, spread, n = _discrimination(data.points, data.weight)
    order = _usefulness_order(slope, spread, np.arange(len(data.questions)))
    frame = pd.DataFrame({
        "question_id": data.questions,
        "discrimination": slope,
        "spread": spread,
        "tie_rate": data.ties / data.games,
        "games": data.games,
        "contestants": n,
    })
    if judgments_disagreement is not None:
        frame["judge_disagreement"] = [float(judgments_disagreement.get(q, math.nan)) for q in data.questions]
    return frame.iloc[order].reset_index(drop=True)


def fully_judged(battles: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The battles of the questions every contestant has battles on, and how many questions were left out.
    Adaptive judging stops contestants early: a question judged for one contestant only says nothing about how
    well it separates them, and comparing questions judged for different contestants would rank the plan's
    order, not the questions."""
    pairs = battles[battles["model_a"] != battles["model_b"]]
    sides = pd.concat([pairs[["question_id", "model_a"]].set_axis(["question_id", "model"], axis=1),
                       pairs[["question_id", "model_b"]].set_axis(["question_id", "model"], axis=1)])
    per_question = sides.drop_duplicates().groupby("question_id")["model"].size()
    if per_question.empty:
        return battles, 0
    complete = set(per_question.index[per_question == per_question.max()])
    return battles[battles["question_id"].isin(complete)], int(len(per_question) - len(complete))


def outcome_disagreement(battles: pd.DataFrame) -> dict[str, float]:
    """question_id → the share of its contestants whose verdicts disagree: the battle rows of one contestant on
    one question (two position-swapped games per judge) do not all name the same winner. It counts a judge that
    contradicts itself once the positions are swapped as well as judges that contradict each other; a
    contestant with a single parsed game on the question is left out (nothing to disagree with)."""
    frame = _validate(battles, need_questions=True)
    frame = frame[frame["model_a"] != frame["model_b"]]
    pairs = frame.groupby(["question_id", "model_a", "model_b"], sort=True)["winner"].agg(["nunique", "size"])
    pairs = pairs[pairs["size"] > 1]
    return (pairs["nunique"] > 1).groupby(level="question_id").mean().astype(float).to_dict()


# --- pruning -----------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class PruneResult:
    """The questions `prune_questions` keeps and its held-out estimate of what they keep of the ranking."""

    question_ids: tuple  # the kept questions, most useful first
    size: int
    n_questions: int
    kept_fraction: float  # size / n_questions
    kendall_tau: float  # median over splits: the subset's ranking against the held-out half's
    kendall_tau_min: float  # the worst split
    random_kendall_tau: float  # the same for a random subset of the same size, for comparison
    separability: float  # median over splits: the subset's separability
    random_separability: float  # the same for the random subset
    full_separability: float  # median over splits: the held-out half's separability
    separability_held_out: bool  # True: measured on games the choice did not see (two games or more per pair)
    seed: int
    splits: int
    rounds: int
    per_split: pd.DataFrame = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (NaN becomes None); `per_split` as a list of records."""
        out = {name: _plain(getattr(self, name)) for name in (
            "size", "n_questions", "kept_fraction", "kendall_tau", "kendall_tau_min", "random_kendall_tau",
            "separability", "random_separability", "full_separability", "separability_held_out", "seed", "splits",
            "rounds")}
        out["question_ids"] = [_plain(q) for q in self.question_ids]
        out["per_split"] = [{k: _plain(v) for k, v in row.items()} for row in self.per_split.to_dict("records")]
        return out


def prune_questions(
    battles: pd.DataFrame,
    baseline: str,
    size: int,
    seed: int = 42,
    splits: int = 20,
    rounds: int = 100,
) -> PruneResult:
    """Keep the ``size`` questions that best carry the ranking, with a held-out estimate of how well they do.

    Rule: the ``size`` questions of highest discrimination (`question_diagnostics`, computed on all the
    battles), most useful first; ties are broken by higher spread, then by a random order drawn from ``seed``.
    The same battles and seed give the same questions.

    Estimate, repeated on ``splits`` random halvings of the questions (drawn from ``seed``): the rule is applied
    to one half alone (discrimination computed on that half's battles), keeping the same fraction of it,
    round(size × half / all) questions; the other half, untouched, stands for the benchmark. Per split:

    - kendall_tau: Kendall's tau-b between the point scores fitted on the kept questions and those fitted on
      the whole held-out half, over the models scored in both (the baseline included, as in the leaderboard);
    - separability: the share of model pairs whose 95 % intervals do not overlap, from a question bootstrap of
      ``rounds`` rounds (seed ``seed``) on the kept questions; full_separability: the same on the held-out half;
    - random_kendall_tau, random_separability: the same two figures for as many questions drawn at random from
      the first half, the yardstick the rule has to beat.

    The result holds the medians over splits (and the worst tau). Each half holds half the questions, so the
    figures are those of a benchmark half the size: separability at full size is higher.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"size must be a whole number of questions, not {size!r}")
    if isinstance(splits, bool) or not isinstance(splits, (int, np.integer)) or splits < 1:
        raise ValueError(f"splits must be a whole number >= 1, not {splits!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 0:
        raise ValueError(f"rounds must be a whole number >= 0, not {rounds!r}")
    frame = _validate(battles, need_questions=True)
    data = _outcomes(frame, baseline)
    n = len(data.questions)
    if size < 2:
        raise ValueError(f"size {size} is too small: keep at least 2 questions (the battles hold {n})")
    if size >= n:
        raise ValueError(f"size {size} keeps every question: the battles hold {n}; choose a size below {n}")

    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(n)
    slope, spread, _ = _discrimination(data.points, data.weight)
    chosen = _usefulness_order(slope, spread, tiebreak)[::-1][:size]

    # Separability is checked on verdicts the choice did not see: the rule chooses on the first game of each
    # question and contestant (per judge: every other battle row), the intervals come from the other games. A
    # choice checked on its own verdicts would count the luck it was chosen for as separation.
    game = frame.groupby(["question_id", "model_a", "model_b"], sort=False).cumcount().to_numpy()
    choose_rows, check_rows = frame[game % 2 == 0], frame[game % 2 == 1]
    held_out_games = check_rows["question_id"].nunique() >= n / 2
    if held_out_games:
        choice = _outcomes(choose_rows, baseline)
        check_by_question = check_rows.groupby("question_id", sort=True).indices
    else:  # one game per pair: nothing to hold out, the separability is the optimistic in-sample one
        choice, check_rows = data, frame
        check_by_question = frame.groupby("question_id", sort=True).indices

    rows = []
    by_question = frame.groupby("question_id", sort=True).indices  # positions of each question's battles
    for split in range(splits):
        order = rng.permutation(n)
        half, held_out = np.sort(order[: n // 2]), np.sort(order[n // 2:])
        keep = min(len(half), max(1, round(size * len(half) / n)))
        slope, spread, _ = _discrimination(data.points[half], data.weight[half])
        kept = half[_usefulness_order(slope, spread, tiebreak[half])[::-1][:keep]]
        slope, spread, _ = _discrimination(choice.points[half], choice.weight[half])
        kept_blind = half[_usefulness_order(slope, spread, tiebreak[half])[::-1][:keep]]
        drawn = rng.choice(half, size=keep, replace=False)
        full = _board(frame, by_question, data.questions[held_out], baseline, 0, seed)["score"]

        def separable(questions: np.ndarray) -> float:
            board = _board(check_rows, check_by_question, data.questions[questions], baseline, rounds, seed)
            return _separability(board["ci_low"].to_numpy(), board["ci_high"].to_numpy())

        rows.append({
            "split": split,
            "kept": keep,
            "held_out": len(held_out),
            "kendall_tau": _tau(_board(frame, by_question, data.questions[kept], baseline, 0, seed)["score"], full),
            "random_kendall_tau": _tau(_board(frame, by_question, data.questions[drawn], baseline, 0, seed)["score"],
                                       full),
            "separability": separable(kept_blind),
            "random_separability": separable(drawn),
            "full_separability": separable(held_out),
        })
    per_split = pd.DataFrame(rows)

    def median(column: str) -> float:
        values = per_split[column].to_numpy(dtype=float)
        return float(np.median(values[np.isfinite(values)])) if np.isfinite(values).any() else math.nan

    taus = per_split["kendall_tau"].to_numpy(dtype=float)
    return PruneResult(
        question_ids=tuple(data.questions[chosen].tolist()),
        size=int(size), n_questions=n, kept_fraction=size / n,
        kendall_tau=median("kendall_tau"),
        kendall_tau_min=float(np.nanmin(taus)) if np.isfinite(taus).any() else math.nan,
        random_kendall_tau=median("random_kendall_tau"),
        separability=median("separability"), random_separability=median("random_separability"),
        full_separability=median("full_separability"),
        seed=seed, splits=int(splits), rounds=int(rounds), per_split=per_split,
        separability_held_out=bool(held_out_games),
    )


def _battles_of(frame: pd.DataFrame, by_question: Mapping, questions: np.ndarray) -> pd.DataFrame:
    return frame.iloc[np.concatenate([by_question[q] for q in questions if q in by_question])]


def _board(frame, by_question, questions, baseline, rounds, seed) -> pd.DataFrame:
    board = compute_leaderboard(_battles_of(frame, by_question, questions), baseline, rounds=rounds, seed=seed)
    return board.set_index("model")


def _tau(first: pd.Series, second: pd.Series) -> float:
    both = pd.concat([first.rename("a"), second.rename("b")], axis=1).dropna()
    if len(both) < 2:
        return math.nan
    return float(_kendall(both["a"].to_numpy()[None], both["b"].to_numpy())[0])


# --- helpers -----------------------------------------------------------------------------------------------

def _names(values, limit: int = 10) -> str:
    values = [str(v) if len(str(v)) <= 80 else f"{str(v)[:80]}… ({len(str(v)):,} characters)" for v in values]
    return ", ".join(values[:limit]) + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def _plain(value):
    """A JSON-ready scalar: numpy scalars as Python ones, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
