"""OpenAI and every OpenAI-compatible server (vLLM, llama.cpp, Ollama's /v1): the chat completions API over aiohttp.

The API is one JSON POST (or a server-sent event stream), so the provider speaks it directly rather than through
the `openai` SDK: the SDK's request building, typed transforms and response models cost ~1 ms of CPU per request,
five times the HTTP exchange itself, and at a few hundred requests in flight on a small machine that CPU, not the
server, set the pace (docs/benchmarks.md, section 1). Owning the exchange also pins down how every failure is
reported (status, timeout, reset, cut-off body), which the SDK's transport layers changed between versions.

What the exchange promises:
- Time: `timeout_s` bounds a plain request from connecting to the reply's last byte, however slowly the server
  sends it. A stream gets `timeout_s` for its first event and again after each complete event (an event with data;
  comments do not count), so a long generation that streams steadily is never cut off, and a server that sends
  bytes without ever completing an event is.
- Size: no reply is held beyond `reply_byte_cap` (max_response_bytes, or 1 MiB + 1 KiB per max_tokens). A
  Content-Length above it is refused before the body is read; otherwise the body, or the stream, is counted as it
  arrives and the exchange stops as soon as the count passes the cap. Stream lines are split here, from the
  chunks as they arrive, so no line-length limit of aiohttp's decides what happens. Error bodies are read up to
  64 KiB (300 characters are kept).
- Credentials (the API key, or a base_url's user:password) go only to the configured origin (scheme, host,
  port). aiohttp does not follow redirects; a 307/308 to the same origin is followed here (same method and body,
  at most 5 hops), and any other redirect is an error that is not retried: a redirect to another origin, or a
  301/302/303, which would turn the POST into a GET.

A reasoning model's thinking, which servers return beside the answer (`reasoning_content` or `reasoning` in the
message or the stream's deltas), goes to `Completion.reasoning`, never into the text, and the usage's
`completion_tokens_details.reasoning_tokens` to `reasoning_tokens`. Thinking left in the text between <think> tags
(a server without a reasoning parser) is the text's, for `reasoning.separate_reasoning` to move out.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import ssl
import time
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

import yarl

from ..config import EndpointConfig, redact_url
from ..errors import ConfigError
from ..records import Completion, Message
from ..redaction import register_basic_auth, register_secret
from .base import (
    REFUSALS,
    RETRYABLE_STATUS,
    ProviderError,
    choice_response_format,
    estimate_tokens,
    no_answer_error,
    read_api_key,
    reply_byte_cap,
    reply_too_large,
    retry_after_from_headers,
)

if TYPE_CHECKING:
    # aiohttp is imported when a session starts (and where its errors are caught): `validate` makes providers to
    # check their keys and sends nothing, so it does not pay aiohttp's import (issue 26 item 6).
    import aiohttp

OPENAI_URL = "https://api.openai.com/v1"
MAX_REDIRECTS = 5
# An error reply's body is read this far; its message keeps 300 characters.
ERROR_BODY_BYTES = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SAME_METHOD_REDIRECTS = frozenset({307, 308})  # the others turn a POST into a GET


class OpenAIProvider:
    name = "openai"

    def __init__(self, config: EndpointConfig, base_url: str | None = None):
        self.config = config
        self.base_url = base_url or config.base_url
        self.endpoint = redact_url(self.base_url or OPENAI_URL)
        self._session: aiohttp.ClientSession | None = None
        self._url = yarl.URL()
        self._reply_cap = reply_byte_cap(config)

    @property
    def started(self) -> bool:
        return self._session is not None

    def api_key(self) -> str:
        variable = self.config.api_key_env
        if variable:
            return read_api_key(variable, f"api_key_env of model {self.config.model!r}")
        if self.base_url:
            return "not-needed"  # local OpenAI-compatible servers accept any key
        return read_api_key(
            "OPENAI_API_KEY", f"the default key variable for openai model {self.config.model!r}",
            unset=f"model {self.config.model!r} talks to api.openai.com but OPENAI_API_KEY is not set; "
                  "export it, or set api_key_env / base_url",
        )

    async def start(self) -> None:
        import aiohttp

        if self._session is not None:
            return
        url = yarl.URL((self.base_url or OPENAI_URL).rstrip("/") + "/chat/completions")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if url.user is not None:
            # user:password@ in base_url: HTTP basic auth, e.g. for a proxy in front of a local server. It takes the
            # Authorization header, so it cannot go with an API key as well.
            if self.config.api_key_env:
                raise ConfigError(
                    f"model {self.config.model!r}: base_url {self.endpoint} holds a user name and password and "
                    f"api_key_env is set too; both would need the Authorization header. Keep one of them"
                )
            register_basic_auth(url.user, url.password)
            register_secret(url.raw_password)  # as written in the URL, percent-encoding and all
            headers["Authorization"] = _basic_credentials(url.user, url.password or "")
            url = url.with_user(None)
        else:
            headers["Authorization"] = f"Bearer {self.api_key()}"
        if not self.base_url:  # the SDK's organisation and project headers, for api.openai.com
            for variable, header in (("OPENAI_ORG_ID", "OpenAI-Organization"), ("OPENAI_PROJECT_ID", "OpenAI-Project")):
                if os.environ.get(variable):
                    headers[header] = os.environ[variable]
        self._url = url
        self._session = aiohttp.ClientSession(
            # Default headers, credentials included, go with every request; requests only ever go to this
            # origin, since redirects elsewhere are refused (_redirect_target).
            headers=headers,
            # Our workers bound the requests in flight; the pool must not queue them a second time.
            connector=aiohttp.TCPConnector(limit=0, ssl=_ssl_context() if url.scheme == "https" else True),
            # Every timeout is ours (see the module docstring): aiohttp's defaults (5 minutes in all) must not cut in.
            timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=None, sock_read=None),
            # HTTP(S)_PROXY and NO_PROXY as the SDK honoured them, looked up once: aiohttp's trust_env looks them
            # (and ~/.netrc) up again for every request, in a worker thread.
            proxy=_proxy_for(str(url)),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def constrain_to(self, choices: list[str]) -> dict[str, Any]:
        return choice_response_format(choices)

    def _request(self, messages: list[Message], overrides: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        request: dict[str, Any] = {
            "model": cfg.model or "local",
            "messages": messages,
            "max_tokens": cfg.max_tokens,
            "temperature": cfg.temperature,
        }
        if cfg.top_p is not None:
            request["top_p"] = cfg.top_p
        if cfg.seed is not None:
            request["seed"] = cfg.seed
        extra_body = dict(cfg.extra_body)
        extra_body.update(overrides.pop("extra_body", None) or {})
        request.update(overrides)
        request.update(extra_body)  # fields the server knows and the OpenAI API does not (grammar, guided choice)
        return request

    async def complete(self, messages: list[Message], **overrides: Any) -> Completion:
        import aiohttp  # in sys.modules once a session has started: a dictionary look-up

        if self._session is None:
            await self.start()
        request = self._request(messages, dict(overrides))
        if self.config.stream:
            request["stream"] = True
            request["stream_options"] = {"include_usage": True}
        started = time.perf_counter()
        try:
            # One timer for the whole exchange (no task per request); a stream pushes it on after each event.
            async with asyncio.timeout(self.config.timeout_s) as deadline:
                completion = await self._exchange(json.dumps(request).encode(), deadline, started)
        except TimeoutError:
            raise ProviderError(f"timeout after {self.config.timeout_s:g}s from {self.endpoint}", retryable=True) from None
        except aiohttp.ClientPayloadError as exc:
            raise ProviderError(f"connection error to {self.endpoint}: reply cut off ({_cause(exc)})", retryable=True) from None
        except aiohttp.ServerDisconnectedError:
            raise ProviderError(f"connection error to {self.endpoint}: connection closed or reset by the server "
                                "before a reply", retryable=True) from None
        except aiohttp.ClientError as exc:
            raise ProviderError(f"connection error to {self.endpoint}: {_cause(exc)}", retryable=True) from None
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:  # JSONDecodeError is a ValueError
            raise ProviderError(f"malformed response from {self.endpoint}: {exc}", retryable=True) from None
        completion.latency_s = time.perf_counter() - started
        _check_usable(completion)
        return completion

    async def _exchange(self, body: bytes, deadline: asyncio.Timeout, started: float) -> Completion:
        """POST `body`, following same-origin 307/308 redirects, and read the reply within the size cap."""
        url = self._url
        for _ in range(MAX_REDIRECTS + 1):
            async with self._session.post(url, data=body, allow_redirects=False) as response:
                if response.status in _REDIRECTS:
                    url = self._redirect_target(response.status, response.headers.get("Location"), url)
                    continue
                if response.status >= 400:
                    detail = await _read_prefix(response.content, ERROR_BODY_BYTES)
                    raise _status_error(response.status, response.headers, detail, self.endpoint)
                declared = response.content_length
                if declared is not None and declared > self._reply_cap:
                    raise reply_too_large(self.endpoint, self.config)
                if self.config.stream:
                    return await self._read_stream(response.content, deadline, started)
                return _from_json(json.loads(await self._read_body(response.content)))
        raise ProviderError(f"more than {MAX_REDIRECTS} redirects from {self.endpoint}; point base_url at the "
                            "address that answers", retryable=False)

    def _redirect_target(self, status: int, location: str | None, url: yarl.URL) -> yarl.URL:
        """Where a redirect leads, when it may be followed with the credentials; a ProviderError otherwise."""
        if not location:
            raise ProviderError(f"HTTP {status} from {self.endpoint} without a Location to redirect to", retryable=False)
        target = url.join(yarl.URL(location))
        if _origin(target) != _origin(self._url):
            raise ProviderError(
                f"HTTP {status} from {self.endpoint} redirects to {_origin_text(target)}: credentials are only sent "
                "to the configured origin, so the redirect was not followed; point base_url at the new address",
                retryable=False,
            )
        if status not in _SAME_METHOD_REDIRECTS:
            raise ProviderError(
                f"HTTP {status} from {self.endpoint} redirects to {target.with_query(None).with_fragment(None)}, "
                f"and a {status} would turn the POST into a GET, so the redirect was not followed; point base_url "
                "at the new address",
                retryable=False,
            )
        return target

    async def _read_body(self, content: aiohttp.StreamReader) -> bytes:
        chunks: list[bytes] = []
        received = 0
        while chunk := await content.readany():
            received += len(chunk)
            if received > self._reply_cap:
                raise reply_too_large(self.endpoint, self.config)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _read_stream(self, content: aiohttp.StreamReader, deadline: asyncio.Timeout, started: float) -> Completion:
        loop = asyncio.get_running_loop()
        events, reply = EventStreamParser(), StreamedReply(started)
        received = 0
        while chunk := await content.readany():
            received += len(chunk)
            if received > self._reply_cap:
                raise reply_too_large(self.endpoint, self.config)
            for data in events.feed(chunk):
                deadline.reschedule(loop.time() + self.config.timeout_s)
                if not reply.add(data):
                    return reply.completion()
        for data in events.end():
            if not reply.add(data):
                break
        return reply.completion()


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """Certificates from certifi when it is there (as the SDK and httpx verified them), else the system's.
    Built once: loading the certificate file takes ~30 ms."""
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY), unless NO_PROXY exempts it."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


def _cause(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__  # ProviderError redacts URL user info in its reason


def _basic_credentials(user: str, password: str) -> str:
    """The Authorization value for HTTP basic auth: latin-1 as aiohttp's BasicAuth encoded it, UTF-8 (RFC 7617)
    for what latin-1 cannot hold."""
    pair = f"{user}:{password}"
    try:
        raw = pair.encode("latin-1")
    except UnicodeEncodeError:
        raw = pair.encode("utf-8")
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _origin(url: yarl.URL) -> tuple[str, str | None, int | None]:
    return url.scheme, url.host, url.port  # port: the scheme's default when the URL names none


def _origin_text(url: yarl.URL) -> str:
    return str(url.origin()) if url.is_absolute() and url.host else str(url)


async def _read_prefix(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The first `limit` bytes of a body, or all of a shorter one."""
    chunks: list[bytes] = []
    received = 0
    while received < limit and (chunk := await content.readany()):
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)[:limit]


class EventStreamParser:
    """Server-sent events from chunks of bytes as they arrive: `feed` returns the data of each event a chunk
    completes (the lines of one event joined by newlines); comments and other fields are skipped."""

    def __init__(self) -> None:
        self._partial: list[bytes] = []  # the start of a line whose end has not arrived
        self._data: list[str] = []  # the data lines of the event being read

    def feed(self, chunk: bytes) -> list[str]:
        end = chunk.rfind(b"\n")
        if end < 0:
            self._partial.append(chunk)
            return []
        complete = chunk[:end]
        if self._partial:
            complete = b"".join(self._partial) + complete
        self._partial = [chunk[end + 1:]] if end + 1 < len(chunk) else []
        events = []
        for line in complete.split(b"\n"):
            event = self._line(line.rstrip(b"\r").decode("utf-8"))
            if event is not None:
                events.append(event)
        return events

    def end(self) -> list[str]:
        """The data of an event the stream's end completes (a server may omit the final blank line)."""
        events = []
        if self._partial:
            event = self._line(b"".join(self._partial).rstrip(b"\r").decode("utf-8"))
            self._partial = []
            if event is not None:
                events.append(event)
        if self._data:
            events.append("\n".join(self._data))
            self._data = []
        return events

    def _line(self, line: str) -> str | None:
        if not line:
            if not self._data:
                return None
            event, self._data = "\n".join(self._data), []
            return event
        field, _, value = line.partition(":")
        if field == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None


class StreamedReply:
    """The completion that a chat completion stream's events build up."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.parts: list[str] = []
        self.thinking: list[str] = []
        self.refusal: list[str] = []
        self.ttft: float | None = None
        self.finish: str | None = None
        self.model: str | None = None
        self.usage: dict[str, Any] = {}

    def add(self, data: str) -> bool:
        """Take one event's data; False once the stream says it is done."""
        if data.strip() == "[DONE]":
            return False
        chunk = json.loads(data)
        if not isinstance(chunk, dict):
            raise ValueError(f"expected a JSON object in the stream, got {type(chunk).__name__}")
        if chunk.get("error"):  # vLLM and others report a failure mid-stream as an event
            error = chunk["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise ProviderError(f"error in the stream: {str(message)[:300]}", retryable=True)
        self.model = self.model or chunk.get("model")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            content, thinking = delta.get("content"), _reasoning_of(delta)
            if (content or thinking) and self.ttft is None:
                # The first token the model generated, thinking included: the same time whether the server parses
                # the thinking out or leaves it in the text between <think> tags.
                self.ttft = time.perf_counter() - self.started
            if content:
                self.parts.append(content)
            if thinking:
                self.thinking.append(thinking)
            if delta.get("refusal"):
                self.refusal.append(delta["refusal"])
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return True

    def completion(self) -> Completion:
        if self.finish is None:
            raise ProviderError("stream ended before a finish reason (truncated stream)", retryable=True)
        _check_refusal("".join(self.refusal))
        return _completion("".join(self.parts), "".join(self.thinking) or None, self.usage, self.finish, self.ttft,
                           self.model)


def _from_json(response: Any) -> Completion:
    """A chat completion's JSON body as a Completion; a malformed body raises ValueError, KeyError or TypeError."""
    if not isinstance(response, dict):
        raise ValueError(f"expected a JSON object, got {type(response).__name__}")
    if not response.get("choices"):
        raise ProviderError("response holds no choices", retryable=True)
    choice = response["choices"][0]
    message = choice.get("message") or {}
    _check_refusal(message.get("refusal"))
    return _completion(message.get("content") or "", _reasoning_of(message), response.get("usage") or {},
                       choice.get("finish_reason"), None, response.get("model"))


def _reasoning_of(fields: dict[str, Any]) -> str | None:
    """A message's (or a stream delta's) thinking, under either name servers give it: `reasoning_content`
    (DeepSeek, vLLM) or `reasoning` (OpenRouter, Ollama, recent vLLM). Only one is read: a server that sends both
    sends the same text twice."""
    for name in ("reasoning_content", "reasoning"):
        value = fields.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _completion(text: str, reasoning: str | None, usage: dict[str, Any], finish: str | None, ttft: float | None,
                model: str | None) -> Completion:
    output_tokens = usage.get("completion_tokens")
    estimated = output_tokens is None
    if estimated:
        output_tokens = estimate_tokens(text + (reasoning or ""))  # the thinking is billed as output too
    details = usage.get("completion_tokens_details")
    return Completion(
        text=text,
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=output_tokens,
        tokens_estimated=estimated,
        finish_reason=finish,
        ttft_s=ttft,
        raw_model=model,
        reasoning=reasoning,
        reasoning_tokens=details.get("reasoning_tokens") if isinstance(details, dict) else None,
    )


def _check_refusal(refusal: str | None) -> None:
    """OpenAI puts a refusal in the message's `refusal` field (content null, finish_reason stop): an error to
    record, not an empty answer to ask for again."""
    if refusal:
        raise ProviderError(f"provider refused to answer: {str(refusal)[:200]}", retryable=False)


def _check_usable(completion: Completion) -> None:
    if completion.finish_reason in REFUSALS:
        raise ProviderError(f"provider refused to answer (finish_reason={completion.finish_reason})", retryable=False)
    if not completion.text.strip():
        raise no_answer_error(completion)


def _status_error(status: int, headers: Any, body: bytes, endpoint: str) -> ProviderError:
    """An HTTP error reply: the server's own message (OpenAI's {"error": {"message": ...}}) when it gives one."""
    detail = body.decode("utf-8", "replace").strip()
    try:
        error = json.loads(detail).get("error")
        if isinstance(error, dict) and error.get("message"):
            detail = str(error["message"])
        elif isinstance(error, str) and error:
            detail = error
    except (ValueError, AttributeError):
        pass
    return ProviderError(
        f"HTTP {status} from {endpoint}: {detail[:300] or '(no body)'}", retryable=status in RETRYABLE_STATUS,
        retry_after=retry_after_from_headers(headers),
    )
