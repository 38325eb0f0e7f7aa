"""`arena-eval compare`, the leaderboard's ranks and the report's pairwise matrix, on a real run against the fake
server (docs/design.md §3.4.8); the statistics themselves are tested in test_paired.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from conftest import write_config

from arena_eval.report import MATRIX_LIMIT, _pairwise

CLI = [sys.executable, "-m", "arena_eval.cli"]
STRENGTHS = {"m-base": 1000.0, "m-top": 1300.0, "m-near": 1280.0, "m-poor": 800.0}
NAMES = {"m-base": "base", "m-top": "top", "m-near": "near <b>x</b>", "m-poor": "poor"}


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *[str(a) for a in args]], capture_output=True, text=True)


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    """Four contestants of known Elo strength, 40 questions, a judge that follows the strengths."""
    from conftest import FakeServer, Faults

    server = FakeServer(Faults(judge_verdict="strength", strengths=STRENGTHS)).start()
    folder = tmp_path_factory.mktemp("compare")
    contestants = [{"name": NAMES[m], "model": m, "concurrency": 16} for m in STRENGTHS]
    path = write_config(folder, server.base_url, n_questions=40, contestants=contestants,
                        judge={"name": "first"}, rating={"rounds": 200, "seed": 3})
    run = cli("run", "--config", path, "--no-progress", "--format", "json")
    server.stop()
    assert run.returncode == 0, run.stderr
    return path, {r["model"]: r for r in json.loads(run.stdout)}, folder


@pytest.mark.slow
def test_compare_two_contestants_of_a_run(scored_run):
    path, board, _ = scored_run
    out = cli("compare", "-c", path, "top", "poor", "--format", "json")
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert {"a", "b", "difference", "ci_low", "ci_high", "elo_difference", "p_value", "questions", "better", "same",
            "worse", "p_sign"} <= set(row)
    assert (row["a"], row["b"]) == ("top", "poor") and "p_holm" not in row
    # The point difference is the leaderboard's; the run's 200 rounds are the ones compared.
    assert row["difference"] == pytest.approx(board["top"]["score"] - board["poor"]["score"])
    assert row["elo_difference"] == pytest.approx(board["top"]["elo"] - board["poor"]["elo"])
    assert row["rounds"] == 200 and row["ci_low"] <= row["difference"] <= row["ci_high"]
    assert row["questions"] == 40 and row["better"] + row["same"] + row["worse"] == 40
    assert row["better"] > row["worse"] and row["p_value"] < 0.05 and row["significant"] is True
    table = cli("compare", "-c", path, "top", "poor", "--judge", "first")
    assert table.returncode == 0, table.stderr
    assert "paired bootstrap" in table.stdout and "sign test" in table.stdout
    csv = cli("compare", "-c", path, "poor", "top", "--format", "csv")
    flipped = pd.read_csv(pd.io.common.StringIO(csv.stdout)).iloc[0]
    assert flipped.difference == pytest.approx(-row["difference"]) and flipped.better == row["worse"]


@pytest.mark.slow
def test_compare_all_is_holm_corrected_and_the_leaderboard_has_ranks(scored_run):
    path, board, folder = scored_run
    out = cli("compare", "-c", path, "--all", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 6 and all(r["p_holm"] >= r["p_value"] for r in rows)
    assert rows[0]["a"] == "top"  # best first
    assert {r["rank"] for r in board.values()} == {1, 2, 3, 4}
    for r in board.values():
        assert r["rank_low"] <= r["rank"] <= r["rank_high"] and isinstance(r["tied_with_best"], bool)
    assert board["top"]["tied_with_best"] and not board["poor"]["tied_with_best"]
    files = json.loads((folder / "out" / "t" / "leaderboard.json").read_text())
    assert {"rank", "rank_low", "rank_high", "tied_with_best"} <= set(files[0])
    parquet = pd.read_parquet(folder / "out" / "t" / "leaderboard.parquet")
    assert parquet["rank"].tolist() == [r["rank"] for r in files]
    score = cli("score", "-c", path)
    assert score.returncode == 0 and "rank (95%)" in score.stdout and "1 (1–" in score.stdout
    history = cli("history", "-c", path, "--format", "json")
    assert history.returncode == 0 and len(json.loads(history.stdout)) >= 8


@pytest.mark.slow
def test_report_has_the_pairwise_matrix_escaped_and_rows_in_rank_order(scored_run):
    _, board, folder = scored_run
    html = (folder / "out" / "t" / "report.html").read_text()
    assert 'id="pairwise"' in html and "Pairwise differences" in html and "Holm-corrected" in html
    assert "near &lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert html.count("<script>") == 1
    order = sorted(board, key=lambda m: board[m]["rank"])
    section = html[html.index('id="leaderboard"'):html.index('id="pairwise"')]
    positions = [section.index(f'<td class="name">{m.replace("<", "&lt;").replace(">", "&gt;")}') for m in order]
    assert positions == sorted(positions)
    assert "tied with best" in section


def test_report_leaves_the_matrix_out_beyond_the_limit_and_marks_tied_groups():
    models = [f"m{i:02d}" for i in range(MATRIX_LIMIT + 1)]
    rows = [{"model": m, "score": 90.0 - i} for i, m in enumerate(models)]
    pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1:]]
    # m00 and m01 cannot be told apart, m01 and m02 can: a line after m01, none after m00.
    table = pd.DataFrame({"a": [a for a, _ in pairs], "b": [b for _, b in pairs],
                          "difference": 1.0, "ci_low": 0.5, "ci_high": 1.5,
                          "p_holm": [0.5 if (a, b) == ("m00", "m01") else 0.01 for a, b in pairs]})
    shown = _pairwise(rows, table, None)
    assert shown == {"omitted": MATRIX_LIMIT + 1, "limit": MATRIX_LIMIT}
    assert [r["group_ends"] for r in rows[:3]] == [False, True, True]
    small = _pairwise(rows[:3], table, None)
    assert small["models"] == models[:3] and small["cells"][0][0] is None
    assert small["cells"][1][0]["diff"] == -1.0 and small["cells"][1][0]["low"] == -1.5


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["top", "nobody"], "unknown contestant 'nobody'; contestants: top, near <b>x</b>, base, poor"),
    (["top", "top"], "'top' compared with itself"),
    (["top"], "compare takes two contestants"),
    (["top", "poor", "--alpha", "1.5"], "--alpha 1.5 is outside (0, 1)"),
    (["top", "poor", "--alpha", "0"], "--alpha 0.0 is outside (0, 1)"),
    (["--all", "top"], "--all compares every pair"),
    (["top", "poor", "--judge", "nobody"], "--judge 'nobody' names no judge of t; judges: first"),
])
def test_compare_bad_input_is_a_clear_error(scored_run, args, message):
    path, _, _ = scored_run
    out = cli("compare", "-c", path, *args)
    assert out.returncode == 1 and message in " ".join(out.stderr.split()), out.stderr


@pytest.mark.slow
def test_compare_battles_file_and_its_bad_input(tmp_path):
    path = tmp_path / "battles.jsonl"
    lines = [{"question_id": f"q{q}", "model_a": "base", "model_b": m, "winner": w}
             for q in range(30) for m, w in (("a", "model_b" if q % 3 else "model_a"), ("b", "model_a"))]
    lines += [{"question_id": "q99", "model_a": "base", "model_b": "lonely", "winner": "model_b"}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = cli("compare", "--battles", path, "--baseline", "base", "a", "b", "--rounds", "100", "--format", "json")
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    # a wins two questions in three and loses the third, b loses them all: better on 20, the same on 10.
    assert (row["questions"], row["better"], row["same"], row["worse"]) == (30, 20, 10, 0)
    assert row["p_value"] == pytest.approx(2 / 101) and row["p_sign"] == pytest.approx(2 / 2 ** 20)
    few = cli("compare", "--battles", path, "--baseline", "base", "a", "lonely", "--rounds", "100")
    assert few.returncode == 1 and "fewer than 2 questions in common" in few.stderr and "a and lonely: 0" in few.stderr
    every = cli("compare", "--battles", path, "--baseline", "base", "--all", "--rounds", "100")
    assert every.returncode == 1 and "fewer than 2 questions in common" in every.stderr
    missing = cli("compare", "--battles", path, "a", "b")
    assert missing.returncode == 1 and "--baseline" in missing.stderr
    zero = cli("compare", "--battles", path, "--baseline", "base", "a", "b", "--rounds", "0")
    assert zero.returncode == 1 and "needs bootstrap rounds" in zero.stderr


def test_compare_with_a_baseline_per_category_uses_the_combined_rounds(tmp_path, fake_server):
    from test_categories import category_run

    from arena_eval import Arena, load_config

    arena = Arena(load_config(category_run(tmp_path, fake_server(judge_verdict="hash"))))
    result = arena.run_sync()
    board = result.leaderboard.set_index("model")
    table = arena.compare()
    assert len(table) == 3 and (table.p_holm >= table.p_value).all()
    for row in table.itertuples():
        assert row.difference == pytest.approx(board.at[row.a, "score"] - board.at[row.b, "score"])
        assert row.ci_low <= row.difference <= row.ci_high and row.questions >= 2
    # each question's own baseline: b-hard on a hard question (½ there, as its 50 in that category)
    stored = arena.stored_leaderboard()
    assert isinstance(stored.question_baselines, dict) and stored.question_baselines["h0"] == "b-hard"
    assert set(board["rank"]) <= {1, 2, 3} and board.rank_low.notna().all()
