"""Adaptive judging: stop judging a contestant once its score is known well enough (docs/design.md §3.4.5).

Questions are judged in a seeded random order, `batch` questions at a time. After each batch the contestants'
scores are refitted on the questions judged so far (the configured bootstrap, rounds and seed), and a contestant
gets no further games once, after at least `min_questions` questions,

- its 95 % interval is at most `ci_half_width` score points either side ("precise"), or
- with a previous scored run to compare with (same baseline, same judges), its regression verdict is settled
  either way: its interval already lies entirely below the previous interval ("regressed"), or its lower end is
  already at or above the previous interval's lower end (under the paired rule, the default: at or above the
  previous score itself, since a fall too small for the intervals to show can still be significant paired), and
  above the previous score minus `score_drop` when that rule is set ("not regressed"). More questions only narrow
  an interval, so the verdict would not change.

Every decision reads the interval widened, where needed, to at least the Wilson 95 % half-width of the
contestant's share of battles won (ties count half) on the questions judged so far: a contestant that won every
early game has a bootstrap interval of width 0 (every resample wins everything), which says nothing about how
precise its score is. The Wilson bound is what a perfect 40-game record still leaves open (about ±4.4 points).

The plan (who is judged on how many questions of the order) is a pure function of the stored verdicts: a run
extends it batch by batch, and scoring replays it from the store, batch by batch, with the same decisions. So it is
deterministic for a seed and resumable after a kill: a batch whose games are all stored is not asked again, and
verdicts stored beyond a contestant's stopping point (from an earlier full run) are never counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .config import AdaptiveConfig, RatingConfig
from .style import STYLE_COLUMNS

PRECISE, REGRESSED, NOT_REGRESSED = "precise", "regressed", "not regressed"


def question_order(question_ids: Iterable[str], seed: int) -> list[str]:
    """The order questions are judged in: a permutation of the ids (sorted first, so the file's order does not
    matter) drawn from `seed`."""
    ids = sorted(question_ids)
    return [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]


@dataclass
class Previous:
    """A contestant's result in the previous scored run (same baseline and judges), for the regression rule."""

    score: float
    ci_low: float
    ci_high: float
    # Under the paired rule (§3.6) a contestant whose interval clears the previous interval's lower end can still
    # have fallen significantly: "not regressed" then needs the interval above the previous score itself.
    paired: bool = False


@dataclass
class AdaptivePlan:
    """Who is judged on how many questions of `order`: `judged[c]` questions (the first ones), and for contestants
    that got no further games, why (`stopped[c]`). `batches` counts the batches processed; the plan is `done` once
    every contestant stopped or the order is used up."""

    order: list[str]
    contestants: list[str]  # without the baseline
    judged: dict[str, int] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)
    batches: int = 0
    done: bool = False

    def __post_init__(self) -> None:
        for c in self.contestants:
            self.judged.setdefault(c, 0)

    @property
    def active(self) -> list[str]:
        return [c for c in self.contestants if c not in self.stopped]

    def questions(self, contestant: str) -> set[str]:
        """The questions `contestant` is (to be) judged on: its stopping prefix, or the whole order while active."""
        return set(self.order[: self.judged[contestant]] if contestant in self.stopped else self.order)

    def judged_questions(self, contestant: str) -> set[str]:
        return set(self.order[: self.judged[contestant]])


WILSON_Z = 1.959963984540054  # the normal 97.5th percentile: a 95 % interval


def wilson_half_width(points: float, games: float) -> float:
    """Half-width, in score points (0–100), of the Wilson 95 % interval of a share `points / games`."""
    if games <= 0:
        return 50.0
    p, z2 = points / games, WILSON_Z ** 2
    return 100 * WILSON_Z * np.sqrt(p * (1 - p) / games + z2 / (4 * games ** 2)) / (1 + z2 / games)


def settle(board: pd.DataFrame, judged: Mapping[str, int], settings: AdaptiveConfig,
           previous: Mapping[str, Previous] | None = None, score_drop: float | None = None,
           floor: Mapping[str, float] | None = None) -> dict[str, str]:
    """Contestants of `board` (rating.compute_leaderboard on the questions judged so far) whose judging can stop,
    with the reason; only those with at least `min_questions` judged questions. `floor[c]`: the least half-width
    c's interval is read with (wilson_half_width of its battles), so that a unanimous early record, whose
    bootstrap interval has width 0, does not pass for a precise one."""
    out = {}
    for row in board.itertuples(index=False):
        if judged.get(row.model, 0) < settings.min_questions or pd.isna(row.ci_low) or pd.isna(row.ci_high):
            continue
        least = (floor or {}).get(row.model, 0.0)
        low, high = min(row.ci_low, row.score - least), max(row.ci_high, row.score + least)
        before = (previous or {}).get(row.model)
        if before is not None:
            below_interval = high < before.ci_low
            below_drop = score_drop is not None and high <= before.score - score_drop
            if below_interval or below_drop:
                out[row.model] = REGRESSED
                continue
            cleared = low >= (before.score if before.paired else before.ci_low)
            if cleared and (score_drop is None or low > before.score - score_drop):
                out[row.model] = NOT_REGRESSED
                continue
        if (high - low) / 2 <= settings.ci_half_width:
            out[row.model] = PRECISE
    return out


def battle_floor(battles: pd.DataFrame) -> dict[str, float]:
    """contestant (model_b) → the Wilson half-width of its share of battles won against the baseline, ties half,
    each battle row counted once whatever its weight."""
    won = (battles.winner == "model_b") + 0.5 * (battles.winner == "tie")
    totals = won.groupby(battles.model_b).agg(["sum", "size"])
    return {model: wilson_half_width(row["sum"], row["size"]) for model, row in totals.iterrows()}


def advance(plan: AdaptivePlan, battles: pd.DataFrame, judged_questions: Mapping[str, set[str]], baseline: str,
            settings: AdaptiveConfig, rating: RatingConfig, previous: Mapping[str, Previous] | None = None,
            score_drop: float | None = None, pending_pairs: Mapping[str, set[tuple[str, str]]] | None = None) -> bool:
    """Process the next batch of the order if every active contestant's games on it are stored
    (`judged_questions[c]`: the questions whose games of c against the baseline are all stored, or cannot be
    posed; `pending_pairs[q]`: the pairs of contestants whose games on q are not, pairing's games between
    contestants); refit on the questions judged so far and stop the contestants that are settled. Returns whether
    a batch was processed."""
    from .rating import compute_leaderboard  # here: scipy is slow to import

    if plan.done:
        return False
    start = plan.batches * settings.batch
    batch = plan.order[start : start + settings.batch]
    active = plan.active
    if not batch or not active:
        plan.done = True
        return False
    if any(not set(batch) <= judged_questions.get(c, set()) for c in active):
        return False  # not judged yet (or a game failed): the next run resumes here
    if pending_pairs and any(a in active and b in active for q in batch for a, b in pending_pairs.get(q, ())):
        return False  # a game between two contestants still judged is not in yet
    plan.batches += 1
    for c in active:
        plan.judged[c] = start + len(batch)
    judged = {c: plan.judged_questions(c) for c in active}
    # A battle counts while its contestant is judged on its question; a game between two contestants, while both
    # are (pairing).
    kept = battles[[c in judged and q in judged[c] and (a == baseline or (a in judged and q in judged[a]))
                    for q, a, c in zip(battles.question_id, battles.model_a, battles.model_b)]]
    if not kept.empty:
        style = list(STYLE_COLUMNS) if rating.style_control else None  # the fit the leaderboard will publish
        board = compute_leaderboard(kept, baseline, rounds=rating.rounds, seed=rating.seed, by=rating.bootstrap,
                                    style=style)
        board = board[board.model.isin(active)]  # (the baseline's own row: pinned, never settled)
        against_baseline = kept[kept.model_a == baseline]  # (the Wilson floor reads the share won against it)
        plan.stopped.update(settle(board, plan.judged, settings, previous, score_drop, battle_floor(against_baseline)))
    if not plan.active or start + len(batch) >= len(plan.order):
        plan.done = True
    return True


def replay(order: Sequence[str], contestants: Sequence[str], battles: pd.DataFrame,
           judged_questions: Mapping[str, set[str]], baseline: str, settings: AdaptiveConfig, rating: RatingConfig,
           previous: Mapping[str, Previous] | None = None, score_drop: float | None = None,
           pending_pairs: Mapping[str, set[tuple[str, str]]] | None = None) -> AdaptivePlan:
    """The plan the stored verdicts give, batch by batch, as far as they go."""
    plan = AdaptivePlan(list(order), list(contestants))
    while advance(plan, battles, judged_questions, baseline, settings, rating, previous, score_drop, pending_pairs):
        pass
    return plan
