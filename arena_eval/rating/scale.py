"""The rating's scales: score from Elo and back, and the interval's percentiles (docs/design.md §3.4.1–§3.4.2).

Shared by `leaderboard` (the board) and `paired` (differences and ranks), so that neither imports the other's
module for them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .solver import _LN10, BASELINE_ELO, _sigmoid

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


def elo_from_score(score, baseline_elo: float = BASELINE_ELO):
    """The inverse of score_from_elo: the Elo whose expected score against the baseline is `score` (0–100)."""
    s = np.clip(np.asarray(score, dtype=float), 1e-9, 100 - 1e-9)
    return baseline_elo + 400.0 * np.log10(s / (100.0 - s))
