"""The OpenAI-compatible provider's own HTTP exchange, over real HTTP on loopback: the request it sends, server-sent
event streams (multi-line events, comments, an error event), error bodies that are not JSON, basic auth from the
URL, and the proxy it takes from the environment. Faults through whole runs are in test_reliability.py."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from arena_eval.config import EndpointConfig
from arena_eval.providers.base import ProviderError
from arena_eval.providers.openai_compat import OpenAIProvider, _proxy_for

CHAT = [{"role": "user", "content": "What is two plus two?"}]


class Recorder:
    """An aiohttp app on a free loopback port that records each request and replies with `reply(request, body)`."""

    def __init__(self, reply):
        self.reply = reply
        self.requests: list[tuple[str, dict, dict]] = []  # (path or absolute URL, headers, JSON body)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((request.raw_path, dict(request.headers), body))
        return await self.reply(request, body)

    async def __aenter__(self) -> "Recorder":
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
