"""Which games can be posed as answers arrive (docs/design.md §3.1.1, §3.3.1): a state machine with no I/O.

Contestants are collected side by side and their answers arrive in any order. A contestant's two games for a
question can be posed once its answer and the baseline's answer to that question both exist; an answer that
arrives before the baseline's waits for it, and when the baseline has no answer to a question (it failed), the
answers waiting on it are dropped: there is no game to pose. Only questions that some contestant has not
delivered yet are held (one bit per contestant says who has), so memory follows the questions in flight, not
the size of the set; a question is forgotten once every contestant delivered an answer or an error for it, or
finished without one (judging stored answers delivers only the answers it finds).

With games between contestants (`pairing: all | {opponents: K}`, pairing.py), each pair drawn for a question is
posed once both of its answers exist, the opponent's answer standing where the baseline's would; a pair one of
whose answers failed has no game. Such a pair does not wait for the baseline.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .records import Answer, AnswerError


def _same(name: str, _question_id: str) -> str:
    return name


@dataclass
class _OpenQuestion:
    base: Answer | None = None  # the baseline's answer, once it arrived
    waiting: list[Answer] = field(default_factory=list)  # contestants' answers that arrived before it could pair
    delivered: int = 0  # bit set of the contestants that delivered an answer or an error
    references: dict[str, Answer | None] = field(default_factory=dict)  # reference contestant → its answer
    baseline: str = ""  # the question's baseline (a category may have its own)
    pairs: list[tuple[str, str]] = field(default_factory=list)  # pairs of contestants still to meet on it
    answers: dict[str, Answer] = field(default_factory=dict)  # the answers of the contestants in those pairs


@dataclass(frozen=True)
class Pairing:
    """A contestant's answer and the baseline's answer to the same question: two games to pose; with the answers
    of the reference contestants (None where one has no answer to it). In a game between contestants `base` is
    the opponent's answer."""

    answer: Answer
    base: Answer
    references: dict[str, Answer | None] = field(default_factory=dict)


class GameDispatcher:
    """Feed it every answer or error as it arrives (`deliver`) and every contestant's end (`finish`); each call
    returns the pairings that became ready. The baseline's own answers pair with nothing."""

    def __init__(self, contestants: Sequence[str], baseline: str | Callable[[str], str], references: Sequence[str] = (),
                 judged: Sequence[str] | None = None,
                 opponents: Callable[[str], Sequence[tuple[str, str]]] | None = None):
        """`baseline`: the baseline's name, or a function giving each question's (question_id → name) where a
        category has a baseline of its own; a contestant is then the baseline on some questions only.
        `opponents`: question_id → the pairs of contestants that also meet on it (pairing.opponents_of); only
        pairs of two judged contestants are posed."""
        if isinstance(baseline, str):
            if baseline not in contestants:
                raise ValueError(f"baseline {baseline!r} is not among the contestants")
            baseline = functools.partial(_same, baseline)
        unknown = [name for name in references if name not in contestants]
        if unknown:
            raise ValueError(f"reference contestant(s) {', '.join(unknown)} are not among the contestants")
        self.baseline_of = baseline
        # A judge that takes its reference from a contestant's answer needs it before the games can be posed: a
        # pairing waits for the baseline and for every reference contestant to deliver.
        self.references = tuple(dict.fromkeys(references))
        # Whose answers are paired for games (default: every contestant's); the others deliver references only.
        self.judged = None if judged is None else frozenset(judged)
        self._bits = {name: 1 << i for i, name in enumerate(contestants)}
        self._everyone = (1 << len(contestants)) - 1
        self._finished = 0
        self._open: dict[str, _OpenQuestion] = {}
        self.opponents = opponents

    @property
    def open_questions(self) -> int:
        """Questions held in memory: some contestant has not delivered them yet."""
        return len(self._open)

    def deliver(self, item: Answer | AnswerError) -> list[Pairing]:
        bit = self._bits[item.contestant]
        entry = self._open.get(item.question_id)
        if entry is None:
            entry = self._open[item.question_id] = self._entry(item.question_id)
        if entry.delivered & bit:
            return []  # a second delivery for the same question changes nothing
        entry.delivered |= bit
        is_answer = isinstance(item, Answer)
        if item.contestant in self.references:
            entry.references[item.contestant] = item if is_answer else None
        if item.contestant == entry.baseline:
            entry.base = item if is_answer else None
        if is_answer and item.contestant != entry.baseline and (self.judged is None or item.contestant in self.judged):
            entry.waiting.append(item)
            if any(item.contestant in pair for pair in entry.pairs):
                entry.answers[item.contestant] = item
        ready = self._release(entry) + self._release_pairs(entry)
        self._forget_if_done(item.question_id, entry)
        return ready

    def _entry(self, question_id: str) -> _OpenQuestion:
        entry = _OpenQuestion(delivered=self._finished, baseline=self.baseline_of(question_id))
        if self.opponents is not None:
            entry.pairs = [pair for pair in self.opponents(question_id) if entry.baseline not in pair
                           and (self.judged is None or (pair[0] in self.judged and pair[1] in self.judged))]
        return entry

    def _release_pairs(self, entry: _OpenQuestion) -> list[Pairing]:
        """The pairs of contestants whose answers both arrived (and every reference contestant delivered); a pair
        one of whose answers failed is dropped."""
        if not entry.pairs or any(not entry.delivered & self._bits[name] for name in self.references):
            return []
        ready, left = [], []
        for first, second in entry.pairs:
            if not (entry.delivered & self._bits[first] and entry.delivered & self._bits[second]):
                left.append((first, second))
            elif first in entry.answers and second in entry.answers:
                refs = {name: entry.references.get(name) for name in self.references}
                ready.append(Pairing(entry.answers[second], entry.answers[first], refs))
        entry.pairs = left
        return ready

    def _release(self, entry: _OpenQuestion) -> list[Pairing]:
        """The waiting answers, paired, once the baseline and every reference contestant delivered."""
        if not entry.delivered & self._bits[entry.baseline]:
            return []
        if any(not entry.delivered & self._bits[name] for name in self.references):
            return []
        waiting, entry.waiting = entry.waiting, []
        if entry.base is None:
            return []  # the baseline has no answer to this question, so there is no game to pose
        refs = {name: entry.references.get(name) for name in self.references}
        return [Pairing(answer, entry.base, refs) for answer in waiting]

    def finish(self, contestant: str) -> list[Pairing]:
        """`contestant` delivers nothing more: questions it never delivered stop waiting for it (answers waiting
        on the baseline are dropped when the baseline is the one that finished; a reference contestant that
        finished without an answer leaves its reference empty). Returns the pairings that became ready."""
        bit = self._bits[contestant]
        self._finished |= bit
        ready: list[Pairing] = []
        for question_id, entry in list(self._open.items()):
            if entry.delivered & bit:
                continue
            entry.delivered |= bit
            if contestant in self.references:
                entry.references[contestant] = None
            ready += self._release(entry) + self._release_pairs(entry)
            self._forget_if_done(question_id, entry)
        return ready

    def _forget_if_done(self, question_id: str, entry: _OpenQuestion) -> None:
        if entry.delivered == self._everyone:
            del self._open[question_id]  # nothing more can arrive for it: drop the texts
