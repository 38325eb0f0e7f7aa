"""Answer collection (DESIGN §3.1): an async generator that yields answers as they complete.

- A fixed pool of `concurrency` workers pulls questions from one iterator, so memory stays bounded however
  large the set: no request is materialised before a worker is free for it.
- Each answer is written to the store the moment it arrives; a killed run loses only requests in flight.
- Answers already stored under the same key (config_id, question_id, prompt_hash) are yielded as cached and
  not requested again.
- A request that still fails after the retries becomes an AnswerError, never an answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from .config import ContestantConfig, EndpointConfig
from .errors import AugmentError
from .pricing import cost_of, price_for
from .providers.base import Provider, ProviderError
from .questions import Question
from .records import Answer, AnswerError, Message

if TYPE_CHECKING:
    from .augment import Prepared

T = TypeVar("T")


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
                result = await call()
        return result, attempts
    except ProviderError as exc:
        raise RetriesExhausted(_exhausted_reason(exc), attempts) from None


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


def prompt_hash(messages: list[Message]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


def answer_id(config_id: str, question_id: str, p_hash: str) -> str:
    return hashlib.sha256(f"{config_id}\x1f{question_id}\x1f{p_hash}".encode()).hexdigest()[:20]


async def collect_answers(
    contestant: ContestantConfig,
    provider: Provider,
    questions: Iterable[Question],
    store,
    prepare: Callable[[Question], Awaitable["Prepared"]],
    run_id: str | None = None,
) -> AsyncIterator[Answer | AnswerError]:
    """Yield one Answer (new or cached) or AnswerError per question, in completion order.

    `prepare` gives the messages for a question (augment.Augmenter.prepare); it may raise AugmentError.
    """
    results: asyncio.Queue = asyncio.Queue(maxsize=max(64, contestant.concurrency * 2))
    done_marker = object()

    async def supervise() -> None:
        try:
            await collect_into(contestant, provider, questions, store, prepare, results.put, run_id)
        finally:
            await results.put(done_marker)

    supervisor = asyncio.create_task(supervise())
    try:
        while True:
            item = await results.get()
            if item is done_marker:
                break
            yield item
        await supervisor  # surfaces an unexpected exception from a worker
    finally:
        if not supervisor.done():
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)


async def collect_into(
    contestant: ContestantConfig,
    provider: Provider,
    questions: Iterable[Question],
    store,
    prepare: Callable[[Question], Awaitable["Prepared"]],
    deliver: Callable[[Answer | AnswerError], Awaitable[None]],
    run_id: str | None = None,
) -> None:
    """collect_answers without the generator: each worker hands its result to `deliver` itself, so a consumer
    sees an answer in the same turn of the event loop as it arrived (no queue in between), and `deliver`
    blocking holds that worker back (backpressure). Returns when every question is answered or errored."""
    config_id = contestant.config_id
    price = price_for(contestant)
    # Stored answers are found per question through the store's unique index, not loaded into a dict of every
    # key; a configuration with nothing stored when collection starts (a fresh run) skips the look-ups.
    look_up = store.count_answers(config_id) > 0
    limiter = RateLimiter(contestant.requests_per_minute)
    pending = iter(questions)

    async def one(question: Question) -> Answer | AnswerError:
        try:
            prepared = await prepare(question)
        except AugmentError as exc:
            error = AnswerError(contestant.name, config_id, question.question_id, str(exc), 0)
            store.save_answer_error(error, run_id)
            return error
        messages = prepared.messages
        p_hash = prompt_hash(messages)
        key = answer_id(config_id, question.question_id, p_hash)
        stored_id = store.find_answer_id(config_id, question.question_id, p_hash) if look_up else None
        if stored_id is not None:
            cached = store.get_answer(stored_id)
            if cached is not None:
                cached.cached = True
                cached.contestant = contestant.name
                return cached

        async def request():
            await limiter.wait()
            return await provider.complete(messages)

        try:
            completion, _ = await call_with_retries(contestant, request)
        except RetriesExhausted as exc:
            error = AnswerError(contestant.name, config_id, question.question_id, exc.reason, exc.attempts)
            store.save_answer_error(error, run_id)
            return error
        answer = Answer(
            answer_id=key,
            contestant=contestant.name,
            config_id=config_id,
            question_id=question.question_id,
            prompt_hash=p_hash,
            text=completion.text,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            tokens_estimated=completion.tokens_estimated,
            finish_reason=completion.finish_reason,
            latency_s=completion.latency_s,
            ttft_s=completion.ttft_s,
            cost=completion.cost if completion.cost is not None else cost_of(price, completion.input_tokens, completion.output_tokens),
            created_at=time.time(),
            run_id=run_id,
            context_ids=prepared.context_ids or None,
        )
        store.save_answer(answer)
        return answer

    async def worker() -> None:
        for question in pending:  # one shared iterator: each question is taken by exactly one worker
            await deliver(await one(question))

    workers = [asyncio.create_task(worker()) for _ in range(contestant.concurrency)]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
