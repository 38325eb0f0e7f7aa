"""A fake Anthropic Messages API (`POST /v1/messages`) on loopback, with fault injection, for tests.

It enforces the parts of the real API that a client most easily gets wrong: a key header must be present,
`max_tokens` is required, and a "system" role inside `messages` is refused (the system prompt goes in the
top-level `system` field). Requests whose system prompt looks like a judge prompt get a verdict label;
others get an answer that names the model and the question. Replies are plain JSON or, with `stream: true`,
the same server-sent events the real API sends.

Faults, chosen per request:
- `script`: HTTP statuses for the next requests, in order (e.g. [429, 529] → two failures, then success);
- `error_rate_429` (with retry-after), `error_rate_529` (overloaded), `error_rate_500`: random, seeded;
- `fail_models`: model → status it always gets (e.g. {"claude-down": 529});
- `refuse_models`: stop_reason "refusal" with no text; `empty_models`: end_turn with no text;
- `midstream_overload_models`: a streamed reply that starts with 200 and then sends an overloaded `error` event;
- `drip_models`: 200 and the start of a reply, then one byte every `drip_interval_s` for `hang_s` (each read
  succeeds, the reply never ends in time); streamed, `message_start` and then the bytes of an event that never
  completes. `drip_held` records how long each such reply held its client. Stopping the server ends them at once;
- `event_gap_s`: a pause before each text delta of a streamed reply (a slow but steady generation);
- `reasoning`: model → the thinking of extended thinking: a `thinking` block (with its signature) before the text,
  streamed as `thinking_delta`s and a `signature_delta`; its words count in `output_tokens`. With `empty_models`,
  the reply is the thinking alone;
- `redacted_thinking_models`: replies that begin with a `redacted_thinking` block (encrypted, nothing readable);
- `judge_verdict`: the label a judge gets ("A>B" ...); "longer" prefers the longer answer.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

_ANSWER_FENCE = re.compile(r"BEGIN ANSWER ([AB]) =+\n(.*?)\n=+ END ANSWER", re.S)
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class AnthropicFaults:
    script: list[int] = field(default_factory=list)
    error_rate_429: float = 0.0
    error_rate_529: float = 0.0
    error_rate_500: float = 0.0
    retry_after_s: float = 0.05
    fail_models: dict[str, int] = field(default_factory=dict)
    refuse_models: set[str] = field(default_factory=set)
    empty_models: set[str] = field(default_factory=set)
    midstream_overload_models: set[str] = field(default_factory=set)
    latency_s: float = 0.0
    judge_verdict: str = "longer"
    seed: int = 0
    drip_models: set[str] = field(default_factory=set)
    drip_interval_s: float = 0.5
    event_gap_s: float = 0.0
    hang_s: float = 5.0
    reasoning: dict[str, str] = field(default_factory=dict)
    redacted_thinking_models: set[str] = field(default_factory=set)


def _text_of(content) -> str:
    """A message's text, whether `content` is a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content or [] if isinstance(block, dict))


def _error(status: int, message: str, headers: dict | None = None) -> web.Response:
    body = {"type": "error", "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message}}
    return web.json_response(body, status=status, headers=headers)


class FakeAnthropic:
    def __init__(self, faults: AnthropicFaults | None = None):
        self.faults = faults or AnthropicFaults()
        self.random = random.Random(self.faults.seed)
        self.requests = Counter()  # model → requests received (every attempt)
        self.successes = Counter()  # model → 200 replies
        self.captured: list[dict] = []  # every request body, in arrival order
        self.headers: list[dict] = []  # every request's headers, in arrival order
        self.drip_held: list[float] = []  # seconds each dripping reply held its client
        self._release: asyncio.Event | None = None  # set on stop: dripping replies end at once
        self.port: int | None = None
        self._script = list(self.faults.script)
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- HTTP ---------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        return app

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body.get("model", "")
        self.requests[model] += 1
        self.captured.append(body)
        self.headers.append(dict(request.headers))
        f = self.faults
        if f.latency_s:
            await asyncio.sleep(f.latency_s)
        if not (request.headers.get("x-api-key") or request.headers.get("authorization")):
            return _error(401, "x-api-key header is required")
        problem = self._invalid(body)
        if problem:
            return _error(400, problem)
        if model in f.fail_models:
            return self._fault(f.fail_models[model])
        if self._script:
            return self._fault(self._script.pop(0))
        roll = self.random.random()
        for rate, status in ((f.error_rate_429, 429), (f.error_rate_529, 529), (f.error_rate_500, 500)):
            if roll < rate:
                return self._fault(status)
            roll -= rate

        if model in f.drip_models:
            return await self._drip(request, model, bool(body.get("stream")))

        text, stop_reason = self.reply_text(body), "end_turn"
        if model in f.refuse_models:
            text, stop_reason = "", "refusal"
        elif model in f.empty_models:
            text = ""
        input_tokens = len(_text_of(body.get("system", "")).split()) + sum(
            len(_text_of(m.get("content")).split()) for m in body["messages"]
        )
        thinking = f.reasoning.get(model)
        usage = {"input_tokens": input_tokens, "output_tokens": len(text.split()) + len((thinking or "").split())}
        if body.get("stream"):
            return await self._stream(request, model, text, stop_reason, usage, self._thinking_blocks(model))
        self.successes[model] += 1
        content = self._thinking_blocks(model) + ([{"type": "text", "text": text}] if text else [])
        return web.json_response(
            {
                "id": f"msg_fake{sum(self.requests.values())}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": usage,
            }
        )

    def _invalid(self, body: dict) -> str | None:
        """What the real API would refuse with HTTP 400, as far as these tests care."""
        if "max_tokens" not in body:
            return "max_tokens: Field required"
        messages = body.get("messages")
        if not messages:
            return "messages: at least one message is required"
        for i, message in enumerate(messages):
            if message.get("role") not in ("user", "assistant"):
                return (f"messages.{i}.role: Input should be 'user' or 'assistant' "
                        "(use the top-level system parameter for a system prompt)")
        return None

    def _thinking_blocks(self, model: str) -> list[dict]:
        """The content blocks before the text of `model`'s replies: redacted thinking, thinking, or none."""
        blocks = []
        if model in self.faults.redacted_thinking_models:
            blocks.append({"type": "redacted_thinking", "data": "RW5jcnlwdGVkIHRoaW5raW5n"})
        if self.faults.reasoning.get(model):
            blocks.append({"type": "thinking", "thinking": self.faults.reasoning[model], "signature": "c2lnbmF0dXJl"})
        return blocks

    def _fault(self, status: int) -> web.Response:
        headers = {"retry-after": str(self.faults.retry_after_s)} if status == 429 else None
        return _error(status, f"injected {_ERROR_TYPES.get(status, 'error')}", headers)

    async def _stream(self, request: web.Request, model: str, text: str, stop_reason: str, usage: dict,
                      before: list[dict] | None = None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(event: str, data: dict) -> None:
            await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

        message = {"id": "msg_fake_stream", "type": "message", "role": "assistant", "model": model, "content": [],
                   "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1}}
        await send("message_start", {"type": "message_start", "message": message})
        await send("ping", {"type": "ping"})
        if model in self.faults.midstream_overload_models:
            await send("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            return response
        for index, block in enumerate(before or []):  # thinking blocks, as the real API streams them
            if block["type"] != "thinking":
                await send("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": block})
                await send("content_block_stop", {"type": "content_block_stop", "index": index})
                continue
            await send("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
            for i, word in enumerate(block["thinking"].split(" ")):
                delta = {"type": "thinking_delta", "thinking": (" " if i else "") + word}
                await send("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            delta = {"type": "signature_delta", "signature": block["signature"]}
            await send("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            await send("content_block_stop", {"type": "content_block_stop", "index": index})
        index = len(before or [])
        await send("content_block_start", {"type": "content_block_start", "index": index,
                                           "content_block": {"type": "text", "text": ""}})
        for i, word in enumerate(text.split(" ") if text else []):
            if self.faults.event_gap_s:
                await asyncio.sleep(self.faults.event_gap_s)
            delta = {"type": "text_delta", "text": (" " if i else "") + word}
            await send("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        await send("content_block_stop", {"type": "content_block_stop", "index": index})
        await send("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                     "usage": {"output_tokens": usage["output_tokens"]}})
        await send("message_stop", {"type": "message_stop"})
        self.successes[model] += 1
        return response

    async def _drip(self, request: web.Request, model: str, stream: bool) -> web.StreamResponse:
        """The start of a reply, then one byte every drip_interval_s for hang_s, then the rest if anyone is left."""
        if self._release is None:
            self._release = asyncio.Event()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream" if stream else "application/json"})
        await response.prepare(request)
        opened = time.monotonic()
        usage = {"input_tokens": 1, "output_tokens": 1}
        if stream:
            start = {"type": "message_start", "message": {"id": "msg_drip", "type": "message", "role": "assistant",
                     "model": model, "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}}
            head = (f"event: message_start\ndata: {json.dumps(start)}\n\n".encode()
                    + b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, '
                      b'"delta": {"type": "text_delta", "text": "')
            tail = b'"}}\n\n'
        else:
            head = (b'{"id": "msg_drip", "type": "message", "role": "assistant", "model": "' + model.encode()
                    + b'", "content": [{"type": "text", "text": "')
            tail = (b'"}], "stop_reason": "end_turn", "stop_sequence": null, "usage": '
                    + json.dumps(usage).encode() + b"}")
        next_byte = opened
        try:
            await response.write(head)
            while time.monotonic() - opened < self.faults.hang_s and not self._release.is_set():
                if request.transport is None or request.transport.is_closing():
                    break  # the client gave up
                if time.monotonic() >= next_byte:
                    await response.write(b"z")
                    next_byte += self.faults.drip_interval_s
                try:
                    await asyncio.wait_for(self._release.wait(), 0.02)
                except asyncio.TimeoutError:
                    pass
            else:
                if not self._release.is_set():
                    await response.write(tail)
        except ConnectionError:
            pass
        self.drip_held.append(time.monotonic() - opened)
        if self._release.is_set() and request.transport is not None:
            request.transport.abort()
        return response

    def reply_text(self, body: dict) -> str:
        system = _text_of(body.get("system", ""))
        messages = body["messages"]
        user = next((_text_of(m["content"]) for m in reversed(messages) if m["role"] == "user"), "")
        if "[[A>>B]]" in system:  # a judge prompt
            verdict = self.faults.judge_verdict
            if verdict == "longer":
                answers = dict(_ANSWER_FENCE.findall(_text_of(messages[0]["content"])))
                a, b = len(answers.get("A", "")), len(answers.get("B", ""))
                verdict = "A>B" if a > b else "B>A" if b > a else "A=B"
            return f"Having compared both answers with my own, my final verdict: [[{verdict}]]"
        return f"Claude-style answer from {body.get('model')} to: {user[:60]}"

    # --- lifecycle in a background thread -----------------------------------------------------------------

    def start(self) -> FakeAnthropic:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(self.app(), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Anthropic server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake_dripping)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def _wake_dripping(self) -> None:
        if self._release is not None:
            self._release.set()

    @property
    def base_url(self) -> str:
        """What the Anthropic SDK takes as base_url: it appends /v1/messages itself."""
        return f"http://127.0.0.1:{self.port}"
