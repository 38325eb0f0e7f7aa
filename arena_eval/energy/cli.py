"""`arena-eval energy …`: import CodeCarbon logs and show energy per contestant and configuration."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console

from ..console import Table, echo, err
from ..errors import ArenaError

energy_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Energy logs: import CodeCarbon runs and show energy per contestant and configuration.")

DEFAULT_OUTPUT = Path("outputs/demo")
SHOW_COLUMNS = ["contestant", "tags", "runs", "energy_wh", "energy_wh_std", "gpu_wh", "cpu_wh", "ram_wh",
                "duration_s", "co2_g"]


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


OutputOption = typer.Option(DEFAULT_OUTPUT, "--output", "-o", help="Output folder holding arena.db.")


def _fail(exc: ArenaError) -> None:
    err.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
    raise typer.Exit(exc.exit_code)


@energy_app.command("import-codecarbon")
def import_codecarbon(
    file: Path = typer.Argument(..., help="CodeCarbon's emissions.csv."),
    pattern: str = typer.Option(..., "--pattern", help="Regex matching the whole cell; named group `contestant`, "
                                "other named groups become tags, e.g. '(?P<contestant>.+)-(?P<gpus>\\d+)gpu-run\\d+'."),
    column: str = typer.Option("project_name", "--column", help="Column the pattern is matched against."),
    output: Path = OutputOption,
) -> None:
    """Store CodeCarbon runs as energy for contestants (re-importing a file replaces its earlier import)."""
    from ..store import RunLock, Store
    from .codecarbon_import import read_codecarbon_csv, summarise_runs
    from .energy_store import create_energy_tables, save_imports

    try:
        runs = read_codecarbon_csv(file, pattern, column)
        with RunLock(output), Store(output / "arena.db") as store:
            create_energy_tables(store.db)
            stored, replaced = save_imports(store.db, runs, file)
    except ArenaError as exc:
        _fail(exc)
    unmatched = runs.attrs["unmatched"]
    summary = summarise_runs(runs)
    echo(f"{file}: {stored} runs imported into {output / 'arena.db'}"
               + (f" (replacing {replaced} from an earlier import of this file)" if replaced else ""))
    for row in summary.itertuples():
        tags = ", ".join(f"{k}={v}" for k, v in row.tags.items())
        echo(f"  {row.contestant}{f' [{tags}]' if tags else ''}: {row.runs} run(s), {row.energy_wh:.4g} Wh per run")
    if unmatched:
        echo(f"{len(unmatched)} row(s) did not match the pattern in column {column!r} and were not imported:")
        for item in unmatched[:20]:
            echo(f"  line {item.line}: {item.value!r}")
        if len(unmatched) > 20:
            echo(f"  … and {len(unmatched) - 20} more")


@energy_app.command("show")
def show(
    output: Path = OutputOption,
    format: Format = typer.Option(Format.table, "--format", "-f", help="How to print: table, json or csv."),
) -> None:
    """One row per contestant and tags from the imported runs: means per run and their spread."""
    from ..store import Store
    from .codecarbon_import import summarise_runs
    from .energy_store import create_energy_tables, load_imports

    db = output / "arena.db"
    try:
        if not db.exists():
            raise ArenaError(f"{db}: no results yet; import a CodeCarbon file with `arena-eval energy import-codecarbon`")
        with Store(db) as store:
            create_energy_tables(store.db)
            summary = summarise_runs(load_imports(store.db))
    except ArenaError as exc:
        _fail(exc)
    print_summary(summary, format)


def print_summary(summary: pd.DataFrame, fmt: Format) -> None:
    summary = summary[SHOW_COLUMNS]
    if fmt is Format.json:
        records = json.loads(summary.to_json(orient="records"))  # NaN → null
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        return
    if fmt is Format.csv:
        summary.assign(tags=[json.dumps(t, sort_keys=True) for t in summary["tags"]]).to_csv(sys.stdout, index=False)
        return
    if summary.empty:
        echo("no energy imported yet")
        return
    table = Table(title="Energy per contestant and configuration (CodeCarbon runs)")
    for column in SHOW_COLUMNS:
        table.add_column(column, justify="left" if column in ("contestant", "tags") else "right")
    for row in summary.to_dict("records"):
        table.add_row(*(_cell(c, row[c]) for c in SHOW_COLUMNS))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _cell(column: str, value) -> str:
    if column == "tags":
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return "-"
    if column == "runs":
        return str(int(value))
    return f"{value:.4g}"
