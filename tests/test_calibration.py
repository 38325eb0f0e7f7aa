"""Scores calibrated with human labels (rating/calibration.py, docs/design.md §3.4.7): a hand-checked case against
ppi_py itself, the judge that agrees with every label, the paired difference, bad labels, and a biased judge of
known truth through the loopback fake server."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from arena_eval.errors import ConfigError
from arena_eval.labels import HumanLabel
from arena_eval.rating import compute_leaderboard

ppi_py = pytest.importorskip("ppi_py")

from arena_eval.rating.calibration import (  # noqa: E402  (after the skip: ppi_py is an optional extra)
    calibrate,
    calibrated_difference,
    check_labels,
    judged_pairs,
)

LN10 = math.log(10)


def battles_of(outcomes: dict[tuple[str, str], tuple[str, str]], baseline: str = "base") -> pd.DataFrame:
    """(question, contestant) → the two games' winners (model_a = the baseline), weight 1 each."""
    rows = [(q, baseline, c, w, 1.0) for (q, c), games in outcomes.items() for w in games]
    return pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner", "weight"])


def test_a_hand_checked_case_matches_ppi_py_and_the_ppi_mean_formula():
    # One contestant, ten questions: the judge says it wins 8 (both games); four labelled pairs where the judge
    # said "wins" and the humans say it won only two. Plain PPI (λ = 1) on a logistic model with one coefficient
    # is the PPI mean: p = mean judge share + mean (human − judge) over the labelled = 0.8 + (0.5 − 1) = 0.3.
    outcomes = {(f"q{i}", "c"): ("model_b", "model_b") if i < 8 else ("model_a", "model_a") for i in range(10)}
    battles = battles_of(outcomes)
    labels = [HumanLabel(f"q{i}", "base", "c", "model_b" if i < 2 else "model_a") for i in range(4)]
    result = calibrate(battles, labels, "base", lam=1.0, min_labels=2)
    table = result.table().set_index("model")
    assert table.loc["c", "calibrated_score"] == pytest.approx(30.0, abs=1e-4)
    assert table.loc["base", "calibrated_score"] == 50.0
    assert table.loc["c", "labels"] == 4

    # The same rows handed to ppi_py directly: x = ln 10 (log10-odds), judge share and human points of "c".
    x_all = np.full((10, 1), LN10)
    yhat_all = np.array([1.0] * 8 + [0.0] * 2)
    x_lab, y_lab, yhat_lab = x_all[:4], np.array([1.0, 1.0, 0.0, 0.0]), yhat_all[:4]
    theta = ppi_py.ppi_logistic_pointestimate(x_lab, y_lab, yhat_lab, x_all, yhat_all, lam=1.0)
    assert result.theta[result.index("c")] == pytest.approx(float(np.ravel(theta)[0]), abs=1e-5)
    assert result.theta[result.index("c")] == pytest.approx(math.log10(0.3 / 0.7), abs=1e-5)

    # The variance by hand: per question φ = (C/N)(μ − ŷ) x + (C/n) R (ŷ − y) x, H = μ(1 − μ) x², var = Cov(φ)/C/H².
    mu, C = 0.3, 10
    phi = (mu - yhat_all) * LN10 * (C / 10)
    phi[:4] += (yhat_lab - y_lab) * LN10 * (C / 4)
    variance = np.var(phi, ddof=1) / C / (mu * (1 - mu) * LN10**2) ** 2
    assert result.cov[result.index("c"), result.index("c")] == pytest.approx(variance, rel=1e-4)


@pytest.mark.slow  # ppi_py's interval compiles its numba statistics: ~20 s of CPU
def test_the_interval_agrees_with_ppi_py_s_on_independent_pairs():
    # Each question one pair: ppi_py's interval (independent rows) and ours (questions as units, labelled pairs
    # drawn from the judged ones) differ only by the overlap term, small here.
    rng = np.random.default_rng(3)
    n_q = 2000
    truth = rng.random(n_q) < 0.6
    judge = np.where(rng.random(n_q) < 0.85, truth, ~truth)
    outcomes = {(f"q{i}", "c"): ("model_b", "model_b") if judge[i] else ("model_a", "model_a") for i in range(n_q)}
    labels = [HumanLabel(f"q{i}", "base", "c", "model_b" if truth[i] else "model_a") for i in range(200)]
    battles = battles_of(outcomes)
    for lam in (0.0, 0.7, 1.0):
        result = calibrate(battles, labels, "base", lam=lam)
        i = result.index("c")
        se = math.sqrt(result.cov[i, i])
        x_all = np.full((n_q, 1), LN10)
        low, high = ppi_py.ppi_logistic_ci(x_all[:200], truth[:200].astype(float), judge[:200].astype(float), x_all,
                                           judge.astype(float), alpha=0.05, lam=lam)
        ours = result.theta[i]
        assert ours == pytest.approx((float(np.ravel(low)[0]) + float(np.ravel(high)[0])) / 2, abs=1e-4)
        assert 2 * 1.96 * se == pytest.approx(float(np.ravel(high)[0] - np.ravel(low)[0]), rel=0.05)


def test_calibrated_equals_judge_only_when_the_judge_agrees_with_every_label():
    rng = np.random.default_rng(7)
    winners = ("model_a", "model_b", "tie")
    outcomes = {}
    for q in range(60):
        for c, p in (("strong", (0.2, 0.7, 0.1)), ("weak", (0.6, 0.3, 0.1))):
            w = winners[rng.choice(3, p=p)]
            outcomes[(f"q{q}", c)] = (w, w)  # a consistent judge: both games agree
    battles = battles_of(outcomes)
    labels = [HumanLabel(q, "base", c, w) for (q, c), (w, _) in outcomes.items()]
    judge_only = compute_leaderboard(battles, "base", rounds=0).set_index("model")["score"]
    every = calibrate(battles, labels, "base").table().set_index("model")
    for c in ("strong", "weak"):
        assert every.loc[c, "calibrated_score"] == pytest.approx(judge_only[c], abs=1e-4)

    # A fifth of the pairs labelled (the contestant given first, winner turned around): the rectifier is zero, and
    # only the estimated power-tuning weight (≈ 1) keeps the estimate from being exactly the judge-only one.
    some = [HumanLabel(q, c, "base", {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}[w])
            for (q, c), (w, _) in outcomes.items() if int(q[1:]) % 5 == 0]
    part = calibrate(battles, some, "base")
    table = part.table().set_index("model")
    assert part.lam == pytest.approx(1.0, abs=0.15)
    for c in ("strong", "weak"):
        width = table.loc[c, "calibrated_ci_high"] - table.loc[c, "calibrated_ci_low"]
        assert abs(table.loc[c, "calibrated_score"] - judge_only[c]) < 0.05 * width


def test_ties_and_both_positions_make_one_row_per_question_and_pair():
    battles = pd.DataFrame([
        ("q1", "base", "c", "model_b", 3.0),  # game 1: the contestant much better
        ("q1", "base", "c", "tie", 1.0),  # game 2: a tie
        ("q2", "base", "c", "model_a", 1.0),
    ], columns=["question_id", "model_a", "model_b", "winner", "weight"])
    pairs = judged_pairs(battles, "base")
    assert pairs.to_dict("records") == [
        {"question_id": "q1", "first": "c", "second": "base", "judge": pytest.approx(3.5 / 4), "weight": 4.0},
        {"question_id": "q2", "first": "c", "second": "base", "judge": 0.0, "weight": 1.0},
    ]


def test_the_paired_difference_of_two_contestants_and_against_the_baseline():
    rng = np.random.default_rng(11)
    outcomes = {}
    for q in range(300):
        base_bad = rng.random() < 0.5  # a question where the baseline's answer is poor: both contestants win
        for c, p in (("a", 0.75), ("b", 0.6)):
            won = rng.random() < (p + 0.2 if base_bad else p - 0.2)
            outcomes[(f"q{q}", c)] = ("model_b", "model_b") if won else ("model_a", "model_a")
    battles = battles_of(outcomes)
    labels = [HumanLabel(q, "base", c, w) for (q, c), (w, _) in outcomes.items() if int(q[1:]) % 3 == 0]
    result = calibrate(battles, labels, "base")
    table = result.table().set_index("model")
    diff, low, high, p = calibrated_difference(result, "a", "b")
    assert diff == pytest.approx(table.loc["a", "calibrated_score"] - table.loc["b", "calibrated_score"])
    assert low < diff < high and 0 <= p <= 1
    # Against the baseline: the score minus 50, significant here.
    diff_base, low_base, high_base, p_base = calibrated_difference(result, "a", "base")
    assert diff_base == pytest.approx(table.loc["a", "calibrated_score"] - 50)
    assert p_base < 1e-3 and low_base > 0
    # The questions shared by a and b correlate their errors: the paired interval is narrower than the one that
    # treats them as independent.
    i, j = result.index("a"), result.index("b")
    assert result.cov[i, j] > 0
    assert calibrated_difference(result, "b", "a")[0] == pytest.approx(-diff)


def test_labels_for_pairs_never_judged_are_counted_and_listed_not_fatal():
    outcomes = {(f"q{i}", c): ("model_b", "model_a") for i in range(12) for c in ("c1", "c2")}
    labels = [HumanLabel(f"q{i}", "base", "c1", "tie", source=f"labels.jsonl:{i + 1}") for i in range(12)]
    labels += [HumanLabel("q1", "c1", "c2", "tie", source="labels.jsonl:13"),  # two contestants: never judged
               HumanLabel("q99", "base", "c1", "tie", source="labels.jsonl:14")]  # an unknown question
    result = calibrate(battles_of(outcomes), labels, "base")
    assert result.unmatched_count == 2
    assert result.unmatched == ("labels.jsonl:13 (q1: c1 vs c2)", "labels.jsonl:14 (q99: base vs c1)")
    assert result.uncalibrated == ("c2",)  # no labels of its own
    assert math.isnan(result.table().set_index("model").loc["c2", "calibrated_score"])
    assert math.isnan(calibrated_difference(result, "c1", "c2")[0])


def test_too_few_labels_is_an_error_that_says_the_minimum():
    outcomes = {(f"q{i}", "c"): ("model_b", "model_b") for i in range(30)}
    labels = [HumanLabel(f"q{i}", "base", "c", "model_b") for i in range(4)]
    with pytest.raises(ConfigError, match=r"labels.jsonl: calibration needs at least 10 labelled judged pairs per "
                                          r"contestant; the most any contestant has is 4 \(c\)"):
        calibrate(battles_of(outcomes), labels, "base", source="labels.jsonl")


def test_a_labels_file_for_another_question_set_names_its_first_line():
    labels = [HumanLabel("other-1", "base", "c", "tie", source="l.jsonl:1"),
              HumanLabel("other-2", "base", "c", "tie", source="l.jsonl:2")]
    with pytest.raises(ConfigError, match=r"l.jsonl:1: question 'other-1' is not in the question set demo"):
        check_labels(labels, ["q1", "q2"], "l.jsonl", "demo")
    check_labels(labels[:1] + [HumanLabel("q1", "base", "c", "tie")], ["q1"], "l.jsonl")  # one known is enough


def test_a_contestant_that_wins_everything_stays_finite():
    outcomes = {(f"q{i}", "c"): ("model_b", "model_b") for i in range(20)}
    labels = [HumanLabel(f"q{i}", "base", "c", "model_b") for i in range(10)]
    table = calibrate(battles_of(outcomes), labels, "base").table().set_index("model")
    assert 99.9 < table.loc["c", "calibrated_score"] < 100


# --- a biased judge of known truth, through the loopback fake server --------------------------------------------

STRENGTHS = {"model-base": 1000.0, "model-padded-longer": 1000.0, "model-c": 1100.0}


def true_score(contestant_model: str) -> float:
    return 100 / (1 + 10 ** ((STRENGTHS["model-base"] - STRENGTHS[contestant_model]) / 400))


@pytest.mark.slow  # 900 answers and 1200 games through HTTP per seed
@pytest.mark.parametrize("seed", [1, 2])
def test_a_judge_that_prefers_longer_answers_is_corrected_by_a_tenth_of_the_questions_labelled(
        tmp_path, fake_server, seed):
    import json

    import yaml
    from conftest import write_config
    from fake_server import true_winner

    from arena_eval import Arena
    from arena_eval.config import load_config

    # "pad" writes the longer answer (a longer model name), "plain" the shorter: the judge picks the longer answer in
    # 40 % of its games whatever the truth, so it over-rates pad (true 50) and under-rates plain (true 64).
    server = fake_server(judge_verdict="biased", strengths=STRENGTHS, longer_bias=0.4)
    path = write_config(tmp_path, server.base_url, n_questions=300, contestants=[
        {"name": "base", "model": "model-base"}, {"name": "pad", "model": "model-padded-longer"},
        {"name": "plain", "model": "model-c"}], rating={"rounds": 200, "seed": 1})
    questions = tmp_path / "questions.jsonl"  # a question set of its own per seed: other answers, other truths
    questions.write_text("".join(json.dumps({"question_id": f"q{i:04d}", "turns": [{"content": f"Seed {seed}: "
                                                                                    f"question {i}?"}]}) + "\n"
                                 for i in range(300)))
    first = Arena(load_config(path)).run_sync()
    assert first.exit_code == 0
    answers = {(row.contestant, row.question_id): row.text for row in first.answers.itertuples()}
    labelled = [f"q{i:04d}" for i in range(0, 300, 10)]
    with (tmp_path / "labels.jsonl").open("w") as handle:
        for q in labelled:
            for name in ("pad", "plain"):
                winner = true_winner(answers[("base", q)], answers[(name, q)], STRENGTHS)
                handle.write(json.dumps({"question_id": q, "model_a": "base", "model_b": name,
                                         "winner": "model_a" if winner == answers[("base", q)] else "model_b"}) + "\n")
    data = yaml.safe_load(path.read_text())
    data["rating"]["calibration"] = {"labels": "labels.jsonl"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    scored = Arena(load_config(path)).run_sync(("score",), "score")
    board = scored.leaderboard.set_index("model")

    assert board.loc["pad", "labels"] == board.loc["plain", "labels"] == 30
    for name, model in (("pad", "model-padded-longer"), ("plain", "model-c")):
        truth = true_score(model)
        assert board.loc[name, "calibrated_ci_low"] <= truth <= board.loc[name, "calibrated_ci_high"], name
        assert not board.loc[name, "ci_low"] <= truth <= board.loc[name, "ci_high"], name  # the judge alone misses
    assert board.loc["pad", "score"] > board.loc["pad", "calibrated_score"] + 10
    # Said in words where the two intervals do not overlap, in the summary and the report; the columns in the files.
    apart = board.loc["pad", "calibrated_ci_high"] < board.loc["pad", "ci_low"]
    said = [sentence for sentence in scored.summary.judge_bias if sentence.startswith("the judge over-rates pad by ~")]
    assert bool(said) == apart
    files = pd.read_csv(tmp_path / "out" / "t" / "leaderboard.csv")
    assert {"calibrated_score", "calibrated_ci_low", "calibrated_ci_high", "labels"} <= set(files.columns)
    report = (tmp_path / "out" / "t" / "report.html").read_text()
    assert "Calibrated with human labels" in report
    assert ("The judge over-rates pad by ~" in report) == apart
    if seed == 1:
        command_line(tmp_path, path)


def command_line(tmp_path, path):
    """`score --labels` and `agreement --target-width` on the run of the test above (in process)."""
    import json

    import yaml
    from typer.testing import CliRunner

    from arena_eval.cli import app

    data = yaml.safe_load(path.read_text())
    del data["rating"]["calibration"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    labels = tmp_path / "labels.jsonl"
    scored = CliRunner().invoke(app, ["score", "--config", str(path), "--labels", str(labels), "--format", "json"])
    assert scored.exit_code == 0, scored.output
    rows = {row["model"]: row for row in json.loads(scored.stdout)}
    assert rows["pad"]["labels"] == 30 and rows["pad"]["calibrated_score"] is not None

    asked = CliRunner().invoke(app, ["agreement", "--config", str(path), "--labels", str(labels), "--target-width",
                                     "20", "--format", "json"])
    assert asked.exit_code == 0, asked.output
    needed = {row["model"]: row for row in json.loads(asked.stdout)["labels_needed"]}
    assert needed["pad"]["labels"] == 30 and needed["pad"]["judged_pairs"] == 300
    # A 20-point interval needs fewer labels than a narrower one would, and more than none.
    assert 10 <= needed["pad"]["labels_needed"] <= 300

    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"question_id": "elsewhere-1", "model_a": "base", "model_b": "pad",
                                 "winner": "tie"}) + "\n")
    refused = CliRunner().invoke(app, ["score", "--config", str(path), "--labels", str(other)])
    assert refused.exit_code == 1
    assert f"{other}:1: question 'elsewhere-1' is not in the question set t" in refused.output


def test_without_ppi_python_the_message_says_how_to_install_it(monkeypatch):
    import sys

    from arena_eval.rating import calibration

    monkeypatch.delitem(sys.modules, "ppi_py")
    monkeypatch.setitem(sys.modules, "numba", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"pip install 'arena-eval\[calibration\]'"):
        calibration._ppi()


def test_the_config_takes_calibration_and_refuses_it_with_a_baseline_per_category(tmp_path):
    import yaml
    from conftest import write_config

    from arena_eval.config import load_config

    path = write_config(tmp_path, "http://127.0.0.1:9", rating={"calibration": {"labels": "labels.jsonl"}})
    with pytest.raises(ConfigError, match=r"config.yaml:\d+: rating.calibration.labels: file .*labels.jsonl not found"):
        load_config(path)  # checked with the config, before a run spends anything
    (tmp_path / "labels.jsonl").write_text('{"question_id": "q0000", "model_a": "base", "model_b": "c1", '
                                           '"winner": "tie"}\n')
    config = load_config(path)
    assert config.rating.calibration.labels == "labels.jsonl" and config.rating.calibration.min_labels == 10
    data = yaml.safe_load(path.read_text())
    data["baseline"] = {"default": "base"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=r"rating.calibration|calibration with human labels"):
        load_config(path)
    data["baseline"] = "base"
    data["rating"]["calibration"] = {"labels": "labels.jsonl", "min_label": 3}  # misspelt
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match="min_label"):
        load_config(path)


def test_compare_with_calibration_reads_the_calibrated_difference_holm_corrected():
    """`compare` with rating.calibration on (§3.4.7): each pair gains its calibrated difference, interval and p, and
    with every pair (--all) their Holm correction, which is what `significant` then reads."""
    from arena_eval.leaderboard import with_calibrated_differences
    from arena_eval.rating import compare_battles
    from arena_eval.rating.paired import holm

    rng = np.random.default_rng(5)
    outcomes = {}
    for q in range(200):
        for c, p in (("a", 0.8), ("b", 0.6), ("c", 0.55)):
            won = rng.random() < p
            outcomes[(f"q{q}", c)] = ("model_b", "model_b") if won else ("model_a", "model_a")
    battles = battles_of(outcomes)
    labels = [HumanLabel(q, "base", c, w) for (q, c), (w, _) in outcomes.items() if int(q[1:]) % 4 == 0]
    result = calibrate(battles, labels, "base")
    table = with_calibrated_differences(compare_battles(battles, "base", rounds=200), result)
    for row in table.itertuples():
        expected = calibrated_difference(result, row.a, row.b)
        assert (row.calibrated_difference, row.calibrated_ci_low, row.calibrated_ci_high,
                row.calibrated_p) == pytest.approx(expected)
    assert table.calibrated_p_holm.to_numpy() == pytest.approx(holm(table.calibrated_p.to_numpy()))
    first = table[(table.a == "a") & (table.b == "c")].iloc[0]
    assert first.calibrated_difference > 0 and first.calibrated_p_holm < 0.05
