"""`arena-eval plan`: what a run would send, before it sends anything; `run --max-cost` (docs/design.md §3.8)."""

from __future__ import annotations

import json
import math
import sqlite3

import pytest
from conftest import write_config
from typer.testing import CliRunner

from arena_eval import Arena, load_config
from arena_eval.cli import app

PRICE = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}


def priced_config(tmp_path, server, n_questions: int) -> object:
    contestants = [{"name": "base", "model": "m-base", "price": PRICE}, {"name": "c1", "model": "m-c1", "price": PRICE},
                   {"name": "c2", "model": "m-c2", "price": PRICE}]
    return write_config(tmp_path, server.base_url, n_questions=n_questions, contestants=contestants,
                        judge={"price": PRICE}, energy={"idle_seconds": 0})


@pytest.mark.slow  # a second or more on 2 cores
def test_the_plan_lists_what_the_next_run_sends_and_its_cost_within_20_percent(tmp_path, fake_server):
    server = fake_server()
    # Half the questions first: their answers and games are stored.
    path = priced_config(tmp_path, server, 20)
    questions = (tmp_path / "questions.jsonl").read_text().splitlines()
    (tmp_path / "questions.jsonl").write_text("\n".join(questions[:10]) + "\n")
    assert Arena(load_config(path)).run_sync().exit_code == 0
    (tmp_path / "questions.jsonl").write_text("\n".join(questions) + "\n")

    runner = CliRunner()
    shown = runner.invoke(app, ["plan", "--config", str(path), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    plan = json.loads(shown.stdout)
    rows = {r["name"]: r for r in plan["rows"]}
    assert {n: rows[n]["requests"] for n in rows} == {"base": 10, "c1": 10, "c2": 10, "judge-model": 40}
    assert all(r["estimated"] for r in plan["rows"])  # each says what its figures rest on

    before = dict(server.requests)
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 0
    sent = {model: server.requests[model] - before.get(model, 0) for model in server.requests}
    assert sent == {"m-base": 10, "m-c1": 10, "m-c2": 10, "judge-model": 40}
    with sqlite3.connect(result.output_dir / "arena.db") as db:
        cost = sum(db.execute(f"SELECT COALESCE(SUM(cost), 0) FROM {table} WHERE run_id=?", (result.run_id,)).fetchone()[0]
                   for table in ("answers", "judgments"))
    assert cost > 0 and plan["totals"]["cost"] == pytest.approx(cost, rel=0.20)

    # With everything stored, the plan is empty.
    again = json.loads(runner.invoke(app, ["plan", "--config", str(path), "--format", "json"]).stdout)
    assert again["totals"]["requests"] == 0 and again["totals"]["cost"] == 0


def test_a_fresh_folder_is_planned_from_prompts_and_max_tokens_and_nothing_is_written(tmp_path, fake_server):
    server = fake_server()
    path = priced_config(tmp_path, server, 6)
    runner = CliRunner()
    table = runner.invoke(app, ["plan", "--config", str(path)], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "max_tokens (an upper bound)" in table.stdout and "plan: 42 requests" in table.stderr
    assert not (load_config(path).output_dir / "arena.db").exists() and sum(server.requests.values()) == 0
    validate = runner.invoke(app, ["validate", "--config", str(path)])
    assert "plan: 42 requests, cost $" in validate.stdout


def test_run_refuses_a_plan_above_max_cost_and_sends_nothing(tmp_path, fake_server):
    server = fake_server()
    path = priced_config(tmp_path, server, 6)
    runner = CliRunner()
    refused = runner.invoke(app, ["run", "--config", str(path), "--no-progress", "--max-cost", "0.0001"])
    assert refused.exit_code == 1 and "above --max-cost $0.0001; nothing was sent" in refused.stderr
    assert sum(server.requests.values()) == 0
    bad = runner.invoke(app, ["run", "--config", str(path), "--no-progress", "--max-cost", "0"])
    assert bad.exit_code == 1 and "--max-cost must be a positive amount" in bad.stderr
    ok = runner.invoke(app, ["run", "--config", str(path), "--no-progress", "--max-cost", "100"])
    assert ok.exit_code == 0, ok.output


@pytest.mark.slow  # a second or more on 2 cores
def test_run_stops_at_max_cost_when_the_server_ignores_max_tokens_and_resumes_later(tmp_path, fake_server):
    """A server that ignores max_tokens bills far more than the plan says: the replies' cost is counted as they
    arrive, and the run stops sending once it reaches --max-cost, within one concurrency's worth of requests,
    keeps every reply that arrived, exits 4 and says so. Run again with room, it asks only what is missing."""
    server = fake_server(runaway_words=3000)
    contestants = [{"name": "base", "model": "m-base", "price": PRICE, "max_tokens": 32, "concurrency": 2},
                   {"name": "c1", "model": "m-c1", "price": PRICE, "max_tokens": 32, "concurrency": 2}]
    path = write_config(tmp_path, server.base_url, n_questions=20, contestants=contestants,
                        judge={"price": PRICE, "max_tokens": 32, "concurrency": 2}, energy={"idle_seconds": 0})
    in_flight = 2 + 2 + 2  # every endpoint's concurrency: the most requests that can be on their way at once
    cap = 0.55
    runner = CliRunner()
    capped = runner.invoke(app, ["run", "--config", str(path), "--no-progress", "--max-cost", str(cap)])
    assert capped.exit_code == 4, capped.output
    assert "stopped at --max-cost $0.55" in capped.stderr and "nothing was scored" in capped.stderr

    sent = sum(server.requests.values())
    with sqlite3.connect(load_config(path).output_dir / "arena.db") as db:
        run_id, status = db.execute("SELECT run_id, status FROM runs").fetchone()
        costs = [c for table in ("answers", "judgments")
                 for (c,) in db.execute(f"SELECT cost FROM {table} WHERE run_id=?", (run_id,))]
        stored = len(costs)
    assert status == "capped"
    assert stored == sum(server.successes.values()) == sent  # every reply that arrived is stored
    assert all(c is not None for c in costs)
    spent = sum(costs)
    assert spent >= cap
    # The cap is reached after at most ceil(cap / cheapest) replies; past it, only the requests already in flight.
    assert sent <= math.ceil(cap / min(costs)) + in_flight
    assert spent <= cap + in_flight * max(costs)
    assert sent < 80  # the whole run: 40 answers and 40 games

    resumed = runner.invoke(app, ["run", "--config", str(path), "--no-progress", "--max-cost", "100"])
    assert resumed.exit_code == 0, resumed.output
    assert sum(server.requests.values()) == 80  # nothing asked twice
