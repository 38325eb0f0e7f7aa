"""What every command module of the command line shares: the `app`, the options, loading a config, failing.

Nothing here imports pandas, the providers, the pipeline or the meters: `arena-eval --help` and `validate` load
this module, and each command imports the library it calls inside its own function (docs/design.md §7).
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import NoReturn

import typer
from typer.core import TyperCommand

from ..console import err
from ..errors import ArenaError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Judge model configurations against a baseline and weigh quality against energy.",
)

# Libraries that log on their own: quiet (errors only) unless --verbose. CodeCarbon alone logs a dozen lines per
# energy window ("Multiple instances of codecarbon...", unknown CPU models, RAPL hints); the run's own energy line
# says which meter measured what.
THIRD_PARTY_LOGGERS = ("codecarbon", "litellm", "LiteLLM", "httpx", "httpcore", "openai", "anthropic", "urllib3",
                       "asyncio", "xllamacpp")


def quiet_third_party_logs(verbose: bool) -> None:
    import logging

    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    os.environ["ARENA_EVAL_VERBOSE"] = "1" if verbose else "0"


@app.callback()
def _options(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the log lines of the libraries "
                                          "arena-eval uses (CodeCarbon, litellm, HTTP clients); quiet by default.")) -> None:
    quiet_third_party_logs(verbose)


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


ConfigOption = typer.Option(None, "--config", "-c", help="Run config (YAML). Without it: the bundled offline demo.")
FormatOption = typer.Option(Format.table, "--format", "-f", help="How to print tables: table, json or csv.")
ColumnsOption = typer.Option(None, "--columns", help="The leaderboard columns to print, comma-separated (the "
                             "contestant's name comes first anyway); default: as many as fit the terminal, by priority.")
ProgressOption = typer.Option(True, "--progress/--no-progress", help="Progress bars (lines when not on a terminal).")


def rating_default(name: str):
    """A `rating:` setting's default, as config.RatingConfig declares it (--battles and the help texts read it)."""
    from ..config import RatingConfig

    return RatingConfig.model_fields[name].default


RATING_DEFAULTS = ("bootstrap", "rounds", "seed")


class RatingDefaultsHelp(TyperCommand):
    """A command whose options' help names the rating defaults as {rounds}, {seed}, {bootstrap}: filled in from
    config.RatingConfig when the help is shown, since importing the config models would double the start-up
    of every command."""

    def format_help(self, ctx, formatter) -> None:
        defaults = {name: rating_default(name) for name in RATING_DEFAULTS}
        for param in self.params:
            text = getattr(param, "help", None)
            if isinstance(text, str) and "{" in text:
                setattr(param, "help", text.format(**defaults))  # noqa: B010  (only click's Option has `help`)
        super().format_help(ctx, formatter)


def parse_columns(value: str | None) -> list[str] | None:
    """--columns a,b,c as a list, each a leaderboard column (records.LeaderboardRow); exit 1 naming an unknown one."""
    if value is None:
        return None
    from ..records import COLUMNS

    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in COLUMNS]
    if unknown or not names:
        fail(ArenaError(f"--columns: {', '.join(unknown) or 'no column given'} is not a leaderboard column; "
                        f"columns: {', '.join(COLUMNS)}"))
    return names


def load(config: Path | None, guided_demo: bool = False):
    """The run config of --config, or the bundled demo without one."""
    if guided_demo and config is not None:
        raise ArenaError("--demo-guided changes the bundled demo; it cannot be combined with --config")
    if config is None:
        from ..demo import demo_config

        return demo_config(guided=guided_demo)
    from ..config import load_config

    return load_config(config)


def fail(exc: ArenaError) -> NoReturn:
    from rich.markup import escape

    # Escaped: a message is text, and `pip install 'arena-eval[inspect]'` must not lose its "[inspect]" as a tag.
    err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
    raise typer.Exit(exc.exit_code)


def baseline_words(cfg) -> str:
    """The baseline as a title says it: one name, or each category's (the score is then their weighted mean)."""
    if not cfg.category_baselines:
        return f"baseline {cfg.baseline}"
    pairs = ", ".join(f"{category}: {name}" for category, name in cfg.category_baselines.items())
    return f"each category's baseline ({pairs}; overall: mean weighted by questions)"
