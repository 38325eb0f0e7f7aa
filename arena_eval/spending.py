"""A run's spending cap (`run --max-cost USD`, docs/design.md §3.8): the plan is checked before the run, and the
replies are counted while it goes, since a server may ignore `max_tokens` and bill far more than the plan said.

Every reply of a contestant or judge request adds its cost (pricing.completion_cost: the provider's own figure,
else its reported tokens at the endpoint's price). Once the sum reaches the cap, no request is sent any more: the
request about to go raises SpendingCapReached instead, its caller stops taking new work, and the requests already
in flight are waited for and stored. So the run ends at most one concurrency's worth of requests past the cap.
"""

from __future__ import annotations

from typing import Any

from .config import EndpointConfig
from .errors import ArenaError
from .pricing import completion_cost, price_for
from .records import Completion, Message


class SpendingCapReached(Exception):
    """Raised in place of sending a request once the run's spend reached its cap: nothing was sent."""


class SpendingCap:
    """What the run's replies cost so far, against `limit` (USD; None: no cap, nothing is counted)."""

    def __init__(self, limit: float | None = None):
        if limit is not None and not limit > 0:  # also refuses NaN
            raise ArenaError(f"--max-cost must be a positive amount in USD, got {limit:g}")
        self.limit = limit
        self.spent = 0.0
        self.unpriced = 0  # replies whose cost is unknown (no price, no provider figure): not in `spent`
        self.refused = 0  # requests not sent because the cap was reached

    @property
    def reached(self) -> bool:
        return self.limit is not None and self.spent >= self.limit

    def check(self) -> None:
        """Before a request: raise SpendingCapReached (and count the request as not sent) once the cap is reached."""
        if self.reached:
            self.refused += 1
            raise SpendingCapReached(f"the spending cap of ${self.limit:g} is reached")

    def add(self, cost: float | None) -> None:
        if cost is None:
            self.unpriced += 1
        else:
            self.spent += cost

    def guard(self, provider: Any, endpoint: EndpointConfig) -> Any:
        """`provider` for sending requests under this cap (the provider itself when there is no cap)."""
        return provider if self.limit is None else CappedProvider(provider, self, endpoint)


class CappedProvider:
    """A provider's requests counted against a SpendingCap; everything else is the provider's own. Only requests
    go through it: starting, closing and the replicas' counts keep using the provider itself."""

    def __init__(self, provider: Any, cap: SpendingCap, endpoint: EndpointConfig):
        self.provider, self.cap = provider, cap
        self.price = price_for(endpoint)  # direct requests: the list price (batches are not sent through here)

    async def complete(self, messages: list[Message], **overrides: Any) -> Completion:
        self.cap.check()
        completion = await self.provider.complete(messages, **overrides)
        self.cap.add(completion_cost(completion, self.price))
        return completion

    def __getattr__(self, name: str) -> Any:
        return getattr(self.provider, name)


def capped_message(limit: float, spent: float, refused: int, unpriced: int, output_dir) -> str:
    """What a run stopped by its spending cap says (exit 4)."""
    return (f"stopped at --max-cost ${limit:g}: this run's replies cost ${spent:.4f} (priced at the endpoints' prices"
            + (f"; {unpriced} replies without a price are not counted" if unpriced else "")
            + f"), so no new request was sent ({refused} held back) and nothing was scored. Every reply that arrived "
            f"is stored in {output_dir}; run again (with a higher --max-cost) to continue where this run stopped, or "
            "`arena-eval score` to rate what is stored")
