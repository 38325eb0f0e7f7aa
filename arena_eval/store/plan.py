"""What the run plan reads (docs/design.md §3.8): the latencies of stored work, the games a judge has judged, and
the energy an endpoint's earlier windows measured per request. Counting only: the estimates are plan.py's."""

from __future__ import annotations

from .base import Queries
from .rows import EnergyTotals


class PlanQueries(Queries):
    def answer_latencies(self, answer_ids: list[str]) -> list[float]:
        """The known latencies of the given answers (order not guaranteed)."""
        return [r[0] for r in self.rows_by_key("answers", "answer_id", answer_ids, ("latency_s",)) if r[0] is not None]

    def judgment_latencies(self, game_ids: list[str]) -> list[float]:
        """The known latencies of the given verdicts (order not guaranteed)."""
        return [r[0] for r in self.rows_by_key("judgments", "game_id", game_ids, ("latency_s",)) if r[0] is not None]

    def judged_games(self, judge_config_id: str) -> list[str]:
        """The game ids one judge's verdicts are stored under."""
        return [r[0] for r in self.db.execute("SELECT game_id FROM judgments WHERE judge_config_id=?",
                                              (judge_config_id,))]

    def energy_totals(self, config_id: str | None) -> EnergyTotals:
        """Joules and requests summed over the contestant and judge windows of one configuration (an answer set
        or a judge), and how many of them measured nothing (the plan's Wh per request, docs/design.md §3.8)."""
        row = self.db.execute("SELECT SUM(energy_j), SUM(requests), COUNT(*) - COUNT(energy_j) FROM energy_windows "
                              "WHERE config_id=? AND role IN ('contestant', 'judge')", (config_id,)).fetchone()
        return EnergyTotals(row[0], row[1], row[2])
