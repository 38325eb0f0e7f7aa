"""Guidance (docs/design.md §3.2.1): a guide model writes a reference answer, then guidance from question + reference.

Generated once per (question, guide config) and cached in the store; concurrent requests for the same
question share one generation.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from jinja2 import TemplateError

from ..config import GuideConfig
from ..errors import AugmentError
from ..providers import make_provider
from ..providers.retry import RetriesExhausted, call_with_retries
from ..questions import Question
from ..records import GuidanceCounts
from ..templates import read_template, render


class GuidanceUnavailable(AugmentError):
    """The guide could not produce guidance for a question; the guided answer becomes an error."""


class Guide:
    def __init__(self, config: GuideConfig, store, base_dir: str | Path = ".", run_id: str | None = None):
        self.config = config
        self.store = store
        self.run_id = run_id
        folder = Path(base_dir) / config.prompt_dir if config.prompt_dir else None
        self.reference_template = read_template(folder, "guide_reference.j2")
        self.guidance_template = read_template(folder, "guide_guidance.j2")
        self.system_template = read_template(folder, "guidance_system.j2")
        self.config_id = config.config_id(self.reference_template + "\x1e" + self.guidance_template)
        self.provider = make_provider(config, base_dir)
        self._started = False
        self._start_lock = asyncio.Lock()
        self._inflight: dict[str, asyncio.Future] = {}

    def stored(self, question: Question) -> str | None:
        return self.store.get_guidance(question.question_id, self.config_id)

    async def get(self, question: Question) -> str:
        text = self.stored(question)
        if text is not None:
            return text
        future = self._inflight.get(question.question_id)
        if future is None:
            future = asyncio.ensure_future(self._generate(question))
            self._inflight[question.question_id] = future
            future.add_done_callback(lambda _: self._inflight.pop(question.question_id, None))
        return await asyncio.shield(future)

    async def _ask(self, prompt: str) -> tuple[str, int, int]:
        if not self._started:
            async with self._start_lock:
                if not self._started:
                    await self.provider.start()
                    self._started = True
        try:
            completion, _ = await call_with_retries(
                self.config, lambda: self.provider.complete([{"role": "user", "content": prompt}])
            )
        except RetriesExhausted as exc:
            raise GuidanceUnavailable(f"guide model failed: {exc.reason}") from None
        return completion.text, completion.input_tokens or 0, completion.output_tokens or 0

    async def _generate(self, question: Question) -> str:
        try:
            return await self._write(question)
        except TemplateError as exc:  # a guide template that fails on this question's text: this one is missing
            raise GuidanceUnavailable(f"guide prompt template failed: {exc}") from None

    async def _write(self, question: Question) -> str:
        tokens_in = tokens_out = 0
        if self.config.use_question_reference and question.reference:
            reference = question.reference
        else:
            reference, i, o = await self._ask(render(self.reference_template, question=question.prompt))
            tokens_in, tokens_out = tokens_in + i, tokens_out + o
        guidance, i, o = await self._ask(render(self.guidance_template, question=question.prompt, reference=reference))
        self.store.save_guidance(
            question.question_id, self.config_id, reference, guidance, tokens_in + i, tokens_out + o, time.time(), self.run_id
        )
        return guidance

    def system_prompt(self, system_prompt: str | None, guidance: str) -> str:
        return render(self.system_template, system_prompt=system_prompt or "", guidance=guidance)

    async def close(self) -> None:
        if self._started:
            await self.provider.close()
            self._started = False


async def build_guidance(guide: Guide, questions, progress, counts: GuidanceCounts) -> None:
    """Generate missing guidance ahead of collection (the `guidance` command; `run` also fills gaps lazily),
    `guide.config.concurrency` questions at a time; a question the guide fails on is counted and listed."""
    guide.provider.api_key()
    progress.add("guidance", len(questions))
    limit = asyncio.Semaphore(guide.config.concurrency)

    async def one(question: Question) -> None:
        async with limit:
            if guide.stored(question) is not None:
                counts.stored += 1
                progress.advance("guidance", cached=True)
                return
            try:
                await guide.get(question)
            except AugmentError as exc:
                counts.errors += 1
                counts.error_lines.append(f"{question.question_id}: {exc}")
                progress.advance("guidance", error=True)
                return
            counts.new += 1
            progress.advance("guidance")

    await asyncio.gather(*(one(q) for q in questions))
