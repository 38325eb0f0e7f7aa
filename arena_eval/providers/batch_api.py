"""The providers' batch APIs (docs/design.md §3.9): OpenAI's Batch API and Anthropic's Message Batches, over aiohttp.

Both take many requests at once, each under a custom id, answer them within a day at half the price, and give the
results back in any order: a result is matched to its request by custom id, never by position. One client per
endpoint, with three calls:

- `submit(requests)`: [(custom_id, messages)] → the provider's batch id. OpenAI: upload the requests as a JSONL file
  (purpose `batch`), then create a batch over it; Anthropic: one POST with every request's params.
- `poll(batch_id)` → `BatchState`: the provider's status in its own words, whether it has ended, and its counts.
- `results(state)` → `BatchResult`s as the result files stream in: a `Completion`, or the reason the item failed.
  OpenAI: the output file, then the error file (failed requests, and those a batch that expired or was cancelled
  never ran); Anthropic: the results file. An item the provider gives no line for is the caller's to notice.
  A line is trusted no more than a reply: one that is over its bound, not JSON or of the wrong shape is that item's
  error (its custom id read from the line's start where it can be) or the file's; a reply over max_response_bytes
  is an error, as for a direct request (docs/design.md §6.2).

Each HTTP call runs under the endpoint's retry policy (providers.retry). Credentials go only to the configured
origin: a results URL elsewhere is refused, as the chat providers refuse such redirects.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl

from ..config import BATCH_LIMITS, EndpointConfig, redact_url
from ..lines import BadLine, Line, LineSplitter, lone_surrogate, parse_json_line, reply_line_bytes, shown
from ..records import Completion, Message
from .base import RETRYABLE_STATUS, ProviderError, reply_byte_cap, reply_text_bytes, reply_too_large
from .retry import call_with_retries

# The providers' own limit on the bytes of one batch (requests: config.BATCH_LIMITS).
MAX_BATCH_BYTES = 190 * 2**20  # OpenAI takes files up to 200 MB, Anthropic bodies up to 256 MB
ANTHROPIC_VERSION = "2023-06-01"
_OPENAI_ENDED = {"completed", "expired", "cancelled", "failed"}


@dataclass(frozen=True)
class BatchState:
    batch_id: str
    status: str  # the provider's word: in_progress, completed, expired, ended ...
    ended: bool
    done: int  # requests finished so far, successful or not
    total: int
    files: tuple[str, ...] = ()  # where the results are: OpenAI file ids, or Anthropic's results URL


@dataclass(frozen=True)
class BatchResult:
    custom_id: str | None  # None: a line of the file that cannot be read, and whose custom id cannot be either
    completion: Completion | None
    error: str | None  # why this item has no completion


class _Http:
    """Requests to one API origin with the endpoint's credentials and retry policy."""

    def __init__(self, config: EndpointConfig, root: str, headers: dict[str, str]):
        self.config, self.root = config, yarl.URL(root.rstrip("/"))
        self.endpoint = redact_url(str(self.root))
        self.session = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=config.timeout_s, sock_read=config.timeout_s))  # a results file may be large

    async def close(self) -> None:
        await self.session.close()

    def url(self, path: str) -> yarl.URL:
        target = self.root.join(yarl.URL(path)) if path.startswith("http") else yarl.URL(f"{self.root}{path}")
        if (target.scheme, target.host, target.port) != (self.root.scheme, self.root.host, self.root.port):
            raise ProviderError(f"{self.endpoint} points the results at {target.origin()}: credentials are only sent "
                                "to the configured origin, so they were not fetched", retryable=False)
        return target

    async def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return (await call_with_retries(self.config, lambda: self._guarded(
            lambda: self.json_once(method, path, **kwargs))))[0]

    async def json_once(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One request, not retried (its caller decides what a retry must check first)."""
        async with self.session.request(method, self.url(path), **kwargs) as response:
            body = await response.read()
            self._check(response.status, body)
            return json.loads(body)

    async def lines(self, path: str, limit: int) -> AsyncIterator[Line]:
        """The lines of a results file, read as it arrives, each held up to `limit` bytes (a longer one arrives as
        its head only: lines.LineSplitter). Only the opening of the download is retried: lines already handed on
        cannot be taken back."""
        url = self.url(path)

        async def opened() -> aiohttp.ClientResponse:
            response = await self.session.get(url)
            if response.status >= 400:
                body = await response.read()
                response.release()
                self._check(response.status, body)
            return response

        response = (await call_with_retries(self.config, lambda: self._guarded(opened)))[0]
        splitter = LineSplitter(limit)
        try:
            while chunk := await response.content.readany():
                for line in splitter.feed(chunk):
                    yield line
            for line in splitter.end():
                yield line
        finally:
            response.release()

    async def records(self, path: str, limit: int) -> AsyncIterator[tuple[str | None, Any, str | None]]:
        """(custom id, record, None) for each result line of a file, or (custom id or None, None, why) for a line
        that cannot be read: over `limit`, not JSON, not an object, no custom id. The custom id of a bad line is
        read from its beginning where it can be, so the error is that item's; else it is None (the file's)."""
        name = path.rsplit("/", 2)[-2]  # the file id (OpenAI: /files/ID/content) or batch id (Anthropic: …/ID/results)
        async for line in self.lines(path, limit):
            if line.data is not None and not line.data.strip():
                continue
            where = f"result line {line.number} of {name}"
            try:
                record = parse_json_line(line, limit)
            except BadLine as exc:
                yield _custom_id_in(line.head), None, f"{where}: {exc.reason}"
                continue
            custom_id = record.get("custom_id") if isinstance(record, dict) else None
            if not isinstance(record, dict):
                yield None, None, f"{where}: a {type(record).__name__}, not a JSON object"
            elif not isinstance(custom_id, str) or not custom_id:
                yield None, None, f"{where}: no custom_id (found {shown(custom_id, 40)})"
            else:
                yield custom_id, record, None

    async def _guarded(self, call):
        try:
            return await call()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError(f"connection error to {self.endpoint}: {exc or type(exc).__name__}",
                                retryable=True) from None
        except ValueError as exc:
            raise ProviderError(f"malformed response from {self.endpoint}: {exc}", retryable=True) from None

    def _check(self, status: int, body: bytes) -> None:
        if status < 400:
            return
        detail = body.decode("utf-8", "replace")
        try:
            error = json.loads(detail).get("error")
            detail = str(error.get("message", error)) if isinstance(error, dict) else str(error or detail)
        except (ValueError, AttributeError):
            pass
        raise ProviderError(f"HTTP {status} from {self.endpoint}: {detail[:300] or '(no body)'}",
                            retryable=status in RETRYABLE_STATUS or status >= 500)


class OpenAIBatches:
    """The Batch API of api.openai.com (or a server that speaks it), for chat completions."""

    def __init__(self, config: EndpointConfig):
        from .openai_compat import OPENAI_URL, OpenAIProvider

        self.config = config
        self.chat = OpenAIProvider(config)  # builds the request bodies exactly as a normal request's
        key = self.chat.api_key()
        self.http = _Http(config, config.base_url or OPENAI_URL, {"Authorization": f"Bearer {key}"})
        self.endpoint = self.http.endpoint

    def body(self, messages: list[Message], overrides: dict[str, Any]) -> dict[str, Any]:
        return self.chat._request(messages, dict(overrides))

    async def submit(self, requests: Sequence[tuple[str, dict[str, Any]]]) -> str:
        lines = "".join(json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                                    "body": body}) + "\n" for custom_id, body in requests)
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", lines.encode(), filename="arena-eval-batch.jsonl", content_type="application/jsonl")
        uploaded = await self.http.json("POST", "/files", data=form)
        request = {"input_file_id": uploaded["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
        tried = False

        async def create() -> dict[str, Any]:
            # A create whose reply was lost (a timeout, a 5xx after the batch was made) may have made the batch:
            # before asking again, look for a batch over this very input file, so the work is not billed twice.
            nonlocal tried
            if tried and (existing := await self._batch_over(uploaded["id"])) is not None:
                return existing
            tried = True
            return await self.http.json_once("POST", "/batches", json=request)

        created, _ = await call_with_retries(self.config, lambda: self.http._guarded(create))
        return created["id"]

    async def _batch_over(self, input_file_id: str) -> dict[str, Any] | None:
        """The most recent batch over `input_file_id`, if one exists (the newest 100 batches are looked at)."""
        listed = await self.http.json_once("GET", "/batches", params={"limit": "100"})
        return next((b for b in listed.get("data") or [] if b.get("input_file_id") == input_file_id), None)

    async def poll(self, batch_id: str) -> BatchState:
        batch = await self.http.json("GET", f"/batches/{batch_id}")
        counts = batch.get("request_counts") or {}
        status = batch.get("status", "unknown")
        files = tuple(f for f in (batch.get("output_file_id"), batch.get("error_file_id")) if f)
        return BatchState(batch_id, status, status in _OPENAI_ENDED,
                          (counts.get("completed") or 0) + (counts.get("failed") or 0), counts.get("total") or 0, files)

    async def results(self, state: BatchState) -> AsyncIterator[BatchResult]:
        cap = reply_byte_cap(self.config)
        for file_id in state.files:
            async for custom_id, record, problem in self.http.records(f"/files/{file_id}/content", reply_line_bytes(cap)):
                if record is None:
                    yield BatchResult(custom_id, None, problem)
                    continue
                try:
                    yield self._result(custom_id, record, cap)
                except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:  # a field of a wrong type
                    yield BatchResult(custom_id, None, f"malformed result: {shown(str(exc), 300)}")

    def _result(self, custom_id: str, line: dict[str, Any], cap: int) -> BatchResult:
        from .openai_compat import _check_usable, _from_json

        response, error = line.get("response") or {}, line.get("error")
        if not isinstance(response, dict):
            raise TypeError(f"`response` is a {type(response).__name__}, not an object")
        if error or response.get("status_code") != 200:
            return BatchResult(custom_id, None, _openai_error(error, response))
        try:
            completion = _from_json(response.get("body"))
            _check_usable(completion)
        except ProviderError as exc:
            return BatchResult(custom_id, None, exc.reason)
        return _capped(custom_id, completion, cap, self.endpoint, self.config)

    async def close(self) -> None:
        await self.http.close()


class AnthropicBatches:
    """Anthropic's Message Batches."""

    def __init__(self, config: EndpointConfig):
        from .anthropic import DEFAULT_ENDPOINT, AnthropicProvider, _sdk_base_url

        self.config = config
        key = AnthropicProvider(config).api_key()
        root = _sdk_base_url(config.base_url) or DEFAULT_ENDPOINT
        self.http = _Http(config, root, {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION})
        self.endpoint = self.http.endpoint

    def body(self, messages: list[Message], overrides: dict[str, Any]) -> dict[str, Any]:
        from .anthropic import sampling_fields, split_system

        system, turns = split_system(messages)
        params: dict[str, Any] = {"model": self.config.model, "messages": turns, "max_tokens": self.config.max_tokens}
        if system:
            params["system"] = system
        params.update(sampling_fields(self.config))
        params.update(self.config.extra_body)
        params.update(overrides)
        return params

    async def submit(self, requests: Sequence[tuple[str, dict[str, Any]]]) -> str:
        created = await self.http.json("POST", "/v1/messages/batches", json={
            "requests": [{"custom_id": custom_id, "params": params} for custom_id, params in requests]})
        return created["id"]

    async def poll(self, batch_id: str) -> BatchState:
        batch = await self.http.json("GET", f"/v1/messages/batches/{batch_id}")
        counts = batch.get("request_counts") or {}
        waiting = counts.get("processing") or 0
        finished = sum(counts.get(k) or 0 for k in ("succeeded", "errored", "canceled", "expired"))
        status = batch.get("processing_status", "unknown")
        url = batch.get("results_url")
        return BatchState(batch_id, status, status == "ended", finished, finished + waiting, (url,) if url else ())

    async def results(self, state: BatchState) -> AsyncIterator[BatchResult]:
        cap = reply_byte_cap(self.config)
        for url in state.files:
            async for custom_id, record, problem in self.http.records(url, reply_line_bytes(cap)):
                if record is None:
                    yield BatchResult(custom_id, None, problem)
                    continue
                try:
                    yield self._result(custom_id, record, cap)
                except (KeyError, TypeError, AttributeError, IndexError) as exc:  # a field of a wrong type
                    yield BatchResult(custom_id, None, f"malformed result: {shown(str(exc), 300)}")
                except ValueError as exc:  # pydantic's ValidationError is one
                    yield BatchResult(custom_id, None, f"malformed result: {str(exc)[:300]}")

    def _result(self, custom_id: str, line: dict[str, Any], cap: int) -> BatchResult:
        from anthropic.types import Message as SdkMessage

        from .anthropic import _check_usable, _from_message

        result = line.get("result") or {}
        if not isinstance(result, dict):
            raise TypeError(f"`result` is a {type(result).__name__}, not an object")
        kind = result.get("type")
        if kind != "succeeded":
            error = result.get("error") or {}
            error = error if isinstance(error, dict) else {}
            inner = error.get("error") if isinstance(error.get("error"), dict) else error
            detail = inner.get("message") or inner.get("type")
            return BatchResult(custom_id, None, f"{shown(kind, 60) if kind else 'unknown result'}"
                                                f"{f': {shown(detail, 300)}' if detail else ''}")
        try:
            completion = _from_message(SdkMessage.model_validate(result.get("message")))
            _check_usable(completion, self.endpoint)
        except ProviderError as exc:
            return BatchResult(custom_id, None, exc.reason)
        return _capped(custom_id, completion, cap, self.endpoint, self.config)

    async def close(self) -> None:
        await self.http.close()


def _capped(custom_id: str, completion: Completion, cap: int, endpoint: str, config: EndpointConfig) -> BatchResult:
    """The result, or its error when the reply is over max_response_bytes: the cap of a direct request holds for a
    batch's too (docs/design.md §6.2)."""
    if reply_text_bytes(completion) > cap:
        return BatchResult(custom_id, None, reply_too_large(endpoint, config, "batch result").reason)
    return BatchResult(custom_id, completion, None)


_CUSTOM_ID = re.compile(rb'"custom_id"\s*:\s*("(?:[^"\\]|\\.){1,512}")')


def _custom_id_in(head: bytes) -> str | None:
    """The custom id written at the start of a line that cannot be read whole (both providers write it first)."""
    found = _CUSTOM_ID.search(head)
    if found is None:
        return None
    try:
        custom_id = json.loads(found.group(1))
    except ValueError:
        return None
    return custom_id if isinstance(custom_id, str) and custom_id and lone_surrogate(custom_id) is None else None


def _openai_error(error: Any, response: dict[str, Any]) -> str:
    """Why an OpenAI batch item failed: the error line's code and message, or the response's status and error."""
    if isinstance(error, dict):
        return ": ".join(shown(part, 300) if not isinstance(part, str) else part[:300]
                         for part in (error.get("code"), error.get("message")) if part) or "failed"
    if error:
        return f"failed: {shown(error, 300)}"
    body = response.get("body") if isinstance(response.get("body"), dict) else {}
    detail = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else None
    return f"HTTP {response.get('status_code')}{f': {detail}' if detail else ''}"


def batch_client(config: EndpointConfig) -> OpenAIBatches | AnthropicBatches:
    """The batch API of `config`'s provider (the config allows `batch: true` only where there is one)."""
    return OpenAIBatches(config) if config.provider == "openai" else AnthropicBatches(config)


def max_requests(config: EndpointConfig) -> int:
    """The most requests one batch of this endpoint holds: `batch_max_requests`, else the provider's limit."""
    return config.batch_max_requests or BATCH_LIMITS[config.provider]
