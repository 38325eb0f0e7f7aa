"""Question sets: JSONL in the arena-hard form or a simple form; tables (CSV, Parquet, Hugging Face datasets) whose
columns are mapped to a question's fields (question_tables.py reads them); and the UTF-8 line reading that every
input file shares (a byte that is not UTF-8 names its file and line)."""

from __future__ import annotations

import codecs
import csv
import io
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .lines import MAX_LINE_BYTES, BadLine, Line, file_lines, open_regular, parse_json_text, shown, too_long_reason
from .question_tables import (
    dataset_rows,
    open_dataset,
    parquet_columns,
    parquet_rows,
    resolve_columns,
    turns_from_text,
)


@dataclass(frozen=True)
class Question:
    """One question. `prompt` is the first user turn; a conversation's later user turns are `follow_ups` (empty
    for a single-turn question, which is what nearly every set holds)."""

    question_id: str
    prompt: str
    category: str | None = None
    cluster: str | None = None
    reference: str | None = None
    follow_ups: tuple[str, ...] = ()
    subcategory: str | None = None

    @property
    def turns(self) -> tuple[str, ...]:
        """Every user turn, the first one included."""
        return (self.prompt, *self.follow_ups)

    @property
    def multi_turn(self) -> bool:
        return bool(self.follow_ups)


class QuestionSet:
    """A named, validated set of questions with unique ids.

    Built from records or a DataFrame, the questions are held in memory. Loaded from a file (`load`,
    `from_jsonl`, `from_csv`), they are not: the file is validated in one streaming pass and read again on
    each iteration, so a million-question set costs a few bytes per question only while it loads. A file
    that changes after loading is refused on the next iteration instead of silently evaluating other
    questions.
    """

    def __init__(self, name: str, questions: Iterable[Question] = ()):
        self.name = name
        self._questions: list[Question] | None = list(questions)
        self._source: _QuestionFile | None = None
        if not self._questions:
            raise ConfigError(f"{self.name}: the question set is empty; add at least one question")
        seen: dict[str, int] = {}
        for index, question in enumerate(self._questions):
            if question.question_id in seen:
                raise ConfigError(
                    f"{self.name}: duplicate question id {shown(question.question_id)} "
                    f"(entries {seen[question.question_id] + 1} and {index + 1}); ids must be unique"
                )
            seen[question.question_id] = index
        self._count = len(self._questions)

    @classmethod
    def _from_file(cls, path: Path, kind: str, columns: Mapping[str, str | None] | None = None) -> QuestionSet:
        self = cls.__new__(cls)
        self.name = str(path)
        self._questions = None
        self._source = _QuestionFile.validate(path, kind, columns or {})
        self._count = self._source.count
        return self

    @property
    def questions(self) -> list[Question]:
        """Every question as a list. For a file set this reads the whole file into a new list on each access:
        fine for a look, not for a pipeline (iterate instead)."""
        return list(self) if self._questions is None else self._questions

    @property
    def in_memory(self) -> bool:
        """False for a set loaded from a file, which is re-read on each iteration."""
        return self._questions is not None

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Question]:
        if self._questions is not None:
            return iter(self._questions)
        return self._source.read()

    def __repr__(self) -> str:
        where = "in memory" if self._questions is not None else "read from its file on each iteration"
        return f"QuestionSet({self.name!r}, {self._count} questions, {where})"

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], name: str = "records") -> QuestionSet:
        return cls(name, [question_from_record(r, f"{name}: record {i + 1}") for i, r in enumerate(records)])

    @classmethod
    def load(cls, path: str | Path, columns: Mapping[str, str | None] | None = None) -> QuestionSet:
        """A .jsonl (arena-hard or simple records), .csv or .parquet file, chosen by its suffix, or a folder holding
        a Hugging Face dataset saved to disk; `columns` maps fields to a table's columns (load_questions)."""
        return load_questions(path, columns)

    @classmethod
    def from_jsonl(cls, path: str | Path) -> QuestionSet:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: file not found")
        return cls._from_file(path, "jsonl")

    @classmethod
    def from_csv(cls, path: str | Path) -> QuestionSet:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: file not found")
        return cls._from_file(path, "csv")

    @classmethod
    def from_dataframe(cls, frame: Any, name: str = "dataframe") -> QuestionSet:
        """Rows with the record keys as columns (`id`/`question_id`, `prompt`, optional `category`, `reference`).
        Missing values (NaN, None) in optional columns are left out."""
        records = ({k: v for k, v in row.items() if not _missing(v)} for row in frame.to_dict("records"))
        return cls.from_records(records, name=name)

    def to_records(self) -> list[dict[str, Any]]:
        """Simple records ({id, prompt, category?, subcategory?, cluster?, reference?}), e.g. to write a JSONL file;
        a multi-turn question's prompt is the list of its user turns."""
        out = []
        for q in self:
            prompt: str | list[str] = list(q.turns) if q.multi_turn else q.prompt
            record = {"id": q.question_id, "prompt": prompt, "category": q.category, "subcategory": q.subcategory,
                      "cluster": q.cluster, "reference": q.reference}
            out.append({k: v for k, v in record.items() if v is not None})
        return out


# Up to this many questions, repeated id hashes are found with a set; above it numpy sorts the 8-byte hashes, which
# holds far less memory than a set of a million ints. A small set thus spares `validate` numpy's import (~0.15 s).
SET_CHECK_MAX = 100_000


def _repeated(hashes: array) -> set[int]:
    """The hashes that occur more than once in `hashes` (an array of 64-bit ints)."""
    if len(hashes) <= SET_CHECK_MAX:
        seen: set[int] = set()
        repeated: set[int] = set()
        for value in hashes:
            if value in seen:
                repeated.add(value)
            seen.add(value)
        return repeated
    import numpy as np  # here: loading a config (config.py reads questions.decode_utf8) needs no numpy

    ordered = np.frombuffer(hashes, dtype=np.int64).copy()
    ordered.sort()
    same = ordered[1:] == ordered[:-1]
    return set(ordered[1:][same].tolist()) if same.any() else set()


class _QuestionFile:
    """A validated question file: its count and a stamp (size, mtime, inode) to notice a change, nothing more.
    `kind` is jsonl, csv or parquet; `mapped` the columns named in the config (field → column; tables only)."""

    def __init__(self, path: Path, kind: str, count: int, stamp: tuple[int, int, int],
                 mapped: Mapping[str, str | None] | None = None):
        self.path, self.kind, self.count, self.stamp = path, kind, count, stamp
        self.mapped = dict(mapped or {})
        self.id_column: str | None = None  # a table's id column, once read: named with a duplicate id

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int, int]:
        try:
            st = path.stat()
        except OSError as exc:
            raise ConfigError(f"{path}: the question file can no longer be read ({exc.strerror or exc}); "
                              "it was loaded before and must stay in place while the set is in use") from None
        return st.st_size, st.st_mtime_ns, st.st_ino

    def _parse(self) -> Iterator[tuple[int, Question]]:
        """(line, or row of a Parquet file; question) for each question of the file."""
        if self.kind == "jsonl":
            return _read_jsonl_lines(self.path)
        if self.kind == "parquet":
            return self._parquet_questions()
        return _read_csv_lines(self.path, self.mapped, self)

    def _parquet_questions(self) -> Iterator[tuple[int, Question]]:
        columns = resolve_columns(parquet_columns(self.path), self.mapped, str(self.path), "a Parquet question set")
        self.id_column = columns["id"]
        for number, row in parquet_rows(self.path, list(columns.values())):
            yield number, question_from_row(row, columns, f"{self.path}: row {number}")

    @classmethod
    def validate(cls, path: Path, kind: str, mapped: Mapping[str, str | None] | None = None) -> _QuestionFile:
        """One streaming pass: every record is checked as it would be used, ids are kept only as 8-byte hashes."""
        stamp = cls._stamp(path)
        source = cls(path, kind, 0, stamp, mapped)
        hashes = array("q")
        for _, question in source._parse():
            hashes.append(hash(question.question_id))
        if not hashes:
            raise ConfigError(f"{path}: the question set is empty; add at least one question")
        source.count = len(hashes)
        colliding = _repeated(hashes)
        del hashes
        if colliding:
            source._report_duplicate(colliding)
        if cls._stamp(path) != stamp:
            raise ConfigError(f"{path}: the question file changed while it was being loaded; load it again")
        return source

    def _report_duplicate(self, colliding: set[int]) -> None:
        """Second, exact pass over the few ids whose hashes collide: name the first repeated id and both places."""
        seen: dict[str, tuple[int, int]] = {}
        for entry, (line, question) in enumerate(self._parse(), start=1):
            qid = question.question_id
            if hash(qid) not in colliding:
                continue
            if qid in seen:
                first_entry, first_line = seen[qid]
                places = "rows" if self.kind == "parquet" else "lines"
                column = f" (column {self.id_column!r})" if self.kind != "jsonl" and self.id_column else ""
                raise ConfigError(
                    f"{self.path}: duplicate question id {shown(qid)} (entries {first_entry} and {entry}) at "
                    f"{places} {first_line} and {line}{column}; ids must be unique"
                )
            seen[qid] = (entry, line)
        # Distinct ids that merely share a hash: nothing to report.

    def read(self) -> Iterator[Question]:
        if self._stamp(self.path) != self.stamp:
            raise self._changed()
        return self._stream()

    def _stream(self) -> Iterator[Question]:
        count = 0
        for _, question in self._parse():
            count += 1
            yield question
        if count != self.count or self._stamp(self.path) != self.stamp:
            raise self._changed()

    def _changed(self) -> ConfigError:
        return ConfigError(
            f"{self.path}: the question file changed since it was loaded ({self.count} questions then); "
            "questions are read from the file as they are needed, so load the set again (or restart the run) "
            "instead of changing its file while it is in use"
        )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def question_from_record(record: Mapping[str, Any], where: str) -> Question:
    """One question from a record in any of the forms we read:

    - arena-hard v0.1: `{question_id, turns: [{content}, …], category?, cluster?}`
    - arena-hard v2.0: `{uid, category, subcategory, prompt}`
    - MT-bench: `{question_id, category, turns: [str, …], reference?: [str, …]}`
    - simple: `{id, prompt, category?, reference?}`, where `prompt` may also be a list of user turns.

    Every turn is a user turn: a question never holds an assistant's turn (the contestants write those).
    """
    if not isinstance(record, Mapping):
        raise ConfigError(f"{where}: expected a JSON object, got {type(record).__name__}")
    qid = next((record[k] for k in ("question_id", "uid", "id") if record.get(k) is not None), None)
    if qid is None or str(qid).strip() == "":
        raise ConfigError(f"{where}: missing `question_id` (arena-hard v0.1, MT-bench), `uid` (arena-hard v2.0) or "
                          "`id` (simple form)")
    if "turns" in record:
        turns = _user_turns(record["turns"], "turns", where, qid)
    elif "prompt" in record:
        prompt = record["prompt"]
        turns = _user_turns(prompt, "prompt", where, qid) if isinstance(prompt, list) else [prompt]
    else:
        raise ConfigError(f"{where}: question {shown(qid)} has neither `prompt` nor `turns`")
    if not isinstance(turns[0], str) or not turns[0].strip():
        raise ConfigError(f"{where}: question {shown(qid)} has an empty prompt")

    def optional(key: str) -> str | None:
        value = record.get(key)
        return None if value is None or value == "" else str(value)

    reference = record.get("reference")
    if isinstance(reference, list):  # MT-bench: one reference answer per turn
        reference = _joined_references(reference, where, qid)
    return Question(
        question_id=str(qid),
        prompt=turns[0],
        category=optional("category"),
        cluster=optional("cluster"),
        reference=None if reference is None or reference == "" else str(reference),
        follow_ups=tuple(turns[1:]),
        subcategory=optional("subcategory"),
    )


def _user_turns(turns: Any, key: str, where: str, qid: Any) -> list[str]:
    """The user turns of `turns`: strings (MT-bench, simple form) or `{content}` objects (arena-hard), each one
    non-empty; a turn with a role other than `user` is refused."""
    if not isinstance(turns, list) or not turns:
        raise ConfigError(f"{where}: question {shown(qid)}: `{key}` must be a non-empty list of user turns (strings or "
                          "{\"content\": ...} objects)")
    out = []
    for number, turn in enumerate(turns, start=1):
        if isinstance(turn, Mapping):
            role = turn.get("role", "user")
            if role != "user":
                raise ConfigError(f"{where}: question {shown(qid)}: `{key}` turn {number} has role {shown(role)}; a question "
                                  "holds the user's turns only (the contestants write the assistant's)")
            if "content" not in turn:
                raise ConfigError(f"{where}: question {shown(qid)}: `{key}` turn {number} has no `content`")
            turn = turn["content"]
        if not isinstance(turn, str):
            raise ConfigError(f"{where}: question {shown(qid)}: `{key}` turn {number} is {type(turn).__name__}, not text")
        if not turn.strip():
            raise ConfigError(f"{where}: question {shown(qid)}: `{key}` turn {number} is empty")
        out.append(turn)
    return out


def question_from_row(row: Mapping[str, Any], columns: Mapping[str, str], where: str) -> Question:
    """One question from a table's row (CSV, Parquet, a dataset). `columns` maps a question's fields to the table's
    columns (question_tables.resolve_columns: `id`, then `prompt` or `turns`, and any of `category`,
    `subcategory`, `cluster`, `reference`); `where` names the file and its row or line. The checks are a JSONL
    record's, and an error names the column besides.

    `turns` holds a list of user turns (strings or `{content}` objects; in CSV, that list written as JSON); a
    `prompt` cell holding a list is read as turns too, as in the simple JSONL form. An empty optional cell (None,
    NaN, "") is left out."""
    id_column = columns["id"]
    raw_id = row.get(id_column)
    if _missing(raw_id) or str(raw_id).strip() == "":
        raise ConfigError(f"{where}: column {id_column!r} is empty; every question needs an id")
    qid = str(raw_id)
    if "turns" in columns:
        column = columns["turns"]
        value = row.get(column)
        if isinstance(value, str):
            value = turns_from_text(value, column, where, qid) if value.strip() else None
        if _missing(value):
            raise ConfigError(f"{where}: question {shown(qid)}: column {column!r} is empty; give the question's user "
                              "turns")
        turns = _user_turns(_cells_turns(value), column, where, qid)
    else:
        column = columns["prompt"]
        value = row.get(column)
        if isinstance(value, (list, Mapping)):
            turns = _user_turns(_cells_turns(value), column, where, qid)
        elif isinstance(value, str) and value.strip():
            turns = [value]
        elif _missing(value) or isinstance(value, str):
            raise ConfigError(f"{where}: question {shown(qid)} has an empty prompt (column {column!r})")
        else:
            raise ConfigError(f"{where}: question {shown(qid)}: column {column!r} holds {type(value).__name__}, "
                              "not text")

    def optional(field: str) -> Any:
        value = row.get(columns[field]) if field in columns else None
        return None if _missing(value) or value == "" else value

    reference = optional("reference")
    if isinstance(reference, list):  # MT-bench: one reference answer per turn
        reference = _joined_references(reference, where, qid)
    category, subcategory, cluster = (optional(field) for field in ("category", "subcategory", "cluster"))
    return Question(
        question_id=qid,
        prompt=turns[0],
        category=None if category is None else str(category),
        cluster=None if cluster is None else str(cluster),
        reference=None if reference is None else str(reference),
        follow_ups=tuple(turns[1:]),
        subcategory=None if subcategory is None else str(subcategory),
    )


def _cells_turns(value: Any) -> Any:
    """A table cell's turns as a JSONL record holds them. A list of `{content, role}` structs gives `role: None` to a
    turn that had no role (a JSONL turn would have no key): such keys are left out. A Hugging Face `Sequence` of
    such dicts is stored as a struct of lists (`{"content": [...], "role": [...]}`): it becomes a list of turns."""
    if isinstance(value, Mapping) and isinstance(value.get("content"), list):
        lists = {k: v for k, v in value.items() if isinstance(v, list)}
        value = [{k: v[i] for k, v in lists.items() if i < len(v)} for i in range(len(value["content"]))]
    if not isinstance(value, list):
        return value
    return [{k: v for k, v in turn.items() if v is not None} if isinstance(turn, Mapping) else turn for turn in value]


def _joined_references(references: list, where: str, qid: Any) -> str | None:
    """MT-bench's per-turn references as one text: a single one as it is, several labelled by turn."""
    texts = [r for r in references if isinstance(r, str) and r.strip()]
    if len(texts) != len(references):
        raise ConfigError(f"{where}: question {shown(qid)}: `reference` must be a list of non-empty strings")
    if not texts:
        return None
    if len(texts) == 1:
        return texts[0]
    return "\n\n".join(f"Turn {i}: {text}" for i, text in enumerate(texts, start=1))


def load_questions(path: str | Path, columns: Mapping[str, str | None] | None = None, *,
                   split: str | None = None) -> QuestionSet:
    """A question set read from `path`: a .jsonl, .csv or .parquet file, validated now and streamed from the file
    when iterated; or a folder holding a Hugging Face dataset saved to disk (`split` picks one of several), held in
    memory. `columns` maps a question's fields (id, prompt, turns, category, subcategory, cluster, reference) to a
    table's column names; unmapped fields are looked for under their own names (the id also as question_id, uid)."""
    path = Path(path)
    mapped = {field: column for field, column in (columns or {}).items() if column}
    if not path.exists():
        raise ConfigError(f"{path}: question file not found")
    if path.is_dir():
        return load_dataset_questions(path, split=split, columns=mapped)
    if split is not None:
        raise ConfigError(f"{path}: `split` applies to a Hugging Face dataset, not to a question file; remove it")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        if mapped:
            raise ConfigError(f"{path}: column names ({', '.join(mapped)}) apply to tables (.csv, .parquet, datasets); "
                              "a JSONL record uses the keys of its form (docs/design.md §5.2); remove them")
        return QuestionSet._from_file(path, "jsonl")
    if suffix == ".csv":
        return QuestionSet._from_file(path, "csv", mapped)
    if suffix in (".parquet", ".pq"):
        return QuestionSet._from_file(path, "parquet", mapped)
    raise ConfigError(f"{path}: unsupported question file type {suffix!r}; use .jsonl, .csv or .parquet, or a folder "
                      "holding a Hugging Face dataset saved with save_to_disk")


def load_dataset_questions(path: str | Path | None = None, *, name: str | None = None, split: str | None = None,
                           revision: str | None = None, columns: Mapping[str, str | None] | None = None) -> QuestionSet:
    """The questions of a Hugging Face dataset: saved to disk at `path` (`datasets.load_from_disk`), or `name` on
    the Hub at `revision` (`datasets.load_dataset`, which needs the network unless it is in the cache), one `split`
    of it. Read once and held in memory (a dataset is memory-mapped Arrow, not a file to stream again). Needs the
    optional `datasets` package (`pip install 'arena-eval[hf]'`)."""
    if (path is None) == (name is None):
        raise ConfigError("a Hugging Face question set needs either the folder it was saved to or its name on the Hub")
    label, dataset = open_dataset(None if path is None else Path(path), name=name, split=split, revision=revision)
    mapped = {field: column for field, column in (columns or {}).items() if column}
    resolved = resolve_columns(dataset.column_names, mapped, label, "the dataset")
    questions, rows = [], {}
    for number, row in dataset_rows(dataset, list(resolved.values())):
        question = question_from_row(row, resolved, f"{label}: row {number}")
        first = rows.setdefault(question.question_id, number)
        if first != number:
            raise ConfigError(f"{label}: duplicate question id {shown(question.question_id)} at rows {first} and "
                              f"{number} (column {resolved['id']!r}); ids must be unique")
        questions.append(question)
    if not questions:
        raise ConfigError(f"{label}: the question set is empty; add at least one question")
    return QuestionSet(label, questions)


def decode_utf8(data: bytes, path: str | Path, first_line: int = 1) -> str:
    """`data` as text; bytes that are not UTF-8 are an error naming the file, the line and the column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = first_line + before.count(b"\n")
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8")) + 1
        raise ConfigError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {column}); save the file as UTF-8"
        ) from None


def utf8_lines(path: Path, limit: int = MAX_LINE_BYTES) -> Iterator[tuple[int, str]]:
    """(line number, text without its line end) for each line of a UTF-8 file, decoded line by line so that a bad
    byte names its line. A byte-order mark at the start is dropped: spreadsheet programs and Windows editors write
    one. Lines are read with a bound (`limit` bytes) and only from a regular file (lines.file_lines)."""
    for line in file_lines(path, limit):
        if line.data is None:
            raise ConfigError(f"{path}:{line.number}: {too_long_reason(line, limit)}")
        yield line.number, _decoded(line, path)


def _decoded(line: Line, path: Path) -> str:
    raw = line.data
    if line.number == 1 and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    return decode_utf8(raw, path, line.number)


def read_jsonl(path: Path, limit: int = MAX_LINE_BYTES,
               too_long: Callable[[Line], None] | None = None) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line; a malformed line is an error naming file:line. A line
    over `limit` bytes is an error too, or, given `too_long`, handed to it (unread) and skipped."""
    if not path.exists() and not path.is_symlink():
        raise ConfigError(f"{path}: file not found")
    for line in file_lines(path, limit):
        if line.data is None:
            if too_long is None:
                raise ConfigError(f"{path}:{line.number}: {too_long_reason(line, limit)}")
            too_long(line)
            continue
        text = _decoded(line, path)
        if not text.strip():
            continue
        try:
            yield line.number, parse_json_text(text)
        except BadLine as exc:
            raise ConfigError(f"{path}:{line.number}: {exc.reason}; fix or remove the line") from None


def _read_jsonl_lines(path: Path) -> Iterator[tuple[int, Question]]:
    for number, record in read_jsonl(path):
        yield number, question_from_record(record, f"{path}:{number}")


def _read_csv_lines(path: Path, mapped: Mapping[str, str | None] | None = None,
                    source: _QuestionFile | None = None) -> Iterator[tuple[int, Question]]:
    try:
        yield from _csv_questions(path, mapped or {}, source)
    except csv.Error as exc:  # a field over the csv module's limit, a NUL byte
        raise ConfigError(f"{path}: not a readable CSV question file ({exc}); save it as CSV, or as JSONL") from None
    except UnicodeDecodeError:
        # The text reader decodes in blocks and cannot say where; a second, binary pass finds the line.
        for _ in utf8_lines(path):
            pass
        raise ConfigError(f"{path}: not valid UTF-8; save the file as UTF-8") from None


def _csv_questions(path: Path, mapped: Mapping[str, str | None],
                   source: _QuestionFile | None) -> Iterator[tuple[int, Question]]:
    # utf-8-sig: spreadsheet programs save CSV with a byte-order mark, which would otherwise become part of the
    # first column's name.
    with io.TextIOWrapper(open_regular(path, "question file"), encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = resolve_columns(reader.fieldnames or [], mapped, f"{path}:1", "a CSV question set")
        if source is not None:
            source.id_column = columns["id"]
        for record in reader:
            yield reader.line_num, question_from_row(record, columns, f"{path}:{reader.line_num}")
