"""CodeCarbon CSV import (hand-computed means, spread and tags), the energy tables, and the `energy` commands."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arena_eval.cli.energy import energy_app
from arena_eval.energy import read_codecarbon_csv, summarise_runs
from arena_eval.energy.codecarbon_import import UnmatchedRow
from arena_eval.energy.meters import EnergyReading
from arena_eval.errors import ArenaError, ConfigError
from arena_eval.store.energy import create_energy_tables, load_imports, load_windows, save_imports, save_window

CSV = Path(__file__).parent / "data" / "energy" / "emissions.csv"
PATTERN = r"(?P<contestant>.+)-(?P<gpus>\d+)gpu-run\d+"

# Computed by hand from tests/data/energy/emissions.csv (kWh × 1000 = Wh, kg × 1000 = g):
#   llama70b 4 GPUs, runs 1-3: energy 400, 440, 420 Wh → mean 420, sample std sqrt((20² + 20² + 0²)/2) = 20
#     gpu 388, 426, 406 → 406.667; cpu 10, 12, 11 → 11; ram 2, 2, 3 → 2.333; duration 1000, 1100, 1050 → 1050 s;
#     emissions 150, 160, 155 g → 155
#   llama70b 8 GPUs, runs 1-2: energy 500, 540 → mean 520, std sqrt((20² + 20²)/1) = 28.2843
#     gpu 493, 533 → 513; cpu 6; ram 1; duration 600, 620 → 610; emissions 185, 199 → 192
#   mistral7b 1 GPU, one run: 54 Wh, std unknown (NaN); gpu 50, cpu 3, ram 1, 300 s, 20 g
#   line 6 ("warmup") does not match.
EXPECTED = [
    {"contestant": "llama70b", "tags": {"gpus": "4"}, "runs": 3, "energy_wh": 420.0, "energy_wh_std": 20.0,
     "gpu_wh": 406.6666667, "cpu_wh": 11.0, "ram_wh": 2.3333333, "duration_s": 1050.0, "co2_g": 155.0},
    {"contestant": "llama70b", "tags": {"gpus": "8"}, "runs": 2, "energy_wh": 520.0, "energy_wh_std": 28.2842712,
     "gpu_wh": 513.0, "cpu_wh": 6.0, "ram_wh": 1.0, "duration_s": 610.0, "co2_g": 192.0},
    {"contestant": "mistral7b", "tags": {"gpus": "1"}, "runs": 1, "energy_wh": 54.0, "energy_wh_std": None,
     "gpu_wh": 50.0, "cpu_wh": 3.0, "ram_wh": 1.0, "duration_s": 300.0, "co2_g": 20.0},
]


def assert_rows(rows: list[dict], expected: list[dict]) -> None:
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected):
        for key, value in want.items():
            got = row[key]
            if value is None:
                assert got is None or (isinstance(got, float) and math.isnan(got)), key
            elif isinstance(value, float):
                assert got == pytest.approx(value, rel=1e-6), (want["contestant"], want["tags"], key)
            else:
                assert got == value, key


def test_read_codecarbon_csv_runs_tags_and_unmatched():
    runs = read_codecarbon_csv(CSV, PATTERN)
    assert len(runs) == 6
    assert runs.attrs["unmatched"] == [UnmatchedRow(line=6, value="warmup")]
    first = runs.iloc[0]
    assert (first.contestant, first.tags, first.gpus, first.line) == ("llama70b", {"gpus": "4"}, "4", 2)
    assert first.energy_wh == pytest.approx(400.0) and first.co2_g == pytest.approx(150.0)
    assert first.source_run_id == "r-0001"


def test_summarise_runs_hand_computed():
    summary = summarise_runs(read_codecarbon_csv(CSV, PATTERN))
    assert_rows(summary.to_dict("records"), EXPECTED)


def test_pattern_errors_name_the_pattern():
    with pytest.raises(ConfigError, match=r"has no named group `contestant`"):
        read_codecarbon_csv(CSV, r"(?P<model>.+)-run\d+")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        read_codecarbon_csv(CSV, r"(?P<contestant>.+")


def test_file_and_column_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        read_codecarbon_csv(tmp_path / "missing.csv", PATTERN)
    with pytest.raises(ConfigError, match=r"emissions.csv: no column 'experiment' .*--column"):
        read_codecarbon_csv(CSV, PATTERN, column="experiment")
    bad = tmp_path / "bad.csv"
    bad.write_text("project_name,energy_consumed\nllama-4gpu-run1,0.5\nllama-4gpu-run2,lots\n")
    with pytest.raises(ConfigError, match=r"bad.csv:3: column 'energy_consumed' should be a number, got 'lots'"):
        read_codecarbon_csv(bad, PATTERN)
    no_energy = tmp_path / "no_energy.csv"
    no_energy.write_text("project_name,duration\nx-1gpu-run1,3\n")
    with pytest.raises(ConfigError, match="no column 'energy_consumed'"):
        read_codecarbon_csv(no_energy, PATTERN)


def test_blank_component_is_unknown_not_zero(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("project_name,energy_consumed,gpu_energy\nm-1gpu-run1,0.5,\nm-1gpu-run2,0.7,0.4\n")
    summary = summarise_runs(read_codecarbon_csv(path, PATTERN)).iloc[0]
    assert summary.energy_wh == pytest.approx(600.0)
    assert summary.gpu_wh == pytest.approx(400.0)  # the mean of the runs that report it
    assert math.isnan(summary.cpu_wh)  # no column at all: unknown


# --- energy tables -------------------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path):
    connection = sqlite3.connect(tmp_path / "arena.db")
    create_energy_tables(connection)
    create_energy_tables(connection)  # idempotent
    yield connection
    connection.close()


def test_windows_round_trip_keeps_unknown_as_null(db):
    measured = EnergyReading(method="nvml", is_estimated=False, tool_version="driver 550", devices=["gpu0 (H100)"],
                             started_at=100.0, ended_at=160.0, duration_s=60.0, energy_j=1200.0, gpu_j=1200.0)
    unknown = EnergyReading(method="none", is_estimated=True, started_at=200.0, ended_at=210.0, duration_s=10.0,
                            error="gpu1 lost")
    save_window(db, measured, role="contestant", run_id="r1", contestant="a", config_id="c1", device="cuda:0",
                output_tokens=900, requests=10)
    save_window(db, unknown, role="judge", run_id="r1", contestant="judge")
    frame = load_windows(db, run_id="r1")
    assert frame.contestant.tolist() == ["a", "judge"]
    assert frame.device.tolist()[0] == "cuda:0" and frame.output_tokens.tolist()[0] == 900
    assert frame.devices.tolist() == [["gpu0 (H100)"], []]
    assert frame.is_estimated.tolist() == [False, True]
    assert frame.energy_j.iloc[0] == 1200.0 and math.isnan(frame.energy_j.iloc[1])
    assert db.execute("SELECT COUNT(*) FROM energy_windows WHERE energy_j IS NULL").fetchone()[0] == 1
    assert load_windows(db, role="judge").error.tolist() == ["gpu1 lost"]
    with pytest.raises(ValueError, match="role"):
        save_window(db, measured, role="answer")


def test_imports_round_trip_and_reimport_replaces(db):
    runs = read_codecarbon_csv(CSV, PATTERN)
    assert save_imports(db, runs, CSV, imported_at=1.0) == (6, 0)
    assert save_imports(db, runs, CSV, imported_at=2.0) == (6, 6)
    stored = load_imports(db)
    assert len(stored) == 6 and set(stored.imported_at) == {2.0}
    assert_rows(summarise_runs(stored).to_dict("records"), EXPECTED)


def test_writes_refuse_an_open_transaction(db):
    db.execute("BEGIN")
    with pytest.raises(ArenaError, match="transaction is already open"):
        save_window(db, EnergyReading(method="none", is_estimated=True), role="idle")
    db.execute("ROLLBACK")


# --- the `energy` commands -------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_import_then_show_json(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(energy_app, ["import-codecarbon", str(CSV), "--pattern", PATTERN, "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "6 runs imported" in result.stdout
    assert "llama70b [gpus=4]: 3 run(s), 420 Wh per run" in result.stdout
    assert "1 row(s) did not match" in result.stdout and "line 6: 'warmup'" in result.stdout
    shown = runner.invoke(energy_app, ["show", "--output", str(out), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert_rows(json.loads(shown.stdout), EXPECTED)


def test_cli_show_csv_and_table(tmp_path):
    out = tmp_path / "out"
    runner.invoke(energy_app, ["import-codecarbon", str(CSV), "--pattern", PATTERN, "--output", str(out)])
    csv_out = runner.invoke(energy_app, ["show", "--output", str(out), "--format", "csv"]).stdout
    assert csv_out.splitlines()[0] == "contestant,tags,runs,energy_wh,energy_wh_std,gpu_wh,cpu_wh,ram_wh,duration_s,co2_g"
    assert '"{""gpus"": ""8""}",2,520.0' in csv_out
    table = runner.invoke(energy_app, ["show", "--output", str(out)]).stdout
    assert "llama70b" in table and "gpus=8" in table and "28.28" in table


def test_cli_errors_exit_1_with_a_message(tmp_path):
    result = runner.invoke(energy_app, ["show", "--output", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "no results yet" in result.output
    bad = runner.invoke(energy_app, ["import-codecarbon", str(CSV), "--pattern", "(.+)-run", "--output", str(tmp_path)])
    assert bad.exit_code == 1 and "no named group `contestant`" in bad.output
    assert not (tmp_path / "arena.db").exists()  # nothing written on a bad pattern


def test_an_emissions_csv_saved_with_a_byte_order_mark_imports_the_same_rows(tmp_path):
    """Spreadsheet programs save CSV with a byte-order mark; the header must still read `project_name`."""
    marked = tmp_path / "emissions.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + CSV.read_bytes())
    plain, with_mark = read_codecarbon_csv(CSV, PATTERN), read_codecarbon_csv(marked, PATTERN)
    assert with_mark.drop(columns="tags").equals(plain.drop(columns="tags"))
    assert with_mark["tags"].tolist() == plain["tags"].tolist()
    assert with_mark.attrs["unmatched"] == plain.attrs["unmatched"]
