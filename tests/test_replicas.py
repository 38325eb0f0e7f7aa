"""Replicas (docs/design.md §3.1.5): a `base_url` list is one endpoint served by several fake servers. Requests go
to the replica with the fewest in flight, a failed request is retried on another replica, a failing replica rests
and is probed again, the run summary counts every replica, and the configuration's id ignores the list's URLs."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3

import pytest
import yaml
from conftest import write_config
from typer.testing import CliRunner

from arena_eval.cli import app
from arena_eval.config import EndpointConfig, config_from_dict, load_config, stable_hash
from arena_eval.errors import ConfigError
from arena_eval.providers import make_provider
from arena_eval.providers.replicas import REST_AFTER, ReplicaSet, rest_seconds
from arena_eval.providers.retry import RetriesExhausted, call_with_retries

N = 12
PASSWORD = "replica-pass-8412"


def endpoint(urls: list[str], **settings) -> EndpointConfig:
    fast = {"retry_initial_s": 0.01, "retry_max_s": 0.05, "max_attempts": 6}
    return EndpointConfig(provider="openai", model="m", base_url=urls, **{**fast, **settings})


async def ask(config: EndpointConfig, replicas: ReplicaSet, requests: int, concurrency: int) -> list:
    """Send `requests` requests, `concurrency` at a time, each under the retry policy; the results or the errors."""
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int):
        async with limit:
            try:
                return await call_with_retries(config, lambda: replicas.complete([{"role": "user", "content": f"q{i}"}]))
            except RetriesExhausted as exc:
                return exc

    await replicas.start()
    try:
        return await asyncio.gather(*(one(i) for i in range(requests)))
    finally:
        await replicas.close()


# --- a whole run --------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("dead", ["stopped", "503"])
def test_three_replicas_one_dead_answer_every_item_once_and_the_summary_counts_each_replica(tmp_path, fake_server, dead):
    servers = [fake_server(latency_s=0.01), fake_server(latency_s=0.01),
               fake_server(rates={"503": 1.0}) if dead == "503" else fake_server()]
    if dead == "stopped":
        servers[2].stop()
    urls = [s.base_url for s in servers]
    urls[1] = urls[1].replace("http://", f"http://user:{PASSWORD}@")
    config = write_config(tmp_path, urls, n_questions=N)
    result = CliRunner().invoke(app, ["run", "--config", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output

    output = load_config(config).output_dir
    with sqlite3.connect(output / "arena.db") as db:
        per_item = db.execute("SELECT contestant, question_id, COUNT(*) FROM answers GROUP BY 1, 2").fetchall()
        errors = db.execute("SELECT COUNT(*) FROM errors").fetchone()[0]
        judged = db.execute("SELECT COUNT(DISTINCT game_id), COUNT(*) FROM judgments").fetchone()
        summary = json.loads(db.execute("SELECT summary_json FROM runs").fetchone()[0])
    # Every item answered exactly once, nothing failed, every game judged.
    assert len(per_item) == 2 * N and {count for *_, count in per_item} == {1} and errors == 0
    assert judged == (2 * N, 2 * N)
    live = servers[:2]
    for model, items in (("model-base", N), ("model-c1", N), ("judge-model", 2 * N)):
        assert sum(s.successes[model] for s in live) == items

    # The summary: a line of counts per replica, for both contestants and the judge.
    by_endpoint = {(e["role"], e["name"]): e["replicas"] for e in summary["extra"]["replicas"]}
    assert set(by_endpoint) == {("contestant", "base"), ("contestant", "c1"), ("judge", "judge-model")}
    for (role, name), replicas in by_endpoint.items():
        model, items = ("judge-model", 2 * N) if role == "judge" else (f"model-{name}", N)
        assert [r["url"] for r in replicas] == [urls[0], urls[1].replace(f"user:{PASSWORD}", "***"), urls[2]]
        *answering, down = replicas
        # The dead replica was tried and every request there failed; its share went to the others.
        assert down["requests"] > 0 and down["errors"] == down["requests"]
        assert down["latency_p50_s"] is None
        if dead == "503":
            assert down["requests"] == servers[2].requests[model]
        for replica, server in zip(answering, live):
            assert replica["errors"] == 0 and replica["requests"] == server.requests[model] > 0
            assert replica["latency_p50_s"] >= 0.01
        assert sum(r["requests"] for r in answering) == items

    # Printed: one line per replica, and never the password (nor stored).
    assert PASSWORD not in result.output and PASSWORD.encode() not in (output / "arena.db").read_bytes()
    for name in ("contestant 'base'", "contestant 'c1'", "judge 'judge-model'"):
        assert f"replicas of {name}:" in result.stderr
    down_lines = [line for line in result.stderr.splitlines() if line.startswith(f"  {urls[2]}: ")]
    assert len(down_lines) == 3 and all(re.search(r": (\d+) requests, \1 errors(, rested \d+ times?)?$", line)
                                        for line in down_lines)
    assert f"  http://***@127.0.0.1:{servers[1].port}/v1: " in result.stderr


# --- routing --------------------------------------------------------------------------------------------------------


async def test_least_in_flight_routing_spreads_requests_evenly_over_equal_replicas(fake_server):
    servers = [fake_server(latency_s=0.02) for _ in range(3)]
    config = endpoint([s.base_url for s in servers])
    replicas = make_provider(config)
    assert isinstance(replicas, ReplicaSet)
    results = await ask(config, replicas, 90, concurrency=9)

    assert all(attempts == 1 for _, attempts in results)
    shares = [s.requests["m"] for s in servers]
    assert sum(shares) == 90 and max(shares) - min(shares) <= 6, shares
    assert [c.requests for c in replicas.counts()] == shares


async def test_a_slow_replica_gets_fewer_requests_than_fast_ones(fake_server):
    servers = [fake_server(latency_s=0.01), fake_server(latency_s=0.01), fake_server(latency_s=0.2)]
    config = endpoint([s.base_url for s in servers])
    await ask(config, make_provider(config), 90, concurrency=6)

    fast, slow = servers[0].requests["m"] + servers[1].requests["m"], servers[2].requests["m"]
    assert fast + slow == 90 and slow < 90 / 6, (fast, slow)  # round-robin alone would give it 30


async def test_a_request_that_failed_on_one_replica_is_retried_on_another(fake_server):
    """Two attempts suffice when one of two replicas fails everything: the retry never goes back to it."""
    sick, healthy = fake_server(rates={"503": 1.0}), fake_server()
    config = endpoint([sick.base_url, healthy.base_url], max_attempts=2)
    replicas = make_provider(config)
    results = await ask(config, replicas, 40, concurrency=8)

    assert not [r for r in results if isinstance(r, RetriesExhausted)]
    attempts = [n for _, n in results]
    assert attempts.count(2) == sick.requests["m"] > 0 and attempts.count(1) == 40 - sick.requests["m"]
    assert healthy.successes["m"] == 40
    down, up = replicas.counts()
    assert (down.requests, down.errors) == (sick.requests["m"], sick.requests["m"])
    assert (up.requests, up.errors) == (40, 0)


async def test_a_failure_that_is_not_retryable_still_fails_at_once_and_rests_no_replica(fake_server):
    refusing, healthy = fake_server(rates={"401": 1.0}), fake_server()
    config = endpoint([refusing.base_url, healthy.base_url])
    replicas = make_provider(config)
    results = await ask(config, replicas, 20, concurrency=4)

    failed = [r for r in results if isinstance(r, RetriesExhausted)]
    assert len(failed) == refusing.requests["m"] > 0
    assert all(f.attempts == 1 and f.reason.endswith("(not retried)") and "HTTP 401" in f.reason for f in failed)
    assert healthy.successes["m"] == 20 - len(failed)
    assert [c.rests for c in replicas.counts()] == [0, 0]


# --- resting --------------------------------------------------------------------------------------------------------


def test_rests_double_from_one_second_up_to_retry_max_s():
    assert [rest_seconds(endpoint(["http://a/v1"], retry_max_s=60), n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert [rest_seconds(endpoint(["http://a/v1"], retry_max_s=5), n) for n in range(1, 5)] == [1, 2, 4, 5]
    assert rest_seconds(endpoint(["http://a/v1"], retry_max_s=0), 1) == 0


@pytest.mark.slow
async def test_a_failing_replica_rests_is_probed_after_its_rest_and_rejoins_once_it_answers(fake_server):
    sick, healthy = fake_server(rates={"503": 1.0}), fake_server()
    config = endpoint([sick.base_url, healthy.base_url], retry_max_s=0.5, max_attempts=3)
    replicas = make_provider(config)

    async def one_at_a_time(count: int) -> None:
        for i in range(count):
            await call_with_retries(config, lambda: replicas.complete([{"role": "user", "content": f"q{i}"}]))

    await replicas.start()
    try:
        await one_at_a_time(10)  # REST_AFTER failures in a row, then it rests 0.5 s (retry_max_s caps the 1 s)
        assert sick.requests["m"] == REST_AFTER and replicas.counts()[0].rests == 1
        await one_at_a_time(10)  # while it rests, everything goes to the other replica
        assert sick.requests["m"] == REST_AFTER

        await asyncio.sleep(0.6)
        await one_at_a_time(4)  # its rest is over: one probe, which fails, and it rests again at once
        assert sick.requests["m"] == REST_AFTER + 1 and replicas.counts()[0].rests == 2

        sick.faults.rates = {}  # it recovers
        await asyncio.sleep(0.6)
        await one_at_a_time(10)  # the probe succeeds, and it takes its share again
        assert sick.successes["m"] >= 4
    finally:
        await replicas.close()
    down, up = replicas.counts()
    assert down.requests == sick.requests["m"] and down.errors == REST_AFTER + 1
    assert up.requests == healthy.requests["m"] == 34 - sick.successes["m"]


# --- the configuration ------------------------------------------------------------------------------------------------


def run_config(base_url, provider: str = "openai") -> dict:
    return {"name": "t", "questions": "q.jsonl", "baseline": "a",
            "judge": {"model": "judge", "base_url": "http://judge:8000/v1"},
            "contestants": [{"name": "a", "model": "m", "base_url": "http://a:8000/v1"},
                            {"name": "b", "model": "m", "provider": provider, "base_url": base_url}]}


def contestant(base_url):
    return config_from_dict(run_config(base_url), check_questions=False).contestants[1]


def test_a_single_url_keeps_the_config_id_it_had_before_replicas():
    # answer_fields as they were before base_url could be a list, plus augment and tags (ContestantConfig.base_config_id)
    before = {"provider": "openai", "model": "m", "base_url": "http://gpu1:8000/v1", "model_path": None, "dtype": None,
              "quantization": None, "max_tokens": 1024, "temperature": 0.0, "top_p": None, "seed": None,
              "system_prompt": None, "extra_body": {}, "augment": "none", "tags": {}}
    config = config_from_dict(run_config("http://gpu1:8000/v1"), check_questions=False)
    # The literals: the ids this config had at the commit before replicas.
    assert config.contestants[1].config_id == stable_hash(before) == "e9dfdaf7361f35c3"
    assert config.judges[0].config_id("tmpl") == "ffa1f3cb10359f1b"


def test_a_list_of_replicas_has_one_id_whatever_its_urls_their_number_and_order():
    ids = {contestant(urls).config_id for urls in (
        ["http://gpu1:8000/v1", "http://gpu2:8000/v1"], ["http://gpu2:8000/v1", "http://gpu1:8000/v1"],
        ["http://gpu1:8000/v1"], ["http://gpu1:8000/v1", "http://gpu2:8000/v1", "http://gpu3:8000/v1"])}
    assert len(ids) == 1
    assert ids.isdisjoint({contestant("http://gpu1:8000/v1").config_id, contestant(None).config_id})


# base_url → (the field the message names, what it says, the text of the line it points at, which occurrence)
BAD_LISTS = {
    "empty": ([], "contestants[1].base_url", "the list is empty, so it names no replica", "base_url: []", 1),
    "not a URL": (["http://gpu1:8000/v1", "gpu2:8000"], "contestants[1].base_url[1]",
                  "replica 'gpu2:8000' is not an http(s) URL; give each replica as http://HOST:PORT/v1", "- gpu2:8000", 1),
    "not text": (["http://gpu1:8000/v1", 8000], "contestants[1].base_url[1]",
                 "replica 8000 (int) is not an http(s) URL", "- 8000", 1),
    "twice": ([f"http://u:{PASSWORD}@gpu1:8000/v1"] * 2, "contestants[1].base_url[1]",
              "replica 'http://***@gpu1:8000/v1' is listed twice (entries 1 and 2); list each replica once",
              "- http://u:", 2),
}


@pytest.mark.parametrize("case", list(BAD_LISTS))
def test_a_bad_replica_list_is_a_config_error_that_names_the_field_and_its_line(tmp_path, case):
    base_url, field, message, marker, occurrence = BAD_LISTS[case]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(run_config(base_url), sort_keys=False))
    line = [i for i, text in enumerate(path.read_text().splitlines(), 1) if marker in text][occurrence - 1]
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"config.yaml:{line}: {field}: {message}" in str(info.value), str(info.value)
    assert PASSWORD not in str(info.value)


def test_a_replica_list_needs_provider_openai():
    with pytest.raises(ConfigError, match=r"contestants\[1\]\.base_url: a list of replicas needs provider openai "
                                          r"\(any OpenAI-compatible server\); provider anthropic takes one base_url"):
        config_from_dict(run_config(["http://a/v1", "http://b/v1"], provider="anthropic"), check_questions=False)


def test_run_with_an_empty_replica_list_exits_1_naming_the_field(tmp_path):
    config = write_config(tmp_path, [])
    result = CliRunner().invoke(app, ["run", "--config", str(config), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert re.search(r"^error: .*config\.yaml:\d+: judge\.base_url: the list is empty", result.stderr, re.S | re.M)
    assert "Traceback" not in result.output
