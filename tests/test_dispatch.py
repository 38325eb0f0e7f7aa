"""The game dispatcher (arena_eval/dispatch.py) on its own: which games can be posed as answers arrive."""

from __future__ import annotations

import random

import pytest

from arena_eval.dispatch import GameDispatcher
from arena_eval.records import Answer, AnswerError

CONTESTANTS = ["base", "c1", "c2"]


def answer(contestant: str, question: str, cached: bool = False) -> Answer:
    return Answer(f"{contestant}-{question}", contestant, f"cfg-{contestant}", question, "p", f"text {contestant}",
                  cached=cached)


def error(contestant: str, question: str) -> AnswerError:
    return AnswerError(contestant, f"cfg-{contestant}", question, "HTTP 500", 3)


def pairs(ready) -> list[tuple[str, str]]:
    return [(p.answer.answer_id, p.base.answer_id) for p in ready]


def test_a_contestant_answer_after_the_baselines_pairs_at_once():
    d = GameDispatcher(CONTESTANTS, "base")
    assert d.deliver(answer("base", "q1")) == []
    assert pairs(d.deliver(answer("c1", "q1"))) == [("c1-q1", "base-q1")]
    assert d.open_questions == 1  # c2 has not delivered q1 yet
    assert pairs(d.deliver(answer("c2", "q1"))) == [("c2-q1", "base-q1")]
    assert d.open_questions == 0  # everyone delivered: the texts are dropped


def test_answers_that_arrive_before_the_baselines_wait_for_it():
    d = GameDispatcher(CONTESTANTS, "base")
    assert d.deliver(answer("c2", "q1")) == [] and d.deliver(answer("c1", "q1")) == []
    assert pairs(d.deliver(answer("base", "q1"))) == [("c2-q1", "base-q1"), ("c1-q1", "base-q1")]
    assert d.open_questions == 0


def test_a_baseline_error_drops_the_waiting_answers_and_pairs_nothing_later():
    d = GameDispatcher(CONTESTANTS, "base")
    assert d.deliver(answer("c1", "q1")) == []
    assert d.deliver(error("base", "q1")) == []
    assert d.deliver(answer("c2", "q1")) == []  # no baseline answer: no game to pose
    assert d.open_questions == 0


def test_a_contestant_error_pairs_nothing_and_the_others_go_on():
    d = GameDispatcher(CONTESTANTS, "base")
    d.deliver(answer("base", "q1"))
    assert d.deliver(error("c1", "q1")) == []
    assert pairs(d.deliver(answer("c2", "q1"))) == [("c2-q1", "base-q1")]
    assert d.open_questions == 0


def test_stored_answers_of_a_resumed_run_pair_like_new_ones_and_a_repeat_changes_nothing():
    d = GameDispatcher(CONTESTANTS, "base")
    d.deliver(answer("base", "q1", cached=True))
    assert pairs(d.deliver(answer("c1", "q1", cached=True))) == [("c1-q1", "base-q1")]
    assert d.deliver(answer("c1", "q1")) == []  # the same contestant and question again


def test_a_contestant_that_finishes_without_some_answers_stops_holding_those_questions():
    # Judging stored answers delivers only the answers it finds: questions a contestant never answered must not
    # stay in memory until the end.
    d = GameDispatcher(CONTESTANTS, "base")
    d.deliver(answer("base", "q1"))
    d.deliver(answer("c1", "q1"))
    assert d.open_questions == 1
    d.finish("c2")
    assert d.open_questions == 0
    assert pairs(d.deliver(answer("c1", "q2"))) == []  # q2: the baseline may still come
    d.finish("base")  # it did not: the waiting answer is dropped
    assert d.open_questions == 0


def test_the_baseline_must_be_a_contestant():
    with pytest.raises(ValueError, match="baseline 'x' is not among the contestants"):
        GameDispatcher(CONTESTANTS, "x")


def test_any_order_of_answers_and_errors_gives_exactly_the_pairs_both_sides_answered():
    """500 random interleavings of 3 contestants × 30 questions, each item an answer or (1 in 5) an error:
    every pairing the rule calls for appears exactly once, nothing else, and nothing stays held at the end."""
    rng = random.Random(7)
    questions = [f"q{i}" for i in range(30)]
    for _ in range(500):
        items = [error(c, q) if rng.random() < 0.2 else answer(c, q) for c in CONTESTANTS for q in questions]
        rng.shuffle(items)
        d = GameDispatcher(CONTESTANTS, "base")
        produced, peak = [], 0
        for item in items:
            produced += pairs(d.deliver(item))
            peak = max(peak, d.open_questions)
        answered = {(i.contestant, i.question_id) for i in items if isinstance(i, Answer)}
        expected = sorted((f"{c}-{q}", f"base-{q}") for c in CONTESTANTS[1:] for q in questions
                          if (c, q) in answered and ("base", q) in answered)
        assert sorted(produced) == expected
        assert d.open_questions == 0 and peak <= len(questions)
