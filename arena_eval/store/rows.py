"""Typed rows the store returns where a caller would otherwise index a tuple or an `sqlite3.Row`.

Whole records have their own types in `records.py` (Answer, Judgment, LeaderboardRow) and `questions.py`
(Question); these are the smaller shapes of look-ups. The rows that replaced dicts (`RunRow`, `BatchJob`,
`ErrorRow`, `EpochRow`, `UsageStats`) still answer `row["column"]`, so a caller reads either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


class _ByName:
    """Read a field also by its column name, as the dicts these rows replaced were read."""

    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None


@dataclass(frozen=True)
class RunRow(_ByName):
    """One row of `runs` (docs/design.md §4.4)."""

    run_id: str
    name: str
    command: str
    started_at: float
    finished_at: float | None
    status: str
    config_json: str
    summary_json: str | None


@dataclass(frozen=True)
class EpochRow(_ByName):
    """The newest refreshed answer set of a configuration, with the status of the run that opened it (None when
    that run is not stored)."""

    epoch: str
    run_id: str
    status: str | None


@dataclass(frozen=True)
class ErrorRow(_ByName):
    """One row of `errors`: an answer, a game or a batch result that failed."""

    id: int
    run_id: str | None
    stage: str
    contestant: str
    config_id: str | None
    question_id: str
    game_id: str | None
    reason: str
    attempts: int
    created_at: float


@dataclass(frozen=True)
class BatchJob(_ByName):
    """One row of `batch_jobs`: a batch at a provider (docs/design.md §3.9)."""

    batch_id: str
    kind: str
    provider: str
    endpoint: str
    name: str
    config_id: str
    status: str
    provider_status: str | None
    done: int
    total: int
    created_at: float
    updated_at: float
    run_id: str | None
    collected_run_id: str | None


@dataclass(frozen=True)
class UsageStats(_ByName):
    """Average input and output tokens over some answers or verdicts (None when none is known) and their total
    cost (None when any is unknown)."""

    avg_input_tokens: float | None
    avg_output_tokens: float | None
    cost: float | None


class StoredAnswer(NamedTuple):
    """One answer a set holds for one question: which of them is current is decided from these (answer_sets.py)."""

    answer_id: str
    question_digest: str | None
    created_at: float
    prompt_hash: str


class AnswerCandidate(NamedTuple):
    """One answer of a set, with what decides whether it is current."""

    question_id: str
    answer_id: str
    question_digest: str | None
    created_at: float


class CurrentOverride(NamedTuple):
    """Whether collection recorded a current answer for a question, and which (None: no current answer)."""

    found: bool
    answer_id: str | None


class AdaptiveStart(NamedTuple):
    """Whether an adaptive plan was started, and the scored run it compares with."""

    started: bool
    previous_run_id: str | None


class Resources(NamedTuple):
    """Peak memory of a local contestant's latest collection, and how it was read; Nones when none is stored."""

    peak_memory_gb: float | None
    memory_source: str | None


class BatchItem(NamedTuple):
    """What one custom id of a batch stands for: its question, and the item as submitted."""

    question_id: str
    item: dict[str, Any]


class EnergyTotals(NamedTuple):
    """The sums over an endpoint's energy windows: joules (None when no window measured any), requests, and how
    many windows measured nothing."""

    energy_j: float | None
    requests: int | None
    unmeasured: int


class EpochKey(NamedTuple):
    """One refreshed answer set: its configuration, its epoch and the contestant that opened it."""

    base_config_id: str
    epoch: str
    contestant: str
