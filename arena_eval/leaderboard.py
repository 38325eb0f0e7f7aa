"""The leaderboard (docs/design.md §3.4–§3.5, §5.6): the ratings of the current verdicts joined with the counts,
costs, judge diagnostics and energy, as a typed `Leaderboard`.

Everything here reads the store and returns typed results; the pipeline decides when. The leaderboard's columns
are defined once, in `records.LeaderboardRow`. What is called for and stored is tally.py; the energy table and
efficiency columns energy_tables.py; the files leaderboard_files.py; what the report shows report_data.py.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from .adaptive import AdaptivePlan
from .answer_sets import AnswerSets
from .context import RunScope
from .energy.aggregate import join_leaderboard
from .energy_tables import efficiency_table, energy_table, number_or_none
from .judge import RunJudge, battles_from_judgments, position_diagnostics
from .records import EnergyOverview, JudgeDiagnostics, Judgment, LeaderboardRow, StyleEffect, columns_of
from .style import STYLE_COLUMNS, answer_styles
from .tally import (
    Tally,
    current_games,  # noqa: F401  re-exported: tests/test_interop.py imports it from here
    current_judgments,
    games_without_reference,
)

if TYPE_CHECKING:
    from .rating.calibration import CalibrationResult
    from .rating.paired import RatingRounds
    from .store import Store


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
    # With games between contestants (pairing): the rated judges' games and unparsed games, each counted once (a
    # contestant's `games` counts such a game for both: the column's sum is not the number of games).
    rated_games: tuple[int, int] | None = None
    # rating.calibration: the prediction-powered fit with the human labels (its covariance serves paired
    # comparisons: rating.calibration.calibrated_difference), and where it disagrees with the judge alone.
    calibration: CalibrationResult | None = None
    judge_bias: list[str] = field(default_factory=list)
    # The bootstrap rounds behind `frame` (paired comparisons and ranks read them; None when nothing was rated),
    # and each question's baseline (one name, or question id → its category's baseline).
    rounds: RatingRounds | None = None
    question_baselines: str | dict[str, str] | None = None

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
    diagnostics = position_diagnostics(judgments, None if scope.by_category else baseline).set_index("model")
    overall = diagnostics.loc["*"]
    judge = JudgeDiagnostics(number_or_none(overall.consistency), number_or_none(overall.first_position_win_rate),
                             number_or_none(overall.suspicious_rate))
    rating, style, rated = config.rating, None, None
    if battles.empty:
        board = pd.DataFrame({"model": [c.name for c in scope.contestants]})
        for column in ("score", "ci_low", "ci_high", "elo", "battles", "questions"):
            board[column] = float("nan")
        board.loc[board.model == baseline, ["score", "elo"]] = [50.0, 1000.0]
    else:
        board, rated = rate_with_rounds(scope, battles)
        if rating.style_control and not scope.by_category:
            style = {name: StyleEffect(**effect) for name, effect in board.attrs["style_coefficients"].items()}
        missing = [c.name for c in scope.contestants if c.name not in set(board.model)]
        if missing:
            board = pd.concat([board, pd.DataFrame({"model": missing})], ignore_index=True)
    calibration, calibration_warnings = None, []
    if rating.calibration is not None and not battles.empty:
        calibration, calibration_warnings = calibrate_battles(scope, battles)
        board = board.merge(calibration.table()[["model", *columns_of("calibration")]], on="model", how="left")
    board["games"] = board.model.map(lambda m: per[m]["games"])
    board["unparsed_rate"] = board.model.map(lambda m: per[m]["unparsed"] / per[m]["games"] if per[m]["games"] else float("nan"))
    board["answers_missing"] = board.model.map(lambda m: per[m]["answers_missing"])
    board["games_missing"] = board.model.map(lambda m: per[m]["games_missing"])
    if not scope.by_category:  # with a baseline per category, every contestant plays games somewhere
        board.loc[board.model == baseline, ["unparsed_rate", "games_missing"]] = [float("nan"), 0]
    answer_stats = {m: store.answer_stats(list(ids.values())) for m, ids in tally.answer_ids.items()}
    games_of: dict[str, list[str]] = defaultdict(list)
    shared_of: dict[str, list[str]] = defaultdict(list)  # games between contestants (pairing): half each
    for game_id, contestant in tally.judged_game_ids:
        if game_id in tally.opponents:
            shared_of[contestant].append(game_id)
            shared_of[tally.opponents[game_id]].append(game_id)
        else:
            games_of[contestant].append(game_id)
    judge_stats = {m: _judge_cost(store, games_of[m], shared_of[m]) for m in per}
    board["avg_input_tokens"] = board.model.map(lambda m: answer_stats[m]["avg_input_tokens"])
    board["avg_output_tokens"] = board.model.map(lambda m: answer_stats[m]["avg_output_tokens"])
    board["answer_cost"] = board.model.map(lambda m: answer_stats[m]["cost"])
    board["judge_cost"] = board.model.map(lambda m: judge_stats[m] if games_of[m] or shared_of[m] else None)
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
    # (a contestant rated through games with other contestants only (pairing) is rated too)
    rated_names = set() if battles.empty else set(battles.model_b) | (set(battles.model_a) if tally.opponents else set())
    unrated = [c.name for c in scope.contestants[1:] if per[c.name]["games"] and c.name not in rated_names]
    judges, concerns = judge_table(scope, store, by_judge, board, per_judge)
    return Leaderboard(frame, rows, battles, diagnostics.reset_index(), energy, judge, overview, style, per_judge,
                       unparsed_warnings(scope, by_judge) + calibration_warnings, unrated, judges, concerns,
                       games_without_reference(scope, tally),
                       (len(judgments), sum(j.verdict is None for j in judgments)) if tally.opponents else None,
                       calibration, judge_bias(frame) if calibration is not None else [],
                       rated, question_baselines(scope, battles))


def compare_contestants(board: Leaderboard, pairs: list[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Paired comparisons of a run's contestants (§3.4.8), from the very rounds behind `board`'s intervals: one
    row per pair, or every pair of rated contestants best first with `p_holm` when `pairs` is None. An unknown
    contestant, one compared with itself, or fewer than 2 questions in common is an ArenaError."""
    from .errors import ArenaError
    from .rating.compare import compare_rated
    from .rating.paired import question_points

    if board.rounds is None or board.battles.empty:
        raise ArenaError("no parsed verdict is stored yet, so there is nothing to compare; run `arena-eval run` "
                         "with this config first")
    if len(board.rounds.rounds) == 0:
        raise ArenaError("rating.rounds is 0: a paired comparison needs bootstrap rounds (set rating.rounds, "
                         "e.g. 1000)")
    points = question_points(board.battles, board.question_baselines or "")
    try:
        table = compare_rated(board.frame.drop_duplicates("model"), board.rounds, points, pairs)
    except ValueError as exc:
        raise ArenaError(str(exc)) from None
    if board.calibration is not None:
        table = with_calibrated_differences(table, board.calibration)
    return table


def with_calibrated_differences(table: pd.DataFrame, calibration: CalibrationResult) -> pd.DataFrame:
    """`compare`'s table with rating.calibration on (§3.4.7): per pair, the difference of the calibrated scores with
    its paired 95% interval and p-value (rating.calibration.calibrated_difference, the delta method on the fit's
    per-question covariance), Holm-corrected like `p_holm` when the table has it. NaN for a pair where either side
    has no calibrated score."""
    from .rating.calibration import calibrated_difference
    from .rating.paired import holm

    figures = [calibrated_difference(calibration, a, b) for a, b in zip(table.a, table.b)]
    table = table.assign(**{name: [f[i] for f in figures] for i, name in enumerate(
        ("calibrated_difference", "calibrated_ci_low", "calibrated_ci_high", "calibrated_p"))})
    if "p_holm" in table:
        table["calibrated_p_holm"] = holm(table.calibrated_p.to_numpy())
    return table


def _judge_cost(store: Store, own: list[str], shared: list[str]) -> float | None:
    """What judging a contestant cost: its games against the baseline, and half of each game it played against
    another contestant (so that the column still adds up to what the judges cost)."""
    cost = store.judgment_stats(own)["cost"] if own else 0.0
    if shared and cost is not None:
        half = store.judgment_stats(shared)["cost"]
        cost = None if half is None else cost + half / 2
    return cost


def calibrate_battles(scope: RunScope, battles: pd.DataFrame) -> tuple[CalibrationResult, list[str]]:
    """The rated battles calibrated with the human labels of `rating.calibration` (§3.4.7), and what to say about
    the labels that could not be used (pairs never judged, contestants with too few labels)."""
    from .labels import read_labels
    from .rating.calibration import calibrate, check_labels

    settings = scope.config.rating.calibration
    assert settings is not None
    path = scope.config.resolve(settings.labels)
    labels = read_labels(path)
    check_labels(labels, (q.question_id for q in scope.questions), str(path), scope.config.name)
    result = calibrate(battles, labels, scope.baseline.name, min_labels=settings.min_labels, source=str(path))
    notes = []
    if result.unmatched_count:
        notes.append(f"calibration: {result.unmatched_count} of {len(labels)} label(s) in {path} name a pair no judge "
                     f"judged (left out), e.g. {'; '.join(result.unmatched)}")
    if result.uncalibrated:
        counts = ", ".join(f"{m} ({result.labels.get(m, 0)})" for m in result.uncalibrated)
        notes.append(f"calibration: fewer than {result.min_labels} labelled judged pairs for {counts}: no "
                     "calibrated score for them; label more of their pairs")
    return result, notes


def judge_bias(frame: pd.DataFrame) -> list[str]:
    """A sentence per contestant whose calibrated interval and judge-only interval do not overlap: the judge
    over-rates (or under-rates) it by about the difference of the two scores."""
    out = []
    if "calibrated_score" not in frame:
        return out
    for row in frame.drop_duplicates("model").itertuples():
        values = (row.score, row.ci_low, row.ci_high, row.calibrated_score, row.calibrated_ci_low,
                  row.calibrated_ci_high)
        if any(v is None or pd.isna(v) for v in values):
            continue
        gap = row.score - row.calibrated_score
        if row.calibrated_ci_high < row.ci_low:
            out.append(f"the judge over-rates {row.model} by ~{abs(gap):.0f} points (judge alone {row.score:.1f}, "
                       f"calibrated with human labels {row.calibrated_score:.1f})")
        elif row.calibrated_ci_low > row.ci_high:
            out.append(f"the judge under-rates {row.model} by ~{abs(gap):.0f} points (judge alone {row.score:.1f}, "
                       f"calibrated with human labels {row.calibrated_score:.1f})")
    return out


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
                              {c.name: c.model for c in scope.contestants if c.model},
                              {scope.baseline.name, *scope.baselines.values()})
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
    return rate_with_rounds(scope, battles)[0]


def rate_with_rounds(scope: RunScope, battles: pd.DataFrame) -> tuple[pd.DataFrame, RatingRounds]:
    """`rate`, and the bootstrap rounds behind it (§3.4.8: paired comparisons, ranks)."""
    from .rating.leaderboard import category_leaderboard_with_rounds, leaderboard_with_rounds

    rating = scope.config.rating
    style = list(STYLE_COLUMNS) if rating.style_control else None
    if not scope.by_category:
        return leaderboard_with_rounds(battles, scope.baseline.name, rounds=rating.rounds, seed=rating.seed,
                                       by=rating.bootstrap, style=style)
    battles = battles.assign(category=battles.question_id.map(lambda q: _category_key(scope.category_of(q))))
    baselines = {_category_key(c): scope.config.baseline_for_category(c) for c in {scope.category_of(q) for q in
                                                                                     battles.question_id.unique()}}
    return category_leaderboard_with_rounds(battles, baselines, rounds=rating.rounds, seed=rating.seed,
                                            by=rating.bootstrap, style=style)


def question_baselines(scope: RunScope, battles: pd.DataFrame) -> str | dict[str, str]:
    """Each question's baseline: the run's one baseline, or with a baseline per category its category's."""
    if not scope.by_category:
        return scope.baseline.name
    return {str(q): scope.baseline_for(q) for q in battles.question_id.unique()}


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
