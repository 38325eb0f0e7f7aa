"""Every fault an endpoint can throw ends as a successful retry or as a recorded error, and nothing errored is
ever judged (docs/design.md §3.1). The fake server scripts the faults per prompt, so each case is deterministic."""

from __future__ import annotations

import re
import sqlite3
import tracemalloc
from pathlib import Path

import pytest
from conftest import write_config

from arena_eval import Arena, load_config

N = 4  # questions per run
TIMEOUT_S = 0.5
RETRY_AFTER_S = 0.3
MB = 1024 * 1024

# fault → (retried?, what the recorded reason must say)
FAULTS = {
    "429": (True, r"^HTTP 429 from http://127\.0\.0\.1:\d+/v1: .*rate limit"),
    "500": (True, r"^HTTP 500 from "),
    "503": (True, r"^HTTP 503 from "),
    "529": (True, r"^HTTP 529 from .*overloaded"),
    "timeout": (True, rf"^timeout after {TIMEOUT_S:g}s from http://127\.0\.0\.1"),
    "reset": (True, r"^connection error to http://127\.0\.0\.1:\d+/v1: .*[Rr]eset"),
    "malformed": (True, r"^malformed response from "),
    "truncated": (True, r"truncated stream"),
    "empty": (True, r"^empty content"),
    "401": (False, r"^HTTP 401 from .*\(not retried\)$"),
    "content_filter": (False, r"^provider refused to answer \(finish_reason=content_filter\) \(not retried\)$"),
    "refusal": (False, r"^provider refused to answer: I'm sorry.* \(not retried\)$"),
}
# (fault, the faulty contestant streams): every fault on a plain request, and those a stream meets differently.
CASES = [(fault, fault == "truncated") for fault in FAULTS] + [
    (fault, True) for fault in ("429", "timeout", "reset", "malformed", "empty", "content_filter", "refusal")]
IDS = [f"{fault}{'-stream' if stream else ''}" for fault, stream in CASES]


def rows(path: Path, query: str, *args) -> list[tuple]:
    with sqlite3.connect(load_config(path).output_dir / "arena.db") as db:
        return db.execute(query, args).fetchall()


def run_with(tmp_path: Path, fake_server, scripted: dict, *, stream: bool = False, max_attempts: int = 3):
    server = fake_server(scripted=scripted, retry_after_s=RETRY_AFTER_S, hang_s=5.0)
    server.capture = True
    # Only the faulty endpoint gets the short timeout: a busy machine must not turn healthy replies into faults.
    faulty = {"timeout_s": TIMEOUT_S, "max_attempts": max_attempts}
    contestants = [{"name": "base", "model": "m-base"},
                   {"name": "flaky", "model": "m-flaky", "stream": stream, **(faulty if "m-flaky" in scripted else {})}]
    judge = faulty if "judge-model" in scripted else {}
    path = write_config(tmp_path, server.base_url, n_questions=N, contestants=contestants, judge=judge)
    return server, path, Arena(load_config(path)).run_sync()


def assert_nothing_errored_is_judged(path: Path, server) -> None:
    """No judgment points at a missing answer, no answer is empty, and an errored item has neither an answer
    nor a judgment, nor does its text reach the judge."""
    assert rows(path, "SELECT COUNT(*) FROM judgments WHERE answer_a_id NOT IN (SELECT answer_id FROM answers)"
                      " OR answer_b_id NOT IN (SELECT answer_id FROM answers)") == [(0,)]
    assert rows(path, "SELECT COUNT(*) FROM answers WHERE trim(text) = ''") == [(0,)]
    errored = rows(path, "SELECT contestant, config_id, question_id FROM errors WHERE stage = 'answer'")
    for contestant, config_id, question_id in errored:
        assert rows(path, "SELECT COUNT(*) FROM answers WHERE config_id = ? AND question_id = ?", config_id, question_id) == [(0,)]
        assert rows(path, "SELECT COUNT(*) FROM judgments WHERE contestant = ? AND question_id = ?", contestant, question_id) == [(0,)]
    judge_text = "\n".join(m["content"] for body in server.captured if body["model"] == "judge-model"
                           for m in body["messages"])
    assert "injected" not in judge_text and "I'm sorry" not in judge_text


@pytest.mark.slow
@pytest.mark.parametrize("fault, stream", CASES, ids=IDS)
def test_a_fault_on_the_first_attempt_is_retried_or_recorded(tmp_path, fake_server, fault, stream):
    retried, reason = FAULTS[fault]
    server, path, result = run_with(tmp_path, fake_server, {"m-flaky": (fault, 1)}, stream=stream)
    s = result.summary
    history = [[f for _, f in attempts] for (model, _), attempts in server.timeline.items() if model == "m-flaky"]
    assert len(history) == N
    if retried:
        assert result.exit_code == 0, s
        assert all(h == [fault, None] for h in history)  # one fault, then one successful retry per question
        assert (s.answers_new, s.answer_errors, s.games_new, s.game_errors) == (2 * N, 0, 2 * N, 0)
        texts = rows(path, "SELECT text FROM answers WHERE contestant = 'flaky'")
        assert len(texts) == N and all(t.startswith("Answer from m-flaky to: Question number") for (t,) in texts)
        assert rows(path, "SELECT COUNT(*) FROM errors") == [(0,)]
    else:
        assert result.exit_code == 2, s
        assert all(h == [fault] for h in history)  # not worth asking again: recorded after one attempt
        errors = rows(path, "SELECT contestant, reason, attempts FROM errors WHERE stage = 'answer'")
        assert len(errors) == N and all(c == "flaky" and a == 1 and re.search(reason, r) for c, r, a in errors), errors
        assert rows(path, "SELECT COUNT(*) FROM answers WHERE contestant = 'flaky'") == [(0,)]
    if fault == "429":  # the server's Retry-After (longer than our own backoff of <= 0.05 s) was honoured
        gaps = [attempts[1][0] - attempts[0][0] for attempts in server.timeline.values()]
        assert min(gaps) >= RETRY_AFTER_S, gaps
    assert_nothing_errored_is_judged(path, server)


@pytest.mark.slow
@pytest.mark.parametrize("fault, stream", CASES, ids=IDS)
def test_a_lasting_fault_ends_as_a_recorded_error_with_its_reason_and_is_never_judged(tmp_path, fake_server, fault, stream):
    retried, reason = FAULTS[fault]
    server, path, result = run_with(tmp_path, fake_server, {"m-flaky": (fault, None)}, stream=stream)
    s = result.summary
    assert result.exit_code == 2 and (s.answer_errors, s.errors_by_contestant) == (N, {"flaky": N}), s
    errors = rows(path, "SELECT contestant, reason, attempts FROM errors WHERE stage = 'answer'")
    attempts = 3 if retried else 1
    assert len(errors) == N and all(c == "flaky" and a == attempts and re.search(reason, r) for c, r, a in errors), errors
    assert server.requests["m-flaky"] == N * attempts
    assert rows(path, "SELECT COUNT(*) FROM answers WHERE contestant = 'flaky'") == [(0,)]
    assert rows(path, "SELECT COUNT(*) FROM judgments WHERE contestant = 'flaky'") == [(0,)]
    board = result.leaderboard.set_index("model")
    assert board.loc["flaky", "answers_missing"] == N and not board.loc["flaky", "battles"] > 0
    assert_nothing_errored_is_judged(path, server)


@pytest.mark.slow
@pytest.mark.parametrize("fault", [f for f in FAULTS if f != "truncated"])  # the judge does not stream
def test_a_lasting_judge_fault_ends_as_recorded_game_errors_and_no_verdict(tmp_path, fake_server, fault):
    retried, reason = FAULTS[fault]
    server, path, result = run_with(tmp_path, fake_server, {"judge-model": (fault, None)}, max_attempts=2)
    s = result.summary
    assert (s.answers_new, s.games_new, s.game_errors, s.games_missing) == (2 * N, 0, 2 * N, 2 * N), s
    errors = rows(path, "SELECT game_id, reason, attempts FROM errors WHERE stage = 'judge'")
    assert len({g for g, _, _ in errors}) == 2 * N
    assert all(a == (2 if retried else 1) and re.search(reason, r) for _, r, a in errors), errors
    assert rows(path, "SELECT COUNT(*) FROM judgments") == [(0,)]  # an error is no verdict, not even "unparsed"
    assert result.exit_code == 2


@pytest.mark.slow
def test_a_mix_of_every_fault_leaves_each_item_answered_or_recorded_exactly_once(tmp_path, fake_server):
    rates = {fault: 0.03 for fault in FAULTS}
    server = fake_server(rates=rates, seed=7, retry_after_s=0.01, hang_s=5.0)
    server.capture = True
    endpoint = {"timeout_s": TIMEOUT_S, "max_attempts": 8, "concurrency": 16}
    contestants = [{"name": "base", "model": "m-base", **endpoint},
                   {"name": "c1", "model": "m-c1", **endpoint},
                   {"name": "c2", "model": "m-c2", "stream": True, **endpoint}]
    path = write_config(tmp_path, server.base_url, n_questions=40, contestants=contestants, judge=endpoint)
    result = Arena(load_config(path)).run_sync()

    # Every named fault happened and the run still accounted for every item.
    assert set(server.faulted) == set(FAULTS)
    answered = set(rows(path, "SELECT contestant, question_id FROM answers"))
    errored = rows(path, "SELECT contestant, question_id, reason FROM errors WHERE stage = 'answer'")
    assert len(answered) == len(rows(path, "SELECT * FROM answers"))  # one answer per item at most
    assert not answered & {(c, q) for c, q, _ in errored}
    assert len(answered) + len(errored) == 3 * 40
    # Only faults that are not worth retrying end as errors when 8 attempts are allowed.
    assert all(re.search(r"refused|HTTP 401", reason) for _, _, reason in errored), errored
    s = result.summary
    assert s.answer_errors == len(errored) and s.answers_new == len(answered)
    assert s.games_new + s.game_errors + s.games_missing >= 2 * 2 * 40 - 2 * len(errored)
    assert_nothing_errored_is_judged(path, server)


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_reply_that_drips_bytes_ends_as_a_timeout_after_timeout_s_not_after_the_drip(tmp_path, fake_server, stream):
    """One byte every 0.5 s for 6 s (streamed: the bytes of an event that never completes), timeout_s 1."""
    server = fake_server(scripted={"m-flaky": ("drip", None)}, hang_s=6.0)
    contestants = [{"name": "base", "model": "m-base"},
                   {"name": "flaky", "model": "m-flaky", "stream": stream, "timeout_s": 1, "max_attempts": 1}]
    path = write_config(tmp_path, server.base_url, n_questions=N, contestants=contestants)
    result = Arena(load_config(path)).run_sync()

    errors = rows(path, "SELECT contestant, reason, attempts FROM errors WHERE stage = 'answer'")
    assert len(errors) == N and all(c == "flaky" and a == 1 and re.fullmatch(r"timeout after 1s from http://127\.0\.0\.1:\d+/v1", r)
                                     for c, r, a in errors), errors
    assert rows(path, "SELECT COUNT(*) FROM answers WHERE contestant = 'flaky'") == [(0,)]
    assert result.exit_code == 2
    # How long each dripping reply held its client, as the server saw it (until the client closed the connection).
    assert len(server.drip_held) == N and max(server.drip_held) < 3, server.drip_held
    print(f"drip ({'stream' if stream else 'plain'}): held {min(server.drip_held):.2f}-{max(server.drip_held):.2f} s")
    assert_nothing_errored_is_judged(path, server)


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_50_mb_reply_to_max_tokens_1024_ends_as_a_recorded_error_without_being_read_whole(tmp_path, fake_server, stream):
    server = fake_server(scripted={"m-flaky": ("huge", None)})
    contestants = [{"name": "base", "model": "m-base"},
                   {"name": "flaky", "model": "m-flaky", "stream": stream, "max_tokens": 1024}]
    path = write_config(tmp_path, server.base_url, n_questions=2, contestants=contestants)
    tracemalloc.start()
    try:
        result = Arena(load_config(path)).run_sync()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    errors = rows(path, "SELECT contestant, reason, attempts FROM errors WHERE stage = 'answer'")
    expected = (r"reply from http://127\.0\.0\.1:\d+/v1 exceeds 2097152 bytes \(max_response_bytes; derived from "
                r"max_tokens=1024\) and was not taken in; set max_response_bytes higher .* \(not retried\)")
    assert len(errors) == 2 and all(c == "flaky" and a == 1 and re.fullmatch(expected, r) for c, r, a in errors), errors
    assert rows(path, "SELECT COUNT(*) FROM answers WHERE contestant = 'flaky'") == [(0,)]
    assert result.exit_code == 2
    # The client stopped reading soon after the cap: the server got rid of a fraction of each 50 MB before the
    # connection closed (the rest of what it sent sat in socket buffers), and Python's allocations in this process
    # (the run, and the server thread) peaked at a fraction of one reply.
    assert len(server.huge_sent) == 2 and max(server.huge_sent) < 25 * MB, server.huge_sent
    assert peak < 40 * MB, peak
    print(f"huge ({'stream' if stream else 'plain'}): server sent {max(server.huge_sent) / MB:.1f} MB at most, "
          f"peak traced memory {peak / MB:.1f} MB")
    assert_nothing_errored_is_judged(path, server)
