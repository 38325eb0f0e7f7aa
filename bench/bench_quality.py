"""Benchmark quality and adaptive judging: the figures docs/benchmarks.md reports for issue 14.

    python bench/bench_quality.py adaptive [--seeds 5] [--questions 200] [--quick]
    python bench/bench_quality.py prune [--seeds 8] [--quick]
    python bench/bench_quality.py arena-hard [--questions N] [--quick]

adaptive: contestants of known Elo strength against the fake server's "strength" judge (position A wins with the
  Bradley-Terry probability of the two strengths; a fresh, repeatable draw per prompt and judge). Per seed (the
  rating seed, which orders the questions and seeds the bootstrap, and the judge's name, which reseeds its
  draws): a full run and an adaptive one (ci_half_width 5, min_questions 40, batch 20) of the same contestants.
  Two settings: well-separated (1400 / 1000 / 600) and close (1030 against the baseline's 1000). Reported per
  setting, as medians over seeds: the share of the full run's games judged, whether every adaptive score lies
  inside the full run's 95 % interval, whether the ranking is the same, the largest score difference.
prune: `quality.prune_questions` to 25 % of the 500-question synthetic benchmark of tests/test_quality.py
  (8 contestants of known strength, a quarter of the questions coin flips), one benchmark per seed: the held-out
  Kendall tau and separability, against a random subset of the same size.
arena-hard: the quality report of a run over the arena-hard v0.1 models' shared answers (../shared/data, real
  answers of 12 models; baseline gpt-4-0314) judged by the fake server's "longer" judge (the longer answer wins:
  a judge that is all length bias), against the published leaderboard of 2024-07-31 (judge gpt-4-1106-preview).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import yaml

sys.path.insert(0, str(harness.ROOT / "tests"))
SHARED = harness.ROOT.parent / "shared" / "data" / "arena-hard-v0.1"
CLI = [sys.executable, "-m", "arena_eval.cli"]
SETTINGS = {
    "well-separated": {"m-base": 1000.0, "m-strong": 1400.0, "m-weak": 600.0},
    "close": {"m-base": 1000.0, "m-near": 1030.0},
}
ADAPTIVE = {"ci_half_width": 5, "min_questions": 40, "batch": 20}


def write_questions(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            handle.write(json.dumps({"id": f"q{i:04d}", "prompt": f"Question number {i}: explain item {i % 37}."}) + "\n")
    return path


def arena_config(folder: Path, base_url: str, questions: Path, contestants: list[dict], baseline: str,
                 judge: str, rating: dict) -> Path:
    endpoint = {"provider": "openai", "base_url": base_url, "concurrency": 32, "retry_initial_s": 0.01,
                "retry_max_s": 0.05, "max_attempts": 4}
    data = {"name": "bench", "questions": str(questions), "output": str(folder / "out"), "baseline": baseline,
            "judge": {**endpoint, "model": judge}, "contestants": [{**endpoint, **c} for c in contestants],
            "rating": rating, "report": False}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def adaptive(args) -> None:
    from fake_server import FakeServer, Faults

    from arena_eval import Arena, load_config

    strengths = {name: elo for setting in SETTINGS.values() for name, elo in setting.items()}
    server = FakeServer(Faults(judge_verdict="strength", strengths=strengths)).start()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            questions = write_questions(Path(tmp) / "questions.jsonl", args.questions)
            for setting, elos in SETTINGS.items():
                contestants = [{"name": m.removeprefix("m-"), "model": m} for m in elos]
                for seed in range(1, args.seeds + 1):
                    judge = f"judge-{seed}"
                    runs = {}
                    for mode in ("full", "adaptive"):
                        rating = {"rounds": 200, "seed": seed, **({"adaptive": ADAPTIVE} if mode == "adaptive" else {})}
                        path = arena_config(Path(tmp) / f"{setting}-{seed}-{mode}", server.base_url, questions,
                                            contestants, "base", judge, rating)
                        started = time.perf_counter()
                        runs[mode] = Arena(load_config(path)).run_sync()
                        runs[mode + "_s"] = time.perf_counter() - started
                    full, quick = runs["full"].leaderboard.set_index("model"), runs["adaptive"].leaderboard.set_index("model")
                    a = runs["adaptive"].summary.adaptive
                    inside = all(full.loc[m, "ci_low"] <= quick.loc[m, "score"] <= full.loc[m, "ci_high"] for m in full.index)
                    rows.append({
                        "setting": setting, "seed": seed, "share": a.games_judged / a.games_full,
                        "inside": inside, "same_ranking": list(full.index) == list(quick.index),
                        "max_diff": float((quick.score - full.score.reindex(quick.index)).abs().max()),
                        "within_w": bool((quick.score - full.score.reindex(quick.index)).abs().max()
                                         <= ADAPTIVE["ci_half_width"]),
                        "stopped": {m: n for m, (n, _) in a.stopped.items()}, "tokens_saved": a.tokens_saved,
                    })
                    print(json.dumps(rows[-1]), flush=True)
    finally:
        server.stop()
    print(f"\n{args.seeds} seeds, {args.questions} questions, adaptive {ADAPTIVE}, rounds 200")
    print(f"{'setting':16} {'median share judged':>20} {'min':>6} {'max':>6} {'all inside full CI':>19} "
          f"{'same ranking':>13} {'median max |diff|':>18} {'all |diff| <= W':>16}")
    for setting in SETTINGS:
        mine = [r for r in rows if r["setting"] == setting]
        shares = [r["share"] for r in mine]
        print(f"{setting:16} {statistics.median(shares):>20.1%} {min(shares):>6.1%} {max(shares):>6.1%} "
              f"{sum(r['inside'] for r in mine):>12}/{len(mine):<6} {sum(r['same_ranking'] for r in mine):>7}/"
              f"{len(mine):<5} {statistics.median(r['max_diff'] for r in mine):>18.2f} "
              f"{sum(r['within_w'] for r in mine):>10}/{len(mine)}")


def prune(args) -> None:
    from test_quality import synthetic_benchmark

    from arena_eval.quality import prune_questions

    rows = []
    for seed in range(args.seeds):
        battles, _ = synthetic_benchmark(n_questions=args.questions, seed=seed)
        started = time.perf_counter()
        r = prune_questions(battles, "base", args.questions // 4, splits=args.splits)
        rows.append((seed, r.kendall_tau, r.kendall_tau_min, r.random_kendall_tau, r.separability,
                     r.random_separability, r.full_separability, time.perf_counter() - started))
        print(f"seed {seed}: tau {r.kendall_tau:.3f} (worst {r.kendall_tau_min:.3f}, random {r.random_kendall_tau:.3f}); "
              f"separability {r.separability:.2f} (random {r.random_separability:.2f}, held-out half "
              f"{r.full_separability:.2f}); {rows[-1][-1]:.1f} s", flush=True)
    med = [statistics.median(r[i] for r in rows) for i in range(1, 8)]
    print(f"\nmedians over {len(rows)} benchmarks ({args.questions} questions pruned to {args.questions // 4}, "
          f"{args.splits} splits): tau {med[0]:.3f} (worst split {med[1]:.3f}, random subset {med[2]:.3f}); "
          f"separability {med[3]:.2f} (random {med[4]:.2f}, held-out half {med[5]:.2f}); {med[6]:.1f} s each")


def arena_hard(args) -> None:
    if not SHARED.exists():
        sys.exit(f"{SHARED} is not present: the arena-hard reference data is needed for this benchmark")
    from fake_server import FakeServer, Faults

    files = sorted((SHARED / "model_answer").glob("*.jsonl"))
    answered = [{json.loads(line)["question_id"] for line in f.read_text().splitlines() if line.strip()} for f in files]
    shared = set.intersection(*answered)
    server = FakeServer(Faults(judge_verdict="longer")).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            questions = folder / "questions.jsonl"
            lines = [line for line in (SHARED / "question.jsonl").read_text().splitlines()
                     if line.strip() and json.loads(line)["question_id"] in shared]
            questions.write_text("\n".join(sorted(lines)[: args.questions or None]) + "\n")
            contestants = [{"name": f.stem, "model": f"never-called-{f.stem}"} for f in files]
            base = next(c for c in contestants if c["name"] == "gpt-4-0314")
            contestants.remove(base)
            path = arena_config(folder / "run", server.base_url, questions, [base, *contestants], "gpt-4-0314",
                                "judge-model", {"rounds": 1000, "seed": 42})
            started = time.perf_counter()
            for f in files:
                done = subprocess.run([*CLI, "import", str(f), "--contestant", f.stem, "--config", str(path)],
                                      capture_output=True, text=True, cwd=harness.ROOT)
                if done.returncode:
                    sys.exit(done.stderr)
            imported = time.perf_counter() - started
            run = subprocess.run([*CLI, "run", "--config", str(path), "--no-progress"], capture_output=True, text=True,
                                 cwd=harness.ROOT)
            if run.returncode:
                sys.exit(run.stderr)
            ran = time.perf_counter() - started - imported
            asked = sum(n for model, n in server.requests.items() if model.startswith("never-called"))
            out = subprocess.run([*CLI, "quality", "--config", str(path), "--reference",
                                  str(SHARED / "published_leaderboard_20240731.csv"), "--questions"],
                                 capture_output=True, text=True, cwd=harness.ROOT)
            print(run.stdout)
            print(out.stdout, out.stderr)
            print(f"{len(lines)} shared questions (used {min(len(lines), args.questions or len(lines))}), "
                  f"{len(files)} models; import {imported:.1f} s, run {ran:.1f} s; contestant requests: {asked}")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("adaptive", "prune", "arena-hard"))
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--questions", type=int, default=None)
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="a few seconds; the numbers mean nothing")
    args = parser.parse_args()
    print(f"{harness.machine_line()}\n{harness.code_line()}\nload average {harness.load_average()}", flush=True)
    if args.what == "adaptive":
        args.seeds = args.seeds or (1 if args.quick else 5)
        args.questions = args.questions or (60 if args.quick else 200)
        adaptive(args)
    elif args.what == "prune":
        args.seeds = args.seeds or (1 if args.quick else 8)
        args.questions = args.questions or (80 if args.quick else 500)
        args.splits = 3 if args.quick else args.splits
        prune(args)
    else:
        args.questions = args.questions if args.questions is not None else (40 if args.quick else 0)
        arena_hard(args)


if __name__ == "__main__":
    main()
