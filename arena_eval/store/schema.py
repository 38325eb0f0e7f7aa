"""The store's tables and their migrations: created on every open, columns added later applied to older
databases (docs/design.md §4.2, §4.6). The one place that says what a table holds.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, name TEXT NOT NULL, command TEXT NOT NULL, started_at REAL NOT NULL,
    finished_at REAL, status TEXT NOT NULL, config_json TEXT NOT NULL, summary_json TEXT
);
CREATE TABLE IF NOT EXISTS questions (
    question_id TEXT PRIMARY KEY, prompt TEXT NOT NULL, category TEXT, cluster TEXT, reference TEXT,
    follow_ups TEXT, subcategory TEXT
);
CREATE TABLE IF NOT EXISTS contestants (
    name TEXT PRIMARY KEY, config_id TEXT NOT NULL, provider TEXT NOT NULL, model TEXT,
    config_json TEXT NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    answer_id TEXT PRIMARY KEY, contestant TEXT NOT NULL, config_id TEXT NOT NULL, question_id TEXT NOT NULL,
    prompt_hash TEXT NOT NULL, text TEXT NOT NULL, input_tokens INTEGER, output_tokens INTEGER,
    tokens_estimated INTEGER NOT NULL DEFAULT 0, finish_reason TEXT, latency_s REAL, ttft_s REAL, cost REAL,
    created_at REAL NOT NULL, run_id TEXT, context_ids TEXT, question_digest TEXT, turns TEXT, reasoning TEXT,
    reasoning_tokens INTEGER, source_id TEXT,
    UNIQUE (config_id, question_id, prompt_hash)
);
CREATE TABLE IF NOT EXISTS answer_turns (
    config_id TEXT NOT NULL, question_id TEXT NOT NULL, prompt_hash TEXT NOT NULL, turn INTEGER NOT NULL,
    record TEXT NOT NULL, created_at REAL NOT NULL, run_id TEXT,
    PRIMARY KEY (config_id, question_id, prompt_hash, turn)
);
CREATE TABLE IF NOT EXISTS adaptive_plans (
    plan_key TEXT PRIMARY KEY, previous_run_id TEXT, started_run_id TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS current_answers (
    config_id TEXT NOT NULL, question_id TEXT NOT NULL, answer_id TEXT, PRIMARY KEY (config_id, question_id)
);
CREATE TABLE IF NOT EXISTS guidance (
    question_id TEXT NOT NULL, guide_config_id TEXT NOT NULL, reference TEXT NOT NULL, guidance TEXT NOT NULL,
    input_tokens INTEGER, output_tokens INTEGER, created_at REAL NOT NULL, run_id TEXT,
    PRIMARY KEY (question_id, guide_config_id)
);
CREATE TABLE IF NOT EXISTS errors (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, stage TEXT NOT NULL, contestant TEXT NOT NULL,
    config_id TEXT, question_id TEXT NOT NULL, game_id TEXT, reason TEXT NOT NULL, attempts INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS judgments (
    game_id TEXT PRIMARY KEY, judge_config_id TEXT NOT NULL, question_id TEXT NOT NULL, contestant TEXT NOT NULL,
    baseline TEXT NOT NULL, game INTEGER NOT NULL, answer_a_id TEXT NOT NULL, answer_b_id TEXT NOT NULL,
    verdict TEXT, judge_text TEXT NOT NULL, attempts INTEGER NOT NULL, input_tokens INTEGER, output_tokens INTEGER,
    latency_s REAL, created_at REAL NOT NULL, run_id TEXT, cost REAL, flags TEXT
);
CREATE TABLE IF NOT EXISTS leaderboards (
    run_id TEXT NOT NULL, model TEXT NOT NULL, created_at REAL NOT NULL, row_json TEXT NOT NULL, judges TEXT,
    PRIMARY KEY (run_id, model)
);
-- What a scored run's paired regression test needs of it (§3.6): per contestant and question, the points won
-- against the baseline (wins + half the ties, weighted) and the battles' weight; and the run's verdicts.
CREATE TABLE IF NOT EXISTS question_points (
    run_id TEXT NOT NULL, model TEXT NOT NULL, question_id TEXT NOT NULL, points REAL NOT NULL, weight REAL NOT NULL,
    PRIMARY KEY (run_id, model, question_id)
);
CREATE TABLE IF NOT EXISTS regression_checks (
    run_id TEXT NOT NULL, model TEXT NOT NULL, previous_run_id TEXT NOT NULL, test TEXT NOT NULL,
    difference REAL, ci_low REAL, ci_high REAL, p_value REAL, p_holm REAL, questions INTEGER,
    regressed INTEGER NOT NULL, reason TEXT, PRIMARY KEY (run_id, model)
);
CREATE TABLE IF NOT EXISTS answer_epochs (
    base_config_id TEXT NOT NULL, epoch TEXT NOT NULL, contestant TEXT NOT NULL, run_id TEXT NOT NULL,
    started_at REAL NOT NULL, PRIMARY KEY (base_config_id, epoch)
);
CREATE TABLE IF NOT EXISTS resources (
    run_id TEXT NOT NULL, contestant TEXT NOT NULL, config_id TEXT NOT NULL, peak_memory_gb REAL,
    memory_source TEXT, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_jobs (
    batch_id TEXT PRIMARY KEY, kind TEXT NOT NULL, provider TEXT NOT NULL, endpoint TEXT NOT NULL, name TEXT NOT NULL,
    config_id TEXT NOT NULL, status TEXT NOT NULL, provider_status TEXT, done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL, run_id TEXT, collected_run_id TEXT
);
CREATE TABLE IF NOT EXISTS batch_items (
    batch_id TEXT NOT NULL, custom_id TEXT NOT NULL, question_id TEXT NOT NULL, item TEXT NOT NULL,
    PRIMARY KEY (batch_id, custom_id)
);
CREATE INDEX IF NOT EXISTS errors_by_run ON errors (run_id, stage);
"""

# Columns added after a table was first created: (table, column, type). Applied to older databases on open
# (docs/design.md §4.6): new columns are added this way, never renamed or dropped.
ADDED_COLUMNS = [("answers", "context_ids", "TEXT"), ("judgments", "cost", "REAL"), ("judgments", "flags", "TEXT"),
                 ("answers", "question_digest", "TEXT"), ("leaderboards", "judges", "TEXT"),
                 ("questions", "follow_ups", "TEXT"), ("questions", "subcategory", "TEXT"),
                 ("answers", "turns", "TEXT"), ("answers", "reasoning", "TEXT"),
                 ("answers", "reasoning_tokens", "INTEGER"), ("answers", "source_id", "TEXT")]

ENERGY_SCHEMA = """
CREATE TABLE IF NOT EXISTS energy_windows (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, contestant TEXT, config_id TEXT, device TEXT,
    role TEXT NOT NULL CHECK (role IN ('contestant', 'judge', 'idle')),
    method TEXT NOT NULL, is_estimated INTEGER NOT NULL, tool_version TEXT, devices TEXT NOT NULL,
    started_at REAL, ended_at REAL, duration_s REAL, energy_j REAL, gpu_j REAL, cpu_j REAL, ram_j REAL,
    output_tokens INTEGER, requests INTEGER, error TEXT
);
CREATE INDEX IF NOT EXISTS energy_windows_by_run ON energy_windows (run_id, contestant);
CREATE TABLE IF NOT EXISTS energy_imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, imported_at REAL NOT NULL, line INTEGER,
    contestant TEXT NOT NULL, tags TEXT NOT NULL, energy_wh REAL, cpu_wh REAL, gpu_wh REAL, ram_wh REAL,
    duration_s REAL, co2_g REAL, source_run_id TEXT, source_timestamp TEXT
);
CREATE INDEX IF NOT EXISTS energy_imports_by_source ON energy_imports (source);
"""


def create_tables(db: sqlite3.Connection) -> None:
    """Create what is missing (every table, the energy tables too), add the columns added since, record the schema
    version of a new database."""
    db.executescript(SCHEMA)
    migrate(db)
    create_energy_tables(db)
    db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def migrate(db: sqlite3.Connection) -> None:
    for table, column, kind in ADDED_COLUMNS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def create_energy_tables(db: sqlite3.Connection) -> None:
    db.executescript(ENERGY_SCHEMA)


def table_columns(db: sqlite3.Connection, schema: str = "main") -> dict[str, list[str]]:
    """table → its columns, in order, of one attached database (`main`: the store's own)."""
    tables = [r[0] for r in db.execute(
        f"SELECT name FROM {schema}.sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'").fetchall()]
    return {t: [r[1] for r in db.execute(f"PRAGMA {schema}.table_info({t})")] for t in tables}
