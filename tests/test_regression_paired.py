"""Paired regressions (docs/design.md §3.6): the change between two nights, paired by question, Holm-corrected."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import write_config

from arena_eval import load_config
from arena_eval.errors import ConfigError
from arena_eval.history import compare_with_previous, find_regressions, history_frame, paired_change, question_points
from arena_eval.store import Store


def scored_run(store: Store, run_id: str, started_at: float, points: dict[str, dict[str, tuple[float, float]]],
               scores: dict[str, tuple[float, float, float]]) -> None:
    """A scored run as the pipeline stores it: leaderboard rows model → (score, ci_low, ci_high), and each
    contestant's points per question against the baseline `base`."""
    store.db.execute("INSERT INTO runs (run_id, name, command, started_at, finished_at, status, config_json) "
                     "VALUES (?,?,?,?,?,?,?)", (run_id, "t", "run", started_at, started_at + 1, "complete", "{}"))
    rows = [{"model": m, "score": s, "ci_low": lo, "ci_high": hi, "is_baseline": m == "base"}
            for m, (s, lo, hi) in scores.items()]
    store.save_leaderboard(run_id, rows, question_points=[(m, q, p, w) for m, per in points.items()
                                                          for q, (p, w) in per.items()])


def test_paired_change_hand_computed():
    now = {"q1": (2.0, 2.0), "q2": (0.0, 2.0), "q3": (1.0, 2.0), "q4": (1.0, 1.0)}
    before = {"q1": (2.0, 2.0), "q2": (1.0, 2.0), "q3": (2.0, 2.0), "q5": (2.0, 2.0)}
    change = paired_change(now, before, rounds=0)
    # Common questions q1–q3: now 3 of 6 points, before 5 of 6 → −33.3 points.
    assert change["questions"] == 3 and change["difference"] == pytest.approx(100 * (3 / 6 - 5 / 6))
    assert np.isnan(change["p_value"])
    same = paired_change(now, now, rounds=200)
    assert same["difference"] == 0 and same["p_value"] == 1.0 and same["ci_low"] == same["ci_high"] == 0
    assert np.isnan(paired_change({"q1": (1.0, 2.0)}, {"q1": (1.0, 2.0)})["difference"])  # one question in common


def test_question_points_sum_wins_and_half_ties_against_a_baseline_only():
    import pandas as pd

    battles = pd.DataFrame({
        "question_id": ["q1", "q1", "q2", "q2", "q1"],
        "model_a": ["base", "base", "base", "base", "x"],  # the last: a game between contestants, left out
        "model_b": ["x", "x", "x", "x", "y"],
        "winner": ["model_b", "tie", "model_a", "model_b", "model_b"],
        "weight": [1.0, 1.0, 3.0, 1.0, 1.0],
    })
    assert question_points(battles, {"base"}) == [("x", "q1", 1.5, 2.0), ("x", "q2", 1.0, 4.0)]


def known_runs(store: Store, rng: np.random.Generator, n: int, fall: float) -> None:
    """Two nights of contestants `worse` (falls by `fall` win-rate points) and `same`, 2 games per question, with a
    per-question difficulty shared by both nights (outcomes on a question correlate, as on real benchmarks)."""
    difficulty = rng.normal(0, 1.5, n)
    def night(shift: float) -> dict[str, tuple[float, float]]:
        p = 1 / (1 + np.exp(-(0.6 + shift + difficulty)))
        wins = rng.binomial(2, p)
        return {f"q{i}": (float(w), 2.0) for i, w in enumerate(wins)}
    # `fall` points of win rate at ~62 % are about fall / 23 log-odds.
    first = {"worse": night(0.0), "same": night(0.0)}
    second = {"worse": night(-fall / 23), "same": night(0.0)}
    for run_id, t, points in (("r1", 1.0, first), ("r2", 2.0, second)):
        scores = {"base": (50, 50, 50)}
        for m, per in points.items():
            rate = 100 * sum(p for p, _ in per.values()) / (2 * n)
            scores[m] = (rate, rate - 4, rate + 4)  # intervals ±4: a 3-point fall never leaves them
        scored_run(store, run_id, t, points, scores)


def test_a_three_point_fall_is_flagged_paired_but_not_by_overlap(tmp_path):
    with Store(tmp_path / "arena.db") as store:
        known_runs(store, np.random.default_rng(3), 500, fall=4.0)
        paired = find_regressions(store, "r2", rounds=1000)
        assert paired.model.tolist() == ["worse"], paired
        row = paired.iloc[0]
        assert row.test == "paired" and row.difference < 0 and row.diff_ci_high < 0 and row.p_holm < 0.05
        assert row.questions == 500 and "paired change" in row.reason and "Holm" in row.reason
        assert find_regressions(store, "r2", test="overlap").empty  # the unpaired rule misses it
        checks = {c["model"]: c for c in compare_with_previous(store, "r2")}
        assert not checks["same"]["regressed"] and checks["same"]["p_holm"] >= checks["same"]["p_value"]


def test_runs_without_per_question_points_fall_back_to_the_overlap_rule(tmp_path):
    with Store(tmp_path / "arena.db") as store:
        scored_run(store, "r1", 1.0, {}, {"base": (50, 50, 50), "a": (70, 65, 75)})
        scored_run(store, "r2", 2.0, {}, {"base": (50, 50, 50), "a": (58, 54, 63)})
        found = find_regressions(store, "r2")
        assert found.model.tolist() == ["a"] and found.test.iloc[0] == "overlap (no paired record)"
        with pytest.raises(ValueError, match="alpha"):
            find_regressions(store, "r2", alpha=1.0)


def test_alpha_outside_zero_one_is_a_config_error_naming_the_field(tmp_path):
    path = write_config(tmp_path, "http://127.0.0.1:9/v1", regression={"test": "paired", "alpha": 1.5})
    with pytest.raises(ConfigError, match=r"regression\.alpha"):
        load_config(path)
    path = write_config(tmp_path, "http://127.0.0.1:9/v1", regression={"test": "sometimes"})
    with pytest.raises(ConfigError, match=r"regression\.test"):
        load_config(path)


def test_a_nightly_run_through_the_cli_flags_a_fall_and_exits_3(tmp_path, fake_server):
    """Two nights against the fake server, whose judge follows known strengths with outcomes correlated within a
    question. Night two: `worse` is a new build ~3 points weaker; `same` is unchanged (its stored answers and verdicts
    are reused: a change of exactly 0). An unchanged build with new answers is the benchmark's false-alarm case."""
    strengths = {"m-base": 1000.0, "m-worse": 1100.0, "m-same": 1100.0, "m-worse-2": 1075.0}
    server = fake_server(judge_verdict="difficulty", strengths=strengths)
    contestants = [{"name": "base", "model": "m-base"}, {"name": "worse", "model": "m-worse"},
                   {"name": "same", "model": "m-same"}]
    path = write_config(tmp_path, f"http://127.0.0.1:{server.port}/v1", n_questions=300, contestants=contestants,
                        rating={"rounds": 1000, "seed": 1}, report=False)
    cli = [sys.executable, "-m", "arena_eval.cli"]
    first = subprocess.run([*cli, "run", "-c", str(path), "--no-progress"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    data = yaml.safe_load(path.read_text())
    data["contestants"][1]["model"] = "m-worse-2"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    second = subprocess.run([*cli, "run", "-c", str(path), "--no-progress"], capture_output=True, text=True)
    assert second.returncode == 3, second.stdout + second.stderr
    assert "paired change" in second.stdout + second.stderr
    with Store(tmp_path / "out" / "t" / "arena.db") as store:
        frame = history_frame(store)
    tonight = frame[frame.run_id == frame.run_id.iloc[-1]].set_index("model")
    assert bool(tonight.loc["worse", "regressed"]) and tonight.loc["worse", "change"] < 0
    assert not bool(tonight.loc["same", "regressed"]) and tonight.loc["same", "change"] == 0
    shown = subprocess.run([*cli, "history", "-c", str(path), "--format", "json"], capture_output=True, text=True)
    assert shown.returncode == 0 and '"p_holm"' in shown.stdout
    from arena_eval import Arena

    page = Arena(load_config(path)).report().read_text()
    assert "Since the previous run" in page and f"{tonight.loc['worse', 'change']:+.1f}" in page


def test_with_calibrated_scores_the_rule_tests_their_change(tmp_path):
    """rating.calibration (§3.4.7): both runs hold calibrated scores, so the change tested is theirs (a z-test on
    the two fits' standard errors), Holm-corrected with the others; hand-computed here."""
    from scipy.stats import norm

    with Store(tmp_path / "arena.db") as store:
        for run_id, t, score in (("r1", 1.0, 60.0), ("r2", 2.0, 52.0)):
            store.db.execute("INSERT INTO runs (run_id, name, command, started_at, finished_at, status, config_json) "
                             "VALUES (?,?,?,?,?,?,?)", (run_id, "t", "run", t, t + 1, "complete", "{}"))
            rows = [{"model": "base", "score": 50.0, "is_baseline": True},
                    {"model": "a", "score": 70.0, "ci_low": 65.0, "ci_high": 75.0, "calibrated_score": score,
                     "calibrated_ci_low": score - 1.96, "calibrated_ci_high": score + 1.96}]
            store.save_leaderboard(run_id, rows, question_points=[("a", f"q{i}", 1.0, 2.0) for i in range(10)])
        found = find_regressions(store, "r2")
        row = found.iloc[0]
        se = np.hypot(1.0, 1.0)
        assert row.test == "calibrated" and row.difference == pytest.approx(-8.0)
        assert row.diff_ci_low == pytest.approx(-8 - 1.96 * se) and row.p_value == pytest.approx(2 * norm.sf(8 / se))
        assert row.reason.startswith("calibrated change -8.0 points")
