"""Adaptive judging against the store (docs/design.md §3.4.5): the plan's key, the scored run it compares with, and
the plan replayed from the stored verdicts. The plan itself (order, batches, stopping) is adaptive.py, with no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .adaptive import AdaptivePlan, Previous, question_order, replay
from .answer_sets import AnswerSets
from .context import RunScope
from .leaderboard import rated_battles
from .tally import settled_questions, tally, unsettled_pairs

if TYPE_CHECKING:
    from .store import Store


def adaptive_key(scope: RunScope, sets: AnswerSets) -> str:
    """Identifies an adaptive plan: its settings, seed, judges, the answer sets and the questions."""
    from .config import stable_hash

    settings = scope.config.rating.adaptive
    return stable_hash({"settings": settings.model_dump(mode="json"), "seed": scope.config.rating.seed,
                        "bootstrap": scope.config.rating.bootstrap, "rounds": scope.config.rating.rounds,
                        "judges": sorted(j.config_id for j in scope.rated_judges),
                        "sets": [sets.set_id(c) for c in scope.contestants],
                        # (left out under pairing: baseline, so that the plans started before pairing keep their key)
                        "pairing": None if scope.config.pairing == "baseline" else _pairing_key(scope),
                        "questions": sorted(q.question_id for q in scope.questions)})


def _pairing_key(scope: RunScope):
    pairing = scope.config.pairing
    return pairing if isinstance(pairing, str) else pairing.model_dump(mode="json")


def previous_results(scope: RunScope, store: Store, run_id: str | None) -> dict[str, Previous]:
    """Each contestant's score and interval in the scored run `run_id` (the one an adaptive plan compares with)."""
    if not run_id:
        return {}
    paired = scope.config.regression.test == "paired"
    return {row["model"]: Previous(row["score"], row["ci_low"], row["ci_high"], paired)
            for row in store.leaderboard_history() if row["run_id"] == run_id
            and None not in (row.get("score"), row.get("ci_low"), row.get("ci_high"))}


def latest_comparable_run(scope: RunScope, store: Store) -> str | None:
    """The latest scored run with the same baseline and the same rated judges (regressions compare with it)."""
    judges = ",".join(sorted(j.config_id for j in scope.rated_judges))
    latest = None
    for row in store.leaderboard_history():
        if row.get("is_baseline") and row["model"] == scope.baseline.name and row.get("judges") in (None, judges):
            latest = row["run_id"]
    return latest


def adaptive_plan(scope: RunScope, store: Store, sets: AnswerSets) -> AdaptivePlan:
    """The plan adaptive judging follows, replayed from the stored verdicts (adaptive.replay), comparing with the
    previous run the plan was started against (recorded by the run), or else the latest comparable one."""
    settings = scope.config.rating.adaptive
    full = tally(scope, store, sets)
    battles = rated_battles(scope, store, full)
    # The previous run the plan compares with is the one its judging run recorded when it started; a plan that
    # no judging run started (adaptive settings added to a finished run, then scored) compares with none, so
    # that every later read replays the same plan.
    _, previous_run = store.adaptive_previous(adaptive_key(scope, sets))
    previous = previous_results(scope, store, previous_run)
    order = question_order([q.question_id for q in scope.questions], scope.config.rating.seed)
    return replay(order, [c.name for c in scope.contestants[1:]], battles, settled_questions(scope, store, sets, full),
                  scope.baseline.name, settings, scope.config.rating, previous, scope.config.regression.score_drop,
                  unsettled_pairs(scope, store, full))
