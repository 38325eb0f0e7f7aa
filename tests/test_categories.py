"""A baseline and judge prompts per category (arena-hard v2.0: hard prompts against one baseline, creative
writing against another, each with its own judge instructions), end to end against the fake server."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections import Counter

import pandas as pd
import pytest
import yaml
from conftest import write_config

from arena_eval import Arena, load_config
from arena_eval.config import VerdictWeights
from arena_eval.judge import battle_outcome
from arena_eval.rating import compute_category_leaderboard
from arena_eval.resources import bundled_path

HARD, CREATIVE = 6, 4


def category_run(tmp_path, server):
    questions = tmp_path / "questions.jsonl"
    contestants = [{"name": "b-hard", "model": "m-hard"}, {"name": "b-creative", "model": "m-creative"},
                   {"name": "c", "model": "m-c"}]
    path = write_config(tmp_path, server.base_url, contestants=contestants, rating={"rounds": 200, "seed": 3})
    with questions.open("w") as handle:  # the arena-hard v2.0 form, as it is
        for i in range(HARD):
            handle.write(json.dumps({"uid": f"h{i}", "category": "hard_prompt", "subcategory": "coding",
                                     "prompt": f"Hard task {i}" + "!" * i}) + "\n")
        for i in range(CREATIVE):
            handle.write(json.dumps({"uid": f"w{i}", "category": "creative_writing", "subcategory": "poem",
                                     "prompt": f"Write poem {i}" + "?" * i}) + "\n")
    creative = tmp_path / "creative-prompts"
    shutil.copytree(bundled_path("prompts"), creative)
    system = creative / "judge_system.j2"
    system.write_text("CREATIVE RUBRIC: judge originality and voice first.\n" + system.read_text())
    data = yaml.safe_load(path.read_text())
    data["baseline"] = {"hard_prompt": "b-hard", "creative_writing": "b-creative"}
    data["judge"]["prompts_by_category"] = {"creative_writing": str(creative)}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_each_category_is_judged_against_its_baseline_with_its_prompts_and_the_overall_score_is_their_weighted_mean(
        tmp_path, fake_server):
    server = fake_server(judge_verdict="hash")
    server.capture = True
    path = category_run(tmp_path, server)
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 0, result.summary
    # Every contestant but a question's own baseline plays it: 2 per question, 2 games each.
    assert result.summary.games_new == 2 * 2 * (HARD + CREATIVE)

    # Counted at the server: each category's games hold its own baseline's answer and its own judge prompt.
    judge = [b["messages"] for b in server.captured if b["model"] == "judge-model"]
    seen = Counter()
    for messages in judge:
        text = messages[1]["content"]
        creative = "Write poem" in text
        seen[("creative" if creative else "hard", "rubric" if "CREATIVE RUBRIC" in messages[0]["content"] else "default",
              "m-creative" in text, "m-hard" in text)] += 1
    assert seen == {("hard", "default", True, True): 2 * HARD,  # b-creative plays the hard baseline
                    ("hard", "default", False, True): 2 * HARD,  # c against b-hard
                    ("creative", "rubric", True, True): 2 * CREATIVE,  # b-hard plays the creative baseline
                    ("creative", "rubric", True, False): 2 * CREATIVE}

    # The overall score by hand: in each category every battle is against that category's baseline, so a
    # contestant's score there is its weighted share of wins (ties count half); overall, the question-weighted
    # mean of its category scores, its own category counting 50 for a baseline.
    with sqlite3.connect(result.output_dir / "arena.db") as db:
        rows = db.execute("SELECT question_id, contestant, game, verdict FROM judgments").fetchall()
    won: dict[tuple[str, str], list[float]] = {}
    for qid, contestant, game, verdict in rows:
        winner, weight = battle_outcome(verdict, game, VerdictWeights())
        share = {"model_b": 1.0, "model_a": 0.0, "tie": 0.5}[winner]
        category = "hard" if qid.startswith("h") else "creative"
        totals = won.setdefault((contestant, category), [0.0, 0.0])
        totals[0] += share * weight
        totals[1] += weight
    by_hand = {key: 100 * w / n for key, (w, n) in won.items()}
    by_hand[("b-hard", "hard")] = by_hand[("b-creative", "creative")] = 50.0
    board = result.leaderboard.set_index("model")
    for model in ("b-hard", "b-creative", "c"):
        overall = (HARD * by_hand[(model, "hard")] + CREATIVE * by_hand[(model, "creative")]) / (HARD + CREATIVE)
        assert board.loc[model, "score"] == pytest.approx(overall, abs=0.01)
        scores = board.loc[model, "category_scores"]
        assert scores["hard_prompt"] == pytest.approx(by_hand[(model, "hard")], abs=0.01)
        assert scores["creative_writing"] == pytest.approx(by_hand[(model, "creative")], abs=0.01)
        assert board.loc[model, "ci_low"] <= board.loc[model, "score"] <= board.loc[model, "ci_high"]

    # The scores per category are in the files and the report, and history keeps them.
    saved = {r["model"]: r for r in json.loads((result.output_dir / "leaderboard.json").read_text())}
    assert saved["c"]["category_scores"].keys() == {"hard_prompt", "creative_writing"}
    report = (result.output_dir / "report.html").read_text()
    assert "creative_writing" in report and "b-creative" in report


def test_category_scores_recover_known_strengths_and_intervals_cover_them():
    """Contestants of known strength: in category X (baseline bx) c wins with probability 0.8, in Y (baseline by)
    0.4. The per-category scores recover 80 and 40 and the overall score their question-weighted mean, 64."""
    import numpy as np

    rng = np.random.default_rng(5)
    rows = []
    for category, base, p, n in (("X", "bx", 0.8, 600), ("Y", "by", 0.4, 400)):
        for i in range(n):
            rows.append((f"{category}{i}", base, "c", "model_b" if rng.random() < p else "model_a", 1.0, category))
    battles = pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner", "weight", "category"])
    board = compute_category_leaderboard(battles, {"X": "bx", "Y": "by"}, rounds=300, seed=1).set_index("model")
    scores = board.attrs["category_scores"]["c"]
    assert scores["X"] == pytest.approx(80, abs=4) and scores["Y"] == pytest.approx(40, abs=5)
    assert board.loc["c", "score"] == pytest.approx((600 * scores["X"] + 400 * scores["Y"]) / 1000)
    assert board.loc["c", "ci_low"] < 64 < board.loc["c", "ci_high"]
    assert board.loc["bx", "score"] == board.loc["by", "score"] == 50.0


def test_the_terminal_table_and_history_show_the_categories(tmp_path, fake_server):
    from typer.testing import CliRunner

    from arena_eval.cli import app

    server = fake_server(judge_verdict="hash")
    path = category_run(tmp_path, server)
    runner = CliRunner()
    run = runner.invoke(app, ["run", "--config", str(path), "--no-progress"])
    assert run.exit_code == 0, run.output
    assert "each category's baseline (hard_prompt: b-hard, creative_writing: b-creative" in run.stdout
    assert "by category" in run.stdout and "hard_prompt" in run.stdout
    history = runner.invoke(app, ["history", "--config", str(path), "--format", "json"])
    rows = json.loads(history.stdout)
    assert {r["model"] for r in rows} == {"b-hard", "b-creative", "c"}
    assert all(set(r["category_scores"]) == {"hard_prompt", "creative_writing"} for r in rows)
    table = runner.invoke(app, ["history", "--config", str(path)])
    assert "category_scores" in table.stdout and "creative_writing" in table.stdout
    validate = runner.invoke(app, ["validate", "--config", str(path)])
    assert validate.exit_code == 0 and "each category's baseline" in validate.stdout


def test_verdicts_reused_after_the_baseline_changes_are_read_from_the_new_baseline_side(tmp_path, fake_server):
    """A game's id is the same whichever answer is the baseline: after a swap, the stored verdicts are reused, and
    their winner must be read with today's positions (a weak contestant must not inherit the strong one's wins)."""
    server = fake_server(judge_verdict="better", strengths={"m-strong": 1000.0, "m-weak": 0.0})
    contestants = [{"name": "strong", "model": "m-strong"}, {"name": "weak", "model": "m-weak"}]
    path = write_config(tmp_path, server.base_url, n_questions=6, contestants=contestants,
                        rating={"rounds": 50, "seed": 1})
    first = Arena(load_config(path)).run_sync()
    assert first.leaderboard.set_index("model").loc["weak", "score"] < 1
    data = yaml.safe_load(path.read_text())
    data["baseline"] = "weak"
    data["contestants"] = [data["contestants"][1], data["contestants"][0]]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    swapped = Arena(load_config(path)).run_sync()
    assert swapped.summary.games_new == 0 and swapped.summary.games_cached == 12  # every verdict reused
    assert swapped.leaderboard.set_index("model").loc["strong", "score"] > 99


def test_a_changed_mapping_is_another_baseline_for_regressions_and_history(tmp_path, fake_server):
    server = fake_server(judge_verdict="better", strengths={"m-hard": 0.0, "m-creative": 1000.0, "m-c": 500.0})
    path = category_run(tmp_path, server)
    assert Arena(load_config(path)).run_sync().exit_code == 0
    data = yaml.safe_load(path.read_text())
    data["baseline"] = {"hard_prompt": "b-hard", "creative_writing": "c"}  # scores move: not a regression
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    second = Arena(load_config(path)).run_sync()
    assert second.exit_code == 0 and second.summary.regressions == []
    from arena_eval.history import history_frame
    from arena_eval.store import Store

    with Store(second.output_dir / "arena.db") as store:
        baselines = set(history_frame(store).baseline)
    assert baselines == {"creative_writing: b-creative, hard_prompt: b-hard", "creative_writing: c, hard_prompt: b-hard"}


def test_a_baseline_for_a_category_the_questions_lack_is_refused_naming_it_and_the_categories_there_are(tmp_path):
    from typer.testing import CliRunner

    from arena_eval.cli import app
    from arena_eval.errors import ConfigError

    path = write_config(tmp_path, "http://127.0.0.1:9/v1", n_questions=6)  # categories cat0, cat1, cat2
    data = yaml.safe_load(path.read_text())
    # A misspelt category: with a `default`, its questions would quietly be judged against the default baseline.
    data["baseline"] = {"cat0": "base", "Cat1": "c1", "default": "base"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    message = f"baseline names category Cat1, which {tmp_path / 'questions.jsonl'} does not have; its categories: " \
              "cat0, cat1, cat2"
    with pytest.raises(ConfigError, match="^" + message.replace(".", r"\.")):
        Arena(load_config(path))
    result = CliRunner().invoke(app, ["validate", "--config", str(path)])
    assert result.exit_code == 1 and message in " ".join(result.stderr.split())
