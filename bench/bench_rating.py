"""Time compute_leaderboard (Bradley-Terry fit + bootstrap) on synthetic arena battles.

    python bench/bench_rating.py [--contestants 20] [--questions 500] [--rounds 1000] [--repeat 5] [--style]

Each contestant plays two games per question against the baseline (positions swapped), like the pipeline
does. A verdict is strong (weight 3), weak (weight 1) or a tie, drawn from random true strengths.
``--opponents random`` pairs contestants with each other instead, which exercises the full-Hessian solver.
``--style`` gives every answer random style counts (length, headers, list items, bold; each contestant has
its own verbosity), lets the judge favour longer answers, and times the style-controlled fit.
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
    from arena_eval.style import STYLE_COLUMNS
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from arena_eval.rating import compute_leaderboard
    from arena_eval.style import STYLE_COLUMNS

BASELINE = "baseline"


def synthesize(contestants: int, questions: int, opponents: str, seed: int, style: bool = False) -> pd.DataFrame:
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
    features = answer_style_features(rng, [BASELINE, *names], first, second, question) if style else None
    if style:
        gap = gap + 1.5 * features[:, 0]  # the judge likes longer answers

    rows = []
    for swapped in (False, True):  # two games, positions swapped
        latent = gap + rng.logistic(0.0, 1.0, gap.size)  # > 0: the contestant's answer is better
        winner = np.where(np.abs(latent) < 0.4, "tie", np.where(latent > 0, "model_a", "model_b"))
        weight = np.where(np.abs(latent) > 2.0, 3.0, 1.0)
        a, b = (second, first) if swapped else (first, second)
        if swapped:
            winner = np.where(winner == "tie", "tie", np.where(winner == "model_a", "model_b", "model_a"))
        frame = pd.DataFrame({"question_id": question, "model_a": a, "model_b": b, "winner": winner, "weight": weight})
        if style:  # both games judge the same two answers: one set of features, its sign following model_a
            for column, values in zip(STYLE_COLUMNS, (-features if swapped else features).T):
                frame[column] = values
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def answer_style_features(rng, models, first, second, question) -> np.ndarray:
    """(a − b) / (a + b + 1) of length, headers, list items and bold for each (first, second) answer pair."""
    verbosity = dict(zip(models, rng.lognormal(0.0, 0.5, len(models))))
    questions = pd.factorize(question)[0]
    # One answer per model and question: draw every model's counts, then look up both sides of each battle.
    means = np.array([300.0, 1.5, 5.0, 3.0])
    counts = {
        m: rng.poisson(means * verbosity[m] * rng.lognormal(0.0, 0.4, (questions.max() + 1, 1)))
        for m in models
    }
    a = np.stack([counts[m][q] for m, q in zip(first, questions)])
    b = np.stack([counts[m][q] for m, q in zip(second, questions)])
    return (a - b) / (a + b + 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contestants", type=int, default=20)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--by", choices=["questions", "rows"], default="questions")
    parser.add_argument("--opponents", choices=["baseline", "random"], default="baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--style", action="store_true", help="style control (length and markdown features)")
    args = parser.parse_args()

    battles = synthesize(args.contestants, args.questions, args.opponents, args.seed, args.style)
    style = list(STYLE_COLUMNS) if args.style else None
    times, cpu = [], []
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        board = compute_leaderboard(battles, BASELINE, rounds=args.rounds, by=args.by, style=style)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}")
    print(f"battles: {len(battles)} rows, {args.contestants} contestants + baseline, {args.questions} questions, "
          f"opponents={args.opponents}, rounds={args.rounds}, by={args.by}, style control {'on' if style else 'off'}")
    print(f"compute_leaderboard: median {statistics.median(times):.3f} s, min {min(times):.3f} s, "
          f"max {max(times):.3f} s over {args.repeat} runs; CPU time median {statistics.median(cpu):.3f} s")
    print(board.head(3).to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    for column, fitted in board.attrs.get("style_coefficients", {}).items():
        print(f"{column}: {fitted['coef']:+.3f} log-odds per sd [{fitted['ci_low']:+.3f}, {fitted['ci_high']:+.3f}], "
              f"{fitted['elo_per_sd']:+.1f} Elo per sd")


if __name__ == "__main__":
    main()
