"""How far each judge of a run can be trusted, and how far the judges agree (issue 13; docs/design.md §3.3.4).

Pure functions over `Judgment` records, one sequence per judge (keyed by the judge's name); nothing is read or
written here. `judge_diagnostics` gives one row per judge plus a row "pooled" (every judge's games together):

- games: judged games, parsed or not; unparsed_rate: the share of them without a verdict;
- consistency: the share of (contestant, question) pairs with both games parsed whose outcomes agree once
  positions are un-swapped (`judge.battle_outcome`; a tie agrees only with a tie);
- first_position_win_rate: the share of decisive parsed games won by the answer in position A (0.5: no bias);
- decisive_games: the decisive parsed games those two rates and the length figures are taken over;
- longer_answer_win_rate: the share of decisive parsed games won by the longer answer (output tokens); games
  whose answers are equally long, or whose length is unknown, are left out; length_games counts the rest;
- length_coefficient: the log-odds of position A winning per standard deviation of the length difference
  (len_A − len_B), fitted with an intercept and no penalty over the decisive parsed games of known lengths
  (`length_coefficient`);
- suspicious_rate: the share of judged games whose replies were flagged (verdict.FLAGS);
- self_preference: for a judge whose model also answers as some contestants, the mean over those contestants
  of (the score this judge alone gives them − the pooled score), in score points (0–100);
- agreement_<J>, kappa_<J>, games_with_<J>: against every other judge J, over the games both judged and both
  parsed (`pairwise_agreement`); NaN on the judge's own column and on the pooled row.

`warnings` turns a frame into plain-words warnings about unreliable judges.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import cohen_kappa_score

from .config import VerdictWeights
from .judge import battle_outcome
from .records import Judgment

POOLED = "pooled"
# The classes two judges' verdicts are compared in: how strongly a side won does not count.
CLASSES = ("first", "tie", "second")
# The length regression needs this many decisive games of known lengths; fewer give NaN.
MIN_LENGTH_GAMES = 10

# Thresholds of `warnings`.
MIN_CONSISTENCY = 0.60
MAX_POSITION_BIAS = 0.20  # |first_position_win_rate − 0.5|
MIN_KAPPA = 0.20  # |kappa| against every other judge
MAX_LONGER_WIN_RATE = 0.75
MAX_UNPARSED_RATE = 0.10

BASE_COLUMNS = [
    "judge", "games", "unparsed_rate", "consistency", "first_position_win_rate", "decisive_games",
    "longer_answer_win_rate", "length_games", "length_coefficient", "suspicious_rate", "self_preference",
]


def verdict_class(verdict: str) -> str:
    """"first" (position A won), "tie" or "second" (position B won), for a canonical label."""
    if "=" in verdict:
        return "tie"
    return "first" if verdict.startswith("A") else "second"


def pairwise_agreement(a: Sequence[Judgment], b: Sequence[Judgment]) -> tuple[int, float, float]:
    """(n, agreement, kappa) of two judges over the games both judged and both parsed.

    Games are matched by (answer_a_id, answer_b_id): the same two answers in the same positions (game ids differ
    between judges). Verdicts are compared in three classes, first wins / tie / second wins. agreement is the
    share of matched games in the same class; kappa is Cohen's kappa over those classes
    (`sklearn.metrics.cohen_kappa_score`), NaN when both judges used one and the same class throughout (chance
    agreement is then 1 and kappa undefined). n = 0 gives NaN for both.
    """
    first = _parsed_classes(a)
    second = _parsed_classes(b)
    shared = [key for key in first if key in second]
    if not shared:
        return 0, math.nan, math.nan
    x = [first[key] for key in shared]
    y = [second[key] for key in shared]
    agreement = float(np.mean([p == q for p, q in zip(x, y)]))
    if len(set(x) | set(y)) < 2:
        return len(shared), agreement, math.nan
    return len(shared), agreement, float(cohen_kappa_score(x, y, labels=list(CLASSES)))


def _parsed_classes(judgments: Sequence[Judgment]) -> dict[tuple[str, str], str]:
    return {(j.answer_a_id, j.answer_b_id): verdict_class(j.verdict) for j in judgments if j.verdict is not None}


def length_coefficient(length_a: Sequence[float], length_b: Sequence[float], a_won: Sequence[bool]) -> float:
    """Log-odds of position A winning per standard deviation of (len_A − len_B): the slope of an unpenalised
    logistic regression with an intercept, fitted by scikit-learn.

    NaN with fewer than MIN_LENGTH_GAMES games, when the difference does not vary, or when one position won every
    game (the slope is then not identified). ±inf when the length difference separates the outcomes (every game
    A won has a length difference at least as large as every game A lost, or the reverse): the judge follows
    length completely and the maximum-likelihood slope is infinite, so no finite number would be honest.
    """
    diff = np.asarray(length_a, dtype=float) - np.asarray(length_b, dtype=float)
    won = np.asarray(a_won, dtype=bool)
    if len(diff) < MIN_LENGTH_GAMES or won.all() or not won.any():
        return math.nan
    sd = diff.std()
    if not sd > 0:
        return math.nan
    z = diff / sd
    if z[~won].max() <= z[won].min():
        return math.inf
    if z[won].max() <= z[~won].min():
        return -math.inf
    model = LogisticRegression(**_UNPENALISED, tol=1e-10, max_iter=10_000)
    model.fit(z.reshape(-1, 1), won.astype(int))
    return float(model.coef_[0, 0])


def _unpenalised() -> dict[str, object]:
    # scikit-learn 1.8 deprecated penalty=None in favour of C=np.inf; older versions (the floor is 1.3) spell it
    # penalty=None.
    version = re.match(r"(\d+)\.(\d+)", sklearn.__version__)
    major, minor = (int(part) for part in version.groups()) if version else (0, 0)
    return {"C": np.inf} if (major, minor) >= (1, 8) else {"penalty": None}


_UNPENALISED = _unpenalised()


def judge_diagnostics(
    judgments: Mapping[str, Sequence[Judgment]],
    tokens: Mapping[str, int | None],
    scores: Mapping[str, Mapping[str, float]] | None = None,
    judge_models: Mapping[str, set[str]] | None = None,
    contestant_models: Mapping[str, str] | None = None,
    baselines: set[str] | None = None,
) -> pd.DataFrame:
    """One row per judge, in the order of `judgments`, and a last row "pooled" (see the module docstring).

    tokens: answer_id → output tokens (None or absent: unknown). scores: "pooled" and each judge's name →
    contestant → score (0–100), for self_preference, with judge_models (judge → the model names it uses) and
    contestant_models (contestant → its model). A baseline is never counted in self_preference: its score is
    pinned at 50 by every rating. `baselines`: the run's baselines (default: every name that stands in a game's
    baseline place, which under pairing's games between contestants would name contestants too).
    """
    if POOLED in judgments:
        raise ValueError(f"a judge may not be named {POOLED!r}: that row holds all judges together")
    names = list(judgments)
    rows = []
    for name in names:
        row = {"judge": name, **_judge_figures([judgments[name]], tokens)}
        row["self_preference"] = _self_preference(name, judgments[name], scores, judge_models, contestant_models,
                                                  baselines)
        for other in names:
            n, agreement, kappa = (
                pairwise_agreement(judgments[name], judgments[other]) if other != name else (math.nan,) * 3
            )
            row[f"agreement_{other}"], row[f"kappa_{other}"], row[f"games_with_{other}"] = agreement, kappa, n
        rows.append(row)
    pooled = {"judge": POOLED, **_judge_figures([judgments[name] for name in names], tokens),
              "self_preference": math.nan}
    rows.append(pooled)
    columns = BASE_COLUMNS + [f"{kind}_{other}" for other in names for kind in ("agreement", "kappa", "games_with")]
    frame = pd.DataFrame(rows, columns=columns)
    frame["games"] = frame["games"].astype(int)
    return frame


def _judge_figures(groups: Sequence[Sequence[Judgment]], tokens: Mapping[str, int | None]) -> dict[str, float]:
    """The single-judge figures over one or more judges' games; consistency pairs games within a judge only."""
    games = unparsed = flagged = agreeing = pairs = 0
    a_won: list[bool] = []
    length_a: list[float] = []
    length_b: list[float] = []
    length_won: list[bool] = []  # a_won of the games with both lengths known
    longer_won: list[bool] = []
    for group in groups:
        outcomes: dict[tuple[str, str, str], dict[int, str]] = {}
        for j in group:
            games += 1
            flagged += bool(j.flags)
            if j.verdict is None:
                unparsed += 1
                continue
            outcomes.setdefault((j.contestant, j.baseline, j.question_id), {})[j.game] = (
                battle_outcome(j.verdict, j.game, VerdictWeights())[0])
            if "=" in j.verdict:
                continue
            won = j.verdict.startswith("A")
            a_won.append(won)
            la, lb = tokens.get(j.answer_a_id), tokens.get(j.answer_b_id)
            if la is None or lb is None:
                continue
            length_a.append(la)
            length_b.append(lb)
            length_won.append(won)
            if la != lb:
                longer_won.append(won == (la > lb))
        for both in outcomes.values():
            if len(both) == 2:
                pairs += 1
                agreeing += both[1] == both[2]
    return {
        "games": games,
        "unparsed_rate": unparsed / games if games else math.nan,
        "consistency": agreeing / pairs if pairs else math.nan,
        "first_position_win_rate": _mean(a_won),
        "decisive_games": len(a_won),
        "longer_answer_win_rate": _mean(longer_won),
        "length_games": len(longer_won),
        "length_coefficient": length_coefficient(length_a, length_b, length_won),
        "suspicious_rate": flagged / games if games else math.nan,
    }


def _self_preference(
    judge: str,
    judgments: Sequence[Judgment],
    scores: Mapping[str, Mapping[str, float]] | None,
    judge_models: Mapping[str, set[str]] | None,
    contestant_models: Mapping[str, str] | None,
    baselines: set[str] | None = None,
) -> float:
    """Mean over the contestants that run one of the judge's models of (the judge's score − the pooled score)."""
    if not scores or not judge_models or not contestant_models or judge not in scores or POOLED not in scores:
        return math.nan
    models = judge_models.get(judge) or set()
    if baselines is None:
        baselines = {j.baseline for j in judgments}
    gaps = []
    for contestant, model in contestant_models.items():
        if model not in models or contestant in baselines:
            continue
        own, pooled = scores[judge].get(contestant), scores[POOLED].get(contestant)
        if own is None or pooled is None or math.isnan(own) or math.isnan(pooled):
            continue
        gaps.append(own - pooled)
    return _mean(gaps)


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def warnings(frame: pd.DataFrame) -> list[str]:
    """Plain-words warnings about the judges of a `judge_diagnostics` frame (the pooled row is not judged):
    inconsistent verdicts, position bias, no agreement with any other judge, a preference for long answers and
    many unparsed replies. Each names the judge, the figure and what it does to the scores."""
    out: list[str] = []
    others = [column[len("kappa_"):] for column in frame.columns if column.startswith("kappa_")]
    for row in frame.to_dict("records"):
        name = row["judge"]
        if name == POOLED:
            continue
        consistency = row["consistency"]
        if _known(consistency) and consistency < MIN_CONSISTENCY:
            out.append(
                f"judge {name}: consistency {consistency:.2f} (under {MIN_CONSISTENCY:.2f}): its verdict often changes "
                "when the two answers swap positions, so its scores partly reflect answer order, not quality"
            )
        first = row["first_position_win_rate"]
        if _known(first) and abs(first - 0.5) > MAX_POSITION_BIAS:
            side = "first (A)" if first > 0.5 else "second (B)"
            out.append(
                f"judge {name}: the answer in position A wins {first:.0%} of decisive games (0.5 ± "
                f"{MAX_POSITION_BIAS:.1f} expected): it favours the {side} position; the swapped second game "
                "cancels part of this, but its verdicts carry little information about quality"
            )
        kappas = [row[f"kappa_{other}"] for other in others if other != name and _known(row[f"kappa_{other}"])]
        if kappas and all(abs(k) < MIN_KAPPA for k in kappas):
            figures = ", ".join(f"{k:.2f}" for k in kappas)
            out.append(
                f"judge {name}: Cohen's kappa against every other judge is under {MIN_KAPPA:.1f} ({figures}): it "
                "agrees with the others hardly more than chance, so its scores are not comparable to theirs"
            )
        longer = row["longer_answer_win_rate"]
        if _known(longer) and longer > MAX_LONGER_WIN_RATE:
            out.append(
                f"judge {name}: the longer answer wins {longer:.0%} of decisive games (over "
                f"{MAX_LONGER_WIN_RATE:.0%}): it rewards length, so verbose contestants score higher than their "
                "answers deserve (consider style control)"
            )
        unparsed = row["unparsed_rate"]
        if _known(unparsed) and unparsed > MAX_UNPARSED_RATE:
            out.append(
                f"judge {name}: {unparsed:.0%} of its replies gave no verdict (over {MAX_UNPARSED_RATE:.0%}): its "
                "scores rest on fewer games than the others and widen their intervals; unparsed games may not be "
                "missing at random"
            )
    return out


def _known(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))
