"""The streaming pipeline: collect answers → judge games → rate, with no barrier between the stages.

Contestants are collected side by side; a contestant's two games for a question are queued as soon as its
answer and the baseline's answer to that question exist. Queues are bounded, so a slow judge slows
collection down instead of letting memory grow. Local contestants that share a device take turns (one
device lock each), so that their energy windows never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import secrets
import signal
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import Any, TypeVar
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from jinja2 import TemplateError

from .augment import Augmenter
from .collect import RetriesExhausted, collect_into, prompt_hash
from .config import ContestantConfig, RunConfig
from .energy import energy_summary, estimate_api_batch, join_leaderboard, load_imports, load_windows, summarise_runs
from .energy.tracking import EnergyTracker, WindowCounts
from .errors import ArenaError, AugmentError, RunInterrupted, StoreError
from .judge import JudgePrompts, battles_from_judgments, games_for, judge_game, position_diagnostics
from .progress import NullProgress, Progress
from .providers import make_provider
from .questions import Question, QuestionSet, load_questions
from .records import Answer, AnswerError, Game, GameError, RunSummary
from .redaction import register_secret
from .store import RunLock, Store

T = TypeVar("T")
STAGES = ("answers", "judge", "score")  # what `run` does; `guidance` is a stage of its own


@dataclass
class Result:
    """What a run produced. `leaderboard`, `battles`, `energy` and `regressions` are DataFrames (None when the
    run did not score); `answers` is read from the store on first use."""

    run_id: str
    summary: RunSummary
    leaderboard: pd.DataFrame | None
    output_dir: Path
    files: list[Path] = field(default_factory=list)
    battles: pd.DataFrame | None = None
    energy: pd.DataFrame | None = None
    regressions: pd.DataFrame | None = None
    diagnostics: pd.DataFrame | None = None  # the judge's position consistency and bias, per model and overall
    _arena: "Arena | None" = field(default=None, repr=False)
    _answers: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def exit_code(self) -> int:
        """0 complete, 2 finished with missing items, 3 a contestant regressed (takes precedence)."""
        if self.regressions is not None and len(self.regressions):
            return 3
        return 0 if self.summary.complete else 2

    @property
    def answers(self) -> pd.DataFrame:
        """The current answer of every contestant to every question it answered (one row each)."""
        if self._answers is None:
            if self._arena is None:
                raise ArenaError("this result is not bound to an arena; open the store to read answers")
            self._answers = self._arena.answers_frame()
        return self._answers


RunResult = Result  # the earlier name


def _config_from_parts(questions: QuestionSet | None, parts: dict[str, Any]) -> RunConfig:
    from .config import config_from_dict

    if questions is None:
        raise ArenaError("Arena(...) without a config needs questions=QuestionSet(...)")
    data = dict(parts)
    data.setdefault("name", "custom")
    data["questions"] = f"<{questions.name}>"  # in memory; only recorded in the run's config snapshot
    for key in ("judge", "rating", "guidance", "rag", "energy", "regression"):
        if hasattr(data.get(key), "model_dump"):
            data[key] = data[key].model_dump(exclude_unset=True)
    data["contestants"] = [c.model_dump(exclude_unset=True) if hasattr(c, "model_dump") else c
                           for c in data.get("contestants", [])]
    return config_from_dict(data, source="Arena(...)", check_questions=False)


def run_event_loop(coroutine: Awaitable[T], stop_on: list[str] | None = None) -> T:
    """Run `coroutine` to completion on a new event loop: uvloop's where it is installed (a dependency on Linux
    and macOS), asyncio's otherwise or when ARENA_EVAL_EVENT_LOOP=asyncio. Every HTTP exchange passes through the
    loop several times, and at a few hundred requests in flight uvloop spends about half the CPU that asyncio's
    pure-Python loop does on them (docs/benchmarks.md, section 1).

    With `stop_on` (a list), SIGTERM cancels the coroutine as Ctrl-C does, and "SIGTERM" is appended to the list:
    a scheduler's stop then ends a run as cleanly as a user's Ctrl-C (the loop's runner handles SIGINT itself)."""
    choice = os.environ.get("ARENA_EVAL_EVENT_LOOP", "uvloop").strip().lower()
    if choice not in ("uvloop", "asyncio"):
        raise ArenaError(f"ARENA_EVAL_EVENT_LOOP={choice!r}: use uvloop or asyncio")
    if stop_on is not None:
        coroutine = _stopped_by_sigterm(coroutine, stop_on)
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(coroutine)
    return asyncio.run(coroutine)


async def _stopped_by_sigterm(coroutine: Awaitable[T], received: list[str]) -> T:
    loop, task = asyncio.get_running_loop(), asyncio.current_task()

    def stop() -> None:
        received.append("SIGTERM")
        task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, stop)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals on this platform
        return await coroutine
    try:
        return await coroutine
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


class Arena:
    """One output folder's pipeline for one resolved config.

    From a config file: `Arena(load_config("run.yaml"))`. From Python objects:
    `Arena(questions=QuestionSet.from_records(...), contestants=[Contestant(...), ...], judge=Judge(...),
    baseline="name", name="my-bench", output="outputs")` — any other RunConfig key may be passed by keyword.
    """

    def __init__(self, config: RunConfig | None = None, progress: Progress | None = None,
                 questions: QuestionSet | None = None, *, refresh: Iterable[str] = (), **parts: Any):
        if config is None:
            config = _config_from_parts(questions, parts)
        elif parts:
            raise ArenaError(f"pass either a config or its parts, not both (got {', '.join(sorted(parts))})")
        self.config = config
        self.progress = progress or NullProgress()
        self.questions = questions or load_questions(config.questions_path)
        self.prompts = JudgePrompts.load(config.resolve(config.judge.prompt_dir) if config.judge.prompt_dir else None)
        self.judge_config_id = config.judge.config_id(self.prompts.fingerprint)
        self.baseline = config.baseline_contestant
        # Baseline first: under a shared device lock it then runs first, and games can start early.
        self.contestants = [self.baseline] + [c for c in config.contestants if c.name != config.baseline]
        names = {c.name for c in self.contestants}
        self.refresh = set(refresh)
        self.last_summary: RunSummary | None = None  # the summary of the latest run, also when it was interrupted
        if self.refresh - names:
            raise ArenaError(f"--refresh names unknown contestants: {', '.join(sorted(self.refresh - names))}; "
                             f"known: {', '.join(sorted(names))}")
        self._augmenters: dict[int, Augmenter] = {}

    def augmenter(self, store: Store, run_id: str | None = None) -> Augmenter:
        """The prompt builder bound to `store` (guidance is cached there)."""
        if id(store) not in self._augmenters:
            self._augmenters[id(store)] = Augmenter(self.config, store, run_id)
        return self._augmenters[id(store)]

    def use_answer_sets(self, store: Store, run_id: str | None = None) -> None:
        """Point every contestant at its current answer set. With `run_id` (a run that collects), contestants with
        `refresh: always` or named in `refresh` open a new set — unless the run that opened their newest set never
        finished (killed or interrupted), in which case that set is resumed."""
        for c in self.contestants:
            latest = store.latest_epoch(c.base_config_id)
            fresh = run_id is not None and (c.refresh == "always" or c.name in self.refresh)
            if fresh and not (latest and latest["status"] in ("running", "interrupted", "failed")
                              and c.name not in self.refresh):
                store.open_epoch(c.base_config_id, run_id, c.name, run_id)
                c._epoch = run_id
            else:
                c._epoch = latest["epoch"] if latest else None

    # --- entry points -----------------------------------------------------------------------------------

    async def run(self, stages: Iterable[str] = STAGES, command: str = "run") -> Result:
        stages = tuple(stages)
        out = self.config.output_dir
        with RunLock(out), Store(out / "arena.db") as store:
            run_id = new_run_id()
            summary = RunSummary(run_id, len(self.questions), [c.name for c in self.contestants])
            self.last_summary = summary  # what an interrupted run did, for the caller's message
            # Holding the lock, any run still marked running was killed: say so, and let its answer sets resume.
            summary.unfinished_runs = [r["run_id"] for r in store.mark_unfinished_runs()]
            store.start_run(run_id, self.config.name, command, self.config.snapshot())
            status = "failed"
            try:
                summary.renamed = self.carry_over_renames(store)
                self.use_answer_sets(store, run_id if "answers" in stages else None)
                store.save_questions(self.questions)
                for c in self.contestants:
                    store.save_contestant(c.name, c.config_id, c.provider, c.model, c.model_dump(mode="json"))
                augmenter = self.augmenter(store, run_id)
                try:
                    if "guidance" in stages:
                        await self._build_guidance(augmenter, summary)
                    if "answers" in stages or "judge" in stages:
                        await self._collect_and_judge(store, run_id, summary, stages)
                finally:
                    await augmenter.close()
                result = Result(run_id, summary, None, out, _arena=self)
                if "score" in stages:
                    result.leaderboard = self.leaderboard(store, summary, result)
                    store.save_leaderboard(run_id, result.leaderboard.to_dict("records"))
                    from .history import find_regressions

                    result.regressions = find_regressions(store, run_id, self.config.regression.score_drop)
                    summary.extra["regressions"] = result.regressions.model.tolist()
                    result.files = write_leaderboard(result.leaderboard, out)
                    if self.config.report:
                        from .report import write_report

                        result.files.append(write_report(self, store, result))
                elif "judge" in stages:
                    self._count_missing(store, summary, stages)
                # Collection alone needs no tally: every item it could not get is a recorded error already,
                # and a tally would hold every answer id in memory (bench/bench_collect.py).
                status = "complete" if summary.complete else "incomplete"
                return result
            except (KeyboardInterrupt, asyncio.CancelledError):
                status = "interrupted"
                raise
            finally:
                self.progress.close()
                try:
                    store.finish_run(run_id, status, asdict(summary))
                except StoreError:
                    # The database itself failed (a full disk): the error on its way out says so. The run stays
                    # 'running' in the table, and the next run marks it interrupted.
                    pass

    def run_sync(self, stages: Iterable[str] = STAGES, command: str = "run") -> Result:
        """`run` for code without an event loop (scripts, notebooks need `await arena.run()` instead).

        SIGINT (Ctrl-C) and SIGTERM stop the run within seconds, keep what it stored, and raise RunInterrupted
        (which counts what it did); running it again resumes."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise ArenaError("run_sync() was called inside a running event loop (e.g. Jupyter); use `await arena.run()`")
        self.last_summary = None
        received: list[str] = []
        try:
            return run_event_loop(self.run(stages, command), stop_on=received)
        except KeyboardInterrupt:
            raise RunInterrupted("SIGINT", self.last_summary, self.config.output_dir) from None
        except asyncio.CancelledError:
            if not received:
                raise
            raise RunInterrupted(received[0], self.last_summary, self.config.output_dir) from None

    def carry_over_renames(self, store: Store) -> list[list[str]]:
        """Contestants renamed in the config (same configuration, new name) take over what is stored under their
        old name. A name that a different configuration used before is not a rename: its work starts fresh."""
        stored = store.stored_contestants()
        current = {c.name for c in self.contestants}
        renamed = []
        for c in self.contestants:
            if c.name in stored:
                continue
            olds = [name for name, config_id in stored.items()
                    if name not in current and config_id.split("@")[0] == c.base_config_id]
            if len(olds) == 1:
                store.rename_contestant(olds[0], c.name)
                renamed.append([olds[0], c.name])
        return renamed

    def open_store(self) -> Store:
        """The output folder's store, for reading (no run lock is taken)."""
        db = self.config.output_dir / "arena.db"
        if not db.exists():
            raise ArenaError(f"{db}: no results yet; run this arena first")
        store = Store(db)
        self.use_answer_sets(store)
        return store

    def answers_frame(self, store: Store | None = None) -> pd.DataFrame:
        """The current answers (one row per contestant and question) as a DataFrame."""
        own = store is None
        store = store or self.open_store()
        try:
            augmenter = self.augmenter(store)
            rows = []
            for c in self.contestants:
                for aid in current_answer_ids(c, self.questions, store, augmenter).values():
                    answer = store.get_answer(aid)
                    if answer is not None:
                        row = asdict(answer)
                        row["contestant"] = c.name
                        row.pop("cached", None)
                        rows.append(row)
            return pd.DataFrame(rows)
        finally:
            if own:
                store.close()

    # --- guidance -----------------------------------------------------------------------------------------

    async def _build_guidance(self, augmenter: Augmenter, summary: RunSummary) -> None:
        """Generate missing guidance ahead of collection (the `guidance` command; `run` also fills gaps lazily)."""
        guide = augmenter.guide
        if guide is None:
            return
        guide.provider.api_key()
        self.progress.add("guidance", len(self.questions))
        limit = asyncio.Semaphore(guide.config.concurrency)
        counts = summary.extra.setdefault("guidance", {"new": 0, "stored": 0, "errors": 0})

        async def one(question: Question) -> None:
            async with limit:
                if guide.stored(question) is not None:
                    counts["stored"] += 1
                    self.progress.advance("guidance", cached=True)
                    return
                try:
                    await guide.get(question)
                except AugmentError as exc:
                    counts["errors"] += 1
                    summary.guidance_errors += 1
                    summary.extra.setdefault("guidance_errors", []).append(f"{question.question_id}: {exc}")
                    self.progress.advance("guidance", error=True)
                    return
                counts["new"] += 1
                self.progress.advance("guidance")

        await asyncio.gather(*(one(q) for q in self.questions))

    # --- collection and judging -------------------------------------------------------------------------

    async def _collect_and_judge(self, store: Store, run_id: str, summary: RunSummary, stages: tuple[str, ...]) -> None:
        collect, judge = "answers" in stages, "judge" in stages
        augmenter = self.augmenter(store, run_id)
        contestant_providers = {c.name: make_provider(c, self.config.base_dir) for c in self.contestants} if collect else {}
        judge_provider = make_provider(self.config.judge, self.config.base_dir) if judge else None
        # Errors before work: every credential is checked before the first request goes out.
        guide_provider = augmenter.guide.provider if collect and augmenter.guide else None
        for provider in [*contestant_providers.values(), judge_provider, guide_provider]:
            if provider is not None:
                key = provider.api_key()
                if key != "not-needed":  # the placeholder local servers get
                    register_secret(key)  # from here on it is redacted wherever it might show
        device_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        games_q: asyncio.Queue = asyncio.Queue(maxsize=max(64, 2 * self.config.judge.concurrency))
        # No per-question state for the whole set here: questions stream from the set (a file set re-reads its
        # file), the judge looks a prompt up in the store by id, and dispatch keeps only unfinished questions.
        n = len(self.questions)
        self.progress.add("answers", n * len(self.contestants))

        async def collect_for(contestant: ContestantConfig) -> None:
            provider = contestant_providers[contestant.name]
            lock = device_locks[tracker.lock_key(contestant.device)] if contestant.is_local else None
            if lock is not None:
                await lock.acquire()
            try:
                await provider.start()  # before the window: loading a model is not answering
                prepare = functools.partial(augmenter.prepare, contestant)
                metered = contestant.is_local and contestant.name in needs_work
                async with (tracker.window("contestant", contestant.name, contestant.config_id, contestant.device)
                            if metered else contextlib.nullcontext(WindowCounts())) as counts:

                    async def count_and_deliver(item: Answer | AnswerError) -> None:
                        if isinstance(item, Answer) and not item.cached:
                            counts.add(item.output_tokens)
                        await deliver(item)

                    await collect_into(contestant, provider, self.questions, store, prepare, count_and_deliver, run_id)
            finally:
                await provider.close()
                if lock is not None:
                    lock.release()

        async def produce(contestant: ContestantConfig) -> None:
            try:
                if collect:
                    await collect_for(contestant)
                else:
                    async for item in stored_answers(contestant, self.questions, store, augmenter):
                        await deliver(item)
            except StoreError:
                raise  # the database failed: nothing more can be stored, the whole run stops
            except ArenaError as exc:  # e.g. a model file that cannot be served: the others go on
                for question in self.questions:
                    error = AnswerError(contestant.name, contestant.config_id, question.question_id, str(exc), 0)
                    store.save_answer_error(error, run_id)
                    await deliver(error)
            # End of this contestant's stream. Not in a `finally`: when the run is stopping (Ctrl-C, a failure
            # elsewhere) the judge's workers are gone, and waiting for room in their full queue would hang it.
            await deliver(None)

        # Dispatch runs inside the producer that delivers an item, not in a task of its own: every queue between
        # an answer and its games costs a full turn of a busy event loop before the judge sees them, and the judge
        # is the bottleneck (bench/bench_orchestration.py: with two queue hops in between, the judge's first
        # request left ~0.6 s after the first answers were in).
        # Only questions that some contestant has not delivered yet are held (`open_questions`); one bit per
        # contestant says who has, and an entry goes once every contestant delivered an answer or an error.
        open_questions: dict[str, _OpenQuestion] = {}
        bits = {c.name: 1 << i for i, c in enumerate(self.contestants)}
        everyone = (1 << len(self.contestants)) - 1
        open_producers = len(self.contestants)

        async def deliver(item: Answer | AnswerError | None) -> None:
            nonlocal open_producers
            if item is None:
                open_producers -= 1
                if open_producers == 0:
                    for _ in range(self.config.judge.concurrency):
                        await games_q.put(None)
                return
            is_answer = isinstance(item, Answer)
            if not is_answer:
                summary.answer_errors += 1
                summary.errors_by_contestant[item.contestant] = summary.errors_by_contestant.get(item.contestant, 0) + 1
                self.progress.advance("answers", error=True)
            else:
                if item.cached:
                    summary.answers_cached += 1
                else:
                    summary.answers_new += 1
                self.progress.advance("answers", cached=item.cached)
            if not judge:
                return
            entry = open_questions.get(item.question_id)
            if entry is None:
                entry = open_questions[item.question_id] = _OpenQuestion()
            if item.contestant == self.baseline.name:
                if not entry.delivered & bits[item.contestant]:
                    entry.base = item if is_answer else None
                    waiting, entry.waiting = entry.waiting, []
                    if entry.base is not None:
                        for answer in waiting:
                            await enqueue_games(answer, entry.base)
            elif is_answer:
                if entry.base is not None:
                    await enqueue_games(item, entry.base)
                elif not entry.delivered & bits[self.baseline.name]:
                    entry.waiting.append(item)
                # else: the baseline has no answer to this question, so there is no game to pose
            # Set after the awaits above: while a deliverer waits for room in the judge's queue, its question
            # cannot count as complete, so no other deliverer drops the entry under it.
            entry.delivered |= bits[item.contestant]
            if entry.delivered == everyone:
                open_questions.pop(item.question_id, None)  # nothing more can arrive for it: drop the texts

        async def enqueue_games(answer: Answer, base: Answer) -> None:
            games = games_for(self.judge_config_id, answer.question_id, answer.contestant, base.contestant,
                              answer.answer_id, base.answer_id)
            self.progress.add("games", len(games))
            prompt = None
            for game in games:
                if store.has_judgment(game.game_id):
                    summary.games_cached += 1
                    self.progress.advance("games", cached=True)
                    continue
                if prompt is None:  # saved by run() before collection starts
                    prompt = store.question_prompt(game.question_id)
                a, b = (base, answer) if game.game == 1 else (answer, base)
                await games_q.put((game, prompt, a.text, b.text))

        async def judge_worker() -> None:
            while (work := await games_q.get()) is not None:
                game, question, text_a, text_b = work
                try:
                    judgment = await judge_game(game, question, text_a, text_b, self.config.judge,
                                                self.judge_config_id, judge_provider, self.prompts, run_id)
                except (RetriesExhausted, TemplateError) as exc:
                    # A template that fails on this game's text (a render limit) is this game's error, as a judge
                    # endpoint that keeps failing is: recorded with its reason, the other games go on.
                    reason, attempts = (exc.reason, exc.attempts) if isinstance(exc, RetriesExhausted) else (str(exc), 0)
                    store.save_game_error(GameError(game.game_id, game.question_id, game.contestant, game.game,
                                                    reason, attempts), run_id)
                    summary.game_errors += 1
                    self.progress.advance("games", error=True)
                    continue
                store.save_judgment(judgment)
                judge_counts.add(judgment.output_tokens)
                summary.games_new += 1
                summary.games_unparsed += judgment.verdict is None
                summary.games_suspicious += judgment.flags is not None
                self.progress.advance("games")

        # Energy: idle power first, then a window per local contestant that has answers to collect.
        tracker = EnergyTracker(self.config.energy, store.db, run_id)
        needs_work = {c.name for c in self.contestants
                      if collect and missing_answers(c, self.questions, store, augmenter)}
        for device in sorted({c.device for c in self.contestants if c.is_local and c.name in needs_work}):
            await tracker.measure_idle(device)
        judge_cfg = self.config.judge
        judge_counts = WindowCounts()
        if judge_provider is not None:
            await judge_provider.start()
        try:
            async with (tracker.window("judge", "(judge)", self.judge_config_id, judge_cfg.device)
                        if judge and judge_cfg.is_local else contextlib.nullcontext(judge_counts)) as judge_counts:
                workers = [asyncio.create_task(judge_worker()) for _ in range(judge_cfg.concurrency if judge else 0)]
                producers = [asyncio.create_task(produce(c)) for c in self.contestants]
                try:
                    await asyncio.gather(*producers, *workers)
                finally:
                    for task in [*producers, *workers]:
                        task.cancel()
                    await asyncio.gather(*producers, *workers, return_exceptions=True)
        finally:
            if judge_provider is not None:
                await judge_provider.close()

    # --- scoring ----------------------------------------------------------------------------------------

    def current_games(self, store: Store) -> tuple[dict[str, dict[str, str]], list[Game]]:
        """Answer ids of the current configuration per contestant, and every game they call for."""
        augmenter = self.augmenter(store)
        ids = {c.name: current_answer_ids(c, self.questions, store, augmenter) for c in self.contestants}
        base_ids = ids[self.baseline.name]
        games = []
        for c in self.contestants[1:]:
            for qid, aid in ids[c.name].items():
                if qid in base_ids:
                    games += games_for(self.judge_config_id, qid, c.name, self.baseline.name, aid, base_ids[qid])
        return ids, games

    def tally(self, store: Store) -> "Tally":
        """What the current config calls for, and how much of it the store holds."""
        ids, games = self.current_games(store)
        verdicts = store.verdicts(self.judge_config_id)
        n = len(self.questions)
        per = {c.name: {"answers_missing": n - len(ids[c.name]), "games_missing": 0, "games": 0, "unparsed": 0}
               for c in self.contestants}
        judged = []
        for g in games:
            row = per[g.contestant]
            if g.game_id in verdicts:
                judged.append((g.game_id, g.contestant))
                row["games"] += 1
                row["unparsed"] += verdicts[g.game_id] is None
            else:
                row["games_missing"] += 1
        # Games that cannot even be posed (a missing answer on either side) are missing too.
        expected = 2 * n * (len(self.contestants) - 1)
        return Tally(ids, judged, per, expected - len(judged))

    def _count_missing(self, store: Store, summary: RunSummary, stages: tuple[str, ...]) -> "Tally":
        tally = self.tally(store)
        if {"answers", "judge", "score"} & set(stages):
            summary.answers_missing = sum(r["answers_missing"] for r in tally.per_contestant.values())
        summary.games_missing = tally.games_missing if ("judge" in stages or "score" in stages) else 0
        return tally

    def leaderboard(self, store: Store, summary: RunSummary, result: Result | None = None) -> pd.DataFrame:
        """Rate the current judgments; with `result`, also keep the battles, diagnostics and energy table there."""
        from .rating import compute_leaderboard
        from .style import STYLE_COLUMNS, answer_styles

        tally = self._count_missing(store, summary, STAGES)
        per = tally.per_contestant
        wanted = dict(tally.judged_game_ids)
        judgments = [j for j in store.judgments(self.judge_config_id) if j.game_id in wanted]
        for j in judgments:  # by today's names: a contestant renamed since (same configuration) keeps its verdicts
            j.contestant, j.baseline = wanted[j.game_id], self.baseline.name
        styles = answer_styles(judgments, store.answer_rows) if self.config.rating.style_control else None
        battles = battles_from_judgments(judgments, self.config.judge.weights, styles)
        diagnostics = position_diagnostics(judgments).set_index("model")
        if result is not None:
            result.battles = battles
            result.diagnostics = diagnostics.reset_index()
        overall = diagnostics.loc["*"]
        summary.extra["judge"] = {"consistency": overall.consistency, "first_position_win_rate": overall.first_position_win_rate,
                                  "suspicious_rate": overall.suspicious_rate}
        rating = self.config.rating
        if battles.empty:
            board = pd.DataFrame({"model": [c.name for c in self.contestants]})
            for column in ("score", "ci_low", "ci_high", "elo", "battles", "questions"):
                board[column] = float("nan")
            board.loc[board.model == self.baseline.name, ["score", "elo"]] = [50.0, 1000.0]
        else:
            board = compute_leaderboard(battles, self.baseline.name, rounds=rating.rounds, seed=rating.seed, by=rating.bootstrap,
                                        style=list(STYLE_COLUMNS) if rating.style_control else None)
            if rating.style_control:
                summary.extra["style"] = board.attrs["style_coefficients"]
            missing = [c.name for c in self.contestants if c.name not in set(board.model)]
            if missing:
                board = pd.concat([board, pd.DataFrame({"model": missing})], ignore_index=True)
        board["games"] = board.model.map(lambda m: per[m]["games"])
        board["unparsed_rate"] = board.model.map(lambda m: per[m]["unparsed"] / per[m]["games"] if per[m]["games"] else float("nan"))
        board["answers_missing"] = board.model.map(lambda m: per[m]["answers_missing"])
        board["games_missing"] = board.model.map(lambda m: per[m]["games_missing"])
        board.loc[board.model == self.baseline.name, ["unparsed_rate", "games_missing"]] = [float("nan"), 0]
        answer_stats = {m: store.answer_stats(list(ids.values())) for m, ids in tally.answer_ids.items()}
        games_of: dict[str, list[str]] = defaultdict(list)
        for game_id, contestant in tally.judged_game_ids:
            games_of[contestant].append(game_id)
        judge_stats = {m: store.judgment_stats(games_of[m]) for m in per}
        board["avg_input_tokens"] = board.model.map(lambda m: answer_stats[m]["avg_input_tokens"])
        board["avg_output_tokens"] = board.model.map(lambda m: answer_stats[m]["avg_output_tokens"])
        board["answer_cost"] = board.model.map(lambda m: answer_stats[m]["cost"])
        board["judge_cost"] = board.model.map(lambda m: judge_stats[m]["cost"] if games_of[m] else None)
        board["consistency"] = board.model.map(diagnostics.consistency)
        board["first_position_win_rate"] = board.model.map(diagnostics.first_position_win_rate)
        board["suspicious_rate"] = board.model.map(diagnostics.suspicious_rate)
        board["is_baseline"] = board.model == self.baseline.name
        board = board.sort_values("score", ascending=False, na_position="last").reset_index(drop=True)
        energy = self.energy_table(store, tally, summary)
        if result is not None:
            result.energy = energy
        contestants = energy[energy.role == "contestant"].drop(columns=["role"])
        return join_leaderboard(board, contestants, cost="wh_per_pass")

    def energy_table(self, store: Store, tally: "Tally", summary: RunSummary | None = None) -> pd.DataFrame:
        """Energy per contestant configuration (measured windows, API estimates, CodeCarbon imports) and the
        judge's own line, aggregated as sums over sums. Idle power goes to the summary, not into any row."""
        cfg = self.config.energy
        by_config = {c.config_id: c.name for c in self.contestants}
        windows = load_windows(store.db)
        rows: list[dict] = []
        for w in windows.to_dict("records"):
            if w["role"] == "contestant" and w["config_id"] in by_config:
                rows.append({**w, "contestant": by_config[w["config_id"]]})
            elif w["role"] == "judge" and w["config_id"] == self.judge_config_id:
                rows.append({**w, "contestant": "(judge)"})
        for c in self.contestants:
            if cfg.estimate_api and not c.is_local and (c.base_url is None or c.provider == "litellm"):
                answers = store.answer_rows(list(tally.answer_ids[c.name].values()), ("output_tokens", "latency_s"))
                if answers:
                    reading = estimate_api_batch(c.model or "", [a[0] or 0 for a in answers], [a[1] for a in answers], c.provider)
                    rows.append({**reading.to_dict(), "role": "contestant", "contestant": c.name,
                                 "output_tokens": sum(a[0] or 0 for a in answers), "requests": len(answers)})
        intensity, intensity_source = cfg.carbon_intensity()
        columns = ["role", "contestant", "energy_source", "tags", "method", "is_estimated", "energy_wh", "wh_per_pass"]
        if rows:
            frame = energy_summary(pd.DataFrame(rows), by=("role", "contestant"), questions=len(self.questions),
                                   g_co2_per_kwh=intensity, pue=cfg.pue, price_per_kwh=cfg.price_per_kwh)
            frame["energy_source"], frame["tags"] = "measured", None
        else:
            frame = pd.DataFrame(columns=columns)
        imported = summarise_runs(load_imports(store.db))
        imported = imported[imported.contestant.isin(set(by_config.values()))]
        if not imported.empty:
            # One imported CodeCarbon run is one pass over the question set on that configuration.
            extra = imported.rename(columns={"energy_wh": "wh_per_pass", "co2_g": "co2_g_per_pass"})
            extra["role"], extra["energy_source"], extra["method"] = "contestant", "codecarbon-import", "codecarbon"
            frame = pd.concat([frame, extra], ignore_index=True)
        if summary is not None:
            idle = windows[windows.role == "idle"]
            idle_w = (idle.energy_j.sum() / idle.duration_s.sum()) if len(idle) and idle.energy_j.notna().all() else None
            judge = frame[frame.contestant == "(judge)"]
            summary.extra["energy"] = {
                "methods": sorted({m for m in frame.get("method", pd.Series(dtype=str)).dropna() if m}),
                "idle_power_w": idle_w,
                "judge_wh": float(judge.energy_wh.iloc[0]) if len(judge) and pd.notna(judge.energy_wh.iloc[0]) else None,
                "carbon": f"{intensity:g} g CO2/kWh ({intensity_source}), PUE {cfg.pue:g}",
            }
        return frame.reset_index(drop=True)


@dataclass
class Tally:
    answer_ids: dict[str, dict[str, str]]  # contestant → question_id → answer_id (current config)
    judged_game_ids: list[tuple[str, str]]  # (game_id, contestant)
    per_contestant: dict[str, dict[str, int]]
    games_missing: int


@dataclass
class _OpenQuestion:
    """A question some contestant has not delivered yet (dispatch): the baseline's answer, once it has one, and
    contestants' answers that arrived before it."""

    base: Answer | None = None
    waiting: list[Answer] = field(default_factory=list)
    delivered: int = 0  # bit set of the contestants whose answer or error arrived


def _current_prompt_hash(contestant: ContestantConfig, question: Question, augmenter: Augmenter) -> str | None:
    """The hash of the prompt this contestant's current configuration sends for `question` (None: none yet)."""
    prepared = augmenter.prepare_stored(contestant, question)
    return None if prepared is None else prompt_hash(prepared.messages)


def current_answer_id(contestant: ContestantConfig, question: Question, store: Store, augmenter: Augmenter) -> str | None:
    """The stored answer to `question` for this contestant's current prompt, by one indexed look-up."""
    p_hash = _current_prompt_hash(contestant, question, augmenter)
    return None if p_hash is None else store.find_answer_id(contestant.config_id, question.question_id, p_hash)


def missing_answers(contestant: ContestantConfig, questions: QuestionSet, store: Store, augmenter: Augmenter) -> bool:
    """Whether any question lacks a current answer. Fewer answers stored (under any prompt) than questions
    settles it without a pass; otherwise the questions stream by until the first one without an answer."""
    if store.count_answers(contestant.config_id) < len(questions):
        return True
    return any(current_answer_id(contestant, q, store, augmenter) is None for q in questions)


def current_answer_ids(contestant: ContestantConfig, questions: Iterable[Question], store: Store,
                       augmenter: Augmenter) -> dict[str, str]:
    """question_id → answer_id of the answers stored for this contestant's current prompts (one query for all)."""
    stored = store.answer_ids(contestant.config_id)
    out = {}
    for q in questions:
        key = (q.question_id, _current_prompt_hash(contestant, q, augmenter))
        if key in stored:
            out[q.question_id] = stored[key]
    return out


async def stored_answers(contestant: ContestantConfig, questions: Iterable[Question], store: Store,
                         augmenter: Augmenter) -> AsyncIterator[Answer]:
    """The contestant's stored answers (for the judge stage alone); missing ones are simply absent.
    One indexed look-up per question as the questions stream by, so nothing grows with the set."""
    for question in questions:
        aid = current_answer_id(contestant, question, store, augmenter)
        answer = store.get_answer(aid) if aid is not None else None
        if answer is not None:
            answer.cached = True
            answer.contestant = contestant.name
            yield answer


def write_leaderboard(board: pd.DataFrame, folder: Path) -> list[Path]:
    """leaderboard.csv, .json and .parquet in `folder` (each written to a temporary name, then renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "leaderboard.csv", folder / "leaderboard.json", folder / "leaderboard.parquet"]
    writers = [
        lambda tmp: board.to_csv(tmp, index=False),
        lambda tmp: tmp.write_text(json.dumps(leaderboard_records(board), indent=2) + "\n", encoding="utf-8"),
        lambda tmp: _parquet_ready(board).to_parquet(tmp, index=False),
    ]
    for path, write in zip(paths, writers):
        tmp = path.with_name(path.name + ".tmp")
        try:
            write(tmp)
            tmp.replace(path)
        except OSError as exc:
            raise ArenaError(
                f"cannot write {path}: {exc.strerror or exc}. Answers and verdicts are stored in {folder / 'arena.db'}; "
                "make that path writable and run `arena-eval score` to write the leaderboard"
            ) from None
    return paths


def _parquet_ready(board: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type per column: mappings (tags) become JSON text, mixed objects become text."""
    out = board.copy()
    for column in out.columns:
        if out[column].dtype == object:
            kinds = {type(v) for v in out[column].dropna()}
            if len(kinds) > 1 or kinds & {dict, list, tuple}:
                out[column] = out[column].map(lambda v: None if v is None or (isinstance(v, float) and v != v)
                                              else (v if isinstance(v, str) else json.dumps(v, default=str)))
    return out


def leaderboard_records(board: pd.DataFrame) -> list[dict]:
    """JSON-ready rows: NaN becomes null, numpy scalars become plain numbers."""
    return json.loads(board.to_json(orient="records"))
