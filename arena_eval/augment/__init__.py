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
from .guidance import Guide, GuidanceUnavailable


@dataclass
class Prepared:
    messages: list[Message]
    context_ids: list[str] = field(default_factory=list)


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

    def _passages(self, question: Question) -> list:
        if question.question_id not in self._retrieved:
            from .rag import get_retriever

            retriever = get_retriever(self.config.rag, self.base_dir)
            self._retrieved[question.question_id] = [p for p, _ in retriever.search(question.prompt, self.config.rag.top_k)]
        return self._retrieved[question.question_id]

    def compose(self, contestant: ContestantConfig, question: Question, guidance: str | None = None) -> Prepared:
        """The messages for `question`; a template that fails on it (a render limit) raises AugmentError, which
        makes this one answer a recorded error."""
        try:
            return self._compose(contestant, question, guidance)
        except TemplateError as exc:
            raise AugmentError(f"prompt template failed for question {question.question_id}: {exc}") from None

    def _compose(self, contestant: ContestantConfig, question: Question, guidance: str | None) -> Prepared:
        system = contestant.system_prompt
        user = question.prompt
        context_ids: list[str] = []
        if contestant.augment == "guidance":
            system = self.guide.system_prompt(system, guidance or "")
        elif contestant.augment == "rag":
            passages = self._passages(question)
            context_ids = [p.id for p in passages]
            user = render(self._rag_template, question=question.prompt, passages=passages)
        messages: list[Message] = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": user})
        return Prepared(messages, context_ids)

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
