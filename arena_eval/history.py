"""Scores over time and regression detection for scheduled re-evaluations (docs/design.md §3.6).

Every run that scores stores its leaderboard under its run_id (store.leaderboards), next to the run's time and
resolved config (store.runs), and each contestant's points per question against the baseline
(store.question_points). A contestant has regressed against its previous scored run (same baseline, same judges):

- `test: paired` (default): when its paired change over the questions both runs judged is negative with p < alpha
  after Holm's correction over the run's contestants. The questions are resampled together for both runs (the
  run's bootstrap rounds and seed), so the question-to-question spread, shared by both nights, cancels out;
- `test: overlap`: when its new 95% interval lies entirely below the previous one (an unpaired rule that needs a
  fall about twice as large to see it);
- either way, when `score_drop` is set, when its score fell by at least that many points.

Scores are relative to the baseline, so runs are only compared when the baseline is the same.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .rating.leaderboard import CI_PERCENTILES
from .rating.paired import bootstrap_p_value, holm, question_point_sums
from .records import COLUMNS
from .store import Store

# A run's time and name around a few of its leaderboard's columns (records.LeaderboardRow defines those).
_SCORES = ["model", "score", "ci_low", "ci_high", "elo", "battles", "wh_per_pass", "category_scores"]
assert set(_SCORES) <= set(COLUMNS), "history shows leaderboard columns: define them in records.LeaderboardRow"
# What the run's regression rule found against the contestant's previous run (store.regression_checks): the change
# in score points and its paired 95% interval, the Holm-corrected p-value, and whether it counted as a regression.
CHANGE_COLUMNS = ["change", "change_ci_low", "change_ci_high", "p_holm", "regressed"]
HISTORY_COLUMNS = ["run_id", "time", *_SCORES, *CHANGE_COLUMNS, "baseline", "command", "status"]


def history_frame(store: Store, contestant: str | None = None) -> pd.DataFrame:
    """One row per (scored run, contestant), oldest first."""
    rows = store.leaderboard_history(contestant)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    baselines = frame[frame.get("is_baseline", pd.Series(False, index=frame.index)).fillna(False).astype(bool)]
    baseline_of = dict(zip(baselines.run_id, baselines.model))
    if contestant is not None:  # the baseline row is filtered out: read it from the unfiltered history
        baseline_of = {r["run_id"]: r["model"] for r in store.leaderboard_history() if r.get("is_baseline")}
    # With a baseline per category, the baseline is the whole mapping: runs compare only under the same one.
    mappings = {r: m for r, m in zip(frame.run_id, frame.get("category_baselines", [None] * len(frame))) if m}
    baseline_of.update({r: ", ".join(f"{c}: {n}" for c, n in m.items()) for r, m in mappings.items()})
    frame["baseline"] = frame.run_id.map(baseline_of)
    checks = {(c["run_id"], c["model"]): c for c in store.regression_checks()}
    for column, key in zip(CHANGE_COLUMNS, ("difference", "ci_low", "ci_high", "p_holm", "regressed")):
        frame[column] = [None if (c := checks.get((r, m))) is None else
                         (bool(c[key]) if key == "regressed" else c[key]) for r, m in zip(frame.run_id, frame.model)]
    frame["time"] = frame.started_at.map(lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)))
    for column in [*HISTORY_COLUMNS, "judges"]:
        if column not in frame.columns:
            frame[column] = None
    rest = [c for c in frame.columns if c not in HISTORY_COLUMNS]
    return frame[HISTORY_COLUMNS + rest].reset_index(drop=True)


REGRESSION_COLUMNS = ["model", "score", "ci_low", "ci_high", "previous_run_id", "previous_score", "previous_ci_low",
                      "previous_ci_high", "test", "difference", "diff_ci_low", "diff_ci_high", "p_value", "p_holm",
                      "questions", "reason"]
# A change needs this many questions in common for the paired test; with fewer the overlap rule decides.
MIN_PAIRED_QUESTIONS = 2


def question_points(battles: pd.DataFrame, baselines: Collection[str]) -> list[tuple[str, str, float, float]]:
    """(model, question, points, weight) of every contestant against a baseline (the run's, or a category's):
    rating.paired.question_point_sums as rows for the store, a win worth its weight, a tie half.
    Battles between two contestants (games between contestants) are left out: a regression is a change against
    the baseline."""
    if battles.empty:
        return []
    summed = question_point_sums(battles, baselines)
    return [(m, q, float(p), float(w)) for (q, m), p, w in zip(summed.index, summed.points, summed.weight)]


def paired_change(now: Mapping[str, tuple[float, float]], before: Mapping[str, tuple[float, float]],
                  rounds: int = 1000, seed: int = 42) -> dict[str, Any]:
    """The change of one contestant's score between two runs over the questions both judged, paired by question.

    Each run's score on the common questions is its weighted win rate against the baseline, 100 · Σ points / Σ
    weight (what the Bradley-Terry score equals when every battle is against the baseline, §3.4.4). Every bootstrap
    round resamples the common questions once, with replacement, for both runs; the change's 95% interval is the
    rounds' 2.5th and 97.5th percentiles and its p-value the paired bootstrap's (rating.paired.bootstrap_p_value).
    Returns difference (now − before, score points), ci_low, ci_high, p_value and questions; NaN where there are
    fewer than MIN_PAIRED_QUESTIONS questions in common or no rounds.
    """
    common = sorted(q for q in set(now) & set(before) if now[q][1] > 0 and before[q][1] > 0)
    out: dict[str, Any] = {"difference": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan,
                           "questions": len(common)}
    if len(common) < MIN_PAIRED_QUESTIONS:
        return out
    table = np.array([[*now[q], *before[q]] for q in common])  # points_now, weight_now, points_before, weight_before

    def change(sums: np.ndarray) -> np.ndarray:
        return 100.0 * (sums[..., 0] / sums[..., 1] - sums[..., 2] / sums[..., 3])

    out["difference"] = float(change(table.sum(0)))
    if rounds > 0:
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(len(common), np.full(len(common), 1.0 / len(common)), size=rounds)
        draws = change(counts @ table)
        out["ci_low"], out["ci_high"] = (float(v) for v in np.percentile(draws, CI_PERCENTILES))
        out["p_value"] = bootstrap_p_value(draws)
    return out


def calibrated_change(row: Any, prev: Any) -> dict[str, Any] | None:
    """The change of a contestant's calibrated score (§3.4.7) between two runs, when both runs have one: the
    difference, its 95% interval and a two-sided z-test p-value, each run's standard error read from its
    interval (width / 3.92). The two fits are treated as independent (each has its own labels), which is
    conservative: the questions both runs share would only narrow the change's interval."""
    values: list[float] = []
    for r in (row, prev):
        for column in ("calibrated_score", "calibrated_ci_low", "calibrated_ci_high"):
            value = getattr(r, column, None)
            if value is None or pd.isna(value):
                return None
            values.append(float(value))
    now, now_low, now_high, before, before_low, before_high = values
    se = float(np.hypot((now_high - now_low) / 3.92, (before_high - before_low) / 3.92))
    difference = now - before
    if se == 0:
        return None
    from scipy.stats import norm

    return {"difference": difference, "ci_low": difference - 1.96 * se, "ci_high": difference + 1.96 * se,
            "p_value": float(2 * norm.sf(abs(difference) / se))}


def find_regressions(store: Store, run_id: str, score_drop: float | None = None, test: str = "paired",
                     alpha: float = 0.05, rounds: int = 1000, seed: int = 42) -> pd.DataFrame:
    """Contestants of `run_id` that regressed against their previous scored run with the same baseline and judges
    (module docstring): one row each, with the reason, the previous run's figures and, for the paired test, the
    change, its interval and its raw and Holm-corrected p-values."""
    checks = compare_with_previous(store, run_id, score_drop, test, alpha, rounds, seed)
    regressed = [c for c in checks if c["regressed"]]
    return pd.DataFrame([[c.get(k) for k in REGRESSION_COLUMNS] for c in regressed], columns=REGRESSION_COLUMNS)


def compare_with_previous(store: Store, run_id: str, score_drop: float | None = None, test: str = "paired",
                          alpha: float = 0.05, rounds: int = 1000, seed: int = 42) -> list[dict[str, Any]]:
    """Every contestant of `run_id` that has a previous comparable run, compared with it by the regression rule:
    dicts with REGRESSION_COLUMNS, `regressed` and (for the store's history) the paired figures. A contestant whose
    runs lack per-question points (runs scored before arena-eval kept them) or have fewer than
    MIN_PAIRED_QUESTIONS questions in common is judged by the overlap rule, and its `test` says so."""
    if test not in ("paired", "overlap"):
        raise ValueError(f"regression test must be 'paired' or 'overlap', not {test!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"regression alpha must be between 0 and 1 (exclusive), not {alpha}")
    frame = history_frame(store)
    if frame.empty or run_id not in set(frame.run_id):
        return []
    order = {r: i for i, r in enumerate(dict.fromkeys(frame.run_id))}
    current = frame[frame.run_id == run_id]
    checks: list[dict[str, Any]] = []
    for row in current.itertuples(index=False):
        is_baseline = getattr(row, "is_baseline", False)
        if pd.notna(is_baseline) and bool(is_baseline):
            continue
        # Scores are relative to the baseline and made by the judges: compare only like with like (rows stored
        # before the judges were recorded compare with any).
        same_judges = frame.judges.isna() | (frame.judges == row.judges) if pd.notna(row.judges) else True
        # A score over categories with baselines of their own compares only with another such score.
        by_category = frame.category_scores.map(lambda v: isinstance(v, dict)) == isinstance(row.category_scores, dict)
        earlier = frame[(frame.model == row.model) & (frame.run_id.map(order) < order[run_id])
                        & (frame.baseline == row.baseline) & frame.score.notna() & same_judges & by_category]
        if earlier.empty or pd.isna(row.score):
            continue
        prev = earlier.iloc[-1]
        check: dict[str, Any] = {
            "model": row.model, "score": row.score, "ci_low": row.ci_low, "ci_high": row.ci_high,
            "previous_run_id": prev.run_id, "previous_score": prev.score, "previous_ci_low": prev.ci_low,
            "previous_ci_high": prev.ci_high, "test": test, "difference": np.nan, "diff_ci_low": np.nan,
            "diff_ci_high": np.nan, "p_value": np.nan, "p_holm": np.nan, "questions": None, "reasons": [],
        }
        calibrated = calibrated_change(row, prev) if test == "paired" else None
        if calibrated is not None:  # rating.calibration: the change of the scores the human labels corrected
            check.update(test="calibrated", difference=calibrated["difference"], diff_ci_low=calibrated["ci_low"],
                         diff_ci_high=calibrated["ci_high"], p_value=calibrated["p_value"])
        elif test == "paired":
            change = paired_change(store.question_points(run_id, row.model),
                                   store.question_points(prev.run_id, row.model), rounds, seed)
            check["questions"] = change["questions"]
            if np.isfinite(change["p_value"]):
                check.update(difference=change["difference"], diff_ci_low=change["ci_low"],
                             diff_ci_high=change["ci_high"], p_value=change["p_value"])
            else:
                check["test"] = "overlap (no paired record)"
        if check["test"] != "paired" and pd.notna(row.ci_high) and pd.notna(prev.ci_low) and row.ci_high < prev.ci_low:
            check["reasons"].append(f"95% CI [{row.ci_low:.1f}, {row.ci_high:.1f}] entirely below the previous "
                                    f"[{prev.ci_low:.1f}, {prev.ci_high:.1f}]")
        if score_drop is not None and prev.score - row.score >= score_drop:
            check["reasons"].append(f"score fell {prev.score - row.score:.1f} points (limit {score_drop:g})")
        checks.append(check)
    paired = [c for c in checks if c["test"] in ("paired", "calibrated")]
    for check, adjusted in zip(paired, holm([c["p_value"] for c in paired])):
        check["p_holm"] = float(adjusted)
        if check["difference"] < 0 and adjusted < alpha:
            kind = "calibrated" if check["test"] == "calibrated" else "paired"
            common = f" on {check['questions']} questions in common" if check["questions"] else ""
            check["reasons"].insert(0, (
                f"{kind} change {check['difference']:+.1f} points [{check['diff_ci_low']:+.1f}, "
                f"{check['diff_ci_high']:+.1f}]{common}, p = {check['p_value']:.3g} "
                f"(Holm over {len(paired)}: {adjusted:.3g} < {alpha:g})"))
    for check in checks:
        check["regressed"] = bool(check["reasons"])
        check["reason"] = "; ".join(check.pop("reasons"))
    return checks
