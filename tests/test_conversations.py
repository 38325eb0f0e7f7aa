"""Questions of several user turns (docs/design.md §3.1.2), end to end against the loopback fake server, which
records every request it gets."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_config

from arena_eval import Arena, load_config

CLI = [sys.executable, "-m", "arena_eval.cli"]

QUESTIONS = [
    {"question_id": "single", "turns": [{"content": "Name a prime."}]},
    {"question_id": "trip", "turns": ["Plan a day in Rome.", "Now make it rain-proof."]},
    {"question_id": "math", "turns": ["What is 6 x 7?", "And halved?", "Squared?"]},
]


def conversation_config(tmp_path: Path, server, **top) -> Path:
    path = write_config(tmp_path, server.base_url, **top)
    with (tmp_path / "questions.jsonl").open("w") as handle:
        for record in QUESTIONS:
            handle.write(json.dumps(record) + "\n")
    return path


def rows(config_path: Path, query: str) -> list[tuple]:
    config = load_config(config_path)
    with sqlite3.connect(config.output_dir / "arena.db") as db:
        return db.execute(query).fetchall()


def contestant_requests(server, model: str) -> list[list[dict]]:
    return [body["messages"] for body in server.captured if body["model"] == model]


def judge_requests(server) -> list[str]:
    return [body["messages"][1]["content"] for body in server.captured if body["model"] == "judge-model"]


def test_each_turn_carries_the_contestants_own_answers_and_the_judge_sees_both_whole_conversations(tmp_path, fake_server):
    server = fake_server()
    server.capture = True
    path = conversation_config(tmp_path, server)
    result = Arena(load_config(path)).run_sync()
    summary = result.summary
    assert summary.complete and summary.answers_new == 6 and summary.games_new == 2 * 3

    # c1 asked 1 + 2 + 3 requests; its later requests hold its own earlier answers, never the baseline's.
    c1 = contestant_requests(server, "model-c1")
    assert len(c1) == 6
    second = next(m for m in c1 if len(m) == 3 and m[0]["content"] == "Plan a day in Rome.")
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[1]["content"] == "Answer from model-c1 to: Plan a day in Rome."
    assert second[2]["content"] == "Now make it rain-proof."
    assert not any("model-base" in m["content"] for messages in c1 for m in messages)
    third = next(m for m in c1 if len(m) == 5)
    assert [m["content"] for m in third[1::2]] == ["Answer from model-c1 to: What is 6 x 7?",
                                                    "Answer from model-c1 to: And halved?"]

    # One stored answer per (contestant, question) holds every turn; tokens and cost count every turn.
    stored = dict(((c, q), (text, json.loads(turns) if turns else None, out)) for c, q, text, turns, out in rows(
        path, "SELECT contestant, question_id, text, turns, output_tokens FROM answers"))
    text, turns, output_tokens = stored[("c1", "math")]
    assert [t["text"] for t in turns] == [f"Answer from model-c1 to: {q}" for q in QUESTIONS[2]["turns"]]
    assert text == turns[-1]["text"] and output_tokens == sum(t["output_tokens"] for t in turns)
    assert stored[("c1", "single")][1] is None
    assert rows(path, "SELECT COUNT(*) FROM answer_turns") == [(0,)]

    # The judge's request for a conversation holds both turns of both assistants, in order.
    prompts = judge_requests(server)
    trip = [p for p in prompts if "Plan a day in Rome." in p]
    assert len(trip) == 2
    for prompt in trip:
        for who in ("model-base", "model-c1"):
            first = prompt.index(f"Answer from {who} to: Plan a day in Rome.")
            assert prompt.index(f"Answer from {who} to: Now make it rain-proof.") > first
        assert prompt.count("Now make it rain-proof.") == 4  # the user's turn in each conversation, and each answer
    single = next(p for p in prompts if "Name a prime." in p)
    assert "Conversation with Assistant A" not in single  # a single-turn question keeps the single-turn prompt

    # The report shows a conversation turn by turn.
    report = (result.output_dir / "report.html").read_text()
    assert "Conversation (3 user turns)" in report and "User, turn 3" in report
    assert "Answer from model-c1 to: And halved?" in report


def test_judging_the_last_turn_only_says_so_and_makes_other_games(tmp_path, fake_server):
    server = fake_server()
    server.capture = True
    path = conversation_config(tmp_path, server, n_questions=3)
    Arena(load_config(path)).run_sync()
    first_games = {r[0] for r in rows(path, "SELECT game_id FROM judgments WHERE question_id != 'single'")}

    config = path.read_text().replace("concurrency: 16", "concurrency: 16\n  turns: last")
    path.write_text(config)
    server.captured.clear()
    summary = Arena(load_config(path)).run_sync().summary
    # The single-turn question's games are unchanged (stored); the conversations' are new games.
    assert summary.games_cached == 2 and summary.games_new == 4
    last = [p for p in judge_requests(server)]
    assert len(last) == 4 and all("last user turn" in p for p in last)
    again = {r[0] for r in rows(path, "SELECT game_id FROM judgments WHERE question_id != 'single'")}
    assert len(again - first_games) == 4


def test_a_turn_failing_on_every_attempt_is_one_error_and_no_game(tmp_path, fake_server):
    server = fake_server(turn_faults={"model-c1": (2, "500")})
    path = conversation_config(tmp_path, server)
    summary = Arena(load_config(path)).run_sync().summary
    assert summary.answer_errors == 2 and not summary.complete  # trip and math: each fails on its second turn
    errors = rows(path, "SELECT contestant, question_id FROM errors WHERE stage='answer'")
    assert sorted(errors) == [("c1", "math"), ("c1", "trip")]
    assert rows(path, "SELECT COUNT(*) FROM answers WHERE contestant='c1'") == [(1,)]
    assert rows(path, "SELECT question_id FROM judgments WHERE contestant='c1'") == [("single",), ("single",)]
    # The first turns that did succeed are kept for the next run.
    assert sorted(rows(path, "SELECT question_id, turn FROM answer_turns")) == [("math", 0), ("trip", 0)]


@pytest.mark.slow
def test_sigkill_between_turns_then_rerun_sends_only_the_missing_turns(tmp_path, fake_server):
    # c1's second turns hang; kill the run once both conversations' first turns are stored and second turns asked.
    # The hang outlasts the wait by far: on a loaded machine (the suite in two workers) a second turn must not be
    # answered before the kill, however long the run takes to reach it.
    server = fake_server(turn_faults={"model-c1": (2, "timeout")}, hang_s=900)
    server.capture = True
    path = conversation_config(tmp_path, server)
    process = subprocess.Popen([*CLI, "run", "--config", str(path), "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and server.faulted["timeout"] < 2:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert server.faulted["timeout"] == 2, "both conversations' second turns should have been asked before the kill"
    assert sorted(rows(path, "SELECT question_id, turn FROM answer_turns")) == [("math", 0), ("trip", 0)]

    server.faults.turn_faults = {}
    server.captured.clear()
    rerun = subprocess.run([*CLI, "run", "--config", str(path), "--no-progress"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    sent = contestant_requests(server, "model-c1")
    # Only the missing turns: trip's second, math's second and third. Each carries the stored first answer.
    assert sorted(len(m) for m in sent) == [3, 3, 5]
    assert rows(path, "SELECT COUNT(*) FROM answers WHERE contestant='c1'") == [(3,)]
    assert rows(path, "SELECT COUNT(*) FROM answer_turns") == [(0,)]


def test_reasoning_is_stored_apart_and_never_reaches_a_judge_or_the_next_turn(tmp_path, fake_server):
    """c1 returns reasoning_content beside its answers; the baseline starts its content with <think>...</think>."""
    server = fake_server(reasoning={"model-c1": "FIELD-THOUGHT about it"},
                         think_tags={"model-base": "TAG-THOUGHT about it"})
    server.capture = True
    path = conversation_config(tmp_path, server)
    result = Arena(load_config(path)).run_sync()
    assert result.summary.complete, result.summary

    def sent(model: str) -> str:
        return json.dumps([body["messages"] for body in server.captured if body["model"] == model])

    judge = sent("judge-model")
    assert "Answer from model-c1" in judge and "Answer from model-base" in judge
    assert "THOUGHT" not in judge and "<think>" not in judge
    # A conversation's next request carries the earlier answer without its thinking.
    assert "THOUGHT" not in sent("model-c1") and "THOUGHT" not in sent("model-base")

    stored = rows(path, "SELECT contestant, question_id, text, reasoning, reasoning_tokens, turns FROM answers")
    for contestant, qid, text, reasoning, tokens, turns in stored:
        thought = "FIELD-THOUGHT about it" if contestant == "c1" else "TAG-THOUGHT about it"
        assert "THOUGHT" not in text and text.startswith("Answer from")
        n_turns = len(json.loads(turns)) if turns else 1
        assert reasoning == "\n\n".join([thought] * n_turns)
        if contestant == "c1":  # counted apart where the provider reports it: 3 words a turn
            assert tokens == 3 * n_turns
        if turns:
            assert all(t["reasoning"] == thought and "THOUGHT" not in t["text"] for t in json.loads(turns))
    report = (result.output_dir / "report.html").read_text()
    assert "Reasoning (not shown to the judge)" in report and "FIELD-THOUGHT about it" in report
