"""Scores over time and regression detection for scheduled re-evaluations.

Every run that scores stores its leaderboard under its run_id (store.leaderboards), next to the run's time and
resolved config (store.runs). A contestant has regressed when its new 95% interval lies entirely below the
interval of its previous scored run — or, when `regression.score_drop` is set, when its score fell by at least
that many points. Scores are relative to the baseline, so runs are only compared when the baseline is the same.
"""

from __future__ import annotations

import time

import pandas as pd

from .records import COLUMNS
from .store import Store

# A run's time and name around a few of its leaderboard's columns (records.LeaderboardRow defines those).
_SCORES = ["model", "score", "ci_low", "ci_high", "elo", "battles", "wh_per_pass", "category_scores"]
assert set(_SCORES) <= set(COLUMNS), "history shows leaderboard columns: define them in records.LeaderboardRow"
HISTORY_COLUMNS = ["run_id", "time", *_SCORES, "baseline", "command", "status"]


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
    frame["time"] = frame.started_at.map(lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)))
    for column in [*HISTORY_COLUMNS, "judges"]:
        if column not in frame.columns:
            frame[column] = None
    rest = [c for c in frame.columns if c not in HISTORY_COLUMNS]
    return frame[HISTORY_COLUMNS + rest].reset_index(drop=True)


def find_regressions(store: Store, run_id: str, score_drop: float | None = None) -> pd.DataFrame:
    """Contestants of `run_id` that regressed against their previous scored run with the same baseline."""
    frame = history_frame(store)
    columns = ["model", "score", "ci_low", "ci_high", "previous_run_id", "previous_score", "previous_ci_low",
               "previous_ci_high", "reason"]
    if frame.empty or run_id not in set(frame.run_id):
        return pd.DataFrame(columns=columns)
    order = {r: i for i, r in enumerate(dict.fromkeys(frame.run_id))}
    current = frame[frame.run_id == run_id]
    out = []
    for row in current.itertuples(index=False):
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
        reasons = []
        if pd.notna(row.ci_high) and pd.notna(prev.ci_low) and row.ci_high < prev.ci_low:
            reasons.append(f"95% CI [{row.ci_low:.1f}, {row.ci_high:.1f}] entirely below the previous "
                           f"[{prev.ci_low:.1f}, {prev.ci_high:.1f}]")
        if score_drop is not None and prev.score - row.score >= score_drop:
            reasons.append(f"score fell {prev.score - row.score:.1f} points (limit {score_drop:g})")
        if reasons:
            out.append([row.model, row.score, row.ci_low, row.ci_high, prev.run_id, prev.score, prev.ci_low,
                        prev.ci_high, "; ".join(reasons)])
    return pd.DataFrame(out, columns=columns)
