"""Orchestration overhead: N contestants x Q questions answered and judged against a fake server with latency.

    python bench/bench_orchestration.py [--contestants 4] [--questions 500] [--concurrency 64,256] \
        [--latency 0.2] [--repeat 5] [--server fake|lean] [--score] [--timeline] [--quick]

The fake OpenAI-compatible server (tests/fake_server.py, `--latency` seconds per request, no faults) runs in its
own process for the whole benchmark. Each measured run is a fresh child process on an empty output folder that
runs the pipeline's `answers` and `judge` stages together (what `arena-eval run` does before scoring; `--score`
adds the scoring stage): every contestant answers every question, side by side, each with `concurrency`
requests in flight, and the judge (`concurrency` games in flight) judges two games per non-baseline answer as
soon as the baseline's answer to the same question exists.

Reported per concurrency (medians over --repeat runs):
- run s: the pipeline's wall time inside the child (Arena.run, after imports and config loading);
- bound s: the least time any scheduler could take with requests that cost no CPU (see `ideal_makespan`);
- ratio: run s / bound s (target at concurrency 256: <= 1.2);
- CPU-s per 1000 requests of the arena-eval child during the run (target: < 0.5), and of the whole child
  process including interpreter start-up and imports; the fake server's CPU is read separately and excluded.
Requests are counted from the store: stored answers plus every judge attempt (no faults, so no retries).
"""

from __future__ import annotations

import argparse
import heapq
import json
import shutil
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import harness

CONFIG_NAME = "bench-orchestration"
PROMPT = ("Question {i}: explain, in a few sentences and with one concrete example, how topic number {t} "
          "relates to everyday engineering practice and why it matters.")


# --- the bound -------------------------------------------------------------------------------------------------

def ideal_makespan(contestants: int, questions: int, answer_concurrency: int, judge_concurrency: int,
                   latency: float) -> float:
    """The shortest possible run when every request takes exactly `latency` and costs nothing else.

    Contestants run side by side, each with its own pool of `answer_concurrency`, so question i's answers all
    arrive at (i // answer_concurrency + 1) * latency. A question then releases 2 games per non-baseline
    contestant, and the judge pool (`judge_concurrency` slots) starts each game as soon as a slot is free.
    The makespan is the later of the last answer and the last game.
    """
    last_answer = -(-questions // answer_concurrency) * latency
    games_per_question = 2 * (contestants - 1)
    free = [0.0] * judge_concurrency  # when each judge slot is next free
    finish = last_answer
    for wave in range(-(-questions // answer_concurrency)):
        released = (wave + 1) * latency
        in_wave = min(answer_concurrency, questions - wave * answer_concurrency)
        for _ in range(in_wave * games_per_question):
            start = max(released, heapq.heappop(free))
            heapq.heappush(free, start + latency)
            finish = max(finish, start + latency)
    return finish


def naive_bound(requests: int, concurrency_total: int, latency: float) -> float:
    """requests x latency / concurrency with every pool counted as interchangeable: a looser bound."""
    return requests * latency / concurrency_total


# --- one run ---------------------------------------------------------------------------------------------------

@dataclass
class Run:
    concurrency: int
    run_s: float
    run_cpu_s: float
    process_cpu_s: float
    process_wall_s: float
    peak_rss: int
    server_cpu_s: float | None
    requests: int


def write_inputs(folder: Path, base_url: str, contestants: int, questions: int, concurrency: int) -> Path:
    return harness.write_loopback_config(folder, base_url, name=CONFIG_NAME, prompt=PROMPT, contestants=contestants,
                                         questions=questions, concurrency=concurrency,
                                         file_name=f"config-{concurrency}.yaml", rating={"rounds": 100})


def count_requests(db: Path) -> tuple[int, int, int]:
    """(answers, judge attempts, errors) stored by the run."""
    with sqlite3.connect(db) as con:
        answers = con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        attempts = con.execute("SELECT COALESCE(SUM(attempts), 0) FROM judgments").fetchone()[0]
        errors = con.execute("SELECT COUNT(*) FROM errors").fetchone()[0]
    con.close()
    return answers, attempts, errors


def timeline(db: Path) -> str:
    """When the answers and the verdicts of a finished run were stored, against the run's start: where the
    wall time went (the first verdict's delay is the judge's late start; the rest is its pace)."""
    with sqlite3.connect(db) as con:
        started = con.execute("SELECT started_at FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()[0]
        answers = sorted(t - started for (t,) in con.execute("SELECT created_at FROM answers"))
        verdicts = sorted(t - started for (t,) in con.execute("SELECT created_at FROM judgments"))
    con.close()
    if not answers or not verdicts:
        return "timeline: nothing stored"
    per = [0] * (int(verdicts[-1] * 10) + 1)
    for t in verdicts:
        per[int(t * 10)] += 1
    return (f"timeline: answers stored {answers[0]:.2f}-{answers[-1]:.2f} s, verdicts {verdicts[0]:.2f}-"
            f"{verdicts[-1]:.2f} s after the run's start; verdicts per 100 ms: {' '.join(map(str, per))}")


def run_once(config: Path, folder: Path, server: harness.ServerProcess, concurrency: int, expected_answers: int,
             expected_games: int, score: bool, timeout: float, profile: Path | None = None) -> Run:
    shutil.rmtree(folder / "out", ignore_errors=True)
    result_file = folder / "result.json"
    result_file.unlink(missing_ok=True)
    stages = ("answers", "judge", "score") if score else ("answers", "judge")
    cmd = harness.arena_child_cmd(config, stages, result_file, profile)
    server_cpu0 = server.cpu_seconds()
    child = harness.run_child(cmd, timeout, env=harness.child_env())
    server_cpu1 = server.cpu_seconds()
    if child.returncode != 0 or not result_file.exists():
        raise RuntimeError(f"run at concurrency {concurrency} exited with {child.returncode}:\n{child.output[-3000:]}")
    inside = json.loads(result_file.read_text())
    answers, attempts, errors = count_requests(folder / "out" / CONFIG_NAME / "arena.db")
    if answers != expected_answers or attempts < expected_games or errors or not inside["complete"]:
        raise RuntimeError(f"incomplete run: {answers}/{expected_answers} answers, {attempts} judge requests for "
                           f"{expected_games} games, {errors} errors")
    return Run(concurrency, inside["run_s"], inside["run_cpu_s"], child.cpu_s, child.wall_s, child.peak_rss,
               None if server_cpu0 is None or server_cpu1 is None else server_cpu1 - server_cpu0,
               answers + attempts)


# --- main --------------------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contestants", type=int, default=4, help="N, the baseline included (default 4)")
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--concurrency", default="64,256", help="contestant and judge concurrency, comma separated")
    parser.add_argument("--latency", type=float, default=0.2, help="fake server delay per request, seconds")
    parser.add_argument("--repeat", type=int, default=5, help="runs per concurrency; medians are reported")
    parser.add_argument("--server", choices=sorted(harness.SERVERS), default="fake")
    parser.add_argument("--score", action="store_true", help="also run the scoring stage (100 bootstrap rounds)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed for one run")
    parser.add_argument("--json", type=Path, help="also write every run's numbers to this file")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run (2 x 20, latency 10 ms)")
    parser.add_argument("--timeline", action="store_true",
                        help="print when answers and verdicts were stored in each level's last run")
    parser.add_argument("--profile", type=Path,
                        help="after the measured runs, one cProfiled run per concurrency into PROFILE-<c>.prof")
    args = parser.parse_args()
    if args.quick:
        args.contestants, args.questions, args.concurrency, args.latency, args.repeat = 2, 20, "8", 0.01, 1
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.contestants < 2 or args.questions < 1 or args.repeat < 1 or not levels:
        parser.error("need --contestants >= 2, --questions >= 1, --repeat >= 1 and a concurrency")

    n, q, latency = args.contestants, args.questions, args.latency
    answers, games = n * q, 2 * (n - 1) * q
    load_before = harness.load_average()
    runs: dict[int, list[Run]] = {c: [] for c in levels}
    work = Path(tempfile.mkdtemp(prefix="bench_orchestration_"))
    try:
        with harness.ServerProcess(args.server, latency) as server:
            configs = {c: write_inputs(work, server.base_url, n, q, c) for c in levels}
            for r in range(args.repeat):
                for c in levels:  # interleaved, so a change in machine load hits every level alike
                    run = run_once(configs[c], work, server, c, answers, games, args.score, args.timeout)
                    runs[c].append(run)
                    if args.timeline and r == args.repeat - 1:
                        print(f"concurrency {c}, {timeline(work / 'out' / CONFIG_NAME / 'arena.db')}", file=sys.stderr)
                    print(f"run {r + 1}/{args.repeat} at concurrency {c}: {run.run_s:.2f} s, {run.requests} requests, "
                          f"CPU {run.run_cpu_s:.2f} s (process {run.process_cpu_s:.2f} s, server "
                          f"{run.server_cpu_s if run.server_cpu_s is not None else float('nan'):.2f} s)", file=sys.stderr)
            for c in levels if args.profile else ():  # extra runs, left out of the medians: cProfile slows them
                profile = args.profile.with_name(f"{args.profile.stem}-{c}.prof")
                run_once(configs[c], work, server, c, answers, games, args.score, args.timeout, profile)
                print(f"profile of a run at concurrency {c}: {profile}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(harness.machine_line())
    print(harness.code_line())
    print(f"load average before/after: {load_before} / {harness.load_average()} (1, 5, 15 min; other work on the "
          "machine competes for the cores)")
    print(f"setup: {n} contestants (baseline included) x {q} questions, answers + judge"
          f"{' + score' if args.score else ''}, {args.server} server with {latency:g} s latency in its own process; "
          f"{answers} answers + {games} games per run; medians of {args.repeat} run(s)")
    print("bound = ideal makespan: contestants side by side, judging streams behind collection, every request "
          "takes exactly the latency and no CPU; naive = requests x latency / (N x c + c)")
    header = (f"{'conc':>5} {'requests':>8} {'run s':>7} {'bound s':>7} {'ratio':>6} {'naive s':>7} {'req/s':>7} "
              f"{'CPU-s/1k req':>12} {'proc CPU-s/1k':>13} {'server CPU-s/1k':>15} {'peak RSS MiB':>12}")
    print(header)
    print("-" * len(header))
    summary = []
    for c in levels:
        rs = runs[c]
        requests = harness.median([r.requests for r in rs])
        run_s = harness.median([r.run_s for r in rs])
        bound = ideal_makespan(n, q, c, c, latency)
        cpu_k = harness.median([1000 * r.run_cpu_s / r.requests for r in rs])
        proc_k = harness.median([1000 * r.process_cpu_s / r.requests for r in rs])
        server = [1000 * r.server_cpu_s / r.requests for r in rs if r.server_cpu_s is not None]
        server_k = harness.median(server) if server else float("nan")
        rss = harness.median([r.peak_rss for r in rs]) / harness.MIB
        ratio = harness.median([r.run_s / bound for r in rs])
        print(f"{c:>5} {requests:>8.0f} {run_s:>7.2f} {bound:>7.2f} {ratio:>5.2f}x "
              f"{naive_bound(answers + games, n * c + c, latency):>7.2f} {requests / run_s:>7.0f} "
              f"{cpu_k:>12.3f} {proc_k:>13.3f} {server_k:>15.3f} {rss:>12.1f}")
        summary.append({"concurrency": c, "ratio": ratio, "cpu_per_1k": cpu_k,
                        "runs": [r.__dict__ for r in rs], "bound_s": bound})
    top = max(levels)
    top_row = next(s for s in summary if s["concurrency"] == top)
    ok_ratio, ok_cpu = top_row["ratio"] <= 1.2, all(s["cpu_per_1k"] < 0.5 for s in summary)
    print(f"target: run <= 1.2x bound at concurrency {top}: {'PASS' if ok_ratio else 'FAIL'} ({top_row['ratio']:.2f}x); "
          f"CPU < 0.5 s per 1000 requests: {'PASS' if ok_cpu else 'FAIL'} "
          f"({', '.join(format(s['cpu_per_1k'], '.3f') for s in summary)})")
    if args.json:
        args.json.write_text(json.dumps({"setup": vars(args) | {"json": str(args.json)}, "levels": summary}, indent=2,
                                        default=str))
    return 0 if (ok_ratio and ok_cpu) or args.quick else 2  # quick: a smoke run, its numbers mean nothing


if __name__ == "__main__":
    sys.exit(main())
