"""Stored work in and out of an output folder: `export` and `import` (arena-hard files, inspect_ai logs),
`questions` (a question set from inspect_ai logs), `merge` (other folders' stores), `batches` (the provider batches
of batch mode). The work itself is in arena_eval.folder, inspect_logs and merge."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..console import echo, err
from ..errors import ArenaError
from ..redaction import redact
from .common import ConfigOption, Format, FormatOption, app, fail, load

if TYPE_CHECKING:
    from ..interop import ArenaHardVersion


class ExportFormat(str, Enum):
    """The arena-hard-auto layout `export` writes, and the interop version it stands for."""

    arena_hard = "arena-hard"
    arena_hard_v2 = "arena-hard-v2"

    @property
    def version(self) -> ArenaHardVersion:
        return "v2.0" if self is ExportFormat.arena_hard_v2 else "v0.1"


@app.command("export")
def export_(
    config: Path | None = ConfigOption,
    to: Path | None = typer.Option(None, "--to", help="Folder to write to (default: <output>/<name>/arena-hard)."),
    format: ExportFormat = typer.Option(ExportFormat.arena_hard, "--format",
                                        help="arena-hard (v0.1 files) or arena-hard-v2 (v2.0 files)."),
) -> None:
    """Write stored answers, judgments and battles in the arena-hard-auto formats."""
    from .. import folder

    try:
        exported = folder.export_arena_hard(load(config), to, format.version)
    except ArenaError as exc:
        fail(exc)
    for path in exported.paths:
        echo(f"wrote {path}")
    for note in exported.notes:
        echo(f"note: {note}")


class ImportSource(str, Enum):
    """What `import` reads: an arena-hard answer file, or inspect_ai eval logs."""

    arena_hard = "arena-hard"
    inspect = "inspect"


class QuestionSource(str, Enum):
    """What `questions` makes a question set from."""

    inspect = "inspect"


@app.command("import")
def import_(
    answers_file: Path = typer.Argument(..., help="An arena-hard answer file (model_answer/<model>.jsonl), v0.1 "
                                                  "or v2.0; with --from inspect, an inspect_ai log (.eval or .json) "
                                                  "or a folder of one model's logs."),
    contestant: str = typer.Option(..., "--contestant", help="The contestant (in the config) these answers belong to."),
    config: Path | None = ConfigOption,
    source: ImportSource = typer.Option(ImportSource.arena_hard, "--from",
                                        help="arena-hard (an answer file) or inspect (inspect_ai eval logs)."),
) -> None:
    """Take an arena-hard answer file, or inspect_ai logs, as a contestant's answers, so that `run` does not
    regenerate them."""
    from .. import folder

    notes: list[str] = []
    model = ""
    try:
        if source is ImportSource.inspect:
            read, counts = folder.import_inspect_answers(load(config), answers_file, contestant, notes)
            model = f" (model {read.model})"
        else:
            counts = folder.import_answers(load(config), answers_file, contestant, notes)
    except ArenaError as exc:
        fail(exc)
    _print_notes(notes)
    skipped = "".join(f", {counts[key]} {what} (skipped)" for key, what in (
        ("repeated", "repeating a question answered earlier in the file"),
        ("too_large", "over max_response_bytes")) if counts.get(key))
    if source is ImportSource.inspect:
        if read.counts["unanswered"]:
            skipped += (f", {read.counts['unanswered']} questions without an answer in the log (each sample of theirs "
                        "failed, has no output or was refused: named above)")
    echo(
        f"{answers_file}: {counts['imported']} answers imported for {contestant}{model}, {counts['already_stored']} "
        f"already stored, {counts['unknown_question']} for questions not in the set (skipped){skipped}"
    )
    if source is ImportSource.inspect:
        from ..inspect_logs import epochs_note, system_note

        for note in (epochs_note(read), system_note(read.chosen)):
            if note:
                echo(f"note: {note}")


def _print_notes(notes: list[str]) -> None:
    for note in notes[:MAX_NOTE_LINES]:
        err.print(redact(note), highlight=False, markup=False)
    if len(notes) > MAX_NOTE_LINES:
        err.print(f"… and {len(notes) - MAX_NOTE_LINES} more lines skipped", highlight=False, markup=False)


@app.command("questions")
def questions_(
    log: Path = typer.Argument(..., help="An inspect_ai log (.eval or .json), or a folder of logs."),
    source: QuestionSource = typer.Option(..., "--from", help="What to read: inspect (inspect_ai eval logs)."),
    out: Path = typer.Option(..., "--out", "-o", help="The question file to write (JSONL)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
) -> None:
    """Make a question set (JSONL) from the samples of inspect_ai eval logs: each sample's id and input, its
    `category` metadata (else the task's name) and its target as the reference."""
    from ..inspect_logs import system_note, write_questions

    try:
        count, logged = write_questions(log, out, force)
    except ArenaError as exc:
        fail(exc)
    _print_notes(logged.notes)
    echo(f"wrote {count} questions to {out}, from {len(logged.logs)} log{'s' if len(logged.logs) != 1 else ''}"
         + (f" ({len(logged.notes)} samples are not questions: named above)" if logged.notes else ""))
    note = system_note(logged.questions())
    if note:
        echo(f"note: {note}")


MAX_CONFLICT_LINES = 100  # on the terminal; --format json lists every conflict
MAX_NOTE_LINES = 20  # skipped lines of an imported file named on the terminal
MERGE_COLUMNS = ["source", "table", "added", "duplicates", "conflicts", "refused"]


@app.command()
def merge(
    sources: list[Path] = typer.Argument(..., help="Output folders (or their arena.db files) to merge."),
    into: Path | None = typer.Option(None, "--into", help="The output folder to merge into (created if new)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Merge into this run config's output folder "
                                          "instead of --into."),
    max_response_bytes: int | None = typer.Option(
        None, "--max-response-bytes", min=1, help="The most bytes of one model reply (answer, verdict, guidance) "
        "brought in; a row over it is refused. Default: with --config, the largest max_response_bytes of its "
        "endpoints; else 34,603,008 (that of max_tokens 32,768)."),
    format: Format = FormatOption,
) -> None:
    """Merge the stores of several output folders into one: same key and content is skipped as a duplicate, same
    key and other content is a conflict (reported; the row already there is kept). Exit 0, or 2 on conflicts.

    Each source is merged in one transaction while DIR's run lock is held; merging a source again adds nothing."""
    from ..merge import MERGE_REPLY_BYTES, merge_stores
    from ..providers.base import reply_byte_cap
    from .render import render_table, write_json

    try:
        if (into is None) == (config is None):
            raise ArenaError("merge needs where to merge into: --into DIR or --config F (its output folder), one of them")
        if into is not None:
            target, endpoints = into, []
        else:
            cfg = load(config)
            target, endpoints = cfg.output_dir, [*cfg.contestants, *cfg.judge, *([cfg.guidance] if cfg.guidance else [])]
        if max_response_bytes is None:  # with --config, the largest reply any of its endpoints may send
            max_response_bytes = max(map(reply_byte_cap, endpoints)) if endpoints else MERGE_REPLY_BYTES
        result = merge_stores(sources, target, max_response_bytes)
    except ArenaError as exc:
        fail(exc)
    except KeyboardInterrupt:  # the transaction of the source being merged was rolled back
        err.print("interrupted: the source being merged was left out whole, the sources merged before it are kept; "
                  "run the same command again to finish (what is merged already is skipped as duplicates)")
        raise typer.Exit(130)
    rows = [count.__dict__ for count in result.counts]
    if format is Format.json:
        write_json({"into": str(result.into), "tables": rows,
                    "conflicts": [{"table": c.table, "key": dict(c.key), "source": c.source, "kept_from": c.kept_from,
                                   "columns": list(c.columns)} for c in result.conflicts],
                    "refused": [{"table": r.table, "key": dict(r.key), "source": r.source, "bytes": r.size}
                                for r in result.refused],
                    "reply_cap": result.reply_cap, "notes": result.notes})
    elif format is Format.csv:
        import pandas as pd

        from .render import write_frame

        write_frame(pd.DataFrame(rows, columns=MERGE_COLUMNS), format)
    else:
        render_table([row for row in rows if row["added"] or row["duplicates"] or row["conflicts"] or row["refused"]],
                     MERGE_COLUMNS,
                     f"merged into {result.into}", left=("source", "table"),
                     cell=lambda column, value: redact(value) if column == "source" else str(value))
    if format is not Format.json:
        for conflict in result.conflicts[:MAX_CONFLICT_LINES]:
            err.print(f"conflict: {conflict.describe()}", highlight=False, markup=False)
        if len(result.conflicts) > MAX_CONFLICT_LINES:
            err.print(f"… and {len(result.conflicts) - MAX_CONFLICT_LINES} more conflicts: --format json lists them "
                      "all", highlight=False)
    for refused in result.refused[:MAX_CONFLICT_LINES]:
        err.print(f"refused: {refused.describe(result.reply_cap)}", highlight=False, markup=False)
    if len(result.refused) > MAX_CONFLICT_LINES:
        err.print(f"… and {len(result.refused) - MAX_CONFLICT_LINES} more rows refused", highlight=False)
    for note in result.notes:
        err.print(f"note: {note}", highlight=False, markup=False)
    added = sum(c.added for c in result.counts)
    err.print(f"{added} rows added, {sum(c.duplicates for c in result.counts)} duplicates skipped, "
              f"{len(result.conflicts)} conflicts"
              + (" (the rows already there were kept)" if result.conflicts else "")
              + (f", {len(result.refused)} rows refused (a reply over {result.reply_cap:,} bytes; pass "
                 "--max-response-bytes to take larger ones)" if result.refused else ""), highlight=False)
    raise typer.Exit(result.exit_code)


BATCH_COLUMNS = ["batch_id", "kind", "name", "provider", "status", "provider_status", "done", "total", "run_id"]


@app.command()
def batches(
    config: Path | None = ConfigOption,
    forget: list[str] = typer.Option([], "--forget", help="Stop waiting for this pending batch (repeatable): the next "
                                     "run submits its work again. It is not cancelled at the provider."),
    format: Format = FormatOption,
) -> None:
    """The provider batches stored for this output folder (batch mode), and forgetting one that will never end."""
    import pandas as pd

    from .. import folder
    from .render import print_frame

    def forgotten(batch_id: str) -> None:
        err.print(f"forgot batch {batch_id}: the next run submits its work again (cancel it at the provider yourself "
                  "if it is still running there)", highlight=False)

    try:
        cfg = load(config)
        jobs = folder.provider_batches(cfg, forget, forgotten)
    except ArenaError as exc:
        fail(exc)
    frame = pd.DataFrame(jobs, columns=[*BATCH_COLUMNS, "created_at"])
    frame["created"] = frame.created_at.map(lambda t: time.strftime("%Y-%m-%d %H:%M", time.localtime(t)))
    print_frame(frame[[*BATCH_COLUMNS, "created"]], format, f"{cfg.name}: provider batches")
