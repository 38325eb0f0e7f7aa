"""Scores calibrated with human labels (rating/calibration.py, docs/design.md §3.4.7): coverage, width, real data,
speed.

    python bench/bench_calibration.py simulate [--seeds 100]   # known truth: coverage and interval widths
    python bench/bench_calibration.py pandalm [--draws 20]     # ../shared/data/pandalm: real verdicts, real labels
    python bench/bench_calibration.py speed [--repeats 5]      # 20 contestants x 500 questions
    (--quick: 2 seeds, 2 draws, 1 repeat; the numbers then mean nothing)

**simulate** draws battles in process (the loopback version of the same judge is tests/test_calibration.py's
fake-server test): 500 questions, four contestants of known strength against a baseline, each question with a
difficulty shared by all its pairs (the baseline's answer: logit shift ~ N(0, 0.7)). A pair's true winner is
drawn from that; the human label is the truth, on 10 % of the questions. The *biased* judge picks the longer
answer in 40 % of its games whatever the truth (a padded contestant writes the longer answer 90 % of the time, a
terse one 10 %); the *unbiased* judge reports the truth; the *noisy* one flips 10 % of its games at random.
Per contestant and seed: does the 95 % interval hold the true score (the expected human win rate over questions),
for the judge alone (the product's bootstrap, 200 rounds), calibrated, and from the labels alone; and the widths.

**pandalm** rates the five models of PandaLM's test set model-vs-model (llama-7b anchored at 50): from
gpt-3.5-turbo's verdicts alone, from the three annotators' labels alone, and calibrated with 10/20/50 % of the
pairs' labels (random subsets, `--draws` of each). Spearman with the human ranking (all labels), mean interval
width, and the judge's agreement and Cohen's kappa with the majority label. Skipped when the data is absent.

**speed**: scoring 20 contestants x 500 questions (2 games each) with the default bootstrap, with and without
calibration on 10 % of the questions labelled: the median of `--repeats` runs after one warm-up, and the one-off
cost of the first calibration in a fresh process (importing ppi_py and numba, compiling its kernels).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arena_eval.labels import HumanLabel  # noqa: E402
from arena_eval.rating import compute_leaderboard  # noqa: E402
from arena_eval.rating.calibration import calibrate  # noqa: E402

# ../shared/data beside the checkout (a worktree one folder deeper looks one level further up).
PANDALM = next((base / "shared" / "data" / "pandalm" for base in (ROOT.parent, ROOT.parent.parent)
                if (base / "shared" / "data" / "pandalm").exists()), ROOT.parent / "shared" / "data" / "pandalm")
# contestant → (logit of its chance against the baseline on an average question, chance its answer is the longer)
CONTESTANTS = {"strong": (0.8, 0.5), "even": (0.0, 0.5), "padded": (-0.2, 0.9), "terse": (0.4, 0.1)}
QUESTION_SD = 0.7


def true_scores() -> dict[str, float]:
    u = np.random.default_rng(0).normal(0.0, QUESTION_SD, 400_000)
    return {m: float(100 * np.mean(1 / (1 + np.exp(-(logit + u))))) for m, (logit, _) in CONTESTANTS.items()}


def simulate_once(seed: int, judge: str, n_questions: int = 500, share: float = 0.1, rounds: int = 200):
    rng = np.random.default_rng(seed)
    u = rng.normal(0.0, QUESTION_SD, n_questions)
    battles, labels = [], []
    labelled = set(rng.choice(n_questions, int(share * n_questions), replace=False).tolist())
    for m, (logit, longer) in CONTESTANTS.items():
        wins = rng.random(n_questions) < 1 / (1 + np.exp(-(logit + u)))
        longer_answer = rng.random(n_questions) < longer
        for q in range(n_questions):
            truth = "model_b" if wins[q] else "model_a"
            for _ in (1, 2):
                verdict = truth
                if judge == "biased" and rng.random() < 0.4:
                    verdict = "model_b" if longer_answer[q] else "model_a"
                elif judge == "noisy" and rng.random() < 0.1:
                    verdict = "model_a" if verdict == "model_b" else "model_b"
                battles.append((f"q{q}", "base", m, verdict, 1.0))
            if q in labelled:
                labels.append(HumanLabel(f"q{q}", "base", m, truth))
    frame = pd.DataFrame(battles, columns=["question_id", "model_a", "model_b", "winner", "weight"])
    judge_only = compute_leaderboard(frame, "base", rounds=rounds, seed=seed).set_index("model")
    calibrated = calibrate(frame, labels, "base")
    alone = calibrate(frame, labels, "base", lam=0.0)
    return judge_only, calibrated.table().set_index("model"), alone.table().set_index("model"), calibrated.lam


def simulate(seeds: int) -> dict:
    truth = true_scores()
    out = {"true_scores": truth, "seeds": seeds}
    for judge in ("biased", "unbiased", "noisy"):
        hits = {"judge": [], "calibrated": [], "labels": []}
        widths = {"judge": [], "calibrated": [], "labels": []}
        errors = {"judge": [], "calibrated": []}
        lams = []
        started = time.perf_counter()
        for seed in range(seeds):
            j, c, a, lam = simulate_once(seed, judge)
            lams.append(lam)
            for m, t in truth.items():
                for name, board, score, low, high in (
                        ("judge", j, "score", "ci_low", "ci_high"),
                        ("calibrated", c, "calibrated_score", "calibrated_ci_low", "calibrated_ci_high"),
                        ("labels", a, "calibrated_score", "calibrated_ci_low", "calibrated_ci_high")):
                    hits[name].append(board.loc[m, low] <= t <= board.loc[m, high])
                    widths[name].append(board.loc[m, high] - board.loc[m, low])
                    if name in errors:
                        errors[name].append(board.loc[m, score] - t)
        out[judge] = {
            "coverage": {k: float(np.mean(v)) for k, v in hits.items()},
            "mean_width": {k: float(np.mean(v)) for k, v in widths.items()},
            "width_ratio_calibrated_to_judge": float(np.mean(widths["calibrated"]) / np.mean(widths["judge"])),
            "width_ratio_calibrated_to_labels": float(np.mean(widths["calibrated"]) / np.mean(widths["labels"])),
            "mean_error": {k: float(np.mean(v)) for k, v in errors.items()},
            "coverage_per_contestant": {
                name: {m: float(np.mean(hits[name][i::len(truth)])) for i, m in enumerate(truth)}
                for name in ("judge", "calibrated")},
            "lambda_median": float(np.median(lams)),
            "seconds": round(time.perf_counter() - started, 1),
        }
    return out


# --- PandaLM ---------------------------------------------------------------------------------------------

def pandalm(draws: int) -> dict:
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    if not (PANDALM / "testset-v1.json").exists():
        return {"skipped": f"{PANDALM} is absent"}
    pairs = json.loads((PANDALM / "testset-v1.json").read_text())
    verdicts = json.loads((PANDALM / "gpt-3.5-turbo-testset-v1.json").read_text())
    anchor = "llama-7b"
    battles, labels, human_battles, majority, judged = [], [], [], {}, {}
    outcome = {1: "model_a", 2: "model_b", 0: "tie"}
    for pair, verdict in zip(pairs, verdicts):
        assert pair["idx"] == verdict["idx"]
        a, b = pair["cmp_key"].split("_")  # PandaLM's README: response1 is the first model's, response2 the second's
        q = str(pair["idx"])
        given = [pair[f"annotator{i}"] for i in (1, 2, 3)]
        for i, label in enumerate(given):
            labels.append(HumanLabel(q, a, b, outcome[label], f"annotator{i + 1}"))
            human_battles.append((q, a, b, outcome[label], 1.0))
        top = max(set(given), key=given.count)
        majority[q] = outcome[top] if given.count(top) >= 2 else "tie"
        result = {"1": "model_a", "2": "model_b", "Tie": "tie"}.get(verdict["gpt_result"])
        if result is not None:  # "garbage": an unparsable verdict, like an unparsed game
            battles.append((q, a, b, result, 1.0))
            judged[q] = result
    columns = ["question_id", "model_a", "model_b", "winner", "weight"]
    frame = pd.DataFrame(battles, columns=columns)
    humans = pd.DataFrame(human_battles, columns=columns)
    human_rank = compute_leaderboard(humans, anchor, rounds=0).set_index("model")["score"]
    models = sorted(human_rank.index)

    def summary(scores: pd.Series, low: pd.Series, high: pd.Series) -> dict:
        free = [m for m in models if m != anchor]
        return {"spearman": float(spearmanr(scores[models], human_rank[models])[0]),
                "mean_width": float((high[free] - low[free]).mean()),
                "scores": {m: round(float(scores[m]), 1) for m in models}}

    judge = compute_leaderboard(frame, anchor, rounds=1000, seed=42).set_index("model")
    out: dict = {"pairs": len(pairs), "judged": len(frame), "anchor": anchor,
                 "human_scores": {m: round(float(human_rank[m]), 1) for m in models}}
    common = [q for q in judged]
    out["judge_agreement_with_majority"] = float(np.mean([judged[q] == majority[q] for q in common]))
    out["judge_kappa_with_majority"] = float(cohen_kappa_score([majority[q] for q in common],
                                                               [judged[q] for q in common]))
    out["judge_alone"] = summary(judge.score, judge.ci_low, judge.ci_high)
    every = calibrate(frame, labels, anchor, lam=0.0).table().set_index("model")
    out["labels_alone_all"] = summary(every.calibrated_score, every.calibrated_ci_low, every.calibrated_ci_high)
    rng = np.random.default_rng(0)
    ids = sorted(judged)
    for share in (0.1, 0.2, 0.5):
        runs = {"calibrated": [], "labels_alone": []}
        lams = []
        for _ in range(draws):
            chosen = set(rng.choice(ids, int(share * len(ids)), replace=False).tolist())
            subset = [x for x in labels if x.question_id in chosen]
            fit = calibrate(frame, subset, anchor)
            lams.append(fit.lam)
            for name, table in (("calibrated", fit.table()), ("labels_alone", calibrate(frame, subset, anchor,
                                                                                        lam=0.0).table())):
                t = table.set_index("model")
                runs[name].append(summary(t.calibrated_score, t.calibrated_ci_low, t.calibrated_ci_high))
        out[f"{int(share * 100)}%"] = {
            name: {"spearman_mean": float(np.mean([r["spearman"] for r in rs])),
                   "spearman_min": float(np.min([r["spearman"] for r in rs])),
                   "mean_width": float(np.mean([r["mean_width"] for r in rs]))}
            for name, rs in runs.items()} | {"lambda_median": float(np.median(lams)), "draws": draws}
    return out


# --- speed -----------------------------------------------------------------------------------------------

def speed_frame(n_contestants: int = 20, n_questions: int = 500, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    labelled = set(range(0, n_questions, 10))
    for k in range(n_contestants):
        p = 1 / (1 + np.exp(-rng.normal(0, 0.8)))
        for q in range(n_questions):
            truth = "model_b" if rng.random() < p else "model_a"
            for _ in (1, 2):
                rows.append((f"q{q}", "base", f"c{k:02d}", truth if rng.random() < 0.8 else "tie", 1.0))
            if q in labelled:
                labels.append(HumanLabel(f"q{q}", "base", f"c{k:02d}", truth))
    return pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner", "weight"]), labels


def speed(repeats: int) -> dict:
    frame, labels = speed_frame()
    first = subprocess.run([sys.executable, __file__, "first-call"], capture_output=True, text=True, check=True)
    calibrate(frame, labels, "base")  # warm-up: imports and numba's compilation
    plain, calibrated = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        compute_leaderboard(frame, "base")
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        calibrate(frame, labels, "base")
        calibrated.append(time.perf_counter() - started)
    return {"battles": len(frame), "labels": len(labels), "judge_only_rating_s": statistics.median(plain),
            "calibration_s": statistics.median(calibrated), "first_calibration_in_a_fresh_process":
                json.loads(first.stdout)}


def first_call() -> dict:
    frame, labels = speed_frame()
    from arena_eval.rating.calibration import _ppi

    started = time.perf_counter()
    _ppi()  # as calibration imports it
    imported = time.perf_counter() - started
    calibrate(frame, labels, "base")
    return {"import_s": imported, "import_and_first_fit_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["simulate", "pandalm", "speed", "first-call"])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 2 draws, 1 repeat: checks the script runs")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.draws, args.repeats = 2, 2, 1
    result = {"simulate": lambda: simulate(args.seeds), "pandalm": lambda: pandalm(args.draws),
              "speed": lambda: speed(args.repeats), "first-call": first_call}[args.part]()
    print(json.dumps(result, indent=1, default=lambda x: None if isinstance(x, float) and math.isnan(x) else x))


if __name__ == "__main__":
    main()
