"""Crash safety (DESIGN §3.1, §4): `arena-eval run` killed with SIGKILL at seeded random points, continued after
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
VARYING = ("latency", "ttft", "duration", "wh", "energy", "power", "co2", "joule", "tokens_per_j")


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
