"""What the report shows (docs/design.md §5.7), computed from the stages: the report only lays it out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from .config import VerdictWeights
from .context import RunScope
from .errors import ArenaError
from .judge import battle_outcome
from .leaderboard import Leaderboard, compare_contestants
from .records import RunSummary, answer_turns
from .tally import Tally

if TYPE_CHECKING:
    from .store import Store


@dataclass(frozen=True)
class GameView:
    number: int  # 1: the baseline in position A; 2: positions swapped
    verdict: str | None
    judged: bool
    reasoning: str | None
    outcome: str | None  # the verdict read from the contestant's side: "better", "clearly worse", "tie", ...
    flags: str | None = None
    judge: str | None = None  # the judge's name, when the run has several


@dataclass(frozen=True)
class ContestantAnswerView:
    name: str
    answer: str | None
    games: list[GameView]
    turns: list[str] | None = None  # a conversation: the contestant's answer to each user turn
    reasoning: str | None = None  # a reasoning model's thinking, shown folded (never judged)


@dataclass(frozen=True)
class QuestionView:
    id: str
    category: str | None
    prompt: str
    baseline_answer: str | None
    contestants: list[ContestantAnswerView]
    turns: list[str] | None = None  # a conversation: every user turn (prompt is the first)
    baseline_turns: list[str] | None = None
    baseline_reasoning: str | None = None
    baseline: str | None = None  # the question's baseline, where categories have their own


@dataclass
class ReportData:
    """Everything report.html shows, computed by the stages; the report only lays it out."""

    title: str
    run_id: str
    baseline: str
    judge: str
    contestants: list[str]  # without the baseline (with a baseline per category: every contestant)
    questions: list[QuestionView]
    categories: dict[str, str | None]  # question_id → category
    leaderboard: Leaderboard
    summary: RunSummary
    regressions: list[dict] = field(default_factory=list)
    # This run's regression checks (§3.6): per contestant with a previous run, the change and its paired interval.
    changes: list[dict] = field(default_factory=list)
    rated: str = "the judge's verdicts"  # whose verdicts the leaderboard rates, in words
    category_baselines: dict[str, str] = field(default_factory=dict)  # category → its baseline, where set
    # Every pair of rated contestants compared on the board's rounds (`compare --all`, §3.4.8), best first; None
    # with `pairwise_note` saying why when there is no such table (no rounds, nothing rated).
    pairwise: pd.DataFrame | None = None
    pairwise_note: str | None = None
    generated: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))


def report_data(scope: RunScope, store: Store, tally: Tally, board: Leaderboard, run_id: str, summary: RunSummary,
                regressions: pd.DataFrame | None) -> ReportData:
    pairwise, note = pairwise_table(board)
    return ReportData(
        title=scope.config.name,
        run_id=run_id,
        baseline=scope.baseline.name,
        judge=", ".join(f"{j.config.provider}:{j.config.model or Path(j.config.model_path or '').name}"
                        + (f" ({j.name})" if len(scope.judges) > 1 else "") for j in scope.judges),
        contestants=[c.name for c in (scope.contestants if scope.by_category else scope.contestants[1:])],
        questions=question_views(scope, store, tally),
        categories={q.question_id: q.category for q in scope.questions},
        leaderboard=board,
        summary=summary,
        regressions=[] if regressions is None else regressions.to_dict("records"),
        changes=sorted((c for c in store.regression_checks() if c["run_id"] == run_id), key=lambda c: c["model"]),
        category_baselines=scope.baselines,
        rated=("every judge's verdicts, pooled" if scope.config.rating.judges == "pooled"
               else f"judge {scope.config.rating.judges}'s verdicts only"),
        pairwise=pairwise,
        pairwise_note=note,
    )


def pairwise_table(board: Leaderboard) -> tuple[pd.DataFrame | None, str | None]:
    """`compare --all` on the board (every pair, Holm-corrected), or None and the reason it cannot be made."""
    try:
        return compare_contestants(board), None
    except ArenaError as exc:
        return None, str(exc)


def question_views(scope: RunScope, store: Store, tally: Tally) -> list[QuestionView]:
    """Each question with the baseline's answer and, per contestant, its answer and both games' judgments."""
    ids = tally.answer_ids
    several = len(scope.judges) > 1
    judgments = {(judge.name, j.answer_a_id, j.answer_b_id): j for judge in scope.judges
                 for j in store.judgments(judge.config_id)}

    def stored(answer_id: str | None) -> tuple[str | None, list[str] | None, str | None]:
        """(text, each turn's text for a conversation, reasoning) of one answer; Nones when there is none."""
        answer = store.get_answer(answer_id) if answer_id is not None else None
        if answer is None:
            return None, None, None
        return answer.text, answer_turns(answer) if answer.turns else None, answer.reasoning

    out = []
    for q in scope.questions:
        base = scope.baseline_for(q.question_id)
        base_id = ids[base].get(q.question_id)
        answers = []
        for c in scope.contestants:
            if c.name == base:
                continue
            aid = ids[c.name].get(q.question_id)
            games = []
            for judge in scope.judges:
                for number, key in ((1, (base_id, aid)), (2, (aid, base_id))):
                    j = judgments.get((judge.name, *key)) if aid and base_id else None
                    games.append(GameView(number, j.verdict if j else None, j is not None, j.judge_text if j else None,
                                          contestant_outcome(j.verdict, number) if j and j.verdict else None,
                                          j.flags if j else None, judge.name if several else None))
            answer, turns, reasoning = stored(aid)
            answers.append(ContestantAnswerView(c.name, answer, games, turns, reasoning))
        base_text, base_turns, base_reasoning = stored(base_id)
        out.append(QuestionView(q.question_id, q.category, q.prompt, base_text, answers,
                                list(q.turns) if q.multi_turn else None, base_turns, base_reasoning,
                                base if scope.by_category else None))
    return out


def contestant_outcome(verdict: str, game: int) -> str:
    """A verdict read from the contestant's side (it sits in position B in game 1, A in game 2)."""
    winner, _ = battle_outcome(verdict, game, VerdictWeights())
    if winner == "tie":
        return "tie"
    strength = "clearly " if ">>" in verdict else ""
    return f"{strength}{'better' if winner == 'model_b' else 'worse'}"
