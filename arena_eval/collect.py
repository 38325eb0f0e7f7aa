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
from typing import TYPE_CHECKING, Any

from .answer_sets import current_among, question_digest
from .config import ContestantConfig
from .errors import AugmentError
from .pricing import completion_cost, price_for
from .providers.base import Provider, no_answer_error
from .providers.retry import RateLimiter, RetriesExhausted, call_with_retries
from .questions import Question
from .reasoning import separate_reasoning
from .recorders import AnswerRecorder
from .records import Answer, AnswerError, Completion, Message
from .spending import SpendingCapReached

if TYPE_CHECKING:
    from .augment import Prepared


def prompt_hash(messages: list[Message]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


def answer_id(config_id: str, question_id: str, p_hash: str) -> str:
    return hashlib.sha256(f"{config_id}\x1f{question_id}\x1f{p_hash}".encode()).hexdigest()[:20]


async def collect_answers(
    contestant: ContestantConfig,
    provider: Provider,
    questions: Iterable[Question],
    store,
    prepare: Callable[[Question], Awaitable[Prepared]],
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
    prepare: Callable[[Question], Awaitable[Prepared]],
    deliver: Callable[[Answer | AnswerError], Awaitable[None]],
    run_id: str | None = None,
    set_id: str | None = None,
    ask: Callable[[Question], bool] | None = None,
) -> None:
    """collect_answers without the generator: each worker hands its result to `deliver` itself, so a consumer
    sees an answer in the same turn of the event loop as it arrived (no queue in between), and `deliver`
    blocking holds that worker back (backpressure). Returns when every question is answered or errored.

    `ask`: which questions may be requested (default all). Another question's stored answer is delivered, and
    nothing when it has none: a batch contestant's answers come from its batches (batch.py), which record their
    own errors; an answer stored earlier in this run (by its batch round) is delivered as new, not as cached.

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
    recorder = AnswerRecorder(store, run_id)  # counting is the consumer's, as `deliver` hands each item on

    def failed(question: Question, reason: str, attempts: int, stored: list[tuple]) -> AnswerError:
        # An older answer, to an earlier prompt, must not stand in for this one.
        return recorder.failed(AnswerError(contestant.name, config_id, question.question_id, reason, attempts),
                               clear_current=bool(stored))

    async def one(question: Question) -> Answer | AnswerError | None:
        stored = store.question_answers(config_id, question.question_id) if look_up else []
        try:
            prepared = await prepare(question)
        except AugmentError as exc:
            return failed(question, str(exc), 0, stored) if ask is None or ask(question) else None
        messages = prepared.messages
        p_hash = prompt_hash(prepared.conversation)
        digest = question_digest(question)
        stored_id = next((row[0] for row in stored if row[3] == p_hash), None)
        if stored_id is not None:
            cached = store.get_answer(stored_id)
            if cached is not None:
                if current_among(stored, digest) != stored_id or overridden:
                    recorder.reused(config_id, question.question_id, stored_id)
                cached.cached = ask is None or ask(question) or cached.run_id != run_id
                cached.contestant = contestant.name
                return cached
        if ask is not None and not ask(question):
            return None

        async def request(sent: list[Message]) -> Completion:
            await limiter.wait()
            # The answer without the thinking: a reply that was all thinking is no answer (retried or failed as
            # providers.base.no_answer_error says), never stored, judged or carried into the next turn.
            completion = separate_reasoning(await provider.complete(sent))
            if not completion.text.strip():
                raise no_answer_error(completion)
            return completion

        if question.multi_turn:
            try:
                turns = await converse(question, prepared, p_hash, request)
            except RetriesExhausted as exc:
                return failed(question, exc.reason, exc.attempts, stored)
            answer = conversation_answer(turns, question, p_hash, digest)
        else:
            try:
                completion, _ = await call_with_retries(contestant, lambda: request(messages))
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
                cost=completion_cost(completion, price),
                created_at=time.time(),
                run_id=run_id,
                context_ids=prepared.context_ids or None,
                question_digest=digest,
                reasoning=completion.reasoning,
                reasoning_tokens=completion.reasoning_tokens,
            )
        # The newest answer is current again where the set has overrides; a record from an earlier run would say
        # otherwise.
        recorder.saved(answer, current=overridden)
        if question.multi_turn:
            store.drop_answer_turns(config_id, question.question_id, p_hash)
        return answer

    async def converse(question: Question, prepared: Prepared, p_hash: str, request) -> list[dict[str, Any]]:
        """Ask the conversation's turns in order, each request carrying the contestant's own earlier answers. A
        finished turn is stored at once, and turns stored by an earlier, unfinished run are not asked again."""
        turns = store.answer_turns(config_id, question.question_id, p_hash)
        user_turns = [(prepared.messages[-1], prepared.context_ids), *prepared.follow_ups]
        sent = list(prepared.messages[:-1])
        for number, (user, context_ids) in enumerate(user_turns):
            sent.append(user)
            if number < len(turns):
                sent.append({"role": "assistant", "content": turns[number]["text"]})
                continue
            conversation = list(sent)
            completion, _ = await call_with_retries(contestant, lambda: request(conversation))
            turn = {"text": completion.text, "input_tokens": completion.input_tokens,
                    "output_tokens": completion.output_tokens, "tokens_estimated": completion.tokens_estimated,
                    "finish_reason": completion.finish_reason, "latency_s": completion.latency_s,
                    "ttft_s": completion.ttft_s, "cost": completion_cost(completion, price)}
            if context_ids:
                turn["context_ids"] = context_ids
            if completion.reasoning is not None:
                turn["reasoning"], turn["reasoning_tokens"] = completion.reasoning, completion.reasoning_tokens
            store.save_answer_turn(config_id, question.question_id, p_hash, number, turn, run_id)
            turns.append(turn)
            sent.append({"role": "assistant", "content": completion.text})
        return turns

    def conversation_answer(turns: list[dict[str, Any]], question: Question, p_hash: str, digest: str) -> Answer:
        """One answer holding every turn: the last turn's text, the sums of tokens, cost and latency."""
        reasoning = [t["reasoning"] for t in turns if t.get("reasoning")]
        return Answer(
            answer_id=answer_id(config_id, question.question_id, p_hash),
            contestant=contestant.name,
            config_id=config_id,
            question_id=question.question_id,
            prompt_hash=p_hash,
            text=turns[-1]["text"],
            input_tokens=_total(turns, "input_tokens"),
            output_tokens=_total(turns, "output_tokens"),
            tokens_estimated=any(t.get("tokens_estimated") for t in turns),
            finish_reason=turns[-1].get("finish_reason"),
            latency_s=_total(turns, "latency_s"),
            ttft_s=turns[0].get("ttft_s"),
            cost=_total(turns, "cost"),
            created_at=time.time(),
            run_id=run_id,
            question_digest=digest,
            turns=turns,
            reasoning="\n\n".join(reasoning) if reasoning else None,
            reasoning_tokens=_total([t for t in turns if t.get("reasoning")], "reasoning_tokens") if reasoning else None,
        )

    async def worker() -> None:
        for question in pending:  # one shared iterator: each question is taken by exactly one worker
            try:
                item = await one(question)
            except SpendingCapReached:
                # The run's spending cap (spending.py): this worker takes no new question; the others finish and
                # store what they have in flight, then stop the same way. The question is not an error: the next
                # run asks it (a conversation keeps the turns it stored).
                return
            if item is not None:
                await deliver(item)

    workers = [asyncio.create_task(worker()) for _ in range(contestant.concurrency)]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


def _total(turns: list[dict[str, Any]], key: str) -> float | None:
    """The sum of one figure over a conversation's turns; None when any turn lacks it (an unknown part)."""
    values = [t.get(key) for t in turns]
    return None if any(v is None for v in values) else sum(values)


def missing_answers(contestant: ContestantConfig, set_id: str, questions, store, prepare_stored) -> bool:
    """Whether collecting would request anything: some question has no stored answer for the prompt it would
    be sent now (`prepare_stored`: augment.Augmenter.prepare_stored; None when its prompt cannot be known yet).
    Fewer answers stored than questions settles it without a pass; otherwise the questions stream by until the
    first one without an answer."""
    if store.count_answers(set_id) < len(questions):
        return True
    for question in questions:
        prepared = prepare_stored(contestant, question)
        if prepared is None or store.find_answer_id(set_id, question.question_id, prompt_hash(prepared.conversation)) is None:
            return True
    return False
