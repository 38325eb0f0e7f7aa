"""The store package is the only home of SQL (docs/design.md §4, §7): no module outside `arena_eval/store/` holds a
statement, opens SQLite or reaches the store's connection, and the store's look-ups return typed rows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd

from arena_eval.records import Answer
from arena_eval.store import (
    AnswerCandidate,
    BatchItem,
    BatchJob,
    CurrentOverride,
    EpochRow,
    Resources,
    RunRow,
    Store,
    StoredAnswer,
    UsageStats,
)

PACKAGE = Path(__file__).resolve().parents[1] / "arena_eval"
STATEMENT = re.compile(r"\bSELECT\b.*\bFROM\b|\bINSERT\b.*\bINTO\b|\bUPDATE \w+ SET\b|\bDELETE FROM\b|\bPRAGMA \w|"
                       r"\b(ATTACH|DETACH) DATABASE\b|^(BEGIN|COMMIT|ROLLBACK)( IMMEDIATE)?$|\bCREATE (TABLE|INDEX)\b",
                       re.DOTALL)
CONNECTION_CALLS = {"execute", "executemany", "executescript", "read_sql_query", "read_sql"}


def outside_the_store() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if (PACKAGE / "store") not in p.parents]


def test_no_module_outside_the_store_package_holds_sql_or_reaches_a_connection():
    found = []
    for path in outside_the_store():
        tree = ast.parse(path.read_text(), str(path))
        name = path.relative_to(PACKAGE.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found += [f"{name}:{node.lineno}: imports {m}" for m in modules if m.split(".")[0] == "sqlite3"]
            elif isinstance(node, ast.Attribute) and (node.attr in CONNECTION_CALLS or node.attr == "db"):
                found.append(f"{name}:{node.lineno}: .{node.attr}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and STATEMENT.search(node.value):
                found.append(f"{name}:{node.lineno}: SQL {node.value[:60]!r}")
    assert not found, "SQL belongs in arena_eval/store/ (add a Store method):\n" + "\n".join(found)


def test_each_store_module_stays_small():
    sizes = {p.name: len(p.read_text().splitlines()) for p in (PACKAGE / "store").glob("*.py")}
    assert len(sizes) >= 8 and max(sizes.values()) < 400, sizes


def test_the_stored_energy_import_columns_are_those_codecarbon_imports_read():
    from arena_eval.energy.codecarbon_import import RUN_COLUMNS
    from arena_eval.store import energy

    assert energy.RUN_COLUMNS == RUN_COLUMNS


def test_look_ups_return_typed_rows_that_still_read_by_column_name(tmp_path):
    with Store(tmp_path / "arena.db") as store:
        store.start_run("r1", "t", "run", {})
        store.save_answer(Answer("a1", "c", "set", "q1", "p", "an answer", 3, 5, created_at=1.0, latency_s=0.5,
                                 question_digest="d"))
        store.save_resources("r1", "c", "set", 1.5, "nvml")
        store.set_current("set", "q1", "a1")
        store.open_epoch("base", "r1", "c", "r1")
        store.save_batch_job("b1", "answers", "openai", "http://x/v1", "c", "set", [("id1", "q1", {"k": 1})], "r1")

        run = store.runs()[0]
        assert isinstance(run, RunRow) and run.status == run["status"] == "running"
        assert store.question_answers("set", "q1") == [StoredAnswer("a1", "d", 1.0, "p")]
        assert list(store.answer_candidates("set")) == [AnswerCandidate("q1", "a1", "d", 1.0)]
        assert store.current_override("set", "q1") == CurrentOverride(True, "a1")
        assert store.latest_resources("set") == Resources(1.5, "nvml")
        assert store.latest_epoch("base") == EpochRow("r1", "r1", "running")
        assert store.answer_stats(["a1"]) == UsageStats(3.0, 5.0, None)
        assert store.answer_latencies(["a1"]) == [0.5]
        job = store.batch_job("b1")
        assert isinstance(job, BatchJob) and job.total == job["total"] == 1
        assert store.batch_items("b1") == {"id1": BatchItem("q1", {"k": 1})}
        assert pd.DataFrame(store.batch_jobs(), columns=["batch_id", "status"]).values.tolist() == [["b1", "pending"]]
        assert store.schema_version() == "1"
