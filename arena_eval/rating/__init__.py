"""Bradley-Terry ratings, bootstrap confidence intervals and the leaderboard (docs/design.md, section "Rating").

Pure functions over a battles frame with columns ``question_id``, ``model_a``, ``model_b``, ``winner``
("model_a", "model_b" or "tie") and ``weight``. One module per stage: ``problem`` validates the battles and
reduces them to weighted pair rows (plus scaled style features), ``solver`` fits the logistic regression by
batched Newton steps and runs the bootstrap, ``leaderboard`` turns the fits into scores and intervals, and
``win_rate`` gives the model-free weighted win rates; ``paired`` compares models on the same bootstrap rounds
(differences, p-values, Holm, ranks) and ``compare`` applies it to a battles frame.

The public names are re-exported here; the modules behind them are internal.
"""

from .compare import compare_battles
from .leaderboard import (
    LEADERBOARD_COLUMNS,
    compute_category_leaderboard,
    compute_leaderboard,
    elo_from_score,
    score_from_elo,
)
from .problem import WINNERS
from .solver import BASELINE_ELO
from .win_rate import weighted_win_rate

__all__ = [
    "BASELINE_ELO",
    "LEADERBOARD_COLUMNS",
    "WINNERS",
    "compare_battles",
    "compute_category_leaderboard",
    "compute_leaderboard",
    "elo_from_score",
    "score_from_elo",
    "weighted_win_rate",
]
