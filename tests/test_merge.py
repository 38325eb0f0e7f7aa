"""`arena-eval merge SRC… --into DIR`: two folders that each hold half a run merge into the whole run's leaderboard;
the same work is a duplicate, different work under one key a conflict; bad input is a clear error."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import write_config
from fake_server import FakeServer, Faults

from arena_eval import Arena, load_config
from arena_eval.energy.meters import EnergyReading
from arena_eval.errors import ArenaError, StoreError
from arena_eval.merge import RULES, merge_stores
from arena_eval.questions import Question
from arena_eval.records import Answer, AnswerError, GameError, Judgment
from arena_eval.store import RunLock, Store
from arena_eval.store.energy import save_imports, save_window

CLI = [sys.executable, "-m", "arena_eval.cli"]
CONTESTANTS = [{"name": "base", "model": "model-base"}, {"name": "c1", "model": "model-c1"},
               {"name": "c2", "model": "model-c2"}]
N_QUESTIONS = 24
# What the leaderboard says about each contestant that must not depend on how the work was split.
COMPARED = ["model", "score", "ci_low", "ci_high", "elo", "elo_ci_low", "elo_ci_high", "battles", "questions", "games"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True)


def counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as con:
        return {rule.table: con.execute(f"SELECT COUNT(*) FROM {rule.table}").fetchone()[0] for rule in RULES}


@dataclass
class Runs:
    """One whole run (W) and the same run split in two halves of the questions (A, B): output folders, and the
    config data every variant is written from."""

    root: Path
    data: dict
    whole: Path
    a: Path
    b: Path

    def config(self, folder: Path) -> Path:
        """A config of the whole question set whose results go to `folder`/t."""
        path = folder / "whole.yaml"
        path.write_text(yaml.safe_dump({**self.data, "output": str(folder)}, sort_keys=False))
        return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    root = tmp_path_factory.mktemp("runs")
    # Verdicts drawn from the contestants' strengths by a hash of the prompt: varied, and the same on every run.
    server = FakeServer(Faults(judge_verdict="strength",
                               strengths={"model-base": 1000, "model-c1": 1080, "model-c2": 930})).start()
    try:
        whole = write_config(root, server.base_url, n_questions=N_QUESTIONS, contestants=CONTESTANTS)
        data = yaml.safe_load(whole.read_text())
        lines = Path(data["questions"]).read_text().splitlines(keepends=True)
        folders = {}
        for name, part in (("a", lines[: N_QUESTIONS // 2]), ("b", lines[N_QUESTIONS // 2 :])):
            questions = root / f"questions-{name}.jsonl"
            questions.write_text("".join(part))
            path = root / f"{name}.yaml"
            path.write_text(yaml.safe_dump({**data, "questions": str(questions), "output": str(root / name)}))
            folders[name] = path
        for path in (whole, folders["a"], folders["b"]):
            assert Arena(load_config(path)).run_sync().exit_code == 0
    finally:
        server.stop()
    return Runs(root, data, root / "out" / "t", root / "a" / "t", root / "b" / "t")


@pytest.mark.slow
def test_two_half_runs_merged_score_exactly_as_the_whole_run(runs, tmp_path):
    merged = tmp_path / "m" / "t"
    done = cli("merge", str(runs.a), str(runs.b), "--into", str(merged))
    assert done.returncode == 0, done.stderr
    assert "answers" in done.stdout and "judgments" in done.stdout and "0 conflicts" in done.stderr

    scored = cli("score", "--config", str(runs.config(tmp_path / "m")), "--format", "json")
    assert scored.returncode == 0, scored.stderr
    got = pd.DataFrame(json.loads(scored.stdout))[COMPARED].sort_values("model").reset_index(drop=True)
    want = pd.DataFrame(json.loads((runs.whole / "leaderboard.json").read_text()))[COMPARED]
    want = want.sort_values("model").reset_index(drop=True)
    assert (want.games > 0).sum() == 2 and want.score.nunique() == 3  # a real comparison, not three ties
    pd.testing.assert_frame_equal(got, want)  # same scores, intervals (same seed), battles, questions, games
    for table in ("answers", "judgments", "questions"):
        assert counts(merged / "arena.db")[table] == counts(runs.whole / "arena.db")[table]
    with sqlite3.connect(merged / "arena.db") as m, sqlite3.connect(runs.whole / "arena.db") as w:
        per = "SELECT contestant, COUNT(*) FROM answers GROUP BY contestant ORDER BY contestant"
        assert m.execute(per).fetchall() == w.execute(per).fetchall() == [("base", 24), ("c1", 24), ("c2", 24)]


@pytest.mark.slow
def test_merging_a_source_again_or_the_whole_run_adds_only_duplicates(runs, tmp_path):
    merged = tmp_path / "m"
    assert cli("merge", str(runs.a), "--into", str(merged)).returncode == 0
    before = counts(merged / "arena.db")
    again = cli("merge", str(runs.a), "--into", str(merged), "--format", "json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert counts(merged / "arena.db") == before
    assert sum(row["added"] for row in report["tables"]) == 0 and report["conflicts"] == []
    assert {row["table"]: row["duplicates"] for row in report["tables"]}["answers"] == before["answers"] == 36

    # The whole run holds A's work done again, in another run: its answers and verdicts are duplicates, its run
    # and leaderboard are new.
    whole = cli("merge", str(runs.whole), "--into", str(merged), "--format", "json")
    assert whole.returncode == 0, whole.stderr
    rows = {row["table"]: row for row in json.loads(whole.stdout)["tables"]}
    assert rows["answers"]["duplicates"] == 36 and rows["answers"]["added"] == 36
    assert rows["judgments"]["duplicates"] == 48 and rows["judgments"]["added"] == 48
    assert rows["runs"]["added"] == 1 and rows["leaderboards"]["added"] == 3
    assert sum(row["conflicts"] for row in rows.values()) == 0


@pytest.mark.slow
def test_an_answer_with_another_text_is_a_conflict_and_the_row_already_there_is_kept(runs, tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(runs.a, tampered)
    with sqlite3.connect(tampered / "arena.db") as con:
        answer_id, text = con.execute("SELECT answer_id, text FROM answers WHERE contestant='c1' "
                                      "ORDER BY answer_id LIMIT 1").fetchone()
        con.execute("UPDATE answers SET text='a different answer' WHERE answer_id=?", (answer_id,))
    merged = tmp_path / "m"
    done = cli("merge", str(runs.a), str(tampered), "--into", str(merged))
    assert done.returncode == 2, done.stderr
    assert f"answers [answer_id={answer_id}]: {tampered} differs in text from the row kept (from {runs.a})" \
        in done.stderr, done.stderr
    assert "1 conflicts (the rows already there were kept)" in done.stderr
    with sqlite3.connect(merged / "arena.db") as con:
        assert con.execute("SELECT text FROM answers WHERE answer_id=?", (answer_id,)).fetchone()[0] == text

    # Into a folder that already held the row, the kept row is named as DIR's own.
    again = cli("merge", str(tampered), "--into", str(merged), "--format", "json")
    assert again.returncode == 2
    (conflict,) = json.loads(again.stdout)["conflicts"]
    assert conflict == {"table": "answers", "key": {"answer_id": answer_id}, "source": str(tampered),
                        "kept_from": str(merged), "columns": ["text"]}


@pytest.mark.slow
def test_bad_input_exits_1_with_a_message_and_changes_nothing(runs, tmp_path):
    merged = tmp_path / "m"
    assert cli("merge", str(runs.a), "--into", str(merged)).returncode == 0
    before = counts(merged / "arena.db")
    for args, message in (
        ((str(tmp_path / "nowhere"), "--into", str(merged)), "no such file or folder"),
        ((str(runs.a), "--into", str(merged / "arena.db")), "not a folder"),
        ((str(merged / "arena.db"), "--into", str(merged)), "is the store merged into"),
        ((str(runs.a),), "--into DIR or --config F"),
    ):
        done = cli("merge", *args)
        assert done.returncode == 1 and message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    with RunLock(merged):
        held = cli("merge", str(runs.b), "--into", str(merged))
    assert held.returncode == 1 and "another arena-eval run" in held.stderr
    assert counts(merged / "arena.db") == before

    # --config names the folder as a run would: its output folder.
    via_config = cli("merge", str(runs.b), "--config", str(runs.config(tmp_path)))
    assert via_config.returncode == 0, via_config.stderr
    assert counts(tmp_path / "t" / "arena.db")["answers"] == 36


# --- the rules, on stores written through the Store API --------------------------------------------------------


def fill(folder: Path, run_id: str = "r1", text: str = "an answer") -> Path:
    """A store with a row in every table, as a run (or an import) writes them."""
    with Store(folder / "arena.db") as store:
        store.start_run(run_id, "t", "run", {"name": "t"})
        store.save_questions([Question("q1", "What?"), Question("q2", "Why?")])
        store.save_contestant("base", "cfg", "openai", "m", {"name": "base"})
        store.save_answer(Answer("ans1", "base", "cfg", "q1", "p1", text, 10, 20, created_at=1.0, run_id=run_id))
        store.save_answer_turn("cfg", "q2", "p2", 0, {"text": "first turn"}, run_id)
        store.set_current("cfg", "q1", "ans1")
        store.save_guidance("q1", "guide", "reference", "hints", 5, 6, 1.0, run_id)
        store.open_epoch("cfg", run_id, "base", run_id)  # an epoch is named after the run that opened it
        store.start_adaptive_plan("plan", None, run_id)
        store.save_judgment(Judgment("game1", "judge", "q1", "c1", "base", 1, "ans1", "ans2", "A>B", "[[A>B]]", 1))
        store.save_answer_error(AnswerError("c1", "cfg1", "q2", "HTTP 500", 6), run_id)
        store.save_game_error(GameError("game2", "q1", "c1", 2, "timeout", 2), run_id)
        store.save_resources(run_id, "base", "cfg", 1.5, "nvml")
        save_window(store.db, EnergyReading("nvml", False, devices=["gpu0"], started_at=1.0, ended_at=2.0,
                                             duration_s=1.0, energy_j=5.0), role="contestant",
                    run_id=run_id, contestant="base", config_id="cfg")
        save_imports(store.db, pd.DataFrame([{"contestant": "base", "line": 2, "energy_wh": 1.0, "tags": {}}]),
                     folder / "emissions.csv", imported_at=1.0)
        store.save_leaderboard(run_id, [{"model": "base", "score": 50.0}], question_points=[("c1", "q1", 1.5, 2.0)])
        store.save_regression_checks(run_id, [{"model": "c1", "previous_run_id": "r0", "test": "paired",
                                               "difference": -1.0, "regressed": False, "reason": ""}])
        # A batch at a provider (batch mode) and one item of it, as batch.py records them.
        store.db.execute("INSERT INTO batch_jobs VALUES ('batch_1', 'answers', 'openai', 'http://x/v1', 'base', 'cfg', "
                         "'pending', 'in_progress', 0, 1, 1.0, 1.0, ?, NULL)", (run_id,))
        store.db.execute("INSERT INTO batch_items VALUES ('batch_1', 'ans1', 'q1', '{}')")
        store.finish_run(run_id, "complete", {})
    return folder / "arena.db"


def test_every_table_of_the_store_has_a_merge_rule():
    with Store(":memory:") as store:
        tables = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables - {"meta", "sqlite_sequence"} == {rule.table for rule in RULES}


def test_merging_a_source_twice_adds_nothing_the_second_time_not_even_rows_without_a_key(tmp_path):
    source = fill(tmp_path / "a")
    first = merge_stores([source], tmp_path / "m")
    added = {c.table: c.added for c in first.counts}
    # The partial conversation is kept: DIR holds no whole answer for it.
    assert all(added[rule.table] >= 1 for rule in RULES), added
    assert added["errors"] == 2 and first.exit_code == 0
    before = counts(tmp_path / "m" / "arena.db")
    second = merge_stores([source, tmp_path / "a"], tmp_path / "m")
    assert counts(tmp_path / "m" / "arena.db") == before
    assert sum(c.added for c in second.counts) == 0 and second.conflicts == []
    assert {c.table: c.duplicates for c in second.counts if c.source == str(source)} == before


def test_rows_without_a_key_from_two_folders_are_both_kept(tmp_path):
    """Two runs' errors and energy windows are different rows, even for the same item."""
    merged = merge_stores([fill(tmp_path / "a", "r1"), fill(tmp_path / "b", "r2")], tmp_path / "m")
    assert merged.exit_code == 0
    # Each run refreshed base's answers: only the newer set is used, which is worth saying.
    (note,) = merged.notes
    assert "another refreshed answer set (epoch r2) of base's configuration" in note
    got = counts(tmp_path / "m" / "arena.db")
    assert got["errors"] == 4 and got["energy_windows"] == 2 and got["resources"] == 2 and got["runs"] == 2
    assert got["answers"] == 1 and got["judgments"] == 1  # the same work: duplicates


def test_a_reimported_energy_file_is_not_counted_twice(tmp_path):
    source = fill(tmp_path / "a")
    merge_stores([source], tmp_path / "m")
    with Store(source) as store:  # re-importing the file replaces its rows in the source, with a new time
        save_imports(store.db, pd.DataFrame([{"contestant": "base", "line": 2, "energy_wh": 1.0, "tags": {}}]),
                     tmp_path / "a" / "emissions.csv", imported_at=9.0)
    again = merge_stores([source], tmp_path / "m")
    assert {c.table: c.duplicates for c in again.counts}["energy_imports"] == 1
    assert counts(tmp_path / "m" / "arena.db")["energy_imports"] == 1


def test_a_conflict_names_the_table_key_sources_and_columns(tmp_path):
    fill(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    with sqlite3.connect(tmp_path / "b" / "arena.db") as con:
        con.execute("UPDATE answers SET text='another answer', output_tokens=21")
    merged = merge_stores([tmp_path / "a" / "arena.db", tmp_path / "b" / "arena.db"], tmp_path / "m")
    assert merged.exit_code == 2
    (conflict,) = merged.conflicts
    assert (conflict.table, conflict.key) == ("answers", (("answer_id", "ans1"),))
    assert conflict.columns == ("text", "output_tokens")
    assert (conflict.source, conflict.kept_from) == (str(tmp_path / "b" / "arena.db"), str(tmp_path / "a" / "arena.db"))
    assert {(c.table, c.conflicts) for c in merged.counts if c.conflicts} == {("answers", 1)}


def test_a_partial_conversation_whose_whole_answer_is_there_is_left_out(tmp_path):
    source = fill(tmp_path / "a")
    with Store(tmp_path / "m" / "arena.db") as store:
        store.save_answer(Answer("ans2", "base", "cfg", "q2", "p2", "whole conversation", created_at=2.0))
    merged = merge_stores([source], tmp_path / "m")
    assert {c.table: (c.added, c.duplicates) for c in merged.counts}["answer_turns"] == (0, 1)


def test_a_run_killed_in_its_source_arrives_interrupted(tmp_path):
    with Store(tmp_path / "a" / "arena.db") as store:
        store.start_run("killed", "t", "run", {})
    merge_stores([tmp_path / "a"], tmp_path / "m")
    again = merge_stores([tmp_path / "a"], tmp_path / "m")  # and stays a duplicate
    with Store(tmp_path / "m" / "arena.db") as store:
        assert [r["status"] for r in store.runs()] == ["interrupted"]
    assert {c.table: c.duplicates for c in again.counts}["runs"] == 1


def test_a_store_of_an_older_schema_merges_with_its_missing_columns_empty(tmp_path):
    source = fill(tmp_path / "a")
    with sqlite3.connect(source) as con:
        con.execute("ALTER TABLE answers DROP COLUMN reasoning")
        con.execute("DROP TABLE resources")
    merged = merge_stores([source], tmp_path / "m")
    assert merged.exit_code == 0 and "resources" not in {c.table for c in merged.counts}
    with Store(tmp_path / "m" / "arena.db") as store:
        assert store.get_answer("ans1").text == "an answer" and store.get_answer("ans1").reasoning is None


@pytest.mark.parametrize("failure, expected", [
    (StoreError("reading or writing arena.db failed (SQLite: disk I/O error)"), "nothing of it was merged"),
    (KeyboardInterrupt(), None),  # Ctrl-C
])
def test_a_failure_half_way_leaves_dir_as_it_was(tmp_path, monkeypatch, failure, expected):
    import arena_eval.merge as merge

    merge_stores([fill(tmp_path / "a")], tmp_path / "m")
    before = counts(tmp_path / "m" / "arena.db")
    real = merge._merge_table

    def fail_at_judgments(con, rule, *args):
        if rule.table == "judgments":  # after the answers of this source went in
            raise failure
        return real(con, rule, *args)

    monkeypatch.setattr(merge, "_merge_table", fail_at_judgments)
    with pytest.raises(type(failure), match=expected):
        merge_stores([fill(tmp_path / "b", "r2", text="b's answer")], tmp_path / "m")
    assert counts(tmp_path / "m" / "arena.db") == before
    monkeypatch.undo()
    assert merge_stores([tmp_path / "b"], tmp_path / "m").counts  # and the folder is usable: nothing left attached


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "holds no arena.db"),
    (lambda p: (p.mkdir(), (p / "arena.db").write_bytes(b"not a database" * 100)), "is not an arena-eval store"),
    (lambda p: (p.mkdir(), sqlite3.connect(p / "arena.db").execute("CREATE TABLE notes (x)")),
     "is not an arena-eval store (no schema version"),
    (lambda p: (fill(p), sqlite3.connect(p / "arena.db", isolation_level=None).execute(
        "UPDATE meta SET value='2' WHERE key='schema_version'")), "newer arena-eval (schema 2"),
    (lambda p: (fill(p), sqlite3.connect(p / "arena.db", isolation_level=None).execute(
        "CREATE TABLE batches (batch_id TEXT)")), "newer arena-eval (batches unknown here"),
    (lambda p: (fill(p), sqlite3.connect(p / "arena.db", isolation_level=None).execute(
        "ALTER TABLE answers ADD COLUMN batch_id TEXT")), "answers.batch_id unknown here"),
])
def test_a_source_that_is_not_a_store_we_can_read_is_refused_before_dir_is_touched(tmp_path, make, message):
    make(tmp_path / "src")
    with pytest.raises(ArenaError, match=re.escape(message)):
        merge_stores([tmp_path / "src"], tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_a_source_in_use_by_a_run_is_refused(tmp_path):
    fill(tmp_path / "a")
    with RunLock(tmp_path / "a"), pytest.raises(ArenaError, match="a run .* is using it"):
        merge_stores([tmp_path / "a"], tmp_path / "m")
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_the_merge_commands_in_docs_scale_md_use_options_the_cli_has():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "scale.md").read_text()
    options = cli("merge", "--help").stdout
    used = re.findall(r"arena-eval merge [^\n#]*", doc)
    assert len(used) >= 2
    for line in used:
        for option in re.findall(r"\s(--?[a-z][a-z-]*)", line):
            assert option in options, f"{line!r}: merge has no {option}"


@pytest.mark.slow
def test_a_merge_killed_mid_transaction_leaves_dir_unchanged_and_a_rerun_finishes(tmp_path):
    import os
    import signal
    import time

    with Store(tmp_path / "big" / "arena.db") as store:  # large enough that its merge spills into DIR's WAL
        store.db.execute("BEGIN")
        store.db.executemany(
            "INSERT INTO answers (answer_id, contestant, config_id, question_id, prompt_hash, text, created_at) "
            "VALUES (?,?,?,?,?,?,?)", ((f"a{i:07d}", "c", "cfg", f"q{i}", "p", "x" * 2000, 1.0) for i in range(60000)))
        store.db.execute("COMMIT")
    merged = tmp_path / "m"
    fill(merged)  # DIR holds something already
    before = counts(merged / "arena.db")
    child = subprocess.Popen([*CLI, "merge", str(tmp_path / "big"), "--into", str(merged)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wal = merged / "arena.db-wal"
    deadline = time.monotonic() + 60
    while child.poll() is None and time.monotonic() < deadline:
        if wal.exists() and wal.stat().st_size > 20 * 2**20:  # well into the source's transaction
            break
        time.sleep(0.01)
    assert child.poll() is None, "the merge ended before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert counts(merged / "arena.db") == before
    with sqlite3.connect(merged / "arena.db") as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    again = cli("merge", str(tmp_path / "big"), "--into", str(merged))  # the lock died with the process
    assert again.returncode == 0, again.stderr
    assert counts(merged / "arena.db")["answers"] == before["answers"] + 60000


def test_a_reply_over_the_cap_in_a_source_is_refused_with_what_names_it_and_the_rest_is_merged(tmp_path):
    """Old code: a crafted store's answer of any size (and a verdict, a conversation's turn, guidance) was merged,
    and then judged or reported. Now each is refused and named; a current answer pointing at a refused answer is
    refused with it, so DIR never points at an answer it does not hold."""
    source = fill(tmp_path / "a")
    with Store(source) as store:
        store.save_answer(Answer("big", "base", "cfg", "q2", "p9", "x" * 5_000, created_at=1.0))
        store.save_answer(Answer("talk", "base", "cfg", "q2", "p8", "short", created_at=1.0,
                                 turns=[{"text": "y" * 5_000}, {"text": "short"}]))
        store.set_current("cfg", "q2", "big")
        store.save_answer_turn("cfg", "q9", "p9", 0, {"text": "z" * 5_000}, "r1")
        store.save_judgment(Judgment("game9", "judge", "q1", "c1", "base", 2, "ans1", "ans2", None, "v" * 5_000, 1))
        store.save_guidance("q2", "guide", "w" * 5_000, "hints", 5, 6, 1.0, "r1")
    merged = merge_stores([source], tmp_path / "m", max_response_bytes=1_000)

    assert merged.exit_code == 2
    refused = {(r.table, r.key, r.size) for r in merged.refused}
    assert refused == {("answers", (("answer_id", "big"),), 5_000), ("answers", (("answer_id", "talk"),), 5_000),
                       ("current_answers", (("config_id", "cfg"), ("question_id", "q2")), None),
                       ("answer_turns", (("config_id", "cfg"), ("question_id", "q9"), ("prompt_hash", "p9"),
                                         ("turn", 0)), 5_000),
                       ("judgments", (("game_id", "game9"),), 5_000),
                       ("guidance", (("question_id", "q2"), ("guide_config_id", "guide")), 5_000)}
    assert "answers [answer_id=big] from" in merged.refused[0].describe(1_000)
    assert "a reply of 5,000 bytes, over the cap of 1,000 (max_response_bytes); not merged" in \
        merged.refused[0].describe(1_000)
    with sqlite3.connect(tmp_path / "m" / "arena.db") as con:
        assert con.execute("SELECT answer_id FROM answers").fetchall() == [("ans1",)]
        assert con.execute("SELECT MAX(LENGTH(judge_text)) FROM judgments").fetchone() == (len("[[A>B]]"),)
        assert con.execute("SELECT question_id, answer_id FROM current_answers").fetchall() == [("q1", "ans1")]
    # Within the default cap (33 MiB) everything small is merged.
    assert merge_stores([source], tmp_path / "m2").refused == []


def test_merge_cli_refuses_a_50_mb_answer_and_says_how_to_take_it(tmp_path):
    source = fill(tmp_path / "a")
    with Store(source) as store:
        store.save_answer(Answer("huge", "base", "cfg", "q2", "p9", "x" * 50_000_000, created_at=1.0))
    merged = cli("merge", str(tmp_path / "a"), "--into", str(tmp_path / "m"))
    assert merged.returncode == 2, merged.stderr
    assert "refused: answers [answer_id=huge] from" in merged.stderr
    assert "a reply of 50,000,000 bytes, over the cap of 34,603,008" in merged.stderr
    assert "1 rows refused (a reply over 34,603,008 bytes; pass --max-response-bytes to take larger ones)" in \
        merged.stderr
    with sqlite3.connect(tmp_path / "m" / "arena.db") as con:
        assert con.execute("SELECT COUNT(*) FROM answers WHERE answer_id = 'huge'").fetchone() == (0,)
    taken = cli("merge", str(tmp_path / "a"), "--into", str(tmp_path / "m"), "--max-response-bytes", "60000000")
    assert taken.returncode == 0, taken.stderr
