"""Question sets: JSONL in the arena-hard form or a simple form, and CSV with the simple columns; and the UTF-8
line reading that every input file shares (a byte that is not UTF-8 names its file and line)."""

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
    def _from_file(cls, path: Path, kind: str) -> QuestionSet:
        self = cls.__new__(cls)
        self.name = str(path)
        self._questions = None
        self._source = _QuestionFile.validate(path, kind)
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
    def load(cls, path: str | Path) -> QuestionSet:
        """A .jsonl (arena-hard or simple records) or .csv file, chosen by its suffix."""
        return load_questions(path)

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
    """A validated question file: its count and a stamp (size, mtime, inode) to notice a change, nothing more."""

    def __init__(self, path: Path, kind: str, count: int, stamp: tuple[int, int, int]):
        self.path, self.kind, self.count, self.stamp = path, kind, count, stamp

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int, int]:
        try:
            st = path.stat()
        except OSError as exc:
            raise ConfigError(f"{path}: the question file can no longer be read ({exc.strerror or exc}); "
                              "it was loaded before and must stay in place while the set is in use") from None
        return st.st_size, st.st_mtime_ns, st.st_ino

    def _parse(self) -> Iterator[tuple[int, Question]]:
        return _read_jsonl_lines(self.path) if self.kind == "jsonl" else _read_csv_lines(self.path)

    @classmethod
    def validate(cls, path: Path, kind: str) -> _QuestionFile:
        """One streaming pass: every record is checked as it would be used, ids are kept only as 8-byte hashes."""
        stamp = cls._stamp(path)
        source = cls(path, kind, 0, stamp)
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
                raise ConfigError(
                    f"{self.path}: duplicate question id {shown(qid)} (entries {first_entry} and {entry}) at lines "
                    f"{first_line} and {line}; ids must be unique"
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


def load_questions(path: str | Path) -> QuestionSet:
    """A question set read from `path` (.jsonl or .csv), validated now and streamed from the file when iterated."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: question file not found")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return QuestionSet._from_file(path, "jsonl")
    if suffix == ".csv":
        return QuestionSet._from_file(path, "csv")
    raise ConfigError(f"{path}: unsupported question file type {suffix!r}; use .jsonl or .csv")


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


def _read_csv_lines(path: Path) -> Iterator[tuple[int, Question]]:
    try:
        yield from _csv_questions(path)
    except csv.Error as exc:  # a field over the csv module's limit, a NUL byte
        raise ConfigError(f"{path}: not a readable CSV question file ({exc}); save it as CSV, or as JSONL") from None
    except UnicodeDecodeError:
        # The text reader decodes in blocks and cannot say where; a second, binary pass finds the line.
        for _ in utf8_lines(path):
            pass
        raise ConfigError(f"{path}: not valid UTF-8; save the file as UTF-8") from None


def _csv_questions(path: Path) -> Iterator[tuple[int, Question]]:
    # utf-8-sig: spreadsheet programs save CSV with a byte-order mark, which would otherwise become part of the
    # first column's name.
    with io.TextIOWrapper(open_regular(path, "question file"), encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        if not {"id", "prompt"} <= columns:
            raise ConfigError(f"{path}:1: a CSV question set needs the columns id and prompt (optional: category, reference)")
        for record in reader:
            yield reader.line_num, question_from_record(record, f"{path}:{reader.line_num}")
