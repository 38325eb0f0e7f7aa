"""Games between contestants (`pairing`, docs/design.md §3.3.1): which games a run poses, their ids across a resume,
the plan and its cost, batch mode, adaptive judging, the arena-hard export and a known-strength ordering."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from itertools import combinations
from pathlib import Path

import pytest
import yaml
from conftest import write_config
from fake_batch import BatchFaults, FakeBatches

from arena_eval import Arena, load_config
from arena_eval.config import OpponentPairing
from arena_eval.errors import ConfigError
from arena_eval.judge import game_id
from arena_eval.pairing import opponent_pairs

# Strengths for the "better" judge: the stronger model's answer wins every game.
STRENGTHS = {"m-base": 50.0, "m-c1": 90.0, "m-c2": 70.0, "m-c3": 30.0, "m-c4": 10.0}
PRICE = {"input_per_mtok": 2.0, "output_per_mtok": 8.0}


def pairing_config(folder: Path, url: str, pairing=None, n_questions: int = 6, names=("c1", "c2", "c3", "c4"),
                   judges: int = 1, **top) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    contestants = [{"name": "base", "model": "m-base"}] + [{"name": n, "model": f"m-{n}"} for n in names]
    judge = {"model": "judge-a", "price": PRICE}
    if pairing is not None:
        top["pairing"] = pairing
    path = write_config(folder, url, n_questions=n_questions, contestants=contestants, judge=judge, **top)
    if judges > 1:
        data = yaml.safe_load(path.read_text())
        data["judge"] = [{**data["judge"], "name": f"judge-{x}", "model": f"judge-{x}"} for x in "ab"[:judges]]
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def stored(path: Path, query: str) -> list[tuple]:
    with sqlite3.connect(load_config(path).output_dir / "arena.db") as db:
        return db.execute(query).fetchall()


def games_of(path: Path) -> set[tuple]:
    """(judge config id, question, contestant, baseline place, game number, answer A, answer B, game id)."""
    return set(stored(path, "SELECT judge_config_id, question_id, contestant, baseline, game, answer_a_id, answer_b_id, "
                            "game_id FROM judgments"))


def answer_ids(path: Path) -> dict[tuple[str, str], str]:
    return {(c, q): a for c, q, a in stored(path, "SELECT contestant, question_id, answer_id FROM answers")}


def expected_games(path: Path, pairs_of) -> set[tuple]:
    """Every game a run should pose, worked out from the stored answers and the pairs: both positions, every
    judge; against the baseline game 1 has the baseline in position A, between contestants the first of the pair."""
    ids = answer_ids(path)
    questions = sorted({q for _, q in ids})
    names = ["c1", "c2", "c3", "c4"][: len({c for c, _ in ids}) - 1]
    out = set()
    for judge in {j for j, *_ in games_of(path)}:
        for q in questions:
            for first, second in [("base", n) for n in names] + list(pairs_of(q, names)):
                a, b = ids[(first, q)], ids[(second, q)]
                out.add((judge, q, second, first, 1, a, b, game_id(judge, a, b)))
                out.add((judge, q, second, first, 2, b, a, game_id(judge, b, a)))
    return out


def test_pairing_all_poses_every_pair_in_both_positions_for_every_judge(tmp_path, fake_server):
    server = fake_server(judge_verdict="better", strengths=STRENGTHS)
    path = pairing_config(tmp_path, server.base_url, "all", n_questions=5, judges=2)
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 0, result.summary
    games = games_of(path)
    # 5 questions × (4 against the baseline + 6 pairs) × 2 positions × 2 judges
    assert len(games) == 5 * (4 + 6) * 2 * 2 == result.summary.games_new
    assert games == expected_games(path, lambda q, names: combinations(names, 2))
    assert server.requests["judge-a"] == server.requests["judge-b"] == 100  # each game asked once
    board = result.leaderboard.set_index("model")
    # Every contestant plays 4 games per question against the baseline, and 3 pairs' 4 games... per judge: counted
    # for both sides of a pair.
    assert board.loc["c1", "games"] == 5 * (2 + 3 * 2) * 2
    assert board.loc["c1", "games_missing"] == 0 and result.summary.games_missing == 0
    # judge_cost gives each contestant half of its games with another: the column adds up to what judging cost.
    total = stored(path, "SELECT SUM(cost) FROM judgments")[0][0]
    assert board.judge_cost.sum() == pytest.approx(total) and total > 0


def test_opponents_k_gives_each_contestant_k_opponents_per_question_drawn_the_same_way_every_time(tmp_path,
                                                                                                  fake_server):
    server = fake_server(judge_verdict="better", strengths=STRENGTHS)
    path = pairing_config(tmp_path, server.base_url, {"opponents": 2, "seed": 3}, n_questions=8)
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 0, result.summary
    pairing = OpponentPairing(opponents=2, seed=3)
    games = games_of(path)
    assert games == expected_games(path, lambda q, names: opponent_pairs(q, names, pairing))
    # 8 questions × (4 against the baseline + 4 pairs) × 2 positions
    assert len(games) == 8 * (4 + 4) * 2
    between = {(q, frozenset((c, b))) for _, q, c, b, *_ in games if b != "base"}
    for q in {q for q, _ in between}:
        meets = Counter(name for qq, pair in between if qq == q for name in pair)
        assert meets == {"c1": 2, "c2": 2, "c3": 2, "c4": 2}, q
    assert len({pair for _, pair in between}) > 2  # the draw changes from question to question


def test_the_draw_depends_on_the_seed_the_question_and_the_set_of_contestants_only():
    names = ["c1", "c2", "c3", "c4", "c5", "c6"]
    k2 = OpponentPairing(opponents=2, seed=0)
    assert {frozenset(p) for p in opponent_pairs("q1", names, k2)} == \
        {frozenset(p) for p in opponent_pairs("q1", list(reversed(names)), k2)}
    draws = {tuple(opponent_pairs(f"q{i}", names, k2)) for i in range(20)}
    assert len(draws) > 5
    assert opponent_pairs("q1", names, k2) != opponent_pairs("q1", names, OpponentPairing(opponents=2, seed=1)) or \
        opponent_pairs("q2", names, k2) != opponent_pairs("q2", names, OpponentPairing(opponents=2, seed=1))
    # Balanced: over many questions every contestant meets every other about equally often.
    met = Counter(frozenset(p) for i in range(3000) for p in opponent_pairs(f"q{i}", names, k2))
    assert len(met) == 15 and max(met.values()) / min(met.values()) < 1.25
    # An odd K on an odd number of contestants: n·K is odd, one contestant meets K − 1 on each question.
    odd = Counter(n for p in opponent_pairs("q7", names[:5], OpponentPairing(opponents=3)) for n in p)
    assert sorted(odd.values()) == [2, 3, 3, 3, 3]
    assert opponent_pairs("q1", names, "baseline") == []
    assert opponent_pairs("q1", names, "all") == list(combinations(names, 2))


def test_pairing_baseline_poses_exactly_the_games_against_the_baseline_with_todays_ids(tmp_path, fake_server):
    server = fake_server(judge_verdict="better", strengths=STRENGTHS)
    plain = pairing_config(tmp_path / "plain", server.base_url, None)
    explicit = pairing_config(tmp_path / "explicit", server.base_url, "baseline")
    for path in (plain, explicit):
        assert Arena(load_config(path)).run_sync().exit_code == 0
    assert games_of(plain) == games_of(explicit) == expected_games(plain, lambda q, names: [])
    assert len(games_of(plain)) == 6 * 4 * 2


def test_game_ids_are_the_same_after_a_run_stopped_half_way_is_resumed(tmp_path, fake_server):
    server = fake_server(judge_verdict="better", strengths=STRENGTHS)
    whole = pairing_config(tmp_path / "whole", server.base_url, {"opponents": 2})
    assert Arena(load_config(whole)).run_sync().exit_code == 0
    resumed = pairing_config(tmp_path / "resumed", server.base_url, {"opponents": 2})
    # A spending cap stops the first run part-way through judging (exit 4); the next run asks only what is missing.
    first = Arena(load_config(resumed), max_cost=0.0008).run_sync()
    assert first.exit_code == 4, first.summary
    partial = games_of(resumed)
    assert 0 < len(partial) < len(games_of(whole))
    before = server.requests["judge-a"]
    second = Arena(load_config(resumed)).run_sync()
    assert second.exit_code == 0, second.summary
    assert games_of(resumed) == games_of(whole)
    assert server.requests["judge-a"] - before == len(games_of(whole)) - len(partial) == second.summary.games_new


def test_plan_counts_the_games_between_contestants_and_their_cost(tmp_path, fake_server):
    server = fake_server(judge_verdict="better", strengths=STRENGTHS)
    path = pairing_config(tmp_path, server.base_url, None)
    assert Arena(load_config(path)).run_sync().exit_code == 0  # the games against the baseline are stored
    data = yaml.safe_load(path.read_text())
    data["pairing"] = {"opponents": 2}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    plan = Arena(load_config(path)).plan()
    judge = next(r for r in plan.rows if r.role == "judge")
    assert judge.requests == 6 * 4 * 2  # 4 pairs a question, both positions; the baseline's games are stored
    # Priced from the stored games' averages at the judge's price.
    assert judge.cost == pytest.approx((judge.input_tokens * 2.0 + judge.output_tokens * 8.0) / 1e6)
    assert judge.cost > 0
    before = server.requests["judge-a"]
    result = Arena(load_config(path)).run_sync()
    assert result.summary.games_new == server.requests["judge-a"] - before == judge.requests
    # Under `all` from nothing: every answer new, so 6 questions × (4 + 6 pairs) × 2.
    fresh = pairing_config(tmp_path / "fresh", server.base_url, "all")
    plan = Arena(load_config(fresh)).plan()
    assert next(r for r in plan.rows if r.role == "judge").requests == 6 * (4 + 6) * 2


def test_a_batch_judge_submits_the_games_between_contestants(tmp_path, fake_server):
    batches = FakeBatches(BatchFaults(judge_verdict="longer")).start()
    try:
        server = fake_server()
        path = pairing_config(tmp_path, server.base_url, "all", n_questions=4, names=("c1", "c2", "c3"))
        data = yaml.safe_load(path.read_text())
        data["judge"].update({"base_url": f"{batches.base_url}/v1", "batch": True, "batch_poll_s": 0.01,
                              "batch_poll_max_s": 0.02})
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        result = Arena(load_config(path)).run_sync()
        assert result.exit_code == 0, result.summary
        games = games_of(path)
        assert len(games) == 4 * (3 + 3) * 2 == len(batches.submitted["openai"])
        assert {g[-1] for g in games} == set(batches.submitted["openai"])
        assert server.requests["judge-a"] == 0
        assert sum(1 for g in games if g[3] != "base") == 4 * 3 * 2
    finally:
        batches.stop()


def test_adaptive_judging_with_games_between_contestants_finishes_and_scoring_replays_it(tmp_path, fake_server):
    strengths = {"m-base": 1000.0, "m-c1": 1500.0, "m-c2": 1450.0, "m-c3": 500.0}
    server = fake_server(judge_verdict="strength", strengths=strengths)
    adaptive = {"ci_half_width": 8, "min_questions": 20, "batch": 10}
    path = pairing_config(tmp_path, server.base_url, {"opponents": 1}, n_questions=80, names=("c1", "c2", "c3"),
                          rating={"rounds": 50, "seed": 1, "adaptive": adaptive})
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 0, result.summary
    a = result.summary.adaptive
    assert a.complete and a.stopped, a
    # The full run: 80 questions × (3 against the baseline + 1 pair (3 contestants, K = 1)) × 2.
    assert a.games_full == 80 * (3 + 1) * 2
    assert a.games_judged == server.requests["judge-a"] == result.summary.games_new < a.games_full
    games = games_of(path)
    assert any(g[3] != "base" for g in games)
    # A game between two contestants is judged only where the plan judged both.
    judged = {r.model: r.judged_questions for r in result.rows if r.judged_questions is not None}
    from arena_eval.adaptive import question_order

    order = question_order([f"q{i:04d}" for i in range(80)], 1)
    for _, q, c, b, *_ in games:
        position = order.index(q)
        assert position < judged[c] and (b == "base" or position < judged[b]), (q, c, b)
    assert result.summary.games_missing == 0
    again = Arena(load_config(path)).run_sync()  # nothing to do: the stored verdicts replay the same plan
    assert again.summary.games_new == 0
    assert [(r.model, r.score, r.judged_questions) for r in again.rows] == \
        [(r.model, r.score, r.judged_questions) for r in result.rows]


def test_with_a_judge_that_prefers_the_stronger_answer_the_fit_orders_the_contestants_by_strength(tmp_path,
                                                                                                 fake_server):
    server = fake_server(judge_verdict="better", strengths=STRENGTHS, judge_error_rate=0.2)
    path = pairing_config(tmp_path, server.base_url, {"opponents": 2}, n_questions=40)
    result = Arena(load_config(path)).run_sync()
    assert result.exit_code == 0, result.summary
    board = result.leaderboard.set_index("model")
    assert list(result.leaderboard.model) == ["c1", "c2", "base", "c3", "c4"]
    assert board.loc["base", "score"] == 50 and board.loc["base", "elo"] == 1000  # still anchored at the baseline
    between = result.battles[result.battles.model_a != "base"]
    assert len(between) == 40 * 4 * 2  # the fit used the games between contestants too


def test_the_arena_hard_export_keeps_judgment_files_against_the_baseline_and_every_battle(tmp_path, fake_server):
    from arena_eval.folder import export_arena_hard

    server = fake_server(judge_verdict="better", strengths=STRENGTHS)
    path = pairing_config(tmp_path, server.base_url, "all", n_questions=3, names=("c1", "c2"))
    assert Arena(load_config(path)).run_sync().exit_code == 0
    folder = tmp_path / "ah"
    export_arena_hard(load_config(path), folder)
    for line in (folder / "model_judgment" / "judge-a" / "c2.jsonl").read_text().splitlines():
        assert len(json.loads(line)["games"]) == 2  # the two games against the baseline, no more
    battles = [json.loads(x) for x in (folder / "battles.jsonl").read_text().splitlines()]
    assert {(b["model_a"], b["model_b"]) for b in battles} == {("base", "c1"), ("base", "c2"), ("c1", "c2")}


@pytest.mark.parametrize("pairing, message", [
    ({"opponents": 0}, r"pairing\.opponents: pairing\.opponents is 0; give a whole number of at least 1"),
    ({"opponents": 4}, r"pairing\.opponents: pairing\.opponents is 4: .* needs at least 5 contestants besides the "
                       r"baseline \(there are 4\)"),
    ("every", r"pairing: pairing is 'every'; use baseline"),
])
def test_bad_pairing_is_a_config_error_naming_the_field(tmp_path, pairing, message):
    path = pairing_config(tmp_path, "http://127.0.0.1:9/v1", pairing)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_pairing_with_a_baseline_per_category_is_refused(tmp_path):
    path = pairing_config(tmp_path, "http://127.0.0.1:9/v1", "all")
    data = yaml.safe_load(path.read_text())
    data["baseline"] = {"cat0": "base", "default": "c1"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=r"pairing: games between contestants need one baseline for every question"):
        load_config(path)


def test_the_dispatcher_poses_a_pair_once_both_answers_exist_without_waiting_for_the_baseline():
    from arena_eval.dispatch import GameDispatcher
    from arena_eval.records import Answer, AnswerError

    def answer(name: str, q: str) -> Answer:
        return Answer(f"{name}-{q}", name, f"cfg-{name}", q, "p", f"text {name}")

    def posed(ready) -> list[tuple[str, str]]:
        return [(p.base.answer_id, p.answer.answer_id) for p in ready]

    names = ["base", "c1", "c2", "c3"]
    d = GameDispatcher(names, "base", opponents=lambda q: [("c1", "c2"), ("c1", "c3"), ("c2", "c3")])
    assert posed(d.deliver(answer("c2", "q1"))) == []
    assert posed(d.deliver(answer("c1", "q1"))) == [("c1-q1", "c2-q1")]  # the baseline has not answered yet
    assert posed(d.deliver(AnswerError("c3", "cfg-c3", "q1", "HTTP 500", 3))) == []  # c3's pairs have no game
    assert posed(d.deliver(answer("base", "q1"))) == [("base-q1", "c2-q1"), ("base-q1", "c1-q1")]
    assert d.open_questions == 0
    # Only pairs of two judged contestants (adaptive judging's active ones); a finished contestant drops its pairs.
    d = GameDispatcher(names, "base", judged=["c1", "c2"], opponents=lambda q: [("c1", "c2"), ("c1", "c3")])
    d.deliver(answer("c3", "q1"))
    d.deliver(answer("c1", "q1"))
    assert posed(d.finish("c2")) == [] and d.open_questions == 1
    assert posed(d.deliver(answer("base", "q1"))) == [("base-q1", "c1-q1")]
