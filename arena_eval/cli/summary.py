"""What a run's summary says on the terminal, as pure functions: a summary in, the lines to print out.

Nothing here prints or reads the store; `say` prints lines on stderr. tests/test_cli_format.py checks the text.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..records import RunSummary

ELO_PER_LOG_ODDS = 400 / math.log(10)

# Which meter measured what, in our words (the run's energy line; third-party logs stay quiet).
METER_WORDS = {
    "nvml": "NVML measured the GPUs' energy counters for local models",
    "nvml-power-poll": "NVML sampled the GPUs' power for local models (no energy counter on these GPUs)",
    "rapl": "RAPL measured this machine's CPU and memory energy for local models",
    "nvml+rapl": "NVML and RAPL measured the GPUs' and CPUs' energy counters for local models",
    "amdsmi": "AMD SMI measured the GPUs' energy counters for local models",
    "zeusd": "the serving machines' Zeus daemons measured their energy counters for remote models",
    "zeusd-power-poll": "the serving machines' Zeus daemons sampled their GPUs' power for remote models (no energy "
                        "counter on those GPUs)",
    "server": "the inference servers reported their own energy (/energy_metrics) for their models",
    "codecarbon": "CodeCarbon estimated this machine's energy for local models from CPU load and a default "
                  "power per core (no sensor could be read), so it is an estimate",
    "ecologits": "EcoLogits estimated API models' energy per request from the model's size and the tokens",
    "codecarbon-import": "imported CodeCarbon logs gave the energy of their runs",
    "none": "no meter could be read for local models, so their energy is unknown",
}


@dataclass(frozen=True)
class Line:
    """One line for stderr, and its colour (a rich style) if any. The text is plain: never read as markup."""

    text: str
    style: str | None = None


def say(lines: Iterable[Line]) -> None:
    """Print lines on stderr, one each, never with a known secret or a control character in them
    (console.for_terminal)."""
    from rich.text import Text

    from ..console import err, for_terminal

    for line in lines:
        err.print(Text(for_terminal(line.text), style=line.style or ""), highlight=False)


def _missing(value: Any) -> bool:
    return value is None or value != value


def housekeeping_lines(s: RunSummary) -> list[Line]:
    """What a run found and fixed in the folder before its work: killed runs, renamed contestants."""
    lines = [Line(f"note: run {run_id} never finished (it was killed or crashed); it is now marked interrupted, and "
                  "its stored work is reused") for run_id in s.unfinished_runs]
    lines += [Line(f"note: contestant {old!r} is now called {new!r} (same configuration): its stored answers, "
                   "verdicts and history carry over to the new name") for old, new in s.renamed]
    return lines


def counts_line(s: RunSummary) -> Line:
    """How many answers and games are new, stored before, failed or missing."""
    return Line(
        f"run {s.run_id}: answers {s.answers_new} new, {s.answers_cached} stored before, {s.answer_errors} errors"
        f"{f', {s.answers_missing} missing' if s.answers_missing else ''}; "
        f"games {s.games_new} new, {s.games_cached} stored before, {s.games_unparsed} unparsed, {s.game_errors} errors"
        f"{f', {s.games_suspicious} with suspicious judge replies' if s.games_suspicious else ''}"
        f"{f', {s.games_missing} missing' if s.games_missing else ''}")


def judge_line(s: RunSummary, max_position_bias: float | None = None) -> list[Line]:
    """The judge's position consistency and bias, when the run judged; `max_position_bias` defaults to
    judge_diagnostics.MAX_POSITION_BIAS (the bias its warnings name)."""
    d = s.judge
    if d is None or d.consistency is None:
        return []
    if max_position_bias is None:
        from ..judge_diagnostics import MAX_POSITION_BIAS

        max_position_bias = MAX_POSITION_BIAS
    first = d.first_position_win_rate if d.first_position_win_rate is not None else float("nan")
    return [Line(f"judge diagnostics: position consistency {100 * d.consistency:.0f}% of questions, "
                 f"position A wins {100 * first:.0f}% of decisive games"
                 f"{' (strong position bias)' if abs(first - 0.5) > max_position_bias else ''}"
                 + (f"; {100 * d.suspicious_rate:.0f}% of games had suspicious replies (a verdict label copied from"
                    " an answer, a reply cut off, or an answer holding a label: see suspicious_rate and judgments.flags)"
                    if d.suspicious_rate else ""))]


def style_line(s: RunSummary) -> list[Line]:
    """Style control's fitted effects in Elo per standard deviation, with their intervals."""
    if s.style is None:
        return []
    fitted = [f"{name.removeprefix('style_')} {c.elo_per_sd:+.0f}"
              + (f" [{ELO_PER_LOG_ODDS * c.ci_low:+.0f}, {ELO_PER_LOG_ODDS * c.ci_high:+.0f}]"
                 if not _missing(c.ci_low) else "")
              for name, c in s.style.items() if not _missing(c.coef)]
    return [Line(f"style control: Elo per standard deviation of {', '.join(fitted) or 'no varying feature'} "
                 "(positive: the judge favours more of it; removed from the scores)")]


def energy_line(s: RunSummary) -> list[Line]:
    """Which meters measured what, idle power, the judge's energy and the carbon factor."""
    if s.energy is None:
        return []
    e = s.energy
    idle = f"{e.idle_power_w:.1f} W" if e.idle_power_w is not None else "not measured"
    judge_wh = f"{e.judge_wh:.3g} Wh" if e.judge_wh is not None else "unknown"
    meters = "; ".join(METER_WORDS.get(m, m) for m in e.methods) or "no meter could read anything"
    return [Line(f"energy: {meters}. Idle power {idle}; judge {judge_wh}; carbon {e.carbon}")]


def guidance_lines(s: RunSummary) -> list[Line]:
    """The guidance stage's counts, and its first ten failures."""
    if s.guidance is None:
        return []
    g = s.guidance
    return [Line(f"guidance: {g.new} new, {g.stored} stored before, {g.errors} errors"),
            *(Line(f"  {line}") for line in g.error_lines[:10])]


def replica_lines(s: RunSummary) -> list[Line]:
    """Each replica's share of an endpoint with several base_urls: a line per replica (URLs shown without their
    passwords, as config.redact_url writes them)."""
    lines = []
    for endpoint in s.replicas:
        lines.append(Line(f"replicas of {endpoint.role} {endpoint.name!r}:"))
        for r in endpoint.replicas:
            latency = f", median latency {r.latency_p50_s:.3g} s" if r.latency_p50_s is not None else ""
            rested = f", rested {r.rests} time{'s' if r.rests != 1 else ''}" if r.rests else ""
            lines.append(Line(f"  {r.url}: {r.requests} requests, {r.errors} errors{latency}{rested}"))
    return lines


def adaptive_lines(s: RunSummary) -> list[Line]:
    """Adaptive judging: the share of games judged, what it saved, who stopped early and why."""
    a = s.adaptive
    if a is None:
        return []
    share = f"{a.games_judged} of {a.games_full} games judged ({100 * a.games_judged / max(a.games_full, 1):.0f}%)"
    stopped = ", ".join(f"{name} after {n} questions ({why})" for name, (n, why) in a.stopped.items()) or "none"
    if not a.complete:
        return [Line(f"adaptive judging: {share} so far; stopped early: {stopped}; not finished: run again to "
                     "continue")]
    saved = [f"{a.games_saved} games"]
    if a.tokens_saved is not None:
        saved.append(f"≈{a.tokens_saved:,.0f} judge tokens")
    if a.cost_saved is not None:
        saved.append(f"≈{a.cost_saved:.4f} in cost")
    if a.wh_saved is not None:
        saved.append(f"≈{a.wh_saved:.3g} Wh")
    return [Line(f"adaptive judging: {share}; saved {', '.join(saved)} (estimated from the judged games' average); "
                 f"stopped early: {stopped}")]


def judge_warning_lines(s: RunSummary) -> list[Line]:
    """A judge that fails quietly must fail loudly: too many unparsed games, contestants left without a score."""
    lines = []
    if s.judge_concerns:
        lines.append(Line(f"judge diagnostics: {len(s.judge_concerns)} concern(s) about the judges' reliability; "
                          "see `arena-eval judges` or the report"))
    lines += [Line(f"warning: {warning}", "yellow") for warning in s.judge_warnings]
    lines += [Line(f"calibration: {sentence}", "yellow") for sentence in s.judge_bias]
    lines += adaptive_lines(s)
    lines += [Line(f"judge {judge!r}: {count} game(s) judged without a reference answer (the question has none, or "
                   "the reference contestant has no answer to it)")
              for judge, count in s.games_without_reference.items() if count]
    if s.unrated:
        lines.append(Line(f"no parsed verdict at all for {', '.join(s.unrated)}: no score (exit 2); see the warnings "
                          "above and the judge's replies in the report", "red"))
    return lines


def summary_lines(s: RunSummary) -> list[Line]:
    """Everything a finished run's summary says after the leaderboard, in order: counts, judge diagnostics,
    style control, energy, guidance, replicas, the judges' warnings, errors by contestant."""
    lines = [counts_line(s), *judge_line(s), *style_line(s), *energy_line(s), *guidance_lines(s),
             *replica_lines(s), *judge_warning_lines(s)]
    if s.errors_by_contestant:
        lines.append(Line("errors by contestant: "
                          + ", ".join(f"{k}: {v}" for k, v in sorted(s.errors_by_contestant.items()))))
    return lines


def waiting_line(s: RunSummary) -> Line:
    """`run --no-wait`: the batches left at the provider."""
    return Line(f"submitted without waiting: {len(s.batches_waiting)} batch(es) at the provider "
                f"({', '.join(s.batches_waiting)}); run the same command again to collect their results and score "
                "(a batch ends within 24 hours)")


def stopped_lines(s: RunSummary, output_dir: Any) -> list[Line]:
    """Why a finished run's work is not whole: stopped by --max-cost (exit 4: what it spent and held back), or
    incomplete (exit 2: run again to fill in what is missing); nothing when it is complete."""
    if s.capped:
        from ..spending import capped_message

        return [Line(capped_message(s.max_cost or 0.0, s.spent or 0.0, s.requests_held_back, s.unpriced_replies,
                                    output_dir), "red")]
    if not s.complete:
        return [Line(f"incomplete: results are stored in {output_dir}; fix the causes above and run again to fill in "
                     "only what is missing", "red")]
    return []


def interrupted_line(signal_name: str, s: RunSummary | None, db: Any = None) -> Line:
    """A run stopped by a signal: what it stored, that nothing is lost, how to resume."""
    kept = "nothing new was stored yet"
    if s is not None:
        errors = s.answer_errors + s.game_errors
        kept = (f"this run stored {s.answers_new} new answers and {s.games_new} new verdicts"
                f"{f' ({errors} errors recorded)' if errors else ''}")
    where = f" in {db}" if db is not None else ""
    return Line(f"interrupted by {signal_name}: {kept}; everything stored is kept{where}. Run the same command again "
                "to resume: stored work is not redone.", "yellow")


def regression_lines(regressions: Any) -> list[Line]:
    """Contestants that got worse than in their previous run (history.find_regressions' frame, or None)."""
    if regressions is None or regressions.empty:
        return []
    return [Line(f"regressions: {len(regressions)} contestant(s) got worse than in their previous run", "bold red"),
            *(Line(f"  {r.model}: {r.reason} (previous run {r.previous_run_id})")
              for r in regressions.itertuples(index=False))]
