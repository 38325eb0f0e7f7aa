"""Time `arena-eval compare --all` on a battles file (issue 22's target: 50 contestants × 500 questions × 1000
rounds in ≤ 5 s on 2 cores).

    python bench/bench_compare.py [--contestants 50] [--questions 500] [--rounds 1000] [--repeat 5] [--quick]

The battles are bench_rating.py's synthetic arena (every contestant plays two games per question against the
baseline, positions swapped, verdicts strong, plain or tie), written as an arena-hard battles JSONL file (a strong
verdict as three rows, as arena-hard writes it). Two measurements:

- the command: `python -m arena_eval.cli compare --battles F --baseline baseline --all --format csv`, a fresh
  process each time (start-up, reading the file, the bootstrap, every pair), its wall time and CPU time
  (os.wait4), median of --repeat runs;
- the parts, in this process, median of --repeat: reading the file (interop.read_battles), the leaderboard's
  fit and bootstrap (rating.leaderboard.leaderboard_with_rounds), each model's points per question
  (paired.question_points), and the pairs (paired.compare_pairs: paired differences, counts, sign tests, Holm).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
from bench_rating import BASELINE, synthesize

from arena_eval.interop import read_battles
from arena_eval.rating.leaderboard import leaderboard_with_rounds
from arena_eval.rating.paired import all_pairs, compare_pairs, question_points


def write_battles(path: Path, contestants: int, questions: int, seed: int = 0) -> int:
    frame = synthesize(contestants, questions, "baseline", seed)
    rows = 0
    with path.open("w", encoding="utf-8") as handle:
        for q, a, b, winner, weight in frame.itertuples(index=False):
            line = json.dumps({"question_id": q, "model_a": a, "model_b": b, "winner": winner}) + "\n"
            handle.write(line * int(weight))
            rows += int(weight)
    return rows


def time_command(path: Path, rounds: int) -> tuple[float, float, int]:
    """Wall and CPU seconds of one `compare --all` process, and the pairs it printed."""
    command = [sys.executable, "-m", "arena_eval.cli", "compare", "--battles", str(path), "--baseline", BASELINE,
               "--all", "--rounds", str(rounds), "--format", "csv"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, env=harness.child_env(), cwd=harness.ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"compare failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout.decode().count("\n") - 1


def time_parts(path: Path, rounds: int) -> dict[str, float]:
    times = {}
    started = time.perf_counter()
    battles = read_battles(path)
    times["read the battles file"] = time.perf_counter() - started
    started = time.perf_counter()
    board, rated = leaderboard_with_rounds(battles, BASELINE, rounds=rounds, seed=42)
    times["fit + bootstrap + ranks"] = time.perf_counter() - started
    started = time.perf_counter()
    points = question_points(battles, BASELINE)
    times["points per question"] = time.perf_counter() - started
    started = time.perf_counter()
    compare_pairs(rated, points, all_pairs(board.model.tolist()), family=True)
    times["every pair (differences, counts, sign tests, Holm)"] = time.perf_counter() - started
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contestants", type=int, default=50)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="5 contestants, 40 questions, 50 rounds, one run")
    args = parser.parse_args()
    if args.quick:
        args.contestants, args.questions, args.rounds, args.repeat = 5, 40, 50, 1
    print(harness.machine_line())
    print(harness.code_line())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "battles.jsonl"
        rows = write_battles(path, args.contestants, args.questions)
        print(f"{args.contestants} contestants + baseline, {args.questions} questions, {rows:,} battle rows, "
              f"{args.rounds} rounds; load average before: {harness.load_average()}")
        runs = [time_command(path, args.rounds) for _ in range(args.repeat)]
        walls, cpus, pairs = [r[0] for r in runs], [r[1] for r in runs], runs[0][2]
        print(f"compare --all ({pairs} pairs), whole process: median {statistics.median(walls):.2f} s wall "
              f"(min {min(walls):.2f}, max {max(walls):.2f}), median CPU {statistics.median(cpus):.2f} s")
        parts = [time_parts(path, args.rounds) for _ in range(args.repeat)]
        for name in parts[0]:
            print(f"  {name:52s} median {statistics.median(p[name] for p in parts):.3f} s")
    print(f"load average after: {harness.load_average()}")


if __name__ == "__main__":
    main()
