"""What the current configuration calls for, and how much of it is stored (docs/design.md §3.4, §3.8).

The games the current answers call for (`current_games`), the tally of answers and verdicts stored against them
(`tally`), the questions adaptive judging may move past (`settled_questions`) and the current games' verdicts named
by today's contestants (`current_judgments`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .answer_sets import AnswerSets
from .context import RunScope
from .judge import RunJudge, games_for
from .pairing import opponents_of, pairs_per_question
from .records import Game, Judgment, RunSummary

if TYPE_CHECKING:
    from .adaptive import AdaptivePlan
    from .store import Store


@dataclass
class Tally:
    answer_ids: dict[str, dict[str, str]]  # contestant → question_id → current answer_id
    judged_game_ids: list[tuple[str, str]]  # (game_id, contestant) of the games judged so far, by any judge
    # contestant → answers_missing, games_missing (any judge), games and unparsed (the rated judges')
    per_contestant: dict[str, dict[str, int]]
    games_missing: int
    # game_id → the contestant in the baseline's place, for the games between contestants (pairing) among them
    opponents: dict[str, str] = field(default_factory=dict)


def current_games(scope: RunScope, answer_ids: dict[str, dict[str, str]], judge: RunJudge) -> list[Game]:
    """Every game the current answers call for, for one judge: two per contestant and question both it and the
    question's baseline answered (with a baseline per category, a contestant meets each category's own, and a
    category's baseline is a contestant on the other categories). Then the games between contestants that
    `pairing` calls for: two per pair drawn for a question both answered, the first of the pair in the baseline's
    place (`Game.baseline`)."""
    references = answer_ids.get(judge.reference_contestant, {}) if judge.reference_contestant else {}
    games = []
    if not scope.by_category:
        base_name = scope.baseline.name
        base_ids = answer_ids[base_name]
        for c in scope.contestants[1:]:
            for qid, aid in answer_ids[c.name].items():
                if qid in base_ids:
                    games += games_for(judge.config_id, qid, c.name, base_name, aid, base_ids[qid],
                                       references.get(qid), judge.game_variant(qid, scope))
        return games + games_between_contestants(scope, answer_ids, judge)
    for c in scope.contestants:
        for qid, aid in answer_ids[c.name].items():
            base_name = scope.baseline_for(qid)
            base_id = answer_ids[base_name].get(qid)
            if base_name != c.name and base_id is not None:
                games += games_for(judge.config_id, qid, c.name, base_name, aid, base_id, references.get(qid),
                                   judge.game_variant(qid, scope))
    return games


def games_between_contestants(scope: RunScope, answer_ids: dict[str, dict[str, str]], judge: RunJudge) -> list[Game]:
    """The games `pairing` adds (none under `pairing: baseline`): for each question, each drawn pair of contestants
    that both answered it, in both positions."""
    opponents = opponents_of(scope)
    if opponents is None:
        return []
    references = answer_ids.get(judge.reference_contestant, {}) if judge.reference_contestant else {}
    games = []
    names = [c.name for c in scope.contestants[1:]]
    for qid in dict.fromkeys(qid for name in names for qid in answer_ids[name]):  # (no re-reading of a question file)
        for first, second in opponents(qid):
            a, b = answer_ids[first].get(qid), answer_ids[second].get(qid)
            if a is not None and b is not None:
                games += games_for(judge.config_id, qid, second, first, b, a, references.get(qid),
                                   judge.game_variant(qid, scope))
    return games


def games_without_reference(scope: RunScope, tally: Tally) -> dict[str, int]:
    """judge name → how many of its current games have no reference to show (the question has none, or the
    reference contestant has no answer to it), for judges that take one; they are judged without it."""
    out = {}
    for judge in scope.judges:
        if judge.config.reference == "none":
            continue
        if judge.config.reference == "question":
            has = {q.question_id for q in scope.questions if q.reference}
        else:
            has = set(tally.answer_ids.get(judge.reference_contestant, {}))
        out[judge.name] = sum(1 for g in current_games(scope, tally.answer_ids, judge) if g.question_id not in has)
    return out


def tally(scope: RunScope, store: Store, sets: AnswerSets, plan: AdaptivePlan | None = None) -> Tally:
    """What the current configuration calls for (every game by every judge; with adaptive judging, only the games
    its plan calls for), and how much of it is stored."""
    ids = {c.name: sets.current(c, scope.questions) for c in scope.contestants}
    n = len(scope.questions)
    per = {c.name: {"answers_missing": n - len(ids[c.name]), "games_missing": 0, "games": 0, "unparsed": 0}
           for c in scope.contestants}
    rated = {j.name for j in scope.rated_judges}
    planned = {c.name: plan.questions(c.name) for c in scope.contestants[1:]} if plan is not None else None
    if planned is not None and not scope.config.rating.adaptive.answers:  # only the planned answers are called for
        needed = {scope.baseline.name: set().union(*planned.values()), **planned}
        for c in scope.contestants:
            per[c.name]["answers_missing"] = len(needed[c.name] - set(ids[c.name]))
    judged = []
    baseline = scope.baseline.name
    opponent_of: dict[str, str] = {}
    for judge in scope.judges:
        verdicts = store.verdicts(judge.config_id)
        for g in current_games(scope, ids, judge):
            between = not scope.by_category and g.baseline != baseline  # a game between two contestants
            if planned is not None and (g.question_id not in planned[g.contestant]
                                        or (between and g.question_id not in planned[g.baseline])):
                continue  # adaptive judging settled this contestant (or its opponent) before this question
            if between:
                opponent_of[g.game_id] = g.baseline
            # A game between contestants counts for both of them.
            rows = [per[g.contestant], per[g.baseline]] if between else [per[g.contestant]]
            if g.game_id in verdicts:
                judged.append((g.game_id, g.contestant))
                for row in rows:
                    if judge.name in rated:
                        row["games"] += 1
                        row["unparsed"] += verdicts[g.game_id] is None
            else:
                for row in rows:
                    row["games_missing"] += 1
    # Games that cannot even be posed (a missing answer on either side) are missing too.
    questions = ([len(planned[c.name]) for c in scope.contestants[1:]] if planned is not None
                 else [n] * (len(scope.contestants) - 1))
    expected = 2 * (sum(questions) + _pairs_called_for(scope, planned)) * len(scope.judges)
    return Tally(ids, judged, per, expected - len(judged), opponent_of)


def _pairs_called_for(scope: RunScope, planned: dict[str, set[str]] | None) -> int:
    """How many pairs of contestants `pairing` has meet over the questions (with adaptive judging, on the questions
    the plan calls for for both), answered or not."""
    opponents = opponents_of(scope)
    if opponents is None:
        return 0
    if planned is None:  # the draw changes who meets, not how many pairs there are
        return len(scope.questions) * pairs_per_question(scope)
    count = 0
    for q in scope.questions:
        pairs = opponents(q.question_id)
        count += sum(q.question_id in planned[a] and q.question_id in planned[b] for a, b in pairs)
    return count


def settled_questions(scope: RunScope, store: Store, sets: AnswerSets, tally: Tally) -> dict[str, set[str]]:
    """contestant → the questions whose games (by every judge) are all stored or failed, or cannot be posed
    because an answer on either side failed: adaptive judging may move past them."""
    # A game whose judging failed settles its question too (it counts as missing; the next run asks it again):
    # one failing game must not hold every contestant's plan back.
    stored = {game_id for game_id, _ in tally.judged_game_ids} | store.failed_games()
    failed = store.failed_answers()

    def asked(contestant) -> set[str]:  # answered, or asked and failed: an answer never asked for settles nothing
        set_id = sets.set_id(contestant)
        return set(tally.answer_ids[contestant.name]) | {q for s, q in failed if s == set_id}

    baseline = asked(scope.baseline)
    pending: dict[str, set[str]] = {c.name: set() for c in scope.contestants}
    for judge in scope.judges:
        for g in current_games(scope, tally.answer_ids, judge):
            # (the games between contestants are unsettled_pairs')
            if g.game_id not in stored and g.baseline == scope.baseline_for(g.question_id):
                pending[g.contestant].add(g.question_id)
    return {c.name: (baseline & asked(c)) - pending[c.name] for c in scope.contestants[1:]}


def unsettled_pairs(scope: RunScope, store: Store, tally: Tally) -> dict[str, set[tuple[str, str]]]:
    """question_id → the pairs of contestants (pairing) with a game on it neither stored nor failed. Adaptive
    judging moves past a question only once the games between the contestants it still judges are in; a pair
    with a contestant it stopped judging holds nothing back."""
    if opponents_of(scope) is None:
        return {}
    stored = {game_id for game_id, _ in tally.judged_game_ids} | store.failed_games()
    out: dict[str, set[tuple[str, str]]] = {}
    for judge in scope.judges:
        for g in games_between_contestants(scope, tally.answer_ids, judge):
            if g.game_id not in stored:
                out.setdefault(g.question_id, set()).add((g.baseline, g.contestant))
    return out


def count_missing(tally: Tally, summary: RunSummary, stages: tuple[str, ...]) -> None:
    if {"answers", "judge", "score"} & set(stages):
        summary.answers_missing = sum(r["answers_missing"] for r in tally.per_contestant.values())
    summary.games_missing = tally.games_missing if ("judge" in stages or "score" in stages) else 0


def current_judgments(scope: RunScope, store: Store, tally: Tally,
                      judges: list[RunJudge] | None = None) -> list[Judgment]:
    """The stored verdicts of the current games by `judges` (default: the rated ones), named by today's contestant
    names (a contestant renamed since, with the same configuration, keeps its verdicts)."""
    wanted = dict(tally.judged_game_ids)
    judgments = []
    for judge in judges if judges is not None else scope.rated_judges:
        judgments += [j for j in store.judgments(judge.config_id) if j.game_id in wanted]
    for j in judgments:
        # In a game between contestants (pairing) the opponent stands in the baseline's place.
        j.contestant = wanted[j.game_id]
        j.baseline = tally.opponents.get(j.game_id) or scope.baseline_for(j.question_id)
        # A game's id does not say which side is the baseline: a stored verdict reused after the baseline changed
        # (another baseline, or a category's) has the old game number. Today's is where today's baseline sits.
        j.game = 1 if j.answer_a_id == tally.answer_ids[j.baseline].get(j.question_id) else 2
    return judgments
