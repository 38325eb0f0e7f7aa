"""Answer collection (docs/design.md §3.1): an async generator that yields answers as they complete.

- A fixed pool of `concurrency` workers pulls questions from one iterator, so memory stays bounded however
  large the set: no request is materialised before a worker is free for it.
- Each answer is written to the store the moment it arrives; a killed run loses only requests in flight.
- Answers already stored under the same key (answer set, question_id, prompt_hash) are yielded as cached and
  not requested again.
- A request that still fails after the retries becomes an AnswerError, never an answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from .answer_sets import current_among, question_digest
from .config import ContestantConfig
from .errors import AugmentError
from .pricing import cost_of, price_for
from .providers.base import Provider
from .providers.retry import RateLimiter, RetriesExhausted, call_with_retries
from .questions import Question
from .records import Answer, AnswerError, Message

if TYPE_CHECKING:
    from .augment import Prepared


def prompt_hash(messages: list[Message]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


def conversation_hash(messages: list[Message], question: Question) -> str:
    return prompt_hash(messages + [{"role": "user", "content": t} for t in question.follow_ups])


def answer_id(config_id: str, question_id: str, p_hash: str) -> str:
    return hashlib.sha256(f"{config_id}\x1f{question_id}\x1f{p_hash}".encode()).hexdigest()[:20]


async def collect_answers(
    contestant: ContestantConfig,
    provider: Provider,
    questions: Iterable[Question],
    store,
    prepare: Callable[[Question], Awaitable["Prepared"]],
    run_id: str | None = None,
    set_id: str | None = None,
) -> AsyncIterator[Answer | AnswerError]:
    """Yield one Answer (new or cached) or AnswerError per question, in completion order.

    `prepare` gives the messages for a question (augment.Augmenter.prepare); it may raise AugmentError.
    `set_id`: the answer set to collect into (answer_sets.AnswerSets.set_id); default the configuration's own.
    """
    results: asyncio.Queue = asyncio.Queue(maxsize=max(64, contestant.concurrency * 2))
    done_marker = object()

    async def supervise() -> None:
        try:
            await collect_into(contestant, provider, questions, store, prepare, results.put, run_id, set_id)
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
    set_id: str | None = None,
) -> None:
    """collect_answers without the generator: each worker hands its result to `deliver` itself, so a consumer
    sees an answer in the same turn of the event loop as it arrived (no queue in between), and `deliver`
    blocking holds that worker back (backpressure). Returns when every question is answered or errored.

    Collection also keeps the set's current answers right (answer_sets.py): where the answer it used is not the
    one the rule would find, or a question it failed on still has an older answer, it says so in the store."""
    config_id = set_id or contestant.base_config_id
    price = price_for(contestant)
    # Stored answers are found per question through the store's unique index, not loaded into a dict of every
    # key; a configuration with nothing stored when collection starts (a fresh run) skips the look-ups.
    look_up = store.count_answers(config_id) > 0
    overridden = look_up and store.has_current_overrides(config_id)
    limiter = RateLimiter(contestant.requests_per_minute)
    pending = iter(questions)

    def failed(question: Question, reason: str, attempts: int, stored: list[tuple]) -> AnswerError:
        error = AnswerError(contestant.name, config_id, question.question_id, reason, attempts)
        store.save_answer_error(error, run_id)
        if stored:  # an older answer, to an earlier prompt, must not stand in for this one
            store.set_current(config_id, question.question_id, None)
        return error

    async def one(question: Question) -> Answer | AnswerError:
        stored = store.question_answers(config_id, question.question_id) if look_up else []
        try:
            prepared = await prepare(question)
        except AugmentError as exc:
            return failed(question, str(exc), 0, stored)
        messages = prepared.messages
        p_hash = prompt_hash(messages)
        digest = question_digest(question)
        stored_id = next((row[0] for row in stored if row[3] == p_hash), None)
        if stored_id is not None:
            cached = store.get_answer(stored_id)
            if cached is not None:
                if current_among(stored, digest) != stored_id or overridden:
                    store.set_current(config_id, question.question_id, stored_id)
                cached.cached = True
                cached.contestant = contestant.name
                return cached

        async def request():
            await limiter.wait()
            return await provider.complete(messages)

        try:
            completion, _ = await call_with_retries(contestant, request)
        except RetriesExhausted as exc:
            return failed(question, exc.reason, exc.attempts, stored)
        answer = Answer(
            answer_id=answer_id(config_id, question.question_id, p_hash),
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
            question_digest=digest,
        )
        store.save_answer(answer)
        if overridden:  # the newest answer is current again; a record from an earlier run would say otherwise
            store.set_current(config_id, question.question_id, answer.answer_id)
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


def missing_answers(contestant: ContestantConfig, set_id: str, questions, store, prepare_stored) -> bool:
    """Whether collecting would request anything: some question has no stored answer for the prompt it would
    be sent now (`prepare_stored`: augment.Augmenter.prepare_stored; None when its prompt cannot be known yet).
    Fewer answers stored than questions settles it without a pass; otherwise the questions stream by until the
    first one without an answer."""
    if store.count_answers(set_id) < len(questions):
        return True
    for question in questions:
        prepared = prepare_stored(contestant, question)
        if prepared is None or store.find_answer_id(set_id, question.question_id, prompt_hash(prepared.messages)) is None:
            return True
    return False
