"""Scores: `score` (a run's stored verdicts, or arena-hard battles and judgments), `history`, `report`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer

from ..console import echo
from ..errors import ArenaError, RunInterrupted
from .common import (
    ColumnsOption,
    ConfigOption,
    Format,
    FormatOption,
    RatingDefaultsHelp,
    app,
    baseline_words,
    fail,
    load,
    parse_columns,
    rating_default,
)

# `--compat arena-hard`: arena-hard-auto's own bootstrap (battle rows resampled, 100 rounds, seed 42).
ARENA_HARD_RATING: dict[str, Any] = {"bootstrap": "rows", "rounds": 100, "seed": 42}


class Compat(str, Enum):
    arena_hard = "arena-hard"


@app.command(cls=RatingDefaultsHelp)
def score(
    config: Path | None = ConfigOption,
    battles: Path | None = typer.Option(None, "--battles", help="An arena-hard battles JSONL file to rate instead."),
    judgments: Path | None = typer.Option(None, "--judgments", help="An arena-hard model_judgment folder (or the "
                                             "folder holding it) to rate instead: <judge>/<model>.jsonl files."),
    judge: list[str] = typer.Option([], "--judge", help="With --config: rate this judge's verdicts only (default: "
                                    "every judge's, pooled). With --judgments: a judge subfolder to rate (repeatable; "
                                    "their battles are pooled; default: every judge)."),
    baseline: str | None = typer.Option(None, "--baseline", help="Baseline model (required with --battles and "
                                           "--judgments)."),
    rounds: int | None = typer.Option(None, "--rounds", min=0,
                                         help="Bootstrap rounds (default {rounds})."),
    seed: int | None = typer.Option(None, "--seed", help="Bootstrap seed (default {seed})."),
    compat: Compat | None = typer.Option(None, "--compat", help="arena-hard: resample battle rows, "
                                            f"{ARENA_HARD_RATING['rounds']} rounds, seed {ARENA_HARD_RATING['seed']}."),
    labels: Path | None = typer.Option(None, "--labels", help="With --config: human labels (JSONL, the `agreement` "
                                       "format) on some judged pairs; adds scores calibrated with them "
                                       "(rating.calibration; needs arena-eval[calibration])."),
    format: Format = FormatOption,
    columns: str | None = ColumnsOption,
) -> None:
    """Rate stored judgments (or an arena-hard battles file or judgment folder) and print the leaderboard."""
    from .render import print_leaderboard

    shown = parse_columns(columns)
    try:
        if battles is not None and judgments is not None:
            raise ArenaError("give --battles or --judgments, not both")
        if labels is not None and (battles is not None or judgments is not None):
            raise ArenaError("--labels calibrates a run's stored verdicts (--config), not a battles file or judgment "
                             "folder")
        if judge and battles is not None:
            raise ArenaError("--judge picks the judges of a run (--config) or of --judgments DIR; a battles file has none")
        if battles is None and judgments is None:
            cfg = load(config)
            updates = dict(ARENA_HARD_RATING) if compat is Compat.arena_hard else {}
            if judge:
                if len(judge) > 1:
                    raise ArenaError("--judge with --config takes one judge (the pooled rating is the default)")
                names = [j.label for j in cfg.judges]
                if judge[0] not in names:
                    raise ArenaError(f"--judge {judge[0]!r} names no judge of {cfg.name}; judges: {', '.join(names)}")
                updates["judges"] = judge[0]
            if rounds is not None:
                updates["rounds"] = rounds
            if seed is not None:
                updates["seed"] = seed
            if labels is not None:
                if cfg.category_baselines:
                    raise ArenaError("--labels: calibration with human labels needs one baseline; this config has a "
                                     "baseline per category")
                from ..config import CalibrationConfig

                kept = cfg.rating.calibration
                updates["calibration"] = CalibrationConfig(labels=str(labels.resolve()),
                                                           min_labels=kept.min_labels if kept else 10)
            cfg.rating = cfg.rating.model_copy(update=updates)
            _run_stages_config(cfg, format, shown)
            return
        source = battles if battles is not None else judgments
        if not baseline:
            option = "--battles" if battles is not None else "--judgments"
            raise ArenaError(f"{option} needs --baseline NAME (the model every score is relative to)")
        from ..interop import read_battles, read_judgments
        from ..rating import compute_leaderboard

        assert source is not None  # one of --battles and --judgments is given here
        if battles is not None:
            frame, title = read_battles(battles), battles.name
        else:
            frame = read_judgments(source, judge, baseline=baseline)
            title = f"{source.name} (judges {', '.join(dict.fromkeys(frame['judge']))})"
        settings: dict[str, Any] = ARENA_HARD_RATING if compat is Compat.arena_hard else {
            name: rating_default(name) for name in ("bootstrap", "rounds", "seed")}
        try:
            board = compute_leaderboard(frame, baseline, by=settings["bootstrap"],
                                        rounds=rounds if rounds is not None else settings["rounds"],
                                        seed=seed if seed is not None else settings["seed"])
        except ValueError as exc:
            raise ArenaError(f"{source}: {exc}") from None
    except ArenaError as exc:
        fail(exc)
    print_leaderboard(board, format, title=f"{title}: score vs baseline {baseline} (95% CI)", columns=shown)


def _run_stages_config(cfg, fmt: Format, columns: list[str] | None = None) -> None:
    """`score --config`: rate what the run stored, with the rating settings in `cfg`."""
    from ..pipeline import Arena
    from .render import print_leaderboard
    from .stages import say_interrupted
    from .summary import housekeeping_lines, judge_warning_lines, say, tracking_lines

    try:
        result = Arena(cfg).run_sync(("score",), "score")
    except RunInterrupted as exc:
        say_interrupted(exc)
    say(housekeeping_lines(result.summary))
    say(judge_warning_lines(result.summary))
    say(tracking_lines(result.summary))
    print_leaderboard(result.leaderboard, fmt, title=f"{cfg.name}: score vs {baseline_words(cfg)} (95% CI)",
                      columns=columns)
    raise typer.Exit(result.exit_code)


@app.command()
def report(
    config: Path | None = ConfigOption,
    out: Path | None = typer.Option(None, "--out", "-o", help="Where to write (default: <output>/<name>/report.html)."),
) -> None:
    """Write the self-contained HTML report from what is stored (no requests; does not need the run lock)."""
    from ..pipeline import Arena

    try:
        path = Arena(load(config)).report(out)
    except ArenaError as exc:
        fail(exc)
    echo(f"wrote {path}")


HISTORY_TEXT = ("run_id", "time", "model", "baseline", "status")  # history's columns printed as they are


@app.command()
def history(
    config: Path | None = ConfigOption,
    contestant: str | None = typer.Option(None, "--contestant", help="Only this contestant."),
    format: Format = FormatOption,
) -> None:
    """Scores over time: one row per scored run and contestant, oldest first."""
    from .. import folder
    from ..history import CHANGE_COLUMNS, HISTORY_COLUMNS
    from .render import leaderboard_cell, print_leaderboard, render_table

    try:
        cfg = load(config)
        frame = folder.history(cfg, contestant)
    except ArenaError as exc:
        fail(exc)
    if format is not Format.table:
        print_leaderboard(frame, format)
        return
    shown = [c for c in HISTORY_COLUMNS
             if c != "command" and (c != "category_scores" or frame[c].map(lambda v: isinstance(v, dict)).any())
             and (c not in CHANGE_COLUMNS or frame[c].notna().any())]  # a run's change: once there is a previous one
    render_table(frame.to_dict("records"), shown, f"{cfg.name}: scores over time", left=HISTORY_TEXT,
                 cell=lambda c, v: str(v) if c in HISTORY_TEXT else leaderboard_cell(c, v))


@app.command(cls=RatingDefaultsHelp)
def compare(
    names: list[str] = typer.Argument(None, metavar="[A B]", help="The two contestants to compare (A − B)."),
    config: Path | None = ConfigOption,
    battles: Path | None = typer.Option(None, "--battles", help="An arena-hard battles JSONL file instead of a run."),
    judgments: Path | None = typer.Option(None, "--judgments", help="An arena-hard model_judgment folder instead of "
                                          "a run (every judge subfolder, pooled)."),
    baseline: str | None = typer.Option(None, "--baseline", help="Baseline model (required with --battles and "
                                        "--judgments)."),
    judge: str | None = typer.Option(None, "--judge", help="With --config: compare on this judge's verdicts only "
                                     "(default: the run's rating.judges)."),
    every: bool = typer.Option(False, "--all", help="Every pair of rated contestants, best first, with p-values "
                               "Holm-corrected over the pairs (p_holm)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level of the `significant` column (p_holm with "
                                "--all, else p_value, below it); in (0, 1)."),
    rounds: int | None = typer.Option(None, "--rounds", min=0, help="Bootstrap rounds (default: the run's; "
                                      "--battles: {rounds})."),
    seed: int | None = typer.Option(None, "--seed", help="Bootstrap seed (default: the run's; --battles: {seed})."),
    format: Format = FormatOption,
) -> None:
    """Is the difference between two contestants real? Paired over questions: in every bootstrap round both are
    rated on the same resampled questions. Prints A − B in score points and Elo with its 95% interval, the
    paired bootstrap's two-sided p-value, the questions in common and on how many A did better, the same or
    worse than B (mean points against the baseline, both positions, every judge), and the sign test over them."""
    try:
        pairs = _compare_pairs(names or [], every, alpha)
        if battles is None and judgments is None:
            table = _compare_run(config, judge, rounds, seed, pairs)
        else:
            table = _compare_file(battles, judgments, baseline, judge, rounds, seed, pairs)
    except ArenaError as exc:
        fail(exc)
    _print_comparison(table, format, alpha)


def _compare_pairs(names: list[str], every: bool, alpha: float) -> list[tuple[str, str]] | None:
    """The pair named on the command line, or None for --all; exit 1 on what cannot be compared."""
    if not 0 < alpha < 1:
        raise ArenaError(f"--alpha {alpha} is outside (0, 1): give a significance level such as 0.05")
    if every:
        if names:
            raise ArenaError("--all compares every pair: name no contestant with it, or leave --all out")
        return None
    if len(names) != 2:
        raise ArenaError(f"compare takes two contestants (A B), not {len(names)}; or --all for every pair")
    if names[0] == names[1]:
        raise ArenaError(f"{names[0]!r} compared with itself: name two different contestants")
    return [(names[0], names[1])]


def _compare_run(config: Path | None, judge: str | None, rounds: int | None, seed: int | None,
                 pairs: list[tuple[str, str]] | None):
    """`compare --config`: the stored verdicts rated as `score` rates them (the same rounds, seed, bootstrap,
    style control and judges), then the pairs compared on those rounds."""
    from ..pipeline import Arena

    cfg = load(config)
    updates: dict[str, Any] = {}
    if judge is not None:
        names = [j.label for j in cfg.judges]
        if judge not in names:
            raise ArenaError(f"--judge {judge!r} names no judge of {cfg.name}; judges: {', '.join(names)}")
        updates["judges"] = judge
    if rounds is not None:
        updates["rounds"] = rounds
    if seed is not None:
        updates["seed"] = seed
    cfg.rating = cfg.rating.model_copy(update=updates)
    return Arena(cfg).compare(pairs)


def _compare_file(battles: Path | None, judgments: Path | None, baseline: str | None, judge: str | None,
                  rounds: int | None, seed: int | None, pairs: list[tuple[str, str]] | None):
    """`compare --battles F | --judgments DIR --baseline NAME`: rated with the rating defaults, as `score` does."""
    from ..interop import read_battles, read_judgments
    from ..rating import compare_battles

    if battles is not None and judgments is not None:
        raise ArenaError("give --battles or --judgments, not both")
    option = "--battles" if battles is not None else "--judgments"
    if judge is not None:
        raise ArenaError(f"--judge picks a judge of a run (--config); {option} is rated as a whole")
    if not baseline:
        raise ArenaError(f"{option} needs --baseline NAME (the model every score is relative to)")
    source = battles if battles is not None else judgments
    assert source is not None  # one of them is given here
    frame = read_battles(source) if battles is not None else read_judgments(source, baseline=baseline)
    n_rounds = rounds if rounds is not None else rating_default("rounds")
    if n_rounds == 0:
        raise ArenaError("--rounds 0: a paired comparison needs bootstrap rounds (e.g. --rounds 1000)")
    try:
        return compare_battles(frame, baseline, pairs, rounds=n_rounds,
                               seed=seed if seed is not None else rating_default("seed"),
                               by=rating_default("bootstrap"))
    except ValueError as exc:
        raise ArenaError(f"{source}: {exc}") from None


COMPARE_TEXT = ("a", "b", "significant")  # compare's columns printed as they are


def _print_comparison(table, fmt: Format, alpha: float) -> None:
    from .render import figures, render_table, write_frame

    # With rating.calibration on, what is significant is read from the calibrated scores (§3.4.7).
    calibrated = "calibrated_p" in table
    judged = "p_holm" if "p_holm" in table else "p_value"
    decisive = ("calibrated_p_holm" if "p_holm" in table else "calibrated_p") if calibrated else judged
    table = table.assign(significant=(table[decisive] < alpha).to_numpy())
    if write_frame(table, fmt):
        return
    shown = ["a", "b", "difference", "ci_low", "ci_high", "elo_difference", "p_value",
             *(["p_holm"] if "p_holm" in table else []), "questions", "better", "same", "worse", "p_sign",
             *(["calibrated_difference", "calibrated_ci_low", "calibrated_ci_high", decisive] if calibrated else []),
             "significant"]
    cell = figures()
    pvalue = ("p_value", "p_holm", "p_sign", "calibrated_p", "calibrated_p_holm")
    render_table(table.to_dict("records"), shown,
                 f"a − b in score points, 95% paired bootstrap interval ({int(table['rounds'].max())} rounds); "
                 f"p: paired bootstrap, two-sided{', Holm-corrected over the pairs' if 'p_holm' in table else ''}; "
                 f"p_sign: sign test over questions; "
                 + ("calibrated: the scores corrected with human labels (delta method); " if calibrated else "")
                 + f"significant: {decisive} < {alpha:g}",
                 left=COMPARE_TEXT,
                 cell=lambda c, v: ("yes" if v else "no") if c == "significant" else (
                     f"{v:.3g}" if isinstance(v, float) and v == v else cell(c, v)) if c in pvalue else cell(c, v),
                 headers={"elo_difference": "elo diff", "difference": "diff", "better": "a better",
                          "worse": "a worse", "calibrated_difference": "calibrated diff",
                          "calibrated_ci_low": "cal. low", "calibrated_ci_high": "cal. high"})
