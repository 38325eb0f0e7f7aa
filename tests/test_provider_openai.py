"""The OpenAI-compatible provider's own HTTP exchange, over real HTTP on loopback: the request it sends, server-sent
event streams (multi-line events, comments, an error event), error bodies that are not JSON, basic auth from the
URL, and the proxy it takes from the environment. Faults through whole runs are in test_reliability.py."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import tracemalloc

import pytest
from aiohttp import web

from arena_eval.config import EndpointConfig
from arena_eval.providers.base import ProviderError
from arena_eval.providers.openai_compat import OpenAIProvider, _proxy_for
from arena_eval.redaction import known_secrets

CHAT = [{"role": "user", "content": "What is two plus two?"}]
MB = 1024 * 1024


class Recorder:
    """An aiohttp app on a free loopback port that records each request and replies with `reply(request, body)`."""

    def __init__(self, reply):
        self.reply = reply
        self.requests: list[tuple[str, dict, dict]] = []  # (path or absolute URL, headers, JSON body)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((request.raw_path, dict(request.headers), body))
        return await self.reply(request, body)

    async def __aenter__(self) -> Recorder:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


def chat_reply(text: str = "Four.") -> dict:
    return {"id": "x", "model": "served-model", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
            "finish_reason": "stop"}], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}


async def complete(config: EndpointConfig, **overrides):
    provider = OpenAIProvider(config)
    await provider.start()
    try:
        return await provider.complete(CHAT, **overrides)
    finally:
        await provider.close()


async def test_the_request_carries_the_settings_extra_body_and_overrides(monkeypatch):
    monkeypatch.setenv("ARENA_T_KEY", "sk-test")

    async def reply(request, body):
        return web.json_response(chat_reply())

    async with Recorder(reply) as server:
        config = EndpointConfig(model="m", base_url=server.url + "/v1/", api_key_env="ARENA_T_KEY", max_tokens=33,
                                temperature=0.5, seed=7, extra_body={"top_k": 5, "grammar": "from-config"})
        completion = await complete(config, extra_body={"grammar": "root ::= x"}, stop=["\n"])
    path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sk-test"
    assert body == {"model": "m", "messages": CHAT, "max_tokens": 33, "temperature": 0.5, "seed": 7, "stop": ["\n"],
                    "top_k": 5, "grammar": "root ::= x"}  # extra_body fields go to the top level, the call's last
    assert (completion.text, completion.input_tokens, completion.output_tokens, completion.raw_model) == ("Four.", 7, 2, "served-model")
    assert not completion.tokens_estimated and completion.latency_s > 0


async def test_a_stream_of_multi_line_events_with_comments_is_joined():
    events = [
        ": a comment line the client must skip",
        'data: {"model": "m", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}',
        'data: {"model": "m", "choices": [{"index": 0,\ndata: "delta": {"content": "Fo"}}]}',  # one event, two lines
        'data: {"choices": [{"index": 0, "delta": {"content": "ur."}, "finish_reason": "stop"}]}',
        'data: {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}}',
        "data: [DONE]",
    ]

    async def reply(request, body):
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in events:
            await response.write(event.encode() + b"\r\n\r\n")
            await asyncio.sleep(0.01)
        return response

    async with Recorder(reply) as server:
        completion = await complete(EndpointConfig(model="m", base_url=server.url + "/v1", stream=True))
    assert (completion.text, completion.input_tokens, completion.output_tokens, completion.finish_reason) == ("Four.", 9, 3, "stop")
    assert 0 < completion.ttft_s < completion.latency_s


async def test_an_error_event_in_the_stream_is_a_retryable_error_not_an_answer():
    async def reply(request, body):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"choices": [{"index": 0, "delta": {"content": "Half an ans"}}]}\n\n')
        await response.write(b'data: {"error": {"message": "engine died", "code": 500}}\n\n')
        return response

    async with Recorder(reply) as server:
        with pytest.raises(ProviderError) as caught:
            await complete(EndpointConfig(model="m", base_url=server.url + "/v1", stream=True))
    assert caught.value.retryable and caught.value.reason == "error in the stream: engine died"


async def test_an_error_reply_that_is_not_json_keeps_its_text_and_retry_after():
    async def reply(request, body):
        return web.Response(status=503, text="upstream is warming up", headers={"Retry-After": "2"})

    async with Recorder(reply) as server:
        with pytest.raises(ProviderError) as caught:
            await complete(EndpointConfig(model="m", base_url=server.url + "/v1"))
    error = caught.value
    assert error.reason == f"HTTP 503 from {server.url}/v1: upstream is warming up"
    assert error.retryable and error.retry_after == 2.0


async def test_a_password_in_the_url_is_sent_as_basic_auth_and_kept_out_of_messages():
    async def reply(request, body):
        return web.json_response({"error": {"message": "no such model"}}, status=404)

    async with Recorder(reply) as server:
        with pytest.raises(ProviderError) as caught:
            await complete(EndpointConfig(model="m", base_url=server.url.replace("http://", "http://ann:s3cret@") + "/v1"))
    _, headers, _ = server.requests[0]
    assert headers["Authorization"] == "Basic YW5uOnMzY3JldA=="  # ann:s3cret
    assert "s3cret" not in caught.value.reason and "***@127.0.0.1" in caught.value.reason
    assert not caught.value.retryable


async def test_requests_go_through_the_proxy_the_environment_names(monkeypatch):
    """A forward proxy receives the absolute URL of a host it alone can reach; NO_PROXY sends the request direct."""

    async def reply(request, body):
        return web.json_response(chat_reply("via the proxy"))

    async with Recorder(reply) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        completion = await complete(EndpointConfig(model="m", base_url="http://models.invalid:8000/v1", timeout_s=5))
        assert completion.text == "via the proxy"
        assert proxy.requests[0][0] == "http://models.invalid:8000/v1/chat/completions"

        monkeypatch.setenv("NO_PROXY", "models.invalid")
        with pytest.raises(ProviderError) as caught:
            await complete(EndpointConfig(model="m", base_url="http://models.invalid:8000/v1", timeout_s=5))
        assert caught.value.reason.startswith("connection error to http://models.invalid:8000/v1")
        assert len(proxy.requests) == 1


def test_proxy_lookup_follows_the_scheme_and_no_proxy(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert _proxy_for("https://api.openai.com/v1/chat/completions") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    assert _proxy_for("https://api.openai.com/v1/chat/completions") == "http://proxy.corp:3128"
    assert _proxy_for("http://gpu-box:8000/v1/chat/completions") is None  # HTTPS_PROXY is for https only
    monkeypatch.setenv("ALL_PROXY", "http://all.corp:3128")
    assert _proxy_for("http://gpu-box:8000/v1/chat/completions") == "http://all.corp:3128"
    monkeypatch.setenv("NO_PROXY", "gpu-box,.internal")
    assert _proxy_for("http://gpu-box:8000/v1/chat/completions") is None
    assert _proxy_for("http://vllm.internal/v1/chat/completions") is None


# --- time: timeout_s bounds the whole exchange, or the wait for each event of a stream ---------------------------


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_reply_that_drips_bytes_without_ending_is_cut_at_timeout_s(fake_server, stream):
    """One byte every 0.5 s for 6 s: each read succeeds, so only a deadline on the whole reply (or, in a stream,
    on the next complete event) ends the wait."""
    server = fake_server(scripted={"m": ("drip", None)}, hang_s=6)
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await complete(EndpointConfig(model="m", base_url=server.base_url, stream=stream, timeout_s=1))
    took = time.monotonic() - started
    assert caught.value.reason == f"timeout after 1s from {server.base_url}" and caught.value.retryable
    assert 0.9 < took < 3, took
    print(f"drip ({'stream' if stream else 'plain'}): gave up after {took:.2f} s")


@pytest.mark.slow
async def test_a_stream_that_completes_an_event_every_0_4_s_for_3_s_is_not_cut_by_timeout_s_1():
    async def reply(request, body):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(8):
            delta = {"content": f"w{i} "}
            await response.write(f'data: {json.dumps({"choices": [{"index": 0, "delta": delta}]})}\n\n'.encode())
            await asyncio.sleep(0.4)
        await response.write(b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n')
        return response

    async with Recorder(reply) as server:
        completion = await complete(EndpointConfig(model="m", base_url=server.url + "/v1", stream=True, timeout_s=1))
    assert completion.text == "w0 w1 w2 w3 w4 w5 w6 w7 " and completion.latency_s > 3


# --- size: no reply is held beyond max_response_bytes ----------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_50_mb_reply_is_refused_once_past_the_cap_and_never_held_in_memory(fake_server, stream):
    """50 MB sent without a Content-Length to a request with max_tokens 1024 (cap 1 MiB + 1024 KiB = 2 MiB)."""
    server = fake_server(scripted={"m": ("huge", None)})
    tracemalloc.start()
    try:
        with pytest.raises(ProviderError) as caught:
            await complete(EndpointConfig(model="m", base_url=server.base_url, stream=stream, max_tokens=1024))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.reason.startswith(f"reply from {server.base_url} exceeds 2097152 bytes (max_response_bytes; "
                                          "derived from max_tokens=1024)")
    assert not caught.value.retryable
    # Python's allocations in this process (the server thread's included) peaked far below the reply's size.
    assert peak < 16 * MB, peak
    await asyncio.to_thread(wait_until, lambda: server.huge_sent)
    assert server.huge_sent[0] < 25 * MB  # the client stopped reading long before the end
    print(f"huge ({'stream' if stream else 'plain'}): peak traced memory {peak / MB:.1f} MB, "
          f"server sent {server.huge_sent[0] / MB:.1f} MB of 50 before the client closed")


async def test_a_content_length_above_the_cap_is_refused_before_the_body_is_read():
    async def reply(request, body):
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 50 * MB
        await response.prepare(request)
        await response.write(b'{"choices": [')
        while request.transport is not None and not request.transport.is_closing():
            await asyncio.sleep(0.02)  # the body never comes; only the declared length can end this early
        return response

    async with Recorder(reply) as server:
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            await complete(EndpointConfig(model="m", base_url=server.url + "/v1", max_response_bytes=4096, timeout_s=3))
    assert time.monotonic() - started < 1
    assert caught.value.reason.startswith(f"reply from {server.url}/v1 exceeds 4096 bytes (max_response_bytes) ")
    assert not caught.value.retryable


async def test_a_stream_event_of_1_5_mb_is_read_whole_within_the_2_mib_cap():
    """A 1.5 MB data line is more than aiohttp's line iterator takes (it raised LineTooLong past 512 KiB); the
    stream is split into lines here, so only the cap decides."""
    long_text = "x" * 1_500_000

    async def reply(request, body):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = {"choices": [{"index": 0, "delta": {"content": long_text}, "finish_reason": "stop"}]}
        await response.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())
        return response

    async with Recorder(reply) as server:
        completion = await complete(EndpointConfig(model="m", base_url=server.url + "/v1", stream=True))
    assert completion.text == long_text


async def test_an_error_reply_is_read_only_up_to_64_kib():
    sent = []

    async def reply(request, body):
        response = web.StreamResponse(status=500, headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        written = 0
        try:
            while written < 50 * MB:
                await response.write(b"upstream exploded " + b"." * (64 * 1024 - 18))
                written += 64 * 1024
        except ConnectionError:
            pass  # the client stopped reading and closed the connection
        sent.append(written)
        return response

    async with Recorder(reply) as server:
        with pytest.raises(ProviderError) as caught:
            await complete(EndpointConfig(model="m", base_url=server.url + "/v1"))
        await wait_for_async(lambda: sent)
    assert caught.value.reason.startswith(f"HTTP 500 from {server.url}/v1: upstream exploded ...")
    assert len(caught.value.reason) < 400 and caught.value.retryable
    assert sent[0] < 25 * MB  # not the 50 MB the server had to send


# --- redirects: credentials go only to the configured origin -------------------------------------------------


async def test_a_redirect_to_another_origin_is_refused_and_basic_credentials_stay_home():
    async def elsewhere(request, body):
        return web.json_response(chat_reply("from the other origin"))

    async with Recorder(elsewhere) as other:
        async def moved(request, body):
            return web.Response(status=307, headers={"Location": other.url + "/v1/chat/completions"})

        async with Recorder(moved) as server:
            base_url = server.url.replace("http://", "http://ann:s3cret-pw@") + "/v1"
            with pytest.raises(ProviderError) as caught:
                await complete(EndpointConfig(model="m", base_url=base_url))
    assert other.requests == [] and len(server.requests) == 1
    assert server.requests[0][1]["Authorization"] == "Basic YW5uOnMzY3JldC1wdw=="  # the configured origin got them
    assert caught.value.reason == (
        f"HTTP 307 from http://***@127.0.0.1:{server.port}/v1 redirects to {other.url}: credentials are only sent to "
        "the configured origin, so the redirect was not followed; point base_url at the new address")
    assert not caught.value.retryable


async def test_a_same_origin_307_or_308_is_followed_with_method_body_and_credentials_up_to_5_hops():
    async def reply(request, body):
        hops = int(request.query.get("hop", 0))
        if hops < 5:  # 5 redirects in all, then the answer
            return web.Response(status=308 if hops % 2 else 307,
                                headers={"Location": f"/v2/chat/completions?hop={hops + 1}"})
        return web.json_response(chat_reply(f"after {hops} redirects"))

    async with Recorder(reply) as server:
        config = EndpointConfig(model="m", base_url=server.url + "/v1", api_key_env="ARENA_REDIRECT_KEY")
        os.environ["ARENA_REDIRECT_KEY"] = "sk-redirect-test-key"
        try:
            completion = await complete(config)
        finally:
            del os.environ["ARENA_REDIRECT_KEY"]
    assert completion.text == "after 5 redirects" and len(server.requests) == 6
    assert all(headers["Authorization"] == "Bearer sk-redirect-test-key" and body["messages"] == CHAT
               for _, headers, body in server.requests)


async def test_a_sixth_redirect_or_a_302_that_would_turn_the_post_into_a_get_is_not_followed():
    async def loop(request, body):
        return web.Response(status=307, headers={"Location": "/v1/chat/completions"})

    async def found(request, body):
        return web.Response(status=302, headers={"Location": "/v2/chat/completions?x=1"})

    async with Recorder(loop) as looping, Recorder(found) as moved:
        with pytest.raises(ProviderError) as too_many:
            await complete(EndpointConfig(model="m", base_url=looping.url + "/v1"))
        with pytest.raises(ProviderError) as get:
            await complete(EndpointConfig(model="m", base_url=moved.url + "/v1"))
    assert len(looping.requests) == 6 and not too_many.value.retryable
    assert too_many.value.reason == f"more than 5 redirects from {looping.url}/v1; point base_url at the address that answers"
    assert len(moved.requests) == 1 and not get.value.retryable
    assert get.value.reason == (f"HTTP 302 from {moved.url}/v1 redirects to {moved.url}/v2/chat/completions, and a 302 "
                                "would turn the POST into a GET, so the redirect was not followed; point base_url at "
                                "the new address")


# --- keys ---------------------------------------------------------------------------------------------------


def test_the_api_key_and_a_url_password_are_registered_as_secrets(monkeypatch):
    monkeypatch.setenv("ARENA_REGISTERED_KEY", "sk-registered-" + "a1" * 8)
    assert OpenAIProvider(EndpointConfig(model="m", api_key_env="ARENA_REGISTERED_KEY")).api_key() in known_secrets()

    async def start_and_close():
        provider = OpenAIProvider(EndpointConfig(model="m", base_url="http://bob:pa%2Fss-w0rd-42@127.0.0.1:9/v1"))
        await provider.start()
        await provider.close()

    asyncio.run(start_and_close())
    assert {"pa/ss-w0rd-42", "pa%2Fss-w0rd-42", base64.b64encode(b"bob:pa/ss-w0rd-42").decode()} <= known_secrets()


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


async def wait_for_async(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
