"""Read and write the arena-hard-auto formats: answers, judgments and battles (docs/design.md §5.8)."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import pandas as pd

from .answer_sets import AnswerSets, question_digest
from .collect import answer_id, prompt_hash
from .config import ContestantConfig, VerdictWeights
from .context import RunScope
from .errors import ArenaError, ConfigError
from .judge import battle_outcome
from .lines import MAX_LINE_BYTES, Line, reply_line_bytes, shown, too_long_reason
from .providers.base import estimate_tokens, reply_byte_cap
from .questions import Question, QuestionSet, read_jsonl
from .reasoning import split_think
from .recorders import AnswerRecorder
from .records import Answer, Judgment, Message, answer_turns
from .store import Store
from .tally import current_games
from .verdict import LABELS, canonical_label

_WINNERS = {"model_a": "model_a", "model_b": "model_b", "tie": "tie", "tie (bothbad)": "tie"}


def _jsonl(path: Path, limit: int = MAX_LINE_BYTES,
           too_long: Callable[[Line], None] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, record in read_jsonl(path, limit, too_long):
        if not isinstance(record, dict):
            raise ConfigError(f"{path}:{number}: expected a JSON object")
        yield number, record


def read_battles(path: str | Path) -> pd.DataFrame:
    """An arena-hard battles file (one row per weighted battle) as a battles frame with weight 1 a row."""
    path = Path(path)
    rows = []
    for number, record in _jsonl(path):
        missing = [k for k in ("model_a", "model_b", "winner") if k not in record]
        if missing:
            raise ConfigError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
        winner = _WINNERS.get(str(record["winner"]))
        if winner is None:
            raise ConfigError(
                f"{path}:{number}: winner {shown(record['winner'])} is not one of model_a, model_b, tie, 'tie (bothbad)'"
            )
        rows.append((str(record.get("question_id", number)), str(record["model_a"]), str(record["model_b"]), winner, 1.0))
    if not rows:
        raise ConfigError(f"{path}: holds no battles")
    return pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner", "weight"])


# A game's `score` as arena-hard writes it: the label without its brackets, `<` and `B=A` spellings included.
_SCORE_LABEL = re.compile(r"([ab])(>>|>|=|<<|<)([ab])")


def read_judgments(folder: str | Path, judges: Sequence[str] | None = None, *, baseline: str,
                   weights: VerdictWeights | None = None) -> pd.DataFrame:
    """arena-hard-auto judgment files (`model_judgment/<judge>/<model>.jsonl`) as a battles frame: `question_id`,
    `model_a` (the baseline), `model_b` (the file's contestant), `winner`, `weight` and `judge` (the subfolder).

    `folder` is the `model_judgment` folder or the folder holding it; `judges` picks subfolders (default: all).
    Game 1 put the baseline in position A, game 2 swapped, as arena-hard's gen_judgment does. A strong label
    weighs `weights.strong` (3), like arena-hard's three expanded rows: ratings only see summed weights, so one
    row of weight 3 rates the same as three of weight 1 (docs/design.md §5.8). A game without a score (unparsed,
    or `null` where v2.0's judge call failed) is left out on its own. The question id is v0.1's `question_id`
    or v2.0's `uid`; a v2.0 record's `baseline` field, where present, must name `baseline`.
    """
    if isinstance(judges, str):
        raise TypeError("judges takes a list of judge names, not one string")
    weights = weights or VerdictWeights()
    root = _judgment_root(Path(folder))
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not available:
        hint = "; it holds <model>.jsonl files itself: give the folder above it" if any(root.glob("*.jsonl")) else ""
        raise ConfigError(f"{root}: no judge subfolders (expected model_judgment/<judge>/<model>.jsonl){hint}")
    chosen = list(dict.fromkeys(judges)) if judges else available
    unknown = [j for j in chosen if j not in available]
    if unknown:
        raise ConfigError(f"{root}: no judge folder {', '.join(map(repr, unknown))}; available: {', '.join(available)}")
    rows: list[tuple] = []
    for judge in chosen:
        files = sorted((root / judge).glob("*.jsonl"))
        if not files:
            raise ConfigError(f"{root / judge}: holds no <model>.jsonl judgment files")
        seen: dict[tuple[str, str], str] = {}
        for path in files:
            for number, record in _jsonl(path):
                where = f"{path}:{number}"
                qid, model, games = _judgment_record(record, where, baseline)
                if (model, qid) in seen:
                    raise ConfigError(f"{where}: {model} on question {qid} was already judged at {seen[(model, qid)]}; "
                                      "remove one of the two lines")
                seen[(model, qid)] = where
                for game, entry in enumerate(games, start=1):
                    label = _game_label(entry, where, game)
                    if label is not None:
                        winner, weight = battle_outcome(label, game, weights)
                        rows.append((qid, baseline, model, winner, weight, judge))
    if not rows:
        raise ConfigError(f"{root}: no scored game in the judgments of {', '.join(chosen)}")
    return pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner", "weight", "judge"])


def _judgment_root(folder: Path) -> Path:
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder (give arena-hard's model_judgment folder or the one holding it)")
    inner = folder / "model_judgment"
    return inner if inner.is_dir() else folder


def _judgment_record(record: dict[str, Any], where: str, baseline: str) -> tuple[str, str, list]:
    qid, model, games = record.get("question_id", record.get("uid")), record.get("model"), record.get("games")
    if qid is None or not isinstance(model, str) or not isinstance(games, list) or not 1 <= len(games) <= 2:
        raise ConfigError(f"{where}: not an arena-hard judgment (needs question_id or uid, model, and games: a list "
                          "of one or two games)")
    judged_against = record.get("baseline")
    if judged_against is not None and judged_against != baseline:
        raise ConfigError(f"{where}: judged against baseline {shown(judged_against)}, not {baseline!r}; rate the judgments "
                          "of each baseline separately (arena-hard v2.0 has one per category)")
    return str(qid), model, games


def _game_label(entry: Any, where: str, game: int) -> str | None:
    """The game's canonical label, or None for a game that was not scored."""
    if entry is None:
        return None
    if not isinstance(entry, dict) or "score" not in entry:
        raise ConfigError(f"{where}: game {game} is not an arena-hard game (needs a score field)")
    score = entry["score"]
    if score is None:
        return None
    match = _SCORE_LABEL.fullmatch(score.strip().lower()) if isinstance(score, str) else None
    label = canonical_label(*match.groups()) if match else None
    if label is None:
        raise ConfigError(f"{where}: game {game} has score {shown(score)}, not a verdict label "
                          f"({', '.join(LABELS)}, or null when unparsed)")
    return label


def import_answers(path: str | Path, contestant: ContestantConfig, questions: QuestionSet, store: Store,
                   augmenter, set_id: str | None = None, notes: list[str] | None = None) -> dict[str, int]:
    """Store an arena-hard answer file as `contestant`'s answers in answer set `set_id` (default: its
    configuration's own), keyed so that a run reuses them, and make them its current answers.

    Each record is read as v2.0 when it has `uid` and `messages`, else as v0.1 (`read_answer_record`). A
    conversation becomes one answer with its turns. A guided contestant's prompts depend on its guidance, so that
    must be built first (`arena-eval guidance`).

    An answer is held to the contestant's max_response_bytes as a reply would be: a turn over it, or a line too
    long to hold one within it (never read whole), is skipped and counted (`too_large`). A question answered again
    later in the file is skipped and counted (`repeated`): the first answer is kept. Each skipped line gets a note
    naming file:line, appended to `notes`.
    """
    path = Path(path)
    importer = AnswerImporter(contestant, store, augmenter, set_id, notes)
    counts, cap = importer.counts, importer.cap
    counts["unknown_question"] = 0
    limit = reply_line_bytes(cap)
    by_id = {q.question_id: q for q in questions}

    def too_long(line: Line) -> None:
        counts["too_large"] += 1
        importer.notes.append(f"{path}:{line.number}: {too_long_reason(line, limit)} (an answer within "
                              f"{contestant.name}'s max_response_bytes of {cap:,} fits in less); skipped")

    for number, record in _jsonl(path, limit, too_long):
        where = f"{path}:{number}"
        found = read_answer_record(record, where)
        question = by_id.get(found.question_id)
        if question is None:
            counts["unknown_question"] += 1
            continue
        texts, tokens = _fit_turns(found, question, where)
        # A reasoning model's file may hold its thinking in the text: it is kept apart, never shown to a judge.
        split = [split_think(text, leading_only=True) for text in texts]  # a stray </think> hides nothing
        known = [n for n in tokens if n is not None]
        importer.take(question, [answer for answer, _ in split], where, f"line {number}",
                      tokens=tokens, thinking=[thinking for _, thinking in split],
                      output_tokens=sum(known) if known else None,
                      tokens_estimated=True,  # arena-hard counts tokens with its own tokenizer, not the model's
                      finish_reason="imported", created_at=found.tstamp, source_id=found.source_id)
    return counts


class AnswerImporter:
    """Stores answers read from a file (arena-hard's, an inspect_ai log) as one contestant's, in answer set `set_id`
    (default: its configuration's own), keyed by the prompt the contestant would be sent now so that a run reuses
    them, and made its current answers. `counts` says what became of each (imported, already_stored, too_large,
    repeated); `notes` gets a line for each answer skipped."""

    def __init__(self, contestant: ContestantConfig, store: Store, augmenter, set_id: str | None = None,
                 notes: list[str] | None = None):
        self.contestant, self.store, self.augmenter = contestant, store, augmenter
        self.set_id = set_id or contestant.base_config_id
        self.notes = [] if notes is None else notes
        self.counts = {"imported": 0, "already_stored": 0, "too_large": 0, "repeated": 0}
        self.recorder = AnswerRecorder(store, None)  # an import belongs to no run, and counts its own way
        self.stored = store.answer_ids(self.set_id)
        self.cap = reply_byte_cap(contestant)
        self.taken: dict[str, str] = {}  # question id → where its answer was read from ("line 3")

    def take(self, question: Question, texts: list[str], where: str, place: str, *, tokens: list[int | None],
             thinking: list[str | None], output_tokens: int | None, tokens_estimated: bool, finish_reason: str,
             created_at: float | None, source_id: str | None, input_tokens: int | None = None,
             reasoning_tokens: int | None = None, latency_s: float | None = None) -> bool:
        """Store one answer to `question`: `texts` (and `tokens`, `thinking`) hold one entry per turn, checked
        against the question already. `where` names it in notes, `place` in a later repeat's note. Whether it was
        stored or found stored."""
        contestant, counts, qid = self.contestant, self.counts, question.question_id
        if qid in self.taken:
            counts["repeated"] += 1
            self.notes.append(f"{where}: question {shown(qid)} was already answered at {self.taken[qid]}; the first "
                              "answer is kept and this one skipped")
            return False
        self.taken[qid] = place
        sizes = [len(text.encode()) for text in texts]
        if max(sizes) > self.cap:
            counts["too_large"] += 1
            self.notes.append(f"{where}: the answer to question {shown(qid)} is {max(sizes):,} bytes, over "
                              f"{contestant.name}'s max_response_bytes of {self.cap:,} (a reply this long would not "
                              "have been taken in either); skipped. Set max_response_bytes higher if answers this long "
                              "are expected")
            return False
        prepared = self.augmenter.prepare_stored(contestant, question)
        if prepared is None:
            raise ConfigError(f"{contestant.name} is guided: run `arena-eval guidance` before importing its answers")
        p_hash = prompt_hash(prepared.conversation)
        if (qid, p_hash) in self.stored:
            counts["already_stored"] += 1
            self.recorder.reused(self.set_id, qid, self.stored[(qid, p_hash)])
            return True
        reasoning = [t for t in thinking if t]
        # Its time stamp is the file's, maybe older than an answer stored since: it is made current.
        self.recorder.saved(
            Answer(
                answer_id=answer_id(self.set_id, qid, p_hash),
                contestant=contestant.name,
                config_id=self.set_id,
                question_id=qid,
                prompt_hash=p_hash,
                text=texts[-1],
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                tokens_estimated=tokens_estimated,
                finish_reason=finish_reason,
                latency_s=latency_s,
                created_at=float(created_at or time.time()),
                question_digest=question_digest(question),
                turns=([{"text": t, "output_tokens": n, **({"reasoning": r} if r else {})}
                        for t, n, r in zip(texts, tokens, thinking)] if len(texts) > 1 else None),
                source_id=source_id,
                reasoning="\n\n".join(reasoning) if reasoning else None,
                reasoning_tokens=reasoning_tokens,
            ),
            current=True,
        )
        counts["imported"] += 1
        return True


class AnswerRecord(NamedTuple):
    """One record of an arena-hard answer file, as read: the assistant's turns with their token counts (None where
    the file has none), and the user's turns where the record holds them (v2.0)."""

    question_id: str
    texts: list[str]
    tokens: list[int | None]
    user_turns: list[str] | None
    tstamp: float | None
    source_id: str | None


def read_answer_record(record: dict[str, Any], where: str) -> AnswerRecord:
    """A v2.0 record (`uid` and `messages`) or a v0.1 one (`question_id` and `choices`); `where` (file:line) names
    it in errors."""
    if "uid" in record and "messages" in record:
        return _v2_answer_record(record, where)
    try:
        qid = str(record["question_id"])
        turns = record["choices"][0]["turns"]
        texts = [turn["content"] for turn in turns]
        tokens = [turn.get("token_len") for turn in turns]
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ConfigError(
            f"{where}: not an arena-hard answer (v0.1 needs question_id and choices[0].turns[0].content; "
            "v2.0 needs uid and messages)"
        ) from None
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ConfigError(f"{where}: choices[0].turns must hold one {{\"content\": text}} per turn")
    return AnswerRecord(qid, texts, [_token_count(n, where) for n in tokens], None, _tstamp(record, where), None)


def _v2_answer_record(record: dict[str, Any], where: str) -> AnswerRecord:
    messages = record["messages"]
    if not isinstance(messages, list):
        raise ConfigError(f"{where}: `messages` must be a list of {{role, content}} objects")
    # A system prompt (arena-hard's sys_prompt setting) is part of how the answer was made, not of the question.
    start = next((i for i, m in enumerate(messages) if not (isinstance(m, dict) and m.get("role") == "system")),
                 len(messages))
    pairs = messages[start:]
    if not pairs or len(pairs) % 2:
        raise ConfigError(f"{where}: `messages` must hold user and assistant turns in pairs, the assistant's last "
                          f"(found {len(pairs)} after any system message)")
    user_turns, texts = [], []
    for offset, message in enumerate(pairs):
        number, role = start + offset + 1, "user" if offset % 2 == 0 else "assistant"
        if not isinstance(message, dict) or message.get("role") != role:
            got = message.get("role") if isinstance(message, dict) else type(message).__name__
            raise ConfigError(f"{where}: message {number} should be the {role}'s turn, found {shown(got)}")
        content = message.get("content")
        if role == "assistant" and isinstance(content, dict):
            content = content.get("answer")
        if not isinstance(content, str):
            shape = "text or {\"answer\": text}" if role == "assistant" else "text"
            raise ConfigError(f"{where}: message {number} ({role}) has no {shape} content")
        (user_turns if role == "user" else texts).append(content)
    metadata = record.get("metadata")
    token_len = metadata.get("token_len") if isinstance(metadata, dict) else None
    # arena-hard's token_len counts the last answer only (its metadata describe messages[-1]).
    tokens = [None] * (len(texts) - 1) + [_token_count(token_len, where)]
    source_id = record.get("ans_id")
    return AnswerRecord(str(record["uid"]), texts, tokens, user_turns, _tstamp(record, where),
                        None if source_id is None else str(source_id))


def _token_count(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: token_len {shown(value)} is not a count of tokens")
    return value


def _tstamp(record: dict[str, Any], where: str) -> float | None:
    value = record.get("tstamp")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{where}: tstamp {shown(value)} is not a time in seconds since 1970")
    return value


def _fit_turns(found: AnswerRecord, question: Question, where: str) -> tuple[list[str], list[int | None]]:
    """The record's assistant turns and their token counts, checked against the question's user turns."""
    qid = question.question_id
    if found.user_turns is not None:
        if len(found.user_turns) != len(question.turns):
            raise ConfigError(f"{where}: {len(found.user_turns)} user turn(s), but question {shown(qid)} has "
                              f"{len(question.turns)}; the answers belong to another version of the question")
        for number, (theirs, ours) in enumerate(zip(found.user_turns, question.turns), start=1):
            if theirs != ours:
                raise ConfigError(f"{where}: user turn {number} differs from question {qid!r}'s (starts "
                                  f"{theirs[:40]!r}, the question's {ours[:40]!r}); the answers belong to another "
                                  "version of the question")
        return found.texts, found.tokens
    if not question.multi_turn:
        return found.texts[:1], found.tokens[:1]  # v0.1 answers one turn; any more is not ours to judge
    if len(found.texts) != len(question.turns):
        raise ConfigError(f"{where}: {len(found.texts)} answer turn(s), but question {shown(qid)} is a conversation of "
                          f"{len(question.turns)} user turns")
    return found.texts, found.tokens


ArenaHardVersion = Literal["v0.1", "v2.0"]
ARENA_HARD_VERSIONS: tuple[ArenaHardVersion, ...] = ("v0.1", "v2.0")


def answer_record(answer: Answer) -> dict[str, Any]:
    """An answer as an arena-hard v0.1 record: one `turns` entry per turn of a conversation."""
    turns = [{"content": text, "token_len": tokens} for text, tokens in zip(answer_turns(answer), _turn_tokens(answer))]
    return {
        "question_id": answer.question_id,
        "answer_id": answer.answer_id,
        "model_id": answer.contestant,
        "choices": [{"index": 0, "turns": turns}],
        "tstamp": answer.created_at,
    }


def answer_record_v2(answer: Answer, question: Question) -> dict[str, Any]:
    """An answer as an arena-hard v2.0 record: the conversation as messages, the id it was imported with (else
    ours), and arena-hard's metadata of the last answer: its tokens (the stored count; ~4 characters a token where
    none is stored) and its markdown (`markdown_counts`)."""
    texts = answer_turns(answer)
    if len(texts) != len(question.turns):
        raise ArenaError(f"answer {answer.answer_id} of {answer.contestant} to question {question.question_id!r} has "
                         f"{len(texts)} turn(s), the question {len(question.turns)}")
    messages: list[dict[str, Any]] = []
    for user, text in zip(question.turns, texts):
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": {"answer": text}}]
    tokens = _turn_tokens(answer)[-1]
    return {
        "uid": answer.question_id,
        "ans_id": answer.source_id or answer.answer_id,
        "model": answer.contestant,
        "messages": messages,
        "tstamp": answer.created_at,
        "metadata": {"token_len": tokens if tokens is not None else estimate_tokens(texts[-1]),
                     **markdown_counts(texts[-1])},
    }


def _turn_tokens(answer: Answer) -> list[int | None]:
    return [t.get("output_tokens") for t in answer.turns] if answer.turns else [answer.output_tokens]


# arena-hard's own counting (its utils/add_markdown_info.py), kept as it is so that the metadata equal those of its
# files, quirks included: the text between each pair of ``` (none inside) is deleted wherever it occurs, fences
# stay; then line patterns are counted on what is left. Not style.style_counts, which reads markdown more exactly.
_CODE_SPAN = re.compile(r"```([^`]*)```")
_MARKDOWN = {
    "header_count": {f"h{level}": re.compile(rf"^#{{{level}}}\s", re.MULTILINE) for level in range(1, 7)},
    "list_count": {"ordered": re.compile(r"^\s*\d+\.\s", re.MULTILINE),
                   "unordered": re.compile(r"^\s*[-*+]\s", re.MULTILINE)},
    "bold_count": {"**": re.compile(r"\*\*[^*\n]+\*\*"), "__": re.compile(r"__[^_\n]+__")},
}


def markdown_counts(text: str) -> dict[str, dict[str, int]]:
    """arena-hard v2.0's `header_count` (h1–h6), `list_count` (ordered, unordered) and `bold_count` (**, __)."""
    for code in _CODE_SPAN.findall(text):
        text = text.replace(code, "")
    return {group: {key: len(pattern.findall(text)) for key, pattern in patterns.items()}
            for group, patterns in _MARKDOWN.items()}


class Exported(NamedTuple):
    paths: list[Path]
    notes: list[str]  # one per contestant whose file name is not its plain sanitised name, saying why


def export_arena_hard(scope: RunScope, store: Store, sets: AnswerSets, folder: str | Path,
                      version: ArenaHardVersion = "v0.1") -> Exported:
    """Write model_answer/<contestant>.jsonl, model_judgment/<judge>/<contestant>.jsonl (every judge) and
    battles.jsonl (the rated judges' battles, pooled as the leaderboard pools them): the current answers (`sets`),
    their verdicts and the battles they make.

    `version` is the layout of the answer and judgment files: arena-hard "v0.1" (`question_id`, `choices`) or
    "v2.0" (`uid`, `messages`, `metadata`; a judgment's missing game is null). Battles are the same in both.
    File names are contestant names with other characters than letters, digits, `.`, `_` and `-` replaced
    (`export_stems`); the records inside keep the real names."""
    if version not in ARENA_HARD_VERSIONS:
        raise ValueError(f"version must be one of {', '.join(ARENA_HARD_VERSIONS)}, not {version!r}")
    folder = Path(folder)
    ids = {c.name: sets.current(c, scope.questions) for c in scope.contestants}
    stems, notes = export_stems([c.name for c in scope.config.contestants] + list(ids))
    # Every file name is settled before the first file is written: an export is written whole or not at all.
    judge_stems, judge_notes = export_stems([j.name for j in scope.judges], "judge", "/")
    questions = {q.question_id: q for q in scope.questions}
    written: list[Path] = []
    answers_dir = folder / "model_answer"
    answers_dir.mkdir(parents=True, exist_ok=True)
    texts: dict[str, list[str]] = {}  # answer id → each turn's text (one for a single-turn answer)

    def answer_records(contestant: str, by_question: dict[str, str]) -> Iterator[dict[str, Any]]:
        for qid in sorted(by_question):
            answer = store.get_answer(by_question[qid])
            answer.contestant = contestant
            texts[answer.answer_id] = answer_turns(answer)
            yield answer_record_v2(answer, questions[qid]) if version == "v2.0" else answer_record(answer)

    for contestant, by_question in ids.items():
        path = answers_dir / f"{stems[contestant]}.jsonl"
        written.append(_write_jsonl(path, answer_records(contestant, by_question)))

    rated = {j.name for j in scope.rated_judges}
    battles, judged = [], set()
    for judge in scope.judges:
        judge_name = judge_stems[judge.name]
        judgments = {j.game_id: j for j in store.judgments(judge.config_id)}
        per_contestant: dict[str, dict[str, dict[int, dict]]] = {}
        for game in current_games(scope, ids, judge):
            judgment = judgments.get(game.game_id)
            if judgment is None:
                continue
            # arena-hard's judgment files hold games against the baseline only: a game between two contestants
            # (pairing) goes to battles.jsonl alone.
            if game.baseline == scope.baseline_for(game.question_id):
                messages = _judge_messages(judge, scope, questions[game.question_id], texts[game.answer_a_id],
                                           texts[game.answer_b_id])
                per_contestant.setdefault(game.contestant, {}).setdefault(game.question_id, {})[game.game] = \
                    _exported_game(judgment, messages, version)
            if judgment.verdict is not None and judge.name in rated:
                winner, weight = battle_outcome(judgment.verdict, game.game, judge.config.weights)
                row = {"question_id": game.question_id, "model_a": game.baseline, "model_b": game.contestant,
                       "winner": winner}
                battles += [row] * int(round(weight))
        judgment_dir = folder / "model_judgment" / judge_name
        judgment_dir.mkdir(parents=True, exist_ok=True)
        for contestant, by_question in per_contestant.items():
            records = (_exported_judgment(questions[qid], contestant, judge_name, scope.baseline_for(qid), games, version)
                       for qid, games in sorted(by_question.items()))
            written.append(_write_jsonl(judgment_dir / f"{stems[contestant]}.jsonl", records))
        judged |= set(per_contestant)
    written.append(_write_jsonl(folder / "battles.jsonl", battles, ensure_ascii=True))
    return Exported(written, [notes[name] for name in dict.fromkeys(list(ids) + sorted(judged)) if name in notes]
                    + [judge_notes[j.name] for j in scope.judges if j.name in judge_notes])


def _judge_messages(judge, scope: RunScope, question: Question, a: list[str], b: list[str]) -> list[Message]:
    """The judge's prompt for one game as the run rendered it (the category's prompts, a conversation's turns),
    without a reference answer."""
    prompts = judge.prompts_for(scope.category_of(question.question_id)) if judge.by_category else judge.prompts
    if question.multi_turn:
        return prompts.render(answer_a=a, answer_b=b, questions=list(question.turns), last_only=judge.config.turns == "last")
    return prompts.render(question.prompt, a[-1], b[-1])


def _exported_game(judgment: Judgment, messages: list[Message], version: ArenaHardVersion) -> dict[str, Any]:
    if version == "v2.0":
        return {"score": judgment.verdict, "judgment": {"answer": judgment.judge_text}, "prompt": messages}
    return {"user_prompt": messages[1]["content"], "judgment": judgment.judge_text, "score": judgment.verdict}


def _exported_judgment(question: Question, contestant: str, judge: str, baseline: str, games: dict[int, dict],
                       version: ArenaHardVersion) -> dict[str, Any]:
    """One contestant's games on one question (`games`: game number → game record)."""
    if version == "v2.0":
        # Game 1 has the baseline in position A: a game not judged keeps its place, as null (as arena-hard writes
        # a failed judge call), so that the other one is read in its own position.
        return {"uid": question.question_id, "category": question.category, "judge": judge, "model": contestant,
                "baseline": baseline, "games": [games.get(1), games.get(2)]}
    return {"question_id": question.question_id, "model": contestant, "judge": judge,
            "games": [games[number] for number in sorted(games)]}


def _write_jsonl(path: Path, records: Iterable[dict[str, Any]], ensure_ascii: bool = False) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=ensure_ascii) + "\n")
    return path


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


# A file name is at most 255 bytes on the common file systems: a stem is kept to this many bytes, with room for
# "-" and a hash of up to 64 hex digits, and ".jsonl".
MAX_STEM_BYTES = 160


def _fits(stem: str) -> bool:
    """Whether a sanitised stem can be a file name as it is: short enough, and not `.` or `..` (or only dots)."""
    return len(stem.encode()) <= MAX_STEM_BYTES and stem.strip(".") != ""


def export_stems(names: list[str], what: str = "contestant", suffix: str = ".jsonl") -> tuple[dict[str, str], dict[str, str]]:
    """Each name's file stem, unique even where file names ignore case (macOS, Windows), and a note for each name
    that does not get its plain sanitised stem (`what` and `suffix` word the note: "judge", "/" for a folder).

    `team/a` and `team_a` both sanitise to `team_a`: the name that is already safe keeps the plain stem, and
    every other name in the clash gets `-` and the first 8 hex digits of its SHA-256 appended. Names that are
    already safe and differ only in case: the first in sorted order keeps the plain stem. A name too long for a
    file name (over MAX_STEM_BYTES once sanitised), or only dots, is cut to that length and hashed the same way,
    so that an export never fails half-way on a name. The result depends on the names only, never on their order.
    """
    unique = sorted(set(names))
    clashes: dict[str, list[str]] = {}
    for name in unique:
        clashes.setdefault(_safe(name).casefold(), []).append(name)
    stems: dict[str, str] = {}
    notes: dict[str, str] = {}
    taken = {stem for stem in clashes}
    for group in clashes.values():
        keeper = next((name for name in group if _safe(name) == name), None if len(group) > 1 else group[0])
        for name in group:
            if name == keeper and _fits(_safe(name)):
                stems[name] = _safe(name)
                continue
            stems[name] = _hashed_stem(name, taken)
            if not _fits(_safe(name)):
                shown = repr(name) if len(name) <= 60 else f"{name[:60]!r}… ({len(name)} characters)"
                notes[name] = f"{what} {shown} is written as {stems[name]}{suffix} (its name is too long for a file name)"
                continue
            others = ", ".join(repr(other) for other in group if other != name)
            notes[name] = (f"{what} {name!r} is written as {stems[name]}{suffix} (its name sanitises to the same "
                           f"file as {others})")
    return stems, notes


def _hashed_stem(name: str, taken: set[str]) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest()
    safe = _safe(name).encode()[:MAX_STEM_BYTES].decode(errors="ignore")  # cut on a character's boundary
    for length in (8, 16, 64):  # a longer hash only if a contestant is deliberately named like another's file
        stem = f"{safe}-{digest[:length]}"
        if stem.casefold() not in taken:
            taken.add(stem.casefold())
            return stem
    raise ConfigError(f"contestant {name!r}: no unique export file name; rename the contestant")
