"""`compare` on a battles frame: the leaderboard's bootstrap, and per pair of models the paired comparison
(docs/design.md §3.4.8). The statistics are in `paired`; this module checks the pairs and puts them together."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .leaderboard import leaderboard_with_rounds
from .paired import RatingRounds, all_pairs, compare_pairs, question_points

MIN_QUESTIONS = 2  # in common, for a pair to be compared at all


def compare_battles(
    battles: pd.DataFrame,
    baseline: str,
    pairs: Sequence[tuple[str, str]] | None = None,
    rounds: int = 1000,
    seed: int = 42,
    by: str = "questions",
    style: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Paired comparisons of models in a battles frame, rated as `compute_leaderboard` rates it (same rounds,
    seed, bootstrap and style control): one row per pair (paired.COMPARE_COLUMNS). ``pairs`` None compares every
    pair of rated models, best first, with ``p_holm`` over them. A ValueError names an unknown model, a model
    paired with itself, or a pair with fewer than MIN_QUESTIONS questions in common."""
    board, rated = leaderboard_with_rounds(battles, baseline, rounds, seed, by, style)
    return compare_rated(board, rated, question_points(battles, baseline), pairs)


def compare_rated(board: pd.DataFrame, rated: RatingRounds, points: pd.DataFrame,
                  pairs: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """The comparison table of a rated board (its rounds and each model's points per question)."""
    ranked = [m for m, s in zip(board["model"], board["score"]) if pd.notna(s)]
    family = pairs is None
    chosen = all_pairs(ranked) if pairs is None else list(pairs)
    check_pairs(chosen, list(board["model"]), ranked)
    table = compare_pairs(rated, points, chosen, family=family)
    few = table[table["questions"] < MIN_QUESTIONS]
    if len(few):
        shown = "; ".join(f"{a} and {b}: {n}" for a, b, n in few[["a", "b", "questions"]].head(5).itertuples(index=False))
        more = f" (and {len(few) - 5} more pairs)" if len(few) > 5 else ""
        raise ValueError(f"fewer than {MIN_QUESTIONS} questions in common, too few to compare: {shown}{more}; a "
                         "question counts when both were judged on it against its baseline")
    return table


def check_pairs(pairs: Sequence[tuple[str, str]], models: Sequence[str], rated: Sequence[str]) -> None:
    """Each side of each pair a rated model, and no model compared with itself (ValueError otherwise)."""
    known, scored = set(models), set(rated)
    for a, b in pairs:
        for name in (a, b):
            if name not in known:
                raise ValueError(f"unknown contestant {name!r}; contestants: {', '.join(models)}")
            if name not in scored:
                raise ValueError(f"{name!r} has no score (no parsed verdict links it to the baseline), so it cannot "
                                 f"be compared; rated contestants: {', '.join(rated)}")
        if a == b:
            raise ValueError(f"{a!r} compared with itself: name two different contestants")

