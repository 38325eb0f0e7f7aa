"""The retry policy every request goes through, whichever provider serves it (docs/design.md, collection).

Exponential backoff with full jitter, a server's Retry-After honoured when it asks for longer, then a recorded
error. Providers only say whether a failure is worth retrying (ProviderError.retryable) and for how long the
server asked to wait; collection, guidance and judging all retry through `call_with_retries`. An endpoint with
replicas also says which replica failed (ProviderError.replica); the retries of a request remember those replicas
(`failed_replicas`), so that the next attempt goes to another one.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Set
from contextvars import ContextVar
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from ..config import EndpointConfig
from .base import ProviderError

T = TypeVar("T")

# The replicas the request being retried has failed on. Set for the retries only: a first attempt, which most
# requests never get past, costs nothing here.
_FAILED_ON: ContextVar[Set[int]] = ContextVar("arena_eval_failed_on", default=frozenset())


def failed_replicas() -> Set[int]:
    """The replicas (indices in replicas.ReplicaSet) on which the current request's earlier attempts failed."""
    return _FAILED_ON.get()


class RetriesExhausted(Exception):
    def __init__(self, reason: str, attempts: int):
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


def _backoff(config: EndpointConfig, attempts_before: int = 0) -> Callable[[RetryCallState], float]:
    """Exponential backoff with full jitter; a server's Retry-After wins when it asks for longer.
    `attempts_before`: attempts made before tenacity took over (they count towards the exponent)."""

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return backoff_delay(config, attempts_before + state.attempt_number, error)

    return wait


def backoff_delay(config: EndpointConfig, attempt: int, error: BaseException | None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    ceiling = min(config.retry_max_s, config.retry_initial_s * 2 ** (attempt - 1))
    delay = random.uniform(0, ceiling)
    if isinstance(error, ProviderError) and error.retry_after is not None:
        delay = max(delay, min(error.retry_after, max(config.retry_max_s, 1.0)))
    return delay


async def call_with_retries(config: EndpointConfig, call: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    """Run `call` under the endpoint's retry policy; return (result, attempts) or raise RetriesExhausted.

    The first attempt is a plain call: most requests succeed at once, and tenacity's per-call set-up (an
    AsyncRetrying with its inspected callbacks) cost ~0.1 ms of CPU a request, a tenth of the client's whole
    share at high concurrency. Only a failed first attempt hands the rest of the budget to tenacity.
    """
    try:
        return await call(), 1
    except ProviderError as exc:
        if not exc.retryable or config.max_attempts == 1:
            raise RetriesExhausted(_exhausted_reason(exc), 1) from None
        first_error = exc
    failed_on = {first_error.replica} if first_error.replica is not None else set()
    remembered = _FAILED_ON.set(failed_on)
    try:
        await asyncio.sleep(backoff_delay(config, 1, first_error))
        attempts = 1
        retrying = AsyncRetrying(
            stop=stop_after_attempt(config.max_attempts - 1),
            wait=_backoff(config, attempts_before=1),
            retry=retry_if_exception(lambda e: isinstance(e, ProviderError) and e.retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = 1 + attempt.retry_state.attempt_number
                    try:
                        result = await call()
                    except ProviderError as exc:
                        if exc.replica is not None:
                            failed_on.add(exc.replica)
                        raise
            return result, attempts
        except ProviderError as exc:
            raise RetriesExhausted(_exhausted_reason(exc), attempts) from None
    finally:
        _FAILED_ON.reset(remembered)


def _exhausted_reason(exc: ProviderError) -> str:
    return f"{exc.reason}{'' if exc.retryable else ' (not retried)'}"


class RateLimiter:
    """Spaces requests evenly to stay under a requests-per-minute budget."""

    def __init__(self, per_minute: float | None):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)
