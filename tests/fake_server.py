"""A fake OpenAI-compatible chat server on loopback, with fault injection, for tests and benchmarks.

It answers `POST /v1/chat/completions` (plain and streaming). Requests whose system prompt looks like a
judge prompt get a verdict label; others get an answer that names the model and the question. Faults are
chosen per request from the configured rates (deterministic for a seed):

- `error_rate_429` (with Retry-After), `error_rate_500`: HTTP errors;
- `slow_rate` / `slow_s`: replies delayed by `slow_s`;
- `latency_s`: a fixed delay for every request;
- `always_fail_models`: models that always get HTTP 500;
- `judge_verdict`: the label the judge answers with ("A>B" ...); "longer" prefers the longer answer;
  "none" never gives a label; "second-try" gives one only when re-asked; "conflict" gives two different ones.

Run as a script (`python tests/fake_server.py --port 0 --latency 0.2`) to serve from a separate process; it
prints `PORT <n>` once listening.
"""

from __future__ import annotations

import argparse
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


@dataclass
class Faults:
    error_rate_429: float = 0.0
    error_rate_500: float = 0.0
    slow_rate: float = 0.0
    slow_s: float = 0.0
    latency_s: float = 0.0
    retry_after_s: float = 0.05
    always_fail_models: set[str] = field(default_factory=set)
    judge_verdict: str = "longer"
    seed: int = 0


class FakeServer:
    def __init__(self, faults: Faults | None = None):
        self.faults = faults or Faults()
        self.random = random.Random(self.faults.seed)
        self.requests = Counter()  # model → requests received (every attempt)
        self.successes = Counter()  # model → 200 replies
        self.captured: list[dict] = []
        self.capture = False
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- HTTP ---------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body.get("model", "")
        self.requests[model] += 1
        if self.capture:
            self.captured.append(body)
        f = self.faults
        if f.latency_s:
            await asyncio.sleep(f.latency_s)
        if model in f.always_fail_models:
            return web.json_response({"error": {"message": "injected permanent outage"}}, status=500)
        roll = self.random.random()
        if roll < f.error_rate_429:
            return web.json_response(
                {"error": {"message": "injected rate limit"}}, status=429, headers={"Retry-After": str(f.retry_after_s)}
            )
        if roll < f.error_rate_429 + f.error_rate_500:
            return web.json_response({"error": {"message": "injected server error"}}, status=500)
        if self.random.random() < f.slow_rate:
            await asyncio.sleep(f.slow_s)
        text = self.reply_text(body)
        self.successes[model] += 1
        prompt_tokens = sum(len(m.get("content", "").split()) for m in body.get("messages", []))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()), "total_tokens": 0}
        if body.get("stream"):
            return await self._stream(request, model, text, usage)
        return web.json_response(
            {
                "id": "fake-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": usage,
            }
        )

    async def _stream(self, request: web.Request, model: str, text: str, usage: dict) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {"id": "fake-1", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        for i, word in enumerate(text.split(" ")):
            delta = {"content": (" " if i else "") + word}
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await response.write(f"data: {json.dumps(done)}\n\n".encode())
        await response.write(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    def reply_text(self, body: dict) -> str:
        messages = body.get("messages", [])
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        if "[[A>>B]]" in system:  # a judge prompt
            verdict = self.faults.judge_verdict
            if verdict == "none" or (verdict == "second-try" and len(messages) <= 2):
                return "Both answers have merits and I cannot decide."
            if verdict == "conflict":
                return "First I thought [[A>B]], then [[B>A]]."
            if verdict in ("longer", "second-try"):
                answers = dict(_ANSWER_FENCE.findall(messages[1]["content"]))
                a, b = len(answers.get("A", "")), len(answers.get("B", ""))
                verdict = "A>B" if a > b else "B>A" if b > a else "A=B"
            return f"Both answers were read carefully. My final verdict: [[{verdict}]]"
        return f"Answer from {body.get('model')} to: {user[:60]}"

    # --- lifecycle in a background thread -----------------------------------------------------------------

    def start(self) -> "FakeServer":
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(self.app(), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=2048)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-500", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeServer(Faults(latency_s=args.latency, error_rate_429=args.rate_429, error_rate_500=args.rate_500))

    async def run() -> None:
        runner = web.AppRunner(server.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
        await site.start()
        print(f"PORT {site._server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
