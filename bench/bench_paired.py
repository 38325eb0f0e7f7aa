"""Paired comparisons and rank intervals against known truth (issue 22; docs/design.md §3.4.8).

    python bench/bench_paired.py [--seeds 200] [--questions 500] [--rounds 1000] [--own-noise 0.3]
                                 [--experiments power,null,ranks] [--quick]

The simulated benchmark. Each question q has a difficulty h_q ~ N(0, DIFFICULTY_SD) shared by every contestant
(on a hard question they all tend to lose to the baseline's answer, so outcomes on a question are correlated);
contestant m's answer to q is a gap d = θ_m + h_q + e_mq against the baseline's answer, with its own variation
e_mq ~ N(0, --own-noise). The judge sees each answer pair in both positions and prefers the contestant's answer
with probability σ(JUDGE_SLOPE · d) in each game, independently: the stronger answer with a known probability,
higher the larger the gap (σ(4 · 0.3) = 0.77 at one own-noise SD). No ties; every verdict weighs 1. A contestant's
true score is 100 · E[σ(JUDGE_SLOPE · (θ + h + e))] over questions (numerical quadrature), its true rank that
score's rank.

Three experiments, each over --seeds seeds (a seed draws one benchmark and seeds its bootstrap), rated and
compared exactly as `arena-eval compare --battles` does (rating.compare_battles' parts: the leaderboard's
bootstrap by question, then the paired table):

1. power: contestants A and B with true scores 53 and 50 (θ found by root-finding); how often the paired
   bootstrap gives p < 0.05, how often the sign test over questions does, and how often the overlap rule (the two
   95 % intervals do not overlap) does, on the same data;
2. false positives: A and B of equal strength (score 50); the share of p < 0.05, with its binomial standard error;
3. rank coverage: six contestants with true scores 46, 47.5, 49, 51, 52.5, 54 and the baseline (50); the share of
   contestant-seeds whose [rank_low, rank_high] holds the true rank (the baseline, pinned at 50, counted apart).

tests/test_paired.py runs a few seeds of the same code (`simulate`, `experiment`).
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (puts this checkout first on sys.path)

from arena_eval.rating.compare import compare_rated  # noqa: E402
from arena_eval.rating.leaderboard import leaderboard_with_rounds  # noqa: E402
from arena_eval.rating.paired import question_points  # noqa: E402

DIFFICULTY_SD = 3.0
JUDGE_SLOPE = 4.0
OWN_NOISE = 0.3
BASELINE = "base"
_HERMITE = np.polynomial.hermite_e.hermegauss(200)
# 1.5 points apart, the baseline's 50 among them: close enough that ranks change from round to round.
RANK_SCORES = {"c46": 46.0, "c47.5": 47.5, "c49": 49.0, "c51": 51.0, "c52.5": 52.5, "c54": 54.0}


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))


def true_score(theta: float, own_noise: float = OWN_NOISE) -> float:
    """100 · E[σ(JUDGE_SLOPE · (θ + h + e))], h + e ~ N(0, DIFFICULTY_SD² + own_noise²), by Gauss-Hermite."""
    nodes, weights = _HERMITE
    sd = math.hypot(DIFFICULTY_SD, own_noise)
    return float(100.0 * np.sum(weights * _sigmoid(JUDGE_SLOPE * (theta + sd * nodes))) / math.sqrt(2 * math.pi))


@functools.cache
def theta_for(score: float, own_noise: float = OWN_NOISE) -> float:
    """The strength θ whose true score is `score` (bisection; true_score rises with θ)."""
    low, high = -10.0, 10.0
    for _ in range(100):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if true_score(mid, own_noise) < score else (low, mid)
    return 0.5 * (low + high)


def simulate(scores: dict[str, float], questions: int, seed: int, own_noise: float = OWN_NOISE) -> pd.DataFrame:
    """A battles frame: every contestant of `scores` (true score) against the baseline, two games a question."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.0, DIFFICULTY_SD, questions)
    ids = np.array([f"q{i:04d}" for i in range(questions)])
    frames = []
    for name, score in scores.items():
        gap = theta_for(score, own_noise) + difficulty + rng.normal(0.0, own_noise, questions)
        for position in range(2):  # both positions; the pipeline un-swaps them into baseline-vs-contestant rows
            won = rng.random(questions) < _sigmoid(JUDGE_SLOPE * gap)
            frames.append(pd.DataFrame({"question_id": ids, "model_a": BASELINE, "model_b": name,
                                        "winner": np.where(won, "model_b", "model_a"), "weight": 1.0,
                                        "game": position}))
    return pd.concat(frames, ignore_index=True)


def experiment(scores: dict[str, float], questions: int, rounds: int, seed: int, own_noise: float = OWN_NOISE,
               pairs: list[tuple[str, str]] | None = None):
    """The board (with ranks) and the paired table of one simulated benchmark, rated as `compare` rates it."""
    battles = simulate(scores, questions, seed, own_noise)
    board, rated = leaderboard_with_rounds(battles, BASELINE, rounds=rounds, seed=seed)
    table = compare_rated(board, rated, question_points(battles, BASELINE), pairs) if pairs else None
    return board, table, battles


def overlap_finds(board: pd.DataFrame, a: str, b: str) -> bool:
    """The unpaired rule: the two 95 % intervals do not overlap (touching counts as overlap)."""
    rows = board.set_index("model")
    return bool(rows.at[a, "ci_low"] > rows.at[b, "ci_high"] or rows.at[b, "ci_low"] > rows.at[a, "ci_high"])


def share(hits: int, n: int) -> str:
    p = hits / n
    return f"{100 * p:5.1f} % ± {100 * math.sqrt(p * (1 - p) / n):.1f} ({hits}/{n})"


def run_pair(label: str, score_a: float, args) -> dict[str, int]:
    counts = {"paired": 0, "sign": 0, "overlap": 0}
    correlations, differences = [], []
    for seed in range(args.seeds):
        board, table, battles = experiment({"A": score_a, "B": 50.0}, args.questions, args.rounds, seed,
                                           args.own_noise, [("A", "B")])
        row = table.iloc[0]
        counts["paired"] += row.p_value < 0.05
        counts["sign"] += row.p_sign < 0.05
        counts["overlap"] += overlap_finds(board, "A", "B")
        points = question_points(battles, BASELINE)
        correlations.append(np.corrcoef(points["A"], points["B"])[0, 1])
        differences.append(row.difference)
    print(f"{label}: true difference {score_a - 50:g} points, {args.seeds} seeds; measured difference median "
          f"{np.median(differences):.2f}, per-question points correlation A~B median {np.median(correlations):.2f}")
    for name, text in (("paired", "paired bootstrap p < 0.05"), ("sign", "sign test over questions p < 0.05"),
                       ("overlap", "overlap rule (95 % intervals apart)")):
        print(f"  {text:38s} {share(counts[name], args.seeds)}")
    return counts


def run_ranks(args) -> tuple[int, int]:
    truth = {BASELINE: 50.0, **RANK_SCORES}
    order = sorted(truth, key=lambda m: -truth[m])
    true_rank = {m: i + 1 for i, m in enumerate(order)}
    covered = total = base_covered = 0
    widths = []
    for seed in range(args.seeds):
        board, _, _ = experiment(RANK_SCORES, args.questions, args.rounds, 10_000 + seed, args.own_noise)
        for row in board.itertuples(index=False):
            inside = row.rank_low <= true_rank[row.model] <= row.rank_high
            if row.model == BASELINE:
                base_covered += inside
                continue
            covered += inside
            total += 1
            widths.append(row.rank_high - row.rank_low)
    print(f"rank intervals: 6 contestants (true scores {', '.join(f'{s:g}' for s in RANK_SCORES.values())}) and the "
          f"baseline, {args.seeds} seeds")
    print(f"  {'true rank inside [rank_low, rank_high]':38s} {share(covered, total)}; median width "
          f"{np.median(widths):g} ranks; baseline {share(base_covered, args.seeds)}")
    return covered, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--own-noise", type=float, default=OWN_NOISE,
                        help="SD of a contestant's own answer variation (the rest is the shared difficulty)")
    parser.add_argument("--experiments", default="power,null,ranks",
                        help="which to run, comma-separated: power, null (false positives), ranks")
    parser.add_argument("--quick", action="store_true", help="5 seeds, 100 rounds: checks the script runs")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.rounds = 5, 100
    print(harness.machine_line())
    print(harness.code_line())
    print(f"load average before: {harness.load_average()}")
    print(f"settings: {args.questions} questions, {args.rounds} bootstrap rounds (by question), difficulty SD "
          f"{DIFFICULTY_SD:g}, own noise SD {args.own_noise:g}, judge slope {JUDGE_SLOPE:g} "
          f"(θ for score 53: {theta_for(53.0, args.own_noise):.3f})")
    started = time.perf_counter()
    chosen = set(args.experiments.split(","))
    if "power" in chosen:
        run_pair("power", 53.0, args)
    if "null" in chosen:
        run_pair("false positives", 50.0, args)
    if "ranks" in chosen:
        run_ranks(args)
    print(f"took {time.perf_counter() - started:.0f} s; load average after: {harness.load_average()}")


if __name__ == "__main__":
    main()
