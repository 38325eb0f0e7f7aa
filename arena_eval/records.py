"""The records that flow through the pipeline: one definition each, used by the store, exports and reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]


@dataclass
class Completion:
    """What a provider returns for one chat request."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    tokens_estimated: bool = False
    finish_reason: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    cost: float | None = None
    raw_model: str | None = None


@dataclass
class Answer:
    answer_id: str
    contestant: str
    config_id: str
    question_id: str
    prompt_hash: str
    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    tokens_estimated: bool = False
    finish_reason: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    cost: float | None = None
    created_at: float | None = None
    run_id: str | None = None
    # Ids of the passages retrieved into the prompt (augment: rag), for audit.
    context_ids: list[str] | None = None
    # True when the answer was already stored before this run (nothing was requested).
    cached: bool = field(default=False, compare=False)


@dataclass
class AnswerError:
    """A request that failed after every retry. Never stored, exported or judged as an answer."""

    contestant: str
    config_id: str
    question_id: str
    reason: str
    attempts: int


@dataclass
class Game:
    """One judge call: the answer in position A against the answer in position B."""

    game_id: str
    question_id: str
    contestant: str
    baseline: str
    game: int  # 1: baseline in position A; 2: positions swapped
    answer_a_id: str
    answer_b_id: str


@dataclass
class Judgment:
    game_id: str
    judge_config_id: str
    question_id: str
    contestant: str
    baseline: str
    game: int
    answer_a_id: str
    answer_b_id: str
    verdict: str | None  # canonical label such as "A>B"; None when unparsed
    judge_text: str
    attempts: int
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float | None = None
    run_id: str | None = None
    cost: float | None = None
    # Why the judge's replies were suspicious (verdict.FLAGS, comma-separated); None when nothing was.
    flags: str | None = None
    cached: bool = field(default=False, compare=False)


@dataclass
class GameError:
    game_id: str
    question_id: str
    contestant: str
    game: int
    reason: str
    attempts: int


@dataclass
class RunSummary:
    run_id: str
    questions: int
    contestants: list[str]
    answers_new: int = 0
    answers_cached: int = 0
    answer_errors: int = 0
    answers_missing: int = 0
    guidance_errors: int = 0
    games_new: int = 0
    games_cached: int = 0
    games_unparsed: int = 0
    games_suspicious: int = 0  # new judgments whose replies were flagged (verdict.FLAGS)
    game_errors: int = 0
    games_missing: int = 0
    errors_by_contestant: dict[str, int] = field(default_factory=dict)
    # Earlier runs of the folder found still 'running' (killed) and marked interrupted by this one.
    unfinished_runs: list[str] = field(default_factory=list)
    # [old name, new name] of contestants renamed in the config whose stored work this run carried over.
    renamed: list[list[str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not (self.answer_errors or self.answers_missing or self.game_errors or self.games_missing
                    or self.guidance_errors)
