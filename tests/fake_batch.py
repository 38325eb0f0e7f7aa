"""Loopback fakes of the two batch APIs, on one server, for tests of batch mode.

OpenAI's Batch API: `POST /v1/files` (multipart, purpose=batch, a JSONL file of {custom_id, method, url, body}),
`POST /v1/batches` {input_file_id, endpoint, completion_window}, `GET /v1/batches/{id}`, `GET /v1/files/{id}/content`
(the output file: {custom_id, response: {status_code, body}}; the error file: {custom_id, response: null, error}).
Anthropic's Message Batches: `POST /v1/messages/batches` {requests: [{custom_id, params}]},
`GET /v1/messages/batches/{id}` (processing_status, request_counts, results_url), `GET` the results_url (JSONL
{custom_id, result: {type: succeeded | errored | canceled | expired, message | error}}).

Replies come from the chat fakes' own `reply_text` (fake_server.FakeServer for OpenAI bodies, fake_anthropic for
Anthropic params), so judge prompts get labels the pipeline parses, and answers name their model.

What a test can set (BatchFaults), for every batch submitted from then on:
- `polls`: how many polls a batch takes to end (the last of them sees it ended);
- `expire_half`: the batch expires having done only the first half of its requests (rounded up); the rest are
  expired (OpenAI: lines of the error file with code batch_expired; Anthropic: results of type expired);
- `unknown_ids`: custom ids of extra result lines that match no request;
- `error_ids`: custom ids whose requests fail (OpenAI: status 500 in the output file; Anthropic: errored).
- `raw_results`, `extra_raw`, `long_replies`: result lines replaced by raw bytes, raw lines added, huge replies.

Counts: `submissions[api]` (batches created), `submitted[api]` (custom ids, every submission), `polls_seen`.
Ordinary OpenAI chat requests (`POST /v1/chat/completions`) are served too, by `openai_chat`, which counts them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web
from fake_anthropic import FakeAnthropic
from fake_server import FakeServer


@dataclass
class BatchFaults:
    polls: int = 1
    expire_half: bool = False
    unknown_ids: list[str] = field(default_factory=list)
    error_ids: set[str] = field(default_factory=set)
    judge_verdict: str = "longer"
    # Creates whose reply is lost: the batch is made, then the client gets a 502 (as after a proxy timeout).
    lost_create_replies: int = 0
    # Hostile result files: custom id → the raw bytes written instead of its result line; raw lines added at the
    # end of the file; custom id → the length in characters of its reply's text (a huge answer).
    raw_results: dict[str, bytes] = field(default_factory=dict)
    extra_raw: list[bytes] = field(default_factory=list)
    long_replies: dict[str, int] = field(default_factory=dict)


@dataclass
class _Batch:
    api: str
    requests: list[dict]  # OpenAI: the file's lines; Anthropic: {custom_id, params}
    faults: BatchFaults
    polls: int = 0
    input_file_id: str | None = None


class FakeBatches:
    def __init__(self, faults: BatchFaults | None = None):
        self.faults = faults or BatchFaults()
        self.openai_chat = FakeServer()
        self.anthropic_chat = FakeAnthropic()
        self.openai_chat.faults.judge_verdict = self.anthropic_chat.faults.judge_verdict = self.faults.judge_verdict
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, _Batch] = {}
        self.submissions = Counter()  # api → batches created
        self.submitted: dict[str, list[str]] = {"openai": [], "anthropic": []}  # api → custom ids, in order
        self.polls_seen = Counter()  # batch id → polls
        self.keys: list[str] = []  # the credential header of every request
        self._ids = itertools.count(1)
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- OpenAI ---------------------------------------------------------------------------------------------

    async def upload(self, request: web.Request) -> web.Response:
        self.keys.append(request.headers.get("Authorization", ""))
        form = await request.post()
        if form.get("purpose") != "batch":
            return _openai_error(400, "purpose must be batch")
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = form["file"].file.read()
        return web.json_response({"id": file_id, "object": "file", "purpose": "batch"})

    async def create_openai(self, request: web.Request) -> web.Response:
        self.keys.append(request.headers.get("Authorization", ""))
        body = await request.json()
        content = self.files.get(body.get("input_file_id"))
        if content is None or body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return _openai_error(400, "bad batch request")
        lines = [json.loads(line) for line in content.decode().splitlines() if line.strip()]
        ids = [line["custom_id"] for line in lines]
        if len(set(ids)) != len(ids) or any(line.get("url") != "/v1/chat/completions" for line in lines):
            return _openai_error(400, "custom ids must be unique, urls /v1/chat/completions")
        batch_id = f"batch_{next(self._ids)}"
        self.batches[batch_id] = _Batch("openai", lines, self.faults, input_file_id=body["input_file_id"])
        self.submissions["openai"] += 1
        self.submitted["openai"] += ids
        if self.faults.lost_create_replies > 0:
            self.faults.lost_create_replies -= 1
            return _openai_error(502, "bad gateway (the batch was created)")
        return web.json_response(self._openai_view(batch_id, poll=False))

    async def list_openai(self, request: web.Request) -> web.Response:
        newest = [b for b in reversed(self.batches) if self.batches[b].api == "openai"]
        limit = int(request.query.get("limit", "20"))
        return web.json_response({"object": "list", "data": [
            {**self._openai_view(b, poll=False), "input_file_id": self.batches[b].input_file_id}
            for b in newest[:limit]]})

    async def get_openai(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["batch_id"]
        if batch_id not in self.batches:
            return _openai_error(404, "no such batch")
        return web.json_response(self._openai_view(batch_id, poll=True))

    def _openai_view(self, batch_id: str, poll: bool) -> dict:
        batch = self.batches[batch_id]
        ended = self._poll(batch_id, batch) if poll else False
        total = len(batch.requests)
        view = {"id": batch_id, "object": "batch", "endpoint": "/v1/chat/completions", "status": "validating",
                "request_counts": {"total": total, "completed": 0, "failed": 0},
                "output_file_id": None, "error_file_id": None}
        if poll and not ended:
            view["status"] = "in_progress"
        if ended:
            done, lost = self._split(batch)
            output = [self._openai_result(line, batch.faults) for line in done]
            output += [{"id": "x", "custom_id": cid, "response": {"status_code": 200, "body": self._openai_reply(
                {"model": "ghost", "messages": [{"role": "user", "content": "?"}]})}, "error": None}
                for cid in batch.faults.unknown_ids]
            errors = [{"id": "x", "custom_id": line["custom_id"], "response": None,
                       "error": {"code": "batch_expired", "message": "This request could not be executed before the "
                                 "completion window expired."}} for line in lost]
            succeeded = sum(1 for line in done if line["custom_id"] not in batch.faults.error_ids)
            view.update(status="expired" if batch.faults.expire_half else "completed",
                        request_counts={"total": total, "completed": succeeded, "failed": total - succeeded})
            view["output_file_id"] = self._file(output, batch.faults)
            view["error_file_id"] = self._file(errors) if errors else None
        return view

    def _openai_result(self, line: dict, faults: BatchFaults) -> dict:
        if line["custom_id"] in faults.error_ids:
            return {"id": "x", "custom_id": line["custom_id"], "error": None,
                    "response": {"status_code": 500, "body": {"error": {"message": "injected batch item failure"}}}}
        return {"id": "x", "custom_id": line["custom_id"], "error": None,
                "response": {"status_code": 200, "body": self._openai_reply(line["body"],
                                                                             faults.long_replies.get(line["custom_id"]))}}

    def _openai_reply(self, body: dict, length: int | None = None) -> dict:
        text = self.openai_chat.reply_text(body) if length is None else "x" * length
        prompt = sum(len(m.get("content", "").split()) for m in body.get("messages", []))
        return {"id": "chatcmpl-x", "object": "chat.completion", "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": len(text.split())}}

    async def content(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["file_id"])
        if data is None:
            return _openai_error(404, "no such file")
        return web.Response(body=data, content_type="application/octet-stream")

    def _file(self, lines: list[dict], faults: BatchFaults | None = None) -> str:
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = _jsonl(lines, faults)
        return file_id

    # --- Anthropic ------------------------------------------------------------------------------------------

    async def create_anthropic(self, request: web.Request) -> web.Response:
        self.keys.append(request.headers.get("x-api-key", ""))
        if not request.headers.get("x-api-key") or not request.headers.get("anthropic-version"):
            return _anthropic_error(401, "x-api-key and anthropic-version headers are required")
        body = await request.json()
        requests = body.get("requests") or []
        ids = [r.get("custom_id") for r in requests]
        if not requests or len(set(ids)) != len(ids) or any("max_tokens" not in r.get("params", {}) for r in requests):
            return _anthropic_error(400, "requests need unique custom ids and params with max_tokens")
        if any(m.get("role") == "system" for r in requests for m in r["params"].get("messages", [])):
            return _anthropic_error(400, "use the top-level system parameter for a system prompt")
        batch_id = f"msgbatch_{next(self._ids)}"
        self.batches[batch_id] = _Batch("anthropic", requests, self.faults)
        self.submissions["anthropic"] += 1
        self.submitted["anthropic"] += ids
        return web.json_response(self._anthropic_view(batch_id, poll=False))

    async def get_anthropic(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["batch_id"]
        if batch_id not in self.batches:
            return _anthropic_error(404, "no such batch")
        return web.json_response(self._anthropic_view(batch_id, poll=True))

    def _anthropic_view(self, batch_id: str, poll: bool) -> dict:
        batch = self.batches[batch_id]
        ended = self._poll(batch_id, batch) if poll else False
        counts = {"processing": len(batch.requests), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        view = {"id": batch_id, "type": "message_batch", "processing_status": "in_progress",
                "request_counts": counts, "results_url": None}
        if ended:
            done, lost = self._split(batch)
            errored = sum(1 for r in done if r["custom_id"] in batch.faults.error_ids)
            counts.update(processing=0, succeeded=len(done) - errored, errored=errored, expired=len(lost))
            view.update(processing_status="ended", results_url=f"{self.base_url}/v1/messages/batches/{batch_id}/results")
        return view

    async def anthropic_results(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return _anthropic_error(404, "no such batch")
        done, lost = self._split(batch)
        lines = [self._anthropic_result(r, batch.faults) for r in done]
        lines += [{"custom_id": r["custom_id"], "result": {"type": "expired"}} for r in lost]
        lines += [self._anthropic_result({"custom_id": cid, "params": {"model": "ghost", "max_tokens": 1,
                                                                        "messages": [{"role": "user", "content": "?"}]}},
                                         batch.faults)
                  for cid in batch.faults.unknown_ids]
        return web.Response(body=_jsonl(lines, batch.faults), content_type="application/binary")

    def _anthropic_result(self, request: dict, faults: BatchFaults) -> dict:
        if request["custom_id"] in faults.error_ids:
            return {"custom_id": request["custom_id"], "result": {"type": "errored", "error": {
                "type": "error", "error": {"type": "api_error", "message": "injected batch item failure"}}}}
        params = request["params"]
        length = faults.long_replies.get(request["custom_id"])
        text = self.anthropic_chat.reply_text(params) if length is None else "x" * length
        usage = {"input_tokens": sum(len(str(m.get("content", "")).split()) for m in params["messages"]),
                 "output_tokens": len(text.split())}
        message = {"id": "msg_x", "type": "message", "role": "assistant", "model": params.get("model"),
                   "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                   "usage": usage}
        return {"custom_id": request["custom_id"], "result": {"type": "succeeded", "message": message}}

    # --- shared ---------------------------------------------------------------------------------------------

    def _poll(self, batch_id: str, batch: _Batch) -> bool:
        batch.polls += 1
        self.polls_seen[batch_id] += 1
        return batch.polls >= batch.faults.polls

    @staticmethod
    def _split(batch: _Batch) -> tuple[list[dict], list[dict]]:
        """(requests done, requests lost to expiry)."""
        if not batch.faults.expire_half:
            return batch.requests, []
        half = (len(batch.requests) + 1) // 2
        return batch.requests[:half], batch.requests[half:]

    def set_faults(self, **changes) -> None:
        """New faults for the batches submitted from now on (those submitted keep theirs)."""
        self.faults = BatchFaults(**{**self.faults.__dict__, **changes})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/v1/files", self.upload)
        app.router.add_post("/v1/batches", self.create_openai)
        app.router.add_get("/v1/batches", self.list_openai)
        app.router.add_get("/v1/batches/{batch_id}", self.get_openai)
        app.router.add_get("/v1/files/{file_id}/content", self.content)
        app.router.add_post("/v1/chat/completions", self.openai_chat.chat)  # ordinary requests (conversations)
        app.router.add_post("/v1/messages/batches", self.create_anthropic)
        app.router.add_get("/v1/messages/batches/{batch_id}", self.get_anthropic)
        app.router.add_get("/v1/messages/batches/{batch_id}/results", self.anthropic_results)
        return app

    def start(self) -> FakeBatches:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            runner = web.AppRunner(self.app(), access_log=None)
            self._loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake batch server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    @property
    def base_url(self) -> str:
        """The server's root: Anthropic's base_url as is; OpenAI's is this + /v1."""
        return f"http://127.0.0.1:{self.port}"


def _jsonl(lines: list[dict], faults: BatchFaults | None) -> bytes:
    """A result file: a line per result, those named in faults.raw_results replaced, faults.extra_raw added."""
    raw = (faults.raw_results if faults else {})
    out = [raw.get(line.get("custom_id"), None) or json.dumps(line).encode() for line in lines]
    return b"".join(line + b"\n" for line in out + list(faults.extra_raw if faults else []))


def _openai_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=status)


def _anthropic_error(status: int, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": "invalid_request_error", "message": message}},
                             status=status)
