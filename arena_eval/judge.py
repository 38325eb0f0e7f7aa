"""Judging (docs/design.md §3.3): blinded pairwise prompts, one re-ask, and games → battles.

Prompting and parsing are separate: verdicts are read by `verdict.read_verdict`, which sees the judge's reply and
the hostile material the prompt quoted, never the prompt's instructions.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import TemplateError

from .config import JudgeConfig, VerdictWeights
from .errors import ConfigError
from .pricing import completion_cost, price_for
from .providers.base import Provider
from .providers.retry import call_with_retries
from .reasoning import separate_reasoning
from .records import Game, Judgment, Message
from .style import STYLE_COLUMNS, StyleCounts, style_features
from .templates import read_template, render
from .verdict import LABEL_IN_MATERIAL, LABELS, QuotedMaterial, normalise, parse_verdict, read_verdict  # noqa: F401

if TYPE_CHECKING:
    import pandas as pd  # imported by the two functions that build frames: judging itself needs none

_FENCE = re.compile(r"=+ *(BEGIN|END) (ANSWER [AB]|REFERENCE ANSWER) *=+", re.IGNORECASE)
# A line that, once normalised (verdict.normalise), names an answer's fence: "======== END ANSWER B ========" in any
# width, case or spacing, with invisible characters inside or without its '=' runs.
_FENCE_WORDS = re.compile(r"(begin|end)(answer[ab]|referenceanswer)")
_FENCE_CHARS = re.compile(r"[=\uff1d\u2550\u2261\u268c]")


@dataclass(frozen=True)
class JudgePrompts:
    system: str
    user: str
    reask: str
    # judge_user_reference.j2: the user prompt with a reference answer (judge.reference); None when not used.
    user_reference: str | None = None
    # judge_user_conversation.j2: the user prompt for a question of several turns (both whole conversations).
    conversation: str | None = None

    @classmethod
    def load(cls, prompt_dir: str | Path | None = None, with_reference: bool = False) -> JudgePrompts:
        texts = {part: read_template(prompt_dir, f"judge_{part}.j2") for part in ("system", "user", "reask")}
        # A prompt folder without its own reference or conversation template uses the bundled one.
        if with_reference:
            texts["user_reference"] = read_template(_own_or_bundled(prompt_dir, "judge_user_reference.j2"),
                                                    "judge_user_reference.j2")
        texts["conversation"] = read_template(_own_or_bundled(prompt_dir, "judge_user_conversation.j2"),
                                              "judge_user_conversation.j2")
        prompts = cls(**texts)
        prompts.validate(str(prompt_dir or "prompts/"))
        return prompts

    @property
    def fingerprint(self) -> str:
        """Identifies the single-turn prompts (part of the judge's config id). The conversation template is not in
        it: it identifies conversation games only (conversation_key), so that adding it left every stored
        single-turn verdict valid."""
        parts = (self.system, self.user, self.reask) + ((self.user_reference,) if self.user_reference else ())
        return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()[:16]

    def conversation_key(self, last_only: bool) -> str:
        """Part of a conversation game's id: the conversation template and which turns are judged."""
        text = f"{self.conversation}\x1e{'last' if last_only else 'all'}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def validate(self, where: str) -> None:
        """Refuse templates that cannot work: syntax errors, unsafe expressions (the sandbox refuses them; the
        re-ask template too, though it is only rendered mid-run), or a prompt that never shows the labels."""
        try:
            sample = self.render("Q?", "first answer", "second answer")
            render(self.reask)
        except TemplateError as exc:
            raise ConfigError(f"{where}: judge template error: {exc}") from None
        shown = "\n".join(m["content"] for m in sample)
        if not all(f"[[{label}]]" in shown for label in LABELS):
            raise ConfigError(
                f"{where}: the judge prompt must show all five labels ([[A>>B]] [[A>B]] [[A=B]] [[B>A]] [[B>>A]]); "
                "without them the judge's verdicts cannot be parsed"
            )
        if "first answer" not in shown or "second answer" not in shown or "Q?" not in shown:
            raise ConfigError(f"{where}: judge_user.j2 must use {{{{ question }}}}, {{{{ answer_a }}}} and {{{{ answer_b }}}}")
        if self.conversation is not None:
            self._validate_conversation(where)
        if self.user_reference is not None:
            try:
                shown = self.render("Q?", "first answer", "second answer", "the reference")[1]["content"]
            except TemplateError as exc:
                raise ConfigError(f"{where}: judge reference template error: {exc}") from None
            if not all(text in shown for text in ("Q?", "first answer", "second answer", "the reference")):
                raise ConfigError(f"{where}: judge_user_reference.j2 must use {{{{ question }}}}, {{{{ reference }}}}, "
                                  "{{ answer_a }} and {{ answer_b }}")

    def _validate_conversation(self, where: str) -> None:
        sample = {"questions": ["first turn Q?", "second turn Q?"], "answer_a": ["A one", "A two"],
                  "answer_b": ["B one", "B two"]}
        for last_only in (False, True):
            try:
                shown = "\n".join(m["content"] for m in self.render(**sample, last_only=last_only))
            except TemplateError as exc:
                raise ConfigError(f"{where}: judge conversation template error: {exc}") from None
            if not all(f"[[{label}]]" in shown for label in LABELS):
                raise ConfigError(f"{where}: the judge prompt for conversations (judge_system.j2 with "
                                  "judge_user_conversation.j2, from this folder or the bundled one) must show all five "
                                  "labels; add them to judge_user_conversation.j2 in this folder")
            missing = [t for texts in sample.values() for t in texts if t not in shown]
            if missing:
                raise ConfigError(f"{where}: judge_user_conversation.j2 must show every turn's question, answer_a and "
                                  "answer_b (loop over `turns`: turn.question, turn.answer_a, turn.answer_b)")

    def render(self, question: str | Sequence[str] = "", answer_a: str | Sequence[str] = "",
               answer_b: str | Sequence[str] = "", reference: str | None = None, *,
               questions: Sequence[str] | None = None, last_only: bool = False) -> list[Message]:
        """The judge's messages for one game. A conversation gives `questions` (every user turn) and, as answer_a
        and answer_b, each assistant's answers turn by turn."""
        return self._messages(self._values(question, answer_a, answer_b, reference, questions, last_only))

    def render_quoting(self, question: str | Sequence[str] = "", answer_a: str | Sequence[str] = "",
                       answer_b: str | Sequence[str] = "", reference: str | None = None, *,
                       questions: Sequence[str] | None = None,
                       last_only: bool = False) -> tuple[list[Message], QuotedMaterial]:
        """The judge's messages, and the labels they quote from the question, the answers and the reference (for
        read_verdict): every one of them came from outside."""
        values = self._values(question, answer_a, answer_b, reference, questions, last_only)
        return self._messages(values), QuotedMaterial.from_prompt(self._messages, values)

    def _values(self, question, answer_a, answer_b, reference: str | None, questions: Sequence[str] | None,
                last_only: bool) -> dict[str, str]:
        """The outside text of the prompt as a flat mapping (QuotedMaterial marks each value); a conversation's
        turns are `question_1`, `answer_a_1`, ... and `last_only` is carried in the key `_last_only` (no text)."""
        if questions is None:
            values = {"question": question, "answer_a": _defuse(answer_a), "answer_b": _defuse(answer_b)}
            if reference is not None and self.user_reference is not None:
                values["reference"] = _defuse(reference)
            return values
        if not len(questions) == len(answer_a) == len(answer_b):
            raise ValueError("a conversation needs one answer of each assistant per user turn")
        values = {}
        for number, (q, a, b) in enumerate(zip(questions, answer_a, answer_b), start=1):
            values[f"question_{number}"], values[f"answer_a_{number}"] = q, _defuse(a)
            values[f"answer_b_{number}"] = _defuse(b)
        if reference is not None and self.user_reference is not None:
            values["reference"] = _defuse(reference)
        if last_only:
            values["_last_only"] = ""
        return values

    def _messages(self, values: dict[str, str]) -> list[Message]:
        if "question_1" in values:
            return self._conversation_messages(values)
        user = self.user_reference if "reference" in values else self.user
        return [
            {"role": "system", "content": render(self.system, **values)},
            {"role": "user", "content": render(user, **values)},
        ]

    def _conversation_messages(self, values: dict[str, str]) -> list[Message]:
        count = sum(1 for key in values if key.startswith("question_"))
        turns = [{"number": n, "question": values[f"question_{n}"], "answer_a": values[f"answer_a_{n}"],
                  "answer_b": values[f"answer_b_{n}"]} for n in range(1, count + 1)]
        extra = {"reference": values["reference"]} if "reference" in values else {}
        last = turns[-1]
        return [
            # The system prompt sees the last turn as the question and answers, as a single-turn game would.
            {"role": "system", "content": render(self.system, question=last["question"], answer_a=last["answer_a"],
                                                 answer_b=last["answer_b"], **extra)},
            {"role": "user", "content": render(self.conversation, turns=turns, last_only="_last_only" in values,
                                               **extra)},
        ]


@dataclass(frozen=True)
class RunJudge:
    """One judge of a run: its name, its config, its prompts and the config id its verdicts are stored under."""

    name: str
    config: JudgeConfig
    prompts: JudgePrompts
    config_id: str
    # category → the prompts for that category's questions (judge.prompts_by_category)
    by_category: dict[str, JudgePrompts] = field(default_factory=dict)

    @classmethod
    def load(cls, config: JudgeConfig, resolve: Callable[[str], Path]) -> RunJudge:
        """`resolve` turns the config's relative paths into real ones (RunConfig.resolve)."""
        with_reference = config.reference != "none"
        prompts = JudgePrompts.load(resolve(config.prompt_dir) if config.prompt_dir else None, with_reference)
        by_category = {category: JudgePrompts.load(resolve(folder), with_reference)
                       for category, folder in config.prompts_by_category.items()}
        return cls(config.label, config, prompts, config.config_id(prompts.fingerprint), by_category)

    def prompts_for(self, category: str | None) -> JudgePrompts:
        """The prompts for a question of `category`: the category's own, else the judge's."""
        return self.by_category.get(category, self.prompts) if category is not None else self.prompts

    def game_variant(self, question_id: str, scope) -> str | None:
        """What, beyond the judge's config id, identifies its games on one question (`scope`: the RunScope): the
        category's own prompts where it has them, and for a conversation the conversation template and the turns
        judged. None for the usual single-turn question under the judge's own prompts."""
        prompts = self.prompts_for(scope.category_of(question_id)) if self.by_category else self.prompts
        parts = []
        if prompts is not self.prompts:
            parts.append(f"prompts {prompts.fingerprint}")
        if question_id in scope.conversations:
            parts.append(prompts.conversation_key(self.config.turns == "last"))
        return " ".join(parts) or None

    @property
    def reference_contestant(self) -> str | None:
        """The contestant whose answer is this judge's reference, if it takes one from a contestant."""
        return None if self.config.reference in ("none", "question") else self.config.reference


def _own_or_bundled(prompt_dir: str | Path | None, name: str) -> Path | None:
    """The prompt folder when it holds `name`, else None (the bundled prompts)."""
    return Path(prompt_dir) if prompt_dir and (Path(prompt_dir) / name).exists() else None


def _defuse(answer: str) -> str:
    """Keep an answer from closing its fence early and posing as prompt text: a line of the answer that reads as a
    fence (in any spelling a model would still take for one) loses its '=' runs, so the real fences stay the only
    ones in the prompt."""
    if not _FENCE_WORDS.search(normalise(answer)):
        return answer  # the common case: no line of it can read as a fence
    lines = answer.split("\n")
    for i, line in enumerate(lines):
        if _FENCE_WORDS.search(normalise(line)):
            lines[i] = _FENCE_CHARS.sub("-", _FENCE.sub(lambda m: m.group(0).replace("=", "-"), line))
    return "\n".join(lines)


def game_id(judge_config_id: str, answer_a_id: str, answer_b_id: str, reference_id: str | None = None,
            conversation: str | None = None) -> str:
    """Identifies a game. A reference taken from a contestant's answer is part of it: another reference answer
    makes another game; so is, for a conversation, the conversation template and the turns judged
    (JudgePrompts.conversation_key)."""
    key = f"{judge_config_id}\x1f{answer_a_id}\x1f{answer_b_id}" + (f"\x1f{reference_id}" if reference_id else "")
    if conversation:
        key += f"\x1e{conversation}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def games_for(judge_config_id: str, question_id: str, contestant: str, baseline: str,
              contestant_answer_id: str, baseline_answer_id: str, reference_id: str | None = None,
              conversation: str | None = None) -> list[Game]:
    """Game 1 puts the baseline in position A; game 2 swaps the positions. `conversation`: the judge's
    conversation_key when the question has several turns."""
    pairs = [(1, baseline_answer_id, contestant_answer_id), (2, contestant_answer_id, baseline_answer_id)]
    return [
        Game(game_id(judge_config_id, a, b, reference_id, conversation), question_id, contestant, baseline, number, a, b)
        for number, a, b in pairs
    ]


@dataclass(frozen=True)
class GameRequest:
    """One game ready to ask a judge: the game, the question's prompt (a conversation: its user turns), the texts
    in positions A and B (a conversation: each assistant's turns), the reference to show (None: none) and the
    judge's prompts for the question's category. The stream poses these; a judge worker or batch mode asks them."""

    game: Game
    question: str | list[str]
    text_a: str | list[str]
    text_b: str | list[str]
    reference: str | None
    prompts: JudgePrompts


def judge_messages(question: str | Sequence[str], answer_a: str | Sequence[str], answer_b: str | Sequence[str],
                   config: JudgeConfig, prompts: JudgePrompts,
                   reference: str | None = None) -> tuple[list[Message], QuotedMaterial]:
    """The judge's first messages for one game and the material they quote (judge_game; a batch judge's request)."""
    if isinstance(question, str):
        return prompts.render_quoting(question, answer_a, answer_b, reference)
    return prompts.render_quoting(answer_a=answer_a, answer_b=answer_b, reference=reference, questions=question,
                                  last_only=config.turns == "last")


async def judge_game(
    game: Game,
    question: str | Sequence[str],
    answer_a: str | Sequence[str],
    answer_b: str | Sequence[str],
    config: JudgeConfig,
    judge_config_id: str,
    provider: Provider,
    prompts: JudgePrompts,
    run_id: str | None = None,
    reference: str | None = None,
) -> Judgment:
    """Ask the judge; re-ask in the same conversation until a label appears or the attempts run out. With
    `reference`, the judge's prompt holds that reference answer (judge_user_reference.j2). A conversation gives
    its user turns as `question` and each assistant's turns as `answer_a` and `answer_b` (lists of equal length):
    the judge sees both whole conversations (judge_user_conversation.j2) and, with `turns: last`, grades the last
    turn only. A judge's own reasoning (a reasoning field, or a `<think>` block that opens its reply) is never read
    for a verdict; a `</think>` without an opening tag is text like any other.

    Raises providers.retry.RetriesExhausted when the judge endpoint itself keeps failing.
    """
    messages, material = judge_messages(question, answer_a, answer_b, config, prompts, reference)
    overrides = provider.constrain_to([f"[[{label}]]" for label in LABELS]) if config.constrain_labels else {}
    flags = {LABEL_IN_MATERIAL} if material else set()
    replies: list[str] = []
    input_tokens = output_tokens = 0
    cost: float | None = 0.0
    started = time.perf_counter()
    verdict = None
    for attempt in range(1, config.attempts + 1):
        completion, _ = await call_with_retries(config, lambda: provider.complete(messages, **overrides))
        # Read as received: read_verdict skips a leading thinking block itself, and checks for copied labels
        # across its end (a forged `</think>` in a quoted answer must not cut a quote's surroundings off).
        reading = read_verdict(completion.text, material, completion.finish_reason)
        completion = separate_reasoning(completion)
        replies.append(completion.text)
        input_tokens += completion.input_tokens or 0
        output_tokens += completion.output_tokens or 0
        call_cost = completion_cost(completion, price_for(config))
        cost = None if cost is None or call_cost is None else cost + call_cost
        verdict = reading.verdict
        flags |= reading.flags
        if verdict is not None or attempt == config.attempts:
            break
        messages = messages + [
            # A reply that was all thinking has no text: an empty assistant message is refused by some APIs.
            {"role": "assistant", "content": completion.text or "(no verdict given)"},
            {"role": "user", "content": render(prompts.reask)},
        ]
    return Judgment(
        game_id=game.game_id,
        judge_config_id=judge_config_id,
        question_id=game.question_id,
        contestant=game.contestant,
        baseline=game.baseline,
        game=game.game,
        answer_a_id=game.answer_a_id,
        answer_b_id=game.answer_b_id,
        verdict=verdict,
        judge_text="\n\n---- re-asked ----\n\n".join(replies),
        attempts=len(replies),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_s=time.perf_counter() - started,
        run_id=run_id,
        cost=cost,
        flags=",".join(sorted(flags)) or None,
    )


def battle_outcome(verdict: str, game: int, weights: VerdictWeights) -> tuple[str, float]:
    """(winner, weight) with model_a = baseline and model_b = contestant, whatever the game's positions."""
    strong, label_winner = ">>" in verdict, verdict[0]
    if "=" in verdict:
        return "tie", weights.tie
    # In game 1 position A holds the baseline (model_a); in game 2 the contestant.
    a_position_won = label_winner == "A"
    baseline_won = a_position_won if game == 1 else not a_position_won
    return ("model_a" if baseline_won else "model_b"), (weights.strong if strong else weights.plain)


def battles_from_judgments(
    judgments: Iterable[Judgment], weights: VerdictWeights, styles: Mapping[str, StyleCounts] | None = None
) -> pd.DataFrame:
    """One row per parsed game: question_id, model_a (baseline), model_b (contestant), winner, weight.

    With `styles` (answer_id → StyleCounts, for style control) also the style features of the baseline's
    answer against the contestant's, in columns style.STYLE_COLUMNS.
    """
    import pandas as pd

    rows = []
    for j in judgments:
        if j.verdict is None:
            continue
        winner, weight = battle_outcome(j.verdict, j.game, weights)
        row = (j.question_id, j.baseline, j.contestant, winner, weight)
        if styles is not None:
            # Game 1 shows the baseline's answer in position A, game 2 in position B.
            base, other = (j.answer_a_id, j.answer_b_id) if j.game == 1 else (j.answer_b_id, j.answer_a_id)
            row += style_features(styles[base], styles[other])
        rows.append(row)
    columns = ["question_id", "model_a", "model_b", "winner", "weight"]
    return pd.DataFrame(rows, columns=columns + (list(STYLE_COLUMNS) if styles is not None else []))


def position_diagnostics(judgments: Iterable[Judgment], baseline: str | None = None) -> pd.DataFrame:
    """Judge diagnostics per contestant, plus an overall row ("*").

    consistency: share of questions with both games parsed whose outcomes agree once positions are un-swapped;
    first_position_win_rate: share of decisive parsed games won by whichever answer sat in position A;
    suspicious_rate: share of judged games (parsed or not) whose replies were flagged by verdict.read_verdict
    (a label copied from the answers, a reply cut off, answers that hold a label).

    With `baseline` (the run's), a game whose `baseline` is another contestant (pairing's games between
    contestants) counts for both of its contestants; the overall row counts every game once.
    """
    import pandas as pd

    outcomes: dict[tuple[str, str, str], dict[int, str]] = {}
    first_wins: dict[str, list[int]] = {}
    suspicious: dict[str, list[int]] = {}
    every_first: list[int] = []
    every_suspicious: list[int] = []
    for j in judgments:
        sides = [j.contestant] if baseline is None or j.baseline == baseline else [j.contestant, j.baseline]
        every_suspicious.append(bool(j.flags))
        for side in sides:
            suspicious.setdefault(side, []).append(bool(j.flags))
        if j.verdict is None:
            continue
        winner, _ = battle_outcome(j.verdict, j.game, VerdictWeights())
        outcomes.setdefault((j.contestant, j.baseline, j.question_id), {})[j.game] = winner
        if "=" not in j.verdict:
            every_first.append(j.verdict.startswith("A"))
            for side in sides:
                first_wins.setdefault(side, []).append(j.verdict.startswith("A"))
    agree: dict[str, list[int]] = {}
    every_agree: list[int] = []
    for (contestant, other, _), games in outcomes.items():
        if len(games) == 2:
            every_agree.append(games[1] == games[2])
            for side in [contestant] if baseline is None or other == baseline else [contestant, other]:
                agree.setdefault(side, []).append(games[1] == games[2])
    rows = []
    for name in sorted(set(agree) | set(first_wins) | set(suspicious)):
        rows.append((name, _mean(agree.get(name)), _mean(first_wins.get(name)), _mean(suspicious.get(name))))
    rows.append(("*", _mean(every_agree), _mean(every_first), _mean(every_suspicious)))
    return pd.DataFrame(rows, columns=["model", "consistency", "first_position_win_rate", "suspicious_rate"])


def _mean(values: list[int] | None) -> float:
    return sum(values) / len(values) if values else float("nan")
