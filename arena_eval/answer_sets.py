"""Answer sets: which stored answers a contestant's configuration uses now (docs/design.md §2, §4).

An answer is stored once under its key: (answer set, question id, hash of the prompt sent). A contestant's
**answer set** is the base id of its configuration (`ContestantConfig.base_config_id`), or that id plus
"@<epoch>" once its answers were refreshed (`refresh: always`, `run --refresh NAME`): each refresh opens an epoch,
a row of the `answer_epochs` table, and the newest epoch is the set in use. Epochs are stored records, read here;
nothing about them lives on the config objects.

Within a set, the **current** answer to a question is the one collection last found or stored for the prompt it
would send now. Collection knows that prompt; no later stage has to: judging stored answers, scoring, the report
and exports look the current answer up here, without rebuilding prompts, loading a RAG corpus or asking a guide
model. The rule, kept cheap for the common case:

- an answer counts only while the question's text is the one it answered (`Answer.question_digest`; answers
  stored before the digest existed count as matching);
- among those, the newest stored answer is current;
- unless collection recorded otherwise in `current_answers`: it does so only when the newest is not the one it
  used (a stored answer reused after a prompt changed back), or when the question now has none (a request
  failed after its prompt changed). In a fresh set nothing is ever written there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from .config import ContestantConfig
from .questions import Question
from .store import Store


def question_digest(question: Question) -> str:
    """Identifies the question text an answer answered: its prompt, and a conversation's later user turns."""
    text = question.prompt if not question.multi_turn else "\x1e".join(question.turns)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def current_among(candidates: Iterable[tuple], digest: str) -> str | None:
    """The newest answer id among (answer_id, question_digest, created_at, …) whose digest matches (None counts)."""
    best, newest = None, None
    for answer_id, answered, created_at, *_ in candidates:
        if answered is not None and answered != digest:
            continue
        if newest is None or (created_at or 0.0) >= newest:
            best, newest = answer_id, created_at or 0.0
    return best


class AnswerSets:
    """The answer set in use for each contestant of a run, and the current answers in them."""

    def __init__(self, store: Store, set_ids: dict[str, str]):
        self.store = store
        self._ids = dict(set_ids)

    @classmethod
    def open(cls, store: Store, contestants: Sequence[ContestantConfig], run_id: str | None = None,
             refresh: Iterable[str] = ()) -> AnswerSets:
        """The sets in use. With `run_id` (a run that collects), contestants with `refresh: always` or named in
        `refresh` get a new epoch — unless the run that opened their newest epoch never finished (killed,
        interrupted, failed, stopped by its spending cap, or left batches waiting at the provider) and they were not named: that set is resumed instead of starting another."""
        refresh = set(refresh)
        ids = {}
        for c in contestants:
            base = c.base_config_id
            latest = store.latest_epoch(base)
            fresh = run_id is not None and (c.refresh == "always" or c.name in refresh)
            if fresh and not (latest and latest.status in ("running", "interrupted", "failed", "waiting", "capped")
                              and c.name not in refresh):
                store.open_epoch(base, run_id, c.name, run_id)
                ids[c.name] = f"{base}@{run_id}"
            else:
                ids[c.name] = f"{base}@{latest.epoch}" if latest else base
        return cls(store, ids)

    def set_id(self, contestant: ContestantConfig | str) -> str:
        name = contestant if isinstance(contestant, str) else contestant.name
        return self._ids[name]

    def current(self, contestant: ContestantConfig | str, questions: Iterable[Question]) -> dict[str, str]:
        """question_id → answer_id of the current answers (two queries for the whole set)."""
        set_id = self.set_id(contestant)
        candidates: dict[str, list[tuple[str, str | None, float]]] = {}
        for question_id, answer_id, answered, created_at in self.store.answer_candidates(set_id):
            candidates.setdefault(question_id, []).append((answer_id, answered, created_at))
        overrides = self.store.current_overrides(set_id)
        out = {}
        for question in questions:
            qid = question.question_id
            if qid in overrides:
                chosen = overrides[qid]
            elif qid in candidates:
                chosen = current_among(candidates[qid], question_digest(question))
            else:
                continue
            if chosen is not None:
                out[qid] = chosen
        return out

    def current_id(self, contestant: ContestantConfig | str, question: Question) -> str | None:
        """The current answer to one question (indexed look-ups: for streaming over a large set)."""
        set_id = self.set_id(contestant)
        found, chosen = self.store.current_override(set_id, question.question_id)
        if found:
            return chosen
        return current_among(self.store.question_answers(set_id, question.question_id), question_digest(question))
