"""Batch mode (docs/design.md §3.9): contestants and judges with `batch: true` are asked through their provider's
batch API (providers.batch_api) instead of one request at a time.

A run with batch work goes in rounds, each one finished before the next begins:
1. `resume`: every batch an earlier run left at the provider is polled until it ends, and its results stored.
2. `collect`: each batch contestant's missing answers (single-turn questions; a conversation is asked in the
   stream, turn by turn) are submitted, then polled and stored.
3. The stream (stream.CollectAndJudge) collects the other contestants, hands every stored answer on, and poses the
   games; a batch judge's games are gathered instead of asked.
4. `judge`: the gathered games are submitted, then polled and stored.

What keeps it safe to kill at any moment: a batch is stored, with what each of its custom ids stands for, as soon
as the provider returns its id, before the first poll; work in a batch still at the provider is never submitted
again; results are matched by custom id (an answer's id, or a game's), never by position. An item that failed,
expired or was cancelled becomes a recorded error for that item alone, which the next run submits again. A result
for a custom id the batch does not hold is recorded (errors, stage `batch`) and skipped.

With `wait` off (`run --no-wait`) nothing waits: each round polls once, stores what has ended, submits what is
missing and moves on; the run then stops before scoring and names the batches still at the provider.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from jinja2 import TemplateError

from .answer_sets import question_digest
from .collect import answer_id, prompt_hash
from .config import EndpointConfig
from .context import RunContext
from .errors import AugmentError
from .judge import GameRequest, RunJudge, judge_messages
from .lines import shown
from .pricing import completion_cost, price_for
from .providers.base import ProviderError, no_answer_error
from .providers.batch_api import MAX_BATCH_BYTES, BatchResult, BatchState, batch_client, max_requests
from .providers.retry import RetriesExhausted
from .reasoning import separate_reasoning
from .recorders import AnswerRecorder, VerdictRecorder
from .records import Answer, AnswerError, Game, Judgment
from .verdict import LABEL_IN_MATERIAL, LABELS, QuotedMaterial, read_verdict

ANSWERS, JUDGMENTS = "answers", "judgments"


class Batches:
    """One run's batch rounds (see the module docstring), for the contestants and judges of `scope` (a
    context.RunScope) that have `batch: true`."""

    def __init__(self, context: RunContext, wait: bool = True):
        self.scope, self.store, self.sets, self.augmenter = context.scope, context.store, context.sets, context.augmenter
        self.run_id, self.summary, self.progress, self.wait = context.run_id, context.summary, context.progress, wait
        self.answers = AnswerRecorder(context.store, context.run_id, context.summary, context.progress)
        self.verdicts = VerdictRecorder(context.store, context.run_id, context.summary, context.progress)
        self.clients: dict[str, Any] = {}  # endpoint name → its batch API client
        self.waiting: list[str] = []  # batches left at the provider by this run

    @property
    def in_use(self) -> bool:
        return (any(c.batch for c in self.scope.contestants) or any(j.config.batch for j in self.scope.judges)
                or bool(self.store.batch_jobs(pending_only=True)))

    async def close(self) -> None:
        clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            await client.close()

    def client(self, name: str, config: EndpointConfig):
        """The batch client of one endpoint. Keyed by the endpoint's settings object, not its name: a judge is often
        named after the model a contestant also is, and must never send through the contestant's settings."""
        if id(config) not in self.clients:
            self.clients[id(config)] = batch_client(config)
        return self.clients[id(config)]

    # --- 1. batches left by earlier runs ------------------------------------------------------------------

    async def resume(self) -> None:
        jobs = []
        for job in self.store.batch_jobs(pending_only=True):
            config = self._endpoint_of(job)
            if config is None:
                # Not waited for (it would stop every `--no-wait` run before scoring, for good): said, and left.
                note = (f"batch {job['batch_id']} ({job['kind']} of {job['name']}) belongs to an endpoint this config "
                        "no longer has; it is left at the provider and not collected")
                self.summary.batch_notes.append(note)
                self.progress.status(note)
                continue
            jobs.append(self._finish(job, config))
        await asyncio.gather(*jobs)

    def _endpoint_of(self, job: dict[str, Any]) -> EndpointConfig | None:
        """The configured endpoint a stored batch belongs to (by configuration, not name), if it still exists."""
        if job["kind"] == ANSWERS:
            return next((c for c in self.scope.contestants
                         if c.name == job["name"] and job["config_id"].split("@")[0] == c.base_config_id), None)
        return next((j.config for j in self.scope.judges if j.config_id == job["config_id"]), None)

    # --- 2. answers ---------------------------------------------------------------------------------------

    async def collect(self) -> None:
        """Submit every batch contestant's missing single-turn answers, then wait for them (unless not waiting)."""
        jobs = []
        for contestant in self.scope.contestants:
            if contestant.batch:
                requests = await self._answer_requests(contestant)
                jobs += await self._submit(ANSWERS, contestant.name, contestant, self.sets.set_id(contestant), requests)
        await asyncio.gather(*(self._finish(job, config) for job, config in jobs))

    async def _answer_requests(self, contestant) -> list[tuple[str, str, list, dict[str, Any]]]:
        """(custom id, question id, messages, item) for each question the contestant has no answer to, and that no
        batch still at the provider holds. The custom id is the answer's id: it names the answer set, the question
        and the prompt."""
        set_id = self.sets.set_id(contestant)
        pending = self.store.pending_custom_ids(ANSWERS, set_id)
        requests = []
        conversations = 0
        for question in self.scope.questions:
            if question.multi_turn:
                conversations += 1
                continue  # asked in the stream, turn by turn
            try:
                prepared = await self.augmenter.prepare(contestant, question)
            except AugmentError as exc:
                self._answer_failed(contestant.name, set_id, question.question_id, str(exc), 0)
                continue
            p_hash = prompt_hash(prepared.conversation)
            custom_id = answer_id(set_id, question.question_id, p_hash)
            if custom_id in pending or self.store.find_answer_id(set_id, question.question_id, p_hash) is not None:
                continue
            item = {"prompt_hash": p_hash, "question_digest": question_digest(question),
                    "context_ids": prepared.context_ids or None}
            requests.append((custom_id, question.question_id, prepared.messages, item))
        if conversations:
            self.progress.status(f"{contestant.name}: {conversations} question(s) of several turns are asked with "
                                 "ordinary requests, at the list price: a conversation needs its answers turn by turn")
        return requests

    # --- 4. judgments -------------------------------------------------------------------------------------

    async def judge(self, gathered: Sequence[tuple[RunJudge, list[GameRequest]]]) -> None:
        """Submit the games each batch judge was given in the stream (stream._JudgeLane.batched), then wait."""
        jobs = []
        for judge, works in gathered:
            pending = self.store.pending_custom_ids(JUDGMENTS, judge.config_id)
            overrides = (self.client(judge.name, judge.config).chat.constrain_to([f"[[{label}]]" for label in LABELS])
                         if judge.config.constrain_labels and judge.config.provider == "openai" else {})
            requests, taken = [], set()
            for work in works:
                game = work.game
                if game.game_id in pending or game.game_id in taken:
                    self.progress.advance("games", cached=True)
                    continue
                try:
                    messages, material = judge_messages(work.question, work.text_a, work.text_b, judge.config,
                                                        work.prompts, work.reference)
                except TemplateError as exc:  # a render limit on this game's text: this game's error
                    self._game_failed(game, str(exc), 0)
                    continue
                item = {"game": [game.game_id, game.question_id, game.contestant, game.baseline, game.game,
                                 game.answer_a_id, game.answer_b_id],
                        "material": {label: [list(o) for o in found] for label, found in material.labels.items()}}
                requests.append((game.game_id, game.question_id, messages, item))
                taken.add(game.game_id)  # a custom id appears once in a batch
            jobs += await self._submit(JUDGMENTS, judge.name, judge.config, judge.config_id, requests, overrides)
        await asyncio.gather(*(self._finish(job, config) for job, config in jobs))

    # --- submitting and finishing -------------------------------------------------------------------------

    async def _submit(self, kind: str, name: str, config: EndpointConfig, config_id: str,
                      requests: list[tuple[str, str, list, dict[str, Any]]],
                      overrides: dict[str, Any] | None = None) -> list[tuple[dict[str, Any], EndpointConfig]]:
        """Send `requests` in batches within the provider's limits; store each batch the moment it exists."""
        client = self.client(name, config)
        jobs = []
        for chunk in _chunks(client, requests, overrides or {}, max_requests(config)):
            try:
                batch_id = await client.submit([(custom_id, body) for custom_id, _, body, _ in chunk])
            except RetriesExhausted as exc:  # nothing was accepted: each item failed, and the next run tries again
                for custom_id, question_id, _, item in chunk:
                    self._item_failed(kind, name, config_id, custom_id, question_id, item,
                                      f"batch not accepted: {exc.reason}", exc.attempts)
                continue
            self.store.save_batch_job(batch_id, kind, config.provider, client.endpoint, name, config_id,
                                      [(custom_id, question_id, item) for custom_id, question_id, _, item in chunk],
                                      self.run_id)
            self.progress.status(f"batch {batch_id}: {len(chunk)} {kind} requests of {name} submitted to "
                                 f"{client.endpoint}")
            jobs.append((self.store.batch_job(batch_id), config))
        return jobs

    async def _finish(self, job: dict[str, Any], config: EndpointConfig) -> None:
        """Poll one batch until it ends (backing off from batch_poll_s to batch_poll_max_s), then store its results.
        Not waiting: one poll. A batch that cannot be polled stays stored for the next run."""
        client, batch_id = self.client(job["name"], config), job["batch_id"]
        delay = config.batch_poll_s
        while True:
            try:
                state = await client.poll(batch_id)
            except RetriesExhausted as exc:
                self.progress.status(f"batch {batch_id}: cannot be polled now ({exc.reason}); the next run tries again")
                self.waiting.append(batch_id)
                return
            self.store.update_batch_job(batch_id, state.status, state.done)
            self.progress.status(f"batch {batch_id} ({job['kind']} of {job['name']}): {state.status}, "
                                 f"{state.done}/{state.total or job['total']} done")
            if state.ended:
                break
            if not self.wait:
                self.waiting.append(batch_id)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, config.batch_poll_max_s)
        try:
            await self._store_results(job, config, client, state)
        except (RetriesExhausted, ProviderError) as exc:
            reason = getattr(exc, "reason", str(exc))
            self.progress.status(f"batch {batch_id}: results cannot be read now ({reason}); the next run tries again")
            self.waiting.append(batch_id)

    async def _store_results(self, job: dict[str, Any], config: EndpointConfig, client, state: BatchState) -> None:
        items = self.store.batch_items(job["batch_id"])
        seen: set[str] = set()
        price = price_for(config, batch=True)
        async for result in client.results(state):
            if result.custom_id is None:  # a line that cannot be read, nor whose item: the file's error
                reason = f"batch {job['batch_id']}: {result.error}; skipped"
                self.store.save_batch_error(job["name"], job["config_id"], reason, self.run_id)
                self.summary.batch_notes.append(reason)
                continue
            if result.custom_id not in items or result.custom_id in seen:
                what = "a second result" if result.custom_id in seen else "a result"
                reason = (f"batch {job['batch_id']}: {what} for custom id {shown(result.custom_id)}, which the batch "
                          "holds no request for; skipped")
                self.store.save_batch_error(job["name"], job["config_id"], reason, self.run_id)
                self.summary.batch_notes.append(reason)
                continue
            seen.add(result.custom_id)
            question_id, item = items[result.custom_id]
            self._store_result(job, result, question_id, item, price)
        for custom_id, (question_id, item) in items.items():
            if custom_id not in seen:
                self._item_failed(job["kind"], job["name"], job["config_id"], custom_id, question_id, item,
                                  f"batch {job['batch_id']} {state.status} without a result for this request", 1)
        self.store.update_batch_job(job["batch_id"], state.status, state.done, collected_run_id=self.run_id)

    def _store_result(self, job: dict[str, Any], result: BatchResult, question_id: str, item: dict[str, Any],
                      price) -> None:
        kind, name, config_id = job["kind"], job["name"], job["config_id"]
        completion = separate_reasoning(result.completion) if result.completion is not None else None
        if completion is not None and kind == ANSWERS and not completion.text.strip():
            completion, reason = None, no_answer_error(completion).reason
        else:
            reason = f"batch {job['batch_id']}: {result.error}"
        if completion is None:
            self._item_failed(kind, name, config_id, result.custom_id, question_id, item, reason, 1)
            return
        cost = completion_cost(completion, price)
        if kind == ANSWERS:
            self._store_answer(name, config_id, question_id, item, completion, cost)
        else:
            self._store_judgment(config_id, item, completion, cost, result.completion)

    def _store_answer(self, name: str, set_id: str, question_id: str, item: dict[str, Any], completion, cost) -> None:
        answer = Answer(
            answer_id=answer_id(set_id, question_id, item["prompt_hash"]), contestant=name, config_id=set_id,
            question_id=question_id, prompt_hash=item["prompt_hash"], text=completion.text,
            input_tokens=completion.input_tokens, output_tokens=completion.output_tokens,
            tokens_estimated=completion.tokens_estimated, finish_reason=completion.finish_reason,
            latency_s=None,  # a batch's turnaround says nothing about the model's speed
            cost=cost, created_at=time.time(), run_id=self.run_id, context_ids=item.get("context_ids"),
            question_digest=item.get("question_digest"), reasoning=completion.reasoning,
            reasoning_tokens=completion.reasoning_tokens)
        # The newest answer is current again where the set has overrides (as collect_into).
        self.answers.saved(answer, current=self.store.has_current_overrides(set_id))
        # Counted as a new answer when the stream hands it on (collect_into's `ask`).

    def _store_judgment(self, judge_config_id: str, item: dict[str, Any], completion, cost, received) -> None:
        game = Game(*item["game"])
        material = QuotedMaterial({label: [tuple(o) for o in found] for label, found in item["material"].items()})
        # One reply, no re-ask: a reply without a label is an unparsed verdict (docs/design.md §3.9). Read as
        # received, thinking included (read_verdict skips a leading block itself, as judge_game does).
        reading = read_verdict(received.text, material, received.finish_reason)
        flags = ({LABEL_IN_MATERIAL} if material else set()) | reading.flags
        judgment = Judgment(
            game_id=game.game_id, judge_config_id=judge_config_id, question_id=game.question_id,
            contestant=game.contestant, baseline=game.baseline, game=game.game, answer_a_id=game.answer_a_id,
            answer_b_id=game.answer_b_id, verdict=reading.verdict, judge_text=completion.text, attempts=1,
            input_tokens=completion.input_tokens, output_tokens=completion.output_tokens, latency_s=None,
            run_id=self.run_id, cost=cost, flags=",".join(sorted(flags)) or None)
        self.verdicts.judged(judgment)

    # --- failures -----------------------------------------------------------------------------------------

    def _item_failed(self, kind: str, name: str, config_id: str, custom_id: str, question_id: str,
                     item: dict[str, Any], reason: str, attempts: int) -> None:
        if kind == ANSWERS:
            self._answer_failed(name, config_id, question_id, reason, attempts)
        else:
            self._game_failed(Game(*item["game"]), reason, attempts)

    def _answer_failed(self, name: str, set_id: str, question_id: str, reason: str, attempts: int) -> None:
        # An older answer must not stand in (as collect_into). Counted here: the stream never hands this error on.
        self.answers.failed(AnswerError(name, set_id, question_id, reason, attempts),
                            clear_current=bool(self.store.question_answers(set_id, question_id)), count=True)

    def _game_failed(self, game: Game, reason: str, attempts: int) -> None:
        self.verdicts.failed(game, reason, attempts)


def _chunks(client, requests: list[tuple[str, str, list, dict[str, Any]]], overrides: dict[str, Any],
            limit: int) -> list[list[tuple[str, str, dict[str, Any], dict[str, Any]]]]:
    """The requests as (custom id, question id, request body, item), grouped into batches of at most `limit`
    requests and MAX_BATCH_BYTES of request bodies."""
    chunks: list[list] = []
    size = 0
    for custom_id, question_id, messages, item in requests:
        body = client.body(messages, overrides)
        length = len(json.dumps(body)) + 200  # the line's envelope: custom id, method, url
        if not chunks or len(chunks[-1]) >= limit or size + length > MAX_BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append((custom_id, question_id, body, item))
        size += length
    return chunks

