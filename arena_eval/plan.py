"""What a run would do before it sends anything (docs/design.md §3.8): per contestant and per judge, the requests
still to make (what is stored is skipped), their estimated tokens, cost, duration and energy, with totals and a
word on which figures are estimates.

Estimates, in order of preference: a previous run's measured averages (tokens per answer or per game, latency,
Wh per request); else the prompts' lengths (input) and max_tokens (output, an upper bound). Cost uses the same
prices as the leaderboard (pricing.price_for); energy is EcoLogits' estimate for API models and, for local
ones, the Wh per request of their earlier energy windows. Unknown stays unknown: never 0.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .collect import prompt_hash
from .context import RunScope
from .pairing import opponents_of
from .pricing import cost_of, price_for
from .providers import estimate_tokens
from .store import UsageStats
from .tally import current_games

if TYPE_CHECKING:
    import pandas as pd

PLAN_COLUMNS = ["role", "name", "requests", "input_tokens", "output_tokens", "cost", "duration_s", "energy_wh",
                "estimated"]


@dataclass
class PlanRow:
    role: str  # contestant | judge
    name: str
    requests: int
    input_tokens: float | None
    output_tokens: float | None
    cost: float | None
    duration_s: float | None
    energy_wh: float | None
    estimated: list[str] = field(default_factory=list)  # which figures are estimates, and from what


@dataclass
class Plan:
    rows: list[PlanRow]

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        records = [{**asdict(r), "estimated": "; ".join(r.estimated)} for r in self.rows]
        frame = pd.DataFrame(records, columns=PLAN_COLUMNS)
        return frame

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.rows)

    @property
    def cost(self) -> float:
        """The known cost (rows without a price are left out: see unpriced)."""
        return sum(r.cost for r in self.rows if r.cost is not None)

    @property
    def unpriced(self) -> list[str]:
        return [r.name for r in self.rows if r.requests and r.cost is None]

    def totals(self) -> dict[str, Any]:
        def total(key: str) -> float | None:
            values = [getattr(r, key) for r in self.rows if r.requests]
            return None if any(v is None for v in values) else sum(values)

        return {"requests": self.requests, "input_tokens": total("input_tokens"),
                "output_tokens": total("output_tokens"), "cost": self.cost, "cost_unknown_for": self.unpriced,
                # endpoints run side by side: the run takes about as long as its slowest part
                "duration_s": max((r.duration_s for r in self.rows if r.duration_s), default=None),
                "energy_wh": total("energy_wh")}

    def summary(self) -> str:
        t = self.totals()
        parts = [f"{t['requests']} requests", f"cost ${t['cost']:.4f}" + (
            f" (no price for {', '.join(t['cost_unknown_for'])})" if t["cost_unknown_for"] else "")]
        if t["duration_s"] is not None:
            parts.append(f"about {t['duration_s'] / 60:.1f} min")
        parts.append(f"{t['energy_wh']:.3g} Wh" if t["energy_wh"] is not None else "energy unknown")
        return "plan: " + ", ".join(parts) + " (estimates: see `arena-eval plan`)"


def build_plan(scope: RunScope, store, sets, augmenter) -> Plan:
    """The plan of `run` for this configuration and what the store holds now. Sends nothing."""
    rows: list[PlanRow] = []
    new_answers: dict[str, set[str]] = {}
    for c in scope.contestants:
        row, missing = _contestant_row(scope, store, sets, augmenter, c)
        rows.append(row)
        new_answers[c.name] = missing
    for judge in scope.judges:
        rows.append(_judge_row(scope, store, sets, judge, new_answers))
    return Plan(rows)


def _latency(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _contestant_row(scope: RunScope, store, sets, augmenter, c) -> tuple[PlanRow, set[str]]:
    set_id = sets.set_id(c)
    missing: set[str] = set()
    requests = 0
    prompt_tokens = 0
    unknown_prompts = 0
    for q in scope.questions:
        prepared = augmenter.prepare_stored(c, q)
        if prepared is None:  # guidance not written yet: the prompt is unknown, the answer certainly missing
            missing.add(q.question_id)
            requests += len(q.turns)
            unknown_prompts += 1
            continue
        p_hash = prompt_hash(prepared.conversation)
        if store.find_answer_id(set_id, q.question_id, p_hash) is not None:
            continue
        missing.add(q.question_id)
        done = len(store.answer_turns(set_id, q.question_id, p_hash)) if q.multi_turn else 0
        requests += len(q.turns) - done
        prompt_tokens += sum(estimate_tokens(m["content"]) for m in prepared.conversation)
    stored = list(store.answer_ids(set_id).values())
    stats = store.answer_stats(stored) if stored else UsageStats(None, None, None)
    estimated = []
    if stats.avg_input_tokens is not None:
        input_tokens = stats.avg_input_tokens * len(missing)
        estimated.append("tokens: measured averages")
    else:
        known = len(missing) - unknown_prompts
        # A prompt not known yet (its guidance is not written) counts as the average of the known ones.
        input_tokens = prompt_tokens + (prompt_tokens / known if known else 0.0) * unknown_prompts
        estimated.append("input tokens: prompt length / 4")
    if stats.avg_output_tokens is not None:
        output_tokens = stats.avg_output_tokens * len(missing)
    else:
        output_tokens = float(c.max_tokens * requests)
        estimated.append("output tokens: max_tokens (an upper bound)")
    latency = _latency(store.answer_latencies(stored))
    duration = requests * latency / c.concurrency if latency is not None and requests else (0.0 if not requests else None)
    energy = _energy(scope, store, c, set_id, requests, output_tokens, latency, estimated)
    row = PlanRow("contestant", c.name, requests, input_tokens if requests else 0.0,
                  output_tokens if requests else 0.0,
                  cost_of(price_for(c, batch=c.batch), input_tokens, output_tokens) if requests else 0.0, duration,
                  energy if requests else 0.0, estimated if requests else [])
    return row, missing


def _energy(scope: RunScope, store, endpoint, set_id: str | None, requests: int, output_tokens: float | None,
            latency: float | None, estimated: list[str]) -> float | None:
    if not requests:
        return 0.0
    if endpoint.is_local or endpoint.energy is not None:  # metered: here, or where its `energy:` says
        totals = store.energy_totals(set_id)
        if totals.energy_j is None or not totals.requests or totals.unmeasured:
            return None
        estimated.append("energy: earlier windows' Wh per request")
        return totals.energy_j / totals.requests * requests / 3600.0
    if not scope.config.energy.estimate_api or output_tokens is None:
        return None
    from .energy.ecologits_estimate import estimate_api_batch

    per_request = round(output_tokens / requests)
    reading = estimate_api_batch(endpoint.model or "", [per_request] * requests, [latency] * requests,
                                 endpoint.provider)
    if reading.energy_wh is None:
        return None
    estimated.append("energy: EcoLogits")
    return reading.energy_wh


def _judge_row(scope: RunScope, store, sets, judge, new_answers: dict[str, set[str]]) -> PlanRow:
    ids = {c.name: sets.current(c, scope.questions) for c in scope.contestants}
    verdicts = store.verdicts(judge.config_id)
    stored_games: dict[tuple[str, str, str], list[str]] = {}
    for game in current_games(scope, ids, judge):
        stored_games.setdefault((game.baseline, game.contestant, game.question_id), []).append(game.game_id)
    opponents = opponents_of(scope)
    pending = 0
    for q in scope.questions:
        base = scope.baseline_for(q.question_id)
        # against the baseline, then the pairs of contestants `pairing` has meet (the first in the baseline's place)
        pairs = [(base, c.name) for c in scope.contestants if c.name != base]
        pairs += opponents(q.question_id) if opponents is not None else []
        for first, second in pairs:
            if q.question_id in new_answers[second] or q.question_id in new_answers[first]:
                pending += 2  # a new answer on either side: both games are new
            else:
                games = stored_games.get((first, second, q.question_id), [])
                pending += sum(g not in verdicts for g in games)
    stored = store.judged_games(judge.config_id)
    stats = store.judgment_stats(stored) if stored else UsageStats(None, None, None)
    config = judge.config
    estimated = []
    if stats.avg_input_tokens is not None:
        input_tokens, output_tokens = stats.avg_input_tokens * pending, (stats.avg_output_tokens or 0) * pending
        estimated.append("tokens: measured averages")
    else:
        prompt = sum(estimate_tokens(m["content"]) for m in judge.prompts.render("", "", ""))
        answers = 2 * min(c.max_tokens for c in scope.contestants)
        input_tokens = float((prompt + answers) * pending)
        output_tokens = float(config.max_tokens * pending)
        estimated.append("tokens: the prompt, two answers of max_tokens, and max_tokens out (upper bounds)")
    latency = _latency(store.judgment_latencies(stored))
    duration = pending * latency / config.concurrency if latency is not None and pending else (0.0 if not pending else None)
    energy = _energy(scope, store, config, judge.config_id, pending, output_tokens, latency, estimated)
    return PlanRow("judge", judge.name, pending, input_tokens if pending else 0.0, output_tokens if pending else 0.0,
                   cost_of(price_for(config, batch=config.batch), input_tokens, output_tokens) if pending else 0.0, duration,
                   energy if pending else 0.0, estimated if pending else [])
