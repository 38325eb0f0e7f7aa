"""The result database failing under a run: a full disk, damaged pages. The run stops with a message that says
which and what to do, nothing stored before is lost, and a rerun (after freeing space) finishes the work."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys

import pytest
from conftest import write_config

CLI = [sys.executable, "-m", "arena_eval.cli"]
LONG_ANSWER = "A long answer that fills the disk. " * 600  # ~20 KB


def _can_mount_in_a_namespace() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c",
                            "d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs $d && umount $d && rmdir $d"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_in_a_namespace(),
                    reason="needs `unshare --mount --map-root-user` and tmpfs mounts to make a small disk")
@pytest.mark.slow
def test_a_full_disk_stops_the_run_with_a_message_keeps_the_store_and_a_rerun_after_freeing_space_finishes(
        tmp_path, fake_server):
    # A 16 MiB disk of its own (tmpfs in a private mount namespace), nearly filled by another file; the answers are
    # ~20 KB each, so the database runs out of room part-way through collection.
    server = fake_server(replies={f"m-{name}": [LONG_ANSWER] for name in ("base", "c1", "c2")})
    disk = tmp_path / "disk"
    disk.mkdir()
    contestants = [{"name": name, "model": f"m-{name}", "concurrency": 4} for name in ("base", "c1", "c2")]
    config = write_config(tmp_path, server.base_url, n_questions=60, contestants=contestants)
    data = config.read_text().replace(str(tmp_path / "out"), str(disk / "out"))
    config.write_text(data)
    check = ("import json, sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
             "print(json.dumps([db.execute('PRAGMA integrity_check').fetchone()[0], "
             "db.execute('SELECT COUNT(*) FROM answers').fetchone()[0], "
             "db.execute('SELECT COUNT(*) FROM judgments').fetchone()[0]]))")
    script = f"""
set -u
mount -t tmpfs -o size=16m tmpfs {disk}
dd if=/dev/zero of={disk}/other-files bs=1M count=12 2>/dev/null
cli() {{ {' '.join(CLI)} run --config {config} --no-progress; }}
start=$(date +%s.%N); cli > {tmp_path}/out1 2> {tmp_path}/err1; echo $? > {tmp_path}/rc1
echo "$start $(date +%s.%N)" > {tmp_path}/time1
{sys.executable} -c "{check}" {disk}/out/t/arena.db > {tmp_path}/db1
rm {disk}/other-files
cli > {tmp_path}/out2 2> {tmp_path}/err2; echo $? > {tmp_path}/rc2
{sys.executable} -c "{check}" {disk}/out/t/arena.db > {tmp_path}/db2
"""
    subprocess.run(["unshare", "--mount", "--map-root-user", "bash", "-c", script], timeout=300, check=True)
    read = lambda name: (tmp_path / name).read_text()  # noqa: E731
    started, ended = map(float, read("time1").split())
    stderr = read("err1")
    print(f"full disk: exit {read('rc1').strip()} after {ended - started:.1f} s; stored then {read('db1').strip()}; "
          f"message: {stderr.strip().splitlines()[-1][:200]}")
    assert read("rc1").strip() == "1" and "Traceback" not in stderr
    assert "is full" in stderr and "(SQLite: database or disk is full)" in stderr
    assert "Free some space there, then run the same command again" in stderr
    assert "writable" not in stderr
    assert ended - started < 30
    integrity, answers, _ = json.loads(read("db1"))
    assert integrity == "ok" and 0 < answers < 180

    assert read("rc2").strip() == "0", read("err2")
    integrity, answers, games = json.loads(read("db2"))
    assert (integrity, answers, games) == ("ok", 180, 240)


@pytest.mark.slow
def test_a_database_with_damaged_pages_is_a_message_not_a_traceback(tmp_path, fake_server):
    server = fake_server()
    config = write_config(tmp_path, server.base_url, n_questions=40)
    assert subprocess.run([*CLI, "run", "--config", str(config), "--no-progress"], capture_output=True).returncode == 0
    db_path = tmp_path / "out" / "t" / "arena.db"
    with sqlite3.connect(db_path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = db.execute("PRAGMA page_size").fetchone()[0]
        # The pages that hold the answers and the verdicts (SQLite's dbstat table); the schema stays readable.
        damaged = [n for (n,) in db.execute("SELECT pageno FROM dbstat WHERE name IN ('answers', 'judgments')")]
    raw = bytearray(db_path.read_bytes())
    for n in damaged:  # 1-based page numbers
        raw[(n - 1) * page + 8 : (n - 1) * page + 64] = b"\xa5" * 56
    db_path.write_bytes(bytes(raw))
    before = dict(server.requests)

    for command in ("run", "score", "report"):
        done = subprocess.run([*CLI, command, "--config", str(config), *(["--no-progress"] if command == "run" else [])],
                              capture_output=True, text=True)
        assert done.returncode == 1, (command, done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.count("error:") == 1, done.stderr
        assert f"the result database {db_path} is damaged" in done.stderr, done.stderr
        assert ".recover" in done.stderr
    assert dict(server.requests) == before


def _damage_pages(db_path, tables: tuple[str, ...]) -> None:
    """Overwrite the pages that hold `tables` (SQLite's dbstat table); the schema stays readable."""
    with sqlite3.connect(db_path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = db.execute("PRAGMA page_size").fetchone()[0]
        damaged = [n for (n,) in db.execute(f"SELECT pageno FROM dbstat WHERE name IN ({','.join('?' * len(tables))})",
                                              tables)]
    raw = bytearray(db_path.read_bytes())
    for n in damaged:  # 1-based page numbers
        raw[(n - 1) * page + 8 : (n - 1) * page + 64] = b"\xa5" * 56
    db_path.write_bytes(bytes(raw))


@pytest.mark.slow
def test_run_and_score_leave_a_damaged_store_byte_for_byte_untouched(tmp_path, fake_server):
    """Damaged pages under an intact schema (and a file that is no database at all): `run` and `score` stop with
    the damage message before writing anything, so that `.recover` still finds everything the file held. Before,
    `run` wrote its row into the runs table first."""
    import hashlib

    from typer.testing import CliRunner

    from arena_eval.cli import app

    server = fake_server()
    config = write_config(tmp_path, server.base_url, n_questions=12, energy={"idle_seconds": 0})
    runner = CliRunner()
    assert runner.invoke(app, ["run", "--config", str(config), "--no-progress"]).exit_code == 0
    db_path = tmp_path / "out" / "t" / "arena.db"
    intact = db_path.read_bytes()
    damaged = []
    for tables in (("contestants",), ("answers", "judgments")):
        db_path.write_bytes(intact)
        _damage_pages(db_path, tables)
        damaged.append(db_path.read_bytes())
    requests = sum(server.requests.values())
    for content in (*damaged, b"these bytes are not an SQLite database\n" * 100):
        for stale in db_path.parent.glob("arena.db-*"):  # no WAL left over from the content before
            stale.unlink()
        db_path.write_bytes(content)
        digest = hashlib.sha256(content).hexdigest()
        for command in (["run", "--no-progress"], ["score"]):
            done = runner.invoke(app, [command[0], "--config", str(config), *command[1:]])
            assert done.exit_code == 1, (command, done.output)
            assert f"the result database {db_path} is damaged" in done.stderr, done.stderr
            assert hashlib.sha256(db_path.read_bytes()).hexdigest() == digest, command
            assert not any(p.stat().st_size for p in db_path.parent.glob("arena.db-wal")), command  # nor pending
    assert sum(server.requests.values()) == requests  # nothing was sent either
