"""Human preference labels and how far each judge agrees with them (issue 13; MT-bench's agreement analysis).

A label file is JSONL, one human verdict a line: ``{"question_id", "model_a", "model_b", "winner",
"annotator"?}`` with winner "model_a", "model_b" or "tie" ("tie (bothbad)", MT-bench's spelling, is a tie). The
models are the run's contestant names. A run judges each contestant against the baseline only, so a label is
compared with a judge when it names the baseline and a contestant on a question the judge judged; it may name
them in either order.

A judge's verdict on a pair comes from its (up to) two games: `pair_verdict`. The pooled verdict is the majority
of the judges' pair verdicts. Labels are counted one by one: a pair labelled by several annotators counts once
per label, as in MT-bench's human-agreement tables.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from .config import VerdictWeights
from .errors import ConfigError
from .judge import battle_outcome
from .judge_diagnostics import POOLED
from .lines import shown
from .questions import read_jsonl
from .records import Judgment

# The order of the confusion tables' rows (human) and columns (judge).
OUTCOMES = ("model_a", "tie", "model_b")
_WINNERS = {"model_a": "model_a", "model_b": "model_b", "tie": "tie", "tie (bothbad)": "tie"}
_FLIP = {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}
_FIELDS = ("question_id", "model_a", "model_b", "winner")
EXAMPLES = 5  # unmatched labels listed in a report


@dataclass(frozen=True)
class HumanLabel:
    question_id: str
    model_a: str
    model_b: str
    winner: str  # "model_a", "model_b" or "tie"
    annotator: str | None = None
    source: str | None = field(default=None, compare=False)  # "file:line" it was read from


def read_labels(path: str | Path) -> list[HumanLabel]:
    """The labels of a JSONL file; an error names the file and line (malformed JSON, a missing or empty field,
    a winner that is not model_a, model_b or tie, a label of a model against itself, an empty file). A UTF-8
    byte-order mark is accepted; blank lines are skipped; other keys (MT-bench's `turn`, `judge`) are ignored."""
    path = Path(path)
    labels = []
    for number, record in read_jsonl(path):
        where = f"{path}:{number}"
        if not isinstance(record, dict):
            raise ConfigError(f"{where}: expected a JSON object with {', '.join(_FIELDS)}, got {type(record).__name__}")
        values = {}
        for name in _FIELDS:
            value = record.get(name)
            if value is None or isinstance(value, (dict, list, bool)) or str(value).strip() == "":
                raise ConfigError(f"{where}: missing or empty field `{name}` (a label needs {', '.join(_FIELDS)})")
            values[name] = str(value)
        winner = _WINNERS.get(values["winner"].strip().lower())
        if winner is None:
            raise ConfigError(f"{where}: winner {shown(values['winner'])} is not one of model_a, model_b, tie "
                              "(or 'tie (bothbad)')")
        if values["model_a"] == values["model_b"]:
            raise ConfigError(f"{where}: model_a and model_b are both {shown(values['model_a'])}; a label compares two models")
        annotator = record.get("annotator")
        labels.append(HumanLabel(values["question_id"], values["model_a"], values["model_b"], winner,
                                 None if annotator is None else str(annotator), source=where))
    if not labels:
        raise ConfigError(f"{path}: the label file holds no labels; write one JSON object a line")
    return labels


def pair_verdict(games: Sequence[Judgment]) -> str | None:
    """One judge's verdict on one (question, contestant against the baseline) from its games, with model_a = the
    baseline and model_b = the contestant: "model_a", "model_b" or "tie".

    Both games parsed and agreeing once positions are un-swapped: that outcome. Both parsed and disagreeing:
    "tie", as MT-bench counts an inconsistent pair (the judge could not tell them apart once order is taken
    away). One game parsed: its outcome. None parsed (or no games): None. Verdict strength is not used.
    """
    keys = {(j.question_id, j.contestant, j.baseline) for j in games}
    if len(keys) > 1:
        raise ValueError(f"pair_verdict takes the games of one pair; got {len(keys)} pairs")
    repeated = [game for game, count in Counter(j.game for j in games).items() if count > 1]
    if repeated:
        raise ValueError(f"pair_verdict takes one judgment per game; game {repeated[0]} appears more than once")
    outcomes: dict[int, str] = {}
    for j in games:
        if j.verdict is not None:
            outcomes[j.game] = battle_outcome(j.verdict, j.game, VerdictWeights())[0]
    found = set(outcomes.values())
    if not found:
        return None
    return found.pop() if len(found) == 1 else "tie"


def majority_verdict(verdicts: Sequence[str | None]) -> str | None:
    """The verdict more than half of the judges with a verdict gave; "tie" when none has a majority; None when no
    judge has a verdict."""
    given = [v for v in verdicts if v is not None]
    if not given:
        return None
    verdict, count = Counter(given).most_common(1)[0]
    return verdict if 2 * count > len(given) else "tie"


@dataclass(frozen=True)
class JudgeAgreement:
    """One judge's (or the pooled verdict's) agreement with the human labels it has a verdict for."""

    judge: str
    n: int  # labels compared
    agreement: float  # share of them where the judge's verdict is the label's (ties included)
    n_without_ties: int  # labels where both the human and the judge are decisive
    agreement_without_ties: float
    kappa: float  # Cohen's kappa over model_a / tie / model_b; NaN when undefined
    confusion: tuple[tuple[int, int, int], ...]  # rows: human, columns: judge, both in OUTCOMES order

    def confusion_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            list(self.confusion),
            index=pd.Index(OUTCOMES, name="human"),
            columns=pd.Index(OUTCOMES, name=self.judge),
        )


@dataclass(frozen=True)
class AgreementReport:
    """Agreement of each judge and of the pooled verdict with human labels (`human_agreement`)."""

    judges: tuple[JudgeAgreement, ...]  # one per judge, in the given order, then "pooled"
    labels: int  # labels given
    matched: int  # labels naming a (question, baseline, contestant) the judgments hold
    unmatched: int  # labels naming an unknown question, model or pair (not compared)
    unmatched_examples: tuple[str, ...] = ()  # the first few, described

    def frame(self) -> pd.DataFrame:
        """One row per judge and one for "pooled": judge, n, agreement, n_without_ties, agreement_without_ties,
        kappa."""
        columns = ["judge", "n", "agreement", "n_without_ties", "agreement_without_ties", "kappa"]
        return pd.DataFrame([[getattr(a, c) for c in columns] for a in self.judges], columns=columns)

    def confusion_tables(self) -> dict[str, pd.DataFrame]:
        """judge → its 3×3 table (rows: human, columns: judge; order model_a, tie, model_b)."""
        return {a.judge: a.confusion_table() for a in self.judges}

    def __getitem__(self, judge: str) -> JudgeAgreement:
        for a in self.judges:
            if a.judge == judge:
                return a
        raise KeyError(judge)


def human_agreement(labels: Sequence[HumanLabel], judgments: Mapping[str, Sequence[Judgment]], baseline: str) -> AgreementReport:
    """How far each judge's pair verdicts (`pair_verdict`) and their majority ("pooled", `majority_verdict`)
    agree with the human labels.

    A label of (question, baseline, contestant) compares with a judge when that judge has a verdict for the pair;
    a label naming the contestant first has its winner flipped. A label whose pair no judge judged (an unknown
    question or model, or two contestants) is counted in `unmatched` and described in `unmatched_examples`.
    Judgments against another baseline are ignored.
    """
    if POOLED in judgments:
        raise ValueError(f"a judge may not be named {POOLED!r}: that row holds all judges together")
    verdicts: dict[str, dict[tuple[str, str], str | None]] = {}
    for name, games in judgments.items():
        by_pair: dict[tuple[str, str], list[Judgment]] = {}
        for j in games:
            if j.baseline == baseline:
                by_pair.setdefault((j.question_id, j.contestant), []).append(j)
        verdicts[name] = {pair: pair_verdict(group) for pair, group in by_pair.items()}
    pairs = {pair for table in verdicts.values() for pair in table}
    verdicts[POOLED] = {pair: majority_verdict([verdicts[name].get(pair) for name in judgments]) for pair in pairs}

    oriented: list[tuple[tuple[str, str], str]] = []  # (pair, human winner with model_a = baseline)
    unmatched: list[str] = []
    for label in labels:
        if label.model_a == baseline:
            pair, winner = (label.question_id, label.model_b), label.winner
        elif label.model_b == baseline:
            pair, winner = (label.question_id, label.model_a), _FLIP[label.winner]
        else:
            pair, winner = None, label.winner
        if pair is None or pair not in pairs:
            unmatched.append(_describe(label))
            continue
        oriented.append((pair, winner))

    results = []
    for name in [*judgments, POOLED]:
        human, judge = [], []
        for pair, winner in oriented:
            verdict = verdicts[name].get(pair)
            if verdict is not None:
                human.append(winner)
                judge.append(verdict)
        results.append(_agreement(name, human, judge))
    return AgreementReport(tuple(results), len(labels), len(oriented), len(unmatched), tuple(unmatched[:EXAMPLES]))


def _agreement(name: str, human: list[str], judge: list[str]) -> JudgeAgreement:
    same = [h == v for h, v in zip(human, judge)]
    decisive = [h == v for h, v in zip(human, judge) if h != "tie" and v != "tie"]
    if len(set(human) | set(judge)) < 2:
        kappa = math.nan  # one class throughout: chance agreement is 1 and kappa 0/0
    else:
        kappa = float(cohen_kappa_score(human, judge, labels=list(OUTCOMES)))
    table = (confusion_matrix(human, judge, labels=list(OUTCOMES)) if human else np.zeros((3, 3), dtype=int))
    return JudgeAgreement(
        judge=name,
        n=len(same),
        agreement=float(np.mean(same)) if same else math.nan,
        n_without_ties=len(decisive),
        agreement_without_ties=float(np.mean(decisive)) if decisive else math.nan,
        kappa=kappa,
        confusion=tuple(tuple(int(x) for x in row) for row in table),
    )


def _describe(label: HumanLabel) -> str:
    text = f"{label.question_id}: {label.model_a} vs {label.model_b}"
    return f"{label.source} ({text})" if label.source else text
