"""Question sets kept as tables (docs/design.md §5.2): which column holds which field of a question, Parquet files
read a batch of rows at a time, and Hugging Face datasets (saved to disk, or by name from the Hub).

Rows come out as plain Python values (`{column: value}`), numbered from 1; `questions.py` makes them questions.
pyarrow is imported when a Parquet file is read, `datasets` (the optional extra `hf`) when a dataset is: loading a
JSONL question set imports neither.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .lines import open_regular, shown

# A question's fields, in the order they are looked for, with the column names taken when none is mapped: a
# table in the simple form (id, prompt), arena-hard v2.0's (uid, prompt, category, subcategory), arena-hard
# v0.1's and MT-bench's (question_id, turns).
FIELDS = ("id", "prompt", "turns", "category", "subcategory", "cluster", "reference")
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("question_id", "uid", "id"),  # the order a JSONL record's id is looked for in
    "prompt": ("prompt",),
    "turns": ("turns",),
    "category": ("category",),
    "subcategory": ("subcategory",),
    "cluster": ("cluster",),
    "reference": ("reference",),
}
# Rows decoded at a time from a Parquet file or a dataset: a few MB of prompts held, whatever the set's size.
BATCH_ROWS = 1024
# The files `datasets.Dataset.save_to_disk` writes (a DatasetDict writes dataset_dict.json and a folder per split).
_DATASET_MARKERS = ("state.json", "dataset_dict.json")
HF_INSTALL = "pip install 'arena-eval[hf]'"


def resolve_columns(available: Sequence[str], mapped: Mapping[str, str | None], where: str, what: str) -> dict[str, str]:
    """field → column for a table with the columns `available`: the mapped ones (each must exist), else the
    default names present. An id and a prompt (`prompt` or `turns`) are required. With both `prompt` and `turns`
    present and neither mapped, `turns` is read (as in a JSONL record). Errors name the columns there are."""
    if mapped.get("turns") and mapped.get("prompt"):
        raise ConfigError(f"{where}: both `prompt` and `turns` are mapped; map `prompt` (one turn per question) or "
                          "`turns` (a list of user turns), not both")
    present = list(available)
    there = f"its columns are: {', '.join(present) if present else '(none)'}"
    absent = [f"{column!r} (for `{field}`)" for field, column in mapped.items() if column and column not in present]
    if absent:
        raise ConfigError(f"{where}: {what} has no column {', '.join(absent)}; {there}. Map each field to a column "
                          "that exists (`questions: {path: FILE, id: COLUMN, prompt: COLUMN, ...}`)")
    columns = {field: column for field, column in mapped.items() if column}
    for field in FIELDS:
        if field in columns:
            continue
        found = next((name for name in DEFAULT_COLUMNS[field] if name in present), None)
        if found is not None and found not in columns.values():
            columns[field] = found
    if "turns" in columns and "prompt" in columns:  # one source of the user's turns
        del columns["turns" if mapped.get("prompt") and not mapped.get("turns") else "prompt"]
    needed = [label for field, label in (("id", "an id (id, question_id or uid)"),
                                        ("prompt", "a prompt (prompt, or turns for a conversation)"))
              if field not in columns and not (field == "prompt" and "turns" in columns)]
    if needed:
        raise ConfigError(f"{where}: {what} needs the columns id and prompt: no column for {' nor '.join(needed)}; "
                          f"{there}. Rename them, or map them: `questions: {{path: FILE, id: COLUMN, prompt: COLUMN}}` "
                          "(optional: category, subcategory, cluster, reference, turns)")
    return columns


def turns_from_text(value: str, column: str, where: str, qid: str) -> Any:
    """A `turns` cell given as text (CSV has no lists): a JSON list of user turns."""
    try:
        return json.loads(value)
    except ValueError:
        raise ConfigError(f"{where}: question {shown(qid)}: column {column!r} holds text that is not a JSON list of "
                          f"user turns ({shown(value)}); write the turns as [\"first\", \"second\", ...]") from None


# --- Parquet ---------------------------------------------------------------------------------------------------

def _parquet_file(path: Path, handle: Any) -> Any:
    import pyarrow as pa  # here: only a Parquet question set needs it
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(handle)
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(f"{path}: not a Parquet file ({exc}); give a .parquet file written by pandas, pyarrow or "
                          "polars, or save the questions as .jsonl or .csv") from None


def parquet_columns(path: Path) -> list[str]:
    """The column names of the Parquet file at `path` (read from its footer only)."""
    with open_regular(path, "question file") as handle:
        return list(_parquet_file(path, handle).schema_arrow.names)


def parquet_rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number from 1, {column: value}) for each row of the Parquet file, reading only `columns`, a batch of
    rows at a time. A file that is not a regular file is refused before it is read (lines.open_regular)."""
    import pyarrow as pa

    with open_regular(path, "question file") as handle:
        table = _parquet_file(path, handle)
        number = 0
        try:
            for batch in table.iter_batches(batch_size=BATCH_ROWS, columns=list(dict.fromkeys(columns))):
                for row in batch.to_pylist():
                    number += 1
                    yield number, row
        except (pa.ArrowException, OSError) as exc:
            raise ConfigError(f"{path}: row {number + 1}: the Parquet file cannot be read ({exc}); write it again") from None


# --- Hugging Face datasets -------------------------------------------------------------------------------------

def is_saved_dataset(path: Path) -> bool:
    """Whether `path` is a folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return path.is_dir() and any((path / marker).is_file() for marker in _DATASET_MARKERS)


def _datasets(source: str) -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError(f"{source}: a Hugging Face dataset needs the `datasets` package, which is not installed: "
                          f"{HF_INSTALL} (or save the questions as .parquet, .csv or .jsonl)") from None
    return datasets


def open_dataset(path: Path | None = None, *, name: str | None = None, split: str | None = None,
                 revision: str | None = None) -> tuple[str, Any]:
    """(a label for messages, a `datasets.Dataset`): one split of a dataset saved to disk at `path`, or of the
    dataset `name` on the Hugging Face Hub (at `revision`). A dataset with several splits needs `split`."""
    if path is not None:
        label = str(path)
        if not is_saved_dataset(path):
            raise ConfigError(f"{path}: is a folder, not a dataset saved with `datasets`' save_to_disk (no "
                              "state.json or dataset_dict.json in it); give a question file or such a folder")
        datasets = _datasets(label)
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as exc:  # noqa: BLE001 - whatever the library raises on a damaged folder
            raise ConfigError(f"{path}: the saved dataset cannot be read ({type(exc).__name__}: {exc}); save it "
                              "again with save_to_disk") from None
    else:
        assert name is not None
        label = f"hf:{name}" + (f"@{revision}" if revision else "")
        datasets = _datasets(label)
        try:
            loaded = datasets.load_dataset(name, split=split, revision=revision)
        except Exception as exc:  # noqa: BLE001 - network, authentication and missing-dataset errors alike
            raise ConfigError(
                f"{label}: the Hugging Face dataset cannot be loaded ({type(exc).__name__}: {shown(str(exc), 300)}). "
                "A dataset given by name is fetched from the Hub, which needs the network (or a copy in the Hugging "
                "Face cache); for offline runs save it once with `datasets.load_dataset(NAME, split=SPLIT)"
                ".save_to_disk(FOLDER)` and give `questions: FOLDER`") from None
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if split is None and len(splits) == 1:
            split = splits[0]
        if split not in loaded:
            asked = f"has no split {split!r}" if split is not None else "has several splits"
            raise ConfigError(f"{label}: the dataset {asked}; its splits are: {', '.join(splits)}. Name one with "
                              "`questions: {path: FOLDER, split: NAME}` (or `{hf: NAME, split: NAME}`)")
        loaded = loaded[split]
        label += f"[{split}]"
    elif split is not None and path is not None:
        raise ConfigError(f"{label}: the saved dataset is a single split; remove `split: {split}`")
    return label, loaded


def dataset_rows(dataset: Any, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number from 1, {column: value}) for each row of a `datasets.Dataset`, reading only `columns`."""
    number = 0
    subset = dataset.select_columns(list(dict.fromkeys(columns))).with_format("arrow")
    for table in subset.iter(batch_size=BATCH_ROWS):
        for row in table.to_pylist():
            number += 1
            yield number, row
