"""How often the regression rules flag a contestant between two nights, with known truth.

    python bench/bench_regression.py [--seeds 100] [--questions 500] [--fall 3] [--difficulty 1.5] [--rounds 1000]
                                     [--quick]

Each seed makes two nights of battles: a baseline and three contestants, two games per question (positions
swapped), a judge that prefers the stronger answer by Bradley-Terry, and a per-question difficulty shared by every
contestant and both nights (normal, `--difficulty` log-odds standard deviation: a question that is easy for one
model is easy for the others), so that outcomes on a question correlate as they do on real benchmarks; the larger
it is, the more of the spread between questions both nights share, and the more the pairing gains. On night two `worse` is `--fall` score points weaker, `same` and
`other` are unchanged (new draws, same strength); the fall is in the expected win rate over the seed's questions. Both nights are rated by the product (compute_leaderboard with
the given rounds), stored as the pipeline stores them (leaderboard rows and per-question points), and judged by
history.compare_with_previous under `test: paired` and `test: overlap`. Prints the detection rate for `worse`
and the false-alarm rate for the unchanged contestants, each with its binomial standard error.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

try:
    from arena_eval.history import compare_with_previous, question_points
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from arena_eval.history import compare_with_previous, question_points
from arena_eval.rating import compute_leaderboard, elo_from_score
from arena_eval.store import Store

LN10 = np.log(10.0)


def night(rng: np.random.Generator, difficulty: np.ndarray, elo: dict[str, float]) -> pd.DataFrame:
    """Two games per question of each contestant against `base` (Elo 1000); the difficulty shifts every
    contestant's log-odds on a question alike."""
    rows = []
    for model, rating in elo.items():
        logit = (rating - 1000.0) * LN10 / 400.0 + difficulty
        p = 1.0 / (1.0 + np.exp(-logit))
        for _game in (1, 2):
            won = rng.random(len(p)) < p
            rows.append(pd.DataFrame({"question_id": [f"q{i}" for i in range(len(p))], "model_a": "base",
                                      "model_b": model, "winner": np.where(won, "model_b", "model_a"),
                                      "weight": 1.0}))
    return pd.concat(rows, ignore_index=True)


def expected_score(elo: float, difficulty: np.ndarray) -> float:
    """The expected win rate against the baseline (0–100) over these questions' difficulties."""
    return float(100.0 * np.mean(1.0 / (1.0 + np.exp(-((elo - 1000.0) * LN10 / 400.0 + difficulty)))))


def elo_drop(elo: float, difficulty: np.ndarray, fall: float) -> float:
    """The Elo drop that lowers the expected win rate over these questions by `fall` points (bisection): the
    true change the tests should find, whatever the spread of difficulties."""
    target, low, high = expected_score(elo, difficulty) - fall, 0.0, 2000.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if expected_score(elo - mid, difficulty) > target else (low, mid)
    return (low + high) / 2


def one_seed(seed: int, questions: int, fall: float, difficulty_sd: float, rounds: int, folder: Path) -> dict[str, dict[str, bool]]:
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.0, difficulty_sd, questions)
    elo = float(elo_from_score(62.0))  # each contestant's strength on a question of difficulty 0 on night one
    nights = [night(rng, difficulty, {"worse": elo, "same": elo, "other": elo}),
              night(rng, difficulty, {"worse": elo - elo_drop(elo, difficulty, fall), "same": elo, "other": elo})]
    found: dict[str, dict[str, bool]] = {}
    path = folder / f"seed{seed}.db"
    with Store(path) as store:
        for i, battles in enumerate(nights):
            run_id = f"night{i + 1}"
            store.db.execute("INSERT INTO runs (run_id, name, command, started_at, finished_at, status, config_json) "
                             "VALUES (?,?,?,?,?,?,?)", (run_id, "b", "run", float(i), float(i) + 0.5, "complete", "{}"))
            board = compute_leaderboard(battles, "base", rounds=rounds, seed=seed)
            rows = [{**r, "is_baseline": r["model"] == "base"} for r in board.to_dict("records")]
            store.save_leaderboard(run_id, rows, question_points=question_points(battles, {"base"}))
        for test in ("paired", "overlap"):
            checks = compare_with_previous(store, "night2", test=test, rounds=rounds, seed=seed)
            found[test] = {c["model"]: c["regressed"] for c in checks}
    path.unlink()
    return found


def rate(hits: int, n: int) -> str:
    p = hits / n
    return f"{100 * p:5.1f} % ± {100 * np.sqrt(p * (1 - p) / n):.1f} (n={n})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--fall", type=float, default=3.0)
    parser.add_argument("--difficulty", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="seconds; the numbers mean nothing")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.questions, args.rounds = 3, 60, 100
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}; python {platform.python_version()}")
    print(f"{args.seeds} seeds × {args.questions} questions, fall {args.fall} points, difficulty sd "
          f"{args.difficulty} log-odds, {args.rounds} rounds")
    started = time.perf_counter()
    counts = {(t, k): 0 for t in ("paired", "overlap") for k in ("detected", "false")}
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seeds):
            found = one_seed(seed, args.questions, args.fall, args.difficulty, args.rounds, Path(folder))
            for test, flagged in found.items():
                counts[test, "detected"] += flagged.get("worse", False)
                counts[test, "false"] += flagged.get("same", False) + flagged.get("other", False)
    for test in ("paired", "overlap"):
        print(f"{test:8s} detects the {args.fall:g}-point fall: {rate(counts[test, 'detected'], args.seeds)}; "
              f"false alarms on unchanged contestants: {rate(counts[test, 'false'], 2 * args.seeds)}")
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
