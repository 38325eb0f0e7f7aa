"""Batch mode (docs/design.md §3.9) end to end against loopback fakes of OpenAI's Batch API and Anthropic's Message
Batches (tests/fake_batch.py): submission, polling, results matched by custom id, expiry, resume, costs."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import write_config
from fake_batch import BatchFaults, FakeBatches

from arena_eval import Arena, load_config
from arena_eval.batch import Batches
from arena_eval.errors import ConfigError

CLI = [sys.executable, "-m", "arena_eval.cli"]
PRICE = {"input_per_mtok": 2.0, "output_per_mtok": 8.0}


@pytest.fixture
def batches(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_TEST_KEY", "test-anthropic-key")
    servers = []

    def start(**faults) -> FakeBatches:
        server = FakeBatches(BatchFaults(**faults)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def batch_config(tmp_path: Path, server: FakeBatches, chat_url: str, n_questions: int = 6, **top) -> Path:
    """An OpenAI batch baseline, an Anthropic batch contestant, an ordinary contestant on the chat fake, and an
    OpenAI batch judge; polls every 10 ms."""
    openai = {"provider": "openai", "base_url": f"{server.base_url}/v1", "batch": True, "batch_poll_s": 0.01,
              "batch_poll_max_s": 0.02, "price": PRICE}
    anthropic = {"provider": "anthropic", "base_url": server.base_url, "api_key_env": "ANTHROPIC_TEST_KEY",
                 "batch": True, "batch_poll_s": 0.01, "batch_poll_max_s": 0.02, "batch_max_requests": 4}
    contestants = [{"name": "base", "model": "m-base", **openai},
                   {"name": "claude", "model": "claude-c1", **anthropic},
                   {"name": "plain", "model": "m-plain"}]
    path = write_config(tmp_path, chat_url, n_questions=n_questions, contestants=contestants,
                        judge={"model": "judge-model", **openai}, **top)
    data = yaml.safe_load(path.read_text())
    # write_config points every endpoint at the chat fake; the batch ones go to the batch fake.
    data["contestants"][0]["base_url"] = data["contestants"][1]["base_url"] = None
    data["contestants"][0].update(openai)
    data["contestants"][1].update(anthropic)
    data["judge"].update(openai)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def rows(path: Path, query: str) -> list[tuple]:
    with sqlite3.connect(load_config(path).output_dir / "arena.db") as db:
        return db.execute(query).fetchall()


def test_a_run_with_batch_contestants_and_a_batch_judge_stores_answers_and_verdicts_and_scores(
        tmp_path, batches, fake_server):
    server, chat = batches(polls=3), fake_server()
    path = batch_config(tmp_path, server, chat.base_url)
    result = Arena(load_config(path)).run_sync()

    assert result.exit_code == 0, result.summary
    s = result.summary
    assert (s.answers_new, s.answer_errors, s.games_new, s.game_errors) == (18, 0, 24, 0)
    assert s.games_unparsed == 0
    # OpenAI: one answers batch and one judge batch; Anthropic: 6 answers in batches of at most 4.
    assert server.submissions == {"openai": 2, "anthropic": 2}
    assert len(server.submitted["anthropic"]) == 6 and len(server.submitted["openai"]) == 6 + 24
    assert all(n == 3 for n in server.polls_seen.values())  # each batch polled until it ended, no further
    assert chat.requests["m-plain"] == 6 and chat.requests["judge-model"] == 0  # the judge asked nothing directly
    assert rows(path, "SELECT COUNT(*), COUNT(DISTINCT custom_id) FROM batch_items") == [(36, 36)]
    assert rows(path, "SELECT status, COUNT(*) FROM batch_jobs GROUP BY status") == [("collected", 4)]
    assert {r.model for r in result.rows} == {"base", "claude", "plain"}
    assert result.leaderboard.set_index("model").loc[["claude", "plain"], "battles"].min() > 0
    # Batch prices: half of the configured price; an unpriced Anthropic model has no cost (never 0).
    cost = rows(path, "SELECT input_tokens, output_tokens, cost FROM answers WHERE contestant='base'")
    assert all(c == pytest.approx((i * 1.0 + o * 4.0) / 1e6) for i, o, c in cost)
    assert rows(path, "SELECT COUNT(*) FROM answers WHERE contestant='claude' AND cost IS NULL") == [(6,)]
    judged = rows(path, "SELECT input_tokens, output_tokens, cost, attempts FROM judgments")
    assert all(c == pytest.approx((i * 1.0 + o * 4.0) / 1e6) and a == 1 for i, o, c, a in judged)

    # The answers are the same as ordinary collection would store: same ids, so a run without batch reuses them.
    again = Arena(load_config(path)).run_sync()
    assert (again.summary.answers_new, again.summary.answers_cached, again.summary.games_new) == (0, 18, 0)
    assert server.submissions == {"openai": 2, "anthropic": 2}
