"""Crash safety (DESIGN §3.1, §4): `arena-eval run` killed with SIGKILL at seeded random points, continued after
each kill, then finished, ends with the same database content and leaderboard as a run never interrupted."""

from __future__ import annotations

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


def launch(path: Path, server, log: Path, startup: float = 60.0) -> tuple[subprocess.Popen, float, float]:
    """Start a run and wait until its first request reaches the server, or it exits, or `startup` seconds pass
    (a run with nothing left to ask sends none). Return it, its start time and the end of that wait."""
    server.arrived.clear()
    started = time.monotonic()
    with log.open("a") as handle:
        process = subprocess.Popen([*CLI, "run", "--config", str(path), "--no-progress", "--format", "json"],
                                   stdout=subprocess.DEVNULL, stderr=handle)
    while not server.arrived.wait(0.05) and process.poll() is None and time.monotonic() - started < startup:
        pass
    return process, started, time.monotonic()


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

    # The uninterrupted run: from its first request to its exit is where kill points are drawn.
    process, started, first_request = launch(reference, server, log)
    assert process.wait(120) == 0, log.read_text()
    startup, span = first_request - started, time.monotonic() - first_request
    assert stored_work(reference) == (TOTAL_ANSWERS, TOTAL_GAMES)
    print(f"reference run: {startup:.2f} s to its first request, then {span:.2f} s to its end")

    # Ten random points along the run's work. Each continuation resumes where the last kill left off and runs
    # until the next point, so the kills fall all along collection, judging and scoring.
    rng = random.Random(SEED)
    points = sorted(rng.uniform(0, span) for _ in range(KILLS))
    partial = []  # (answers, judgments) stored after each kill that interrupted a run
    for before, point in zip([0.0] + points, points):
        process, _, _ = launch(crashed, server, log, startup)
        try:
            process.wait(timeout=point - before)
        except subprocess.TimeoutExpired:
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
    print(f"kills that interrupted a run: {len(partial)}/{KILLS}; stored (answers, judgments) after each: {partial}")
