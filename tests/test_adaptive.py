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
from arena_eval.adaptive import NOT_REGRESSED, PRECISE, REGRESSED, Previous, question_order, settle
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
