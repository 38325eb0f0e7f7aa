"""Prompt augmentation: the messages a contestant receives for a question (plain, guided, or with passages).

The judge never sees any of this: it gets the question and the answers only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import TemplateError

from ..config import ContestantConfig, RunConfig
from ..errors import AugmentError
from ..questions import Question
from ..records import Message
from ..templates import read_template, render
from .guidance import GuidanceUnavailable, Guide


@dataclass
class Prepared:
    """What a contestant is sent for a question: the messages of its first request and, for a conversation, each
    later user turn's message (as augmented: with its own passages under rag) with the ids of those passages."""

    messages: list[Message]
    context_ids: list[str] = field(default_factory=list)
    follow_ups: list[tuple[Message, list[str]]] = field(default_factory=list)

    @property
    def conversation(self) -> list[Message]:
        """Every message the contestant is given, its own answers left out: what identifies its prompt."""
        return self.messages + [message for message, _ in self.follow_ups]


class Augmenter:
    def __init__(self, config: RunConfig, store, run_id: str | None = None):
        self.config = config
        self.base_dir = Path(config.base_dir)
        uses = {c.augment for c in config.contestants}
        self.guide = Guide(config.guidance, store, self.base_dir, run_id) if "guidance" in uses else None
        self._rag_template = None
        self._retrieved: dict[str, list] = {}
        if "rag" in uses:
            rag = config.rag
            self._rag_template = read_template(self.base_dir / rag.prompt_dir if rag.prompt_dir else None, "rag_user.j2")

    def _passages(self, question: Question, turn: int = 0) -> list:
        """The passages retrieved for one user turn of the question (each turn retrieves with its own text)."""
        key = question.question_id if turn == 0 else f"{question.question_id}\x1f{turn}"
        if key not in self._retrieved:
            from .rag import get_retriever

            retriever = get_retriever(self.config.rag, self.base_dir)
            self._retrieved[key] = [p for p, _ in retriever.search(question.turns[turn], self.config.rag.top_k)]
        return self._retrieved[key]

    def compose(self, contestant: ContestantConfig, question: Question, guidance: str | None = None) -> Prepared:
        """The messages for `question`; a template that fails on it (a render limit) raises AugmentError, which
        makes this one answer a recorded error."""
        try:
            return self._compose(contestant, question, guidance)
        except TemplateError as exc:
            raise AugmentError(f"prompt template failed for question {question.question_id}: {exc}") from None

    def _compose(self, contestant: ContestantConfig, question: Question, guidance: str | None) -> Prepared:
        """Guidance goes into the system prompt, which holds for the whole conversation; rag retrieves passages
        for each user turn."""
        system = contestant.system_prompt
        if contestant.augment == "guidance":
            system = self.guide.system_prompt(system, guidance or "")
        turns = [self._user_turn(contestant, question, i) for i in range(len(question.turns))]
        messages: list[Message] = [{"role": "system", "content": system}] if system else []
        messages.append(turns[0][0])
        return Prepared(messages, turns[0][1], turns[1:])

    def _user_turn(self, contestant: ContestantConfig, question: Question, turn: int) -> tuple[Message, list[str]]:
        text = question.turns[turn]
        if contestant.augment != "rag":
            return {"role": "user", "content": text}, []
        passages = self._passages(question, turn)
        return {"role": "user", "content": render(self._rag_template, question=text, passages=passages)}, [p.id for p in passages]

    async def prepare(self, contestant: ContestantConfig, question: Question) -> Prepared:
        """Messages for a request; generates missing guidance (raises GuidanceUnavailable on failure)."""
        guidance = await self.guide.get(question) if contestant.augment == "guidance" else None
        return self.compose(contestant, question, guidance)

    def prepare_stored(self, contestant: ContestantConfig, question: Question) -> Prepared | None:
        """Messages as they would be sent now, from stored guidance only; None when guidance is missing."""
        guidance = None
        if contestant.augment == "guidance":
            guidance = self.guide.stored(question)
            if guidance is None:
                return None
        try:
            return self.compose(contestant, question, guidance)
        except AugmentError:
            return None  # no prompt, so no answer could have been collected for it

    async def close(self) -> None:
        if self.guide is not None:
            await self.guide.close()


__all__ = ["Augmenter", "GuidanceUnavailable", "Prepared"]
