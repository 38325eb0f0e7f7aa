"""The leaderboard stage: what the current configuration calls for and how much of it is stored, the ratings of
the current verdicts joined with energy, the files, and the data the report shows (docs/design.md §3.4–§3.5, §5.6).

Everything here reads the store and returns typed results (`Tally`, `Leaderboard`, `ReportData`); the
pipeline decides when, and the report renders what it is given. The leaderboard's columns are defined once, in
`records.LeaderboardRow`.
"""

from __future__ import annotations

import functools

import json
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .adaptive import AdaptivePlan, Previous, question_order, replay
from .answer_sets import AnswerSets
from .config import ContestantConfig, RunConfig, VerdictWeights
from .energy import summarise_runs
from .energy.aggregate import energy_summary, join_leaderboard
from .energy.ecologits_estimate import estimate_api_batch
from .efficiency import (PEAK_TFLOPS, GGUFError, GGUFWarning, efficiency_of, model_flops_utilisation,
                         read_gguf_parameters, request_rows)
from .errors import ArenaError
from .judge import RunJudge, battle_outcome, battles_from_judgments, games_for, position_diagnostics
from .questions import QuestionSet
from .records import AdaptiveSummary, EnergyOverview, Game, JudgeDiagnostics, Judgment, LeaderboardRow, RunSummary, StyleEffect, answer_turns
from .store import Store
from .style import STYLE_COLUMNS, answer_styles


@dataclass(frozen=True)
class RunScope:
    """What one output folder's run is about: its config, its contestants (the baseline first), its questions
    and its judges."""

    config: RunConfig
    contestants: list[ContestantConfig]
    questions: QuestionSet
    judges: list[RunJudge]

    @property
    def baseline(self) -> ContestantConfig:
        return self.contestants[0]

    @functools.cached_property
    def _categories(self) -> dict[str, str | None]:
        """question_id → category, where a category has a baseline or judge prompts of its own (else empty)."""
        if not (self.config.category_baselines or any(j.by_category for j in self.judges)):
            return {}
        return {q.question_id: q.category for q in self.questions}

    @property
    def by_category(self) -> bool:
        """Whether the categories have baselines of their own (`baseline:` as a mapping)."""
        return bool(self.config.category_baselines)

    def category_of(self, question_id: str) -> str | None:
        return self._categories.get(question_id)

    def baseline_for(self, question_id: str) -> str:
        """The name of the question's baseline: its category's own, where the config gives one."""
        if not self.config.category_baselines:
            return self.contestants[0].name
        return self.config.baseline_for_category(self._categories.get(question_id)) or self.contestants[0].name

    @property
    def baselines(self) -> dict[str, str]:
        """category → baseline name (`default` included) when the categories have their own; else empty."""
        return dict(self.config.category_baselines)

    @functools.cached_property
    def conversations(self) -> frozenset[str]:
        """The ids of the questions with several user turns (usually none)."""
        return frozenset(q.question_id for q in self.questions if q.multi_turn)

    @property
    def rated_judges(self) -> list[RunJudge]:
        """The judges whose verdicts the rating uses: every one (`rating.judges: pooled`), or the one named."""
        chosen = self.config.rating.judges
        return self.judges if chosen == "pooled" else [j for j in self.judges if j.name == chosen]


# --- what is called for, and what is stored ---------------------------------------------------------------------


@dataclass
class Tally:
    answer_ids: dict[str, dict[str, str]]  # contestant → question_id → current answer_id
    judged_game_ids: list[tuple[str, str]]  # (game_id, contestant) of the games judged so far, by any judge
    # contestant → answers_missing, games_missing (any judge), games and unparsed (the rated judges')
    per_contestant: dict[str, dict[str, int]]
    games_missing: int
    judge_of: dict[str, str] = field(default_factory=dict)  # game_id → the judge's name


def current_games(scope: RunScope, answer_ids: dict[str, dict[str, str]], judge: RunJudge) -> list[Game]:
    """Every game the current answers call for, for one judge: two per contestant and question both it and the
    question's baseline answered (with a baseline per category, a contestant meets each category's own, and a
    category's baseline is a contestant on the other categories)."""
    references = answer_ids.get(judge.reference_contestant, {}) if judge.reference_contestant else {}
    games = []
    if not scope.by_category:
        base_name = scope.baseline.name
        base_ids = answer_ids[base_name]
        for c in scope.contestants[1:]:
            for qid, aid in answer_ids[c.name].items():
                if qid in base_ids:
                    games += games_for(judge.config_id, qid, c.name, base_name, aid, base_ids[qid],
                                       references.get(qid), judge.game_variant(qid, scope))
        return games
    for c in scope.contestants:
        for qid, aid in answer_ids[c.name].items():
            base_name = scope.baseline_for(qid)
            base_id = answer_ids[base_name].get(qid)
            if base_name != c.name and base_id is not None:
                games += games_for(judge.config_id, qid, c.name, base_name, aid, base_id, references.get(qid),
                                   judge.game_variant(qid, scope))
    return games


def games_without_reference(scope: RunScope, tally: Tally) -> dict[str, int]:
    """judge name → how many of its current games have no reference to show (the question has none, or the
    reference contestant has no answer to it), for judges that take one; they are judged without it."""
    out = {}
    for judge in scope.judges:
        if judge.config.reference == "none":
            continue
        if judge.config.reference == "question":
            has = {q.question_id for q in scope.questions if q.reference}
        else:
            has = set(tally.answer_ids.get(judge.reference_contestant, {}))
        out[judge.name] = sum(1 for g in current_games(scope, tally.answer_ids, judge) if g.question_id not in has)
    return out


def tally(scope: RunScope, store: Store, sets: AnswerSets, plan: AdaptivePlan | None = None) -> Tally:
    """What the current configuration calls for (every game by every judge; with adaptive judging, only the games
    its plan calls for), and how much of it is stored."""
    ids = {c.name: sets.current(c, scope.questions) for c in scope.contestants}
    n = len(scope.questions)
    per = {c.name: {"answers_missing": n - len(ids[c.name]), "games_missing": 0, "games": 0, "unparsed": 0}
           for c in scope.contestants}
    rated = {j.name for j in scope.rated_judges}
    planned = {c.name: plan.questions(c.name) for c in scope.contestants[1:]} if plan is not None else None
    if planned is not None and not scope.config.rating.adaptive.answers:  # only the planned answers are called for
        needed = {scope.baseline.name: set().union(*planned.values()), **planned}
        for c in scope.contestants:
            per[c.name]["answers_missing"] = len(needed[c.name] - set(ids[c.name]))
    judged, judge_of = [], {}
    for judge in scope.judges:
        verdicts = store.verdicts(judge.config_id)
        for g in current_games(scope, ids, judge):
            if planned is not None and g.question_id not in planned[g.contestant]:
                continue  # adaptive judging settled this contestant before this question
            row = per[g.contestant]
            if g.game_id in verdicts:
                judged.append((g.game_id, g.contestant))
                judge_of[g.game_id] = judge.name
                if judge.name in rated:
                    row["games"] += 1
                    row["unparsed"] += verdicts[g.game_id] is None
            else:
                row["games_missing"] += 1
    # Games that cannot even be posed (a missing answer on either side) are missing too.
    questions = ([len(planned[c.name]) for c in scope.contestants[1:]] if planned is not None
                 else [n] * (len(scope.contestants) - 1))
    expected = 2 * sum(questions) * len(scope.judges)
    return Tally(ids, judged, per, expected - len(judged), judge_of)


def settled_questions(scope: RunScope, store: Store, sets: AnswerSets, tally: Tally) -> dict[str, set[str]]:
    """contestant → the questions whose games (by every judge) are all stored or failed, or cannot be posed
    because an answer on either side failed: adaptive judging may move past them."""
    # A game whose judging failed settles its question too (it counts as missing; the next run asks it again):
    # one failing game must not hold every contestant's plan back.
    stored = {game_id for game_id, _ in tally.judged_game_ids} | store.failed_games()
    failed = store.failed_answers()

    def asked(contestant) -> set[str]:  # answered, or asked and failed: an answer never asked for settles nothing
        set_id = sets.set_id(contestant)
        return set(tally.answer_ids[contestant.name]) | {q for s, q in failed if s == set_id}

    baseline = asked(scope.baseline)
    out: dict[str, set[str]] = {}
    for c in scope.contestants[1:]:
        pending: set[str] = set()
        for judge in scope.judges:
            pending |= {g.question_id for g in current_games(scope, tally.answer_ids, judge)
                        if g.contestant == c.name and g.game_id not in stored}
        out[c.name] = (baseline & asked(c)) - pending
    return out


def adaptive_key(scope: RunScope, sets: AnswerSets) -> str:
    """Identifies an adaptive plan: its settings, seed, judges, the answer sets and the questions."""
    from .config import stable_hash

    settings = scope.config.rating.adaptive
    return stable_hash({"settings": settings.model_dump(mode="json"), "seed": scope.config.rating.seed,
                        "bootstrap": scope.config.rating.bootstrap, "rounds": scope.config.rating.rounds,
                        "judges": sorted(j.config_id for j in scope.rated_judges),
                        "sets": [sets.set_id(c) for c in scope.contestants],
                        "questions": sorted(q.question_id for q in scope.questions)})


def previous_results(scope: RunScope, store: Store, run_id: str | None) -> dict[str, Previous]:
    """Each contestant's score and interval in the scored run `run_id` (the one an adaptive plan compares with)."""
    if not run_id:
        return {}
    return {row["model"]: Previous(row["score"], row["ci_low"], row["ci_high"])
            for row in store.leaderboard_history() if row["run_id"] == run_id
            and None not in (row.get("score"), row.get("ci_low"), row.get("ci_high"))}


def latest_comparable_run(scope: RunScope, store: Store) -> str | None:
    """The latest scored run with the same baseline and the same rated judges (regressions compare with it)."""
    judges = ",".join(sorted(j.config_id for j in scope.rated_judges))
    latest = None
    for row in store.leaderboard_history():
        if row.get("is_baseline") and row["model"] == scope.baseline.name and row.get("judges") in (None, judges):
            latest = row["run_id"]
    return latest


def adaptive_plan(scope: RunScope, store: Store, sets: AnswerSets) -> AdaptivePlan:
    """The plan adaptive judging follows, replayed from the stored verdicts (adaptive.replay), comparing with the
    previous run the plan was started against (recorded by the run), or else the latest comparable one."""
    settings = scope.config.rating.adaptive
    full = tally(scope, store, sets)
    battles = rated_battles(scope, store, full)
    # The previous run the plan compares with is the one its judging run recorded when it started; a plan that
    # no judging run started (adaptive settings added to a finished run, then scored) compares with none, so
    # that every later read replays the same plan.
    _, previous_run = store.adaptive_previous(adaptive_key(scope, sets))
    previous = previous_results(scope, store, previous_run)
    order = question_order([q.question_id for q in scope.questions], scope.config.rating.seed)
    return replay(order, [c.name for c in scope.contestants[1:]], battles, settled_questions(scope, store, sets, full),
                  scope.baseline.name, settings, scope.config.rating, previous, scope.config.regression.score_drop)


def count_missing(tally: Tally, summary: RunSummary, stages: tuple[str, ...]) -> None:
    if {"answers", "judge", "score"} & set(stages):
        summary.answers_missing = sum(r["answers_missing"] for r in tally.per_contestant.values())
    summary.games_missing = tally.games_missing if ("judge" in stages or "score" in stages) else 0


def current_judgments(scope: RunScope, store: Store, tally: Tally,
                      judges: list[RunJudge] | None = None) -> list[Judgment]:
    """The stored verdicts of the current games by `judges` (default: the rated ones), named by today's contestant
    names (a contestant renamed since, with the same configuration, keeps its verdicts)."""
    wanted = dict(tally.judged_game_ids)
    judgments = []
    for judge in judges if judges is not None else scope.rated_judges:
        judgments += [j for j in store.judgments(judge.config_id) if j.game_id in wanted]
    for j in judgments:
        j.contestant, j.baseline = wanted[j.game_id], scope.baseline_for(j.question_id)
        # A game's id does not say which side is the baseline: a stored verdict reused after the baseline changed
        # (another baseline, or a category's) has the old game number. Today's is where today's baseline sits.
        j.game = 1 if j.answer_a_id == tally.answer_ids[j.baseline].get(j.question_id) else 2
    return judgments


# --- the leaderboard ----------------------------------------------------------------------------------------------


@dataclass
class Leaderboard:
    """A rated leaderboard and what went into it.

    `frame` is the board as written to leaderboard.csv/.json/.parquet (the columns this run produced, each a
    LeaderboardRow field); `rows` are the same rows typed. `battles` are the rated battles, `diagnostics` the
    judge's per contestant (and "*" overall), `energy` the per-configuration energy table with the judge's line.
    """

    frame: pd.DataFrame
    rows: list[LeaderboardRow]
    battles: pd.DataFrame
    diagnostics: pd.DataFrame
    energy: pd.DataFrame
    judge: JudgeDiagnostics
    energy_overview: EnergyOverview
    style: dict[str, StyleEffect] | None = None
    # With several judges: each judge's own rating (the rating columns), beside the pooled one in `frame`.
    per_judge: dict[str, pd.DataFrame] = field(default_factory=dict)
    # Judges whose share of unparsed games is above their max_unparsed_rate: a sentence each.
    warnings: list[str] = field(default_factory=list)
    # Contestants with judged games but not one parsed verdict: they have no score (a run is then incomplete).
    unrated: list[str] = field(default_factory=list)
    # One row per judge and "pooled" (judge_diagnostics.judge_diagnostics), and its warnings in plain words.
    judges: pd.DataFrame | None = None
    judge_concerns: list[str] = field(default_factory=list)
    # Judges that take a reference: how many of their games had none to show (judged without it).
    without_reference: dict[str, int] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return list(self.frame.columns)


def build_leaderboard(scope: RunScope, store: Store, sets: AnswerSets, tally: Tally,
                      plan: AdaptivePlan | None = None) -> Leaderboard:
    """Rate the current verdicts and join them with the counts, costs, judge diagnostics and energy."""
    config = scope.config
    baseline = scope.baseline.name
    per = tally.per_contestant
    by_judge = {j.name: current_judgments(scope, store, tally, [j]) for j in scope.judges}
    judgments = [x for j in scope.rated_judges for x in by_judge[j.name]]
    every = [x for j in scope.judges for x in by_judge[j.name]]
    styles = answer_styles(every, store.answer_rows) if config.rating.style_control else None
    battles = _battles(scope.rated_judges, by_judge, styles)
    diagnostics = position_diagnostics(judgments).set_index("model")
    overall = diagnostics.loc["*"]
    judge = JudgeDiagnostics(_number(overall.consistency), _number(overall.first_position_win_rate),
                             _number(overall.suspicious_rate))
    rating, style = config.rating, None
    if battles.empty:
        board = pd.DataFrame({"model": [c.name for c in scope.contestants]})
        for column in ("score", "ci_low", "ci_high", "elo", "battles", "questions"):
            board[column] = float("nan")
        board.loc[board.model == baseline, ["score", "elo"]] = [50.0, 1000.0]
    else:
        board = rate(scope, battles)
        if rating.style_control and not scope.by_category:
            style = {name: StyleEffect(**effect) for name, effect in board.attrs["style_coefficients"].items()}
        missing = [c.name for c in scope.contestants if c.name not in set(board.model)]
        if missing:
            board = pd.concat([board, pd.DataFrame({"model": missing})], ignore_index=True)
    board["games"] = board.model.map(lambda m: per[m]["games"])
    board["unparsed_rate"] = board.model.map(lambda m: per[m]["unparsed"] / per[m]["games"] if per[m]["games"] else float("nan"))
    board["answers_missing"] = board.model.map(lambda m: per[m]["answers_missing"])
    board["games_missing"] = board.model.map(lambda m: per[m]["games_missing"])
    if not scope.by_category:  # with a baseline per category, every contestant plays games somewhere
        board.loc[board.model == baseline, ["unparsed_rate", "games_missing"]] = [float("nan"), 0]
    answer_stats = {m: store.answer_stats(list(ids.values())) for m, ids in tally.answer_ids.items()}
    games_of: dict[str, list[str]] = defaultdict(list)
    for game_id, contestant in tally.judged_game_ids:
        games_of[contestant].append(game_id)
    judge_stats = {m: store.judgment_stats(games_of[m]) for m in per}
    board["avg_input_tokens"] = board.model.map(lambda m: answer_stats[m]["avg_input_tokens"])
    board["avg_output_tokens"] = board.model.map(lambda m: answer_stats[m]["avg_output_tokens"])
    board["answer_cost"] = board.model.map(lambda m: answer_stats[m]["cost"])
    board["judge_cost"] = board.model.map(lambda m: judge_stats[m]["cost"] if games_of[m] else None)
    for column in ("consistency", "first_position_win_rate", "suspicious_rate"):
        board[column] = board.model.map(diagnostics[column])
    board["is_baseline"] = board.model == baseline
    if scope.by_category:
        scores = board.attrs.get("category_scores", {})
        board["category_scores"] = board.model.map(lambda m: scores.get(m) or None)
    if plan is not None:  # adaptive judging: say how far each contestant was judged
        board["judged_questions"] = board.model.map(lambda m: len(plan.judged_questions(m)) if m in plan.judged else None)
        board["stopped_early"] = board.model.map(lambda m: (m in plan.stopped) if m in plan.judged else None)
    board = board.merge(efficiency_table(scope, store, sets, tally), on="model", how="left")
    board = board.sort_values("score", ascending=False, na_position="last").reset_index(drop=True)
    energy, overview = energy_table(scope, store, sets, tally)
    contestants = energy[energy.role == "contestant"].drop(columns=["role"])
    frame = join_leaderboard(board, contestants, cost="wh_per_pass")
    rows = [LeaderboardRow.from_record(r) for r in frame.to_dict("records")]  # refuses a column it does not define
    per_judge = {}
    if len(scope.judges) > 1:
        for j in scope.judges:
            own = _battles([j], by_judge, styles)
            per_judge[j.name] = rate(scope, own) if not own.empty else pd.DataFrame(columns=["model"])
    unrated = [c.name for c in scope.contestants[1:]
               if per[c.name]["games"] and c.name not in set(battles.model_b)]
    judges, concerns = judge_table(scope, store, by_judge, board, per_judge)
    return Leaderboard(frame, rows, battles, diagnostics.reset_index(), energy, judge, overview, style, per_judge,
                       unparsed_warnings(scope, by_judge), unrated, judges, concerns,
                       games_without_reference(scope, tally))


def judge_table(scope: RunScope, store: Store, by_judge: dict[str, list[Judgment]], board: pd.DataFrame,
                per_judge: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, list[str]]:
    """The judges' diagnostics (bias, length, agreement with each other, self-preference) and their warnings."""
    from .judge_diagnostics import judge_diagnostics, warnings  # here: scikit-learn is slow to import

    ids = sorted({a for games in by_judge.values() for j in games for a in (j.answer_a_id, j.answer_b_id)})
    tokens = {answer_id: count for answer_id, count in store.answer_rows(ids, ("answer_id", "output_tokens"))}
    pooled = dict(zip(board.model, board.score))
    scores = {"pooled": pooled}
    for j in scope.judges:
        own = per_judge.get(j.name)
        scores[j.name] = dict(zip(own.model, own.score)) if own is not None and "score" in own else pooled
    frame = judge_diagnostics(by_judge, tokens, scores, {j.name: {j.config.model} for j in scope.judges if j.config.model},
                              {c.name: c.model for c in scope.contestants if c.model})
    # What each judge spent: tokens and cost over its games (cost unknown as soon as one game's is).
    spent = {name: (sum(g.input_tokens or 0 for g in games), sum(g.output_tokens or 0 for g in games),
                    None if any(g.cost is None for g in games) else sum(g.cost for g in games))
             for name, games in by_judge.items()}
    totals = list(spent.values())
    spent["pooled"] = (sum(t[0] for t in totals), sum(t[1] for t in totals),
                       None if any(t[2] is None for t in totals) else sum(t[2] for t in totals))
    frame["input_tokens"] = frame.judge.map(lambda j: spent[j][0])
    frame["output_tokens"] = frame.judge.map(lambda j: spent[j][1])
    frame["cost"] = frame.judge.map(lambda j: spent[j][2])
    return frame, warnings(frame)


def rated_battles(scope: RunScope, store: Store, tally: Tally) -> pd.DataFrame:
    """The rated judges' battles on the counted games, pooled, with the style features when the rating uses
    them: the battles an adaptive plan refits after each batch, as the leaderboard will."""
    judgments = current_judgments(scope, store, tally)
    by_judge = {j.name: [x for x in judgments if x.judge_config_id == j.config_id] for j in scope.rated_judges}
    styles = answer_styles(judgments, store.answer_rows) if scope.config.rating.style_control else None
    return _battles(scope.rated_judges, by_judge, styles)


def rate(scope: RunScope, battles: pd.DataFrame) -> pd.DataFrame:
    """The rating of `battles` with the run's settings: against the baseline, or with a baseline per category
    each category against its own and the overall score their question-weighted mean (§3.4.6)."""
    from .rating import compute_category_leaderboard, compute_leaderboard

    rating = scope.config.rating
    style = list(STYLE_COLUMNS) if rating.style_control else None
    if not scope.by_category:
        return compute_leaderboard(battles, scope.baseline.name, rounds=rating.rounds, seed=rating.seed,
                                   by=rating.bootstrap, style=style)
    battles = battles.assign(category=battles.question_id.map(lambda q: _category_key(scope.category_of(q))))
    baselines = {_category_key(c): scope.config.baseline_for_category(c) for c in {scope.category_of(q) for q in
                                                                                     battles.question_id.unique()}}
    return compute_category_leaderboard(battles, baselines, rounds=rating.rounds, seed=rating.seed,
                                        by=rating.bootstrap, style=style)


def _category_key(category: str | None) -> str:
    return "(no category)" if category is None else category


def _battles(judges: list[RunJudge], by_judge: dict[str, list[Judgment]], styles) -> pd.DataFrame:
    """The battles of `judges`' verdicts, each judge's with its own weights, in one frame (pooled)."""
    frames = [battles_from_judgments(by_judge[j.name], j.config.weights, styles) for j in judges]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def unparsed_warnings(scope: RunScope, by_judge: dict[str, list[Judgment]]) -> list[str]:
    """A judge whose share of unparsed games is above its `max_unparsed_rate` fails quietly: say so, and why it
    usually happens."""
    out = []
    for j in scope.judges:
        games = by_judge[j.name]
        unparsed = sum(g.verdict is None for g in games)
        if games and unparsed / len(games) > j.config.max_unparsed_rate:
            out.append(
                f"judge {j.name!r}: {unparsed} of {len(games)} games ({100 * unparsed / len(games):.0f}%) have no "
                f"verdict (limit {100 * j.config.max_unparsed_rate:.0f}%, judge.max_unparsed_rate). Likely causes: "
                f"max_tokens ({j.config.max_tokens}) too small for the judge to reach its label; a model too weak "
                "to follow the label format; constrain_labels off for a small local judge. The replies are in "
                "judgments.judge_text and in the report"
            )
    return out


def efficiency_table(scope: RunScope, store: Store, sets: AnswerSets, tally: Tally) -> pd.DataFrame:
    """One row per contestant: the efficiency columns (records.LeaderboardRow, group "efficiency"; §3.5.7)."""
    windows = store.energy_windows(role="contestant")
    rows, sizes = [], {}
    for c in scope.contestants:
        set_id = sets.set_id(c)
        ids = list(tally.answer_ids[c.name].values())
        answers = store.answer_rows(ids, ("latency_s", "ttft_s", "output_tokens", "tokens_estimated", "turns",
                                          "created_at", "run_id"))
        window_s, window_tokens = _collection_window(c, set_id, windows, answers)
        figures = efficiency_of(request_rows(a[:5] for a in answers), window_s, window_tokens)
        params, size, peak = _model_facts(c, scope.config.base_dir)
        if c.is_local:
            figures.peak_memory_gb, figures.memory_source = store.latest_resources(set_id)
            figures.mfu = model_flops_utilisation(params, figures.throughput_tokens_per_s, peak)
        figures.model_size_gb, sizes[c.name] = size, size
        rows.append({"model": c.name, **vars(figures), "params_b": params / 1e9 if params else None,
                     "peak_tflops": peak})
    frame = pd.DataFrame(rows)
    reference = scope.config.efficiency.reference
    base = sizes.get(reference) if reference else None
    frame["compression_ratio"] = frame.model_size_gb.map(lambda s: s / base if s and base else None)
    return frame


def _collection_window(c: ContestantConfig, set_id: str, windows: pd.DataFrame,
                       answers: list[tuple]) -> tuple[float | None, int | None]:
    """(seconds, output tokens) of the contestant's collection: its energy windows where it is local (the time it
    held its device), else the span of its latest collecting run, from the first request sent to the last
    answer stored."""
    if c.is_local and not windows.empty:
        own = windows[windows.config_id == set_id]
        if not own.empty and own.duration_s.notna().all():
            return float(own.duration_s.sum()), int(own.output_tokens.fillna(0).sum())
    latest: dict[str, float] = {}
    for *_, created, run in answers:
        if run is not None and created is not None:
            latest[run] = max(latest.get(run, 0.0), created)
    if not latest:
        return None, None
    run = max(latest, key=latest.get)
    batch = [a for a in answers if a[6] == run]
    started = min(a[5] - (a[0] or 0.0) for a in batch)
    span = max(a[5] for a in batch) - started
    tokens = [a[2] for a in batch]
    return (span, sum(tokens)) if span > 0 and None not in tokens else (None, None)


def _model_facts(c: ContestantConfig, base_dir: str) -> tuple[float | None, float | None, float | None]:
    """(parameters, weights' size in GB, peak TFLOP/s) of a contestant: configured, else read from its GGUF model
    file; None where neither tells."""
    params = c.params_b * 1e9 if c.params_b else None
    size = c.model_size_gb
    if c.model_path and (params is None or size is None):
        from .providers.llama_cpp import resolve_model_path

        try:
            path = resolve_model_path(c.model_path, base_dir)
        except ArenaError:
            path = None
        if path is not None and params is None:
            try:
                params = float(read_gguf_parameters(path))
            except (GGUFError, OSError) as exc:  # a damaged or crafted header: empty columns, a warning naming the file
                warnings.warn(GGUFWarning(f"contestant {c.name!r}: {exc}; its parameter count and MFU are left empty "
                                          "(set params_b in its config to give them)"), stacklevel=2)
        if path is not None and size is None:
            try:
                size = path.stat().st_size / 1e9
            except OSError:
                size = None
    peak = c.peak_tflops or (PEAK_TFLOPS.get(c.accelerator) if c.accelerator else None)
    return params, size, peak


def energy_table(scope: RunScope, store: Store, sets: AnswerSets, tally: Tally) -> tuple[pd.DataFrame, EnergyOverview]:
    """Energy per contestant configuration (measured windows, API estimates, CodeCarbon imports) and the
    judge's own line, aggregated as sums over sums; and the overview (methods, idle power, judge, carbon).
    Idle power goes to the overview, not into any row."""
    cfg = scope.config.energy
    by_set = {sets.set_id(c): c.name for c in scope.contestants}  # a window records the answer set it measured
    judge_lines = judge_energy_lines(scope)
    windows = store.energy_windows()
    rows: list[dict] = []
    for w in windows.to_dict("records"):
        if w["role"] == "contestant" and w["config_id"] in by_set:
            rows.append({**w, "contestant": by_set[w["config_id"]]})
        elif w["role"] == "judge" and w["config_id"] in judge_lines:
            rows.append({**w, "contestant": judge_lines[w["config_id"]]})
    for c in scope.contestants:
        if cfg.estimate_api and not c.is_local and (c.base_url is None or c.provider == "litellm"):
            answers = store.answer_rows(list(tally.answer_ids[c.name].values()), ("output_tokens", "latency_s"))
            if answers:
                reading = estimate_api_batch(c.model or "", [a[0] or 0 for a in answers], [a[1] for a in answers], c.provider)
                rows.append({**reading.to_dict(), "role": "contestant", "contestant": c.name,
                             "output_tokens": sum(a[0] or 0 for a in answers), "requests": len(answers)})
    intensity, intensity_source = cfg.carbon_intensity()
    columns = ["role", "contestant", "energy_source", "tags", "method", "is_estimated", "energy_wh", "wh_per_pass"]
    if rows:
        frame = energy_summary(pd.DataFrame(rows), by=("role", "contestant"), questions=len(scope.questions),
                               g_co2_per_kwh=intensity, pue=cfg.pue, price_per_kwh=cfg.price_per_kwh)
        frame["energy_source"], frame["tags"] = "measured", None
    else:
        frame = pd.DataFrame(columns=columns)
    imported = summarise_runs(store.energy_imports())
    imported = imported[imported.contestant.isin(set(by_set.values()))]
    if not imported.empty:
        # One imported CodeCarbon run is one pass over the question set on that configuration.
        extra = imported.rename(columns={"energy_wh": "wh_per_pass", "co2_g": "co2_g_per_pass"})
        extra["role"], extra["energy_source"], extra["method"] = "contestant", "codecarbon-import", "codecarbon"
        frame = pd.concat([frame, extra], ignore_index=True)
    idle = windows[windows.role == "idle"]
    idle_w = (idle.energy_j.sum() / idle.duration_s.sum()) if len(idle) and idle.energy_j.notna().all() else None
    judge = frame[frame.contestant.isin(set(judge_lines.values()))]
    overview = EnergyOverview(
        methods=sorted({m for m in frame.get("method", pd.Series(dtype=str)).dropna() if m}),
        idle_power_w=_number(idle_w),
        # Every judge's energy together; unknown as soon as one judge's is.
        judge_wh=float(judge.energy_wh.sum()) if len(judge) and judge.energy_wh.notna().all() else None,
        carbon=f"{intensity:g} g CO2/kWh ({intensity_source}), PUE {cfg.pue:g}",
    )
    return frame.reset_index(drop=True), overview


def judge_energy_lines(scope: RunScope) -> dict[str, str]:
    """judge config id → the name of its line in the energy table: "(judge)", or "(judge NAME)" with several."""
    if len(scope.judges) == 1:
        return {scope.judges[0].config_id: "(judge)"}
    return {j.config_id: f"(judge {j.name})" for j in scope.judges}


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if value != value else value


# --- files ----------------------------------------------------------------------------------------------------------


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


# --- what the report shows ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GameView:
    number: int  # 1: the baseline in position A; 2: positions swapped
    verdict: str | None
    judged: bool
    reasoning: str | None
    outcome: str | None  # the verdict read from the contestant's side: "better", "clearly worse", "tie", ...
    flags: str | None = None
    judge: str | None = None  # the judge's name, when the run has several


@dataclass(frozen=True)
class ContestantAnswerView:
    name: str
    answer: str | None
    games: list[GameView]
    turns: list[str] | None = None  # a conversation: the contestant's answer to each user turn
    reasoning: str | None = None  # a reasoning model's thinking, shown folded (never judged)


@dataclass(frozen=True)
class QuestionView:
    id: str
    category: str | None
    prompt: str
    baseline_answer: str | None
    contestants: list[ContestantAnswerView]
    turns: list[str] | None = None  # a conversation: every user turn (prompt is the first)
    baseline_turns: list[str] | None = None
    baseline_reasoning: str | None = None
    baseline: str | None = None  # the question's baseline, where categories have their own


@dataclass
class ReportData:
    """Everything report.html shows, computed by the stages; the report only lays it out."""

    title: str
    run_id: str
    baseline: str
    judge: str
    contestants: list[str]  # without the baseline (with a baseline per category: every contestant)
    questions: list[QuestionView]
    categories: dict[str, str | None]  # question_id → category
    leaderboard: Leaderboard
    summary: RunSummary
    regressions: list[dict] = field(default_factory=list)
    rated: str = "the judge's verdicts"  # whose verdicts the leaderboard rates, in words
    category_baselines: dict[str, str] = field(default_factory=dict)  # category → its baseline, where set
    generated: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))


def report_data(scope: RunScope, store: Store, tally: Tally, board: Leaderboard, run_id: str, summary: RunSummary,
                regressions: pd.DataFrame | None) -> ReportData:
    return ReportData(
        title=scope.config.name,
        run_id=run_id,
        baseline=scope.baseline.name,
        judge=", ".join(f"{j.config.provider}:{j.config.model or Path(j.config.model_path or '').name}"
                        + (f" ({j.name})" if len(scope.judges) > 1 else "") for j in scope.judges),
        contestants=[c.name for c in (scope.contestants if scope.by_category else scope.contestants[1:])],
        questions=question_views(scope, store, tally),
        categories={q.question_id: q.category for q in scope.questions},
        leaderboard=board,
        summary=summary,
        regressions=[] if regressions is None else regressions.to_dict("records"),
        category_baselines=scope.baselines,
        rated=("every judge's verdicts, pooled" if scope.config.rating.judges == "pooled"
               else f"judge {scope.config.rating.judges}'s verdicts only"),
    )


def question_views(scope: RunScope, store: Store, tally: Tally) -> list[QuestionView]:
    """Each question with the baseline's answer and, per contestant, its answer and both games' judgments."""
    ids = tally.answer_ids
    several = len(scope.judges) > 1
    judgments = {(judge.name, j.answer_a_id, j.answer_b_id): j for judge in scope.judges
                 for j in store.judgments(judge.config_id)}

    def stored(answer_id: str | None) -> tuple[str | None, list[str] | None, str | None]:
        """(text, each turn's text for a conversation, reasoning) of one answer; Nones when there is none."""
        answer = store.get_answer(answer_id) if answer_id is not None else None
        if answer is None:
            return None, None, None
        return answer.text, answer_turns(answer) if answer.turns else None, answer.reasoning

    out = []
    for q in scope.questions:
        base = scope.baseline_for(q.question_id)
        base_id = ids[base].get(q.question_id)
        answers = []
        for c in scope.contestants:
            if c.name == base:
                continue
            aid = ids[c.name].get(q.question_id)
            games = []
            for judge in scope.judges:
                for number, key in ((1, (base_id, aid)), (2, (aid, base_id))):
                    j = judgments.get((judge.name, *key)) if aid and base_id else None
                    games.append(GameView(number, j.verdict if j else None, j is not None, j.judge_text if j else None,
                                          contestant_outcome(j.verdict, number) if j and j.verdict else None,
                                          j.flags if j else None, judge.name if several else None))
            answer, turns, reasoning = stored(aid)
            answers.append(ContestantAnswerView(c.name, answer, games, turns, reasoning))
        base_text, base_turns, base_reasoning = stored(base_id)
        out.append(QuestionView(q.question_id, q.category, q.prompt, base_text, answers,
                                list(q.turns) if q.multi_turn else None, base_turns, base_reasoning,
                                base if scope.by_category else None))
    return out


def contestant_outcome(verdict: str, game: int) -> str:
    """A verdict read from the contestant's side (it sits in position B in game 1, A in game 2)."""
    winner, _ = battle_outcome(verdict, game, VerdictWeights())
    if winner == "tie":
        return "tie"
    strength = "clearly " if ">>" in verdict else ""
    return f"{strength}{'better' if winner == 'model_b' else 'worse'}"



def judge_spend_per_game(scope: RunScope, board: Leaderboard) -> tuple[float | None, float | None, float | None]:
    """The judges' average tokens, cost and Wh per game (None where unknown): tokens and cost over the stored
    games, Wh over the judges' measured windows (their energy over the requests they served, every window of
    every run: the windows and the games they served go together)."""
    pooled = board.judges[board.judges.judge == "pooled"].iloc[0] if board.judges is not None else None
    games = float(pooled.games) if pooled is not None and pooled.games else 0.0

    def per_game(total):
        return None if total is None or pd.isna(total) or not games else float(total) / games

    tokens = None if pooled is None else float(pooled.input_tokens) + float(pooled.output_tokens)
    lines = board.energy[board.energy.contestant.isin(set(judge_energy_lines(scope).values()))] \
        if board.energy is not None and "contestant" in board.energy else pd.DataFrame()
    wh = None
    if len(lines) == len(scope.judges) and "requests" in lines and lines.energy_wh.notna().all() \
            and (lines.get("windows_unknown", pd.Series(0, index=lines.index)).fillna(0) == 0).all() \
            and lines.requests.sum() > 0:
        wh = float(lines.energy_wh.sum()) / float(lines.requests.sum())
    return per_game(tokens), per_game(None if pooled is None else pooled.cost), wh


def _times(per_item: float | None, count: float) -> float | None:
    return None if per_item is None else per_item * count


def adaptive_summary(scope: RunScope, plan: AdaptivePlan, board: Leaderboard, tally: Tally) -> AdaptiveSummary:
    """What adaptive judging judged (the stored games its plan calls for) against a full run, and once the plan
    is done what that saved: games, and (from the judged games' averages) the judges' tokens, cost and energy.
    An unfinished plan claims no saving yet."""
    full = 2 * len(scope.judges) * len(plan.order) * len(plan.contestants)
    judged = len(tally.judged_game_ids)
    saved = full - judged if plan.done else None
    tokens, cost, wh = judge_spend_per_game(scope, board)
    return AdaptiveSummary(
        games_judged=judged, games_full=full, games_saved=saved,
        tokens_saved=_times(tokens, saved) if saved is not None else None,
        cost_saved=_times(cost, saved) if saved is not None else None,
        wh_saved=_times(wh, saved) if saved is not None else None,
        stopped={c: [len(plan.judged_questions(c)), reason] for c, reason in plan.stopped.items()},
        complete=plan.done,
    )


def pruning_savings(scope: RunScope, board: Leaderboard, dropped: int) -> dict[str, float | int | None]:
    """What a full run over a set `dropped` questions smaller saves: judge calls and answers, and (from the stored
    averages) tokens, cost and Wh, each None where a figure behind it is unknown."""
    n = len(scope.questions)
    calls = 2 * len(scope.judges) * (len(scope.contestants) - 1) * dropped
    tokens, cost, wh = judge_spend_per_game(scope, board)
    rows = board.frame.set_index("model")
    answer_tokens = answer_cost = answer_wh = 0.0
    for c in scope.contestants:
        row = rows.loc[c.name]
        answered = n - int(row.answers_missing)
        tokens_in, tokens_out = _number(row.avg_input_tokens), _number(row.avg_output_tokens)
        spent, energy = _number(row.answer_cost), _number(row.wh_per_pass)
        answer_tokens = _add(answer_tokens, None if tokens_in is None or tokens_out is None
                             else (tokens_in + tokens_out) * dropped)
        answer_cost = _add(answer_cost, None if spent is None or not answered else spent / answered * dropped)
        answer_wh = _add(answer_wh, None if energy is None else energy / n * dropped)
    return {
        "questions_dropped": dropped,
        "judge_calls_saved": calls,
        "answers_saved": len(scope.contestants) * dropped,
        "judge_tokens_saved": _times(tokens, calls),
        "answer_tokens_saved": answer_tokens,
        "cost_saved": _add(_times(cost, calls), answer_cost),
        "judge_wh_saved": _times(wh, calls),
        "answer_wh_saved": answer_wh,
    }


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b
