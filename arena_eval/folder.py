"""An output folder's stored work, read and changed outside a run: scores over time, the provider batches, the
arena-hard export and import, imported energy logs. The command line calls these (arena_eval/cli/); none sends a
request, and each opens the folder's store itself, for as long as it needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ArenaError
from .store import RunLock, Store

if TYPE_CHECKING:
    import pandas as pd

    from .config import RunConfig
    from .inspect_logs import InspectAnswers
    from .interop import ArenaHardVersion, Exported
    from .store import BatchJob


def stored_db(output_dir: Path, hint: str = "run `arena-eval run` with this config first") -> Path:
    """The folder's arena.db; an error saying what to do when there is none yet."""
    db = Path(output_dir) / "arena.db"
    if not db.exists():
        raise ArenaError(f"{db}: no results yet; {hint}")
    return db


def history(config: RunConfig, contestant: str | None = None) -> pd.DataFrame:
    """Scores over time: one row per scored run and contestant, oldest first (history.history_frame)."""
    from .history import history_frame

    db = stored_db(config.output_dir)
    with Store(db) as store:
        frame = history_frame(store, contestant)
    if contestant is not None and frame.empty:
        raise ArenaError(f"no stored scores for contestant {contestant!r} in {db}")
    return frame


def provider_batches(config: RunConfig, forget: Iterable[str] = (),
                     forgotten: Callable[[str], None] = lambda batch_id: None) -> list[BatchJob]:
    """The stored provider batches (batch mode), oldest first, after forgetting the pending ones in `forget`
    (the next run submits their work again; nothing is cancelled at the provider). `forgotten(batch_id)` is
    called as each is forgotten; an id that names no pending batch is an error listing the pending ones."""
    with Store(stored_db(config.output_dir)) as store:
        for batch_id in forget:
            if not store.forget_batch(batch_id):
                pending = ", ".join(j["batch_id"] for j in store.batch_jobs(pending_only=True)) or "none"
                raise ArenaError(f"--forget {batch_id}: no pending batch has that id; pending: {pending}")
            forgotten(batch_id)
        return store.batch_jobs()


def export_arena_hard(config: RunConfig, to: Path | None = None, version: ArenaHardVersion = "v0.1") -> Exported:
    """Write the stored answers, judgments and battles in arena-hard's layout `version` to `to` (default:
    <output>/arena-hard); interop.export_arena_hard says what is written."""
    from .interop import export_arena_hard as export
    from .pipeline import Arena

    db = stored_db(config.output_dir)  # before the question set is read: no results is the likelier mistake
    arena = Arena(config)
    with Store(db) as store:
        return export(arena.scope, store, arena.answer_sets(store), to or config.output_dir / "arena-hard", version)


def import_answers(config: RunConfig, answers_file: Path, contestant: str,
                   notes: list[str] | None = None) -> dict[str, int]:
    """Take an arena-hard answer file as `contestant`'s answers (interop.import_answers), into the answer set in
    use, under the folder's run lock, once an existing store is checked (a damaged file is left as it is); the
    questions and the contestant are stored first, as a run stores them. Returns the counts: imported,
    already_stored, unknown_question, too_large (over max_response_bytes) and repeated (a question answered
    earlier in the file); a note naming file:line for each skipped line is appended to `notes`."""
    from .interop import import_answers as read_into
    from .pipeline import Arena

    if contestant not in {c.name for c in config.contestants}:  # before the question set is read
        raise ArenaError(f"contestant {contestant!r} is not in the config; "
                         f"known: {', '.join(c.name for c in config.contestants)}")
    arena = Arena(config)
    target = next(c for c in arena.contestants if c.name == contestant)
    with RunLock(config.output_dir), Store(config.output_dir / "arena.db", verify=True) as store:
        set_id = arena.answer_sets(store).set_id(contestant)  # the set in use, if its answers were refreshed
        store.save_questions(arena.questions)
        store.save_contestant(target.name, set_id, target.provider, target.model, target.model_dump(mode="json"))
        return read_into(answers_file, target, arena.questions, store, arena.augmenter(store), set_id, notes)


def import_inspect_answers(config: RunConfig, log: Path, contestant: str,
                           notes: list[str] | None = None) -> tuple[InspectAnswers, dict[str, int]]:
    """Take the answers in an inspect_ai log (or a folder of one model's logs) as `contestant`'s
    (inspect_logs.read_answers chooses them, inspect_logs.store_answers stores them), into the answer set in use,
    under the folder's run lock, as `import_answers` does. The log is read first: a log that cannot be imported
    touches nothing. Returns what was read and the counts (imported, already_stored, unknown_question, too_large)."""
    from .inspect_logs import match_questions, read_answers, store_answers
    from .pipeline import Arena

    if contestant not in {c.name for c in config.contestants}:  # before the question set and the log are read
        raise ArenaError(f"contestant {contestant!r} is not in the config; "
                         f"known: {', '.join(c.name for c in config.contestants)}")
    read = read_answers(log)
    notes = [] if notes is None else notes
    notes.extend(read.notes)
    arena = Arena(config)
    target = next(c for c in arena.contestants if c.name == contestant)
    match_questions(read, arena.questions)  # ids that clash with the set's: before the store is opened
    if target.model not in (read.model, read.model.split("/", 1)[-1]):  # inspect names models provider/model
        notes.append(f"the log's model is {read.model!r}, contestant {contestant}'s config names {target.model!r}; the "
                     f"answers are stored as {contestant}'s all the same")
    with RunLock(config.output_dir), Store(config.output_dir / "arena.db", verify=True) as store:
        set_id = arena.answer_sets(store).set_id(contestant)
        store.save_questions(arena.questions)
        store.save_contestant(target.name, set_id, target.provider, target.model, target.model_dump(mode="json"))
        counts = store_answers(read, target, arena.questions, store, arena.augmenter(store), set_id, notes)
    return read, counts


def import_codecarbon(file: Path, pattern: str, column: str, output: Path) -> tuple[pd.DataFrame, int, int]:
    """Store the runs of a CodeCarbon emissions.csv as energy for contestants, under the folder's run lock (a
    file imported again replaces its earlier import). Returns the runs read, how many were stored, how many
    of an earlier import of the file were replaced."""
    from .energy.codecarbon_import import read_codecarbon_csv

    runs = read_codecarbon_csv(file, pattern, column)
    with RunLock(output), Store(output / "arena.db") as store:
        stored, replaced = store.save_energy_imports(runs, file)
    return runs, stored, replaced


def imported_energy(output: Path) -> pd.DataFrame:
    """The imported CodeCarbon runs, one row per contestant and tags: means per run and their spread."""
    from .energy.codecarbon_import import summarise_runs

    db = stored_db(output, "import a CodeCarbon file with `arena-eval energy import-codecarbon`")
    with Store(db) as store:
        return summarise_runs(store.energy_imports())
