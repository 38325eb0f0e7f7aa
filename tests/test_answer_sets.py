"""Answer sets (arena_eval/answer_sets.py): which stored answer is current, as collection recorded it."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import yaml
from conftest import write_config

from arena_eval import Arena, load_config
from arena_eval.answer_sets import AnswerSets, current_among, question_digest
from arena_eval.config import ContestantConfig
from arena_eval.questions import Question
from arena_eval.records import Answer
from arena_eval.store import Store

Q = Question("q1", "What is the capital of France?")
# Corpora with one passage per country (each paragraph longer than half a chunk, so none share a chunk).
PARIS = ("Paris is the capital of France, on the Seine, and its largest city by far.\n\n"
         "Madrid is the capital of Spain, on the Manzanares, in the middle of the country.")
LYON = ("Lyon is a city of France, where the Rhone and the Saone rivers meet each other.\n\n"
        "Seville is a city of Spain, in Andalusia, on the banks of the Guadalquivir river.")
PORTS = ("Marseille is a port of France, on the Mediterranean Sea, founded by Greek sailors.\n\n"
         "Bilbao is a port of Spain, on the Bay of Biscay, known for its museum of modern art.")


def stored(store: Store, set_id: str, answer_id: str, question: Question, created_at: float, digest: bool = True) -> None:
    store.save_answer(Answer(answer_id, "c", set_id, question.question_id, answer_id, f"text {answer_id}",
                             created_at=created_at, question_digest=question_digest(question) if digest else None))


def test_the_newest_answer_to_the_questions_current_text_is_current():
    digest = question_digest(Q)
    other = question_digest(Question("q1", "What is the capital of Spain?"))
    assert current_among([("a", digest, 1.0), ("b", digest, 2.0)], digest) == "b"
    assert current_among([("a", digest, 1.0), ("b", other, 2.0)], digest) == "a"  # b answered another text
    assert current_among([("a", None, 1.0)], digest) == "a"  # stored before digests existed: counts
    assert current_among([("b", other, 2.0)], digest) is None


def test_a_recorded_choice_wins_and_a_recorded_none_means_no_current_answer(tmp_path):
    c = ContestantConfig(name="c", model="m", base_url="http://x/v1")
    with Store(tmp_path / "arena.db") as store:
        sets = AnswerSets.open(store, [c])
        set_id = sets.set_id(c)
        assert set_id == c.base_config_id  # no refresh: the configuration's own set
        stored(store, set_id, "old", Q, 1.0)
        stored(store, set_id, "new", Q, 2.0)
        assert sets.current(c, [Q]) == {"q1": "new"} and sets.current_id(c, Q) == "new"
        store.set_current(set_id, "q1", "old")  # collection reused the older answer (its prompt came back)
        assert sets.current(c, [Q]) == {"q1": "old"} and sets.current_id(c, Q) == "old"
        store.set_current(set_id, "q1", None)  # collection failed on a changed prompt
        assert sets.current(c, [Q]) == {} and sets.current_id(c, Q) is None


def test_an_edited_question_has_no_current_answer_until_it_is_answered_again(tmp_path):
    c = ContestantConfig(name="c", model="m", base_url="http://x/v1")
    edited = Question("q1", "What is the capital of Spain?")
    with Store(tmp_path / "arena.db") as store:
        sets = AnswerSets.open(store, [c])
        stored(store, sets.set_id(c), "paris", Q, 1.0)
        assert sets.current(c, [edited]) == {} and sets.current_id(c, edited) is None
        assert sets.current(c, [Q]) == {"q1": "paris"}  # the text changed back: the answer counts again


def test_refreshing_opens_an_epoch_and_a_killed_refresh_is_resumed(tmp_path):
    c = ContestantConfig(name="api", model="m", base_url="http://x/v1", refresh="always")
    with Store(tmp_path / "arena.db") as store:
        assert AnswerSets.open(store, [c]).set_id(c) == c.base_config_id  # reading: nothing opened
        store.start_run("r1", "t", "run", {})
        assert AnswerSets.open(store, [c], "r1").set_id(c) == f"{c.base_config_id}@r1"
        store.finish_run("r1", "running", {})  # killed: it never finished
        store.start_run("r2", "t", "run", {})
        assert AnswerSets.open(store, [c], "r2").set_id(c) == f"{c.base_config_id}@r1"  # resumed, no third set
        assert AnswerSets.open(store, [c]).set_id(c) == f"{c.base_config_id}@r1"


@pytest.mark.slow
def test_scoring_uses_what_collection_recorded_even_when_the_rag_corpus_moved_away(tmp_path, fake_server):
    """The current answers are looked up, not rebuilt: after the corpus changes, scoring still finds the answers
    collected last; a run with the old corpus again reuses its stored answers and records them as current; a
    failed request after the prompt changed leaves no stale answer standing in for it."""
    server = fake_server()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text(PARIS)
    questions = tmp_path / "capitals.jsonl"
    questions.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Which city is the capital of {country}?"}) + "\n"
                                 for i, country in enumerate(["France", "Spain", "France today", "Spain today"])))
    contestants = [{"name": "base", "model": "m-base"}, {"name": "rag", "model": "m-rag", "augment": "rag"}]
    path = write_config(tmp_path, server.base_url, contestants=contestants, questions=str(questions),
                        rag={"corpus": str(corpus), "top_k": 1, "chunk_chars": 100, "chunk_overlap": 5})
    first = Arena(load_config(path)).run_sync()
    assert first.exit_code == 0 and first.summary.answers_new == 8

    (corpus / "a.md").write_text(LYON)
    time.sleep(0.01)
    second = Arena(load_config(path)).run_sync()  # new passages, new prompts: new answers
    assert second.summary.answers_new == 4 and second.summary.answers_cached == 4
    collected_second = set(second.answers[second.answers.contestant == "rag"].answer_id)

    shutil.rmtree(corpus)  # the corpus moved away: scoring, the report and answers need no retrieval
    arena = Arena(load_config(path))
    scored = arena.run_sync(("score",), "score")
    assert scored.exit_code == 0 and scored.summary.answers_missing == 0 and scored.summary.games_missing == 0
    assert set(scored.answers[scored.answers.contestant == "rag"].answer_id) == collected_second
    assert arena.report().exists()

    corpus.mkdir()
    (corpus / "a.md").write_text(PARIS)
    third = Arena(load_config(path)).run_sync()  # the first corpus again: its answers are stored, none requested
    assert third.summary.answers_new == 0 and third.exit_code == 0
    rag_now = set(third.answers[third.answers.contestant == "rag"].answer_id)
    assert rag_now == set(first.answers[first.answers.contestant == "rag"].answer_id) != collected_second

    (corpus / "a.md").write_text(PORTS)
    data = yaml.safe_load(path.read_text())
    data["contestants"][1]["max_attempts"] = 1
    path.write_text(yaml.safe_dump(data))
    server.faults.always_fail_models.add("m-rag")
    fourth = Arena(load_config(path)).run_sync()  # new prompts, every request fails
    assert fourth.summary.answer_errors == 4 and fourth.summary.answers_missing == 4 and fourth.exit_code == 2
    assert fourth.answers[fourth.answers.contestant == "rag"].empty  # no stale answer counts as current
