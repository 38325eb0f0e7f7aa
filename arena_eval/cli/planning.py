"""Before a run: `plan` (what it would send, and its estimated cost) and `validate` (the config checked)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..console import echo, err
from ..errors import ArenaError
from .common import ConfigOption, Format, FormatOption, app, baseline_words, fail, load

PLAN_FORMATS = {"input_tokens": ".0f", "output_tokens": ".0f", "cost": ".4f", "duration_s": ".0f", "energy_wh": ".3g"}


def _plan_cell(column: str, value) -> str:
    from .render import missing

    if missing(value):
        return "-"
    return f"{value:{PLAN_FORMATS[column]}}" if column in PLAN_FORMATS else str(value)


@app.command()
def plan(
    config: Path | None = ConfigOption,
    format: Format = FormatOption,
) -> None:
    """What `run` would do, sending nothing: requests still to make per contestant and judge, with estimated
    tokens, cost, duration and energy (and which figures are estimates)."""
    from ..pipeline import Arena
    from .render import render_table, write_frame

    try:
        cfg = load(config)
        result = Arena(cfg).plan()
    except ArenaError as exc:
        fail(exc)
    frame = result.frame()
    if write_frame(frame, format, lambda f: {"rows": json.loads(f.to_json(orient="records")),
                                             "totals": result.totals()}):
        return
    render_table(frame.to_dict("records"), list(frame.columns), f"{cfg.name}: plan (nothing sent)", cell=_plan_cell,
                 left=("role", "name", "estimated"), no_wrap=("name",))
    err.print(result.summary(), highlight=False)


@app.command()
def validate(config: Path = typer.Option(..., "--config", "-c", help="Run config (YAML) to check.")) -> None:
    """Check a run config and its question set without sending any request."""
    from ..config import load_config
    from ..pipeline import Arena

    try:
        cfg = load_config(config)
        arena = Arena(cfg)  # the question set, each category's baseline, the judges' templates
        arena.check_keys()
        planned = arena.plan().summary()
    except ArenaError as exc:
        fail(exc)
    judges = ", ".join(f"{j.provider}:{j.model or j.model_path}" + (f" ({j.label})" if len(cfg.judges) > 1 else "")
                       for j in cfg.judges)
    echo(
        f"{config}: ok — {len(arena.questions)} questions, {len(cfg.contestants)} contestants "
        f"({baseline_words(cfg)}), judge{'s' if len(cfg.judges) > 1 else ''} {judges}, results in {cfg.output_dir}"
    )
    echo(planned)
    metered = [e for e in [*cfg.contestants, *cfg.judges] if e.is_local or e.energy is not None]
    if metered:
        echo(f"energy: {len(metered)} endpoint(s) metered; `arena-eval energy check -c {config}` shows which meter "
             "measures each, what it sees and its idle watts")
    if cfg.tracking.mlflow is not None:
        import importlib.util

        if importlib.util.find_spec("mlflow") is None:  # found without importing it (start-up)
            from ..mlflow_tracking import INSTALL

            echo(f"warning: tracking.mlflow is set but MLflow is not installed ({INSTALL}); runs will score as "
                 "usual and warn instead of logging")
