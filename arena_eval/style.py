"""Answer style for style control (docs/design.md §3.4.3): length and markdown counts of an answer, and the per-battle
style features (a − b) / (a + b + 1) that rating.py adds to the Bradley-Terry regression.

Pure functions; the pipeline reads answer texts from the store and passes them in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import astuple, dataclass

from .errors import ArenaError
from .providers.base import estimate_tokens
from .records import Judgment

FEATURES = ("length", "headers", "list_items", "bold")
# Battle columns that carry the features (model_a's answer against model_b's).
STYLE_COLUMNS = tuple(f"style_{name}" for name in FEATURES)


@dataclass(frozen=True)
class StyleCounts:
    """What a judge may reward besides substance. Markdown inside code fences and inline code is not counted."""

    length: int  # output tokens: the stored count, else estimate_tokens (~4 characters a token)
    headers: int  # ATX (`## Title`) and setext (a line underlined by === or ---) headings
    list_items: int  # bullet (-, *, +) and numbered (1. or 1)) items, nested ones included
    bold: int  # **bold** and __bold__ spans


# Any indentation: answers often nest code blocks in list items, deeper than CommonMark's three spaces.
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_QUOTE = re.compile(r"^ {0,3}(?:> ?)+")
_ATX = re.compile(r"^ {0,3}#{1,6}[ \t]+\S")
_SETEXT = re.compile(r"^ {0,3}(?:=+|-{2,})[ \t]*$")
_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")  # thematic break: *** or - - -, not a list
_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\S")
_INLINE_CODE = re.compile(r"(`+).+?\1")
_BOLD = re.compile(r"\*\*(?=[^*\s])(?:[^*]|\*(?!\*))*?(?<=[^*\s])\*\*|(?<!\w)__(?=[^_\s]).*?(?<=[^_\s])__(?!\w)")


def style_counts(text: str, output_tokens: int | None = None) -> StyleCounts:
    """Style counts of one answer. `output_tokens` is the provider's count when the store has one."""
    headers = list_items = bold = 0
    fence: str | None = None  # the opening fence while inside a code block
    previous = ""  # the previous line when it could be a setext heading's text
    for raw in (text or "").splitlines():
        if fence is not None:
            stripped = raw.strip()
            # A closing fence: the same character, at least as long, nothing after it.
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
            continue
        opening = _FENCE.match(raw)
        if opening:
            fence, previous = opening.group(1), ""
            continue
        line = _QUOTE.sub("", raw, count=1)
        if _SETEXT.match(line) and previous:
            headers += 1
            previous = ""
            continue
        if _BREAK.match(line):
            previous = ""
            continue
        if _ATX.match(line):
            headers += 1
            previous = ""
        elif _ITEM.match(line):
            list_items += 1
            previous = ""
        else:
            previous = line.strip()
        bold += len(_BOLD.findall(_INLINE_CODE.sub("", line)))
    # An unclosed fence runs to the end of the answer (as in CommonMark): nothing after it counts.
    length = output_tokens if output_tokens is not None and output_tokens >= 0 else estimate_tokens(text or "")
    return StyleCounts(int(length), headers, list_items, bold)


def style_features(a: StyleCounts, b: StyleCounts) -> tuple[float, ...]:
    """(a − b) / (a + b + 1) per count, in FEATURES order: 0 when the answers look alike, → ±1 when one dominates."""
    return tuple((x - y) / (x + y + 1.0) for x, y in zip(astuple(a), astuple(b)))


def answer_styles(
    judgments: Iterable[Judgment], read_answers: Callable[[list[str], tuple[str, ...]], list[tuple]]
) -> dict[str, StyleCounts]:
    """answer_id → StyleCounts of every answer the judgments compare. `read_answers(ids, columns)` returns
    rows of the given columns (Store.answer_rows). A conversation's counts are over every turn it answered, as
    its output tokens are."""
    ids = sorted({answer_id for j in judgments for answer_id in (j.answer_a_id, j.answer_b_id)})
    styles = {answer_id: style_counts(_every_turn(text, turns), tokens)
              for answer_id, text, tokens, turns in read_answers(ids, ("answer_id", "text", "output_tokens", "turns"))}
    missing = [answer_id for answer_id in ids if answer_id not in styles]
    if missing:
        raise ArenaError(f"{len(missing)} judged answer(s) are not in the store (e.g. {missing[0]}): "
                         "style control needs their text")
    return styles


def _every_turn(text: str, turns: str | None) -> str:
    """The text a conversation's style is counted on: each turn's answer (`turns` as stored, JSON), in order."""
    return text if not turns else "\n\n".join(turn["text"] for turn in json.loads(turns))
