"""The `arena-eval` command line.

Exit codes: 0 complete, 1 usage or config error, 2 finished with missing items (`merge`: with conflicting rows),
3 a contestant regressed, 4 `run --max-cost` reached (stored work kept, nothing scored), 130 / 143 stopped by
SIGINT / SIGTERM (what was stored is kept; run again to resume).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections import Counter
from enum import Enum
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import typer
from rich.console import Console

from .console import Table, echo, err
from .errors import ArenaError, RunInterrupted
from .records import COLUMNS, terminal_columns
from .redaction import redact

TERMINAL_COLUMNS = terminal_columns()

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Judge model configurations against a baseline and weigh quality against energy.",
)

# Libraries that log on their own: quiet (errors only) unless --verbose. CodeCarbon alone logs a dozen lines per
# energy window ("Multiple instances of codecarbon...", unknown CPU models, RAPL hints); the run's own energy line
# says which meter measured what.
THIRD_PARTY_LOGGERS = ("codecarbon", "litellm", "LiteLLM", "httpx", "httpcore", "openai", "anthropic", "urllib3",
                       "asyncio", "xllamacpp")


def quiet_third_party_logs(verbose: bool) -> None:
    import logging

    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    os.environ["ARENA_EVAL_VERBOSE"] = "1" if verbose else "0"


@app.callback()
def _options(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the log lines of the libraries "
                                          "arena-eval uses (CodeCarbon, litellm, HTTP clients); quiet by default.")) -> None:
    quiet_third_party_logs(verbose)

from .energy.cli import energy_app  # noqa: E402  (loads no meter library)

app.add_typer(energy_app, name="energy", help="Energy logs: import CodeCarbon CSVs, show what is stored.")


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class Compat(str, Enum):
    arena_hard = "arena-hard"


class ExportFormat(str, Enum):
    """The arena-hard-auto layout `export` writes, and the interop version it stands for."""

    arena_hard = "arena-hard"
    arena_hard_v2 = "arena-hard-v2"

    @property
    def version(self) -> str:
        return "v2.0" if self is ExportFormat.arena_hard_v2 else "v0.1"


ConfigOption = typer.Option(None, "--config", "-c", help="Run config (YAML). Without it: the bundled offline demo.")
FormatOption = typer.Option(Format.table, "--format", "-f", help="How to print tables: table, json or csv.")
ColumnsOption = typer.Option(None, "--columns", help="The leaderboard columns to print, comma-separated (the "
                             "contestant's name comes first anyway); default: as many as fit the terminal, by priority.")


def _columns(value: Optional[str]) -> list[str] | None:
    """--columns a,b,c as a list, each a leaderboard column (records.LeaderboardRow); exit 1 naming an unknown one."""
    if value is None:
        return None
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in COLUMNS]
    if unknown or not names:
        _fail(ArenaError(f"--columns: {', '.join(unknown) or 'no column given'} is not a leaderboard column; "
                         f"columns: {', '.join(COLUMNS)}"))
    return names
ProgressOption = typer.Option(True, "--progress/--no-progress", help="Progress bars (lines when not on a terminal).")


def _load(config: Optional[Path], guided_demo: bool = False):
    if guided_demo and config is not None:
        raise ArenaError("--demo-guided changes the bundled demo; it cannot be combined with --config")
    if config is None:
        from .demo import demo_config

        return demo_config(guided=guided_demo)
    from .config import load_config

    return load_config(config)


def _fail(exc: ArenaError) -> None:
    err.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
    raise typer.Exit(exc.exit_code)


def print_table(board: pd.DataFrame, fmt: Format, title: str = "Leaderboard", columns: list[str] | None = None) -> None:
    """A leaderboard (or history) frame: JSON and CSV carry every column; the terminal table shows the columns
    records.LeaderboardRow marks for it, as many as fit the terminal by priority (records.TERMINAL_PRIORITY), or
    `columns` (the contestant's name first in any case), with their headers and number formats."""
    if fmt is Format.json:
        from .leaderboard_files import leaderboard_records

        sys.stdout.write(json.dumps(leaderboard_records(board), indent=2) + "\n")
        return
    if fmt is Format.csv:
        board.to_csv(sys.stdout, index=False)
        return
    width = _terminal_width()
    available = [c for c in TERMINAL_COLUMNS if c in board.columns and board[c].map(_known).any()
                 or c in ("model", "score", "ci_low", "ci_high") and c in board.columns]
    if columns:
        absent = [c for c in columns if c not in board.columns]
        if absent:
            err.print(f"no figures for column{'s' if len(absent) > 1 else ''} {', '.join(absent)} in this run", highlight=False)
        shown = ["model", *[c for c in columns if c != "model" and c in board.columns]]
    else:
        shown = _fit_columns(board, available, width)
    table = Table(title=title)
    for column in shown:
        table.add_column(_header(column), justify="left" if column in ("model", "method", "memory_source") else "right",
                         no_wrap=column == "model",
                         min_width=max(map(len, board.model.astype(str))) if column == "model" else len(_header(column)))
    for _, row in board.iterrows():
        table.add_row(*(_cell(column, row[column]) for column in shown))
    Console(width=width).print(table)
    hidden = [c for c in available if c not in shown]
    if hidden and not columns:
        err.print(f"{len(hidden)} more column{'s' if len(hidden) > 1 else ''} did not fit in {width} characters "
                  f"({', '.join(hidden)}): choose with --columns {','.join(shown[1:4] + hidden[:2])}, or see them all "
                  "with --format json or csv, and in the report", highlight=False)


def _terminal_width() -> int:
    """The terminal's width; 200 when the output is not a terminal (a file, a pipe) and COLUMNS does not say."""
    if sys.stdout.isatty():
        return shutil.get_terminal_size((200, 24)).columns
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        return 200


def _header(column: str) -> str:
    return (COLUMNS[column].metadata["label"] if column in COLUMNS else None) or column


def _known(value) -> bool:
    if isinstance(value, dict):
        return bool(value)
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _fit_columns(board: pd.DataFrame, available: list[str], width: int) -> list[str]:
    """The columns that fit in `width` characters, by priority: the contestant's full name, its score and
    interval always (a name is never cut), then each next column while it fits (docs/design.md §5.3)."""
    def column_width(column: str) -> int:
        cells = [_cell(column, value) for value in board[column]] if column in board.columns else []
        return max([len(_header(column)), *map(len, cells)]) + 3  # the cell's padding and its border
    shown, used = [], 1
    for column in available:
        needed = column_width(column)
        if column in ("model", "score", "ci_low", "ci_high") or used + needed <= width:
            shown.append(column)
            used += needed
    return shown


def _baseline_words(cfg) -> str:
    """The baseline as a title says it: one name, or each category's (the score is then their weighted mean)."""
    if not cfg.category_baselines:
        return f"baseline {cfg.baseline}"
    pairs = ", ".join(f"{category}: {name}" for category, name in cfg.category_baselines.items())
    return f"each category's baseline ({pairs}; overall: mean weighted by questions)"


def _cell(column: str, value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if column == "category_scores":
            return " · ".join(f"{k} {v:.1f}" for k, v in value.items()) or "-"
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    if value is None or pd.isna(value):
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    fmt = COLUMNS[column].metadata["format"] if column in COLUMNS else ".2f"
    return f"{100 * value:.1f}%" if fmt == "%" else f"{value:{fmt}}"


def _run_stages(config: Optional[Path], stages: tuple[str, ...], command: str, fmt: Format, progress: bool,
                guided_demo: bool = False, refresh: tuple[str, ...] = (), columns: list[str] | None = None,
                max_cost: float | None = None, wait: bool = True) -> None:
    from .pipeline import Arena
    from .progress import make_progress

    try:
        cfg = _load(config, guided_demo)
        if cfg.demo:
            from .demo import DISCLAIMER

            err.print(f"[yellow]{DISCLAIMER}[/yellow]", highlight=False)
        arena = Arena(cfg, progress=make_progress(progress), refresh=refresh, wait=wait, max_cost=max_cost)
        if max_cost is not None:
            if not max_cost > 0:
                raise ArenaError(f"--max-cost must be a positive amount in USD, got {max_cost:g}")
            plan = arena.plan()
            if plan.cost > max_cost:
                raise ArenaError(f"the plan's estimated cost is ${plan.cost:.4f}, above --max-cost ${max_cost:g}; "
                                 "nothing was sent. See `arena-eval plan` for where it goes")
            if plan.unpriced:
                err.print(f"note: --max-cost checks priced requests only; no price for {', '.join(plan.unpriced)}",
                          highlight=False)
        result = arena.run_sync(stages, command)
    except RunInterrupted as exc:
        _say_interrupted(exc)
    except ArenaError as exc:
        _fail(exc)
    except KeyboardInterrupt:  # before the run started (loading the config or the question set)
        err.print("interrupted before the run started; nothing was changed")
        raise typer.Exit(130)
    s = result.summary
    _print_housekeeping(s)
    for note in s.batch_notes:
        err.print(f"note: {note}", highlight=False)
    if result.waiting:
        err.print(f"submitted without waiting: {len(s.batches_waiting)} batch(es) at the provider "
                  f"({', '.join(s.batches_waiting)}); run the same command again to collect their results and score "
                  "(a batch ends within 24 hours)", highlight=False)
        raise typer.Exit(result.exit_code)
    if result.leaderboard is not None:
        print_table(result.leaderboard, fmt, title=f"{cfg.name}: score vs {_baseline_words(cfg)} (95% CI)", columns=columns)
    err.print(
        f"run {s.run_id}: answers {s.answers_new} new, {s.answers_cached} stored before, {s.answer_errors} errors"
        f"{f', {s.answers_missing} missing' if s.answers_missing else ''}; "
        f"games {s.games_new} new, {s.games_cached} stored before, {s.games_unparsed} unparsed, {s.game_errors} errors"
        f"{f', {s.games_suspicious} with suspicious judge replies' if s.games_suspicious else ''}"
        f"{f', {s.games_missing} missing' if s.games_missing else ''}",
        highlight=False,
    )
    if s.judge is not None and s.judge.consistency is not None:
        d = s.judge
        first = d.first_position_win_rate if d.first_position_win_rate is not None else float("nan")
        err.print(f"judge diagnostics: position consistency {100 * d.consistency:.0f}% of questions, "
                  f"position A wins {100 * first:.0f}% of decisive games"
                  f"{' (strong position bias)' if abs(first - 0.5) > 0.2 else ''}"
                  + (f"; {100 * d.suspicious_rate:.0f}% of games had suspicious replies (a verdict label copied from"
                     " an answer, a reply cut off, or an answer holding a label: see suspicious_rate and judgments.flags)"
                     if d.suspicious_rate else ""), highlight=False)
    if s.style is not None:
        elo = 400 / np.log(10)  # per unit of log-odds
        fitted = [f"{name.removeprefix('style_')} {c.elo_per_sd:+.0f}"
                  + (f" [{elo * c.ci_low:+.0f}, {elo * c.ci_high:+.0f}]" if not pd.isna(c.ci_low) else "")
                  for name, c in s.style.items() if not pd.isna(c.coef)]
        err.print(f"style control: Elo per standard deviation of {', '.join(fitted) or 'no varying feature'} "
                  "(positive: the judge favours more of it; removed from the scores)", highlight=False)
    if s.energy is not None:
        e = s.energy
        idle = f"{e.idle_power_w:.1f} W" if e.idle_power_w is not None else "not measured"
        judge_wh = f"{e.judge_wh:.3g} Wh" if e.judge_wh is not None else "unknown"
        meters = "; ".join(METER_WORDS.get(m, m) for m in e.methods) or "no meter could read anything"
        err.print(f"energy: {meters}. Idle power {idle}; judge {judge_wh}; carbon {e.carbon}", highlight=False)
    if s.guidance is not None:
        g = s.guidance
        err.print(f"guidance: {g.new} new, {g.stored} stored before, {g.errors} errors", highlight=False)
        for line in g.error_lines[:10]:
            err.print(f"  {line}", highlight=False)
    _print_replicas(s)
    _print_judge_warnings(s)
    if s.errors_by_contestant:
        err.print("errors by contestant: " + ", ".join(f"{k}: {v}" for k, v in sorted(s.errors_by_contestant.items())))
    for path in result.files:
        err.print(f"wrote {path}", highlight=False)
    if cfg.demo:
        err.print(f"[yellow]Reminder: {cfg.name} used a 135M judge — the pipeline is demonstrated, not real quality.[/yellow]")
    if s.capped:
        from .spending import capped_message

        err.print(capped_message(s.max_cost, s.spent, s.requests_held_back, s.unpriced_replies, result.output_dir),
                  style="red", markup=False, highlight=False)
    elif not s.complete:
        err.print(f"[red]incomplete: results are stored in {result.output_dir}; fix the causes above and run again "
                  "to fill in only what is missing[/red]")
    _print_regressions(result.regressions)
    raise typer.Exit(result.exit_code)


def _say_interrupted(exc: RunInterrupted) -> None:
    s = exc.summary
    kept = "nothing new was stored yet"
    if s is not None:
        _print_housekeeping(s)
        kept = (f"this run stored {s.answers_new} new answers and {s.games_new} new verdicts"
                f"{f' ({s.answer_errors + s.game_errors} errors recorded)' if s.answer_errors + s.game_errors else ''}")
    where = f" in {exc.output_dir / 'arena.db'}" if exc.output_dir is not None else ""
    err.print(f"[yellow]interrupted by {exc.signal_name}: {kept}; everything stored is kept{where}. Run the same "
              "command again to resume: stored work is not redone.[/yellow]", highlight=False)
    raise typer.Exit(exc.exit_code)


def _print_replicas(s) -> None:
    """Each replica's share of an endpoint with several base_urls: a line per replica (URLs shown without their
    passwords, as config.redact_url writes them)."""
    for endpoint in s.replicas:
        err.print(f"replicas of {endpoint.role} {endpoint.name!r}:", highlight=False, markup=False)
        for r in endpoint.replicas:
            latency = f", median latency {r.latency_p50_s:.3g} s" if r.latency_p50_s is not None else ""
            rested = f", rested {r.rests} time{'s' if r.rests != 1 else ''}" if r.rests else ""
            err.print(f"  {r.url}: {r.requests} requests, {r.errors} errors{latency}{rested}", highlight=False,
                      markup=False)


def _print_judge_warnings(s) -> None:
    """A judge that fails quietly must fail loudly: too many unparsed games, contestants left without a score."""
    if s.judge_concerns:
        err.print(f"judge diagnostics: {len(s.judge_concerns)} concern(s) about the judges' reliability; see "
                  "`arena-eval judges` or the report", highlight=False)
    for warning in s.judge_warnings:
        err.print(f"[yellow]warning: {warning}[/yellow]", highlight=False)
    if s.adaptive is not None:
        a = s.adaptive
        share = f"{a.games_judged} of {a.games_full} games judged ({100 * a.games_judged / max(a.games_full, 1):.0f}%)"
        stopped = ", ".join(f"{name} after {n} questions ({why})" for name, (n, why) in a.stopped.items()) or "none"
        if a.complete:
            saved = [f"{a.games_saved} games"]
            if a.tokens_saved is not None:
                saved.append(f"≈{a.tokens_saved:,.0f} judge tokens")
            if a.cost_saved is not None:
                saved.append(f"≈{a.cost_saved:.4f} in cost")
            if a.wh_saved is not None:
                saved.append(f"≈{a.wh_saved:.3g} Wh")
            err.print(f"adaptive judging: {share}; saved {', '.join(saved)} (estimated from the judged games' "
                      f"average); stopped early: {stopped}", highlight=False)
        else:
            err.print(f"adaptive judging: {share} so far; stopped early: {stopped}; not finished: run again to "
                      "continue", highlight=False)
    for judge, count in s.games_without_reference.items():
        if count:
            err.print(f"judge {judge!r}: {count} game(s) judged without a reference answer (the question has none, or "
                      "the reference contestant has no answer to it)", highlight=False)
    if s.unrated:
        err.print(f"[red]no parsed verdict at all for {', '.join(s.unrated)}: no score (exit 2); see the warnings "
                  "above and the judge's replies in the report[/red]", highlight=False)


# Which meter measured what, in our words (the run's energy line; third-party logs stay quiet).
METER_WORDS = {
    "nvml": "NVML measured the GPUs' energy counters for local models",
    "nvml-power-poll": "NVML sampled the GPUs' power for local models (no energy counter on these GPUs)",
    "rapl": "RAPL measured this machine's CPU and memory energy for local models",
    "codecarbon": "CodeCarbon estimated this machine's energy for local models from CPU load and a default "
                  "power per core (no sensor could be read), so it is an estimate",
    "ecologits": "EcoLogits estimated API models' energy per request from the model's size and the tokens",
    "codecarbon-import": "imported CodeCarbon logs gave the energy of their runs",
    "none": "no meter could be read for local models, so their energy is unknown",
}


def _print_housekeeping(s) -> None:
    """What a run found and fixed in the folder before its work: killed runs, renamed contestants."""
    for run_id in s.unfinished_runs:
        err.print(f"note: run {run_id} never finished (it was killed or crashed); it is now marked interrupted, and "
                  "its stored work is reused", highlight=False)
    for old, new in s.renamed:
        err.print(f"note: contestant {old!r} is now called {new!r} (same configuration): its stored answers, verdicts "
                  "and history carry over to the new name", highlight=False)


def _print_regressions(regressions: Optional[pd.DataFrame]) -> None:
    if regressions is None or regressions.empty:
        return
    err.print(f"[bold red]regressions: {len(regressions)} contestant(s) got worse than in their previous run[/bold red]")
    for r in regressions.itertuples(index=False):
        err.print(f"  {r.model}: {r.reason} (previous run {r.previous_run_id})", highlight=False)


@app.command()
def run(
    config: Optional[Path] = ConfigOption,
    format: Format = FormatOption,
    progress: bool = ProgressOption,
    demo_guided: bool = typer.Option(False, "--demo-guided", help="Demo only: add a SmolLM2 contestant with guidance."),
    refresh: list[str] = typer.Option([], "--refresh", help="Collect a fresh answer set for this contestant "
                                      "(repeatable; e.g. the baseline, which is otherwise kept)."),
    columns: Optional[str] = ColumnsOption,
    max_cost: Optional[float] = typer.Option(None, "--max-cost", help="Refuse to start (exit 1) when the plan's "
                                             "estimated cost in USD is above this (see `arena-eval plan`); stop "
                                             "sending (exit 4) once the replies' priced cost reaches it."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Batch mode: submit the batches, store their ids and exit "
                                 "0 without waiting for them; the next run collects them and scores."),
) -> None:
    """Collect answers, judge them against the baseline and rate every contestant (resumes what is stored).

    Exit codes: 0 complete, 1 usage or config error, 2 finished with missing items, 3 regression detected,
    4 stopped by --max-cost, 130/143 stopped by SIGINT/SIGTERM (stored work kept; run again to resume)."""
    _run_stages(config, ("answers", "judge", "score"), "run", format, progress, demo_guided, tuple(refresh),
                _columns(columns), max_cost, wait=not no_wait)


@app.command()
def answers(config: Optional[Path] = ConfigOption, progress: bool = ProgressOption) -> None:
    """Only collect the contestants' answers."""
    _run_stages(config, ("answers",), "answers", Format.table, progress)


@app.command()
def guidance(config: Optional[Path] = ConfigOption, progress: bool = ProgressOption) -> None:
    """Build the guidance for guided contestants ahead of a run (`run` builds whatever is missing)."""
    _run_stages(config, ("guidance",), "guidance", Format.table, progress)


@app.command()
def judge(config: Optional[Path] = ConfigOption, progress: bool = ProgressOption) -> None:
    """Only judge stored answers against the baseline's."""
    _run_stages(config, ("judge",), "judge", Format.table, progress)


@app.command()
def score(
    config: Optional[Path] = ConfigOption,
    battles: Optional[Path] = typer.Option(None, "--battles", help="An arena-hard battles JSONL file to rate instead."),
    judgments: Optional[Path] = typer.Option(None, "--judgments", help="An arena-hard model_judgment folder (or the "
                                             "folder holding it) to rate instead: <judge>/<model>.jsonl files."),
    judge: list[str] = typer.Option([], "--judge", help="With --config: rate this judge's verdicts only (default: "
                                    "every judge's, pooled). With --judgments: a judge subfolder to rate (repeatable; "
                                    "their battles are pooled; default: every judge)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Baseline model (required with --battles and "
                                           "--judgments)."),
    rounds: Optional[int] = typer.Option(None, "--rounds", min=0, help="Bootstrap rounds (default 1000)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Bootstrap seed (default 42)."),
    compat: Optional[Compat] = typer.Option(None, "--compat", help="arena-hard: resample battle rows, 100 rounds, seed 42."),
    format: Format = FormatOption,
    columns: Optional[str] = ColumnsOption,
) -> None:
    """Rate stored judgments (or an arena-hard battles file or judgment folder) and print the leaderboard."""
    shown = _columns(columns)
    try:
        if battles is not None and judgments is not None:
            raise ArenaError("give --battles or --judgments, not both")
        if judge and battles is not None:
            raise ArenaError("--judge picks the judges of a run (--config) or of --judgments DIR; a battles file has none")
        if battles is None and judgments is None:
            cfg = _load(config)
            updates = {"bootstrap": "rows", "rounds": 100, "seed": 42} if compat is Compat.arena_hard else {}
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
            cfg.rating = cfg.rating.model_copy(update=updates)
            _run_stages_config(cfg, format, shown)
            return
        source = battles if battles is not None else judgments
        if not baseline:
            option = "--battles" if battles is not None else "--judgments"
            raise ArenaError(f"{option} needs --baseline NAME (the model every score is relative to)")
        from .interop import read_battles, read_judgments
        from .rating import compute_leaderboard

        if battles is not None:
            frame, title = read_battles(battles), battles.name
        else:
            frame = read_judgments(judgments, judge, baseline=baseline)
            title = f"{judgments.name} (judges {', '.join(pd.unique(frame['judge']))})"
        by, n_rounds, n_seed = ("rows", 100, 42) if compat is Compat.arena_hard else ("questions", 1000, 42)
        n_rounds = rounds if rounds is not None else n_rounds
        n_seed = seed if seed is not None else n_seed
        try:
            board = compute_leaderboard(frame, baseline, rounds=n_rounds, seed=n_seed, by=by)
        except ValueError as exc:
            raise ArenaError(f"{source}: {exc}") from None
    except ArenaError as exc:
        _fail(exc)
    print_table(board, format, title=f"{title}: score vs baseline {baseline} (95% CI)", columns=shown)


def _run_stages_config(cfg, fmt: Format, columns: list[str] | None = None) -> None:
    from .pipeline import Arena

    try:
        result = Arena(cfg).run_sync(("score",), "score")
    except RunInterrupted as exc:
        _say_interrupted(exc)
    _print_housekeeping(result.summary)
    _print_judge_warnings(result.summary)
    print_table(result.leaderboard, fmt, title=f"{cfg.name}: score vs {_baseline_words(cfg)} (95% CI)", columns=columns)
    raise typer.Exit(result.exit_code)


@app.command()
def report(
    config: Optional[Path] = ConfigOption,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write (default: <output>/<name>/report.html)."),
) -> None:
    """Write the self-contained HTML report from what is stored (no requests; does not need the run lock)."""
    from .pipeline import Arena

    try:
        path = Arena(_load(config)).report(out)
    except ArenaError as exc:
        _fail(exc)
    echo(f"wrote {path}")


def _records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready rows: NaN is null; an infinite figure (a judge whose verdicts follow length completely) is
    written as the string "inf" or "-inf", since JSON has no number for it."""
    def cell(value):
        if isinstance(value, float):
            if value != value:
                return None
            if value in (float("inf"), float("-inf")):
                return "inf" if value > 0 else "-inf"
        return value.item() if hasattr(value, "item") else value

    return [{k: cell(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _print_frame(frame: pd.DataFrame, fmt: Format, title: str, percent: tuple[str, ...] = ()) -> None:
    if fmt is Format.json:
        sys.stdout.write(json.dumps(_records(frame), indent=2) + "\n")
        return
    if fmt is Format.csv:
        frame.to_csv(sys.stdout, index=False)
        return
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(column, justify="left" if frame[column].dtype == object else "right")
    for row in frame.to_dict("records"):
        table.add_row(*(_figure(row[c], c in percent) for c in frame.columns))
    Console(width=None if sys.stdout.isatty() else 250).print(table)


def _figure(value, percent: bool) -> str:
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return "-"
    if isinstance(value, (int, np.integer)):
        return str(value)
    if value in (float("inf"), float("-inf")):
        return "+inf" if value > 0 else "-inf"
    return f"{100 * value:.0f}%" if percent else f"{value:.2f}"


@app.command()
def judges(
    config: Optional[Path] = ConfigOption,
    format: Format = FormatOption,
) -> None:
    """How far each judge can be trusted: position and length bias, agreement between judges, self-preference."""
    from .pipeline import Arena

    try:
        frame, concerns = Arena(_load(config)).judge_diagnostics()
    except ArenaError as exc:
        _fail(exc)
    # The terminal gets the figures to read at a glance; JSON and CSV carry every column (agreement, counts).
    hidden = ("games_with_", "agreement_", "decisive_games", "length_games")
    shown = frame if format is not Format.table else frame[[c for c in frame.columns if not c.startswith(hidden)]]
    rates = tuple(c for c in frame.columns if c.endswith("_rate") or c in ("consistency",) or c.startswith("agreement_"))
    _print_frame(shown, format, "judges: one row per judge, and all of them pooled", rates)
    for concern in concerns:
        err.print(f"[yellow]warning: {concern}[/yellow]", highlight=False)


@app.command()
def agreement(
    labels: Path = typer.Option(..., "--labels", help="Human labels, JSONL: {question_id, model_a, model_b, winner"
                                ", annotator?}; winner is model_a, model_b or tie."),
    config: Optional[Path] = ConfigOption,
    format: Format = FormatOption,
) -> None:
    """How often each judge (and the judges' majority) agrees with human labels, with and without ties."""
    from .labels import human_agreement, read_labels
    from .pipeline import Arena

    try:
        cfg = _load(config)
        human = read_labels(labels)
        report = human_agreement(human, Arena(cfg).judgments_by_judge(), cfg.baseline)
    except ArenaError as exc:
        _fail(exc)
    frame = report.frame()
    if format is Format.json:  # each row with its confusion table: rows human, columns judge (model_a, tie, model_b)
        rows = [{**row, "confusion": [list(r) for r in report[row["judge"]].confusion]} for row in _records(frame)]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        _print_frame(frame, format, f"agreement with {labels.name}: {report.matched} of {report.labels} labels "
                     "matched", ("agreement", "agreement_without_ties"))
    if format is Format.table:
        for judge, table in report.confusion_tables().items():
            err.print(f"{judge}: rows human, columns judge\n{table.to_string()}", highlight=False)
    if report.unmatched:
        err.print(f"{report.unmatched} label(s) name a question or pair no judge judged, e.g. "
                  f"{'; '.join(report.unmatched_examples)}", highlight=False)


def _quality_source(config: Optional[Path], battles: Optional[Path], judgments: Optional[Path], baseline: Optional[str],
                    rounds: Optional[int], seed: Optional[int]):
    """The battles to judge a benchmark by, with their bootstrap: a run's stored verdicts (--config: its
    rating settings, the very rounds behind its leaderboard's intervals) or a battles file / judgment folder."""
    from .quality import bootstrap_scores

    given = [name for name, value in (("--battles", battles), ("--judgments", judgments)) if value is not None]
    if len(given) > 1:
        raise ArenaError("give --battles or --judgments, not both")
    if not given:
        cfg = _load(config)
        board = _arena(cfg).stored_leaderboard()
        rating = cfg.rating
        if board.battles.empty:
            raise ArenaError(f"{cfg.name}: no parsed verdict is stored yet; run `arena-eval run` with this config "
                             "first")
        style = None
        if rating.style_control:
            from .style import STYLE_COLUMNS
            style = list(STYLE_COLUMNS)
        n_rounds = rounds if rounds is not None else rating.rounds
        n_seed = seed if seed is not None else rating.seed
        boot = bootstrap_scores(board.battles, cfg.baseline, n_rounds, n_seed, rating.bootstrap, style)
        return board.battles, cfg.baseline, board.frame.set_index("model")["score"], boot, cfg.name
    if not baseline:
        raise ArenaError(f"{given[0]} needs --baseline NAME (the model every score is relative to)")
    from .interop import read_battles, read_judgments
    from .rating import compute_leaderboard

    frame = read_battles(battles) if battles is not None else read_judgments(judgments, baseline=baseline)
    source = battles if battles is not None else judgments
    n_rounds, n_seed = rounds if rounds is not None else 1000, seed if seed is not None else 42
    try:
        board = compute_leaderboard(frame, baseline, rounds=0, seed=n_seed)
        boot = bootstrap_scores(frame, baseline, n_rounds, n_seed)
    except ValueError as exc:
        raise ArenaError(f"{source}: {exc}") from None
    return frame, baseline, board.set_index("model")["score"], boot, source.name


def _arena(cfg):
    from .pipeline import Arena

    return Arena(cfg)


@app.command()
def quality(
    config: Optional[Path] = ConfigOption,
    battles: Optional[Path] = typer.Option(None, "--battles", help="An arena-hard battles JSONL file instead of a run."),
    judgments: Optional[Path] = typer.Option(None, "--judgments", help="An arena-hard model_judgment folder instead of "
                                             "a run."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Baseline model (required with --battles and "
                                           "--judgments)."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="A leaderboard to compare with: CSV with "
                                             "columns model, score and optionally ci_low, ci_high (arena-hard's "
                                             "rating_q025/rating_q975 too); extra columns are ignored."),
    questions: bool = typer.Option(False, "--questions", help="Also each question's discrimination, tie rate and "
                                   "judge disagreement, least useful first."),
    rounds: Optional[int] = typer.Option(None, "--rounds", min=1, help="Bootstrap rounds (default: the run's "
                                         "rating.rounds; 1000 for --battles)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Bootstrap seed (default: the run's rating.seed; 42)."),
    format: Format = FormatOption,
) -> None:
    """Is the benchmark good enough: separability, and agreement with a reference ranking (docs/quality.md)."""
    try:
        frame, base, point, boot, title = _quality_source(config, battles, judgments, baseline, rounds, seed)
        from .quality import benchmark_quality, fully_judged, outcome_disagreement, question_diagnostics, read_reference

        ref = read_reference(reference) if reference is not None else None
        try:
            result = benchmark_quality(boot, point, ref)
        except ValueError as exc:
            raise ArenaError(f"{reference}: {exc}" if reference is not None else str(exc)) from None
        per_question, partly = None, 0
        if questions:
            complete, partly = fully_judged(frame)
            per_question = question_diagnostics(complete, outcome_disagreement(complete), base)
    except ArenaError as exc:
        _fail(exc)
    data = {"source": str(title), "baseline": base, **result.to_dict()}
    if partly:
        err.print(f"note: {partly} question(s) judged for only some contestants (adaptive judging stopped the others "
                  "before them) are left out of the question diagnostics", highlight=False)
    if format is Format.json:
        if per_question is not None:
            data["questions"] = _records(per_question)
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    metrics = _quality_metrics(data)
    if format is Format.csv:
        (per_question if per_question is not None else metrics).to_csv(sys.stdout, index=False)
        return
    intervals = pd.DataFrame(data["intervals"])
    if ref is not None:
        intervals["reference_score"] = intervals.model.map(ref.set_index("model").score)
    _print_frame(intervals, format, f"{title}: scores vs baseline {base} (95% CI)")
    _print_frame(metrics, format, "benchmark quality")
    if ref is not None and (data["unmatched"]["ours"] or data["unmatched"]["reference"]):
        only = data["unmatched"]["reference"]
        err.print(f"not in the reference: {', '.join(data['unmatched']['ours']) or 'none'}; in the reference only: "
                  f"{len(only)} model(s)" + (f" ({', '.join(only[:5])}{', …' if len(only) > 5 else ''})" if only else ""),
                  highlight=False)
    if per_question is not None:
        _print_frame(per_question.head(20), format, "the 20 least useful questions (least useful first; --format "
                     "csv or json for all)", ("tie_rate", "judge_disagreement"))


def _quality_metrics(data: dict) -> pd.DataFrame:
    """The quality report's figures as rows: metric, value, ci_low, ci_high, over (what it counts)."""
    rows = [("separability", data["separability"], None, None,
             f"{data['separated_pairs']} of {data['pairs']} pairs of {data['n_models']} models")]
    if data.get("spearman") is not None:
        matched = f"{len(data['matched'])} models in both"
        rows += [("spearman", data["spearman"], data["spearman_ci_low"], data["spearman_ci_high"], matched),
                 ("kendall", data["kendall"], data["kendall_ci_low"], data["kendall_ci_high"], matched),
                 ("agreement_with_confidence", data["agreement_with_confidence"], None, None,
                  f"{data['reference_separated_pairs']} pairs the reference separates"),
                 ("pair_brier", data["pair_brier"], None, None, f"{data['brier_pairs']} pairs (0 best, 0.25 a coin)")]
    return pd.DataFrame(rows, columns=["metric", "value", "ci_low", "ci_high", "over"])


@app.command()
def prune(
    config: Optional[Path] = ConfigOption,
    size: int = typer.Option(..., "--size", help="How many questions to keep (at least 2, fewer than the set)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the smaller question set (JSONL)."),
    splits: int = typer.Option(20, "--splits", min=1, help="Held-out bootstrap splits for the estimate."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the splits and tie-breaks (default: the run's "
                                       "rating.seed)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
    format: Format = FormatOption,
) -> None:
    """Write a smaller question set that keeps the run's ranking, and say what it keeps and saves (docs/quality.md)."""
    try:
        cfg = _load(config)
        arena = _arena(cfg)
        n = len(arena.questions)
        if size < 2 or size >= n:
            raise ArenaError(f"--size {size}: keep at least 2 questions and fewer than the set's {n}")
        if out.resolve() == cfg.questions_path.resolve():
            raise ArenaError(f"--out {out} is the run's own question file; write the smaller set elsewhere")
        from .output_paths import refuse_results_target

        refuse_results_target(out, cfg.output_dir, config, "--out")  # the store, the config, the output folder
        if out.exists() and not force:
            raise ArenaError(f"--out {out} exists; pass --force to overwrite it")
        board = arena.stored_leaderboard()
        if board.battles.empty:
            raise ArenaError(f"{cfg.name}: no parsed verdict is stored yet; run `arena-eval run` with this config first")
        from .savings import pruning_savings
        from .quality import fully_judged, prune_questions

        battles, _ = fully_judged(board.battles)
        judged = set(battles.question_id)
        if size >= len(judged):
            raise ArenaError(f"--size {size}: only {len(judged)} of the {n} questions are judged for every contestant; "
                             "keep fewer, or finish the run first (with adaptive judging: judge every question once, "
                             "without rating.adaptive, to prune)")
        n_seed = seed if seed is not None else cfg.rating.seed
        try:
            result = prune_questions(battles, cfg.baseline, size, seed=n_seed, splits=splits, rounds=100)
        except ValueError as exc:
            raise ArenaError(str(exc)) from None
        kept = set(result.question_ids)
        _write_jsonl_atomically(out, [r for r in arena.questions.to_records() if r["id"] in kept])
    except ArenaError as exc:
        _fail(exc)
    savings = pruning_savings(arena.scope, board, n - size)
    data = {**result.to_dict(), "out": str(out), "unjudged_questions": n - len(judged), **savings}
    if format is Format.json:
        data.pop("per_split")
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    if format is Format.csv:
        pd.DataFrame([{k: v for k, v in data.items() if k not in ("per_split", "question_ids")}]).to_csv(
            sys.stdout, index=False)
        return
    echo(f"wrote {out}: {size} of {n} questions (the most discriminating; docs/quality.md)")
    echo(f"on {result.splits} held-out splits (medians; each half of the set stands for the benchmark): Kendall tau "
         f"{result.kendall_tau:.3f} (worst {result.kendall_tau_min:.3f}; a random subset of the same size: "
         f"{result.random_kendall_tau:.3f}); separability {result.separability:.0%} (random subset "
         f"{result.random_separability:.0%}, the held-out half {result.full_separability:.0%}; "
         + ("on games the choice did not see)" if result.separability_held_out
            else "in-sample, optimistic: one game per pair, nothing to hold out)"))
    echo("per full run it saves: " + _savings_text(savings))
    if n - len(judged):
        err.print(f"note: {n - len(judged)} question(s) are not judged for every contestant (not judged yet, or "
                  "adaptive judging stopped contestants before them) and were never kept", highlight=False)


def _savings_text(s: dict) -> str:
    parts = [f"{s['judge_calls_saved']:,} judge calls", f"{s['answers_saved']:,} answers"]
    tokens = [t for t in (s["judge_tokens_saved"], s["answer_tokens_saved"]) if t is not None]
    if tokens:
        parts.append(f"≈{sum(tokens):,.0f} tokens" + ("" if len(tokens) == 2 else " (part unknown)"))
    parts.append(f"≈{s['cost_saved']:.4f} in cost" if s["cost_saved"] is not None else "cost unknown")
    wh = [w for w in (s["judge_wh_saved"], s["answer_wh_saved"]) if w is not None]
    parts.append(f"≈{sum(wh):.3g} Wh" + ("" if len(wh) == 2 else " (part unknown)") if wh else "Wh unknown")
    return ", ".join(parts)


def _write_jsonl_atomically(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)


@app.command()
def history(
    config: Optional[Path] = ConfigOption,
    contestant: Optional[str] = typer.Option(None, "--contestant", help="Only this contestant."),
    format: Format = FormatOption,
) -> None:
    """Scores over time: one row per scored run and contestant, oldest first."""
    from .history import HISTORY_COLUMNS, history_frame
    from .store import Store

    try:
        cfg = _load(config)
        db = cfg.output_dir / "arena.db"
        if not db.exists():
            raise ArenaError(f"{db}: no results yet; run `arena-eval run` with this config first")
        with Store(db) as store:
            frame = history_frame(store, contestant)
        if contestant is not None and frame.empty:
            raise ArenaError(f"no stored scores for contestant {contestant!r} in {db}")
    except ArenaError as exc:
        _fail(exc)
    if format is Format.table:
        table = Table(title=f"{cfg.name}: scores over time")
        shown = [c for c in HISTORY_COLUMNS
                 if c != "command" and (c != "category_scores" or frame[c].map(lambda v: isinstance(v, dict)).any())]
        for column in shown:
            table.add_column(column, justify="left" if column in ("run_id", "time", "model", "baseline", "status") else "right")
        for row in frame.to_dict("records"):
            table.add_row(*(_cell(c, row[c]) if c not in ("run_id", "time", "model", "baseline", "status")
                            else str(row[c]) for c in shown))
        Console(width=None if sys.stdout.isatty() else 200).print(table)
    else:
        print_table(frame, format)


@app.command()
def batches(
    config: Optional[Path] = ConfigOption,
    forget: list[str] = typer.Option([], "--forget", help="Stop waiting for this pending batch (repeatable): the next "
                                     "run submits its work again. It is not cancelled at the provider."),
    format: Format = FormatOption,
) -> None:
    """The provider batches stored for this output folder (batch mode), and forgetting one that will never end."""
    from .store import Store

    try:
        cfg = _load(config)
        db = cfg.output_dir / "arena.db"
        if not db.exists():
            raise ArenaError(f"{db}: no results yet; run `arena-eval run` with this config first")
        with Store(db) as store:
            for batch_id in forget:
                if not store.forget_batch(batch_id):
                    pending = ", ".join(j["batch_id"] for j in store.batch_jobs(pending_only=True)) or "none"
                    raise ArenaError(f"--forget {batch_id}: no pending batch has that id; pending: {pending}")
                err.print(f"forgot batch {batch_id}: the next run submits its work again (cancel it at the "
                          "provider yourself if it is still running there)", highlight=False)
            jobs = store.batch_jobs()
    except ArenaError as exc:
        _fail(exc)
    columns = ["batch_id", "kind", "name", "provider", "status", "provider_status", "done", "total", "run_id"]
    frame = pd.DataFrame(jobs, columns=[*columns, "created_at"])
    frame["created"] = frame.created_at.map(lambda t: time.strftime("%Y-%m-%d %H:%M", time.localtime(t)))
    _print_frame(frame[[*columns, "created"]], format, f"{cfg.name}: provider batches")


@app.command()
def plan(
    config: Optional[Path] = ConfigOption,
    format: Format = FormatOption,
) -> None:
    """What `run` would do, sending nothing: requests still to make per contestant and judge, with estimated
    tokens, cost, duration and energy (and which figures are estimates)."""
    from .pipeline import Arena

    try:
        cfg = _load(config)
        result = Arena(cfg).plan()
    except ArenaError as exc:
        _fail(exc)
    frame = result.frame()
    totals = result.totals()
    if format is Format.json:
        sys.stdout.write(json.dumps({"rows": json.loads(frame.to_json(orient="records")), "totals": totals},
                                    indent=2) + "\n")
        return
    if format is Format.csv:
        frame.to_csv(sys.stdout, index=False)
        return
    table = Table(title=f"{cfg.name}: plan (nothing sent)")
    for column in frame.columns:
        table.add_column(column, justify="left" if column in ("role", "name", "estimated") else "right",
                         no_wrap=column == "name")
    fmt = {"input_tokens": ".0f", "output_tokens": ".0f", "cost": ".4f", "duration_s": ".0f", "energy_wh": ".3g"}
    for row in frame.to_dict("records"):
        table.add_row(*("-" if v is None or (isinstance(v, float) and math.isnan(v)) else
                        f"{v:{fmt[k]}}" if k in fmt else str(v) for k, v in row.items()))
    Console(width=_terminal_width()).print(table)
    err.print(result.summary(), highlight=False)


@app.command()
def validate(config: Path = typer.Option(..., "--config", "-c", help="Run config (YAML) to check.")) -> None:
    """Check a run config and its question set without sending any request."""
    from .config import load_config
    from .judge import RunJudge
    from .providers import make_provider
    from .questions import load_questions

    try:
        cfg = load_config(config)
        questions = load_questions(cfg.questions_path)
        if cfg.category_baselines or any(j.prompts_by_category for j in cfg.judges):
            cfg.check_categories(Counter(q.category for q in questions), str(cfg.questions_path))
        for judge in cfg.judges:
            RunJudge.load(judge, cfg.resolve)
        for endpoint in [*cfg.contestants, *cfg.judges]:
            make_provider(endpoint, cfg.base_dir).api_key()
    except ArenaError as exc:
        _fail(exc)
    judges = ", ".join(f"{j.provider}:{j.model or j.model_path}" + (f" ({j.label})" if len(cfg.judges) > 1 else "")
                       for j in cfg.judges)
    try:
        from .pipeline import Arena

        planned = Arena(cfg, questions=questions).plan().summary()
    except ArenaError as exc:
        _fail(exc)
    echo(
        f"{config}: ok — {len(questions)} questions, {len(cfg.contestants)} contestants "
        f"({_baseline_words(cfg)}), judge{'s' if len(cfg.judges) > 1 else ''} {judges}, results in {cfg.output_dir}"
    )
    echo(planned)


@app.command("export")
def export_(
    config: Optional[Path] = ConfigOption,
    to: Optional[Path] = typer.Option(None, "--to", help="Folder to write to (default: <output>/<name>/arena-hard)."),
    format: ExportFormat = typer.Option(ExportFormat.arena_hard, "--format",
                                        help="arena-hard (v0.1 files) or arena-hard-v2 (v2.0 files)."),
) -> None:
    """Write stored answers, judgments and battles in the arena-hard-auto formats."""
    from .interop import export_arena_hard
    from .pipeline import Arena
    from .store import Store

    try:
        cfg = _load(config)
        db = cfg.output_dir / "arena.db"
        if not db.exists():
            raise ArenaError(f"{db}: no results yet; run `arena-eval run` with this config first")
        arena = Arena(cfg)
        with Store(db) as store:
            exported = export_arena_hard(arena.scope, store, arena.answer_sets(store),
                                         to or cfg.output_dir / "arena-hard", format.version)
    except ArenaError as exc:
        _fail(exc)
    for path in exported.paths:
        echo(f"wrote {path}")
    for note in exported.notes:
        echo(f"note: {note}")


@app.command("import")
def import_(
    answers_file: Path = typer.Argument(..., help="An arena-hard answer file (model_answer/<model>.jsonl), v0.1 "
                                                  "or v2.0."),
    contestant: str = typer.Option(..., "--contestant", help="The contestant (in the config) these answers belong to."),
    config: Optional[Path] = ConfigOption,
) -> None:
    """Take an arena-hard answer file as a contestant's answers, so that `run` does not regenerate them."""
    from .interop import import_answers
    from .questions import load_questions
    from .store import RunLock, Store

    try:
        cfg = _load(config)
        match = [c for c in cfg.contestants if c.name == contestant]
        if not match:
            raise ArenaError(f"contestant {contestant!r} is not in the config; known: {', '.join(c.name for c in cfg.contestants)}")
        questions = load_questions(cfg.questions_path)
        from .pipeline import Arena

        arena = Arena(cfg, questions=questions)
        with RunLock(cfg.output_dir), Store(cfg.output_dir / "arena.db", verify=True) as store:
            set_id = arena.answer_sets(store).set_id(contestant)  # the set in use, if its answers were refreshed
            target = next(c for c in arena.contestants if c.name == contestant)
            store.save_questions(questions)
            store.save_contestant(target.name, set_id, target.provider, target.model, target.model_dump(mode="json"))
            notes: list[str] = []
            counts = import_answers(answers_file, target, questions, store, arena.augmenter(store), set_id, notes)
    except ArenaError as exc:
        _fail(exc)
    for note in notes[:MAX_NOTE_LINES]:
        err.print(redact(note), highlight=False, markup=False)
    if len(notes) > MAX_NOTE_LINES:
        err.print(f"… and {len(notes) - MAX_NOTE_LINES} more lines skipped", highlight=False, markup=False)
    skipped = "".join(f", {counts[key]} {what} (skipped)" for key, what in (
        ("repeated", "repeating a question answered earlier in the file"),
        ("too_large", "over max_response_bytes")) if counts[key])
    echo(
        f"{answers_file}: {counts['imported']} answers imported for {contestant}, {counts['already_stored']} already "
        f"stored, {counts['unknown_question']} for questions not in the set (skipped){skipped}"
    )


MAX_CONFLICT_LINES = 100  # on the terminal; --format json lists every conflict
MAX_NOTE_LINES = 20  # skipped lines of an imported file named on the terminal


@app.command()
def merge(
    sources: list[Path] = typer.Argument(..., help="Output folders (or their arena.db files) to merge."),
    into: Optional[Path] = typer.Option(None, "--into", help="The output folder to merge into (created if new)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Merge into this run config's output folder "
                                          "instead of --into."),
    max_response_bytes: Optional[int] = typer.Option(
        None, "--max-response-bytes", min=1, help="The most bytes of one model reply (answer, verdict, guidance) "
        "brought in; a row over it is refused. Default: with --config, the largest max_response_bytes of its "
        "endpoints; else 34,603,008 (that of max_tokens 32,768)."),
    format: Format = FormatOption,
) -> None:
    """Merge the stores of several output folders into one: same key and content is skipped as a duplicate, same
    key and other content is a conflict (reported; the row already there is kept). Exit 0, or 2 on conflicts.

    Each source is merged in one transaction while DIR's run lock is held; merging a source again adds nothing."""
    from .merge import MERGE_REPLY_BYTES, merge_stores
    from .providers.base import reply_byte_cap

    try:
        if (into is None) == (config is None):
            raise ArenaError("merge needs where to merge into: --into DIR or --config F (its output folder), one of them")
        cfg = _load(config) if config is not None else None
        target = into if into is not None else cfg.output_dir
        if max_response_bytes is None:
            max_response_bytes = MERGE_REPLY_BYTES if cfg is None else max(
                reply_byte_cap(endpoint) for endpoint in [*cfg.contestants, *cfg.judge, *([cfg.guidance] if cfg.guidance else [])])
        result = merge_stores(sources, target, max_response_bytes)
    except ArenaError as exc:
        _fail(exc)
    except KeyboardInterrupt:  # the transaction of the source being merged was rolled back
        err.print("interrupted: the source being merged was left out whole, the sources merged before it are kept; "
                  "run the same command again to finish (what is merged already is skipped as duplicates)")
        raise typer.Exit(130)
    rows = [count.__dict__ for count in result.counts]
    if format is Format.json:
        sys.stdout.write(json.dumps({"into": str(result.into), "tables": rows,
                                     "conflicts": [{"table": c.table, "key": dict(c.key), "source": c.source,
                                                    "kept_from": c.kept_from, "columns": list(c.columns)}
                                                   for c in result.conflicts],
                                     "refused": [{"table": r.table, "key": dict(r.key), "source": r.source,
                                                  "bytes": r.size} for r in result.refused],
                                     "reply_cap": result.reply_cap, "notes": result.notes},
                                    indent=2, default=str) + "\n")
    elif format is Format.csv:
        pd.DataFrame(rows, columns=["source", "table", "added", "duplicates", "conflicts", "refused"]).to_csv(
            sys.stdout, index=False)
    else:
        table = Table(title=f"merged into {result.into}")
        for column in ("source", "table", "added", "duplicates", "conflicts", "refused"):
            table.add_column(column, justify="left" if column in ("source", "table") else "right")
        for row in rows:
            if row["added"] or row["duplicates"] or row["conflicts"] or row["refused"]:
                table.add_row(redact(row["source"]), row["table"], *(str(row[k]) for k in ("added", "duplicates",
                                                                                          "conflicts", "refused")))
        Console(width=_terminal_width()).print(table)
    if format is not Format.json:
        for conflict in result.conflicts[:MAX_CONFLICT_LINES]:
            err.print(f"conflict: {conflict.describe()}", highlight=False, markup=False)
        if len(result.conflicts) > MAX_CONFLICT_LINES:
            err.print(f"… and {len(result.conflicts) - MAX_CONFLICT_LINES} more conflicts: --format json lists them "
                      "all", highlight=False)
    for refused in result.refused[:MAX_CONFLICT_LINES]:
        err.print(f"refused: {refused.describe(result.reply_cap)}", highlight=False, markup=False)
    if len(result.refused) > MAX_CONFLICT_LINES:
        err.print(f"… and {len(result.refused) - MAX_CONFLICT_LINES} more rows refused", highlight=False)
    for note in result.notes:
        err.print(f"note: {note}", highlight=False, markup=False)
    added = sum(c.added for c in result.counts)
    err.print(f"{added} rows added, {sum(c.duplicates for c in result.counts)} duplicates skipped, "
              f"{len(result.conflicts)} conflicts"
              + (" (the rows already there were kept)" if result.conflicts else "")
              + (f", {len(result.refused)} rows refused (a reply over {result.reply_cap:,} bytes; pass "
                 "--max-response-bytes to take larger ones)" if result.refused else ""), highlight=False)
    raise typer.Exit(result.exit_code)


def main() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from .launch import STARTUP_INTERRUPTED, interrupted_silently

    try:
        app()
    except KeyboardInterrupt:  # outside a command (typer turns one inside a command into exit 130)
        err.print(STARTUP_INTERRUPTED, highlight=False)
        sys.exit(130)
    except SystemExit as exc:
        if interrupted_silently(exc):  # a command without its own Ctrl-C message: one line instead of nothing
            err.print("interrupted (SIGINT) before the command finished; what was stored before is kept",
                      highlight=False)
        raise


if __name__ == "__main__":
    main()
