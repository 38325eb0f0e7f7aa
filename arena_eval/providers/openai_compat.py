"""OpenAI and every OpenAI-compatible server (vLLM, llama.cpp, Ollama's /v1) through the official async client."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx
import openai

from ..config import EndpointConfig, redact_url
from ..errors import ConfigError
from ..records import Completion, Message
from .base import REFUSALS, RETRYABLE_STATUS, ProviderError, choice_response_format, estimate_tokens, retry_after_from_headers



class OpenAIProvider:
    name = "openai"

    def __init__(self, config: EndpointConfig, base_url: str | None = None):
        self.config = config
        self.base_url = base_url or config.base_url
        self.endpoint = redact_url(self.base_url or "https://api.openai.com/v1")
        self._client: openai.AsyncOpenAI | None = None

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
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                api_key=self.api_key(),
                base_url=self.base_url,
                max_retries=0,  # retries are ours: one policy for every provider
                timeout=self.config.timeout_s,
                http_client=_http_client(),
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

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
        extra_body.update(overrides.pop("extra_body", {}))
        if extra_body:
            request["extra_body"] = extra_body
        request.update(overrides)
        return request

    async def complete(self, messages: list[Message], **overrides: Any) -> Completion:
        if self._client is None:
            await self.start()
        request = self._request(messages, dict(overrides))
        started = time.perf_counter()
        try:
            if self.config.stream:
                completion = await self._stream(request, started)
            else:
                completion = _from_json(await self._post_chat(request))
        except openai.APIStatusError as exc:
            raise _status_error(exc, self.endpoint) from None
        except openai.APITimeoutError as exc:
            cause = _root_cause(exc)
            if not _is_timeout(cause):
                raise ProviderError(f"connection error to {self.endpoint}: {cause}", retryable=True) from None
            raise ProviderError(f"timeout after {self.config.timeout_s:g}s from {self.endpoint}", retryable=True) from None
        except openai.APIConnectionError as exc:
            raise ProviderError(f"connection error to {self.endpoint}: {exc.__cause__ or exc}", retryable=True) from None
        except (openai.APIResponseValidationError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProviderError(f"malformed response from {self.endpoint}: {exc}", retryable=True) from None
        completion.latency_s = time.perf_counter() - started
        _check_usable(completion)
        return completion

    async def _post_chat(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST /chat/completions through the client's generic `post`, which keeps its auth, timeouts and
        status errors but skips `chat.completions.create`'s typed-params transform and pydantic response models:
        those cost ~0.7 ms of CPU per request, more than half the client's share (bench/bench_orchestration.py)."""
        body = dict(request)
        body.update(body.pop("extra_body", None) or {})
        response = await self._client.post("/chat/completions", body=body, cast_to=httpx.Response)
        return json.loads(response.content)

    async def _stream(self, request: dict[str, Any], started: float) -> Completion:
        stream = await self._client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        parts: list[str] = []
        refusal: list[str] = []
        ttft = finish = usage = model = None
        async for chunk in stream:
            model = model or chunk.model
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    if ttft is None:
                        ttft = time.perf_counter() - started
                    parts.append(choice.delta.content)
                if choice.delta and getattr(choice.delta, "refusal", None):
                    refusal.append(choice.delta.refusal)
                if choice.finish_reason:
                    finish = choice.finish_reason
        if finish is None:
            raise ProviderError("stream ended before a finish reason (truncated stream)", retryable=True)
        _check_refusal("".join(refusal))
        return _completion("".join(parts), getattr(usage, "prompt_tokens", None),
                           getattr(usage, "completion_tokens", None), finish, ttft, model)


def _http_client() -> Any:
    """The aiohttp transport when available: with httpx's own pool, the client's CPU per request was ~2.4x
    higher (bench/bench_collect.py), which caps throughput at high concurrency on small machines."""
    try:
        import httpx_aiohttp  # noqa: F401
    except ImportError:
        return None
    return openai.DefaultAioHttpClient()


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


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _is_timeout(cause: BaseException) -> bool:
    """httpx_aiohttp reports every aiohttp connection error, a reset included, as httpx.ConnectTimeout: only an
    underlying timeout (or no underlying error) makes a timeout."""
    return isinstance(cause, (TimeoutError, httpx.TimeoutException, openai.APITimeoutError))


def _check_usable(completion: Completion) -> None:
    if completion.finish_reason in REFUSALS:
        raise ProviderError(f"provider refused to answer (finish_reason={completion.finish_reason})", retryable=False)
    if not completion.text.strip():
        raise ProviderError(f"empty content (finish_reason={completion.finish_reason})", retryable=True)


def _status_error(exc: openai.APIStatusError, endpoint: str) -> ProviderError:
    status = exc.status_code
    retry_after = retry_after_from_headers(exc.response.headers if exc.response is not None else {})
    detail = str(exc.message)[:300]
    return ProviderError(
        f"HTTP {status} from {endpoint}: {detail}", retryable=status in RETRYABLE_STATUS, retry_after=retry_after
    )
