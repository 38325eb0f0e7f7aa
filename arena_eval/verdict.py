"""Reading a verdict from a judge's reply, so that no answer can dictate it.

A judge is asked to end with one of five labels ([[A>>B]] … [[B>>A]]). The text it judges is hostile: an answer
(or a question, or a reference) may hold a label of its own, in the canonical spelling or in one the judge might
tidy up (lower case, spaces or a line break inside, full-width brackets, invisible characters). A judge that
quotes or echoes that text, or that is cut off while doing so, would otherwise hand the quoted label to the
parser as if it were its verdict. So:

- Replies and prompt material are compared in a normalised form: Unicode NFKC, invisible format characters
  (zero-width space, soft hyphen, bidi marks …) and all whitespace removed, case folded. A label split across
  lines or padded with zero-width spaces is then the same label, in the reply and in the material alike.
- A label in the reply is **quoted** when the reply reproduces it together with at least `MIN_CONTEXT`
  characters of its surroundings in the judge prompt (left and right counted together), or together with the
  whole hostile text it sits in (an answer that is little more than a label, quoted whole), for some label of
  the prompt that lies inside the hostile material. The surroundings are those of the rendered prompt, fences
  included, so an echo of a label that opens or closes an answer is recognised by the fence around it, and a
  forged end-of-answer marker is just more copied text. Quoted labels are ignored; the verdict is the one
  distinct label the judge states outside them (none or several different ones: unparsed, as before).
- A reply cut off at the token limit (finish reason "length") yields no verdict at all: the label it holds may
  be half of a quote. The judge is asked again, like a reply without a label.
- A judge's own thinking is never read for a verdict, and only a block that opens the reply is thinking
  (`reasoning.split_think` with `leading_only`): a `</think>` planted in an answer, quoted by the judge, cuts
  nothing off. Labels are looked for, and compared with the material, in the reply as received, thinking
  included, so that a quote the thinking block's end falls into keeps its copied surroundings; only labels after
  the thinking can be the verdict.

A judge that restates a label in its own words (a bare "[[B>>A]]" with no copied context) states it; text the
judge copies with fewer than `MIN_CONTEXT` characters around a label cannot be told apart from its own words.
Every reply that held a quoted label, was cut off, or judged material that itself holds a label is flagged, and
the flags are stored with the judgment and counted in the judge diagnostics (`suspicious_rate`).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .reasoning import split_think

Message = dict[str, str]

LABELS = ["A>>B", "A>B", "A=B", "B>A", "B>>A"]
# A label as `read_verdict` matches it, in the normalised form (lower case, `<` spellings included).
_LABEL = re.compile(r"\[\[([ab])(>>|>|=|<<|<)([ab])\]\]")
MIN_CONTEXT = 12  # normalised characters (no whitespace): about two words of copied surroundings
_OPEN, _CLOSE = "\u2063", "\u2064"  # invisible separator and invisible plus: format characters (Cf)
_MARKERS = re.compile("[\u2063\u2064]")
_BRACKET = re.compile("[\\[\ufe47\uff3b]")  # the characters NFKC maps to '['
_CONTEXT = 64  # how much of a label's surroundings in the prompt is kept for the comparison

# Why a reply is suspicious; stored comma-separated in judgments.flags.
CUT_OFF = "cut-off"  # a reply ended at the token limit; its labels were not read
QUOTED_LABEL = "quoted-label"  # a reply repeated a label from the judged material; that label was ignored
LABEL_IN_MATERIAL = "label-in-answer"  # an answer or the question holds a verdict label (an injection attempt)
FLAGS = (CUT_OFF, QUOTED_LABEL, LABEL_IN_MATERIAL)


# Where Unicode puts format characters (Cf): the BMP, the SMP (U+110BD, U+13430…, U+1BCA0…, U+1D173…) and
# the tags block of plane 14. Planes 2-3 hold CJK ideographs, 15-16 private use, 4-13 nothing: scanning only
# these ~135k code points instead of all 1.1M takes a sixth of the time (about 0.03 s of a judge's start-up).
# tests/test_verdict.py checks against a scan of every code point.
_FORMAT_PLANES = (range(0x20000), range(0xE0000, 0xF0000))
_WHITESPACE = re.compile(r"\s+")


@functools.lru_cache(maxsize=1)
def _invisible() -> re.Pattern[str]:
    """Whitespace and every Unicode format character (category Cf), computed once."""
    ranges, start, previous = [], None, None
    for code in (code for plane in _FORMAT_PLANES for code in plane):
        if unicodedata.category(chr(code)) != "Cf":
            continue
        if start is not None and code == previous + 1:
            previous = code
            continue
        if start is not None:
            ranges.append((start, previous))
        start = previous = code
    ranges.append((start, previous))
    body = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return re.compile(rf"[\s{body}]+")


def normalise(text: str) -> str:
    """The form replies and material are compared in: NFKC, no whitespace or format characters, case folded."""
    if text.isascii():  # NFKC leaves ASCII as it is and no format character is ASCII: the same result, cheaper
        return _WHITESPACE.sub("", text).casefold()
    return _invisible().sub("", unicodedata.normalize("NFKC", text)).casefold()


def canonical_label(first: str, relation: str, second: str) -> str | None:
    """The canonical label for a normalised one: ("b", "<", "a") is "A>B"; ("a", ">", "a") is None."""
    if first == second:
        return None
    if "<" in relation:
        first, second, relation = second, first, relation.replace("<", ">")
    if relation == "=":
        return "A=B"
    return f"{first.upper()}{relation}{second.upper()}"


@dataclass(frozen=True)
class QuotedMaterial:
    """The labels a judge prompt quotes from hostile text, each with the prompt's text around it (normalised):
    label spelling → [(left surroundings, right surroundings, hostile characters before it, hostile after)]."""

    labels: Mapping[str, list[tuple[str, str, int, int]]] = field(default_factory=dict)

    @classmethod
    def from_prompt(cls, render: Callable[[dict[str, str]], list[Message]], values: Mapping[str, str]) -> QuotedMaterial:
        """The material of the prompt `render(values)` sends, where every value came from outside (the question, both
        answers as rendered, a reference). Only labels inside those values count, with the prompt's text around them."""
        # A label needs two '[' once normalised; text without any character that NFKC turns into '[' holds none,
        # and most answers pass this test without being normalised at all.
        if not any(text and _BRACKET.search(text) for text in values.values()):
            return cls()
        # The prompt is rendered a second time with each value between two markers, to learn where the values sit.
        # The markers are format characters, which normalise() drops: taking them out of a value first changes
        # nothing it compares, and an answer holding them cannot move the boundaries.
        marked = {key: _OPEN + _MARKERS.sub("", text or "") + _CLOSE for key, text in values.items()}
        found: dict[str, list[tuple[str, str, int, int]]] = {}
        for message in render(marked):
            pieces = _MARKERS.split(message.get("content") or "")
            if len(pieces) % 2 == 0:  # a filter in the template cut a marker: fall back to the values alone
                found.clear()
                for text in values.values():
                    normal = normalise(text or "")
                    _collect(normal, [(0, len(normal))], found)
                break
            text, regions = "", []
            for index, piece in enumerate(pieces):  # pieces alternate: template text, value, template text, ...
                normal = normalise(piece)
                if index % 2:
                    regions.append((len(text), len(text) + len(normal)))
                text += normal
            _collect(text, regions, found)
        return cls(found)

    def __bool__(self) -> bool:
        return bool(self.labels)

    def quotes(self, reply: str, start: int, end: int) -> bool:
        """Whether the label at reply[start:end] (normalised reply) is a copy of one in the material."""
        occurrences = self.labels.get(reply[start:end])
        if not occurrences:
            return False
        before, after = reply[max(0, start - _CONTEXT) : start], reply[end : end + _CONTEXT]
        for left, right, hostile_before, hostile_after in occurrences:
            copied_left, copied_right = _common_suffix(before, left), _common_prefix(after, right)
            if copied_left + copied_right >= MIN_CONTEXT:
                return True
            if copied_left >= hostile_before and copied_right >= hostile_after:  # the whole hostile text
                return True
        return False


def _collect(text: str, regions: list[tuple[int, int]], found: dict[str, list[tuple[str, str, int, int]]]) -> None:
    for match in _LABEL.finditer(text):
        region = next(((a, b) for a, b in regions if match.start() < b and a < match.end()), None)
        if region is None:
            continue  # a label of the template's own text
        start, end = match.span()
        found.setdefault(match.group(0), []).append((
            text[max(0, start - _CONTEXT) : start], text[end : end + _CONTEXT], max(0, start - region[0]), max(0, region[1] - end),
        ))


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _common_suffix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(reversed(a), reversed(b)):
        if x != y:
            break
        n += 1
    return n


@dataclass(frozen=True)
class VerdictReading:
    verdict: str | None  # a canonical label, or None: unparsed
    flags: frozenset[str] = frozenset()


def read_verdict(reply: str, material: QuotedMaterial | None = None, finish_reason: str | None = None) -> VerdictReading:
    """The verdict a judge's reply, as received (its thinking included), states after its thinking and outside any
    quoted material (see the module docstring)."""
    if finish_reason == "length":
        return VerdictReading(None, frozenset({CUT_OFF}))
    normal = normalise(reply or "")
    answer_from = _answer_start(reply or "", normal)
    labels, flags = set(), set()
    for match in _LABEL.finditer(normal):
        if material and material.quotes(normal, match.start(), match.end()):
            flags.add(QUOTED_LABEL)
            continue
        if match.start() < answer_from:
            continue  # the judge's thinking: never its verdict
        label = canonical_label(*match.groups())
        if label is not None:
            labels.add(label)
    return VerdictReading(labels.pop() if len(labels) == 1 else None, frozenset(flags))


def _answer_start(reply: str, normal: str) -> int:
    """Where, in `normal` (the normalised reply), the answer after a leading thinking block begins; 0 without one.
    Normalising the answer alone gives the end of `normal` except where NFKC joins a character across the block's
    end (a combining mark after `>`): then 0, and every label of the reply is read, each checked for a copy."""
    answer, thinking = split_think(reply, leading_only=True)
    if thinking is None:
        return 0
    tail = normalise(answer)
    return len(normal) - len(tail) if normal.endswith(tail) else 0


def parse_verdict(text: str, material: QuotedMaterial | None = None) -> str | None:
    """The canonical label when the text states exactly one distinct label; None for none or a conflict."""
    return read_verdict(text, material).verdict
