"""The Anthropic and litellm providers over real HTTP on loopback: request shape, usage, the retry policy,
credentials, and whole runs that mix them with OpenAI-compatible contestants.

No client library is mocked: the official anthropic client talks to tests/fake_anthropic.py, and litellm
talks to the fake OpenAI-compatible server (tests/fake_server.py).
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_config
from fake_anthropic import FakeAnthropic

from arena_eval import Arena, load_config
from arena_eval.config import EndpointConfig
from arena_eval.errors import ConfigError
from arena_eval.providers import make_provider
from arena_eval.providers.anthropic import AnthropicProvider, split_system
from arena_eval.providers.base import ProviderError
from arena_eval.providers.litellm import LiteLLMProvider, load_litellm
from arena_eval.providers.retry import RetriesExhausted, call_with_retries
from arena_eval.redaction import known_secrets

KEY_VARIABLE = "ARENA_FAKE_KEY"
FAST = {"retry_initial_s": 0.01, "retry_max_s": 0.05, "max_attempts": 6}
CHAT = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is two plus two?"}]


@pytest.fixture(autouse=True)
def fake_key(monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, "sk-fake-test-key")


def anthropic_config(server: FakeAnthropic, model: str = "claude-fake", **fields) -> EndpointConfig:
    return EndpointConfig(provider="anthropic", model=model, base_url=server.base_url, api_key_env=KEY_VARIABLE,
                          **{**FAST, **fields})


def litellm_config(base_url: str, model: str = "openai/fake-model", **fields) -> EndpointConfig:
    return EndpointConfig(provider="litellm", model=model, base_url=base_url, api_key_env=KEY_VARIABLE,
                          **{**FAST, **fields})


async def complete_with_retries(config: EndpointConfig, messages=CHAT):
    """(completion, attempts) through the pipeline's retry policy, with a provider made as the pipeline makes it."""
    provider = make_provider(config)
    provider.api_key()
    await provider.start()
    try:
        return await call_with_retries(config, lambda: provider.complete(messages))
    finally:
        await provider.close()


def run(coroutine):
    return asyncio.run(coroutine)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def litellm_imported():
    """litellm takes ~4 s to import: paid once here, so the tests' own timings say what they do."""
    load_litellm()


# --- Anthropic ------------------------------------------------------------------------------------------


def test_anthropic_request_puts_the_system_prompt_in_system_and_records_usage(fake_anthropic):
    server = fake_anthropic()
    config = anthropic_config(server, max_tokens=321)
    completion, attempts = run(complete_with_retries(config))

    assert attempts == 1
    body = server.captured[-1]
    assert body["system"] == "You are terse."
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert body["messages"][0]["content"] == "What is two plus two?"
    assert body["max_tokens"] == 321 and body["model"] == "claude-fake"
    # Sampling fields travel only when the config sets them (API version 2026-10-21 refuses them).
    assert "temperature" not in body and "top_p" not in body
    headers = {k.lower(): v for k, v in server.headers[-1].items()}
    assert "sk-fake-test-key" in (headers.get("x-api-key", "") + headers.get("authorization", ""))
    assert headers["x-stainless-retry-count"] == "0"

    assert completion.text == "Claude-style answer from claude-fake to: What is two plus two?"
    # The fake counts words: 3 in the system prompt + 5 in the question; 10 in the reply.
    assert (completion.input_tokens, completion.output_tokens, completion.tokens_estimated) == (8, 10, False)
    assert completion.finish_reason == "stop" and completion.raw_model == "claude-fake"
    assert completion.latency_s > 0 and completion.cost is None


def test_anthropic_sends_explicit_sampling_fields_and_extra_body_and_accepts_a_v1_base_url(fake_anthropic):
    server = fake_anthropic()
    config = EndpointConfig(provider="anthropic", model="claude-fake", base_url=server.base_url + "/v1/",
                            api_key_env=KEY_VARIABLE, temperature=0.3, top_p=0.9,
                            extra_body={"metadata": {"user_id": "arena"}}, **FAST)
    messages = [{"role": "system", "content": "Rule one."}, {"role": "system", "content": "Rule two."},
                {"role": "user", "content": "Hi"}, {"role": "user", "content": "Still there?"}]
    completion, _ = run(complete_with_retries(config, messages))

    body = server.captured[-1]
    assert (body["temperature"], body["top_p"], body["metadata"]) == (0.3, 0.9, {"user_id": "arena"})
    assert body["system"] == "Rule one.\n\nRule two."
    assert body["messages"] == [{"role": "user", "content": "Hi\n\nStill there?"}]
    assert completion.text.endswith("Still there?")


def test_split_system_keeps_turn_order_and_merges_neighbours():
    system, turns = split_system([
        {"role": "user", "content": "a"}, {"role": "system", "content": "s"},
        {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
    ])
    assert system == "s"
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]


def test_anthropic_429_529_and_500_are_retried_and_the_request_succeeds(fake_anthropic):
    server = fake_anthropic(script=[429, 529, 500], retry_after_s=0.2)
    started = time.monotonic()
    completion, attempts = run(complete_with_retries(anthropic_config(server)))

    assert attempts == 4 and server.requests["claude-fake"] == 4
    assert completion.text.startswith("Claude-style answer")
    # retry-after (0.2 s) is honoured although the backoff alone would wait at most 0.05 s in all.
    assert time.monotonic() - started >= 0.2


def test_anthropic_status_errors_say_retryable_or_not_and_carry_retry_after(fake_anthropic):
    server = fake_anthropic(fail_models={"rate": 429, "busy": 529, "bad": 400, "gone": 404, "conflict": 409})

    async def error_of(model: str) -> ProviderError:
        provider = AnthropicProvider(anthropic_config(server, model))
        try:
            with pytest.raises(ProviderError) as caught:
                await provider.complete(CHAT)
        finally:
            await provider.close()
        return caught.value

    async def all_errors():
        return {m: await error_of(m) for m in ("rate", "busy", "bad", "gone", "conflict")}

    errors = run(all_errors())
    assert {m: e.retryable for m, e in errors.items()} == {
        "rate": True, "busy": True, "bad": False, "gone": False, "conflict": True}
    assert errors["rate"].retry_after == 0.05 and errors["busy"].retry_after is None
    assert all(server.base_url in e.reason for e in errors.values())
    assert "HTTP 529 overloaded_error" in errors["busy"].reason


def test_an_always_overloaded_anthropic_endpoint_ends_as_retries_exhausted_naming_the_url(fake_anthropic):
    server = fake_anthropic(fail_models={"claude-fake": 529})
    with pytest.raises(RetriesExhausted) as caught:
        run(complete_with_retries(anthropic_config(server, max_attempts=3)))
    assert caught.value.attempts == 3 and server.requests["claude-fake"] == 3
    assert "HTTP 529" in caught.value.reason and server.base_url in caught.value.reason


def test_anthropic_refusal_is_not_retried_and_empty_text_is(fake_anthropic):
    server = fake_anthropic(refuse_models={"claude-refuses"}, empty_models={"claude-empty"})
    with pytest.raises(RetriesExhausted) as refused:
        run(complete_with_retries(anthropic_config(server, "claude-refuses")))
    assert refused.value.attempts == 1 and "refused" in refused.value.reason and "(not retried)" in refused.value.reason
    with pytest.raises(RetriesExhausted) as empty:
        run(complete_with_retries(anthropic_config(server, "claude-empty", max_attempts=3)))
    assert empty.value.attempts == 3 and "empty content" in empty.value.reason


def test_anthropic_streaming_records_time_to_first_token_and_retries_an_overload_mid_stream(fake_anthropic):
    server = fake_anthropic(midstream_overload_models={"claude-flaky"})
    completion, _ = run(complete_with_retries(anthropic_config(server, stream=True)))
    assert completion.text == "Claude-style answer from claude-fake to: What is two plus two?"
    assert (completion.input_tokens, completion.output_tokens) == (8, 10) and completion.finish_reason == "stop"
    assert completion.ttft_s is not None and 0 < completion.ttft_s <= completion.latency_s
    assert server.captured[-1]["stream"] is True

    with pytest.raises(RetriesExhausted) as caught:
        run(complete_with_retries(anthropic_config(server, "claude-flaky", stream=True, max_attempts=2)))
    assert caught.value.attempts == 2 and "overloaded_error" in caught.value.reason


def test_anthropic_missing_key_variable_is_a_config_error_naming_it(monkeypatch):
    monkeypatch.delenv("ARENA_MISSING_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    named = AnthropicProvider(EndpointConfig(provider="anthropic", model="claude-x", api_key_env="ARENA_MISSING_KEY"))
    with pytest.raises(ConfigError, match="ARENA_MISSING_KEY"):
        named.api_key()
    default = AnthropicProvider(EndpointConfig(provider="anthropic", model="claude-x"))
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        default.api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-default")
    assert default.api_key() == "sk-from-default"
    assert default.endpoint == "https://api.anthropic.com" and default.constrain_to(["[[A>B]]"]) == {}


def test_anthropic_timeouts_and_connection_errors_are_retryable_and_name_the_endpoint(fake_anthropic):
    slow = fake_anthropic(latency_s=0.5)
    down = f"http://127.0.0.1:{closed_port()}"

    async def errors():
        timed_out = AnthropicProvider(anthropic_config(slow, timeout_s=0.2))
        refused = AnthropicProvider(EndpointConfig(provider="anthropic", model="claude-fake", base_url=down,
                                                   api_key_env=KEY_VARIABLE, timeout_s=2))
        caught = []
        for provider in (timed_out, refused):
            with pytest.raises(ProviderError) as error:
                await provider.complete(CHAT)
            await provider.close()
            caught.append(error.value)
        return caught

    timeout, connection = run(errors())
    assert timeout.retryable and "timeout after 0.2s" in timeout.reason and slow.base_url in timeout.reason
    assert connection.retryable and "connection error" in connection.reason and down in connection.reason


# --- litellm --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_importing_the_litellm_provider_does_not_import_litellm():
    code = "import arena_eval.providers.litellm, sys; print('litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_litellm_answer_and_usage_are_recorded_and_its_own_retries_are_off(fake_server, litellm_imported):
    server = fake_server()
    server.capture = True
    config = litellm_config(server.base_url, max_tokens=77, top_p=0.5, extra_body={"repetition_penalty": 1.1})
    completion, attempts = run(complete_with_retries(config))

    assert attempts == 1 and server.requests["fake-model"] == 1
    body = server.captured[-1]
    assert body["model"] == "fake-model" and body["max_tokens"] == 77
    assert (body["temperature"], body["top_p"], body["repetition_penalty"]) == (0.0, 0.5, 1.1)
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert completion.text == "Answer from fake-model to: What is two plus two?"
    # The fake counts words: 3 + 5 in the prompt, 9 in the reply.
    assert (completion.input_tokens, completion.output_tokens, completion.tokens_estimated) == (8, 9, False)
    assert completion.finish_reason == "stop"
    assert completion.cost is None  # a model litellm's price map does not know: unknown, not 0


def test_litellm_streaming_records_usage_and_time_to_first_token(fake_server, litellm_imported):
    server = fake_server()
    completion, _ = run(complete_with_retries(litellm_config(server.base_url, stream=True)))
    assert completion.text == "Answer from fake-model to: What is two plus two?"
    assert (completion.input_tokens, completion.output_tokens, completion.tokens_estimated) == (8, 9, False)
    assert completion.ttft_s is not None and completion.finish_reason == "stop"


def test_litellm_429_and_500_are_retried_until_every_request_succeeds(fake_server, litellm_imported):
    server = fake_server(error_rate_429=0.3, error_rate_500=0.3, seed=5)
    config = litellm_config(server.base_url, max_attempts=12)

    async def many():
        provider = LiteLLMProvider(config)
        await provider.start()
        return await asyncio.gather(*(call_with_retries(config, lambda: provider.complete(CHAT)) for _ in range(12)))

    results = run(many())
    assert all(c.text.startswith("Answer from fake-model") for c, _ in results)
    assert sum(attempts for _, attempts in results) == server.requests["fake-model"]
    assert server.requests["fake-model"] > server.successes["fake-model"] == 12


def test_litellm_errors_map_onto_the_retry_policy(fake_server, litellm_imported):
    limited, slow = fake_server(error_rate_429=1.0), fake_server(latency_s=0.5)

    async def error_of(config: EndpointConfig) -> ProviderError:
        with pytest.raises(ProviderError) as caught:
            await LiteLLMProvider(config).complete(CHAT)
        return caught.value

    rate_limited = run(error_of(litellm_config(limited.base_url)))
    assert rate_limited.retryable and rate_limited.retry_after == 0.05  # read from the vendor's headers
    assert "HTTP 429" in rate_limited.reason and limited.base_url in rate_limited.reason
    timed_out = run(error_of(litellm_config(slow.base_url, timeout_s=0.2)))
    assert timed_out.retryable and "timeout after 0.2s" in timed_out.reason and slow.base_url in timed_out.reason


def test_an_always_failing_litellm_model_ends_as_an_error(fake_server, litellm_imported):
    server = fake_server(always_fail_models={"broken-model"})
    with pytest.raises(RetriesExhausted) as caught:
        run(complete_with_retries(litellm_config(server.base_url, "openai/broken-model", max_attempts=3)))
    assert caught.value.attempts == 3
    assert server.requests["broken-model"] == 3  # neither litellm nor the SDK under it retried on its own
    assert "HTTP 500" in caught.value.reason and server.base_url in caught.value.reason


def test_litellm_key_variable(monkeypatch):
    monkeypatch.delenv("ARENA_MISSING_KEY", raising=False)
    with pytest.raises(ConfigError, match="ARENA_MISSING_KEY"):
        LiteLLMProvider(EndpointConfig(provider="litellm", model="openai/x", api_key_env="ARENA_MISSING_KEY")).api_key()
    assert LiteLLMProvider(EndpointConfig(provider="litellm", model="openai/x")).api_key() == ""
    assert LiteLLMProvider(EndpointConfig(provider="litellm", model="openai/x", api_key_env=KEY_VARIABLE)).api_key() \
        == "sk-fake-test-key"


# --- whole runs -----------------------------------------------------------------------------------------


def db_rows(config_path: Path, query: str) -> list[tuple]:
    config = load_config(config_path)
    with sqlite3.connect(config.output_dir / "arena.db") as db:
        return db.execute(query).fetchall()


def test_a_run_with_anthropic_and_litellm_contestants_judges_every_game(tmp_path, fake_server, fake_anthropic, litellm_imported):
    openai_server = fake_server(error_rate_429=0.05, error_rate_500=0.05, seed=2)
    claude = fake_anthropic(error_rate_429=0.1, error_rate_529=0.1, seed=4)
    contestants = [
        {"name": "base", "model": "m-base"},
        {"name": "claude", "provider": "anthropic", "model": "claude-fake", "base_url": claude.base_url,
         "api_key_env": KEY_VARIABLE, "system_prompt": "Answer briefly."},
        {"name": "via-litellm", "provider": "litellm", "model": "openai/fake-model", "api_key_env": KEY_VARIABLE},
    ]
    n = 8
    path = write_config(tmp_path, openai_server.base_url, n_questions=n, contestants=contestants)
    result = Arena(load_config(path)).run_sync()

    assert result.exit_code == 0, result.summary
    s = result.summary
    assert (s.answers_new, s.answer_errors, s.games_new, s.game_errors, s.games_unparsed) == (3 * n, 0, 2 * 2 * n, 0, 0)
    assert claude.successes["claude-fake"] == n and openai_server.successes["fake-model"] == n
    assert all(body["system"] == "Answer briefly." for body in claude.captured)
    answers = dict(db_rows(path, "SELECT contestant, COUNT(*) FROM answers WHERE output_tokens > 0 GROUP BY 1"))
    assert answers == {"base": n, "claude": n, "via-litellm": n}
    assert db_rows(path, "SELECT COUNT(*) FROM judgments WHERE verdict IS NOT NULL") == [(2 * 2 * n,)]
    board = result.leaderboard.set_index("model")
    assert board.loc[["claude", "via-litellm"], "battles"].min() > 0


def test_an_anthropic_judge_with_label_constraints_still_judges_every_game(tmp_path, fake_server, fake_anthropic):
    openai_server = fake_server()
    claude = fake_anthropic()
    judge = {"provider": "anthropic", "model": "claude-judge", "base_url": claude.base_url,
             "api_key_env": KEY_VARIABLE, "constrain_labels": True}
    path = write_config(tmp_path, openai_server.base_url, n_questions=5, judge=judge)
    result = Arena(load_config(path)).run_sync()

    assert result.exit_code == 0, result.summary
    assert (result.summary.games_new, result.summary.games_unparsed) == (10, 0)
    assert claude.requests["claude-judge"] == 10
    # The judge's system prompt (which lists the labels) went to `system`, the answers to the user turn.
    assert all("[[A>>B]]" in body["system"] and "BEGIN ANSWER A" in body["messages"][0]["content"]
               for body in claude.captured)


# --- time, size and keys: the limits the OpenAI-compatible provider has, around the SDKs --------------------------


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_an_anthropic_reply_that_drips_bytes_is_cut_at_timeout_s(fake_anthropic, stream):
    """One byte every 0.5 s for 6 s: the SDK's own timeout restarts with every byte."""
    server = fake_anthropic(drip_models={"claude-drip"}, hang_s=6.0)
    started = time.monotonic()
    with pytest.raises(RetriesExhausted) as caught:
        run(complete_with_retries(anthropic_config(server, "claude-drip", stream=stream, timeout_s=1, max_attempts=1)))
    took = time.monotonic() - started
    assert caught.value.reason == f"timeout after 1s from {server.base_url}" and caught.value.attempts == 1
    assert wait_until(lambda: server.drip_held) and took < 3 and max(server.drip_held) < 3, (took, server.drip_held)
    print(f"anthropic drip ({'stream' if stream else 'plain'}): gave up after {took:.2f} s")


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_litellm_reply_that_drips_bytes_is_cut_at_timeout_s(fake_server, litellm_imported, stream):
    server = fake_server(scripted={"fake-model": ("drip", None)}, hang_s=6.0)
    started = time.monotonic()
    with pytest.raises(RetriesExhausted) as caught:
        run(complete_with_retries(litellm_config(server.base_url, stream=stream, timeout_s=1, max_attempts=1)))
    took = time.monotonic() - started
    assert caught.value.reason == f"timeout after 1s from {server.base_url}" and caught.value.attempts == 1
    assert wait_until(lambda: server.drip_held) and took < 3 and max(server.drip_held) < 3, (took, server.drip_held)
    print(f"litellm drip ({'stream' if stream else 'plain'}): gave up after {took:.2f} s")


@pytest.mark.slow
def test_an_anthropic_stream_that_completes_an_event_every_0_3_s_is_not_cut_by_timeout_s_1(fake_anthropic):
    server = fake_anthropic(event_gap_s=0.3)  # 10 text deltas, 0.3 s apart: 3 s in all
    completion, attempts = run(complete_with_retries(anthropic_config(server, stream=True, timeout_s=1, max_attempts=1)))
    assert completion.text == "Claude-style answer from claude-fake to: What is two plus two?" and attempts == 1
    assert completion.latency_s > 2.5


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_reply_text_over_max_response_bytes_is_an_error_not_an_answer(fake_anthropic, stream):
    server = fake_anthropic()
    with pytest.raises(RetriesExhausted) as caught:
        run(complete_with_retries(anthropic_config(server, stream=stream, max_response_bytes=30)))
    assert caught.value.attempts == 1 and caught.value.reason == (
        f"reply text from {server.base_url} exceeds 30 bytes (max_response_bytes) and was not taken in; set "
        "max_response_bytes higher if replies this large are expected (not retried)")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_litellm_reply_text_over_max_response_bytes_is_an_error_not_an_answer(fake_server, litellm_imported, stream):
    server = fake_server()
    with pytest.raises(RetriesExhausted) as caught:
        run(complete_with_retries(litellm_config(server.base_url, stream=stream, max_response_bytes=30)))
    assert caught.value.attempts == 1 and caught.value.reason == (
        f"reply text from {server.base_url} exceeds 30 bytes (max_response_bytes) and was not taken in; set "
        "max_response_bytes higher if replies this large are expected (not retried)")


@pytest.mark.parametrize("provider", ["openai", "anthropic", "litellm"])
@pytest.mark.parametrize("value, problem", [
    ("sk-stray-0123456789\n", "ends with a newline"),
    ("sk-stray-0123456789\r\n", "ends with a newline"),
    (" sk-stray-0123456789", "starts with whitespace"),
    ("sk-stray-0123456789\t", "ends with whitespace"),
    ("sk-stray-01234\n56789", "holds a line break"),
], ids=["newline", "crlf", "leading-space", "trailing-tab", "inner-newline"])
def test_a_key_with_stray_whitespace_is_a_config_error_that_never_shows_the_key(monkeypatch, provider, value, problem):
    monkeypatch.setenv("ARENA_STRAY_KEY", value)
    config = EndpointConfig(provider=provider, model="m", api_key_env="ARENA_STRAY_KEY")
    with pytest.raises(ConfigError) as caught:
        make_provider(config).api_key()
    message = str(caught.value)
    assert message.startswith(f"environment variable ARENA_STRAY_KEY (api_key_env of model 'm') {problem}; remove it (e.g. ")
    assert "0123" not in message and "stray" not in message


def test_every_provider_registers_the_key_it_reads_as_a_secret(monkeypatch):
    for provider in ("openai", "anthropic", "litellm"):
        key = f"sk-{provider}-registered-0123456789"
        monkeypatch.setenv("ARENA_REGISTERED_KEY", key)
        assert make_provider(EndpointConfig(provider=provider, model="m", api_key_env="ARENA_REGISTERED_KEY")).api_key() == key
        assert key in known_secrets()


def wait_until(condition, timeout: float = 2.0) -> bool:
    """Whether `condition()` came true within `timeout` (a server thread records what it saw a moment later)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(condition())
