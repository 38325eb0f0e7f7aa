"""OpenAI and every OpenAI-compatible server (vLLM, llama.cpp, Ollama's /v1): the chat completions API over aiohttp.

The API is one JSON POST (or a server-sent event stream), so the provider speaks it directly rather than through
the `openai` SDK: the SDK's request building, typed transforms and response models cost ~1 ms of CPU per request,
five times the HTTP exchange itself, and at a few hundred requests in flight on a small machine that CPU, not the
server, set the pace (docs/benchmarks.md, section 1). Owning the exchange also pins down how every failure is
reported (status, timeout, reset, cut-off body), which the SDK's transport layers changed between versions.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import yarl

from ..config import EndpointConfig, redact_url
from ..errors import ConfigError
from ..records import Completion, Message
from .base import REFUSALS, RETRYABLE_STATUS, ProviderError, choice_response_format, estimate_tokens, retry_after_from_headers

OPENAI_URL = "https://api.openai.com/v1"


class OpenAIProvider:
    name = "openai"

    def __init__(self, config: EndpointConfig, base_url: str | None = None):
        self.config = config
        self.base_url = base_url or config.base_url
        self.endpoint = redact_url(self.base_url or OPENAI_URL)
        self._session: aiohttp.ClientSession | None = None
        self._url = ""

    @property
    def started(self) -> bool:
        return self._session is not None

    def api_key(self) -> str:
        variable = self.config.api_key_env
        if variable:
            value = os.environ.get(variable)
            if not value:
                raise ConfigError(
                    f"environment variable {variable} (api_key_env of model {self.config.model!r}) is not set; "
                    f"export {variable}=... before the run"
                )
            return value
        if self.base_url:
            return "not-needed"  # local OpenAI-compatible servers accept any key
        value = os.environ.get("OPENAI_API_KEY")
        if not value:
            raise ConfigError(
                f"model {self.config.model!r} talks to api.openai.com but OPENAI_API_KEY is not set; "
                "export it, or set api_key_env / base_url"
            )
        return value

    async def start(self) -> None:
        if self._session is not None:
            return
        url = yarl.URL((self.base_url or OPENAI_URL).rstrip("/") + "/chat/completions")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        auth = None
        if url.user is not None:
            # user:password@ in base_url: HTTP basic auth, e.g. for a proxy in front of a local server. It takes the
            # Authorization header, so it cannot go with an API key as well.
            if self.config.api_key_env:
                raise ConfigError(
                    f"model {self.config.model!r}: base_url {self.endpoint} holds a user name and password and "
                    f"api_key_env is set too; both would need the Authorization header. Keep one of them"
                )
            auth = aiohttp.BasicAuth(url.user, url.password or "")
            url = url.with_user(None)
        else:
            headers["Authorization"] = f"Bearer {self.api_key()}"
        if not self.base_url:  # the SDK's organisation and project headers, for api.openai.com
            for variable, header in (("OPENAI_ORG_ID", "OpenAI-Organization"), ("OPENAI_PROJECT_ID", "OpenAI-Project")):
                if os.environ.get(variable):
                    headers[header] = os.environ[variable]
        self._url = str(url)
        timeout = self.config.timeout_s
        self._session = aiohttp.ClientSession(
            headers=headers,
            auth=auth,
            # Our workers bound the requests in flight; the pool must not queue them a second time.
            connector=aiohttp.TCPConnector(limit=0, ssl=_ssl_context() if url.scheme == "https" else True),
            # Like the SDK's: the connection, and every wait for the next bytes of a reply, may take timeout_s
            # (a long generation that streams is never cut off; a server that goes silent is).
            timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout),
            # HTTP(S)_PROXY and NO_PROXY as the SDK honoured them, looked up once: aiohttp's trust_env looks them
            # (and ~/.netrc) up again for every request, in a worker thread.
            proxy=_proxy_for(self._url),
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
        if self._session is None:
            await self.start()
        request = self._request(messages, dict(overrides))
        stream = self.config.stream
        if stream:
            request["stream"] = True
            request["stream_options"] = {"include_usage": True}
        started = time.perf_counter()
        try:
            async with self._session.post(self._url, data=json.dumps(request).encode()) as response:
                if response.status >= 400:
                    raise _status_error(response.status, response.headers, await response.read(), self.endpoint)
                if stream:
                    completion = await _read_stream(response.content, started)
                else:
                    completion = _from_json(json.loads(await response.read()))
        except asyncio.TimeoutError:  # aiohttp's connect and read timeouts are TimeoutErrors too
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


async def _events(content: aiohttp.StreamReader) -> AsyncIterator[str]:
    """The data of each server-sent event (lines of one event joined by newlines); comments are skipped."""
    data: list[str] = []
    async for raw in content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


async def _read_stream(content: aiohttp.StreamReader, started: float) -> Completion:
    parts: list[str] = []
    refusal: list[str] = []
    ttft = finish = model = None
    usage: dict[str, Any] = {}
    async for data in _events(content):
        if data.strip() == "[DONE]":
            break
        chunk = json.loads(data)
        if not isinstance(chunk, dict):
            raise ValueError(f"expected a JSON object in the stream, got {type(chunk).__name__}")
        if chunk.get("error"):  # vLLM and others report a failure mid-stream as an event
            error = chunk["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise ProviderError(f"error in the stream: {str(message)[:300]}", retryable=True)
        model = model or chunk.get("model")
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if ttft is None:
                    ttft = time.perf_counter() - started
                parts.append(delta["content"])
            if delta.get("refusal"):
                refusal.append(delta["refusal"])
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    if finish is None:
        raise ProviderError("stream ended before a finish reason (truncated stream)", retryable=True)
    _check_refusal("".join(refusal))
    return _completion("".join(parts), usage.get("prompt_tokens"), usage.get("completion_tokens"), finish, ttft, model)


def _from_json(response: Any) -> Completion:
    """A chat completion's JSON body as a Completion; a malformed body raises ValueError, KeyError or TypeError."""
    if not isinstance(response, dict):
        raise ValueError(f"expected a JSON object, got {type(response).__name__}")
    if not response.get("choices"):
        raise ProviderError("response holds no choices", retryable=True)
    choice = response["choices"][0]
    _check_refusal((choice.get("message") or {}).get("refusal"))
    text = (choice.get("message") or {}).get("content")
    usage = response.get("usage") or {}
    return _completion(text or "", usage.get("prompt_tokens"), usage.get("completion_tokens"),
                       choice.get("finish_reason"), None, response.get("model"))


def _completion(text: str, input_tokens: int | None, output_tokens: int | None, finish: str | None,
                ttft: float | None, model: str | None) -> Completion:
    estimated = output_tokens is None
    if estimated:
        output_tokens = estimate_tokens(text)
    return Completion(
        text=text,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tokens_estimated=estimated,
        finish_reason=finish,
        ttft_s=ttft,
        raw_model=model,
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
        raise ProviderError(f"empty content (finish_reason={completion.finish_reason})", retryable=True)


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
