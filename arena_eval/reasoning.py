"""A reasoning model's thinking, kept apart from its answer: a judge must only ever see the answer.

Providers put the thinking they are given in its own field (`reasoning_content`, Anthropic's thinking blocks) into
`Completion.reasoning`. A server without a reasoning parser (llama.cpp, vLLM started without one) leaves it in the
text instead, as a `<think>…</think>` block at its start; `separate_reasoning` moves it out.

Only a block that opens the text is thinking. A closing tag with no opening one is text like any other: an ordinary
answer may hold a stray `</think>` (or an answer may plant one, hoping a judge that quotes it has its quote cut
off there), and nothing before it may be hidden from the judge or taken for a judge's thinking.
"""

from __future__ import annotations

import dataclasses
import re

from .records import Completion

# The tags around the thinking; `<thinking>` too, which some fine-tunes write.
_OPEN = re.compile(r"<(think|thinking)>", re.IGNORECASE)
_CLOSE = {tag: re.compile(rf"</{tag}\s*>", re.IGNORECASE) for tag in ("think", "thinking")}


def split_think(text: str, *, leading_only: bool = False) -> tuple[str, str | None]:
    """(answer, thinking) of a reply that starts with a `<think>` block; (text, None) for any other reply.

    The answer is what follows `</think>`, its leading whitespace stripped; the thinking is stripped. A block that
    is never closed (the reply was cut off while thinking) is all thinking, and the answer is "". A `<think>` later
    in the text is part of the answer (a reply may well write about the tag).

    `leading_only=False` reads the reply of a model known to open its block in the chat template (DeepSeek-R1, QwQ
    served without a reasoning parser): a closing `</think>` with no opening one ends its thinking. Nothing in the
    pipeline knows that of a model, so it always passes `leading_only=True` (separate_reasoning, verdict.read_verdict,
    answer imports): there a stray closing tag is part of the answer, and it never hides the text before it."""
    head = text.lstrip()
    if head[:1] != "<":  # nearly every reply: no closing tag either, found without a regex
        if leading_only:
            return text, None
        if "</think" not in text and "</THINK" not in text and "</Think" not in text:
            return text, None
        # DeepSeek-R1 and its distills (QwQ too) put `<think>` in the chat template: a server without a reasoning
        # parser returns the thinking with the closing tag only. Everything before the first one is thinking.
        closing = _CLOSE["think"].search(text) or _CLOSE["thinking"].search(text)
        if closing is None or _OPEN.search(text, 0, closing.start()):  # a reply that writes about the tags
            return text, None
        return text[closing.end():].lstrip(), text[: closing.start()].strip()
    opening = _OPEN.match(head)
    if opening is None:
        return text, None
    rest = head[opening.end():]
    closing = _CLOSE[opening.group(1).lower()].search(rest)
    if closing is None:
        return "", rest.strip()
    return rest[closing.end():].lstrip(), rest[: closing.start()].strip()


def separate_reasoning(completion: Completion) -> Completion:
    """`completion` with its text holding the answer only: a thinking block that opens the text (split_think with
    leading_only) is appended, after a blank line, to the reasoning the provider returned in its own field.

    `completion` itself when there is nothing to move; otherwise a copy (the argument is left as it was). The
    tokens are not touched: the thinking stays counted in `output_tokens`, and `reasoning_tokens` is left as the
    provider reported it (None when it did not; it is not guessed)."""
    answer, thinking = split_think(completion.text, leading_only=True)
    if thinking is None:
        return completion
    parts = [part for part in (completion.reasoning, thinking) if part]
    return dataclasses.replace(completion, text=answer, reasoning="\n\n".join(parts) if parts else None)
