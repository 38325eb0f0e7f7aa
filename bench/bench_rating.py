"""Time compute_leaderboard (Bradley-Terry fit + bootstrap) on synthetic arena battles.

    python bench/bench_rating.py [--contestants 20] [--questions 500] [--rounds 1000] [--repeat 5]

Each contestant plays two games per question against the baseline (positions swapped), like the pipeline
does. A verdict is strong (weight 3), weak (weight 1) or a tie, drawn from random true strengths.
``--opponents random`` pairs contestants with each other instead, which exercises the full-Hessian solver.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

try:
    from arena_eval.rating import compute_leaderboard
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from arena_eval.rating import compute_leaderboard

BASELINE = "baseline"


def synthesize(contestants: int, questions: int, opponents: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = [f"contestant-{i:03d}" for i in range(contestants)]
    strength = dict(zip([BASELINE, *names], rng.normal(0.0, 1.0, contestants + 1)))
    strength[BASELINE] = 0.0
    first = np.repeat(names, questions)
    if opponents == "baseline":
        second = np.full(first.shape, BASELINE)
    else:
        pool = np.array([BASELINE, *names])
        second = pool[rng.integers(0, len(pool), first.size)]
        second = np.where(second == first, BASELINE, second)
    question = np.tile([f"q{i:05d}" for i in range(questions)], contestants)
    gap = np.array([strength[m] for m in first]) - np.array([strength[m] for m in second])

    rows = []
    for swapped in (False, True):  # two games, positions swapped
        latent = gap + rng.logistic(0.0, 1.0, gap.size)  # > 0: the contestant's answer is better
        winner = np.where(np.abs(latent) < 0.4, "tie", np.where(latent > 0, "model_a", "model_b"))
        weight = np.where(np.abs(latent) > 2.0, 3.0, 1.0)
        a, b = (second, first) if swapped else (first, second)
        if swapped:
            winner = np.where(winner == "tie", "tie", np.where(winner == "model_a", "model_b", "model_a"))
        rows.append(pd.DataFrame(
            {"question_id": question, "model_a": a, "model_b": b, "winner": winner, "weight": weight}
        ))
    return pd.concat(rows, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contestants", type=int, default=20)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--by", choices=["questions", "rows"], default="questions")
    parser.add_argument("--opponents", choices=["baseline", "random"], default="baseline")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    battles = synthesize(args.contestants, args.questions, args.opponents, args.seed)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        board = compute_leaderboard(battles, BASELINE, rounds=args.rounds, by=args.by)
        times.append(time.perf_counter() - start)

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}")
    print(f"battles: {len(battles)} rows, {args.contestants} contestants + baseline, {args.questions} questions, "
          f"opponents={args.opponents}, rounds={args.rounds}, by={args.by}")
    print(f"compute_leaderboard: median {statistics.median(times):.3f} s, min {min(times):.3f} s, "
          f"max {max(times):.3f} s over {args.repeat} runs")
    print(board.head(3).to_string(index=False, float_format=lambda x: f"{x:.2f}"))


if __name__ == "__main__":
    main()
