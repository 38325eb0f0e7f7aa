"""Resume cost: a re-run when every answer and every judgment is already stored.

    python bench/bench_resume.py [--questions 5000] [--contestants 2] [--repeat 5] [--profile FILE] [--quick]

Setup (not measured): the fake OpenAI-compatible server (tests/fake_server.py, no latency) in its own process,
and one full `arena-eval run` that fills an output folder: with the defaults 2 contestants x 5000 questions =
10,000 answers and 2 x 5000 = 10,000 judgments (two games per non-baseline answer). The server is then stopped,
so a re-run that sent any request would fail loudly (connection refused → recorded errors → incomplete run).

Measured, --repeat times each, alternating, each in a fresh child process on the filled folder:
- `resume`: the pipeline's answers + judge stages (Arena.run, timed inside the child after imports): what a
  re-run spends finding out that nothing is left to do;
- `cli run`: the whole `arena-eval run --config ... --no-progress` command, spawn to exit: interpreter start-up,
  the same resume, then scoring (Bradley-Terry + 1000 bootstrap rounds), leaderboard files and report.
Each run must report every answer and every game as cached and nothing new. Target: seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import harness
import yaml

CONFIG_NAME = "bench-resume"
TARGET_S = 10.0  # "seconds": the whole `arena-eval run` re-run, start-up and scoring included
PROMPT = "Question {i}: what are the trade-offs of approach number {t}, and when would you pick it? Answer briefly."


def write_inputs(folder: Path, base_url: str, contestants: int, questions: int) -> Path:
    qfile = folder / "questions.jsonl"
    with qfile.open("w", encoding="utf-8") as handle:
        for i in range(questions):
            handle.write(json.dumps({"id": f"q{i:06d}", "prompt": PROMPT.format(i=i, t=i % 89)}) + "\n")
    endpoint = {"provider": "openai", "base_url": base_url, "concurrency": 64,
                "retry_initial_s": 0.05, "retry_max_s": 0.2, "max_attempts": 2}
    names = [f"c{k}" for k in range(contestants)]
    config = {
        "name": CONFIG_NAME,
        "questions": str(qfile),
        "output": str(folder / "out"),
        "baseline": names[0],
        "judge": {**endpoint, "model": "judge-model"},
        "contestants": [{**endpoint, "name": n, "model": f"model-{n}"} for n in names],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def check_cached(summary: dict, answers: int, games: int, what: str) -> None:
    got = (summary.get("answers_cached"), summary.get("answers_new"), summary.get("games_cached"),
           summary.get("games_new"), summary.get("answer_errors"), summary.get("game_errors"))
    if got != (answers, 0, games, 0, 0, 0):
        raise RuntimeError(f"{what}: expected {answers} cached answers and {games} cached games, nothing new and no "
                           f"errors; the run reports {summary}")


def last_summary(db: Path) -> dict:
    import sqlite3

    with sqlite3.connect(db) as con:
        row = con.execute("SELECT summary_json FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
    con.close()
    return json.loads(row[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=5000)
    parser.add_argument("--contestants", type=int, default=2, help="the baseline included (default 2)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed for one child")
    parser.add_argument("--profile", type=Path, help="after the measured runs, one cProfiled resume into this file")
    parser.add_argument("--quick", action="store_true",
                        help="a seconds-long smoke run: 2 x 20, one resume, no separate `arena-eval run`")
    args = parser.parse_args()
    if args.quick:
        args.questions, args.repeat = 20, 1
    if args.contestants < 2 or args.questions < 1 or args.repeat < 1:
        parser.error("need --contestants >= 2, --questions >= 1 and --repeat >= 1")
    answers, games = args.contestants * args.questions, 2 * (args.contestants - 1) * args.questions

    load_before = harness.load_average()
    work = Path(tempfile.mkdtemp(prefix="bench_resume_"))
    env = harness.child_env()
    resume_runs: list[dict] = []
    cli_runs: list[harness.ChildRun] = []
    try:
        with harness.ServerProcess("fake", 0.0) as server:
            config = write_inputs(work, server.base_url, args.contestants, args.questions)
            fill = harness.run_child([sys.executable, "-m", "arena_eval.cli", "run", "--config", str(config),
                                      "--no-progress"], args.timeout, env=env)
            if fill.returncode != 0:
                raise RuntimeError(f"filling run exited with {fill.returncode}:\n{fill.output[-3000:]}")
            print(f"store filled: {answers} answers, {games} judgments in {fill.wall_s:.1f} s", file=sys.stderr)
        db = work / "out" / CONFIG_NAME / "arena.db"
        stages = ("answers", "judge")
        for r in range(args.repeat):  # the server is gone: any request would fail
            result = work / "result.json"
            child = harness.run_child(harness.arena_child_cmd(config, stages, result), args.timeout, env=env)
            if child.returncode != 0:
                raise RuntimeError(f"resume exited with {child.returncode}:\n{child.output[-3000:]}")
            inside = json.loads(result.read_text())
            check_cached(inside["summary"], answers, games, "resume")
            resume_runs.append(inside | {"process_wall_s": child.wall_s, "peak_rss": child.peak_rss})
            print(f"repeat {r + 1}/{args.repeat}: resume {inside['run_s']:.2f} s (CPU {inside['run_cpu_s']:.2f} s)",
                  file=sys.stderr)
            if args.quick:  # the filling run went through the same command already
                continue
            cli = harness.run_child([sys.executable, "-m", "arena_eval.cli", "run", "--config", str(config),
                                     "--no-progress"], args.timeout, env=env)
            if cli.returncode != 0:
                raise RuntimeError(f"`arena-eval run` exited with {cli.returncode}:\n{cli.output[-3000:]}")
            check_cached(last_summary(db), answers, games, "cli run")
            cli_runs.append(cli)
            print(f"repeat {r + 1}/{args.repeat}: `arena-eval run` {cli.wall_s:.2f} s", file=sys.stderr)
        if args.profile:
            harness.run_child(harness.arena_child_cmd(config, stages, work / "profiled.json", args.profile),
                              args.timeout, env=env)
            print(f"profile of one resume: {args.profile}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = harness.median
    print(harness.machine_line())
    print(harness.code_line())
    print(f"load average before/after: {load_before} / {harness.load_average()} (1, 5, 15 min; other work on the "
          "machine competes for the cores)")
    print(f"setup: {args.contestants} contestants x {args.questions} questions = {answers} answers and {games} "
          f"judgments already stored; fake server stopped; medians of {args.repeat} run(s)")
    rows = [
        ("resume (answers + judge stages, in-run)", med([r["run_s"] for r in resume_runs]),
         med([r["run_cpu_s"] for r in resume_runs]), med([r["peak_rss"] for r in resume_runs])),
        ("resume child, spawn to exit", med([r["process_wall_s"] for r in resume_runs]), None, None),
    ]
    if cli_runs:
        rows.append(("`arena-eval run` (+ start-up, scoring, files)", med([c.wall_s for c in cli_runs]),
                     med([c.cpu_s for c in cli_runs]), med([c.peak_rss for c in cli_runs])))
    print(f"{'what':<48} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>12}")
    for name, wall, cpu, rss in rows:
        print(f"{name:<48} {wall:>8.2f} {cpu if cpu is not None else float('nan'):>8.2f} "
              f"{rss / harness.MIB if rss else float('nan'):>12.1f}")
    items = answers + games
    print(f"resume: {1e6 * rows[0][1] / items:.0f} µs per stored item ({items} items)")
    name, wall = rows[-1][0], rows[-1][1]
    ok = wall < TARGET_S
    print(f"target: a re-run with everything stored takes seconds (< {TARGET_S:g} s): {'PASS' if ok else 'FAIL'} "
          f"({name.split(' (')[0]}: {wall:.2f} s)")
    return 0 if ok or args.quick else 2


if __name__ == "__main__":
    sys.exit(main())
