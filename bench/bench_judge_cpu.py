"""Whole-process CPU of `arena-eval judge`: N contestants x Q questions already answered, 2 (N-1) Q games judged
against a loopback fake server, one fresh `python -m arena_eval.cli judge` process per run.

    python bench/bench_judge_cpu.py [--checkout DIR ...] [--contestants 4] [--questions 500] [--repeat 3] \
        [--concurrency 64] [--latency 0] [--server lean|fake] [--profile DIR] [--quick]

Each checkout (default: this one) first answers every question once with its own code (`arena-eval answers`);
that store is kept as a template and copied afresh before each judge run, so every run judges the same 3000
games (the defaults) from the same answers. Runs of the checkouts are interleaved (A B A B ...), so a change
in the machine's load hits every checkout alike. What is measured is the child's own user + system CPU
(os.wait4), interpreter start-up and imports included: on a machine shared with other work, CPU time is
steadier than wall time. The server runs in its own process and is not counted.

With --profile DIR, one more cProfiled judge run per checkout writes DIR/<checkout name>.prof (left out of the
medians).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

import harness

CONFIG_NAME = "bench-judge-cpu"
PROMPT = "Question {i}: explain how topic number {t} relates to everyday engineering practice."


def write_config(folder: Path, base_url: str, contestants: int, questions: int, concurrency: int) -> Path:
    return harness.write_loopback_config(folder, base_url, name=CONFIG_NAME, prompt=PROMPT, contestants=contestants,
                                         questions=questions, concurrency=concurrency)


def cli_cmd(command: str, config: Path, profile: Path | None = None) -> list[str]:
    head = [sys.executable] + (["-m", "cProfile", "-o", str(profile)] if profile else []) + ["-m", "arena_eval.cli"]
    return head + [command, "--config", str(config), "--no-progress"]


def env_for(checkout: Path) -> dict[str, str]:
    env = harness.child_env()
    env["PYTHONPATH"] = str(checkout)  # that checkout's arena_eval, not this one's
    return env


def judged_games(db: Path) -> int:
    with sqlite3.connect(db) as con:
        games = con.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]
    con.close()
    return games


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", type=Path, action="append", default=[],
                        help="a checkout whose arena_eval to measure (repeatable; default: this one)")
    parser.add_argument("--contestants", type=int, default=4)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.0, help="fake server delay per request, seconds")
    parser.add_argument("--repeat", type=int, default=3, help="judge runs per checkout; medians are reported")
    parser.add_argument("--server", choices=sorted(harness.SERVERS), default="lean")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--profile", type=Path, help="one extra cProfiled run per checkout into this folder")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run (2 x 20, one run)")
    args = parser.parse_args()
    if args.quick:
        args.contestants, args.questions, args.repeat = 2, 20, 1
    if args.contestants < 2 or args.questions < 1 or args.repeat < 1:
        parser.error("need --contestants >= 2, --questions >= 1 and --repeat >= 1")
    checkouts = [c.resolve() for c in args.checkout] or [harness.ROOT]
    games = 2 * (args.contestants - 1) * args.questions

    print(harness.machine_line())
    print(f"load average before: {harness.load_average()}")
    work = Path(tempfile.mkdtemp(prefix="bench_judge_cpu_"))
    cpu: dict[Path, list[float]] = {c: [] for c in checkouts}
    try:
        with harness.ServerProcess(args.server, args.latency) as server:
            folders = {}
            for k, checkout in enumerate(checkouts):
                folder = work / f"checkout-{k}"
                folder.mkdir()
                config = write_config(folder, server.base_url, args.contestants, args.questions, args.concurrency)
                answered = harness.run_child(cli_cmd("answers", config), args.timeout, cwd=folder, env=env_for(checkout))
                if answered.returncode:
                    raise RuntimeError(f"{checkout}: answers exited with {answered.returncode}:\n{answered.output[-3000:]}")
                shutil.copytree(folder / "out", folder / "template")
                folders[checkout] = (folder, config)

            def judge_once(checkout: Path, profile: Path | None = None) -> float:
                folder, config = folders[checkout]
                shutil.rmtree(folder / "out")
                shutil.copytree(folder / "template", folder / "out")
                run = harness.run_child(cli_cmd("judge", config, profile), args.timeout, cwd=folder, env=env_for(checkout))
                stored = judged_games(folder / "out" / CONFIG_NAME / "arena.db")
                if run.returncode or stored != games:
                    raise RuntimeError(f"{checkout}: judge exited with {run.returncode}, {stored}/{games} games "
                                       f"stored:\n{run.output[-3000:]}")
                return run.cpu_s

            for r in range(args.repeat):
                for checkout in checkouts:
                    cpu[checkout].append(judge_once(checkout))
                    print(f"run {r + 1}/{args.repeat} {checkout}: {cpu[checkout][-1]:.2f} CPU-s", file=sys.stderr)
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                for k, checkout in enumerate(checkouts):
                    judge_once(checkout, (args.profile / f"{k}-{checkout.name}.prof").resolve())
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"load average after: {harness.load_average()}")
    print(f"`arena-eval judge`, {games} games, {args.contestants} x {args.questions}, concurrency {args.concurrency}, "
          f"{args.server} server, latency {args.latency:g} s; whole-process user + system CPU, s:")
    for checkout in checkouts:
        runs = " ".join(f"{x:.2f}" for x in cpu[checkout])
        print(f"  {checkout}: median {harness.median(cpu[checkout]):.2f}  (runs {runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
