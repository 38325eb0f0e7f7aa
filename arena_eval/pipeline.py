"""Runs an output folder's pipeline: the orchestration of the stages, each in a module of its own.

questions → answers (collect, answer_sets) → games (dispatch, judge) → judgments → battles → ratings (rating) →
leaderboard ⨝ energy (leaderboard) → report. `Arena.run` takes the folder's lock, tidies up after runs that were
killed and contestants that were renamed, opens the answer sets, streams collection into judging
(stream.CollectAndJudge), then scores, writes the files and the report. docs/design.md §1.2 and §7.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .answer_sets import AnswerSets
from .augment import Augmenter
from .config import RunConfig, first_shared_configuration, shared_configuration_message
from .context import RunContext, RunScope
from .errors import ArenaError, ConfigError, RunInterrupted, StoreError
from .judge import RunJudge
from .progress import NullProgress, Progress
from .questions import QuestionSet
from .records import Answer, GuidanceCounts, RunSummary
from .spending import SpendingCap
from .store import RunLock, Store

if TYPE_CHECKING:
    # Imported where they are used: `validate` and `plan` build an Arena, and need none of the run's stages,
    # scoring, pandas or the providers' HTTP clients (start-up, issue 26 item 6).
    import pandas as pd

    from .adaptive import AdaptivePlan
    from .leaderboard import Leaderboard
    from .plan import Plan
    from .records import LeaderboardRow
    from .tally import Tally

T = TypeVar("T")
STAGES = ("answers", "judge", "score")  # what `run` does; `guidance` is a stage of its own


@dataclass
class Result:
    """What a run produced. `leaderboard`, `battles`, `energy` and `regressions` are DataFrames (None when the
    run did not score), `rows` the leaderboard typed; `answers` is read from the store on first use."""

    run_id: str
    summary: RunSummary
    leaderboard: pd.DataFrame | None
    output_dir: Path
    files: list[Path] = field(default_factory=list)
    battles: pd.DataFrame | None = None
    energy: pd.DataFrame | None = None
    regressions: pd.DataFrame | None = None
    diagnostics: pd.DataFrame | None = None  # the judge's position consistency and bias, per model and overall
    rows: list[LeaderboardRow] = field(default_factory=list)
    _arena: Arena | None = field(default=None, repr=False)
    _tally: Tally | None = field(default=None, repr=False)
    _answers: pd.DataFrame | None = field(default=None, repr=False)
    # `--no-wait` left batches at the provider (summary.batches_waiting): nothing was scored, and that is no failure.
    waiting: bool = False

    @property
    def exit_code(self) -> int:
        """0 complete (or batches submitted without waiting), 2 finished with missing items, 3 a contestant
        regressed (takes precedence), 4 stopped by its spending cap (`max_cost`; nothing scored)."""
        if self.summary.capped:
            return 4
        if self.regressions is not None and len(self.regressions):
            return 3
        return 0 if self.summary.complete or self.waiting else 2

    @property
    def answers(self) -> pd.DataFrame:
        """The current answer of every contestant to every question it answered (one row each)."""
        if self._answers is None:
            if self._arena is None:
                raise ArenaError("this result is not bound to an arena; open the store to read answers")
            self._answers = self._arena.answers_frame()
        return self._answers

    def keep(self, board: Leaderboard) -> None:
        self.leaderboard, self.rows = board.frame, board.rows
        self.battles, self.diagnostics, self.energy = board.battles, board.diagnostics, board.energy


def _config_from_parts(questions: QuestionSet | None, parts: dict[str, Any]) -> RunConfig:
    from .config import config_from_dict

    if questions is None:
        raise ArenaError("Arena(...) without a config needs questions=QuestionSet(...)")
    data = dict(parts)
    data.setdefault("name", "custom")
    data["questions"] = f"<{questions.name}>"  # in memory; only recorded in the run's config snapshot
    for key in ("judge", "rating", "guidance", "rag", "energy", "regression", "tracking"):
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

    def quiet_while_stopping(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        # Once the run is being stopped, connections torn down mid-reply may report errors from their callbacks
        # ("Fatal error on transport ..." with a traceback): expected then, and noise in the message that says
        # what was kept. Until then, errors are reported as usual.
        if task.done() or getattr(task, "cancelling", lambda: 0)():  # cancelling(): Python 3.11 and later
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(quiet_while_stopping)
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
                 questions: QuestionSet | None = None, *, refresh: Iterable[str] = (), wait: bool = True,
                 max_cost: float | None = None, **parts: Any):
        if config is None:
            config = _config_from_parts(questions, parts)
        elif parts:
            raise ArenaError(f"pass either a config or its parts, not both (got {', '.join(sorted(parts))})")
        self.config = config
        self.wait = wait  # False: batches are submitted and polled once, never waited for (`run --no-wait`)
        # `run --max-cost`: the replies' cost is counted as they arrive, and no request is sent once it reaches this
        # (spending.py). Checked here, before the question set is read.
        self.max_cost = SpendingCap(max_cost).limit
        self.progress = progress or NullProgress()
        self.questions = questions or config.load_questions()
        if config.category_baselines or any(j.prompts_by_category for j in config.judges):
            # A category left without a baseline, or judge prompts for a category the set lacks: refused now.
            config.check_categories(Counter(q.category for q in self.questions), config.questions_label)
        self.judges = [RunJudge.load(j, config.resolve) for j in config.judges]  # templates checked before any request
        shared = first_shared_configuration([j.config_id for j in self.judges])
        if shared:  # two prompt folders with the same templates: config loading compared the folders' paths only
            raise ConfigError(shared_configuration_message("judge", self.judges[shared[0]].name,
                                                           self.judges[shared[1]].name, *shared))
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

    def plan(self) -> Plan:
        """What `run` would send now, with its estimated tokens, cost, duration and energy (plan.py). Sends
        nothing and writes nothing: a folder without results is planned against an empty store in memory."""
        from .plan import build_plan

        db = self.config.output_dir / "arena.db"
        with Store(db if db.exists() else ":memory:") as store:
            sets = AnswerSets.open(store, self.contestants, None, self.refresh)
            return build_plan(self.scope, store, sets, Augmenter(self.config, store))

    @property
    def scope(self) -> RunScope:
        return RunScope(self.config, self.contestants, self.questions, self.judges)

    def augmenter(self, store: Store, run_id: str | None = None) -> Augmenter:
        """The prompt builder bound to `store` (guidance is cached there); collection and imports need it."""
        if id(store) not in self._augmenters:
            self._augmenters[id(store)] = Augmenter(self.config, store, run_id)
        return self._augmenters[id(store)]

    def answer_sets(self, store: Store, run_id: str | None = None) -> AnswerSets:
        """The answer sets in use; with `run_id` (a run that collects), refreshing contestants open new ones."""
        return AnswerSets.open(store, self.contestants, run_id, self.refresh)

    # --- entry points -----------------------------------------------------------------------------------

    async def run(self, stages: Iterable[str] = STAGES, command: str = "run") -> Result:
        from .augment.guidance import build_guidance
        from .batch import Batches
        from .providers.replicas import replica_counts
        from .stream import CollectAndJudge, judge_shares_a_meter
        from .tally import count_missing

        stages = tuple(stages)
        out = self.config.output_dir
        with RunLock(out), Store(out / "arena.db", verify=True) as store:
            run_id = new_run_id()
            summary = RunSummary(run_id, len(self.questions), [c.name for c in self.contestants])
            self.last_summary = summary  # what an interrupted run did, for the caller's message
            # Holding the lock, any run still marked running was killed: say so, and let its answer sets resume.
            summary.unfinished_runs = [r["run_id"] for r in store.mark_unfinished_runs()]
            store.start_run(run_id, self.config.name, command, self.config.snapshot())
            status = "failed"
            cap = SpendingCap(self.max_cost)
            try:
                summary.renamed = carry_over_renames(store, self.contestants)
                sets = self.answer_sets(store, run_id if "answers" in stages else None)
                store.save_questions(self.questions)
                for c in self.contestants:
                    store.save_contestant(c.name, sets.set_id(c), c.provider, c.model, c.model_dump(mode="json"))
                augmenter = self.augmenter(store, run_id)
                context = RunContext(self.scope, store, sets, augmenter, run_id, summary, self.progress, cap)
                batches = Batches(context, self.wait)
                try:
                    if "guidance" in stages and augmenter.guide is not None:
                        summary.guidance = GuidanceCounts()
                        await build_guidance(augmenter.guide, self.questions, self.progress, summary.guidance)
                        summary.guidance_errors += summary.guidance.errors
                    if batches.in_use and ("answers" in stages or "judge" in stages):
                        # Batch mode goes in rounds (batch.py): what earlier runs left at the provider, then the
                        # batch contestants' answers, before the stream below hands every answer on.
                        await batches.resume()
                        if "answers" in stages:
                            await batches.collect()
                    judging = None
                    if self.config.rating.adaptive is not None and "judge" in stages:
                        await self._judge_adaptively(context, stages)
                    elif "answers" in stages and "judge" in stages and judge_shares_a_meter(self.scope):
                        # A judge on the machine (or GPU) a local contestant is metered on: its requests would fall
                        # inside the contestants' windows and count twice, so it judges once collection is done.
                        await CollectAndJudge(context, collect=True, judge=False).run()
                        judging = CollectAndJudge(context, collect=False, judge=True, count_answers=False)
                        await judging.run()
                    elif "answers" in stages or "judge" in stages:
                        judging = CollectAndJudge(context, collect="answers" in stages, judge="judge" in stages)
                        await judging.run()
                    if judging is not None and judging.judge and not cap.reached:
                        await batches.judge(judging.batched_games())  # the batch judges' games, gathered above
                finally:
                    try:
                        await batches.close()
                    finally:
                        await augmenter.close()
                    guide = augmenter.guide
                    if guide is not None and (counts := replica_counts("guide", guide.config.model or "guide",
                                                                       guide.provider)) is not None:
                        summary.replicas.append(counts)
                summary.batches_waiting = batches.waiting
                result = Result(run_id, summary, None, out, _arena=self)
                if cap.limit is not None:
                    summary.max_cost, summary.spent = cap.limit, cap.spent
                    summary.capped, summary.requests_held_back = cap.reached, cap.refused
                    summary.unpriced_replies = cap.unpriced
                if summary.capped:
                    # Stopped by its spending cap: what arrived is stored; a leaderboard of a part of the work would
                    # only mislead (and could raise false regressions). `score` rates what is stored.
                    status = "capped"
                    return result
                if summary.batches_waiting and not self.wait:
                    # `--no-wait`: what could be sent is at the provider; the next run collects it and scores.
                    result.waiting = True
                    status = "waiting"
                    return result
                if "score" in stages:
                    self._score(store, sets, result, command)
                elif "judge" in stages:
                    count_missing(self._tally(store, sets)[0], summary, stages)
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
                    store.finish_run(run_id, status, summary.to_json_dict())
                except StoreError:
                    # The database itself failed (a full disk): the error on its way out says so. The run stays
                    # 'running' in the table, and the next run marks it interrupted.
                    pass

    def _score(self, store: Store, sets: AnswerSets, result: Result, command: str = "run") -> None:
        """Rate, keep the leaderboard in the store's history, find regressions, write the files and the report;
        then log the run to MLflow when `tracking.mlflow` is set (a failure there is a warning in the summary)."""
        from .history import question_points
        from .leaderboard_files import write_leaderboard

        board = self._leaderboard(store, sets, result)
        baselines = {self.scope.baseline.name, *self.config.category_baselines.values()}
        store.save_leaderboard(result.run_id, board.rows, board.columns,
                               ",".join(sorted(j.config_id for j in self.scope.rated_judges)),
                               question_points(board.battles, baselines))
        result.regressions = self._regressions(store, result.run_id, save=True)
        result.summary.regressions = result.regressions.model.tolist()
        out = self.config.output_dir
        result.files = write_leaderboard(board.frame, out)
        if self.config.report:
            result.files.append(self._write_report(store, sets, board, result, out / "report.html"))
        if self.config.tracking.mlflow is not None:
            from .mlflow_tracking import log_scored_run

            log_scored_run(self.scope, board.rows, board.columns, board.judges, result.summary, command, result.files)

    def _regressions(self, store: Store, run_id: str, save: bool = False) -> pd.DataFrame:
        """The run's contestants that regressed by the config's rule (§3.6); with `save`, every comparison is kept
        for `history`."""
        import pandas as pd

        from .history import REGRESSION_COLUMNS, compare_with_previous

        rule, rating = self.config.regression, self.config.rating
        checks = compare_with_previous(store, run_id, rule.score_drop, rule.test, rule.alpha, rating.rounds, rating.seed)
        if save:
            store.save_regression_checks(run_id, checks)
        return pd.DataFrame([[c.get(k) for k in REGRESSION_COLUMNS] for c in checks if c["regressed"]],
                            columns=REGRESSION_COLUMNS)

    def _tally(self, store: Store, sets: AnswerSets) -> tuple[Tally, AdaptivePlan | None]:
        """What is called for and stored; with adaptive judging, by the plan the stored verdicts give."""
        from .tally import tally

        plan = None
        if self.config.rating.adaptive is not None:  # the plan's module loads numpy and pandas: only when needed
            from .adaptive_run import adaptive_plan

            plan = adaptive_plan(self.scope, store, sets)
        return tally(self.scope, store, sets, plan), plan

    async def _judge_adaptively(self, context: RunContext, stages: tuple[str, ...]) -> None:
        """Judge batch by batch in the plan's order until every contestant is settled (adaptive.py)."""
        from .adaptive import AdaptivePlan, advance, question_order
        from .adaptive_run import adaptive_key, latest_comparable_run, previous_results
        from .leaderboard import rated_battles
        from .stream import CollectAndJudge
        from .tally import settled_questions, tally, unsettled_pairs

        scope, settings = context.scope, self.config.rating.adaptive
        store, sets, run_id, cap = context.store, context.sets, context.run_id, context.cap
        collect_all = "answers" in stages and settings.answers
        if collect_all:  # every answer first; then judging alone adapts
            await CollectAndJudge(context, collect=True, judge=False).run()
        key = adaptive_key(scope, sets)
        recorded, previous_run = store.adaptive_previous(key)
        if not recorded:  # the plan's first run fixes which scored run it compares with, for every replay
            previous_run = latest_comparable_run(scope, store)
            store.start_adaptive_plan(key, previous_run, run_id)
        previous = previous_results(scope, store, previous_run)
        plan = AdaptivePlan(question_order([q.question_id for q in scope.questions], self.config.rating.seed),
                            [c.name for c in scope.contestants[1:]])
        by_id = {q.question_id: q for q in scope.questions}
        stream = CollectAndJudge(context, collect="answers" in stages and not collect_all, judge=True,
                                 count_answers=not collect_all, passes=len(plan.order) // settings.batch + 1)
        await stream.open()
        try:
            while not plan.done and not cap.reached:
                start = plan.batches * settings.batch
                batch = [by_id[q] for q in plan.order[start : start + settings.batch]]
                await stream.stream(batch, [scope.baseline] + [c for c in scope.contestants[1:] if c.name in plan.active])
                if cap.reached:
                    break  # the games not sent are not failures to advance on; the next run resumes here
                counted = tally(scope, store, sets)
                if not advance(plan, rated_battles(scope, store, counted), settled_questions(scope, store, sets, counted),
                               scope.baseline.name, settings, self.config.rating, previous,
                               self.config.regression.score_drop, unsettled_pairs(scope, store, counted)):
                    break  # a game of this batch failed: the next run resumes here
        finally:
            await stream.close()

    def _leaderboard(self, store: Store, sets: AnswerSets, result: Result) -> Leaderboard:
        from .leaderboard import build_leaderboard
        from .savings import adaptive_summary
        from .tally import count_missing

        counted, plan = self._tally(store, sets)
        count_missing(counted, result.summary, STAGES)
        board = build_leaderboard(self.scope, store, sets, counted, plan)
        if plan is not None:
            result.summary.adaptive = adaptive_summary(self.scope, plan, board, counted)
        result.keep(board)
        result.summary.judge, result.summary.style, result.summary.energy = board.judge, board.style, board.energy_overview
        result.summary.judge_warnings, result.summary.unrated = board.warnings, board.unrated
        result.summary.judge_concerns = board.judge_concerns
        result.summary.judge_bias = board.judge_bias
        result.summary.games_without_reference = board.without_reference
        result._tally = counted
        return board

    def _write_report(self, store: Store, sets: AnswerSets, board: Leaderboard, result: Result, path: Path) -> Path:
        from .report import write_report
        from .report_data import report_data

        data = report_data(self.scope, store, result._tally, board, result.run_id, result.summary, result.regressions)
        return write_report(data, path)

    def report(self, path: Path | None = None) -> Path:
        """Write report.html from what is stored (no requests, no run lock): the same path as a run's report."""
        with self.open_store() as store:
            sets = self.answer_sets(store)
            runs = [r for r in store.runs() if r["command"] in ("run", "score")]
            run_id = runs[-1]["run_id"] if runs else "(no scored run)"
            result = Result(run_id, RunSummary(run_id, len(self.questions), [c.name for c in self.contestants]),
                            None, self.config.output_dir, _arena=self)
            board = self._leaderboard(store, sets, result)
            if runs:
                result.regressions = self._regressions(store, run_id)
            return self._write_report(store, sets, board, result, path or self.config.output_dir / "report.html")

    def stored_leaderboard(self) -> Leaderboard:
        """The leaderboard of what is stored (no requests, no run lock), with its battles and judge figures."""
        with self.open_store() as store:
            sets = self.answer_sets(store)
            result = Result("(stored)", RunSummary("(stored)", len(self.questions), []), None, self.config.output_dir)
            return self._leaderboard(store, sets, result)

    def compare(self, pairs: list[tuple[str, str]] | None = None) -> pd.DataFrame:
        """Paired comparisons of the stored verdicts' contestants (no requests, no run lock; docs/design.md
        §3.4.8): per pair (a, b) the difference a − b in score points and Elo with its 95% paired-bootstrap
        interval, the paired bootstrap's two-sided p-value, the questions in common and on how many a did
        better, the same or worse, and the sign test over them. `pairs` None: every pair, best first, with
        `p_holm`. Rated with the config's rounds, seed, bootstrap, style control and judges, as `score` rates."""
        from .leaderboard import compare_contestants

        return compare_contestants(self.stored_leaderboard(), pairs)

    def judge_diagnostics(self) -> tuple[pd.DataFrame, list[str]]:
        """The judges' diagnostics from what is stored (no requests, no run lock): one row per judge and "pooled",
        and the warnings about unreliable judges in plain words."""
        board = self.stored_leaderboard()
        return board.judges, board.judge_concerns

    def judgments_by_judge(self) -> dict[str, list]:
        """Each judge's stored verdicts on the current games (named by today's contestant names)."""
        from .tally import current_judgments, tally

        with self.open_store() as store:
            counted = tally(self.scope, store, self.answer_sets(store))
            return {j.name: current_judgments(self.scope, store, counted, [j]) for j in self.judges}

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

    def check_keys(self) -> None:
        """Every contestant's and judge's API key can be found (`arena-eval validate`); nothing is sent."""
        from .providers import make_provider

        for endpoint in [*self.config.contestants, *self.config.judges]:
            make_provider(endpoint, self.config.base_dir).api_key()

    def open_store(self) -> Store:
        """The output folder's store, for reading (no run lock is taken)."""
        db = self.config.output_dir / "arena.db"
        if not db.exists():
            raise ArenaError(f"{db}: no results yet; run this arena first")
        return Store(db)

    def answers_frame(self, store: Store | None = None) -> pd.DataFrame:
        """The current answers (one row per contestant and question) as a DataFrame."""
        import pandas as pd

        own = store is None
        store = store or self.open_store()
        try:
            sets = self.answer_sets(store)
            rows = []
            for c in self.contestants:
                for aid in sets.current(c, self.questions).values():
                    answer = store.get_answer(aid)
                    if answer is not None:
                        row = {name: getattr(answer, name) for name in _ANSWER_FRAME_COLUMNS}
                        row["contestant"] = c.name
                        rows.append(row)
            return pd.DataFrame(rows)
        finally:
            if own:
                store.close()


# Result.answers: every stored field of an answer but the bookkeeping of answer sets and of this process.
_ANSWER_FRAME_COLUMNS = [f.name for f in fields(Answer) if f.name not in ("cached", "question_digest")]


def carry_over_renames(store: Store, contestants) -> list[list[str]]:
    """Contestants renamed in the config (same configuration, new name) take over what is stored under their
    old name. A name that a different configuration used before is not a rename: its work starts fresh."""
    stored = store.stored_contestants()
    current = {c.name for c in contestants}
    renamed = []
    for c in contestants:
        if c.name in stored:
            continue
        olds = [name for name, config_id in stored.items()
                if name not in current and config_id.split("@")[0] == c.base_config_id]
        if len(olds) == 1:
            store.rename_contestant(olds[0], c.name)
            renamed.append([olds[0], c.name])
    return renamed
