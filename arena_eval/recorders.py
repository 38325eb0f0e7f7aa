"""What storing an answer and storing a verdict mean, written once (docs/design.md §3.1, §3.3, §3.9, §5.8).

Storing an answer: save it (or its error), keep its answer set's current answer right (answer_sets.py), count it
in the run's summary and advance the progress. Storing a verdict: save it (or the game's error), count it, advance
the progress. Collection, the stream, batch mode and imports all go through `AnswerRecorder` and
`VerdictRecorder`; each call site uses the steps that are its own (collection saves, the stream counts what it is
handed, an import saves and makes current without counting).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .records import Answer, AnswerError, Game, GameError, Judgment, RunSummary

if TYPE_CHECKING:
    from .progress import Progress
    from .store import Store


class AnswerRecorder:
    """Stores one run's answers and answer errors (`run_id` None: an import, which belongs to no run). With a
    `summary` and `progress`, `delivered` counts each answer or error handed on; `count_answers` False leaves the
    answers uncounted (a pass before this one counted the same answers already), never the errors."""

    def __init__(self, store: Store, run_id: str | None, summary: RunSummary | None = None,
                 progress: Progress | None = None, *, count_answers: bool = True):
        self.store, self.run_id = store, run_id
        self.summary, self.progress = summary, progress
        self.count_answers = count_answers

    def saved(self, answer: Answer, *, current: bool) -> None:
        """Save a new answer. `current`: mark it its set's current answer for the question (the set has records
        the rule would otherwise follow, or an import makes its answers current)."""
        self.store.save_answer(answer)
        if current:
            self.store.set_current(answer.config_id, answer.question_id, answer.answer_id)

    def reused(self, set_id: str, question_id: str, answer_id: str) -> None:
        """A stored answer is used again: it is the set's current answer for the question from now on."""
        self.store.set_current(set_id, question_id, answer_id)

    def failed(self, error: AnswerError, *, clear_current: bool, count: bool = False) -> AnswerError:
        """Save an answer error. `clear_current`: the question has older answers, and none of them may stand in
        for the one that failed. `count`: count it in the summary now (batch mode: no stream hands it on)."""
        # Collection without a run (collect.collect_answers) records its errors under none: the column allows it.
        self.store.save_answer_error(error, self.run_id)  # type: ignore[arg-type]
        if clear_current:
            self.store.set_current(error.config_id, error.question_id, None)
        if count:
            self._count_error(error)
        return error

    def delivered(self, item: Answer | AnswerError) -> None:
        """Count an answer (new or cached) or an error handed on to judging, and advance the progress."""
        summary, progress = self._counts()
        if isinstance(item, Answer):
            if self.count_answers:
                summary.answers_cached += item.cached
                summary.answers_new += not item.cached
            progress.advance("answers", cached=item.cached)
        else:
            self._count_error(item)
            progress.advance("answers", error=True)

    def _counts(self) -> tuple[RunSummary, Progress]:
        if self.summary is None or self.progress is None:
            raise ValueError("this AnswerRecorder was made without a summary and a progress: it counts nothing")
        return self.summary, self.progress

    def _count_error(self, error: AnswerError) -> None:
        summary, _ = self._counts()
        summary.answer_errors += 1
        summary.errors_by_contestant[error.contestant] = summary.errors_by_contestant.get(error.contestant, 0) + 1


class VerdictRecorder:
    """Stores one run's verdicts and game errors, counts them in the summary and advances the progress."""

    def __init__(self, store: Store, run_id: str, summary: RunSummary, progress: Progress):
        self.store, self.run_id, self.summary, self.progress = store, run_id, summary, progress

    def judged(self, judgment: Judgment) -> None:
        self.store.save_judgment(judgment)
        summary = self.summary
        summary.games_new += 1
        summary.games_unparsed += judgment.verdict is None
        summary.games_suspicious += judgment.flags is not None
        self.progress.advance("games")

    def failed(self, game: Game, reason: str, attempts: int) -> None:
        self.store.save_game_error(GameError(game.game_id, game.question_id, game.contestant, game.game, reason,
                                             attempts), self.run_id)
        self.summary.game_errors += 1
        self.progress.advance("games", error=True)

    def cached(self) -> None:
        """A game whose verdict is stored already: not asked again."""
        self.summary.games_cached += 1
        self.progress.advance("games", cached=True)
