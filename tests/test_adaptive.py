"""Adaptive judging (arena_eval/adaptive.py): fewer games when the answer is clear, every game when it is not."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from conftest import write_config

from arena_eval import Arena, load_config
from arena_eval.adaptive import (
    NOT_REGRESSED,
    PRECISE,
    REGRESSED,
    Previous,
    battle_floor,
    question_order,
    settle,
    wilson_half_width,
)
from arena_eval.config import AdaptiveConfig
from arena_eval.errors import ConfigError

CLI = [sys.executable, "-m", "arena_eval.cli"]


def config(folder, server, strengths: dict[str, float], n_questions: int = 200, adaptive: dict | None = None,
           seed: int = 42):
    folder.mkdir(exist_ok=True)
    contestants = [{"name": name.removeprefix("m-"), "model": name, "concurrency": 16} for name in strengths]
    rating = {"rounds": 200, "seed": seed, **({"adaptive": adaptive} if adaptive else {})}
    return write_config(folder, server.base_url, n_questions=n_questions, contestants=contestants, rating=rating,
                        judge={"concurrency": 16})


def test_settle_stops_a_precise_contestant_and_settles_a_regression_either_way():
    settings = AdaptiveConfig(ci_half_width=5, min_questions=10)
    board = pd.DataFrame({"model": ["a", "b", "c", "d"], "score": [70, 40, 55, 52],
                          "ci_low": [67, 30, 53, 40], "ci_high": [73, 50, 57, 64]})
    judged = {"a": 20, "b": 20, "c": 5, "d": 20}
    assert settle(board, judged, settings) == {"a": PRECISE}  # c is precise too, but judged on 5 < 10 questions
    previous = {"b": Previous(60, 55, 65), "d": Previous(50, 38, 62)}
    assert settle(board, judged, settings, previous) == {"a": PRECISE, "b": REGRESSED, "d": NOT_REGRESSED}
    assert settle(board, judged, settings, previous, score_drop=5) == {"a": PRECISE, "b": REGRESSED}  # d: 40 ≤ 45


def test_the_order_is_a_seeded_permutation_that_ignores_the_files_order():
    ids = [f"q{i}" for i in range(30)]
    assert question_order(ids, 7) == question_order(list(reversed(ids)), 7) != question_order(ids, 8)
    assert sorted(question_order(ids, 7)) == sorted(ids)


@pytest.mark.slow
def test_well_separated_contestants_are_rated_from_a_fraction_of_the_games_inside_the_full_intervals(tmp_path,
                                                                                                     fake_server):
    strengths = {"m-base": 1000.0, "m-strong": 1400.0, "m-weak": 600.0}
    server = fake_server(judge_verdict="strength", strengths=strengths)
    adaptive = {"ci_half_width": 5, "min_questions": 40, "batch": 20}
    full = Arena(load_config(config(tmp_path / "full", server, strengths))).run_sync()
    before = server.requests["judge-model"]
    quick = Arena(load_config(config(tmp_path / "adaptive", server, strengths, adaptive=adaptive))).run_sync()
    assert full.exit_code == 0 and quick.exit_code == 0, quick.summary
    a = quick.summary.adaptive
    print(f"adaptive: {a.games_judged} of {a.games_full} games; stopped {a.stopped}")
    assert server.requests["judge-model"] - before == a.games_judged <= 0.4 * a.games_full
    assert set(a.stopped) == {"strong", "weak"}
    board, reference = quick.leaderboard.set_index("model"), full.leaderboard.set_index("model")
    for model in ("strong", "weak"):
        assert reference.loc[model, "ci_low"] <= board.loc[model, "score"] <= reference.loc[model, "ci_high"], model
        assert abs(board.loc[model, "score"] - reference.loc[model, "score"]) <= adaptive["ci_half_width"], model
        assert board.loc[model, "stopped_early"] and board.loc[model, "judged_questions"] < 200
    assert list(quick.leaderboard.model) == list(full.leaderboard.model)  # the same ranking


@pytest.mark.slow
def test_a_contestant_close_to_the_baseline_is_judged_on_nearly_every_question(tmp_path, fake_server):
    strengths = {"m-base": 1000.0, "m-near": 1030.0}
    server = fake_server(judge_verdict="strength", strengths=strengths)
    adaptive = {"ci_half_width": 5, "min_questions": 40, "batch": 20}
    result = Arena(load_config(config(tmp_path / "close", server, strengths, adaptive=adaptive))).run_sync()
    a = result.summary.adaptive
    assert result.exit_code == 0 and a.games_judged >= 0.9 * a.games_full, a


@pytest.mark.slow
def test_a_killed_adaptive_run_resumes_to_the_uninterrupted_plan_and_scoring_replays_it(tmp_path, fake_server):
    strengths = {"m-base": 1000.0, "m-strong": 1400.0, "m-weak": 600.0}
    server = fake_server(judge_verdict="strength", strengths=strengths, latency_s=0.005)
    adaptive = {"ci_half_width": 5, "min_questions": 40, "batch": 20}
    reference = Arena(load_config(config(tmp_path / "reference", server, strengths, adaptive=adaptive))).run_sync()
    path = config(tmp_path / "killed", server, strengths, adaptive=adaptive)
    before = sum(server.successes.values())
    process = subprocess.Popen([*CLI, "run", "--config", str(path), "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert server.wait_for_replies(before + 600 + 100, timeout=120)  # every answer, then some games
    process.send_signal(signal.SIGKILL)
    process.wait()
    rerun = subprocess.run([*CLI, "run", "--config", str(path), "--no-progress", "--format", "json"],
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "adaptive judging:" in rerun.stderr, rerun.stderr
    assert "strong after" in rerun.stderr and "weak after" in rerun.stderr, rerun.stderr
    resumed = {r["model"]: r for r in json.loads(rerun.stdout)}
    for row in reference.rows:
        assert resumed[row.model]["judged_questions"] == row.judged_questions, row.model
        assert resumed[row.model]["score"] == pytest.approx(row.score, abs=1e-9), row.model
    scored = subprocess.run([*CLI, "score", "--config", str(path), "--format", "json"], capture_output=True, text=True)
    assert scored.returncode == 0 and json.loads(scored.stdout) == json.loads(rerun.stdout)


def test_adaptive_settings_out_of_range_are_config_errors(tmp_path):
    path = write_config(tmp_path, "http://127.0.0.1:9/v1")
    for bad, pattern in (({"ci_half_width": 0}, r"rating\.adaptive\.ci_half_width: Input should be greater than 0"),
                         ({"ci_half_width": 5, "min_questions": 0}, r"rating\.adaptive\.min_questions: Input should "
                                                                     r"be greater than or equal to 1")):
        data = yaml.safe_load(path.read_text())
        data["rating"]["adaptive"] = bad
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        with pytest.raises(ConfigError, match=pattern):
            load_config(path)


@pytest.mark.slow
def test_a_nightly_run_stops_a_contestant_once_its_regression_verdict_is_settled_either_way(tmp_path, fake_server):
    """Last night: a and b both at 1200. Tonight a's new build is far worse and b's far better (new model ids, so new
    answers and games). W is too small to ever stop on precision: what stops them is the regression rule, settled
    either way long before the set is used up."""
    server = fake_server(judge_verdict="strength", strengths={"m-base": 1000.0, "m-a": 1200.0, "m-b": 1200.0,
                                                             "m-a-new": 700.0, "m-b-new": 1600.0})
    folder = tmp_path / "nightly"
    last_night = config(folder, server, {"m-base": 0, "m-a": 0, "m-b": 0})
    assert Arena(load_config(last_night)).run_sync().exit_code == 0
    data = yaml.safe_load(last_night.read_text())
    data["contestants"][1]["model"], data["contestants"][2]["model"] = "m-a-new", "m-b-new"
    data["rating"]["adaptive"] = {"ci_half_width": 0.5, "min_questions": 20, "batch": 20}
    data["regression"] = {"score_drop": 5}
    last_night.write_text(yaml.safe_dump(data, sort_keys=False))
    before = server.requests["judge-model"]
    tonight = Arena(load_config(last_night)).run_sync()
    a = tonight.summary.adaptive
    assert a.stopped == {"a": [a.stopped["a"][0], REGRESSED], "b": [a.stopped["b"][0], NOT_REGRESSED]}, a.stopped
    assert a.stopped["a"][0] < 200 and a.stopped["b"][0] < 200
    assert server.requests["judge-model"] - before == a.games_judged < a.games_full
    assert tonight.regressions.model.tolist() == ["a"] and tonight.exit_code == 3  # the verdict the stop foresaw


@pytest.mark.slow
def test_with_answers_false_collection_stops_with_judging(tmp_path, fake_server):
    strengths = {"m-base": 1000.0, "m-strong": 1400.0, "m-weak": 600.0}
    server = fake_server(judge_verdict="strength", strengths=strengths)
    adaptive = {"ci_half_width": 5, "min_questions": 40, "batch": 20, "answers": False}
    result = Arena(load_config(config(tmp_path / "lean", server, strengths, adaptive=adaptive))).run_sync()
    a = result.summary.adaptive
    assert result.exit_code == 0 and set(a.stopped) == {"strong", "weak"}, a
    for model, name in (("m-strong", "strong"), ("m-weak", "weak")):
        # the answers asked for are those of the questions it was judged on, no more
        assert server.requests[model] == a.stopped[name][0] < 200, (model, server.requests[model])
    assert server.requests["m-base"] == max(n for n, _ in a.stopped.values())
    assert result.summary.answers_missing == 0  # questions it was not judged on are not missing: not called for


def test_a_unanimous_early_record_is_not_taken_for_a_precise_one():
    """40 games, all won: every bootstrap resample wins everything, so the interval has width 0. The Wilson
    bound of 40 out of 40 (scipy's, checked here) still leaves ±4.4 points open: W = 3 keeps judging, W = 5 stops."""
    from scipy.stats import binomtest

    low, high = binomtest(40, 40).proportion_ci(method="wilson")
    assert wilson_half_width(40, 40) == pytest.approx(100 * (high - low) / 2, abs=1e-9)
    assert wilson_half_width(40, 40) == pytest.approx(4.381, abs=1e-3)
    battles = pd.DataFrame({"question_id": [f"q{i // 2}" for i in range(40)], "model_a": "base", "model_b": "a",
                            "winner": "model_b", "weight": 1.0})
    floor = battle_floor(battles)
    board = pd.DataFrame({"model": ["a"], "score": [99.9998], "ci_low": [99.9998], "ci_high": [99.9998]})
    assert settle(board, {"a": 20}, AdaptiveConfig(ci_half_width=3, min_questions=10), floor=floor) == {}
    assert settle(board, {"a": 20}, AdaptiveConfig(ci_half_width=5, min_questions=10), floor=floor) == {"a": PRECISE}
    # Ties count half: 20 wins and 20 ties is a share of 0.75 over 40 games.
    mixed = battles.assign(winner=["model_b", "tie"] * 20)
    assert battle_floor(mixed)["a"] == pytest.approx(wilson_half_width(30, 40))


@pytest.mark.slow
def test_scoring_replays_the_same_plan_every_time_when_no_judging_run_started_it(tmp_path, fake_server):
    """A finished full run, then adaptive settings added and only scored: every read gives the same plan (no
    previous run to compare with: none was recorded when a judging run started the plan)."""
    strengths = {"m-base": 1000.0, "m-a": 1100.0, "m-b": 950.0, "m-c": 1300.0}
    server = fake_server(judge_verdict="strength", strengths=strengths)
    path = config(tmp_path / "replay", server, strengths)
    assert Arena(load_config(path)).run_sync().exit_code == 0
    data = yaml.safe_load(path.read_text())
    data["rating"]["adaptive"] = {"ci_half_width": 4, "min_questions": 20, "batch": 10}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    plans = []
    for _ in range(3):
        scored = Arena(load_config(path)).run_sync(("score",), "score")
        plans.append((scored.summary.adaptive.stopped, scored.leaderboard.judged_questions.fillna(-1).tolist()))
    stored = Arena(load_config(path)).stored_leaderboard().frame
    assert plans[0] == plans[1] == plans[2] and stored.judged_questions.fillna(-1).tolist() == plans[0][1]


@pytest.mark.slow
def test_a_game_that_keeps_failing_holds_back_no_plan_and_is_asked_again_next_run(tmp_path, fake_server):
    strengths = {"m-base": 1000.0, "m-strong": 1400.0, "m-weak": 600.0}
    server = fake_server(judge_verdict="strength", strengths=strengths)
    order = question_order([f"q{i:04d}" for i in range(200)], 42)
    broken = f"Question number {int(order[3][1:])}?"  # a question of the first batch

    failing = {"on": True}

    def pick_fault(model, body, original=server._pick_fault):  # weak's games on that question: HTTP 500, always
        text = json.dumps(body.get("messages"))
        if failing["on"] and model == "judge-model" and broken in text and "m-weak" in text:
            return "500"
        return original(model, body)

    server._pick_fault = pick_fault
    adaptive = {"ci_half_width": 5, "min_questions": 40, "batch": 20}
    path = config(tmp_path / "failing", server, strengths, adaptive=adaptive)
    first = Arena(load_config(path)).run_sync()
    a = first.summary.adaptive
    assert a.complete and set(a.stopped) == {"strong", "weak"}, a  # the other games went on
    assert first.exit_code == 2 and first.summary.games_missing == 2  # the failing game's two positions
    failing["on"] = False
    second = Arena(load_config(path)).run_sync()
    assert second.exit_code == 0 and second.summary.games_new >= 2 and second.summary.games_missing == 0
