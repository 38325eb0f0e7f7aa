"""inspect_ai eval logs in: their samples as a question set, and as a contestant's answers (docs/design.md §5.9).

Logs are read with inspect_ai's own reader (`inspect_ai.log.read_eval_log`, `.eval` and `.json` logs), imported
only when one is read: inspect-ai is an optional extra (`pip install 'arena-eval[inspect]'`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ContestantConfig
from .errors import ConfigError
from .interop import AnswerImporter
from .lines import open_regular, shown
from .providers.base import estimate_tokens
from .questions import Question, QuestionSet
from .reasoning import split_think

if TYPE_CHECKING:
    from .store import Store

INSTALL_HINT = "pip install 'arena-eval[inspect]'"

# inspect_ai's stop reasons in the words the providers record (an answer cut at the token limit is `length`).
FINISH_REASONS = {"max_tokens": "length", "model_length": "length"}
REFUSED = {"content_filter"}  # a refusal is no answer, as in collection (providers raise on it)


@dataclass(frozen=True)
class LoggedSample:
    """One sample of an inspect log, as arena-eval reads it. `user_turns` are the input's user messages (the
    question); `given_turns` the assistant messages between them in the input (a conversation's earlier answers,
    as the model was given them). `answer` is the output's text, None when the sample gives no answer (`skipped`
    says why: it failed, has no output, was refused)."""

    log: Path
    task: str
    model: str
    created: str  # the eval's start (ISO 8601): orders the logs of a folder
    sample_id: int | str
    epoch: int
    user_turns: tuple[str, ...]
    given_turns: tuple[str, ...]
    had_system: bool
    category: str | None
    subcategory: str | None
    reference: str | None
    answer: str | None = None
    skipped: str | None = None
    skip_kind: str | None = None  # failed, no_output, refused
    thinking: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    finish_reason: str | None = None
    latency_s: float | None = None
    created_at: float | None = None
    uuid: str | None = None

    @property
    def question_id(self) -> str:
        return str(self.sample_id)

    @property
    def where(self) -> str:
        return f"{self.log}: sample {shown(self.sample_id)} (epoch {self.epoch})"


@dataclass
class LoggedSamples:
    """What the logs under one path hold: their samples in order (logs by start time, then as each log lists them),
    a note for each sample that cannot be a question, and the logs read."""

    samples: list[LoggedSample]
    notes: list[str]
    logs: list[Path]

    def questions(self) -> list[LoggedSample]:
        """The first sample of each question id; a later one with another input is an error naming both."""
        first: dict[str, LoggedSample] = {}
        for sample in self.samples:
            seen = first.setdefault(sample.question_id, sample)
            if seen.user_turns != sample.user_turns:
                raise ConfigError(
                    f"{sample.where}: its id {shown(sample.question_id)} is also {seen.where}'s, with another input "
                    f"({_difference(sample.user_turns, seen.user_turns, 'the other')}); ids clash: a question id must "
                    "name one question. Give the logs of one task at a time")
        return list(first.values())


@dataclass
class InspectAnswers:
    """The answers chosen from the logs: one sample per question id (the first epoch with an answer, in the first
    log that has one), the model that wrote them, and what was left out."""

    chosen: list[LoggedSample]
    model: str
    notes: list[str]
    # failed, no_output, refused (samples); other_epochs, repeated (samples not taken); unanswered (questions)
    counts: dict[str, int] = field(default_factory=dict)
    epochs: dict[int, int] = field(default_factory=dict)  # epoch → questions whose answer was taken from it
    logs: list[Path] = field(default_factory=list)


def _first(notes: list[str]) -> str:
    return notes[0] + (f" (and {len(notes) - 1} more)" if len(notes) > 1 else "") if notes else "none"


def _difference(ours: tuple[str, ...], theirs: tuple[str, ...], other: str) -> str:
    """How two inputs' user turns differ, for messages: their number, or the first turn that differs."""
    if len(ours) != len(theirs):
        return f"{len(ours)} user turn(s), {other} {len(theirs)}"
    number, mine, its = next((n, a, b) for n, (a, b) in enumerate(zip(ours, theirs), start=1) if a != b)
    return f"user turn {number} starts {shown(mine[:40])}, {other}'s {shown(its[:40])}"


def _inspect_log_api() -> Any:
    try:
        from inspect_ai import log
    except ImportError as exc:
        raise ConfigError(f"reading inspect_ai logs needs inspect-ai ({exc}): {INSTALL_HINT}") from None
    return log


def log_files(path: Path) -> list[Path]:
    """The log `path` is, or the inspect logs in the folder `path` (inspect_ai's own listing: `.eval` files and
    `.json` files named as inspect names its logs, in subfolders too)."""
    path = Path(path)
    if path.is_dir():
        listed = _inspect_log_api().list_eval_logs(str(path), recursive=True)
        files = sorted(Path(_local_path(info.name)) for info in listed)
        if not files:
            raise ConfigError(f"{path}: holds no inspect_ai log (a .eval file, or a .json log named as inspect_ai names "
                              "its logs); give a log file or the folder of its logs")
        return files
    open_regular(path, "inspect log").close()  # missing, a device, a pipe: refused before inspect_ai reads it
    return [path]


def _local_path(name: str) -> str:
    """inspect_ai lists local logs as `file://` URIs."""
    if name.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(name).path)
    return name


def read_logs(path: str | Path) -> LoggedSamples:
    """Every sample of the inspect log(s) at `path`, logs ordered by start time. A file inspect_ai cannot read as a
    log, and a log without samples, are errors naming the file."""
    from inspect import signature

    api = _inspect_log_api()
    # The events (every model call's transcript) are left out where inspect_ai can (exclude_fields, .eval logs):
    # only the samples' input and output are read.
    options: dict[str, Any] = {"resolve_attachments": True}
    if "exclude_fields" in signature(api.read_eval_log).parameters:
        options["exclude_fields"] = {"events"}
    read: list[tuple[str, Path, Any]] = []
    for file in log_files(Path(path)):
        try:
            log = api.read_eval_log(str(file), **options)
        except Exception as exc:  # inspect_ai's reader raises whatever its parsers do (zip, JSON, pydantic)
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"{file}: not an inspect_ai eval log: inspect_ai cannot read it ({type(exc).__name__}: "
                              f"{reason[:200]}); give a .eval or .json log that inspect_ai wrote") from None
        if not log.samples:
            raise ConfigError(f"{file}: an inspect_ai log without samples (status {log.status}): "
                              + ("its evaluation ended before any sample was logged; run it again"
                                 if log.status != "success" else "nothing to read"))
        read.append((str(log.eval.created), file, log))
    read.sort(key=lambda item: (item[0], str(item[1])))
    samples: list[LoggedSample] = []
    notes: list[str] = []
    for created, file, log in read:
        for sample in log.samples:
            logged = _logged_sample(sample, file, log, created, notes)
            if logged is not None:
                samples.append(logged)
    if not samples:
        raise ConfigError(f"{path}: no sample's input can be a question: {_first(notes)}")
    return LoggedSamples(samples, notes, [file for _, file, _ in read])


def _logged_sample(sample: Any, file: Path, log: Any, created: str, notes: list[str]) -> LoggedSample | None:
    where = f"{file}: sample {shown(sample.id)} (epoch {sample.epoch})"
    turns = _input_turns(sample.input, where, notes)
    if turns is None:
        return None
    user_turns, given_turns, had_system = turns
    metadata = sample.metadata if isinstance(sample.metadata, dict) else {}
    category = metadata.get("category")
    subcategory = metadata.get("subcategory")
    logged = LoggedSample(
        log=file, task=str(log.eval.task), model=str(log.eval.model), created=created, sample_id=sample.id,
        epoch=int(sample.epoch), user_turns=user_turns, given_turns=given_turns, had_system=had_system,
        category=category if isinstance(category, str) and category else str(log.eval.task),
        subcategory=subcategory if isinstance(subcategory, str) and subcategory else None,
        reference=_reference(sample.target), uuid=sample.uuid,
        created_at=_timestamp(sample.completed_at) or _timestamp(created),
    )
    return _with_output(logged, sample)


def _input_turns(value: Any, where: str, notes: list[str]) -> tuple[tuple[str, ...], tuple[str, ...], bool] | None:
    """(user turns, the assistant turns between them, whether a system message led) of a sample's input, or None
    (with a note) when the input cannot be a question: a conversation is user and assistant messages in turn,
    starting and ending with the user's, all of them text."""
    if isinstance(value, str):
        if not value.strip():
            notes.append(f"{where}: an empty input; not a question")
            return None
        return (value,), (), False
    messages = list(value)
    start = 0
    while start < len(messages) and messages[start].role == "system":
        start += 1
    user_turns: list[str] = []
    given: list[str] = []
    for number, message in enumerate(messages[start:], start=start + 1):
        expected = "user" if (number - start) % 2 == 1 else "assistant"
        if message.role != expected:
            notes.append(f"{where}: input message {number} is the {message.role}'s where a conversation has the "
                         f"{expected}'s turn (a question is user turns, with the assistant's between them); "
                         "not a question")
            return None
        if not isinstance(message.content, str) and any(part.type not in ("text", "reasoning")
                                                        for part in message.content):
            kinds = sorted({part.type for part in message.content} - {"text", "reasoning"})
            notes.append(f"{where}: input message {number} holds {', '.join(kinds)} content; a question is text only; "
                         "not a question")
            return None
        text = message.text
        if expected == "user" and not text.strip():
            notes.append(f"{where}: input message {number} (the user's) is empty; not a question")
            return None
        (user_turns if expected == "user" else given).append(text)
    if not user_turns or len(given) != len(user_turns) - 1:
        notes.append(f"{where}: its input ends with the assistant's message or holds no user message; not a question")
        return None
    return tuple(user_turns), tuple(given), start > 0


def _reference(target: Any) -> str | None:
    """The sample's target as a reference answer: one text, or several one per line."""
    texts = [target] if isinstance(target, str) else [t for t in target or () if isinstance(t, str)]
    texts = [t for t in texts if t.strip()]
    return "\n".join(texts) if texts else None


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _with_output(logged: LoggedSample, sample: Any) -> LoggedSample:
    """The sample with its answer read from its output, or with why it has none."""
    if sample.error is not None:
        reason = (str(sample.error.message).strip().splitlines() or ["an error"])[0]
        return replace(logged, skipped=f"failed in inspect_ai ({reason[:200]})", skip_kind="failed")
    output = sample.output
    choice = output.choices[0] if output is not None and output.choices else None
    # The completion is the final output as inspect_ai's scorers read it (a solver may have set it after generating).
    completion = (output.completion if output is not None else "") or (choice.message.text if choice else "")
    if choice is None and not completion:
        return replace(logged, skipped="has no output", skip_kind="no_output")
    stop_reason = choice.stop_reason if choice else None
    if stop_reason in REFUSED:
        return replace(logged, skipped=f"was refused (stop reason {stop_reason})", skip_kind="refused")
    if getattr(output, "error", None):
        return replace(logged, skipped=f"has an error in its output ({str(output.error)[:200]})", skip_kind="failed")
    content = choice.message.content if choice else ""
    thinking = [] if isinstance(content, str) else [part.reasoning for part in content
                                                    if part.type == "reasoning" and not part.redacted and part.reasoning]
    text, think = split_think(completion, leading_only=True)  # a model served with its thinking inline
    if think:
        thinking.append(think)
    if not text.strip():
        return replace(logged, skipped="has no text in its output", skip_kind="no_output")
    usage = output.usage
    return replace(
        logged, answer=text, thinking="\n\n".join(thinking) if thinking else None,
        input_tokens=usage.input_tokens if usage else None, output_tokens=usage.output_tokens if usage else None,
        reasoning_tokens=usage.reasoning_tokens if usage else None,
        finish_reason=FINISH_REASONS.get(stop_reason, stop_reason) if stop_reason else None, latency_s=output.time)


# --- a question set from the logs -----------------------------------------------------------------------------

def question_records(path: str | Path) -> tuple[list[dict[str, Any]], LoggedSamples]:
    """The question records (the simple form of docs/design.md §5.2) of the logs' samples: one per sample id (a
    sample's epochs and the same task's other logs hold the same questions), in the logs' order. The id is the
    sample's, the prompt its user turn(s), the category the sample's `category` metadata or else the task's name,
    the reference its target."""
    logged = read_logs(path)
    records = []
    for sample in logged.questions():
        prompt: str | list[str] = sample.user_turns[0] if len(sample.user_turns) == 1 else list(sample.user_turns)
        record = {"id": sample.question_id, "prompt": prompt, "category": sample.category,
                  "subcategory": sample.subcategory, "reference": sample.reference}
        records.append({k: v for k, v in record.items() if v is not None})
    return records, logged


def system_note(samples: list[LoggedSample]) -> str | None:
    """A note when some inputs began with a system message, which a question does not hold."""
    with_system = sum(s.had_system for s in samples)
    if not with_system:
        return None
    return (f"{with_system} of the samples' inputs begin with a system message: it is not part of the question (a "
            "contestant's system_prompt is)")


# --- a contestant's answers from the logs ----------------------------------------------------------------------

def read_answers(path: str | Path) -> InspectAnswers:
    """The answers in the log(s) at `path`: for each question id, the sample of the first log (by start time) and
    lowest epoch that has an answer. Samples that failed, have no output or were refused are named in `notes` and
    not taken; a question none of whose samples has an answer is left out (counted: `unanswered`). The logs'
    answers must be one model's."""
    logged = read_logs(path)
    logged.questions()  # ids that clash are an error before anything is chosen
    counts = {"failed": 0, "no_output": 0, "refused": 0, "other_epochs": 0, "repeated": 0, "unanswered": 0}
    answered = [s for s in logged.samples if s.answer is not None]
    models = sorted({s.model for s in answered})
    if len(models) > 1:
        by_model = "; ".join(f"{m}: {', '.join(sorted({str(s.log) for s in answered if s.model == m}))}"
                             for m in models)
        raise ConfigError(f"{path}: holds the answers of {len(models)} models ({by_model}); a contestant's answers are "
                          "one model's: import each model's logs as their own contestant")
    chosen: dict[str, LoggedSample] = {}
    for sample in answered:
        taken = chosen.setdefault(sample.question_id, sample)
        if taken is not sample:
            counts["other_epochs" if taken.log == sample.log else "repeated"] += 1
    notes = list(logged.notes)
    for sample in logged.samples:
        if sample.answer is not None:
            continue
        counts[sample.skip_kind or "no_output"] += 1
        instead = chosen.get(sample.question_id)
        notes.append(f"{sample.where}: {sample.skipped}; " + (
            "not imported" if instead is None else f"epoch {instead.epoch} is taken instead" if instead.log == sample.log
            else f"the answer of {instead.where} is taken instead"))
    counts["unanswered"] = len({s.question_id for s in logged.samples} - set(chosen))
    if not chosen:
        why = ", ".join(f"{n} {what}" for what, n in (("failed", counts["failed"]), ("without output", counts["no_output"]),
                                                        ("refused", counts["refused"])) if n)
        raise ConfigError(f"{path}: its samples have no output to import ({why}): {_first(notes)}. Import a log whose "
                          "evaluation answered its samples")
    if counts["repeated"]:
        notes.append(f"{counts['repeated']} samples repeat questions of an earlier log; the earlier log's answers are "
                     "taken")
    epochs: dict[int, int] = {}
    for sample in chosen.values():
        epochs[sample.epoch] = epochs.get(sample.epoch, 0) + 1
    return InspectAnswers(list(chosen.values()), models[0], notes, counts, dict(sorted(epochs.items())), logged.logs)


def epochs_note(read: InspectAnswers) -> str | None:
    """Which epoch the answers were taken from, when the logs hold several."""
    if not read.counts.get("other_epochs") and set(read.epochs) <= {1}:
        return None
    taken = ", ".join(f"epoch {e} for {n} question{'s' if n != 1 else ''}" for e, n in read.epochs.items())
    return (f"the logs hold several epochs; each question's answer is its lowest epoch with an output ({taken}), "
            f"{read.counts.get('other_epochs', 0)} samples of later epochs left out")


def store_answers(read: InspectAnswers, contestant: ContestantConfig, questions: QuestionSet, store: Store,
                  augmenter, set_id: str | None = None, notes: list[str] | None = None) -> dict[str, int]:
    """Store the chosen samples' answers as `contestant`'s (interop.AnswerImporter: keyed by the prompt it would be
    sent now, made current, held to its max_response_bytes). A sample whose id is a question of the set must have
    that question's user turns (else the log is of another version of the set: an error); a sample of a question not
    in the set is counted (`unknown_question`) and skipped. Returns the counts."""
    matched = match_questions(read, questions)  # every clash is found before the first answer is stored
    importer = AnswerImporter(contestant, store, augmenter, set_id, notes)
    counts = importer.counts
    counts["unknown_question"] = len(read.chosen) - len(matched)
    for sample, question in matched:
        texts = [*sample.given_turns, sample.answer or ""]
        given: list[None] = [None] * len(sample.given_turns)  # the input's turns: no tokens or thinking of the model's
        # A log without usage (a provider that reports none): ~4 characters a token, flagged, as collection does.
        output_tokens = sample.output_tokens if sample.output_tokens is not None else estimate_tokens(texts[-1])
        tokens: list[int | None] = [*given, output_tokens]
        thinking: list[str | None] = [*given, sample.thinking]
        importer.take(question, texts, sample.where, sample.where, tokens=tokens, thinking=thinking,
                      output_tokens=output_tokens, input_tokens=sample.input_tokens,
                      tokens_estimated=sample.output_tokens is None, reasoning_tokens=sample.reasoning_tokens,
                      finish_reason=sample.finish_reason or "imported", created_at=sample.created_at,
                      latency_s=sample.latency_s, source_id=sample.uuid)
    return counts


def match_questions(read: InspectAnswers, questions: QuestionSet) -> list[tuple[LoggedSample, Question]]:
    """Each chosen sample with its question of the set (a sample of no question left out); a sample whose id is a
    question of the set with other user turns is an error."""
    by_id = {q.question_id: q for q in questions}
    matched = [(sample, by_id[sample.question_id]) for sample in read.chosen if sample.question_id in by_id]
    for sample, question in matched:
        _check_turns(sample, question)
    return matched


def _check_turns(sample: LoggedSample, question: Question) -> None:
    if sample.user_turns == question.turns:
        return
    raise ConfigError(f"{sample.where}: its id is question {shown(question.question_id)} of the set, but its input "
                      f"differs ({_difference(sample.user_turns, question.turns, 'the question')}); ids clash: the log "
                      f"belongs to another question set. Make the set from the log (`arena-eval questions --from "
                      f"inspect {sample.log} --out FILE.jsonl`)")


def write_questions(log: str | Path, out: Path, force: bool = False) -> tuple[int, LoggedSamples]:
    """Write the question set of the log(s) at `log` (`question_records`) to `out`, a JSONL file, whole or not at
    all; checked as a run reads it first. Returns how many questions were written and what was read."""
    out = Path(out)
    if out.suffix.lower() not in (".jsonl", ".json"):
        raise ConfigError(f"--out {out}: a question file is JSONL; name it FILE.jsonl")
    if out.exists() and not force:
        raise ConfigError(f"--out {out} exists; pass --force to overwrite it")
    records, logged = question_records(log)
    if any(out.resolve() == file.resolve() for file in logged.logs):
        raise ConfigError(f"--out {out} is one of the logs read; write the question set elsewhere")
    QuestionSet.from_records(records, name=str(log))  # what a run will refuse is refused now
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    partial.replace(out)
    return len(records), logged
