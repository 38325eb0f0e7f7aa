"""Games between contestants (`pairing: {opponents: K}`, docs/design.md §3.3.1) against games with the baseline
only: how wide the contestants' intervals are for the same number of judge calls.

    python bench/bench_pairing.py [--seeds 20] [--contestants 8] [--questions 500] [--rounds 500] [--opponents 2]
    python bench/bench_pairing.py --quick     # seconds: 2 seeds, 120 questions, 100 rounds

Simulated judging with a known truth. Each contestant m has a true strength θ_m (log10-odds against the baseline,
evenly spread over ±0.3, i.e. scores of about 33 to 67). Each question q has a difficulty a_q (lognormal, mean 1,
spread `sd_question`) that scales how much strength shows on it, and each answer a quality offset z_mq
(normal, `sd_answer`), shared by every game that answer plays: outcomes on a question are correlated, as in real
benchmarks. A game with X in position A and Y in B is a tie with probability 0.1, else won by A with probability
σ(ln 10 · (a_q (θ_X − θ_Y) + z_Xq − z_Yq)); its label becomes a battle by the product's `judge.battle_outcome`.
Who meets whom on a question is the product's `pairing.opponent_pairs`, and the ratings are
`rating.compute_leaderboard` (bootstrap over questions), so the script measures the code that runs.

Compared, per seed, on the same simulated questions and answers:
- `baseline`, Q questions: 2 games per contestant and question (2 · N · Q judge calls);
- `opponents`, Q / 2 questions (the first half): 2 games against the baseline and 2 per pair drawn
  (N · K / 2 pairs a question) — with K = 2 that is 4 · N · Q / 2 = 2 · N · Q judge calls, the same budget;
- `opponents` on all Q questions (twice the calls), to show what the extra games buy per call.
Reported: the median over seeds and non-baseline contestants of the 95 % interval's half-width (score points),
its ratio to `baseline`, the half-width × √calls against baseline's ("width per call": 1 when a design's games are
worth as much per call as more questions), the ratio of the median half-width of the paired difference between
neighbours in strength (rating.paired, "A-B ratio"), how often an interval covers the true expected score against
the baseline, the mean error of the scores ("bias"), and the share of contestants whose two scores (baseline,
opponents at the same calls) each lie inside the other's interval. Three settings of the question effect are run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arena_eval.config import OpponentPairing, VerdictWeights  # noqa: E402
from arena_eval.judge import battle_outcome  # noqa: E402
from arena_eval.pairing import opponent_pairs  # noqa: E402
from arena_eval.rating import compute_leaderboard  # noqa: E402
from arena_eval.rating.paired import paired_differences  # noqa: E402
from arena_eval.rating.solver import bootstrap_elo  # noqa: E402

BASE = "base"
TIE = 0.1
SETTINGS = {  # name → (sd_question, sd_answer)
    "no question effect": (0.0, 0.0),
    "moderate": (0.7, 0.3),
    "strong": (1.2, 0.6),
}


def simulate(rng: np.random.Generator, names: list[str], questions: int, sd_question: float, sd_answer: float):
    """The hidden truth of one benchmark: strengths, each question's difficulty, each answer's offset."""
    theta = dict(zip([BASE, *names], [0.0, *np.linspace(-0.3, 0.3, len(names))]))
    difficulty = np.exp(sd_question * rng.standard_normal(questions) - sd_question ** 2 / 2)
    offset = {m: sd_answer * rng.standard_normal(questions) for m in theta}
    return theta, difficulty, offset


def battles(rng: np.random.Generator, truth, names: list[str], questions: int, pairing) -> pd.DataFrame:
    """Judge every game `pairing` calls for on the first `questions` questions: both positions of the games against
    the baseline and of each drawn pair."""
    theta, difficulty, offset = truth
    weights = VerdictWeights()
    rows = []
    for q in range(questions):
        qid = f"q{q:05d}"
        for first, second in [(BASE, n) for n in names] + opponent_pairs(qid, names, pairing):
            for game, (a, b) in ((1, (first, second)), (2, (second, first))):
                if rng.random() < TIE:
                    label = "A=B"
                else:
                    eta = np.log(10) * (difficulty[q] * (theta[a] - theta[b]) + offset[a][q] - offset[b][q])
                    label = "A>B" if rng.random() < 1 / (1 + np.exp(-eta)) else "B>A"
                winner, weight = battle_outcome(label, game, weights)
                rows.append((qid, first, second, winner, weight))
    return pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner", "weight"])


def true_scores(names: list[str], sd_question: float, sd_answer: float) -> pd.Series:
    """Each contestant's expected score against the baseline under the simulation (what a baseline-only run
    estimates): the mean over questions and answers of 100 · (0.9 · P(win | no tie) + 0.05)."""
    rng = np.random.default_rng(12345)
    draws = 400_000
    a = np.exp(sd_question * rng.standard_normal(draws) - sd_question ** 2 / 2)
    z = sd_answer * (rng.standard_normal(draws) - rng.standard_normal(draws))
    theta = np.linspace(-0.3, 0.3, len(names))
    return pd.Series([100 * np.mean((1 - TIE) / (1 + np.exp(-np.log(10) * (a * t + z))) + TIE / 2) for t in theta],
                     index=names)


def rate(frame: pd.DataFrame, names: list[str], rounds: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The leaderboard without the baseline's row, and the paired differences of neighbours in true strength."""
    board = compute_leaderboard(frame, BASE, rounds=rounds, seed=seed).set_index("model")
    boot = bootstrap_elo(frame, BASE, rounds=rounds, seed=seed)
    models = list(boot.columns)
    point = board.elo.reindex(models).to_numpy()
    differences = paired_differences(models, point, boot.to_numpy(), list(zip(names[1:], names[:-1])))
    return board.drop(index=BASE), differences


def run(setting: str, args) -> dict:
    sd_question, sd_answer = SETTINGS[setting]
    names = [f"c{i}" for i in range(args.contestants)]
    pairing = OpponentPairing(opponents=args.opponents)
    half = args.questions // 2
    designs_named = ["baseline", "opponents", "opponents, all questions"]
    widths: dict[str, list[float]] = {d: [] for d in designs_named}
    gaps: dict[str, list[float]] = {d: [] for d in designs_named}  # neighbours' paired difference, half-width
    covered: dict[str, list[bool]] = {d: [] for d in designs_named}
    errors: dict[str, list[float]] = {d: [] for d in designs_named}
    truth_scores = true_scores(names, sd_question, sd_answer)
    calls: dict[str, int] = {}
    agree = total = within = 0
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        truth = simulate(rng, names, args.questions, sd_question, sd_answer)
        designs = {"baseline": (args.questions, "baseline"), "opponents": (half, pairing),
                   "opponents, all questions": (args.questions, pairing)}
        boards = {}
        for design, (count, rule) in designs.items():
            frame = battles(rng, truth, names, count, rule)
            calls[design] = len(frame)  # every game parsed: one battle row per judge call
            boards[design], differences = rate(frame, names, args.rounds, seed)
            board = boards[design].reindex(names)
            widths[design] += list((board.ci_high - board.ci_low) / 2)
            gaps[design] += list((differences.ci_high - differences.ci_low) / 2)
            covered[design] += list((board.ci_low <= truth_scores) & (truth_scores <= board.ci_high))
            errors[design] += list(board.score - truth_scores)
        a, b = boards["baseline"], boards["opponents"].reindex(boards["baseline"].index)
        inside = ((a.score >= b.ci_low) & (a.score <= b.ci_high) & (b.score >= a.ci_low) & (b.score <= a.ci_high))
        agree += int(inside.sum())
        total += len(inside)
        # Two unbiased estimates differ by less than the combined half-width √(h_a² + h_b²) 95 % of the time.
        combined = np.hypot((a.ci_high - a.ci_low) / 2, (b.ci_high - b.ci_low) / 2)
        within += int(((a.score - b.score).abs() <= combined).sum())
    base_width = statistics.median(widths["baseline"])
    out = {"setting": setting, "agree": agree / total, "within": within / total, "rows": []}
    base_gap = statistics.median(gaps["baseline"])
    for design, values in widths.items():
        width = statistics.median(values)
        out["rows"].append((design, calls[design], width, width / base_width,
                            width * np.sqrt(calls[design]) / (base_width * np.sqrt(calls["baseline"])),
                            statistics.median(gaps[design]) / base_gap, float(np.mean(covered[design])),
                            float(np.mean(errors[design]))))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--contestants", type=int, default=8, help="besides the baseline")
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--opponents", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 120 questions, 100 rounds")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.questions, args.rounds = 2, 120, 100
    if args.opponents != 2:
        print("note: the same-calls comparison takes half the questions, which matches the calls for opponents: 2 "
              "only", file=sys.stderr)
    started = time.perf_counter()
    print(f"{args.contestants} contestants besides the baseline, {args.questions} questions, {args.seeds} seeds, "
          f"{args.rounds} bootstrap rounds, opponents {args.opponents}; median 95 % half-width (score points) of the "
          "non-baseline contestants")
    for setting in SETTINGS:
        result = run(setting, args)
        sd_question, sd_answer = SETTINGS[setting]
        print(f"\nquestion effect: {setting} (sd_question {sd_question}, sd_answer {sd_answer}); scores of baseline "
              f"and opponents (same calls) inside each other's interval: {result['agree']:.0%} (≈ 83 % for two "
              f"unbiased estimates), their difference within the combined half-width: {result['within']:.0%} "
              "(≈ 95 %)")
        print(f"  {'design':<26} {'judge calls':>11} {'half-width':>10} {'ratio':>6} {'width per call':>14} "
              f"{'A-B ratio':>9} {'covers truth':>12} {'bias':>6}")
        for design, n_calls, width, ratio, per_call, gap, cover, bias in result["rows"]:
            print(f"  {design:<26} {n_calls:>11} {width:>10.2f} {ratio:>6.2f} {per_call:>14.2f} {gap:>9.2f} "
                  f"{cover:>12.0%} {bias:>+6.2f}")
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
