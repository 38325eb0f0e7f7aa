"""What the command line prints, without running anything: the run summary's lines (cli/summary.py, pure
functions) and the one table renderer's width rule and cell formats (cli/render.py)."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from arena_eval.cli import app, render
from arena_eval.cli.summary import (
    Line,
    counts_line,
    housekeeping_lines,
    interrupted_line,
    judge_line,
    regression_lines,
    say,
    stopped_lines,
    summary_lines,
)
from arena_eval.config import RatingConfig
from arena_eval.judge_diagnostics import MAX_POSITION_BIAS
from arena_eval.records import (
    AdaptiveSummary,
    EndpointReplicas,
    EnergyOverview,
    GuidanceCounts,
    JudgeDiagnostics,
    ReplicaCounts,
    RunSummary,
    StyleEffect,
)
from arena_eval.redaction import register_secret

ROOT = Path(__file__).resolve().parents[1]


def full_summary() -> RunSummary:
    """A summary with every part a run can report."""
    return RunSummary(
        "r1", questions=10, contestants=["base", "c1"],
        answers_new=18, answers_cached=2, answer_errors=1, answers_missing=1,
        games_new=30, games_cached=4, games_unparsed=2, games_suspicious=3, game_errors=1, games_missing=2,
        errors_by_contestant={"c1": 1, "base": 2},
        unfinished_runs=["r0"], renamed=[["old", "c1"]],
        judge=JudgeDiagnostics(consistency=0.8, first_position_win_rate=0.75, suspicious_rate=0.1),
        style={"style_length": StyleEffect(coef=0.1, ci_low=0.05, ci_high=0.15, elo_per_sd=17.4, sd=1.0, fitted=True),
               "style_bold": StyleEffect(coef=math.nan, ci_low=math.nan, ci_high=math.nan, elo_per_sd=math.nan, sd=0.0,
                                         fitted=False)},
        energy=EnergyOverview(methods=["ecologits", "rapl"], idle_power_w=None, judge_wh=1.25, carbon="400 gCO2/kWh"),
        guidance=GuidanceCounts(new=1, stored=2, errors=1, error_lines=["q1: timed out"]),
        replicas=[EndpointReplicas("judge", "j", [ReplicaCounts("http://a/v1", 10, 1, 0.5, 2),
                                                  ReplicaCounts("http://b/v1", 5, 0, None, 0)])],
        judge_warnings=["judge 'j' left 40% unparsed"],
        judge_concerns=["j favours position A"],
        games_without_reference={"j": 3, "k": 0},
        adaptive=AdaptiveSummary(games_judged=60, games_full=100, games_saved=40, tokens_saved=12345.0, cost_saved=None,
                                 wh_saved=0.5, stopped={"c1": [30, "separated"]}),
        unrated=["c2"],
    )


def test_the_summary_of_a_run_says_everything_in_order():
    lines = summary_lines(full_summary())
    assert all(isinstance(line, Line) for line in lines)
    assert [line.text for line in lines] == [
        "run r1: answers 18 new, 2 stored before, 1 errors, 1 missing; games 30 new, 4 stored before, 2 unparsed, "
        "1 errors, 3 with suspicious judge replies, 2 missing",
        "judge diagnostics: position consistency 80% of questions, position A wins 75% of decisive games (strong "
        "position bias); 10% of games had suspicious replies (a verdict label copied from an answer, a reply cut off, "
        "or an answer holding a label: see suspicious_rate and judgments.flags)",
        "style control: Elo per standard deviation of length +17 [+9, +26] (positive: the judge favours more of it; "
        "removed from the scores)",
        "energy: EcoLogits estimated API models' energy per request from the model's size and the tokens; RAPL "
        "measured this machine's CPU and memory energy for local models. Idle power not measured; judge 1.25 Wh; "
        "carbon 400 gCO2/kWh",
        "guidance: 1 new, 2 stored before, 1 errors",
        "  q1: timed out",
        "replicas of judge 'j':",
        "  http://a/v1: 10 requests, 1 errors, median latency 0.5 s, rested 2 times",
        "  http://b/v1: 5 requests, 0 errors",
        "judge diagnostics: 1 concern(s) about the judges' reliability; see `arena-eval judges` or the report",
        "warning: judge 'j' left 40% unparsed",
        "adaptive judging: 60 of 100 games judged (60%); saved 40 games, ≈12,345 judge tokens, ≈0.5 Wh (estimated "
        "from the judged games' average); stopped early: c1 after 30 questions (separated)",
        "judge 'j': 3 game(s) judged without a reference answer (the question has none, or the reference contestant "
        "has no answer to it)",
        "no parsed verdict at all for c2: no score (exit 2); see the warnings above and the judge's replies in the "
        "report",
        "errors by contestant: base: 2, c1: 1",
    ]
    styles = {line.text.split(":")[0]: line.style for line in lines}
    assert styles["warning"] == "yellow" and styles["no parsed verdict at all for c2"] == "red"
    assert styles["guidance"] is None


def test_the_summary_formatter_is_pure():
    summary = full_summary()
    before = copy.deepcopy(summary)
    assert summary_lines(summary) == summary_lines(summary)
    assert repr(summary) == repr(before)


def test_a_quiet_run_says_only_its_counts():
    lines = summary_lines(RunSummary("r2", 3, ["a", "b"], answers_cached=6, games_cached=12))
    assert [line.text for line in lines] == [
        "run r2: answers 0 new, 6 stored before, 0 errors; games 0 new, 12 stored before, 0 unparsed, 0 errors"]
    assert counts_line(RunSummary("r3", 1, [])).style is None


def test_strong_position_bias_is_the_judge_diagnostics_threshold():
    def bias_words(first: float, **kwargs) -> bool:
        s = RunSummary("r", 1, [], judge=JudgeDiagnostics(consistency=1.0, first_position_win_rate=first))
        return "(strong position bias)" in judge_line(s, **kwargs)[0].text

    just_over = 0.5 + MAX_POSITION_BIAS + 0.01
    assert bias_words(just_over) and bias_words(1 - just_over)
    assert not bias_words(0.5 + MAX_POSITION_BIAS - 0.01)
    assert not bias_words(just_over, max_position_bias=0.3)
    assert judge_line(RunSummary("r", 1, [], judge=JudgeDiagnostics())) == []  # nothing judged yet: no line


def test_an_unfinished_adaptive_plan_says_to_run_again():
    s = RunSummary("r", 1, [], adaptive=AdaptiveSummary(games_judged=5, games_full=20, games_saved=None, complete=False))
    assert [line.text for line in summary_lines(s)][1] == (
        "adaptive judging: 5 of 20 games judged (25%) so far; stopped early: none; not finished: run again to continue")


def test_housekeeping_interruption_and_regressions():
    s = RunSummary("r", 1, [], unfinished_runs=["r0"], renamed=[["a", "b"]], answers_new=3, games_new=4,
                   answer_errors=1)
    assert [line.text for line in housekeeping_lines(s)] == [
        "note: run r0 never finished (it was killed or crashed); it is now marked interrupted, and its stored work is "
        "reused",
        "note: contestant 'a' is now called 'b' (same configuration): its stored answers, verdicts and history carry "
        "over to the new name"]
    assert interrupted_line("SIGTERM", s, Path("out/arena.db")) == Line(
        "interrupted by SIGTERM: this run stored 3 new answers and 4 new verdicts (1 errors recorded); everything "
        "stored is kept in out/arena.db. Run the same command again to resume: stored work is not redone.", "yellow")
    assert interrupted_line("SIGINT", None).text.startswith("interrupted by SIGINT: nothing new was stored yet; "
                                                            "everything stored is kept. Run")
    frame = pd.DataFrame([{"model": "c1", "reason": "interval below", "previous_run_id": "r0"}])
    assert regression_lines(frame) == [
        Line("regressions: 1 contestant(s) got worse than in their previous run", "bold red"),
        Line("  c1: interval below (previous run r0)")]
    assert regression_lines(None) == [] and regression_lines(frame.iloc[:0]) == []


def test_printed_lines_are_plain_text_and_never_show_a_secret(capsys):
    register_secret("sk-very-secret-value-123")
    say([Line("warning: [bold]not markup[/bold] sk-very-secret-value-123", "yellow")])
    printed = capsys.readouterr().err
    assert "[bold]not markup[/bold]" in printed and "sk-very-secret-value-123" not in printed


def test_one_width_rule_for_every_table(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)
    assert render.terminal_width() == render.DEFAULT_WIDTH == 200
    monkeypatch.setenv("COLUMNS", "70")
    assert render.terminal_width() == 70
    monkeypatch.setenv("COLUMNS", "wide")
    assert render.terminal_width() == 200


@pytest.mark.parametrize("printer", ["frame", "leaderboard", "rows"])
def test_every_table_printer_keeps_to_the_width(printer, capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    monkeypatch.setenv("COLUMNS", "60")
    board = pd.DataFrame([{"model": "contestant-with-a-long-name", "score": 61.234, "ci_low": 55.0, "ci_high": 66.5,
                           "description": "x" * 150}])
    if printer == "frame":
        render.print_frame(board, render.Format.table, "a frame")
    elif printer == "leaderboard":
        render.print_leaderboard(board, render.Format.table, "a leaderboard")
    else:
        render.render_table(board.to_dict("records"), list(board.columns), "rows")
    out = capsys.readouterr().out
    assert "61.2" in out
    assert max(len(line) for line in out.splitlines()) <= 60
    if printer != "leaderboard":  # too wide: cells fold onto more lines, no text is cut
        assert "…" not in out and out.count("x") >= 150


def test_cell_formats():
    assert render.leaderboard_cell("score", 61.234) == "61.23"
    assert render.leaderboard_cell("score", math.nan) == render.leaderboard_cell("score", None) == "-"
    assert render.leaderboard_cell("category_scores", {"math": 40.0, "code": 60.5}) == "math 40.0 · code 60.5"
    assert render.figure("consistency", 0.456, percent=("consistency",)) == "46%"
    assert render.figure("games", 7) == "7" and render.figure("x", float("inf")) == "+inf"
    assert render.figure("x", 0.123456) == "0.12" and render.figure("x", pd.NA) == "-"


def test_help_texts_read_the_rating_defaults_from_the_config_model():
    runner = CliRunner()
    for command in ("score", "quality"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert f"{RatingConfig.model_fields['rounds'].default}" in result.output
        assert "{rounds}" not in result.output and "{seed}" not in result.output


def test_no_command_opens_the_store_itself():
    for path in (ROOT / "arena_eval" / "cli").glob("*.py"):
        source = path.read_text()
        assert "Store(" not in source and "RunLock(" not in source, path.name


def test_help_loads_neither_pandas_nor_the_providers_nor_the_pipeline():
    code = ("import sys; from arena_eval.cli import app\n"
            "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('pandas', 'numpy', 'aiohttp', 'arena_eval.pipeline', 'arena_eval.providers', "
            "'arena_eval.energy.codecarbon_import', 'arena_eval.batch', 'arena_eval.config') if m in sys.modules]\n"
            "print('loaded:', heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout, done.stdout[-500:]


def test_a_run_stopped_by_its_spending_cap_says_so_instead_of_incomplete():
    summary = RunSummary("r1", questions=10, contestants=["base", "c1"], capped=True, max_cost=0.5, spent=0.61,
                         requests_held_back=7)
    (line,) = stopped_lines(summary, "out/x")
    assert line.style == "red" and line.text.startswith("stopped at --max-cost $0.5: this run's replies cost $0.6100")
    assert "(7 held back)" in line.text and "out/x" in line.text
    (incomplete,) = stopped_lines(RunSummary("r1", questions=1, contestants=["b"], answers_missing=1), "out/x")
    assert incomplete.text.startswith("incomplete: results are stored in out/x")
    assert stopped_lines(RunSummary("r1", questions=1, contestants=["b"]), "out/x") == []


def test_tables_and_summary_lines_print_names_inert(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    render.render_table([{"model": "a\x1b]0;owned\x07[/b]", "score": 1}], ["model", "score"], "title \x1b[2J")
    say([Line("contestant \x1b[31mred[/x]", "red")])
    out, err = capsys.readouterr()
    assert "\x1b" not in out and "\x07" not in out and "\\x1b]0;owned\\x07[/b]" in out and "title \\x1b[2J" in out
    assert "\x1b" not in err and "contestant \\x1b[31mred[/x]" in err
