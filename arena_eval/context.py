"""What one run is about and what it works with, passed down the stages as one object (docs/design.md §7).

`RunScope` is what an output folder's run is about (config, contestants with the baseline first, questions,
judges); `RunContext` is one run's scope with the store, the answer sets, the prompt builder, the run's id, its
summary, its progress and its spending cap, which the stream, batch mode and the recorders share. This module sits
right after the config in the stage order: the types of the later stages it names are imported for type checking
only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import ContestantConfig, RunConfig
from .records import RunSummary

if TYPE_CHECKING:
    from .answer_sets import AnswerSets
    from .augment import Augmenter
    from .judge import RunJudge
    from .progress import Progress
    from .questions import QuestionSet
    from .spending import SpendingCap
    from .store import Store


@dataclass(frozen=True)
class RunScope:
    """What one output folder's run is about: its config, its contestants (the baseline first), its questions
    and its judges."""

    config: RunConfig
    contestants: list[ContestantConfig]
    questions: QuestionSet
    judges: list[RunJudge]

    @property
    def baseline(self) -> ContestantConfig:
        return self.contestants[0]

    @functools.cached_property
    def _categories(self) -> dict[str, str | None]:
        """question_id → category, where a category has a baseline or judge prompts of its own (else empty)."""
        if not (self.config.category_baselines or any(j.by_category for j in self.judges)):
            return {}
        return {q.question_id: q.category for q in self.questions}

    @property
    def by_category(self) -> bool:
        """Whether the categories have baselines of their own (`baseline:` as a mapping)."""
        return bool(self.config.category_baselines)

    def category_of(self, question_id: str) -> str | None:
        return self._categories.get(question_id)

    def baseline_for(self, question_id: str) -> str:
        """The name of the question's baseline: its category's own, where the config gives one."""
        if not self.config.category_baselines:
            return self.contestants[0].name
        return self.config.baseline_for_category(self._categories.get(question_id)) or self.contestants[0].name

    @property
    def baselines(self) -> dict[str, str]:
        """category → baseline name (`default` included) when the categories have their own; else empty."""
        return dict(self.config.category_baselines)

    @functools.cached_property
    def conversations(self) -> frozenset[str]:
        """The ids of the questions with several user turns (usually none)."""
        return frozenset(q.question_id for q in self.questions if q.multi_turn)

    @property
    def rated_judges(self) -> list[RunJudge]:
        """The judges whose verdicts the rating uses: every one (`rating.judges: pooled`), or the one named."""
        chosen = self.config.rating.judges
        return self.judges if chosen == "pooled" else [j for j in self.judges if j.name == chosen]


@dataclass(frozen=True)
class RunContext:
    """One run's scope and what it works with: the store, the answer sets in use, the prompt builder, the run's
    id, the summary it counts into, the progress it reports to, and the spending cap (`run --max-cost`; one for
    the whole run, so that every pass of the stream counts against the same sum)."""

    scope: RunScope
    store: Store
    sets: AnswerSets
    augmenter: Augmenter
    run_id: str
    summary: RunSummary
    progress: Progress
    cap: SpendingCap


def judge_energy_lines(scope: RunScope) -> dict[str, str]:
    """judge config id → the name of its line in the energy table: "(judge)", or "(judge NAME)" with several."""
    if len(scope.judges) == 1:
        return {scope.judges[0].config_id: "(judge)"}
    return {j.config_id: f"(judge {j.name})" for j in scope.judges}
