"""`run` and its stages on their own: `answers`, `guidance`, `judge` (pipeline.Arena.run_sync)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..console import err
from ..errors import ArenaError, RunInterrupted
from .common import (
    ColumnsOption,
    ConfigOption,
    Format,
    FormatOption,
    ProgressOption,
    app,
    baseline_words,
    fail,
    load,
    parse_columns,
)


def _run_stages(config: Path | None, stages: tuple[str, ...], command: str, fmt: Format, progress: bool,
                guided_demo: bool = False, refresh: tuple[str, ...] = (), columns: list[str] | None = None,
                max_cost: float | None = None, wait: bool = True) -> None:
    from ..pipeline import Arena
    from ..progress import make_progress
    from .render import print_leaderboard
    from .summary import Line, housekeeping_lines, regression_lines, say, stopped_lines, summary_lines, waiting_line

    try:
        cfg = load(config, guided_demo)
        if cfg.demo:
            from ..demo import DISCLAIMER

            err.print(f"[yellow]{DISCLAIMER}[/yellow]", highlight=False)
        arena = Arena(cfg, progress=make_progress(progress), refresh=refresh, wait=wait, max_cost=max_cost)
        if max_cost is not None:
            _check_max_cost(arena, max_cost)
        result = arena.run_sync(stages, command)
    except RunInterrupted as exc:
        say_interrupted(exc)
    except ArenaError as exc:
        fail(exc)
    except KeyboardInterrupt:  # before the run started (loading the config or the question set)
        err.print("interrupted before the run started; nothing was changed")
        raise typer.Exit(130)
    s = result.summary
    say(housekeeping_lines(s))
    say(Line(f"note: {note}") for note in s.batch_notes)
    if result.waiting:
        say([waiting_line(s)])
        raise typer.Exit(result.exit_code)
    if result.leaderboard is not None:
        print_leaderboard(result.leaderboard, fmt, title=f"{cfg.name}: score vs {baseline_words(cfg)} (95% CI)",
                          columns=columns)
    say(summary_lines(s))
    say(Line(f"wrote {path}") for path in result.files)
    if cfg.demo:
        say([Line(f"Reminder: {cfg.name} used a 135M judge — the pipeline is demonstrated, not real quality.",
                  "yellow")])
    say(stopped_lines(s, result.output_dir))
    say(regression_lines(result.regressions))
    raise typer.Exit(result.exit_code)


def _check_max_cost(arena, max_cost: float) -> None:
    """--max-cost before the run: refuse to start when the plan's estimated cost is above it (nothing is sent).
    While the run goes, the Arena counts the replies' cost and stops sending at the cap (spending.py, exit 4)."""
    plan = arena.plan()  # a cap that is not a positive amount was refused when the Arena was built (spending.py)
    if plan.cost > max_cost:
        raise ArenaError(f"the plan's estimated cost is ${plan.cost:.4f}, above --max-cost ${max_cost:g}; "
                         "nothing was sent. See `arena-eval plan` for where it goes")
    if plan.unpriced:
        err.print(f"note: --max-cost checks priced requests only; no price for {', '.join(plan.unpriced)}",
                  highlight=False)


def say_interrupted(exc: RunInterrupted) -> None:
    """A run stopped by SIGINT or SIGTERM: what it stored (kept), and exit 130 or 143."""
    from .summary import housekeeping_lines, interrupted_line, say

    if exc.summary is not None:
        say(housekeeping_lines(exc.summary))
    db = exc.output_dir / "arena.db" if exc.output_dir is not None else None
    say([interrupted_line(exc.signal_name, exc.summary, db)])
    raise typer.Exit(exc.exit_code)


@app.command()
def run(
    config: Path | None = ConfigOption,
    format: Format = FormatOption,
    progress: bool = ProgressOption,
    demo_guided: bool = typer.Option(False, "--demo-guided", help="Demo only: add a SmolLM2 contestant with guidance."),
    refresh: list[str] = typer.Option([], "--refresh", help="Collect a fresh answer set for this contestant "
                                      "(repeatable; e.g. the baseline, which is otherwise kept)."),
    columns: str | None = ColumnsOption,
    max_cost: float | None = typer.Option(None, "--max-cost", help="Refuse to start (exit 1) when the plan's "
                                             "estimated cost in USD is above this (see `arena-eval plan`); stop "
                                             "sending (exit 4) once the replies' priced cost reaches it."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Batch mode: submit the batches, store their ids and exit "
                                 "0 without waiting for them; the next run collects them and scores."),
) -> None:
    """Collect answers, judge them against the baseline and rate every contestant (resumes what is stored).

    Exit codes: 0 complete, 1 usage or config error, 2 finished with missing items, 3 regression detected,
    4 stopped by --max-cost, 130/143 stopped by SIGINT/SIGTERM (stored work kept; run again to resume)."""
    _run_stages(config, ("answers", "judge", "score"), "run", format, progress, demo_guided, tuple(refresh),
                parse_columns(columns), max_cost, wait=not no_wait)


@app.command()
def answers(config: Path | None = ConfigOption, progress: bool = ProgressOption) -> None:
    """Only collect the contestants' answers."""
    _run_stages(config, ("answers",), "answers", Format.table, progress)


@app.command()
def guidance(config: Path | None = ConfigOption, progress: bool = ProgressOption) -> None:
    """Build the guidance for guided contestants ahead of a run (`run` builds whatever is missing)."""
    _run_stages(config, ("guidance",), "guidance", Format.table, progress)


@app.command()
def judge(config: Path | None = ConfigOption, progress: bool = ProgressOption) -> None:
    """Only judge stored answers against the baseline's."""
    _run_stages(config, ("judge",), "judge", Format.table, progress)
