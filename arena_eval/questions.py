"""Question sets: JSONL in the arena-hard form or a simple form, and CSV with the simple columns."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Question:
    question_id: str
    prompt: str
    category: str | None = None
    cluster: str | None = None
    reference: str | None = None


@dataclass
class QuestionSet:
    name: str
    questions: list[Question] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.questions:
            raise ConfigError(f"{self.name}: the question set is empty; add at least one question")
        seen: dict[str, int] = {}
        for index, question in enumerate(self.questions):
            if question.question_id in seen:
                raise ConfigError(
                    f"{self.name}: duplicate question id {question.question_id!r} "
                    f"(entries {seen[question.question_id] + 1} and {index + 1}); ids must be unique"
                )
            seen[question.question_id] = index

    def __len__(self) -> int:
        return len(self.questions)

    def __iter__(self) -> Iterator[Question]:
        return iter(self.questions)

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], name: str = "records") -> "QuestionSet":
        return cls(name, [question_from_record(r, f"{name}: record {i + 1}") for i, r in enumerate(records)])

    @classmethod
    def load(cls, path: str | Path) -> "QuestionSet":
        """A .jsonl (arena-hard or simple records) or .csv file, chosen by its suffix."""
        return load_questions(path)

    @classmethod
    def from_jsonl(cls, path: str | Path) -> "QuestionSet":
        path = Path(path)
        return cls(str(path), list(_read_jsonl(path)))

    @classmethod
    def from_csv(cls, path: str | Path) -> "QuestionSet":
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: file not found")
        return cls(str(path), list(_read_csv(path)))

    @classmethod
    def from_dataframe(cls, frame: Any, name: str = "dataframe") -> "QuestionSet":
        """Rows with the record keys as columns (`id`/`question_id`, `prompt`, optional `category`, `reference`).
        Missing values (NaN, None) in optional columns are left out."""
        records = ({k: v for k, v in row.items() if not _missing(v)} for row in frame.to_dict("records"))
        return cls.from_records(records, name=name)

    def to_records(self) -> list[dict[str, Any]]:
        """Simple records ({id, prompt, category?, cluster?, reference?}), e.g. to write a JSONL file."""
        out = []
        for q in self.questions:
            record = {"id": q.question_id, "prompt": q.prompt, "category": q.category, "cluster": q.cluster,
                      "reference": q.reference}
            out.append({k: v for k, v in record.items() if v is not None})
        return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def question_from_record(record: Mapping[str, Any], where: str) -> Question:
    """Accept `{question_id, turns:[{content}], category?, cluster?}` or `{id, prompt, category?, reference?}`."""
    if not isinstance(record, Mapping):
        raise ConfigError(f"{where}: expected a JSON object, got {type(record).__name__}")
    qid = record.get("question_id", record.get("id"))
    if qid is None or str(qid).strip() == "":
        raise ConfigError(f"{where}: missing `question_id` (arena-hard form) or `id` (simple form)")
    if "turns" in record:
        turns = record["turns"]
        if not isinstance(turns, list) or not turns or not all(isinstance(t, Mapping) and "content" in t for t in turns):
            raise ConfigError(f"{where}: `turns` must be a non-empty list of {{\"content\": ...}} objects")
        if len(turns) > 1:
            raise ConfigError(
                f"{where}: question {qid!r} has {len(turns)} turns; multi-turn questions are not supported yet — "
                "keep one turn per question"
            )
        prompt = turns[0]["content"]
    elif "prompt" in record:
        prompt = record["prompt"]
    else:
        raise ConfigError(f"{where}: question {qid!r} has neither `prompt` nor `turns`")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError(f"{where}: question {qid!r} has an empty prompt")

    def optional(key: str) -> str | None:
        value = record.get(key)
        return None if value is None or value == "" else str(value)

    return Question(
        question_id=str(qid),
        prompt=prompt,
        category=optional("category"),
        cluster=optional("cluster"),
        reference=optional("reference"),
    )


def load_questions(path: str | Path) -> QuestionSet:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: question file not found")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        questions = list(_read_jsonl(path))
    elif suffix == ".csv":
        questions = list(_read_csv(path))
    else:
        raise ConfigError(f"{path}: unsupported question file type {suffix!r}; use .jsonl or .csv")
    return QuestionSet(str(path), questions)


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line; a malformed line is an error naming file:line."""
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{number}: malformed JSON ({exc.msg} at column {exc.colno}); fix or remove the line") from None


def _read_jsonl(path: Path) -> Iterator[Question]:
    for number, record in read_jsonl(path):
        yield question_from_record(record, f"{path}:{number}")


def _read_csv(path: Path) -> Iterator[Question]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        if not {"id", "prompt"} <= columns:
            raise ConfigError(f"{path}:1: a CSV question set needs the columns id and prompt (optional: category, reference)")
        for record in reader:
            yield question_from_record(record, f"{path}:{reader.line_num}")
