"""Unattended re-evaluation: history, regressions (exit 3), refreshed answer sets, and overlapping runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import write_config

from arena_eval import Arena, load_config
from arena_eval.history import find_regressions, history_frame
from arena_eval.store import Store

CLI = [sys.executable, "-m", "arena_eval.cli"]
HERE = Path(__file__).parent


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, **kw)


def fake_leaderboard(store: Store, run_id: str, started_at: float, rows: dict[str, tuple[float, float, float]],
                     baseline: str = "base") -> None:
    """A scored run as history holds it: rows are model → (score, ci_low, ci_high)."""
    store.db.execute("INSERT INTO runs (run_id, name, command, started_at, finished_at, status, config_json) "
                     "VALUES (?,?,?,?,?,?,?)", (run_id, "t", "run", started_at, started_at + 1, "complete", "{}"))
    board = [{"model": m, "score": s, "ci_low": lo, "ci_high": hi, "is_baseline": m == baseline}
             for m, (s, lo, hi) in rows.items()]
    store.save_leaderboard(run_id, board)


def after_last_run(store: Store) -> float:
    return max(r["started_at"] for r in store.runs()) + 0.001


def test_regression_rules_on_synthetic_runs(tmp_path):
    with Store(tmp_path / "arena.db") as store:
        fake_leaderboard(store, "r1", 100.0, {"base": (50, 50, 50), "a": (70, 65, 75), "b": (60, 55, 65), "c": (40, 35, 45)})
        # a: interval entirely below the previous one; b: overlapping; c: better
        fake_leaderboard(store, "r2", 200.0, {"base": (50, 50, 50), "a": (58, 54, 63), "b": (57, 52, 62), "c": (45, 41, 49)})
        found = find_regressions(store, "r2")
        assert found.model.tolist() == ["a"]
        assert "entirely below" in found.reason.iloc[0] and found.previous_run_id.iloc[0] == "r1"
        # With a score-drop limit, b's 3-point fall counts too; a 10-point limit catches neither.
        assert sorted(find_regressions(store, "r2", score_drop=3).model) == ["a", "b"]
        assert find_regressions(store, "r2", score_drop=20).model.tolist() == ["a"]
        # The first run has nothing to compare with.
        assert find_regressions(store, "r1").empty
        # A run with another baseline is not comparable: scores are relative to the baseline.
        fake_leaderboard(store, "r3", 300.0, {"a": (50, 50, 50), "b": (10, 5, 15)}, baseline="a")
        assert find_regressions(store, "r3").empty
        # The next run compares with the latest one that shares its baseline (r2), not r3.
        fake_leaderboard(store, "r4", 400.0, {"base": (50, 50, 50), "b": (40, 35, 45)})
        assert find_regressions(store, "r4").model.tolist() == ["b"]
        history = history_frame(store, "a")
        assert history.run_id.tolist() == ["r1", "r2", "r3"] and history.baseline.tolist() == ["base", "base", "a"]


@pytest.mark.slow
def test_run_exits_3_exactly_when_a_contestant_regressed(tmp_path, fake_server):
    """A real run (fixed judge: position A always wins, so c1 scores 50) after a synthetic history."""
    server = fake_server(judge_verdict="A>B")
    cfg = write_config(tmp_path, f"http://127.0.0.1:{server.port}/v1", n_questions=8)
    out = tmp_path / "out" / "t"

    first = cli("run", "-c", str(cfg), "--no-progress")
    assert first.returncode == 0, first.stderr  # no history yet: nothing to regress against
    assert "regression" not in first.stderr

    # A previous run in which c1 was clearly better than it is now → regression, exit 3.
    with Store(out / "arena.db") as store:
        fake_leaderboard(store, "past-good", after_last_run(store), {"base": (50, 50, 50), "c1": (90, 85, 95)})
    regressed = cli("run", "-c", str(cfg), "--no-progress")
    assert regressed.returncode == 3, regressed.stderr
    assert "regressions: 1 contestant(s)" in regressed.stderr and "c1: 95% CI" in regressed.stderr

    # The same scores again: the previous run is now the regressed one, the intervals overlap → exit 0.
    again = cli("run", "-c", str(cfg), "--no-progress")
    assert again.returncode == 0, again.stderr

    # A configured score drop catches a smaller fall even when intervals overlap.
    data = yaml.safe_load(cfg.read_text())
    data["regression"] = {"score_drop": 5}
    cfg.write_text(yaml.safe_dump(data))
    with Store(out / "arena.db") as store:
        fake_leaderboard(store, "past-slightly-better", after_last_run(store), {"base": (50, 50, 50), "c1": (56, 40, 70)})
    dropped = cli("run", "-c", str(cfg), "--no-progress")
    assert dropped.returncode == 3 and "score fell 6.0 points" in dropped.stderr, dropped.stderr

    shown = cli("history", "-c", str(cfg), "--contestant", "c1", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert [r["run_id"] for r in rows][1] == "past-good" and len(rows) == 6
    assert all(r["model"] == "c1" and r["baseline"] == "base" for r in rows)
    table = cli("history", "-c", str(cfg))
    assert table.returncode == 0 and "scores over time" in table.stdout
    missing = cli("history", "-c", str(cfg), "--contestant", "nobody")
    assert missing.returncode == 1 and "no stored scores for contestant 'nobody'" in missing.stderr


@pytest.mark.slow  # a second or more on 2 cores
def test_refresh_always_recollects_and_keeps_the_baseline(tmp_path, fake_server):
    server = fake_server(judge_verdict="longer")
    contestants = [{"name": "base", "model": "model-base"}, {"name": "api", "model": "model-api", "refresh": "always"},
                   {"name": "frozen", "model": "model-frozen"}]
    cfg = load_config(write_config(tmp_path, f"http://127.0.0.1:{server.port}/v1", n_questions=6, contestants=contestants))
    first = Arena(cfg).run_sync()
    assert first.summary.answers_new == 18 and first.exit_code == 0
    requests_after_first = dict(server.requests)

    second = Arena(cfg).run_sync()
    # Only the refreshing contestant is asked again; its new answers are judged again against the frozen baseline.
    assert second.summary.answers_new == 6 and second.summary.answers_cached == 12
    assert server.requests["model-api"] == 2 * requests_after_first["model-api"]
    assert server.requests["model-base"] == requests_after_first["model-base"]
    assert second.summary.games_new == 12 and second.summary.games_cached == 12
    with Store(cfg.output_dir / "arena.db") as store:
        stored = store.db.execute("SELECT contestant, COUNT(*) FROM answers GROUP BY contestant").fetchall()
    assert dict(map(tuple, stored)) == {"base": 6, "api": 12, "frozen": 6}  # the older set is kept, not overwritten
    assert len(second.answers) == 18 and set(second.answers[second.answers.contestant == "api"].run_id) == {second.run_id}

    # --refresh NAME renews the baseline on request.
    third = Arena(cfg, refresh=["base"]).run_sync()
    assert third.summary.answers_new == 12  # the baseline and, as always, api

    # A scoring-only pass uses the newest sets and asks nothing.
    before = sum(server.requests.values())
    scored = Arena(cfg).run_sync(("score",), "score")
    assert sum(server.requests.values()) == before and scored.summary.games_missing == 0


def test_refresh_resumes_a_set_whose_run_was_killed(tmp_path, fake_server):
    """A refreshing run killed half-way is resumed by the next run instead of starting a third set."""
    server = fake_server(judge_verdict="longer")
    contestants = [{"name": "base", "model": "model-base"}, {"name": "api", "model": "model-api", "refresh": "always"}]
    cfg = load_config(write_config(tmp_path, f"http://127.0.0.1:{server.port}/v1", n_questions=5, contestants=contestants))
    Arena(cfg).run_sync()
    arena = Arena(cfg)
    with Store(cfg.output_dir / "arena.db") as store:
        # What a SIGKILL leaves behind: a run still marked running that opened a set with some answers in it.
        store.start_run("killed", "t", "run", {})
        sets = arena.answer_sets(store, "killed")
        assert sets.set_id("api").endswith("@killed")
    resumed = Arena(cfg).run_sync()
    assert resumed.summary.answers_new == 5  # the killed set had none: all of api's answers are collected into it
    with Store(cfg.output_dir / "arena.db") as store:
        sets = store.db.execute("SELECT epoch FROM answer_epochs ORDER BY started_at").fetchall()
    assert [s[0] for s in sets][-1] == "killed" and len(sets) == 2


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="uses a separate fake-server process")
def test_overlapping_run_exits_at_once_and_the_first_completes(tmp_path):
    server = subprocess.Popen([sys.executable, str(HERE / "fake_server.py"), "--port", "0", "--latency", "0.2"],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline().split()[1])
        cfg = write_config(tmp_path, f"http://127.0.0.1:{port}/v1", n_questions=40,
                           contestants=[{"name": "base", "model": "m-base", "concurrency": 2},
                                        {"name": "c1", "model": "m-c1", "concurrency": 2}],
                           judge={"concurrency": 2})
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        first = subprocess.Popen([*CLI, "run", "-c", str(cfg), "--no-progress", "--format", "json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        lock = tmp_path / "out" / "t" / ".arena.lock"
        deadline = time.time() + 60
        while not (lock.exists() and lock.read_text().strip()) and time.time() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        second = cli("run", "-c", str(cfg), "--no-progress")
        elapsed = time.monotonic() - started
        assert first.poll() is None, "the first run should still be going"
        assert second.returncode == 1
        assert "another arena-eval run" in second.stderr and "wait for it to finish" in second.stderr, second.stderr
        assert str(first.pid) in second.stderr  # names the holder
        assert elapsed < 15  # interpreter start-up only; it never waits for the lock
        out, err = first.communicate(timeout=240)
        assert first.returncode == 0, err
        board = json.loads(out)
        assert {r["model"] for r in board} == {"base", "c1"}
        assert next(r for r in board if r["model"] == "c1")["battles"] == 80
        with Store(tmp_path / "out" / "t" / "arena.db") as store:
            statuses = [r["status"] for r in store.runs()]
        assert statuses == ["complete"]  # the refused run left no trace in the store
    finally:
        server.terminate()
        server.wait(timeout=10)
