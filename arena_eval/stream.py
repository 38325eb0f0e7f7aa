"""Collecting and judging as one stream, with no barrier between them (docs/design.md §1.2, §3.1.1).

Contestants are collected side by side; a contestant's two games for a question go to the judge's queue as soon
as its answer and the baseline's exist (`dispatch.GameDispatcher` decides when; so do the games between
contestants that `pairing` calls for). The queue is bounded, so a slow
judge slows collection down instead of letting memory grow. Local contestants that share a device take turns
(one device lock each), so that their energy windows never overlap. Without collection (the `judge` stage
alone) the stored current answers stream in instead (`answer_sets.AnswerSets`).

Dispatch runs inside the producer that delivers an item, not in a task of its own: every queue between an answer
and its games costs a full turn of a busy event loop before the judge sees them, and the judge is the bottleneck
(bench/bench_orchestration.py: with two queue hops in between, the judge's first request left ~0.6 s after the
first answers were in).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import defaultdict
from collections.abc import Sequence

from jinja2 import TemplateError

from .collect import collect_into, missing_answers
from .config import ContestantConfig
from .context import RunContext, RunScope, judge_energy_lines
from .dispatch import GameDispatcher, Pairing
from .efficiency import peak_resident_gb
from .energy.tracking import EnergyTracker, WindowCounts
from .errors import ArenaError, StoreError
from .judge import GameRequest, RunJudge, games_for, judge_game
from .pairing import opponents_of
from .providers import make_provider
from .providers.replicas import replica_counts
from .providers.retry import RetriesExhausted
from .questions import Question
from .recorders import AnswerRecorder, VerdictRecorder
from .records import Answer, AnswerError, answer_turns
from .redaction import register_secret
from .spending import SpendingCap, SpendingCapReached


def judge_shares_a_meter(scope: RunScope) -> bool:
    """Whether a metered judge reads a device that a metered contestant's windows read: the same GPU under NVML,
    the whole machine under RAPL or CodeCarbon (which cannot tell processes apart), a device of the same remote
    daemon, the same server's figure. Its energy window would then overlap theirs, and the run judges after
    collecting instead (docs/design.md §3.5.2)."""
    judges = [j.config for j in scope.judges if EnergyTracker.metered(j.config)]
    contestants = [c for c in scope.contestants if EnergyTracker.metered(c)]
    if not judges or not contestants:
        return False
    keys = EnergyTracker.endpoint_keys(scope.config.energy, judges + contestants)
    judged = {k for ks in keys[:len(judges)] for k in ks}
    return bool(judged & {k for ks in keys[len(judges):] for k in ks})


def _multi_turn(question: Question) -> bool:
    return question.multi_turn


class _JudgeLane:
    """One judge's share of the stream: its provider, its bounded queue of games, its energy counts."""

    def __init__(self, judge: RunJudge, base_dir: str, cap: SpendingCap):
        self.judge = judge
        self.provider = make_provider(judge.config, base_dir)
        self.requests = cap.guard(self.provider, judge.config)  # what the games are sent through
        self.games: asyncio.Queue = asyncio.Queue(maxsize=max(64, 2 * judge.config.concurrency))
        self.counts = WindowCounts()
        # A batch judge (judge.batch) asks nothing here: its games wait in this list for batch.Batches.judge.
        self.batched: list[GameRequest] = []


class CollectAndJudge:
    """One run's stream. `collect`: request what is missing (else stream the stored answers); `judge`: pose the
    games, every one to every judge (else only collect).

    `run()` streams the whole scope once. Adaptive judging streams it batch by batch instead: `open()` (the judges'
    providers start once), `stream(questions, contestants)` per batch, `close()`."""

    def __init__(self, context: RunContext, *, collect: bool, judge: bool, count_answers: bool = True,
                 passes: int = 1):
        scope, store, run_id = context.scope, context.store, context.run_id
        self.scope, self.store, self.sets, self.augmenter = scope, store, context.sets, context.augmenter
        self.cap = context.cap  # `run --max-cost`: no request once it is reached (the run's one cap, every pass)
        self.run_id, self.summary, self.progress = run_id, context.summary, context.progress
        self.collect, self.judge = collect, judge
        # count_answers False when a pass before this one counted the same answers already
        self.answers = AnswerRecorder(store, run_id, context.summary, context.progress, count_answers=count_answers)
        self.verdicts = VerdictRecorder(store, run_id, context.summary, context.progress)
        config = scope.config
        self.contestant_providers = ({c.name: make_provider(c, config.base_dir) for c in scope.contestants}
                                     if collect else {})
        self.lanes = [_JudgeLane(j, config.base_dir, self.cap) for j in scope.judges] if judge else []
        self.device_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.references = [j.reference_contestant for j in scope.judges if judge and j.reference_contestant]
        self.tracker = EnergyTracker(config.energy, store, run_id,
                                     [*scope.contestants, *(j.config for j in scope.judges)])
        # Providers started once serve every pass, closed by close(): the judges', and (with several passes) each
        # contestant's whose device no other local contestant needs. A local contestant that shares its device
        # is started and stopped per pass, so that the contestants on the device take turns.
        self.providers_open = contextlib.AsyncExitStack()
        self.kept_open: set[str] = set()
        if collect and passes > 1:
            devices = [self.tracker_key(c) for c in scope.contestants if c.is_local]
            self.kept_open = {c.name for c in scope.contestants
                              if not c.is_local or devices.count(self.tracker_key(c)) == 1}
        self.started: set[str] = set()
        self.energy_lines = judge_energy_lines(scope)
        # One pass's state (stream()): its questions and contestants, the dispatcher, who has work to do.
        self.questions: Sequence[Question] = scope.questions
        self.opponents = opponents_of(scope)  # games between contestants (pairing), or None
        self.dispatcher = GameDispatcher([c.name for c in scope.contestants], scope.baseline.name, self.references,
                                         opponents=self.opponents)
        self.open_producers = 0
        self.needs_work: set[str] = set()

    def batched_games(self) -> list[tuple[RunJudge, list[GameRequest]]]:
        """Each batch judge's games that this stream posed, for batch.Batches.judge to submit."""
        return [(lane.judge, lane.batched) for lane in self.lanes if lane.judge.config.batch]

    def check_credentials(self) -> None:
        """Errors before work: every credential is checked before the first request goes out, and each key is
        a known secret from then on (redacted wherever it might show)."""
        guide = self.augmenter.guide.provider if self.collect and self.augmenter.guide else None
        for provider in [*self.contestant_providers.values(), *(lane.provider for lane in self.lanes), guide]:
            if provider is not None:
                key = provider.api_key()
                if key != "not-needed":  # the placeholder local servers get
                    register_secret(key)

    async def run(self) -> None:
        await self.open()
        try:
            await self.stream(self.scope.questions, self.scope.contestants)
        finally:
            await self.close()

    async def open(self) -> None:
        """Check every credential (a remote energy daemon's token too), then start the judges' providers (they
        serve every pass). A judge that fails to start closes those started before it."""
        self.check_credentials()
        metered = [c for c in self.scope.contestants if self.collect] + [lane.judge.config for lane in self.lanes]
        await asyncio.to_thread(self.tracker.check_remote, metered)
        for endpoint in metered:  # a meter named in the config that cannot work fails here, before any request
            if endpoint.is_local and endpoint.energy is None:
                await asyncio.to_thread(self.tracker.meter, endpoint.device)
        try:
            for lane in self.lanes:
                await lane.provider.start()
                self.providers_open.push_async_callback(lane.provider.close)
        except BaseException:
            await self.providers_open.aclose()
            raise

    async def close(self) -> None:
        await self.providers_open.aclose()
        # Each endpoint sends its requests through one provider in a run (collecting and judging each happen in
        # one stream), so its replicas' counts are complete here.
        used = [*(("contestant", name, p) for name, p in self.contestant_providers.items()),
                *(("judge", lane.judge.name, lane.provider) for lane in self.lanes)]
        self.summary.replicas += [replicas for role, name, provider in used
                                  if (replicas := replica_counts(role, name, provider)) is not None]

    def tracker_key(self, contestant: ContestantConfig) -> str:
        return self.tracker.lock_key(contestant.device)

    async def stream(self, questions: Sequence[Question], contestants: Sequence[ContestantConfig]) -> None:
        """One pass: `contestants` (the baseline first) answer `questions` (or their stored answers stream in),
        and their games go to the judges as soon as they can be posed. A judge's reference contestant takes part
        even when it is not among them: its answers are then references only, never games."""
        names = [c.name for c in contestants]
        helpers = [c for c in self.scope.contestants if c.name in self.references and c.name not in names]
        contestants = [*contestants, *helpers]
        self.questions = questions
        baseline = self.scope.baseline_for if self.scope.by_category else contestants[0].name
        self.dispatcher = GameDispatcher([c.name for c in contestants], baseline, self.references, judged=names,
                                         opponents=self.opponents)
        self.open_producers = len(contestants)
        # No per-question state for the whole set here: questions stream from the set (a file set re-reads its
        # file), the judge looks a prompt up in the store by id, and dispatch keeps only unfinished questions.
        self.progress.add("answers", len(questions) * len(contestants))
        # Energy: idle power first, then a window per metered contestant that has answers to collect.
        self.needs_work = {c.name for c in contestants if self.collect and missing_answers(
            c, self.sets.set_id(c), questions, self.store, self.augmenter.prepare_stored)}
        for contestant in contestants:
            if EnergyTracker.metered(contestant) and contestant.name in self.needs_work:
                await self.tracker.measure_idle(contestant)
        async with contextlib.AsyncExitStack() as stack:
            for lane in self.lanes:
                judge_cfg = lane.judge.config
                if EnergyTracker.metered(judge_cfg):  # a judge on this machine or metered elsewhere: its own window
                    lane.counts = await stack.enter_async_context(self.tracker.window(
                        "judge", self.energy_lines[lane.judge.config_id], lane.judge.config_id, judge_cfg))
            workers = [asyncio.create_task(self.judge_worker(lane))
                       for lane in self.lanes for _ in range(lane.judge.config.concurrency)]
            producers = [asyncio.create_task(self.produce(c)) for c in contestants]
            try:
                await asyncio.gather(*producers, *workers)
            finally:
                for task in [*producers, *workers]:
                    task.cancel()
                await asyncio.gather(*producers, *workers, return_exceptions=True)

    # --- answers in --------------------------------------------------------------------------------------------

    async def produce(self, contestant: ContestantConfig) -> None:
        try:
            if self.collect:
                await self.collect_for(contestant)
            else:
                for question in self.questions:
                    answer_id = self.sets.current_id(contestant, question)
                    answer = self.store.get_answer(answer_id) if answer_id is not None else None
                    if answer is not None:
                        answer.cached, answer.contestant = True, contestant.name
                        await self.deliver(answer)
        except StoreError:
            raise  # the database failed: nothing more can be stored, the whole run stops
        except ArenaError as exc:  # e.g. a model file that cannot be served: the others go on
            for question in self.questions:
                error = AnswerError(contestant.name, self.sets.set_id(contestant), question.question_id, str(exc), 0)
                await self.deliver(self.answers.failed(error, clear_current=False))
        # End of this contestant's stream. Not in a `finally`: when the run is stopping (Ctrl-C, a failure
        # elsewhere) the judge's workers are gone, and waiting for room in their full queue would hang it.
        await self.end(contestant)

    async def collect_for(self, contestant: ContestantConfig) -> None:
        provider = self.contestant_providers[contestant.name]
        set_id = self.sets.set_id(contestant)
        metered = EnergyTracker.metered(contestant)
        locks = [self.device_locks[k] for k in self.tracker.lock_keys(contestant)] if metered else []
        for taken, lock in enumerate(locks):  # in sorted key order: two contestants never wait on each other
            try:
                await lock.acquire()
            except BaseException:
                for held in locks[:taken]:
                    held.release()
                raise
        kept = contestant.name in self.kept_open
        try:
            if not kept or contestant.name not in self.started:
                await provider.start()  # before the window: loading a model is not answering
                if kept:
                    self.started.add(contestant.name)
                    self.providers_open.push_async_callback(provider.close)
            prepare = functools.partial(self.augmenter.prepare, contestant)
            windowed = metered and contestant.name in self.needs_work
            async with (self.tracker.window("contestant", contestant.name, set_id, contestant)
                        if windowed else contextlib.nullcontext(WindowCounts())) as counts:

                async def count_and_deliver(item: Answer | AnswerError) -> None:
                    if isinstance(item, Answer) and not item.cached:
                        counts.add(item.output_tokens)
                    await self.deliver(item)

                # A batch contestant's single-turn answers come from its batches (batch.py): only a conversation,
                # which needs its answers turn by turn, is asked here.
                await collect_into(contestant, self.cap.guard(provider, contestant), self.questions, self.store,
                                   prepare, count_and_deliver, self.run_id, set_id,
                                   ask=_multi_turn if contestant.batch else None)
                if windowed and contestant.is_local and counts.requests:
                    self.record_memory(contestant, provider, set_id)
        finally:
            if not kept:
                await provider.close()
            for lock in locks:
                lock.release()

    def record_memory(self, contestant: ContestantConfig, provider, set_id: str) -> None:
        """The memory a local contestant's collection used: the accelerator's (NVML) where the meter reads it, else
        the peak resident memory of the process serving the model, saying which (docs/design.md §3.5.7)."""
        reading = self.tracker.memory_gb(contestant.device)
        if reading is None and hasattr(provider, "server_pid"):
            served = provider.server_pid()
            peak = peak_resident_gb(served[0]) if served else None
            reading = (peak, served[1]) if peak is not None else None
        if reading is not None:
            self.store.save_resources(self.run_id, contestant.name, set_id, *reading)

    async def deliver(self, item: Answer | AnswerError) -> None:
        self.answers.delivered(item)
        if self.judge:
            for pairing in self.dispatcher.deliver(item):
                await self.enqueue(pairing)

    async def end(self, contestant: ContestantConfig) -> None:
        for pairing in self.dispatcher.finish(contestant.name):
            await self.enqueue(pairing)
        self.open_producers -= 1
        if self.open_producers == 0:
            for lane in self.lanes:
                for _ in range(lane.judge.config.concurrency):
                    await lane.games.put(None)

    # --- games out ---------------------------------------------------------------------------------------------

    async def enqueue(self, pairing: Pairing) -> None:
        answer, base = pairing.answer, pairing.base
        prompt = None
        conversations = self.scope.conversations
        for lane in self.lanes:
            reference, reference_id = self.reference_for(lane.judge, pairing)
            games = games_for(lane.judge.config_id, answer.question_id, answer.contestant, base.contestant,
                              answer.answer_id, base.answer_id, reference_id,
                              lane.judge.game_variant(answer.question_id, self.scope))
            prompts = (lane.judge.prompts_for(self.scope.category_of(answer.question_id)) if lane.judge.by_category
                       else lane.judge.prompts)
            self.progress.add("games", len(games))
            for game in games:
                if self.store.has_judgment(game.game_id):
                    self.verdicts.cached()
                    continue
                if prompt is None:  # saved by the run before collection starts
                    prompt = self.store.question_prompt(game.question_id)
                    if game.question_id in conversations:
                        prompt = list(self.store.question(game.question_id).turns)
                a, b = (base, answer) if game.game == 1 else (answer, base)
                if isinstance(prompt, list):  # a conversation: each assistant's answers turn by turn
                    await lane.games.put(GameRequest(game, prompt, answer_turns(a), answer_turns(b), reference, prompts))
                else:
                    await lane.games.put(GameRequest(game, prompt, a.text, b.text, reference, prompts))

    def reference_for(self, judge: RunJudge, pairing: Pairing) -> tuple[str | None, str | None]:
        """(reference text, the answer id it came from) for `judge` on this pairing's question: the question's own
        reference, or the reference contestant's answer; (None, None) where there is none."""
        if judge.config.reference == "question":
            return self.store.question_reference(pairing.answer.question_id), None
        name = judge.reference_contestant
        if name is None:
            return None, None
        answer = pairing.references.get(name)
        if answer is None:
            return None, None
        if answer.turns:  # a conversation: the reference answers every turn
            text = "\n\n".join(f"Turn {i}: {turn}" for i, turn in enumerate(answer_turns(answer), start=1))
            return text, answer.answer_id
        return answer.text, answer.answer_id

    async def judge_worker(self, lane: _JudgeLane) -> None:
        judge = lane.judge
        while (work := await lane.games.get()) is not None:
            if judge.config.batch:
                lane.batched.append(work)
                continue
            game = work.game
            try:
                judgment = await judge_game(game, work.question, work.text_a, work.text_b, judge.config,
                                            judge.config_id, lane.requests, work.prompts, self.run_id, work.reference)
            except SpendingCapReached:
                # The run's spending cap: this game is not sent (nor recorded as an error: the next run asks it).
                # The worker goes on taking games off the queue, so that the producers are never blocked.
                continue
            except (RetriesExhausted, TemplateError) as exc:
                # A template that fails on this game's text (a render limit) is this game's error, as a judge
                # endpoint that keeps failing is: recorded with its reason, the other games go on.
                reason, attempts = (exc.reason, exc.attempts) if isinstance(exc, RetriesExhausted) else (str(exc), 0)
                if len(self.lanes) > 1:
                    reason = f"judge {judge.name}: {reason}"
                self.verdicts.failed(game, reason, attempts)
                continue
            self.verdicts.judged(judgment)
            lane.counts.add(judgment.output_tokens)
