"""`arena-eval energy …`: check what measures each endpoint, import CodeCarbon logs, show energy per contestant
and configuration."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..console import echo
from ..errors import ArenaError
from .common import Format, fail

energy_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Energy: check the meters of a config's endpoints, import CodeCarbon runs and show "
                              "energy per contestant and configuration.")

DEFAULT_OUTPUT = Path("outputs/demo")
SHOW_COLUMNS = ["contestant", "tags", "runs", "energy_wh", "energy_wh_std", "gpu_wh", "cpu_wh", "ram_wh",
                "duration_s", "co2_g"]

OutputOption = typer.Option(DEFAULT_OUTPUT, "--output", "-o", help="Output folder holding arena.db.")


@energy_app.command("check")
def check(
    config: Path = typer.Option(..., "--config", "-c", help="Run config (YAML) whose endpoints to check."),
    seconds: float = typer.Option(3.0, "--seconds", min=0.1, help="How long to measure each meter's idle power."),
) -> None:
    """For every endpoint: which meter measures it, what it sees (devices, counters, idle watts), or why nothing
    can. Exit 0 when every contestant on this machine or another one is measured, 2 otherwise."""
    from ..config import load_config
    from ..energy.check import check_endpoints, check_exit_code, lock_groups

    try:
        cfg = load_config(config)
        checks = check_endpoints(cfg, seconds)
        sharing = lock_groups(cfg)
    except ArenaError as exc:
        fail(exc)
    for item in checks:
        meter = item.meter or "nothing measures it"
        echo(f"{item.role} {item.name} ({item.where}): {meter}")
        for line in item.lines:
            echo(f"  {line}")
    for line in sharing:
        echo(f"shared: {line}")
    code = check_exit_code(checks)
    unmeasured = [c.name for c in checks if c.role == "contestant" and c.where != "an API" and not c.measured]
    echo("every contestant on a machine of yours is measured" if code == 0 else
         f"not measured: {', '.join(unmeasured)} (their energy will be estimated or unknown)")
    raise typer.Exit(code)


@energy_app.command("import-codecarbon")
def import_codecarbon(
    file: Path = typer.Argument(..., help="CodeCarbon's emissions.csv."),
    pattern: str = typer.Option(..., "--pattern", help="Regex matching the whole cell; named group `contestant`, "
                                "other named groups become tags, e.g. '(?P<contestant>.+)-(?P<gpus>\\d+)gpu-run\\d+'."),
    column: str = typer.Option("project_name", "--column", help="Column the pattern is matched against."),
    output: Path = OutputOption,
) -> None:
    """Store CodeCarbon runs as energy for contestants (re-importing a file replaces its earlier import)."""
    from .. import folder
    from ..energy.codecarbon_import import summarise_runs

    try:
        runs, stored, replaced = folder.import_codecarbon(file, pattern, column, output)
    except ArenaError as exc:
        fail(exc)
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
    from .. import folder

    try:
        summary = folder.imported_energy(output)
    except ArenaError as exc:
        fail(exc)
    print_summary(summary, format)


def print_summary(summary, fmt: Format) -> None:
    from .render import render_table, write_frame

    summary = summary[SHOW_COLUMNS]
    if fmt is Format.json:
        write_frame(summary, fmt, lambda s: json.loads(s.to_json(orient="records")))  # NaN → null
        return
    if fmt is Format.csv:
        write_frame(summary.assign(tags=[json.dumps(t, sort_keys=True) for t in summary["tags"]]), fmt)
        return
    if summary.empty:
        echo("no energy imported yet")
        return
    render_table(summary.to_dict("records"), SHOW_COLUMNS, "Energy per contestant and configuration (CodeCarbon runs)",
                 cell=_cell, left=("contestant", "tags"))


def _cell(column: str, value) -> str:
    from .render import missing

    if column == "tags":
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, str):
        return value
    if missing(value):
        return "-"
    if column == "runs":
        return str(int(value))
    return f"{value:.4g}"
