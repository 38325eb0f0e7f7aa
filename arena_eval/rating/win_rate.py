"""Weighted win rates: (wins + ½ ties) / battles, the model-free counterpart of the Bradley-Terry score.

When every battle of a model is against the baseline, its Bradley-Terry score is exactly its weighted win rate
against the baseline; the report shows win rates per category for that reason (docs/design.md, section
"Rating").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .problem import _validate

_SIDES = ("model", "opponent")


def weighted_win_rate(battles: pd.DataFrame, by: str | Sequence[str] = "model") -> pd.Series:
    """(wins + ½ ties) / battles × 100 per group, each battle counted by its weight; NaN for a group whose
    battles all weigh 0.

    Every battle is seen from both sides: ``model`` is one side's model and ``opponent`` the other's, so ``by``
    may name those two and any other column of ``battles`` (a category, the question id). A battle of a model
    against itself is left out (it would be a win and a loss of the same model). The result is named
    ``win_rate``, indexed by the ``by`` columns, groups sorted.
    """
    by = [by] if isinstance(by, str) else list(by)
    if not by:
        raise ValueError("by names no column to group the battles by")
    frame = _validate(battles, need_questions=False)
    carried = [column for column in by if column not in _SIDES]
    missing = [column for column in carried if column not in battles.columns]
    if missing:
        raise ValueError(f"battles is missing column(s): {', '.join(missing)}")
    frame = frame[frame["model_a"] != frame["model_b"]]
    a, b = frame["model_a"].to_numpy(), frame["model_b"].to_numpy()
    winner, weight = frame["winner"].to_numpy(), frame["weight"].to_numpy()
    tie = 0.5 * (winner == "tie")
    points_a, points_b = weight * ((winner == "model_a") + tie), weight * ((winner == "model_b") + tie)
    # Row 2i is battle i seen from model_a, row 2i + 1 from model_b: every group sums its battles in their order.
    sides = pd.DataFrame({
        "model": np.column_stack([a, b]).ravel(),
        "opponent": np.column_stack([b, a]).ravel(),
        "points": np.column_stack([points_a, points_b]).ravel(),
        "weight": np.repeat(weight, 2),
    })
    for column in carried:
        sides[column] = np.repeat(battles[column].to_numpy()[frame.index], 2)
    sums = sides.groupby(by, sort=True)[["points", "weight"]].sum()
    return (100.0 * sums["points"] / sums["weight"].where(sums["weight"] > 0)).rename("win_rate")


def win_rate_oracle(battles: pd.DataFrame, baseline: str) -> pd.Series:
    """(wins + ½ ties) / battles × 100 of each non-baseline model in its weighted battles with the baseline.

    When every battle is against the baseline this is exactly the Bradley-Terry score.
    """
    frame = _validate(battles, need_questions=False)
    everyone = pd.unique(pd.concat([frame["model_a"], frame["model_b"]], ignore_index=True))
    models = sorted(model for model in everyone if model != baseline)
    rates = weighted_win_rate(frame, by=["opponent", "model"])
    rate = rates[rates.index.get_level_values("opponent") == baseline].droplevel("opponent").reindex(models)
    rate.index.name = "model"
    return rate
