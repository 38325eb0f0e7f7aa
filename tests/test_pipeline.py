"""End-to-end runs against the fake OpenAI-compatible server: faults, errors, resume, streaming, locking."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import write_config

from arena_eval import Arena, load_config
from arena_eval.errors import StoreLockedError
from arena_eval.store import RunLock

CLI = [sys.executable, "-m", "arena_eval.cli"]


def db_rows(config_path: Path, query: str) -> list[tuple]:
    config = load_config(config_path)
    with sqlite3.connect(config.output_dir / "arena.db") as db:
        return db.execute(query).fetchall()


@pytest.mark.slow
def test_faults_and_slow_replies_end_with_one_answer_per_key_and_every_game_judged(tmp_path, fake_server):
    server = fake_server(error_rate_429=0.05, error_rate_500=0.05, slow_rate=0.05, slow_s=0.3, seed=3)
    contestants = [{"name": "base", "model": "m-base", "concurrency": 32},
                   {"name": "c1", "model": "m-c1", "concurrency": 32},
                   {"name": "c2", "model": "m-c2", "concurrency": 32, "stream": True}]
    path = write_config(tmp_path, server.base_url, n_questions=200, contestants=contestants, judge={"concurrency": 64})
    result = Arena(load_config(path)).run_sync()

    assert result.exit_code == 0, result.summary
    s = result.summary
    assert (s.answers_new, s.answer_errors, s.games_new, s.game_errors) == (600, 0, 800, 0)
    per_key = db_rows(path, "SELECT config_id, question_id, prompt_hash, COUNT(*) FROM answers GROUP BY 1, 2, 3")
    assert len(per_key) == 600 and all(row[3] == 1 for row in per_key)
    assert db_rows(path, "SELECT COUNT(DISTINCT game_id), COUNT(*) FROM judgments") == [(800, 800)]
    # Faults really happened and were retried: more requests than successes.
    assert sum(server.requests.values()) > sum(server.successes.values())
    board = result.leaderboard.set_index("model")
    assert board.loc["base", "score"] == 50.0
    assert board.loc[["c1", "c2"], "battles"].min() > 0
    # The streamed contestant recorded a time to first token.
    assert db_rows(path, "SELECT COUNT(*) FROM answers WHERE contestant='c2' AND ttft_s IS NOT NULL") == [(200,)]


@pytest.mark.slow
def test_an_endpoint_that_always_fails_ends_in_recorded_errors_and_exit_code_2(tmp_path, fake_server):
    server = fake_server(always_fail_models={"m-broken"})
    contestants = [{"name": "base", "model": "m-base"}, {"name": "ok", "model": "m-ok"},
                   {"name": "broken", "model": "m-broken", "max_attempts": 3}]
    path = write_config(tmp_path, server.base_url, n_questions=12, contestants=contestants)
    server.capture = True
    run = subprocess.run([*CLI, "run", "--config", str(path), "--format", "json"], capture_output=True, text=True)

    assert run.returncode == 2, run.stderr
    assert "errors by contestant: broken: 12" in run.stderr
    assert "incomplete" in run.stderr
    errors = db_rows(path, "SELECT contestant, reason, attempts FROM errors WHERE stage='answer'")
    assert len(errors) == 12 and {e[0] for e in errors} == {"broken"}
    assert all("HTTP 500" in e[1] and e[2] == 3 for e in errors)
    assert db_rows(path, "SELECT COUNT(*) FROM answers WHERE contestant='broken'") == [(0,)]
    assert db_rows(path, "SELECT COUNT(*) FROM judgments WHERE contestant='broken'") == [(0,)]
    judge_prompts = [m["content"] for body in server.captured if body["model"] == "judge-model" for m in body["messages"]]
    assert judge_prompts and not any("injected" in p or "m-broken" in p for p in judge_prompts)
    rows = {r["model"]: r for r in json.loads(run.stdout)}
    assert rows["ok"]["battles"] > 0
    assert rows["broken"]["score"] is None and rows["broken"]["answers_missing"] == 12


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_does_only_the_missing_work(tmp_path, fake_server):
    server = fake_server(latency_s=0.05)
    contestants = [{"name": "base", "model": "m-base", "concurrency": 4},
                   {"name": "c1", "model": "m-c1", "concurrency": 4},
                   {"name": "c2", "model": "m-c2", "concurrency": 4}]
    path = write_config(tmp_path, server.base_url, n_questions=60, contestants=contestants, judge={"concurrency": 4})
    total_answers, total_games = 3 * 60, 2 * 60 * 2
    process = subprocess.Popen([*CLI, "run", "--config", str(path), "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and sum(server.successes.values()) < (total_answers + total_games) // 3:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()

    stored_answers = db_rows(path, "SELECT COUNT(*) FROM answers")[0][0]
    stored_games = db_rows(path, "SELECT COUNT(*) FROM judgments")[0][0]
    assert 0 < stored_answers + stored_games < total_answers + total_games
    before = sum(server.requests.values())

    rerun = subprocess.run([*CLI, "run", "--config", str(path), "--no-progress"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    sent = sum(server.requests.values()) - before
    assert sent == (total_answers - stored_answers) + (total_games - stored_games)
    assert db_rows(path, "SELECT COUNT(*), COUNT(DISTINCT config_id || question_id) FROM answers") == [(180, 180)]
    assert db_rows(path, "SELECT COUNT(*) FROM judgments") == [(total_games,)]
    assert db_rows(path, "PRAGMA integrity_check") == [("ok",)]

    # A third run finds everything stored and sends nothing.
    before = sum(server.requests.values())
    again = subprocess.run([*CLI, "run", "--config", str(path), "--no-progress"], capture_output=True, text=True)
    assert again.returncode == 0 and sum(server.requests.values()) == before
    assert "180 stored before" in again.stderr


@pytest.mark.slow
def test_a_second_run_on_the_same_output_stops_at_once(tmp_path, fake_server):
    server = fake_server()
    path = write_config(tmp_path, server.base_url)
    config = load_config(path)
    with RunLock(config.output_dir):
        started = time.monotonic()
        run = subprocess.run([*CLI, "run", "--config", str(path)], capture_output=True, text=True)
        assert time.monotonic() - started < 30
    assert run.returncode == 1
    assert "another arena-eval run" in run.stderr and str(os.getpid()) in run.stderr
    with pytest.raises(StoreLockedError):
        with RunLock(config.output_dir), RunLock(config.output_dir):
            pass
    assert sum(server.requests.values()) == 0


@pytest.mark.slow
def test_stages_run_separately_and_judge_waits_for_answers(tmp_path, fake_server):
    server = fake_server()
    path = write_config(tmp_path, server.base_url, n_questions=8)
    answers = subprocess.run([*CLI, "answers", "--config", str(path)], capture_output=True, text=True)
    assert answers.returncode == 0, answers.stderr
    assert server.requests["judge-model"] == 0 and server.requests["model-c1"] == 8
    judge = subprocess.run([*CLI, "judge", "--config", str(path)], capture_output=True, text=True)
    assert judge.returncode == 0, judge.stderr
    assert server.requests["judge-model"] == 16 and server.requests["model-c1"] == 8
    score = subprocess.run([*CLI, "score", "--config", str(path), "--format", "json"], capture_output=True, text=True)
    assert score.returncode == 0, score.stderr
    rows = {r["model"]: r for r in json.loads(score.stdout)}
    # The fake judge prefers the longer answer; "model-base" is longer than "model-c1", so c1 loses every game.
    assert rows["c1"]["score"] < 1 and rows["base"]["score"] == 50
    assert set(rows["c1"]) >= {"model", "score", "ci_low", "ci_high", "elo", "battles"}


@pytest.mark.parametrize("mode, unparsed, requests_per_game", [("second-try", 0, 2), ("none", 1, 2), ("conflict", 1, 2)])
def test_judge_replies_without_one_label_are_reasked_once_then_counted_unparsed(tmp_path, fake_server, mode, unparsed, requests_per_game):
    server = fake_server(judge_verdict=mode)
    server.capture = True
    path = write_config(tmp_path, server.base_url, n_questions=5)
    result = Arena(load_config(path)).run_sync()
    assert result.summary.games_new == 10 and result.summary.games_unparsed == 10 * unparsed
    assert server.requests["judge-model"] == 10 * requests_per_game
    reasks = [b["messages"] for b in server.captured if b["model"] == "judge-model" and len(b["messages"]) == 4]
    # The re-ask continues the same conversation: the judge's first reply, then the request for a label.
    assert len(reasks) == 10 and all(m[2]["role"] == "assistant" and "[[A>>B]]" in m[3]["content"] for m in reasks)
    row = result.leaderboard.set_index("model").loc["c1"]
    assert row["unparsed_rate"] == unparsed
    texts = db_rows(path, "SELECT judge_text, attempts FROM judgments")
    assert all(attempts == 2 and "re-asked" in text for text, attempts in texts)


def test_a_failing_judge_leaves_games_missing_and_exit_code_2(tmp_path, fake_server):
    server = fake_server(always_fail_models={"judge-model"})
    path = write_config(tmp_path, server.base_url, n_questions=4, judge={"max_attempts": 2})
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 2
    assert (result.summary.answers_new, result.summary.game_errors, result.summary.games_missing) == (8, 8, 8)
    assert db_rows(path, "SELECT COUNT(*) FROM errors WHERE stage='judge' AND reason LIKE 'HTTP 500%'") == [(8,)]
    assert db_rows(path, "SELECT COUNT(*) FROM judgments") == [(0,)]


@pytest.mark.parametrize("choice, expected", [("uvloop", "uvloop"), ("asyncio", "asyncio"), ("ASYNCIO ", "asyncio")])
def test_runs_use_uvloop_unless_asked_for_asyncio(monkeypatch, choice, expected):
    import asyncio

    from arena_eval.pipeline import run_event_loop

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    monkeypatch.setenv("ARENA_EVAL_EVENT_LOOP", choice)
    assert run_event_loop(loop_module()) == expected


def test_an_unknown_event_loop_choice_is_a_clear_error(monkeypatch):
    from arena_eval.errors import ArenaError
    from arena_eval.pipeline import run_event_loop

    async def nothing() -> None:
        return None

    monkeypatch.setenv("ARENA_EVAL_EVENT_LOOP", "trio")
    coroutine = nothing()
    with pytest.raises(ArenaError, match="ARENA_EVAL_EVENT_LOOP='trio': use uvloop or asyncio"):
        run_event_loop(coroutine)
    coroutine.close()


def test_collect_answers_yields_every_question_once_through_the_generator(tmp_path, fake_server):
    """The public async generator (the pipeline itself uses collect_into's callback)."""
    import asyncio

    from arena_eval.collect import collect_answers
    from arena_eval.providers import make_provider
    from arena_eval.records import Answer
    from arena_eval.store import Store

    server = fake_server()
    arena = Arena(load_config(write_config(tmp_path, server.base_url, n_questions=7)))
    contestant = arena.contestants[1]

    async def collect() -> list:
        provider = make_provider(contestant)
        await provider.start()
        try:
            with Store(tmp_path / "gen.db") as store:
                augmenter = arena.augmenter(store)
                return [item async for item in collect_answers(contestant, provider, arena.questions, store,
                                                               lambda q: augmenter.prepare(contestant, q))]
        finally:
            await provider.close()

    items = asyncio.run(collect())
    assert sorted(i.question_id for i in items) == sorted(q.question_id for q in arena.questions)
    assert all(isinstance(i, Answer) and not i.cached for i in items)


def test_a_file_question_set_is_streamed_through_a_run_and_the_judge_gets_each_prompt(tmp_path, fake_server, monkeypatch):
    from arena_eval.questions import QuestionSet

    def materialised(self):
        raise AssertionError("the pipeline read QuestionSet.questions (the whole set as a list)")

    monkeypatch.setattr(QuestionSet, "questions", property(materialised))
    server = fake_server()
    contestants = [{"name": "base", "model": "m-base"}, {"name": "c1", "model": "m-c1"}, {"name": "c2", "model": "m-c2"}]
    path = write_config(tmp_path, server.base_url, n_questions=20, contestants=contestants)
    arena = Arena(load_config(path))
    assert not arena.questions.in_memory
    server.capture = True
    result = arena.run_sync(stages=("answers", "judge"))

    assert (result.summary.answers_new, result.summary.games_new, result.summary.answer_errors) == (60, 80, 0)
    judged = [m["content"] for body in server.captured if body["model"] == "judge-model" for m in body["messages"]
              if m["role"] == "user"]
    assert len(judged) == 80
    asked = Counter(text.split("## User prompt\n", 1)[1].split("\n\n## Answer of Assistant A", 1)[0] for text in judged)
    # Both games of both contestants carry the question's own prompt (looked up in the store by id).
    assert asked == {f"Question number {i}?" + " pad" * (i % 7): 4 for i in range(20)}
    # The judge stage alone, on the stored answers: the same games, all already judged.
    again = arena.run_sync(stages=("judge",))
    assert (again.summary.games_cached, again.summary.games_new) == (80, 0)


def test_answers_waiting_for_a_baseline_that_failed_are_dropped_without_games(tmp_path, fake_server):
    server = fake_server(always_fail_models={"m-base"})
    contestants = [{"name": "base", "model": "m-base", "max_attempts": 2}, {"name": "c1", "model": "m-c1"}]
    path = write_config(tmp_path, server.base_url, n_questions=6, contestants=contestants)
    result = Arena(load_config(path)).run_sync(stages=("answers", "judge"))
    s = result.summary
    assert (s.answers_new, s.answer_errors, s.games_new, s.games_missing) == (6, 6, 0, 12)
    assert server.requests["judge-model"] == 0


@pytest.mark.slow
def test_renaming_contestants_carries_their_stored_work_over_to_the_new_names(tmp_path, fake_server):
    server = fake_server(judge_verdict="hash")
    path = write_config(tmp_path, server.base_url, n_questions=5)
    cli = lambda *a: subprocess.run([*CLI, *a, "--config", str(path)], capture_output=True, text=True)  # noqa: E731
    first = cli("run", "--no-progress", "--format", "json")
    assert first.returncode == 0, first.stderr
    scores = {row["model"]: row["score"] for row in json.loads(first.stdout)}
    sent = sum(server.requests.values())

    # The same two configurations under new names, the baseline among them.
    path.write_text(path.read_text().replace("name: c1", "name: c1-renamed").replace("name: base", "name: base-v2")
                    .replace("baseline: base", "baseline: base-v2"))
    report = cli("report")  # reads only: no run lock, nothing moved yet, and still no traceback
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "out" / "t" / "report.html").read_text()
    assert "c1-renamed" in html and "base-v2" in html

    again = cli("run", "--no-progress", "--format", "json")
    assert again.returncode == 0, again.stderr
    for old, new in (("base", "base-v2"), ("c1", "c1-renamed")):
        assert (f"note: contestant {old!r} is now called {new!r} (same configuration): its stored answers, verdicts and "
                "history carry over to the new name") in again.stderr
    assert "answers 0 new, 10 stored before" in again.stderr and "games 0 new, 10 stored before" in again.stderr
    assert sum(server.requests.values()) == sent
    assert {row["model"]: row["score"] for row in json.loads(again.stdout)} == {"base-v2": scores["base"],
                                                                               "c1-renamed": scores["c1"]}
    assert db_rows(path, "SELECT DISTINCT contestant FROM answers ORDER BY 1") == [("base-v2",), ("c1-renamed",)]
    history = json.loads(cli("history", "--contestant", "c1-renamed", "--format", "json").stdout)
    assert len(history) == 2  # the run under the old name counts as its history

    # A new configuration under a name used before is not a rename: it starts fresh.
    path.write_text(path.read_text().replace("model: model-c1", "model: model-c1-new").replace("name: c1-renamed", "name: c1"))
    third = cli("run", "--no-progress")
    assert third.returncode == 0 and "now called" not in third.stderr
    assert server.requests["model-c1-new"] == 5
