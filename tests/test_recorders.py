"""What storing an answer and storing a verdict mean (recorders.py), on a real SQLite store."""

from __future__ import annotations

from arena_eval.judge import games_for
from arena_eval.recorders import AnswerRecorder, VerdictRecorder
from arena_eval.records import Answer, AnswerError, Judgment, RunSummary
from arena_eval.store import Store


class RecordedProgress:
    """A progress that keeps every call, to see what the recorders advanced."""

    def __init__(self):
        self.calls: list[tuple] = []

    def add(self, stage: str, total: int) -> None:
        self.calls.append(("add", stage, total))

    def advance(self, stage: str, *, error: bool = False, cached: bool = False) -> None:
        self.calls.append((stage, error, cached))

    def status(self, line: str) -> None: ...

    def close(self) -> None: ...


def _answer(answer_id: str, question_id: str = "q1", set_id: str = "set-a", cached: bool = False) -> Answer:
    answer = Answer(answer_id, "a", set_id, question_id, "hash", f"text of {answer_id}", output_tokens=3,
                    created_at=1.0)
    answer.cached = cached
    return answer


def test_a_saved_answer_is_made_current_only_when_the_caller_says_so(tmp_path):
    with Store(tmp_path / "arena.db") as store:
        recorder = AnswerRecorder(store, "run-1")
        recorder.saved(_answer("x1", "q1"), current=False)
        recorder.saved(_answer("x2", "q2"), current=True)
        assert store.get_answer("x1").text == "text of x1" and store.get_answer("x2").text == "text of x2"
        assert store.current_override("set-a", "q1") == (False, None)
        assert store.current_override("set-a", "q2") == (True, "x2")
        recorder.reused("set-a", "q1", "x1")
        assert store.current_override("set-a", "q1") == (True, "x1")


def test_a_failed_answer_is_stored_and_leaves_no_older_answer_standing_in_when_asked(tmp_path):
    summary = RunSummary("run-1", 2, ["a"])
    progress = RecordedProgress()
    with Store(tmp_path / "arena.db") as store:
        recorder = AnswerRecorder(store, "run-1", summary, progress)
        recorder.saved(_answer("old", "q1"), current=True)
        returned = recorder.failed(AnswerError("a", "set-a", "q1", "timed out", 3), clear_current=True)
        recorder.failed(AnswerError("a", "set-a", "q2", "timed out", 3), clear_current=False, count=True)
        assert returned.question_id == "q1"
        assert store.failed_answers() == {("set-a", "q1"), ("set-a", "q2")}
        assert store.current_override("set-a", "q1") == (True, None)
        assert store.current_override("set-a", "q2") == (False, None)
    # Only the error counted on the spot is in the summary; neither advanced the progress (no stream handed it on).
    assert (summary.answer_errors, summary.errors_by_contestant) == (1, {"a": 1})
    assert progress.calls == []


def test_what_the_stream_hands_on_is_counted_once_and_advances_the_progress(tmp_path):
    summary = RunSummary("run-1", 3, ["a"])
    progress = RecordedProgress()
    with Store(tmp_path / "arena.db") as store:
        recorder = AnswerRecorder(store, "run-1", summary, progress)
        recorder.delivered(_answer("x1"))
        recorder.delivered(_answer("x2", cached=True))
        recorder.delivered(AnswerError("a", "set-a", "q3", "refused", 1))
        again = AnswerRecorder(store, "run-1", summary, progress, count_answers=False)  # a second pass
        again.delivered(_answer("x1"))
        again.delivered(AnswerError("a", "set-a", "q3", "refused", 1))
    assert (summary.answers_new, summary.answers_cached) == (1, 1)
    assert (summary.answer_errors, summary.errors_by_contestant) == (2, {"a": 2})
    assert progress.calls == [("answers", False, False), ("answers", False, True), ("answers", True, False),
                              ("answers", False, False), ("answers", True, False)]


def test_a_verdict_is_stored_counted_and_advances_the_progress(tmp_path):
    summary = RunSummary("run-1", 1, ["base", "a"])
    progress = RecordedProgress()
    first, second = games_for("judge-1", "q1", "a", "base", "ans-a", "ans-base")
    with Store(tmp_path / "arena.db") as store:
        recorder = VerdictRecorder(store, "run-1", summary, progress)
        recorder.judged(Judgment(first.game_id, "judge-1", "q1", "a", "base", 1, first.answer_a_id,
                                 first.answer_b_id, None, "no label here", 2, flags="cut-off"))
        recorder.failed(second, "judge endpoint kept failing", 5)
        recorder.cached()
        assert store.has_judgment(first.game_id) and not store.has_judgment(second.game_id)
        assert store.failed_games() == {second.game_id}
    assert (summary.games_new, summary.games_unparsed, summary.games_suspicious) == (1, 1, 1)
    assert (summary.game_errors, summary.games_cached) == (1, 1)
    assert progress.calls == [("games", False, False), ("games", True, False), ("games", False, True)]
