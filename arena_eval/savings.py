"""What judging less saves (docs/design.md §3.4.5, §3.7): adaptive judging against a full run, and a question set
pruned smaller, in judge calls, answers, tokens, cost and energy from the stored averages.
"""

from __future__ import annotations

import pandas as pd

from .adaptive import AdaptivePlan
from .context import RunScope, judge_energy_lines
from .energy_tables import number_or_none
from .leaderboard import Leaderboard
from .pairing import pairs_per_question
from .records import AdaptiveSummary
from .tally import Tally


def judge_spend_per_game(scope: RunScope, board: Leaderboard) -> tuple[float | None, float | None, float | None]:
    """The judges' average tokens, cost and Wh per game (None where unknown): tokens and cost over the stored
    games, Wh over the judges' measured windows (their energy over the requests they served, every window of
    every run: the windows and the games they served go together)."""
    pooled = board.judges[board.judges.judge == "pooled"].iloc[0] if board.judges is not None else None
    games = float(pooled.games) if pooled is not None and pooled.games else 0.0

    def per_game(total):
        return None if total is None or pd.isna(total) or not games else float(total) / games

    tokens = None if pooled is None else float(pooled.input_tokens) + float(pooled.output_tokens)
    lines = board.energy[board.energy.contestant.isin(set(judge_energy_lines(scope).values()))] \
        if board.energy is not None and "contestant" in board.energy else pd.DataFrame()
    wh = None
    if len(lines) == len(scope.judges) and "requests" in lines and lines.energy_wh.notna().all() \
            and (lines.get("windows_unknown", pd.Series(0, index=lines.index)).fillna(0) == 0).all() \
            and lines.requests.sum() > 0:
        wh = float(lines.energy_wh.sum()) / float(lines.requests.sum())
    return per_game(tokens), per_game(None if pooled is None else pooled.cost), wh


def _times(per_item: float | None, count: float) -> float | None:
    return None if per_item is None else per_item * count


def adaptive_summary(scope: RunScope, plan: AdaptivePlan, board: Leaderboard, tally: Tally) -> AdaptiveSummary:
    """What adaptive judging judged (the stored games its plan calls for) against a full run, and once the plan
    is done what that saved: games, and (from the judged games' averages) the judges' tokens, cost and energy.
    An unfinished plan claims no saving yet."""
    # (every pair of contestants `pairing` has meet on a question counts as one more contestant's two games)
    full = 2 * len(scope.judges) * len(plan.order) * (len(plan.contestants) + pairs_per_question(scope))
    judged = len(tally.judged_game_ids)
    saved = full - judged if plan.done else None
    tokens, cost, wh = judge_spend_per_game(scope, board)
    return AdaptiveSummary(
        games_judged=judged, games_full=full, games_saved=saved,
        tokens_saved=_times(tokens, saved) if saved is not None else None,
        cost_saved=_times(cost, saved) if saved is not None else None,
        wh_saved=_times(wh, saved) if saved is not None else None,
        stopped={c: [len(plan.judged_questions(c)), reason] for c, reason in plan.stopped.items()},
        complete=plan.done,
    )


def pruning_savings(scope: RunScope, board: Leaderboard, dropped: int) -> dict[str, float | int | None]:
    """What a full run over a set `dropped` questions smaller saves: judge calls and answers, and (from the stored
    averages) tokens, cost and Wh, each None where a figure behind it is unknown."""
    n = len(scope.questions)
    calls = 2 * len(scope.judges) * (len(scope.contestants) - 1) * dropped
    tokens, cost, wh = judge_spend_per_game(scope, board)
    rows = board.frame.set_index("model")
    answer_tokens = answer_cost = answer_wh = 0.0
    for c in scope.contestants:
        row = rows.loc[c.name]
        answered = n - int(row.answers_missing)
        tokens_in, tokens_out = number_or_none(row.avg_input_tokens), number_or_none(row.avg_output_tokens)
        spent, energy = number_or_none(row.answer_cost), number_or_none(row.wh_per_pass)
        answer_tokens = _add(answer_tokens, None if tokens_in is None or tokens_out is None
                             else (tokens_in + tokens_out) * dropped)
        answer_cost = _add(answer_cost, None if spent is None or not answered else spent / answered * dropped)
        answer_wh = _add(answer_wh, None if energy is None else energy / n * dropped)
    return {
        "questions_dropped": dropped,
        "judge_calls_saved": calls,
        "answers_saved": len(scope.contestants) * dropped,
        "judge_tokens_saved": _times(tokens, calls),
        "answer_tokens_saved": answer_tokens,
        "cost_saved": _add(_times(cost, calls), answer_cost),
        "judge_wh_saved": _times(wh, calls),
        "answer_wh_saved": answer_wh,
    }


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b
