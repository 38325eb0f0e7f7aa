"""`arena-eval quality` and `arena-eval prune` on a real run against the fake server, and on arena-hard's data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import write_config

CLI = [sys.executable, "-m", "arena_eval.cli"]
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "arena-hard-v0.1"
STRENGTHS = {"m-base": 1000.0, "m-top": 1350.0, "m-good": 1170.0, "m-fair": 1000.0, "m-poor": 780.0}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *[str(a) for a in args]], capture_output=True, text=True)


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    """Five contestants of known Elo strength, 60 questions, judged by a judge that follows the strengths."""
    from conftest import FakeServer, Faults

    server = FakeServer(Faults(judge_verdict="strength", strengths=STRENGTHS)).start()
    folder = tmp_path_factory.mktemp("quality")
    contestants = [{"name": name.removeprefix("m-"), "model": name, "concurrency": 16} for name in STRENGTHS]
    path = write_config(folder, server.base_url, n_questions=60, contestants=contestants,
                        rating={"rounds": 200, "seed": 3})
    run = cli("run", "--config", path, "--no-progress", "--format", "json")
    server.stop()
    assert run.returncode == 0, run.stderr
    return path, {r["model"]: r for r in json.loads(run.stdout)}


def reference(folder: Path, rows: dict[str, float], name: str = "reference.csv") -> Path:
    path = folder / name
    path.write_text("model,score,note\n" + "".join(f"{m},{s},x\n" for m, s in rows.items()))
    return path


@pytest.mark.slow
def test_quality_of_a_run_reports_its_own_intervals_and_agrees_with_the_true_order(scored_run, tmp_path):
    path, board = scored_run
    truth = {name.removeprefix("m-"): elo for name, elo in STRENGTHS.items() if name != "m-fair"}
    out = cli("quality", "--config", path, "--reference", reference(tmp_path, {**truth, "unknown-model": 1}),
              "--format", "json")
    assert out.returncode == 0, out.stderr
    q = json.loads(out.stdout)
    assert q["n_models"] == 5 and q["pairs"] == 10
    for row in q["intervals"]:  # the very intervals of the run's leaderboard
        assert row["ci_low"] == pytest.approx(board[row["model"]]["ci_low"], abs=1e-9)
        assert row["ci_high"] == pytest.approx(board[row["model"]]["ci_high"], abs=1e-9)
    intervals = {r["model"]: (r["ci_low"], r["ci_high"]) for r in q["intervals"]}
    separated = sum(1 for i, a in enumerate(intervals) for b in list(intervals)[i + 1:]
                    if intervals[a][0] > intervals[b][1] or intervals[b][0] > intervals[a][1])
    assert q["separated_pairs"] == separated and q["separability"] == pytest.approx(separated / 10)
    assert q["spearman"] == 1.0 and q["kendall"] == 1.0 and set(q["matched"]) == set(truth)
    assert q["unmatched"] == {"ours": ["fair"], "reference": ["unknown-model"]}
    assert q["agreement_with_confidence"] > 0 and q["pair_brier"] < 0.1

    reversed_ = cli("quality", "--config", path, "--reference",
                    reference(tmp_path, {m: -s for m, s in truth.items()}, "reversed.csv"), "--format", "json")
    r = json.loads(reversed_.stdout)
    assert r["spearman"] == -1.0 and r["kendall"] == -1.0 and r["agreement_with_confidence"] < 0 and r["pair_brier"] > 0.9


@pytest.mark.slow
def test_quality_tables_and_question_diagnostics(scored_run, tmp_path):
    path, _ = scored_run
    table = cli("quality", "--config", path, "--questions")
    assert table.returncode == 0, table.stderr
    assert "separability" in table.stdout and "least useful questions" in table.stdout
    data = json.loads(cli("quality", "--config", path, "--questions", "--format", "json").stdout)
    assert len(data["questions"]) == 60
    assert {"question_id", "discrimination", "spread", "tie_rate", "judge_disagreement"} <= set(data["questions"][0])
    # The strength judge draws every game afresh: one verdict pair in several disagrees once positions swap.
    assert 0 < sum(x["judge_disagreement"] for x in data["questions"]) / 60 < 1
    csv = cli("quality", "--config", path, "--questions", "--format", "csv")
    assert csv.stdout.splitlines()[0].startswith("question_id,discrimination") and len(csv.stdout.splitlines()) == 61
    metrics = cli("quality", "--config", path, "--format", "csv")
    assert metrics.stdout.splitlines()[0] == "metric,value,ci_low,ci_high,over"


@pytest.mark.slow
def test_quality_refuses_a_reference_with_fewer_than_three_matching_models(scored_run, tmp_path):
    path, _ = scored_run
    thin = reference(tmp_path, {"top": 1, "poor": 0, "somebody-else": 3})
    out = cli("quality", "--config", path, "--reference", thin)
    assert out.returncode == 1 and str(thin) in out.stderr and "3" in out.stderr, out.stderr
    broken = tmp_path / "broken.csv"
    broken.write_text("model,score\ntop,high\n")
    out = cli("quality", "--config", path, "--reference", broken)
    assert out.returncode == 1 and f"{broken}:2" in out.stderr, out.stderr


@pytest.mark.slow
def test_prune_writes_a_smaller_set_that_loads_and_says_what_it_keeps_and_saves(scored_run, tmp_path):
    path, _ = scored_run
    small = tmp_path / "small.jsonl"
    out = cli("prune", "--config", path, "--size", 15, "--out", small, "--splits", 5, "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    kept = [json.loads(line) for line in small.read_text().splitlines()]
    assert len(kept) == 15 and sorted(r["id"] for r in kept) == sorted(data["question_ids"])
    assert data["judge_calls_saved"] == 2 * 1 * 4 * 45 and data["answers_saved"] == 5 * 45
    assert data["judge_tokens_saved"] > 0 and data["answer_tokens_saved"] > 0
    assert -1 <= data["kendall_tau"] <= 1 and 0 <= data["separability"] <= 1
    # The smaller set is a question set the product loads: point a config at it.
    config = yaml.safe_load(Path(path).read_text())
    config["questions"] = str(small)
    smaller = tmp_path / "smaller.yaml"
    smaller.write_text(yaml.safe_dump(config))
    assert cli("validate", "--config", smaller).returncode == 0

    text = cli("prune", "--config", path, "--size", 15, "--out", small, "--splits", 5, "--force")
    assert text.returncode == 0 and "Kendall tau" in text.stdout and "judge calls" in text.stdout, text.stderr


@pytest.mark.slow
def test_prune_and_adaptive_settings_refuse_bad_input_with_exit_1(scored_run, tmp_path):
    path, _ = scored_run
    for size in (1, 60, 61):
        out = cli("prune", "--config", path, "--size", size, "--out", tmp_path / "x.jsonl")
        assert out.returncode == 1 and f"--size {size}" in out.stderr, out.stderr
    existing = tmp_path / "there.jsonl"
    existing.write_text("keep me\n")
    out = cli("prune", "--config", path, "--size", 10, "--out", existing)
    assert out.returncode == 1 and "--force" in out.stderr and existing.read_text() == "keep me\n"
    for bad, field in (({"ci_half_width": 0}, "ci_half_width"), ({"ci_half_width": 5, "min_questions": 0},
                                                                 "min_questions")):
        config = yaml.safe_load(Path(path).read_text())
        config["rating"]["adaptive"] = bad
        broken = tmp_path / "adaptive.yaml"
        broken.write_text(yaml.safe_dump(config))
        out = cli("validate", "--config", broken)
        assert out.returncode == 1 and f"rating.adaptive.{field}" in out.stderr, out.stderr


def test_quality_of_a_battles_file_needs_a_baseline(tmp_path):
    battles = tmp_path / "b.jsonl"
    battles.write_text(json.dumps({"question_id": "q", "model_a": "a", "model_b": "b", "winner": "model_a"}) + "\n")
    out = cli("quality", "--battles", battles)
    assert out.returncode == 1 and "--baseline" in out.stderr


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.exists(), reason="reference data ../shared/data is not present")
def test_quality_of_a_run_over_arena_hards_real_answers_against_the_published_leaderboard(tmp_path, fake_server):
    """The 12 arena-hard v0.1 models' real answers to 60 questions they all answered, imported (no model is
    asked), judged by the fake server's length judge (the longer answer wins), compared with the published
    leaderboard (judge gpt-4-1106-preview). bench/bench_quality.py arena-hard runs all 499 shared questions."""
    server = fake_server(judge_verdict="longer")
    files = sorted((SHARED / "model_answer").glob("*.jsonl"))
    answered = [{json.loads(line)["question_id"] for line in f.read_text().splitlines() if line.strip()} for f in files]
    shared = set.intersection(*answered)
    lines = sorted(line for line in (SHARED / "question.jsonl").read_text().splitlines()
                   if line.strip() and json.loads(line)["question_id"] in shared)[:60]
    contestants = [{"name": f.stem, "model": f"never-called-{f.stem}"} for f in files]
    contestants.sort(key=lambda c: c["name"] != "gpt-4-0314")  # the baseline first
    path = write_config(tmp_path, server.base_url, contestants=contestants, rating={"rounds": 300, "seed": 1})
    config = yaml.safe_load(path.read_text())
    (tmp_path / "questions.jsonl").write_text("\n".join(lines) + "\n")
    config["questions"] = str(tmp_path / "questions.jsonl")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    for f in files:
        assert cli("import", f, "--contestant", f.stem, "--config", path).returncode == 0
    assert cli("run", "--config", path, "--no-progress").returncode == 0
    assert not any(model.startswith("never-called") for model in server.requests)  # every answer was imported
    out = cli("quality", "--config", path, "--reference", SHARED / "published_leaderboard_20240731.csv", "--format",
              "json")
    assert out.returncode == 0, out.stderr
    q = json.loads(out.stdout)
    assert q["n_models"] == 12 and q["pairs"] == 66 and len(q["matched"]) == 11
    assert q["unmatched"]["ours"] == ["gemma-2-9b-it"] and len(q["unmatched"]["reference"]) == 49
    # A judge that is all length bias: sure of itself, loosely in the reference's order (over 499 questions:
    # separability 0.76, Spearman 0.37 [0.33, 0.45], pair Brier 0.33; docs/benchmarks.md).
    assert q["spearman_ci_low"] <= q["spearman"] <= q["spearman_ci_high"]
    assert 0 < q["spearman"] < 0.9 and q["pair_brier"] > 0.15


@pytest.mark.slow
def test_prune_refuses_an_out_that_would_replace_the_store_the_config_or_any_file_of_the_output_folder(
        tmp_path, fake_server):
    """`prune --out <output>/arena.db --force` replaced the results database with the pruned question list. Every
    path that is (or, through `..` or a symbolic or hard link, leads to) the store, its -wal or -shm, the config or
    a file inside the output folder is refused with exit 1, and nothing is written; a path elsewhere works."""
    import hashlib
    import os

    from typer.testing import CliRunner

    from arena_eval.cli import app

    server = fake_server()
    contestants = [{"name": "base", "model": "m-base"}, {"name": "c1", "model": "m-c1"},
                   {"name": "c2", "model": "m-c2"}]
    config = write_config(tmp_path, server.base_url, n_questions=12, contestants=contestants,
                          energy={"idle_seconds": 0})
    runner = CliRunner()
    assert runner.invoke(app, ["run", "--config", str(config), "--no-progress"]).exit_code == 0
    folder = tmp_path / "out" / "t"
    store = folder / "arena.db"
    (tmp_path / "link.jsonl").symlink_to(store)
    os.link(store, tmp_path / "hard.jsonl")

    def digests() -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in [config, *folder.iterdir()] if p.is_file()}

    before = digests()
    cases = {folder / "arena.db": "the result database", folder / "arena.db-wal": "write-ahead log",
             folder / "arena.db-shm": "shared-memory file", config: "the run config",
             folder / "leaderboard.csv": "a file inside the output folder",
             folder / "new.jsonl": "a file inside the output folder",
             folder / ".." / "t" / "arena.db": "the result database",
             tmp_path / "link.jsonl": "the result database", tmp_path / "hard.jsonl": "the result database"}
    for out, what in cases.items():
        done = runner.invoke(app, ["prune", "--config", str(config), "--size", "4", "--splits", "2", "--out", str(out),
                                   "--force"])
        assert done.exit_code == 1, (out, done.output)
        assert f"--out {out}" in done.stderr and what in done.stderr and "replace the run's results" in done.stderr
    assert digests() == before and not (folder / "new.jsonl").exists()
    elsewhere = runner.invoke(app, ["prune", "--config", str(config), "--size", "4", "--splits", "2", "--out",
                                    str(tmp_path / "small.jsonl")])
    assert elsewhere.exit_code == 0, elsewhere.output
    assert len((tmp_path / "small.jsonl").read_text().splitlines()) == 4
