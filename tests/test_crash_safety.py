"""Crash safety (docs/design.md §3.1, §4.3): `arena-eval run` killed with SIGKILL at seeded random points, continued after
each kill, then finished, ends with the same database content and leaderboard as a run never interrupted."""

from __future__ import annotations

import bisect
import json
import math
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_config

from arena_eval import load_config

CLI = [sys.executable, "-m", "arena_eval.cli"]
KILLS = 10
SEED = 1234
N_QUESTIONS = 30
CONTESTANTS = ("base", "c1", "c2")
TOTAL_ANSWERS = len(CONTESTANTS) * N_QUESTIONS
TOTAL_GAMES = 2 * (len(CONTESTANTS) - 1) * N_QUESTIONS
# Leaderboard columns that may differ between two correct runs: time and energy measurements.
VARYING = ("latency", "ttft", "duration", "wh", "energy", "power", "co2", "joule", "tokens_per_j", "_per_s", "mfu",
           "memory")


def make_config(folder: Path, base_url: str) -> Path:
    folder.mkdir()
    contestants = [{"name": name, "model": f"m-{name}", "concurrency": 2} for name in CONTESTANTS]
    return write_config(folder, base_url, n_questions=N_QUESTIONS, contestants=contestants,
                        judge={"concurrency": 2}, rating={"rounds": 200, "seed": 3})


def launch(path: Path, log: Path) -> subprocess.Popen:
    with log.open("a") as handle:
        return subprocess.Popen([*CLI, "run", "--config", str(path), "--no-progress", "--format", "json"],
                                stdout=subprocess.DEVNULL, stderr=handle)


def query(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(load_config(path).output_dir / "arena.db") as db:
        return db.execute(sql).fetchall()


def stored_work(path: Path) -> tuple[int, int]:
    return query(path, "SELECT COUNT(*) FROM answers")[0][0], query(path, "SELECT COUNT(*) FROM judgments")[0][0]


def assert_consistent(path: Path) -> None:
    assert query(path, "PRAGMA integrity_check") == [("ok",)]
    assert query(path, "SELECT COUNT(*) FROM (SELECT 1 FROM answers GROUP BY config_id, question_id HAVING COUNT(*) > 1)") == [(0,)]
    assert query(path, "SELECT COUNT(*) FROM (SELECT 1 FROM judgments GROUP BY contestant, question_id, game HAVING COUNT(*) > 1)") == [(0,)]
    assert query(path, "SELECT COUNT(*) FROM judgments WHERE answer_a_id NOT IN (SELECT answer_id FROM answers)"
                       " OR answer_b_id NOT IN (SELECT answer_id FROM answers)") == [(0,)]
    assert query(path, "SELECT COUNT(*) FROM errors") == [(0,)]


def leaderboard(path: Path) -> dict[str, dict]:
    rows = json.loads((load_config(path).output_dir / "leaderboard.json").read_text())
    return {row["model"]: {k: v for k, v in row.items() if not any(word in k for word in VARYING)} for row in rows}


def same_value(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)
    return a == b


@pytest.mark.slow
def test_ten_sigkills_then_a_rerun_give_the_uninterrupted_result(tmp_path, fake_server):
    server = fake_server(latency_s=0.01, judge_verdict="hash")  # deterministic, varied verdicts
    reference = make_config(tmp_path / "reference", server.base_url)
    crashed = make_config(tmp_path / "crashed", server.base_url)
    log = tmp_path / "runs.log"

    # The uninterrupted run, with the time of each reply the server sent it.
    server.capture = True
    started = time.monotonic()
    assert launch(reference, log).wait(120) == 0, log.read_text()
    server.capture = False
    replies = [t - started for t in server.reply_times]
    assert len(replies) == TOTAL_ANSWERS + TOTAL_GAMES and stored_work(reference) == (TOTAL_ANSWERS, TOTAL_GAMES)
    print(f"reference run: first reply after {replies[0]:.2f} s, last after {replies[-1]:.2f} s, "
          f"exit after {time.monotonic() - started:.2f} s")

    # Ten kill times drawn over the reference's working span, each turned into the progress the reference had
    # made by then (replies sent): on a busy machine a kill then still lands at that point of the work, not
    # before the first answer. Each continuation resumes where the last kill left off and is killed once the
    # series has reached the next point, so the kills fall all along collection and judging.
    rng = random.Random(SEED)
    times = sorted(rng.uniform(replies[0], replies[-1]) for _ in range(KILLS))
    points = [bisect.bisect_right(replies, t) for t in times]
    before = sum(server.successes.values())
    partial = []  # (answers, judgments) stored after each kill that interrupted a run
    for point in points:
        process = launch(crashed, log)
        while not server.wait_for_replies(before + point, timeout=0.05) and process.poll() is None:
            pass
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()
        if process.returncode == -signal.SIGKILL:
            partial.append(stored_work(crashed))
        else:
            assert process.returncode == 0, log.read_text()
        assert_consistent(crashed)
    # Kills really interrupted work half-way: some runs died with part of the work stored.
    assert any(0 < a + g < TOTAL_ANSWERS + TOTAL_GAMES for a, g in partial), partial

    final = subprocess.run([*CLI, "run", "--config", str(crashed), "--no-progress", "--format", "json"],
                           capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    for path in (reference, crashed):
        assert_consistent(path)
        assert stored_work(path) == (TOTAL_ANSWERS, TOTAL_GAMES)
        assert query(path, "SELECT COUNT(DISTINCT config_id || question_id) FROM answers") == [(TOTAL_ANSWERS,)]
    # The same answers, the same verdicts on the same games, the same leaderboard.
    answers_sql = "SELECT contestant, question_id, prompt_hash, text FROM answers ORDER BY 1, 2"
    assert query(crashed, answers_sql) == query(reference, answers_sql)
    verdicts_sql = "SELECT game_id, verdict FROM judgments ORDER BY 1"
    assert query(crashed, verdicts_sql) == query(reference, verdicts_sql)
    expected, got = leaderboard(reference), leaderboard(crashed)
    assert set(got) == set(CONTESTANTS) and got.keys() == expected.keys()
    for model, row in expected.items():
        assert row.keys() == got[model].keys()
        differing = {k: (v, got[model][k]) for k, v in row.items() if not same_value(v, got[model][k])}
        assert not differing, (model, differing)
    assert 0 < expected["c1"]["score"] < 100 and expected["c1"]["ci_low"] < expected["c1"]["ci_high"]
    print(f"kill points (replies): {points}; kills that interrupted a run: {len(partial)}/{KILLS}; "
          f"stored (answers, judgments) after each: {partial}")


# --- Ctrl-C, SIGTERM and runs that never finished ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("signal_name, exit_code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_one_signal_stops_the_run_within_seconds_says_what_was_kept_and_a_rerun_gives_the_uninterrupted_result(
        tmp_path, fake_server, signal_name, exit_code):
    # A slow judge behind a full queue of games: where a Ctrl-C used to leave the process idle for minutes.
    server = fake_server(latency_s=0.02, judge_verdict="hash")
    contestants = [{"name": name, "model": f"m-{name}", "concurrency": 8} for name in CONTESTANTS]
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    paths = []
    for folder in (reference, stopped):
        folder.mkdir()
        paths.append(write_config(folder, server.base_url, n_questions=40, contestants=contestants,
                                  judge={"concurrency": 2}, rating={"rounds": 100, "seed": 3}))
    assert subprocess.run([*CLI, "run", "--config", str(paths[0]), "--no-progress"], capture_output=True).returncode == 0
    before = sum(server.successes.values())
    process = subprocess.Popen([*CLI, "run", "--config", str(paths[1]), "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    total = len(CONTESTANTS) * 40 + 2 * 2 * 40
    assert server.wait_for_replies(before + len(CONTESTANTS) * 40 + 20, timeout=60)  # answers in, games queued
    sent = time.monotonic()
    process.send_signal(getattr(signal, signal_name))
    try:
        _, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"{signal_name}: the run was still going 20 s later: {process.communicate()[1][-500:]}")
    took = time.monotonic() - sent
    print(f"{signal_name}: exit {process.returncode} after {took:.2f} s")
    assert process.returncode == exit_code and took < 5, (took, stderr)
    answers, games = stored_work(paths[1])
    assert 0 < answers + games < total
    assert f"interrupted by {signal_name}: this run stored {answers} new answers and {games} new verdicts" in stderr
    assert "Traceback" not in stderr
    assert query(paths[1], "SELECT status FROM runs") == [("interrupted",)]
    assert_consistent(paths[1])

    rerun = subprocess.run([*CLI, "run", "--config", str(paths[1]), "--no-progress"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"answers {len(CONTESTANTS) * 40 - answers} new, {answers} stored before" in rerun.stderr
    assert stored_work(paths[1]) == (len(CONTESTANTS) * 40, 2 * 2 * 40)
    verdicts_sql = "SELECT game_id, verdict FROM judgments ORDER BY 1"
    assert query(paths[1], verdicts_sql) == query(paths[0], verdicts_sql)
    expected, got = leaderboard(paths[0]), leaderboard(paths[1])
    for model, row in expected.items():
        assert {k: v for k, v in row.items() if not same_value(v, got[model][k])} == {}, model


@pytest.mark.slow
def test_a_run_killed_with_sigkill_is_marked_interrupted_by_the_next_run_on_its_folder(tmp_path, fake_server):
    server = fake_server(latency_s=0.05)
    path = make_config(tmp_path / "killed", server.base_url)
    process = subprocess.Popen([*CLI, "run", "--config", str(path), "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert server.wait_for_replies(10, timeout=60)
    process.send_signal(signal.SIGKILL)
    process.wait()
    ((killed_id, status),) = query(path, "SELECT run_id, status FROM runs")
    assert status == "running"  # nothing could record its end

    rerun = subprocess.run([*CLI, "run", "--config", str(path), "--no-progress"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"note: run {killed_id} never finished (it was killed or crashed); it is now marked interrupted" in rerun.stderr
    statuses = dict(query(path, "SELECT run_id, status FROM runs"))
    assert statuses.pop(killed_id) == "interrupted" and list(statuses.values()) == ["complete"]
