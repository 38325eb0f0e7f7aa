"""A fake OpenAI-compatible chat server on loopback, with fault injection, for tests and benchmarks.

It answers `POST /v1/chat/completions` (plain and streaming). Requests whose system prompt looks like a
judge prompt get a verdict label; others get an answer that names the model and the question. Faults are
chosen per request from the configured rates (deterministic for a seed):

- `error_rate_429` (with Retry-After), `error_rate_500`: HTTP errors;
- `slow_rate` / `slow_s`: replies delayed by `slow_s`;
- `latency_s`: a fixed delay for every request;
- `always_fail_models`: models that always get HTTP 500;
- `judge_verdict`: the label the judge answers with ("A>B" ...); "longer" prefers the longer answer;
  "none" never gives a label; "second-try" gives one only when re-asked; "conflict" gives two different ones;
  "hash" picks one of the five labels from a hash of the two answers (varied, yet the same on every run);
  "quote" is "longer", but the reply first quotes both answers, as talkative judges do;
  "position-a" always prefers position A; "better" prefers the answer of the stronger model (`strengths`,
  model → number, read from the answer's "Answer from MODEL" text) and errs with `judge_error_rate`;
  "strength" makes position A win with probability 1 / (1 + 10^((s_B − s_A)/400)), `strengths` as Elo points;
  "difficulty" is "strength" with outcomes correlated within a question, as on a real benchmark: for half the
  questions (chosen by a hash of the question) the draw depends on the judge and the question only, shared by
  every pair of answers to it (a question every model finds easy, or hard), for the other half on the answers too;
  "biased" knows the truth (`true_winner`: Bradley-Terry by `strengths` as Elo points, drawn from a hash of the two
  answers, so both games and a human labeller see the same winner) but, with probability `longer_bias` per game,
  prefers the longer answer whatever its quality;
  `judge_modes` gives each judge model (several judges in one run) a mode of its own;
  "echo" repeats the judge's user prompt (a broken judge) and states no label of its own;
  "cutoff" starts like "quote" but is cut off (finish reason "length") right after the first label inside the
  quoted answers, before its own verdict; asked again, it answers like "longer";
  "quote-only" quotes both answers and states no label of its own; asked again, it answers like "longer";
  "think-quote" is a reasoning model without a reasoning parser: it quotes both answers inside a leading
  <think>…</think> block, then gives the "longer" label;
- `replies`: model → reply texts, given in turn (e.g. answers that try to dictate the verdict);
- `reasoning`: model → thinking that its replies carry beside the answer, as reasoning models' do: in the message's
  (or the stream deltas') `reasoning_field` ("reasoning_content" by default; "reasoning" as OpenRouter and Ollama
  name it; None: not sent at all, as OpenAI's o-series hide it), with its words counted in `completion_tokens` and
  in `completion_tokens_details.reasoning_tokens`;
- `think_tags`: model → thinking that its replies begin with, between <think> tags in the content (a server
  without a reasoning parser), counted in `completion_tokens` only;
- `runaway_words`: every successful reply runs on for this many more words, whatever the request's `max_tokens` (a
  server that ignores it), with the words counted in `completion_tokens`; a judge's reply still ends with its verdict;
- `rates`: named faults (FAULTS below) with a probability per request, e.g. {"503": 0.1, "reset": 0.05};
- `turn_faults`: model → (n, fault): every request of that model that holds n user messages (a conversation's
  n-th turn) gets the fault; may be changed while the server runs;
- `energy_watts`: the server reports its own energy, as TensorRT-LLM's `GET /energy_metrics` does
  (`{"total_energy_j": ..., "query_time": ...}`), growing at this many watts since the server started;
- `scripted`: model → (fault, n): the first n requests for each distinct prompt of that model get the fault,
  the later ones succeed; n = None: every request. Deterministic whatever the timing, for retry tests.

Named faults: "429" (with Retry-After), "401" (a bad key; the reply echoes nothing of the key), "500", "503",
"529" (overloaded), "timeout" (the reply is held `hang_s`, longer than a client's timeout), "reset" (the
connection is dropped with a TCP reset), "malformed" (200 with a JSON body, or a stream event, cut off), "truncated" (a stream
that ends cleanly half-way, with no finish reason and no [DONE]; without streaming, like "malformed"),
"empty" (200 with empty content), "overthought" (a reasoning model that ran out of tokens thinking: the
model's `reasoning`, or a default thinking, without content, finish reason "length"), "content_filter" (finish
reason content_filter), "refusal" (the message's `refusal` field set and no content), "drip" (200 and the start
of a reply, then one byte every `drip_interval_s`
for `hang_s`, so every read succeeds but the reply never ends in time; streamed, the bytes of one event that
never completes; the time until the client left is in `drip_held`), "huge" (200 and a reply of `huge_bytes`,
50 MB by default, sent in 64 KiB blocks without a Content-Length: valid JSON whose content is that long, or a
stream of that many bytes of events; the bytes written before the client left are in `huge_sent`), "redirect"
(HTTP `redirect_status`, 307 by default, with Location `redirect_to`; the server also answers on
/moved/v1/chat/completions, a same-origin target). Stopping the server ends a dripping or hanging reply at once.

Run as a script (`python tests/fake_server.py --port 0 --latency 0.2`) to serve from a separate process; it
prints `PORT <n>` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

_AUTHOR = re.compile(r"Answer from (\S+) to:")


def _model_of(answer: str) -> str:
    found = _AUTHOR.search(answer)
    return found.group(1) if found else ""


_ANSWER_FENCE = re.compile(r"BEGIN ANSWER ([AB]) =+\n(.*?)\n=+ END ANSWER", re.S)

FAULTS = ("429", "401", "500", "503", "529", "timeout", "reset", "malformed", "truncated", "empty",
          "content_filter", "refusal", "drip", "huge", "redirect", "overthought")
_HUGE_BLOCK = 64 * 1024
_STATUS_MESSAGES = {
    "401": ("Incorrect API key provided. Check the key your client sends.", "invalid_api_key"),
    "429": ("injected rate limit", "rate_limit_exceeded"),
    "500": ("injected server error", "server_error"),
    "503": ("injected: service unavailable", "service_unavailable"),
    "529": ("injected: overloaded", "overloaded"),
}


def true_winner(answer_x: str, answer_y: str, strengths: dict[str, float]) -> str:
    """The better of two answers in truth, for the "biased" judge and for the human labels of a test: the answer of
    the model with Elo s_x wins with probability 1 / (1 + 10^((s_y − s_x)/400)) (`strengths`, read from "Answer from
    MODEL"), drawn from a hash of both answers (in either order): the same winner in both games and for a labeller."""
    first, second = sorted((answer_x, answer_y))
    s1, s2 = (strengths.get(_model_of(a), 1000.0) for a in (first, second))
    digest = hashlib.sha256(f"truth\x1f{first}\x1f{second}".encode()).digest()
    return first if int.from_bytes(digest[:4], "big") / 2 ** 32 < 1 / (1 + 10 ** ((s2 - s1) / 400)) else second


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
    # Per judge model, a judge_verdict of its own (several judges in one run), and for the "better" judge the
    # strength of each contestant model and how often the judge errs.
    judge_modes: dict[str, str] = field(default_factory=dict)
    strengths: dict[str, float] = field(default_factory=dict)
    judge_error_rate: float = 0.0
    longer_bias: float = 0.4  # the "biased" judge: share of games where it picks the longer answer
    seed: int = 0
    rates: dict[str, float] = field(default_factory=dict)
    scripted: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    hang_s: float = 5.0
    replies: dict[str, list[str]] = field(default_factory=dict)
    drip_interval_s: float = 0.5
    huge_bytes: int = 50 * 1024 * 1024
    redirect_to: str = ""
    redirect_status: int = 307
    turn_faults: dict[str, tuple[int, str]] = field(default_factory=dict)
    reasoning: dict[str, str] = field(default_factory=dict)
    reasoning_field: str | None = "reasoning_content"
    think_tags: dict[str, str] = field(default_factory=dict)
    runaway_words: int = 0
    # The server's own energy figure (TensorRT-LLM's GET /energy_metrics): {"total_energy_j": watts × seconds since
    # the server started}. None: no such endpoint (404), as on servers that report nothing.
    energy_watts: float | None = None

    def __post_init__(self) -> None:
        unknown = (set(self.rates) | {fault for fault, _ in self.scripted.values()}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {', '.join(FAULTS)}")


class FakeServer:
    def __init__(self, faults: Faults | None = None):
        self.faults = faults or Faults()
        self.random = random.Random(self.faults.seed)
        self.requests = Counter()  # model → requests received (every attempt)
        self.successes = Counter()  # model → 200 replies
        self.captured: list[dict] = []
        self.authorizations: list[str] = []  # Authorization headers received while `capture` is on
        self.capture = False
        self.faulted = Counter()  # fault → requests that got it
        self.arrived = threading.Event()  # set by every request: clear it, then wait for the next one
        self._replied = threading.Condition()  # notified on every successful reply (see wait_for_replies)
        self.reply_times: list[float] = []  # monotonic time of each successful reply while `capture` is on
        self._reply_turn = Counter()
        # (model, prompt digest) → [(monotonic time, fault or None)] for every request of a scripted model.
        self.timeline: dict[tuple[str, str], list[tuple[float, str | None]]] = {}
        self._release: asyncio.Event | None = None  # set on stop: "timeout" and "drip" replies stop at once
        self.paths = Counter()  # request path → requests received
        self.drip_held: list[float] = []  # seconds each "drip" reply held its client (until it left, or hang_s)
        self.huge_sent: list[int] = []  # bytes of each "huge" reply written before the client left (or all)
        self.port: int | None = None
        self.started = time.monotonic()  # the origin of the energy figure (energy_watts)
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- HTTP ---------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/moved/v1/chat/completions", self.chat)  # where a same-origin "redirect" can point
        if self.faults.energy_watts is not None:
            app.router.add_get("/energy_metrics", self.energy_metrics)
        return app

    async def energy_metrics(self, request: web.Request) -> web.Response:
        elapsed = time.monotonic() - self.started
        assert self.faults.energy_watts is not None
        return web.json_response({"total_energy_j": round(self.faults.energy_watts * elapsed, 4),
                                  "query_time": time.perf_counter()})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body.get("model", "")
        self.requests[model] += 1
        self.paths[request.path] += 1
        self.arrived.set()
        if self.capture:
            self.captured.append(body)
            self.authorizations.append(request.headers.get("Authorization", ""))
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
        fault = self._pick_fault(model, body)
        if fault is not None:
            self.faulted[fault] += 1
            if fault in _STATUS_MESSAGES:
                return self._status_reply(fault)
            if fault == "timeout":
                await self._hang()
                if request.transport is None or request.transport.is_closing():
                    return web.Response(status=499)  # the client gave up; nothing to send
            elif fault == "reset":
                return self._reset(request)
            elif fault == "drip":
                return await self._drip(request, bool(body.get("stream")))
            elif fault == "huge":
                return await self._huge(request, model, bool(body.get("stream")))
            elif fault == "redirect":
                return web.Response(status=f.redirect_status, headers={"Location": f.redirect_to})
            elif fault == "malformed" and body.get("stream"):
                response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await response.prepare(request)
                await response.write(b'data: {"id": "fake-1", "choices": [{"index": 0, "delta": {"content": "Hal\n\n')
                await response.write(b"data: [DONE]\n\n")
                return response
            elif fault in ("malformed", "truncated") and not body.get("stream"):
                return web.Response(body=b'{"id": "fake-1", "object": "chat.completion", "choices": [{"index": 0, "mess',
                                    content_type="application/json")
        if self.random.random() < f.slow_rate:
            await asyncio.sleep(f.slow_s)
        text = self.reply_text(body)
        finish, refusal = self.finish_reason_for(body), None
        thinking = f.reasoning.get(model)
        if f.runaway_words and fault is None:
            text = "and so on " * (f.runaway_words // 3) + text  # the label, if any, stays the reply's last words
        if model in f.think_tags:
            text = f"<think>\n{f.think_tags[model]}\n</think>\n\n{text}"
        if fault == "empty":
            text = ""
        elif fault == "overthought":
            text, finish = "", "length"
            thinking = thinking or "Let me weigh every reading of the question before I answer"
        elif fault == "content_filter":
            text, finish = text[: len(text) // 3], "content_filter"
        elif fault == "refusal":
            text, refusal = "", "I'm sorry, I can't help with that."
        if fault is None:
            with self._replied:
                self.successes[model] += 1
                if self.capture:
                    self.reply_times.append(time.monotonic())
                self._replied.notify_all()
        prompt_tokens = sum(len(m.get("content", "").split()) for m in body.get("messages", []))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()), "total_tokens": 0}
        if thinking:
            usage["completion_tokens"] += len(thinking.split())
            usage["completion_tokens_details"] = {"reasoning_tokens": len(thinking.split())}
        if body.get("stream"):
            return await self._stream(request, model, text, usage, finish, refusal, truncated=fault == "truncated",
                                      thinking=thinking)
        message = {"role": "assistant", "content": None if refusal else text}
        if refusal:
            message["refusal"] = refusal
        if thinking and f.reasoning_field:
            message[f.reasoning_field] = thinking
        return web.json_response(
            {
                "id": "fake-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            }
        )

    def wait_for_replies(self, count: int, timeout: float | None = None) -> bool:
        """Block until `count` successful replies were sent in all (every model), or `timeout` passes."""
        with self._replied:
            return self._replied.wait_for(lambda: sum(self.successes.values()) >= count, timeout)

    # --- faults -------------------------------------------------------------------------------------------

    def _pick_fault(self, model: str, body: dict) -> str | None:
        on_turn = self.faults.turn_faults.get(model)
        if on_turn is not None:  # a conversation's n-th user turn (counted in the request's messages)
            turn, fault = on_turn
            return fault if sum(m.get("role") == "user" for m in body.get("messages", [])) == turn else None
        script = self.faults.scripted.get(model)
        if script is not None:
            digest = hashlib.sha256(json.dumps(body.get("messages"), sort_keys=True).encode()).hexdigest()[:16]
            history = self.timeline.setdefault((model, digest), [])
            fault, first_n = script
            chosen = fault if first_n is None or len(history) < first_n else None
            history.append((time.monotonic(), chosen))
            return chosen
        if self.faults.rates:
            roll, edge = self.random.random(), 0.0
            for fault, rate in self.faults.rates.items():
                edge += rate
                if roll < edge:
                    return fault
        return None

    def _status_reply(self, fault: str) -> web.Response:
        message, code = _STATUS_MESSAGES[fault]
        headers = {"Retry-After": str(self.faults.retry_after_s)} if fault == "429" else None
        return web.json_response({"error": {"message": message, "type": "injected", "code": code}},
                                 status=int(fault), headers=headers)

    async def _hang(self, seconds: float | None = None) -> None:
        """Wait `seconds` (hang_s by default), or less when the server stops."""
        if self._release is None:
            self._release = asyncio.Event()
        try:
            await asyncio.wait_for(self._release.wait(), self.faults.hang_s if seconds is None else seconds)
        except asyncio.TimeoutError:
            pass

    async def _drip(self, request: web.Request, stream: bool) -> web.StreamResponse:
        """The start of a reply, then one byte every drip_interval_s for hang_s; then the rest, if anyone is left.
        Each byte is a successful read for the client, so only a deadline on the whole reply (or, in a stream, on
        the next complete event) ends the wait."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream" if stream else "application/json"})
        await response.prepare(request)
        opened = time.monotonic()
        head = b'{"id": "fake-1", "object": "chat.completion", "choices": [{"index": 0, "message": {"content": "'
        tail = b'"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}'
        if stream:
            head, tail = b"data: " + head.replace(b'"message"', b'"delta"'), tail + b"\n\ndata: [DONE]\n\n"
        next_byte = opened
        try:
            await response.write(head)
            while time.monotonic() - opened < self.faults.hang_s and not self._stopping():
                if request.transport is None or request.transport.is_closing():
                    break  # the client gave up
                if time.monotonic() >= next_byte:
                    await response.write(b"z")
                    next_byte += self.faults.drip_interval_s
                await self._hang(0.02)  # notices a client that left within 20 ms
            else:
                if not self._stopping():
                    await response.write(tail)
        except ConnectionError:
            pass
        self.drip_held.append(time.monotonic() - opened)
        if self._stopping() and request.transport is not None:
            request.transport.abort()
        return response

    async def _huge(self, request: web.Request, model: str, stream: bool) -> web.StreamResponse:
        """A reply of huge_bytes, written in blocks without a Content-Length, so the client can only count."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream" if stream else "application/json"})
        await response.prepare(request)
        if stream:
            delta = {"id": "fake-1", "object": "chat.completion.chunk", "model": model,
                     "choices": [{"index": 0, "delta": {"content": "x" * 1000}, "finish_reason": None}]}
            event = f"data: {json.dumps(delta)}\n\n".encode()
            head, block = b"", event * (_HUGE_BLOCK // len(event))
            done = {**delta, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            tail = f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode()
        else:
            head = (b'{"id": "fake-1", "object": "chat.completion", "model": "' + model.encode() +
                    b'", "choices": [{"index": 0, "message": {"role": "assistant", "content": "')
            block = b"x" * _HUGE_BLOCK
            tail = b'"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}'
        sent = 0
        try:
            await response.write(head)
            sent += len(head)
            while sent < self.faults.huge_bytes and not self._stopping():
                await response.write(block)
                sent += len(block)
            await response.write(tail)
            sent += len(tail)
        except ConnectionError:
            pass  # the client stopped reading and closed the connection
        self.huge_sent.append(sent)
        return response

    def _stopping(self) -> bool:
        return self._release is not None and self._release.is_set()

    @staticmethod
    def _reset(request: web.Request) -> web.Response:
        """Drop the connection with a TCP RST (linger 0), as a crashing proxy or server would."""
        transport = request.transport
        sock = transport.get_extra_info("socket") if transport else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if transport is not None:
            transport.abort()
        return web.Response(status=500)  # never reaches the client: the connection is gone

    async def _stream(self, request: web.Request, model: str, text: str, usage: dict, finish: str = "stop",
                      refusal: str | None = None, truncated: bool = False,
                      thinking: str | None = None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {"id": "fake-1", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        shown = thinking if self.faults.reasoning_field else None
        for i, word in enumerate(shown.split(" ") if shown else []):  # the thinking comes before the answer
            delta = {self.faults.reasoning_field: (" " if i else "") + word}
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        words = text.split(" ") if text else []
        if truncated:
            words = words[: max(1, len(words) // 2)]
        for i, word in enumerate(words):
            delta = {"content": (" " if i else "") + word}
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        if truncated:  # the stream just stops: no finish reason, no usage, no [DONE]
            await response.write_eof()
            return response
        if refusal:
            chunk = {**base, "choices": [{"index": 0, "delta": {"refusal": refusal}, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        await response.write(f"data: {json.dumps(done)}\n\n".encode())
        await response.write(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    def _better_verdict(self, judge: str, prompt: str) -> str:
        """The answer from the stronger model (Faults.strengths, read from "Answer from MODEL to: ...") wins; the
        verdict is flipped with probability judge_error_rate, decided by a hash of the judge and its prompt (the
        question and both answers), so it is the same on every run."""
        answers = dict(_ANSWER_FENCE.findall(prompt))
        strength = {side: self.faults.strengths.get(_model_of(answers.get(side, "")), 0.0) for side in "AB"}
        digest = hashlib.sha256(f"{judge}\x1f{prompt}".encode()).digest()  # the question and both answers
        flipped = int.from_bytes(digest[:4], "big") / 2 ** 32 < self.faults.judge_error_rate
        if strength["A"] == strength["B"]:
            label = "A=B"
        else:
            label = "A>B" if (strength["A"] > strength["B"]) != flipped else "B>A"
        return f"Judged on correctness. My final verdict: [[{label}]]"

    def _strength_verdict(self, judge: str, prompt: str, shared: bool = False) -> str:
        """Bradley-Terry by Elo: the answer in position A wins with probability 1 / (1 + 10^((s_B − s_A)/400)),
        `strengths` giving each model's Elo; the draw comes from a hash of the judge and its prompt (repeatable).
        With `shared` ("difficulty"), half the questions draw from the judge and the question alone."""
        answers = dict(_ANSWER_FENCE.findall(prompt))
        a, b = (self.faults.strengths.get(_model_of(answers.get(side, "")), 1000.0) for side in "AB")
        question = _ANSWER_FENCE.sub("", prompt)
        if shared and hashlib.sha256(f"half\x1f{question}".encode()).digest()[0] < 128:
            # The position of the stronger-named side keeps game 1 and game 2 of a question apart.
            prompt = f"{question}\x1f{a > b}"
        digest = hashlib.sha256(f"{judge}\x1f{prompt}".encode()).digest()
        draw = int.from_bytes(digest[:4], "big") / 2 ** 32
        label = "A>B" if draw < 1 / (1 + 10 ** ((b - a) / 400)) else "B>A"
        return f"Weighed both. My final verdict: [[{label}]]"

    def _biased_verdict(self, judge: str, prompt: str) -> str:
        """The true winner (`true_winner`), except in a `longer_bias` share of games (a hash of the judge and its
        prompt) where the longer answer wins whatever its quality."""
        answers = dict(_ANSWER_FENCE.findall(prompt))
        a, b = answers.get("A", ""), answers.get("B", "")
        digest = hashlib.sha256(f"{judge}\x1f{prompt}".encode()).digest()
        if int.from_bytes(digest[:4], "big") / 2 ** 32 < self.faults.longer_bias and len(a) != len(b):
            label = "A>B" if len(a) > len(b) else "B>A"
        else:
            label = "A>B" if true_winner(a, b, self.faults.strengths) == a else "B>A"
        return f"Weighed both. My final verdict: [[{label}]]"

    def finish_reason_for(self, body: dict) -> str:
        """"length" for the first reply of a "cutoff" judge (it ran out of tokens); "stop" otherwise."""
        messages = body.get("messages", [])
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        if "[[A>>B]]" in system and self.faults.judge_verdict == "cutoff" and len(messages) <= 2:
            return "length"
        return "stop"

    def reply_text(self, body: dict) -> str:
        messages = body.get("messages", [])
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        if "[[A>>B]]" in system:  # a judge prompt
            verdict = self.faults.judge_modes.get(body.get("model"), self.faults.judge_verdict)
            if verdict == "position-a":
                return "Assistant A answers better. My final verdict: [[A>B]]"
            if verdict == "better":
                return self._better_verdict(body.get("model", ""), messages[1]["content"])
            if verdict in ("strength", "difficulty"):
                return self._strength_verdict(body.get("model", ""), messages[1]["content"], verdict == "difficulty")
            if verdict == "biased":
                return self._biased_verdict(body.get("model", ""), messages[1]["content"])
            if verdict == "none" or (verdict == "second-try" and len(messages) <= 2):
                return "Both answers have merits and I cannot decide."
            if verdict == "conflict":
                return "First I thought [[A>B]], then [[B>A]]."
            if verdict == "echo":
                return messages[1]["content"]
            first_ask = len(messages) <= 2
            if verdict in ("longer", "second-try", "quote", "cutoff", "quote-only", "think-quote"):
                answers = dict(_ANSWER_FENCE.findall(messages[1]["content"]))
                a, b = len(answers.get("A", "")), len(answers.get("B", ""))
                label = "A>B" if a > b else "B>A" if b > a else "A=B"
                if verdict == "cutoff" and first_ask:
                    quoted = f"Assistant A wrote: \"{answers.get('A')}\" Assistant B wrote: \"{answers.get('B')}\""
                    cut = re.search(r"\[\[[^\]]*\]\]", quoted)
                    return quoted[: cut.end()] if cut else quoted[: len(quoted) // 2]
                if verdict == "quote":
                    return (f"Assistant A wrote: \"{answers.get('A')}\" Assistant B wrote: \"{answers.get('B')}\" "
                            f"My final verdict: [[{label}]]")
                quoted = f"Assistant A wrote: \"{answers.get('A')}\" Assistant B wrote: \"{answers.get('B')}\""
                if verdict == "quote-only" and first_ask:
                    return quoted + " Both have merits."
                if verdict == "think-quote":
                    return f"<think>\n{quoted}\n</think>\n\nMy final verdict: [[{label}]]"
                verdict = label
            elif verdict == "hash":
                answers = dict(_ANSWER_FENCE.findall(messages[1]["content"]))
                digest = hashlib.sha256(f"{answers.get('A')}\x1f{answers.get('B')}".encode()).digest()
                verdict = ("A>>B", "A>B", "A=B", "B>A", "B>>A")[digest[0] % 5]
            return f"Both answers were read carefully. My final verdict: [[{verdict}]]"
        texts = self.faults.replies.get(body.get("model"))
        if texts:
            self._reply_turn[body.get("model")] += 1
            return texts[(self._reply_turn[body.get("model")] - 1) % len(texts)]
        return f"Answer from {body.get('model')} to: {user[:60]}"

    # --- lifecycle in a background thread -----------------------------------------------------------------

    def start(self) -> FakeServer:
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
        """Stop serving (the port then refuses connections, as a dead server's would); a second stop does nothing."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake_hung)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def _wake_hung(self) -> None:
        if self._release is not None:
            self._release.set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-500", type=float, default=0.0)
    parser.add_argument("--fault", action="append", default=[], metavar="NAME=RATE",
                        help=f"a named fault and its probability per request; names: {', '.join(FAULTS)}")
    parser.add_argument("--judge-verdict", default="longer")
    args = parser.parse_args()
    rates = {name: float(rate) for name, _, rate in (item.partition("=") for item in args.fault)}
    server = FakeServer(Faults(latency_s=args.latency, error_rate_429=args.rate_429, error_rate_500=args.rate_500,
                               rates=rates, judge_verdict=args.judge_verdict))

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
