"""The command line: score --battles (with the win-rate oracle), formats, export and import."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_config

CLI = [sys.executable, "-m", "arena_eval.cli"]
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "arena-hard-v0.1"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True)


def write_battles(path: Path, seed: int = 0) -> dict[str, float]:
    """Battles all against one baseline, in both columns; returns the expected (wins + ½ ties)/battles × 100."""
    rng = random.Random(seed)
    tallies = {}
    with path.open("w") as handle:
        for model, strength in (("strong", 0.8), ("even", 0.5), ("weak", 0.25)):
            wins = ties = total = 0
            for q in range(150):
                roll = rng.random()
                outcome = "win" if roll < strength * 0.9 else "tie" if roll < strength * 0.9 + 0.1 else "loss"
                for _ in range(rng.choice((1, 1, 3))):  # weighted battles arrive expanded, one row each
                    baseline_first = rng.random() < 0.5
                    a, b = ("base", model) if baseline_first else (model, "base")
                    if outcome == "tie":
                        winner = rng.choice(("tie", "tie (bothbad)"))
                    else:
                        model_won = outcome == "win"
                        winner = "model_b" if model_won == baseline_first else "model_a"
                    handle.write(json.dumps({"question_id": f"q{q}", "model_a": a, "model_b": b, "winner": winner}) + "\n")
                    total += 1
                    wins += outcome == "win"
                    ties += outcome == "tie"
            tallies[model] = 100 * (wins + 0.5 * ties) / total
    return tallies


@pytest.mark.slow
def test_score_battles_equals_the_weighted_win_rate(tmp_path):
    path = tmp_path / "battles.jsonl"
    expected = write_battles(path)
    run = cli("score", "--battles", str(path), "--baseline", "base", "--rounds", "200", "--format", "json")
    assert run.returncode == 0, run.stderr
    rows = {r["model"]: r for r in json.loads(run.stdout)}
    for model, win_rate in expected.items():
        assert round(rows[model]["score"], 2) == round(win_rate, 2)
        assert rows[model]["ci_low"] <= rows[model]["score"] <= rows[model]["ci_high"]
    assert rows["base"]["score"] == 50 and rows["base"]["elo"] == 1000


@pytest.mark.slow
def test_score_formats_and_compat(tmp_path):
    path = tmp_path / "battles.jsonl"
    write_battles(path, seed=1)
    compat = cli("score", "--battles", str(path), "--baseline", "base", "--compat", "arena-hard", "--format", "csv")
    assert compat.returncode == 0, compat.stderr
    header = compat.stdout.splitlines()[0].split(",")
    assert header[:6] == ["model", "score", "ci_low", "ci_high", "elo", "elo_ci_low"]
    table = cli("score", "--battles", str(path), "--baseline", "base", "--rounds", "20")
    assert table.returncode == 0 and "strong" in table.stdout and "ci_low" in table.stdout
    # Same seed, same intervals.
    again = cli("score", "--battles", str(path), "--baseline", "base", "--compat", "arena-hard", "--format", "csv")
    assert again.stdout == compat.stdout


@pytest.mark.slow
def test_score_battles_errors_name_the_problem(tmp_path):
    path = tmp_path / "battles.jsonl"
    path.write_text('{"model_a": "a", "model_b": "b", "winner": "model_a"}\n{"model_a": "a", "model_b": "b", "winner": "draw"}\n')
    run = cli("score", "--battles", str(path), "--baseline", "a")
    assert run.returncode == 1 and "battles.jsonl:2" in run.stderr and "'draw'" in run.stderr
    missing = cli("score", "--battles", str(path))
    assert missing.returncode == 1 and "--baseline" in missing.stderr


@pytest.mark.slow
def test_export_then_import_round_trip_reuses_answers(tmp_path, fake_server):
    server = fake_server()
    path = write_config(tmp_path, server.base_url, n_questions=6)
    assert cli("run", "--config", str(path)).returncode == 0
    export = cli("export", "--config", str(path), "--to", str(tmp_path / "ah"))
    assert export.returncode == 0, export.stderr
    answers = [json.loads(line) for line in (tmp_path / "ah" / "model_answer" / "c1.jsonl").read_text().splitlines()]
    assert len(answers) == 6 and answers[0]["choices"][0]["turns"][0]["content"].startswith("Answer from model-c1")
    assert set(answers[0]) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
    judgments = [json.loads(line) for line in (tmp_path / "ah" / "model_judgment" / "judge-model" / "c1.jsonl").read_text().splitlines()]
    assert len(judgments) == 6 and all(len(j["games"]) == 2 for j in judgments)
    assert {g["score"] for j in judgments for g in j["games"]} <= {"A>B", "B>A", "A=B", "A>>B", "B>>A"}
    battles = (tmp_path / "ah" / "battles.jsonl").read_text().splitlines()
    assert len(battles) == 12

    # The exported file imported as a new contestant's answers: the run judges it without asking the model.
    import yaml

    data = yaml.safe_load(path.read_text())
    data["contestants"].append({**data["contestants"][1], "name": "imported", "model": "never-called"})
    path.write_text(yaml.safe_dump(data))
    imported = cli("import", str(tmp_path / "ah" / "model_answer" / "c1.jsonl"), "--contestant", "imported", "--config", str(path))
    assert imported.returncode == 0 and "6 answers imported" in imported.stdout, imported.stderr
    rerun = cli("run", "--config", str(path), "--format", "json")
    assert rerun.returncode == 0, rerun.stderr
    assert server.requests["never-called"] == 0
    rows = {r["model"]: r for r in json.loads(rerun.stdout)}
    assert rows["imported"]["score"] == pytest.approx(rows["c1"]["score"])


@pytest.mark.slow
def test_contestants_whose_names_sanitise_to_the_same_file_export_to_separate_files(tmp_path, fake_server):
    """`team/a` and `team_a` would both be written as team_a.jsonl, one overwriting the other."""
    import hashlib

    server = fake_server()
    contestants = [{"name": "base", "model": "m-base"}, {"name": "team/a", "model": "m-slash"},
                   {"name": "team_a", "model": "m-underscore"}]
    path = write_config(tmp_path, server.base_url, n_questions=3, contestants=contestants)
    assert cli("run", "--config", str(path)).returncode == 0
    export = cli("export", "--config", str(path), "--to", str(tmp_path / "ah"))
    assert export.returncode == 0, export.stderr

    renamed = "team_a-" + hashlib.sha256(b"team/a").hexdigest()[:8]  # the name that is already safe keeps team_a
    assert f"note: contestant 'team/a' is written as {renamed}.jsonl (its name sanitises to the same file as " \
           f"'team_a')" in export.stdout.splitlines()
    answers = tmp_path / "ah" / "model_answer"
    judgments = tmp_path / "ah" / "model_judgment" / "judge-model"
    assert sorted(p.name for p in answers.iterdir()) == sorted(["base.jsonl", "team_a.jsonl", f"{renamed}.jsonl"])
    assert sorted(p.name for p in judgments.iterdir()) == sorted(["team_a.jsonl", f"{renamed}.jsonl"])
    for stem, name, model in ((renamed, "team/a", "m-slash"), ("team_a", "team_a", "m-underscore")):
        answer_records = [json.loads(line) for line in (answers / f"{stem}.jsonl").read_text().splitlines()]
        assert len(answer_records) == 3 and {r["model_id"] for r in answer_records} == {name}
        assert all(r["choices"][0]["turns"][0]["content"].startswith(f"Answer from {model}") for r in answer_records)
        judgment_records = [json.loads(line) for line in (judgments / f"{stem}.jsonl").read_text().splitlines()]
        assert len(judgment_records) == 3 and {r["model"] for r in judgment_records} == {name}


def test_export_file_stems_are_unique_ignoring_case_and_do_not_depend_on_the_order():
    from arena_eval.interop import export_stems

    names = ["team/a", "team_a", "Team_A", "x y", "x:y", "solo/one", "plain"]
    stems, notes = export_stems(names)
    assert export_stems(list(reversed(names))) == (stems, notes)
    assert stems["Team_A"] == "Team_A" and stems["team_a"].startswith("team_a-")  # both safe: sorted first keeps it
    assert stems["solo/one"] == "solo_one" and stems["plain"] == "plain"  # no clash: plain stems, no note
    assert stems["x y"].startswith("x_y-") and stems["x:y"].startswith("x_y-")  # neither is safe: both hashed
    assert len({s.casefold() for s in stems.values()}) == len(names)
    assert sorted(notes) == ["team/a", "team_a", "x y", "x:y"]


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.exists(), reason="reference data ../shared/data is not present")
def test_real_arena_hard_answers_import(tmp_path, fake_server):
    server = fake_server()
    path = write_config(tmp_path, server.base_url, n_questions=1)
    import yaml

    data = yaml.safe_load(path.read_text())
    data["questions"] = str(SHARED / "question.jsonl")
    path.write_text(yaml.safe_dump(data))
    run = cli("import", str(SHARED / "model_answer" / "gpt-4-0314.jsonl"), "--contestant", "base", "--config", str(path))
    assert run.returncode == 0, run.stderr
    assert "500 answers imported for base" in run.stdout


def _interrupted(args: list[str], started, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the `arena-eval` command (`python -m arena_eval`), wait for `started()`, then press Ctrl-C (SIGINT)."""
    import signal
    import time

    process = subprocess.Popen([sys.executable, "-m", "arena_eval", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    handle = started()
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    if handle is not None:
        handle.close()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.slow
def test_ctrl_c_while_the_command_starts_up_is_one_line_and_exit_130(tmp_path):
    """Ctrl-C while the command line loads (its imports take seconds on a busy machine) printed a KeyboardInterrupt
    traceback; Ctrl-C in a command without a handler of its own (here: blocked opening the question file) was
    silent. Both now say so in one line and exit 130."""
    import os
    import time

    config = write_config(tmp_path, "http://127.0.0.1:9/v1", n_questions=3)
    # sitecustomize runs when the interpreter starts, before the command line is imported: it says when.
    hooks, marker = tmp_path / "hooks", tmp_path / "started"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hooks), root])}

    def interpreter_started():
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.005)

    loading = _interrupted(["plan", "--config", str(config)], interpreter_started, env)
    assert "Traceback" not in loading.stderr and loading.returncode == 130, loading.stderr
    assert "interrupted while starting up; nothing was changed" in loading.stderr

    # A command blocked reading its question file (input files are opened through lines.open_regular, which refuses
    # a FIFO, so the block is made by wrapping it): the hook says when the command got there.
    blocking = tmp_path / "blocking"
    blocking.mkdir()
    (blocking / "sitecustomize.py").write_text(
        "import time\nimport arena_eval.lines as lines\n\n\ndef _blocked(*args, **kwargs):\n"
        f"    open({str(marker)!r}, 'w').close()\n    time.sleep(60)\n\n\nlines.open_regular = _blocked\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocking), root])}
    for command in ("plan", "score", "report"):
        marker.unlink(missing_ok=True)
        waiting = _interrupted([command, "--config", str(config)], interpreter_started, env)
        assert "Traceback" not in waiting.stderr and waiting.returncode == 130, (command, waiting.stderr)
        assert "interrupted (SIGINT) before the command finished" in waiting.stderr, (command, waiting.stderr)


def test_export_with_names_too_long_for_a_file_writes_every_file_under_a_shortened_name(tmp_path, fake_server):
    """A 300-character contestant or judge name made `export` fail with "File name too long" after it had written
    part of the export. Every file name is now settled first: a name too long is cut and given a hash suffix (with
    a note), the files keep the real names inside, and the export is written whole."""
    from typer.testing import CliRunner

    from arena_eval.cli import app

    server = fake_server()
    long_contestant, long_judge = "c" * 300, "J/" * 150
    contestants = [{"name": "base", "model": "m-base"}, {"name": long_contestant, "model": "m-long"},
                   {"name": "é" * 200, "model": "m-wide"}]  # 400 bytes in UTF-8
    path = write_config(tmp_path, server.base_url, n_questions=3, contestants=contestants,
                        judge={"name": long_judge}, energy={"idle_seconds": 0})
    runner = CliRunner()
    assert runner.invoke(app, ["run", "--config", str(path), "--no-progress"]).exit_code == 0
    export = runner.invoke(app, ["export", "--config", str(path), "--to", str(tmp_path / "ah")])
    assert export.exit_code == 0, export.output
    assert "(its name is too long for a file name)" in export.stdout
    files = sorted(p for p in (tmp_path / "ah").rglob("*") if p.is_file())
    assert all(len(p.name.encode()) <= 255 for p in files)
    answers = sorted((tmp_path / "ah" / "model_answer").iterdir())
    judge_dirs = list((tmp_path / "ah" / "model_judgment").iterdir())
    assert len(answers) == 3 and len(judge_dirs) == 1 and len(list(judge_dirs[0].iterdir())) == 2
    models = {json.loads(p.read_text().splitlines()[0])["model_id"] for p in answers}
    assert models == {"base", long_contestant, "é" * 200}  # the real names inside the files
    assert (tmp_path / "ah" / "battles.jsonl").read_text().count(long_contestant) == 6  # 3 questions, 2 games
