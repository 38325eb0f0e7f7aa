"""Anthropic's Messages API through the official async client.

Messages arrive OpenAI-style; system messages move to the top-level `system` field, as the API requires.
Stop reasons are reported in the OpenAI vocabulary the rest of the pipeline uses ("stop", "length", ...),
so finish reasons compare across providers. `base_url` is the API root (the SDK appends /v1/messages); an
OpenAI-style one that ends in /v1 is accepted too. temperature/top_p are sent only when the config sets them
(see sampling_fields).

Label constraints: `constrain_to` returns nothing. The Messages API has no grammar; its structured outputs
(`output_config.format`, a JSON schema) exist on recent models only, and a judge forced into a bare JSON label
could no longer reason before its verdict. `judge.constrain_labels` is meant for small local judges; a Claude
judge gets the same prompt, which lists the five labels, and the same re-ask when a reply holds none.

Time and size are bounded around the SDK, not inside it. `timeout_s` bounds a plain request as a whole (an
asyncio deadline around the SDK's call: its own httpx timeout restarts with every byte that arrives) and a stream's
wait for its first event and between events. The reply's text, thinking included, is bounded by `reply_byte_cap`
(max_response_bytes, or 1 MiB + 1 KiB per max_tokens): a stream stops, with an error, as soon as its text passes
the cap; a plain reply whose text passes it is an error instead of an answer. What is not bounded: the bytes the
SDK reads and parses before handing over a plain reply (the whole body is in memory by then), and a stream's events
that carry no text.

Extended thinking: `thinking` blocks (and `thinking_delta`s in a stream) go to `Completion.reasoning`, one block
from the next by a blank line, never into the text, which only `text` blocks make up. `redacted_thinking` blocks
hold nothing readable and are left out, as are the signatures. The usage counts the thinking in `output_tokens`
and nowhere apart, so `reasoning_tokens` stays None.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterable
from typing import Any

import anthropic

from ..config import EndpointConfig, redact_url
from ..records import Completion, Message
from .base import (
    REFUSALS,
    RETRYABLE_STATUS,
    ProviderError,
    estimate_tokens,
    no_answer_error,
    read_api_key,
    register_url_password,
    reply_byte_cap,
    reply_text_bytes,
    reply_too_large,
    retry_after_from_headers,
)

DEFAULT_ENDPOINT = "https://api.anthropic.com"
DEFAULT_KEY_VARIABLE = "ANTHROPIC_API_KEY"
# Error types that may arrive inside a 200 stream (an `error` event), where the status says nothing.
_RETRYABLE_TYPES = {"overloaded_error", "rate_limit_error", "api_error", "timeout_error"}
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, config: EndpointConfig):
        self.config = config
        self.base_url = _sdk_base_url(config.base_url)
        # Without base_url the SDK reads ANTHROPIC_BASE_URL itself; name the URL it will really use.
        self.endpoint = redact_url(self.base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_ENDPOINT)
        self._client: anthropic.AsyncAnthropic | None = None
        self._reply_cap = reply_byte_cap(config)

    def api_key(self) -> str:
        variable = self.config.api_key_env or DEFAULT_KEY_VARIABLE
        purpose = f"api_key_env of model {self.config.model!r}" if self.config.api_key_env else (
            f"the default key variable for anthropic model {self.config.model!r}")
        register_url_password(self.base_url)
        return read_api_key(variable, purpose)

    async def start(self) -> None:
        if self._client is None:
            self._client = anthropic.AsyncAnthropic(
                api_key=self.api_key(),
                base_url=self.base_url,
                max_retries=0,  # retries are ours: one policy for every provider
                timeout=self.config.timeout_s,
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def constrain_to(self, choices: list[str]) -> dict[str, Any]:
        return {}  # no constrained decoding in the Messages API; see the module docstring

    def _request(self, messages: list[Message], overrides: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        system, turns = split_system(messages)
        request: dict[str, Any] = {
            "model": cfg.model,
            "messages": turns,
            "max_tokens": cfg.max_tokens,
            # Per request as well: with an explicit timeout the SDK skips its own guess of how long a
            # non-streamed request may take (which refuses large max_tokens outright).
            "timeout": cfg.timeout_s,
        }
        if system:
            request["system"] = system
        extra_body = sampling_fields(cfg)
        extra_body.update(cfg.extra_body)
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
        deadline = asyncio.timeout(self.config.timeout_s)  # the SDK's timeout restarts with every byte; this does not
        try:
            async with deadline:
                if self.config.stream:
                    completion = await self._stream(request, started, deadline)
                else:
                    response = await self._client.messages.create(**request)
                    completion = _from_message(response)
                    if reply_text_bytes(completion) > self._reply_cap:
                        raise reply_too_large(self.endpoint, self.config, "reply text")
        except ProviderError:
            raise
        except anthropic.APIStatusError as exc:
            raise _status_error(exc, self.endpoint) from None
        except (TimeoutError, anthropic.APITimeoutError):
            raise self._timeout() from None
        except anthropic.APIConnectionError as exc:
            if deadline.expired():  # the deadline's cancellation, as the SDK reported it
                raise self._timeout() from None
            raise ProviderError(f"connection error to {self.endpoint}: {exc.__cause__ or exc}", retryable=True) from None
        except (anthropic.APIResponseValidationError, json.JSONDecodeError) as exc:
            raise ProviderError(f"malformed response from {self.endpoint}: {exc}", retryable=True) from None
        completion.latency_s = time.perf_counter() - started
        _check_usable(completion, self.endpoint)
        return completion

    def _timeout(self) -> ProviderError:
        return ProviderError(f"timeout after {self.config.timeout_s:g}s from {self.endpoint}", retryable=True)

    async def _stream(self, request: dict[str, Any], started: float, deadline: asyncio.Timeout) -> Completion:
        loop = asyncio.get_running_loop()
        stream = await self._client.messages.create(**request, stream=True)
        parts: list[str] = []
        thinking: dict[int, list[str]] = {}  # content block index → its thinking deltas
        text_bytes = 0
        ttft = stop_reason = model = None
        input_tokens = output_tokens = None
        async with stream:  # closes the connection also when an error event (or the cap) ends the stream early
            async for event in stream:
                deadline.reschedule(loop.time() + self.config.timeout_s)
                if event.type == "message_start":
                    model = event.message.model
                    input_tokens = _input_tokens(event.message.usage)
                elif event.type == "content_block_delta" and event.delta.type in ("text_delta", "thinking_delta"):
                    if ttft is None:  # the first token generated, thinking included
                        ttft = time.perf_counter() - started
                    if event.delta.type == "text_delta":
                        piece = event.delta.text
                        parts.append(piece)
                    else:
                        piece = event.delta.thinking
                        thinking.setdefault(event.index, []).append(piece)
                    text_bytes += len(piece.encode())
                    if text_bytes > self._reply_cap:
                        raise reply_too_large(self.endpoint, self.config, "reply text")
                elif event.type == "message_delta":
                    stop_reason = event.delta.stop_reason or stop_reason
                    output_tokens = getattr(event.usage, "output_tokens", None)  # cumulative: the last one is final
        if stop_reason is None:
            raise ProviderError("stream ended before a stop reason (truncated stream)", retryable=True)
        reasoning = _join_thinking("".join(thinking[index]) for index in sorted(thinking))
        return _completion("".join(parts), reasoning, input_tokens, output_tokens, stop_reason, ttft, model)


def sampling_fields(config: EndpointConfig) -> dict[str, Any]:
    """temperature/top_p, only where the config sets them.

    SDK 1.x dropped these keyword arguments, and SDK 2.x speaks API version 2026-10-21, which refuses them at
    any value; older API versions and Anthropic-compatible gateways still take them. So they travel in the
    request body, and only when the user asked for them: a default config works everywhere, and an explicit
    value the server refuses fails loudly (HTTP 400, not retried) rather than being dropped in silence.
    """
    fields: dict[str, Any] = {}
    if "temperature" in config.model_fields_set:
        fields["temperature"] = config.temperature
    if config.top_p is not None:
        fields["top_p"] = config.top_p
    return fields


def split_system(messages: list[Message]) -> tuple[str, list[Message]]:
    """(system text, user/assistant turns): system messages joined; consecutive same-role turns merged,
    since the API wants user and assistant to alternate."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    turns: list[Message] = []
    for message in messages:
        if message["role"] == "system":
            continue
        if turns and turns[-1]["role"] == message["role"]:
            turns[-1] = {"role": message["role"], "content": turns[-1]["content"] + "\n\n" + message["content"]}
        else:
            turns.append({"role": message["role"], "content": message["content"]})
    return "\n\n".join(system), turns


def _sdk_base_url(base_url: str | None) -> str | None:
    """The SDK appends /v1/messages itself; accept an OpenAI-style base URL that already ends in /v1."""
    if not base_url:
        return None
    trimmed = base_url.rstrip("/")
    return trimmed[: -len("/v1")] if trimmed.endswith("/v1") else trimmed


def _from_message(message: Any) -> Completion:
    blocks = message.content or []
    text = "".join(block.text or "" for block in blocks if getattr(block, "type", None) == "text")
    reasoning = _join_thinking(block.thinking or "" for block in blocks if getattr(block, "type", None) == "thinking")
    usage = message.usage
    return _completion(text, reasoning, _input_tokens(usage), getattr(usage, "output_tokens", None),
                       message.stop_reason, None, message.model)


def _join_thinking(blocks: Iterable[str]) -> str | None:
    """The thinking blocks' text, a blank line between blocks; None when there is none."""
    return "\n\n".join(block for block in blocks if block) or None


def _input_tokens(usage: Any) -> int | None:
    """All prompt tokens: `input_tokens` leaves out those written to or read from the prompt cache."""
    if usage is None or getattr(usage, "input_tokens", None) is None:
        return None
    cached = (getattr(usage, "cache_creation_input_tokens", None) or 0) + (getattr(usage, "cache_read_input_tokens", None) or 0)
    return usage.input_tokens + cached


def _completion(text: str, reasoning: str | None, input_tokens: int | None, output_tokens: int | None,
                stop_reason: str | None, ttft: float | None, model: str | None) -> Completion:
    estimated = output_tokens is None
    return Completion(
        text=text,
        reasoning=reasoning,
        input_tokens=input_tokens,
        output_tokens=estimate_tokens(text + (reasoning or "")) if estimated else output_tokens,
        tokens_estimated=estimated,
        finish_reason=_FINISH.get(stop_reason, stop_reason) if stop_reason else None,
        ttft_s=ttft,
        raw_model=model,
    )


def _check_usable(completion: Completion, endpoint: str) -> None:
    if completion.finish_reason in REFUSALS:
        raise ProviderError(
            f"{endpoint} refused to answer (stop_reason={completion.finish_reason})", retryable=False
        )
    if not completion.text.strip():
        raise no_answer_error(completion, f" from {endpoint}", "stop_reason")


def _status_error(exc: anthropic.APIStatusError, endpoint: str) -> ProviderError:
    status = exc.status_code
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    kind = error.get("type")
    detail = str(error.get("message") or exc.message)[:300]
    retryable = status in RETRYABLE_STATUS or status >= 500 or kind in _RETRYABLE_TYPES
    retry_after = retry_after_from_headers(exc.response.headers if exc.response is not None else {})
    if status < 400:  # an `error` event inside a stream that began with 200
        reason = f"{kind or 'error'} in the stream from {endpoint}: {detail}"
    else:
        reason = f"HTTP {status}{f' {kind}' if kind else ''} from {endpoint}: {detail}"
    return ProviderError(reason, retryable=retryable, retry_after=retry_after)
