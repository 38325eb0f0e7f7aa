"""Any model litellm can reach (model names like "openai/gpt-4o-mini", "anthropic/claude-…", "ollama/…").

litellm is imported lazily, on start(): it takes seconds to import, and runs without a litellm contestant
should not pay for it. It is imported in a worker thread so that other contestants keep running meanwhile,
with LITELLM_LOCAL_MODEL_COST_MAP=True so that it never downloads its price map.

Retrying stays ours (num_retries=0 and max_retries=0 turn off litellm's and the vendor SDK's own retries);
litellm's exception types are mapped onto the shared policy.

Cost comes from litellm's price map; it is None (unknown) for a model the map does not know, never 0. The map
prices a model by its name: a self-hosted server that serves a model under a vendor's name through `base_url`
gets the vendor's price.

close() releases nothing: litellm caches its HTTP clients process-wide and shares them between callers, so
closing them from one provider would break the others (litellm closes them itself at exit).

Time and size are bounded around litellm, not inside it. `timeout_s` bounds a plain request as a whole (an asyncio
deadline around the call: the timeout litellm passes on restarts with every byte that arrives) and a stream's
wait for its first chunk and between chunks. The reply's text, thinking included, is bounded by `reply_byte_cap`
(max_response_bytes, or 1 MiB + 1 KiB per max_tokens): a stream stops, with an error, as soon as its text passes
the cap; a plain reply whose text passes it is an error instead of an answer. What is not bounded: the bytes litellm
and the vendor SDK under it read and parse before handing over a plain reply, and stream chunks without text.

A reasoning model's thinking, which litellm hands over as `reasoning_content` whatever the vendor called it (or
only as Anthropic-style `thinking_blocks`), goes to `Completion.reasoning`, never into the text; the usage's
`completion_tokens_details.reasoning_tokens` to `reasoning_tokens`.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from types import ModuleType
from typing import Any

from ..config import EndpointConfig, redact_url
from ..errors import ConfigError
from ..records import Completion, Message
from .base import (
    REFUSALS,
    RETRYABLE_STATUS,
    ProviderError,
    choice_response_format,
    estimate_tokens,
    no_answer_error,
    read_api_key,
    register_url_password,
    reply_byte_cap,
    reply_text_bytes,
    reply_too_large,
    retry_after_from_headers,
)


def load_litellm() -> ModuleType:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        # Absolute: this module is itself named litellm, and must get the real package, not itself.
        module = importlib.import_module("litellm")
    except ImportError:
        raise ConfigError("provider litellm needs the litellm package: pip install litellm") from None
    if not hasattr(module, "acompletion"):
        raise ConfigError(f"'import litellm' found {getattr(module, '__file__', module)!r}, not the litellm package")
    module.suppress_debug_info = True  # no "Give Feedback / Get Help" banner printed on every exception
    return module


class LiteLLMProvider:
    name = "litellm"

    def __init__(self, config: EndpointConfig):
        self.config = config
        self.endpoint = redact_url(config.base_url or f"litellm's default endpoint for {config.model}")
        self._litellm: ModuleType | None = None
        self._reply_cap = reply_byte_cap(config)

    def api_key(self) -> str:
        """The key from api_key_env; "" without one, since litellm reads each vendor's own variable itself."""
        register_url_password(self.config.base_url)
        variable = self.config.api_key_env
        if not variable:
            return ""
        return read_api_key(variable, f"api_key_env of model {self.config.model!r}")

    async def start(self) -> None:
        if self._litellm is None:
            self._litellm = await asyncio.to_thread(load_litellm)

    async def close(self) -> None:
        """Nothing to release; see the module docstring."""

    def constrain_to(self, choices: list[str]) -> dict[str, Any]:
        # litellm translates an OpenAI response_format for the vendors that support structured output, and
        # refuses it (HTTP 400, not retried) for those that do not.
        return choice_response_format(choices)

    def _request(self, messages: list[Message], overrides: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        request: dict[str, Any] = {
            "model": cfg.model,
            "messages": messages,
            "max_tokens": cfg.max_tokens,
            "temperature": cfg.temperature,
            "timeout": cfg.timeout_s,
            "num_retries": 0,  # litellm's own retries
            "max_retries": 0,  # the vendor SDK's retries underneath litellm
        }
        if cfg.top_p is not None:
            request["top_p"] = cfg.top_p
        if cfg.seed is not None:
            request["seed"] = cfg.seed
        if cfg.base_url:
            request["api_base"] = cfg.base_url
        key = self.api_key()
        if key:
            request["api_key"] = key
        request.update(cfg.extra_body)
        request.update(overrides.pop("extra_body", {}))
        request.update(overrides)
        return request

    async def complete(self, messages: list[Message], **overrides: Any) -> Completion:
        if self._litellm is None:
            await self.start()
        litellm = self._litellm
        request = self._request(messages, dict(overrides))
        started = time.perf_counter()
        deadline = asyncio.timeout(self.config.timeout_s)  # litellm's timeout restarts with every byte; this does not
        try:
            async with deadline:
                if self.config.stream:
                    completion = await self._stream(request, started, deadline)
                else:
                    response = await litellm.acompletion(**request)
                    completion = _from_response(response)
                    if reply_text_bytes(completion) > self._reply_cap:
                        raise reply_too_large(self.endpoint, self.config, "reply text")
                    completion.cost = _cost(litellm, response)
        except ProviderError:
            raise
        except Exception as exc:
            if isinstance(exc, TimeoutError) or deadline.expired():  # the deadline, however litellm reported it
                raise ProviderError(f"timeout after {self.config.timeout_s:g}s from {self.endpoint}",
                                    retryable=True) from None
            error = _provider_error(exc, litellm, self.endpoint, self.config.timeout_s)
            if error is None:
                raise  # not a failure of the endpoint: a bug should surface, not be retried
            raise error from None
        completion.latency_s = time.perf_counter() - started
        _check_usable(completion, self.endpoint)
        return completion

    async def _stream(self, request: dict[str, Any], started: float, deadline: asyncio.Timeout) -> Completion:
        loop = asyncio.get_running_loop()
        stream = await self._litellm.acompletion(**request, stream=True, stream_options={"include_usage": True})
        parts: list[str] = []
        thinking: list[str] = []
        text_bytes = 0
        ttft = finish = usage = model = None
        try:
            async for chunk in stream:
                deadline.reschedule(loop.time() + self.config.timeout_s)
                model = model or getattr(chunk, "model", None)
                usage = getattr(chunk, "usage", None) or usage
                for choice in chunk.choices or []:
                    content = choice.delta.content if choice.delta else None
                    thought = getattr(choice.delta, "reasoning_content", None) if choice.delta else None
                    if (content or thought) and ttft is None:
                        ttft = time.perf_counter() - started  # the first token generated, thinking included
                    for piece, pieces in ((content, parts), (thought, thinking)):
                        if piece:
                            pieces.append(piece)
                            text_bytes += len(piece.encode())
                    if text_bytes > self._reply_cap:
                        raise reply_too_large(self.endpoint, self.config, "reply text")
                    if choice.finish_reason:
                        finish = choice.finish_reason
        finally:  # a stream left early (the cap, the deadline, an error) must not keep its connection
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
        if finish is None:
            raise ProviderError("stream ended before a finish reason (truncated stream)", retryable=True)
        return _completion("".join(parts), "".join(thinking) or None, usage, finish, ttft, model)


def _from_response(response: Any) -> Completion:
    if not response.choices:
        raise ProviderError("response holds no choices", retryable=True)
    choice = response.choices[0]
    message = choice.message
    text = message.content if message else None
    return _completion(text or "", _reasoning_of(message), getattr(response, "usage", None), choice.finish_reason,
                       None, response.model)


def _reasoning_of(message: Any) -> str | None:
    """A message's thinking: `reasoning_content`, else the text of its Anthropic-style `thinking_blocks`
    (redacted blocks hold none)."""
    if message is None:
        return None
    reasoning = getattr(message, "reasoning_content", None)
    if isinstance(reasoning, str) and reasoning:
        return reasoning
    thoughts = [block.get("thinking") for block in getattr(message, "thinking_blocks", None) or []
                if isinstance(block, dict) and block.get("type") == "thinking"]
    return "\n\n".join(thought for thought in thoughts if isinstance(thought, str) and thought) or None


def _completion(text: str, reasoning: str | None, usage: Any, finish: str | None, ttft: float | None,
                model: str | None) -> Completion:
    input_tokens = getattr(usage, "prompt_tokens", None) if usage is not None else None
    output_tokens = getattr(usage, "completion_tokens", None) if usage is not None else None
    details = getattr(usage, "completion_tokens_details", None) if usage is not None else None
    estimated = output_tokens is None
    return Completion(
        text=text,
        input_tokens=input_tokens,
        output_tokens=estimate_tokens(text + (reasoning or "")) if estimated else output_tokens,
        tokens_estimated=estimated,
        finish_reason=finish,
        ttft_s=ttft,
        raw_model=model,
        reasoning=reasoning,
        reasoning_tokens=getattr(details, "reasoning_tokens", None),
    )


def _cost(litellm: ModuleType, response: Any) -> float | None:
    """The request's price in USD from litellm's price map; None when the map does not know the model."""
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost")
    if cost is None:
        try:
            cost = litellm.completion_cost(completion_response=response)
        except Exception:  # litellm raises for unmapped models; unknown is None, never 0
            return None
    return float(cost) if cost is not None else None


def _check_usable(completion: Completion, endpoint: str) -> None:
    if completion.finish_reason in REFUSALS:
        raise ProviderError(f"{endpoint} refused to answer (finish_reason={completion.finish_reason})", retryable=False)
    if not completion.text.strip():
        raise no_answer_error(completion, f" from {endpoint}")


def _classes(litellm: ModuleType, *names: str) -> tuple[type, ...]:
    return tuple(cls for name in names if isinstance(cls := getattr(litellm, name, None), type))


def _provider_error(exc: Exception, litellm: ModuleType, endpoint: str, timeout_s: float) -> ProviderError | None:
    """litellm's exception as a ProviderError under the shared retry policy; None for what is not an API error."""
    status = getattr(exc, "status_code", None)
    detail = str(exc)[:300]
    retry_after = _retry_after_of(exc)
    if isinstance(exc, _classes(litellm, "ContentPolicyViolationError")):
        return ProviderError(f"{endpoint} refused to answer (content policy): {detail}", retryable=False)
    if isinstance(exc, _classes(litellm, "Timeout")):
        return ProviderError(f"timeout after {timeout_s:g}s from {endpoint}: {detail}", retryable=True)
    if isinstance(exc, _classes(litellm, "APIConnectionError")):
        return ProviderError(f"connection error to {endpoint}: {detail}", retryable=True)
    transient = _classes(litellm, "RateLimitError", "ServiceUnavailableError", "InternalServerError", "BadGatewayError")
    permanent = _classes(litellm, "AuthenticationError", "BadRequestError", "NotFoundError", "PermissionDeniedError",
                         "UnprocessableEntityError")
    if isinstance(exc, transient):
        retryable = True
    elif isinstance(exc, permanent):
        retryable = False
    elif isinstance(status, int):
        retryable = status in RETRYABLE_STATUS or status >= 500
    elif isinstance(exc, _classes(litellm, "APIError", "APIResponseValidationError", "OpenAIError")):
        retryable = True  # an API failure without a status, e.g. a malformed response
    else:
        return None
    where = f"HTTP {status}" if isinstance(status, int) else type(exc).__name__
    return ProviderError(f"{where} from {endpoint}: {detail}", retryable=retryable, retry_after=retry_after)


def _retry_after_of(exc: Exception) -> float | None:
    """The server's Retry-After. litellm keeps the vendor's headers in `litellm_response_headers`; the
    `response` it attaches to its own exceptions is often rebuilt without them."""
    response = getattr(exc, "response", None)
    for headers in (getattr(exc, "litellm_response_headers", None), getattr(response, "headers", None),
                    getattr(exc, "headers", None)):
        if headers:
            seconds = retry_after_from_headers(headers)
            if seconds is not None:
                return seconds
    return None
