"""Replicas: one endpoint served by several base URLs (a list in `base_url`; docs/design.md §3.1.5).

A ReplicaSet is a provider made of one provider per replica. It keeps no queue of its own: the contestant's
`concurrency` workers still bound the requests in flight, and each request goes where it is likely to be served
soonest.

- Routing. A request goes to the replica with the fewest requests in flight; among equals, round-robin. A retry
  avoids the replicas its request already failed on (retry.failed_replicas) while another one is awake.
- Resting. REST_AFTER retryable failures in a row (a connection error, a timeout, a 5xx, a 429, a cut-off reply)
  rest a replica for `rest_seconds`: REST_INITIAL_S, doubled with every rest in a row, at most the endpoint's
  retry_max_s. When its rest is over it takes one request at a time (a probe) until one succeeds; a failed probe
  rests it again, for twice as long. Requests of a resting replica go to the others; only when every replica
  rests does one go to the replica whose rest ends first, so that a dead endpoint spends its attempts and fails
  as a single dead URL would, instead of waiting.
- Only requests sent since a replica's latest rest began change its health: the failures of requests that were
  already in flight when it was rested do not rest it again.
- A failure that is not retryable (a 4xx, a refusal, a reply over the size cap) says nothing about the replica's
  health; it is counted as an error and fails the request as before.
"""

from __future__ import annotations

import statistics
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from ..config import EndpointConfig
from ..records import Completion, EndpointReplicas, Message, ReplicaCounts
from .base import Provider, ProviderError
from .retry import failed_replicas

# Retryable failures in a row that rest a replica.
REST_AFTER = 3
# The first rest; each rest in a row doubles it, up to the endpoint's retry_max_s.
REST_INITIAL_S = 1.0


def rest_seconds(config: EndpointConfig, rests_in_a_row: int) -> float:
    """How long a replica rests the n-th time in a row (1-based): 1 s, 2 s, 4 s … at most retry_max_s."""
    return min(config.retry_max_s, REST_INITIAL_S * 2 ** (rests_in_a_row - 1))


@dataclass
class _Replica:
    provider: Provider
    in_flight: int = 0
    requests: int = 0
    errors: int = 0
    latencies: array = field(default_factory=lambda: array("d"))  # of answered requests; 8 bytes each
    failures_in_a_row: int = 0
    rests_in_a_row: int = 0  # 0 once a request succeeds
    rests: int = 0  # in all; also the replica's epoch: a request remembers the value it was sent under
    resting_until: float = 0.0

    def ready(self, now: float) -> bool:
        """Awake, and not on probation with a probe in flight."""
        return now >= self.resting_until and (self.rests_in_a_row == 0 or self.in_flight == 0)


class ReplicaSet:
    """One endpoint, several replicas: the Provider interface over `providers`, one per base URL."""

    def __init__(self, config: EndpointConfig, providers: list[Provider]):
        self.config = config
        self.name = providers[0].name
        self._replicas = [_Replica(p) for p in providers]
        self._next = 0  # where the round-robin among equals starts
        self.endpoint = f"{len(providers)} replicas ({', '.join(p.endpoint for p in providers)})"

    def api_key(self) -> str:
        return self._replicas[0].provider.api_key()  # one configuration: the same key for every replica

    async def start(self) -> None:
        try:
            for replica in self._replicas:
                await replica.provider.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for replica in self._replicas:
            await replica.provider.close()

    def constrain_to(self, choices: list[str]) -> dict[str, Any]:
        return self._replicas[0].provider.constrain_to(choices)

    async def complete(self, messages: list[Message], **overrides: Any) -> Completion:
        index = self._route()
        replica = self._replicas[index]
        epoch = replica.rests
        replica.in_flight += 1
        try:
            completion = await replica.provider.complete(messages, **overrides)
        except ProviderError as exc:
            replica.requests += 1
            replica.errors += 1
            if exc.retryable:
                self._failed(replica, epoch)
            exc.replica = index
            raise
        finally:
            replica.in_flight -= 1
        replica.requests += 1
        if completion.latency_s is not None:
            replica.latencies.append(completion.latency_s)
        if epoch == replica.rests:
            replica.failures_in_a_row = replica.rests_in_a_row = 0
            replica.resting_until = 0.0
        return completion

    def _route(self) -> int:
        """The replica for the next request: awake before resting, then not yet failed for this request, then
        the fewest in flight (resting: the rest that ends first); ties go round-robin from `_next`."""
        now, avoid, count = time.monotonic(), failed_replicas(), len(self._replicas)
        best, best_key = self._next, None
        for step in range(count):
            i = (self._next + step) % count
            replica = self._replicas[i]
            ready = replica.ready(now)
            key = (not ready, i in avoid, replica.in_flight if ready else replica.resting_until)
            if best_key is None or key < best_key:
                best, best_key = i, key
        self._next = (best + 1) % count
        return best

    def _failed(self, replica: _Replica, epoch: int) -> None:
        """A retryable failure: rest the replica after REST_AFTER in a row, or at once when a probe failed."""
        now = time.monotonic()
        if epoch != replica.rests or now < replica.resting_until:
            return  # sent before its latest rest began, or while it rests: that rest accounts for it
        replica.failures_in_a_row += 1
        if replica.failures_in_a_row >= REST_AFTER or replica.rests_in_a_row:
            replica.rests += 1
            replica.rests_in_a_row += 1
            replica.failures_in_a_row = 0
            replica.resting_until = now + rest_seconds(self.config, replica.rests_in_a_row)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self._replicas)

    def counts(self) -> list[ReplicaCounts]:
        """Each replica's share so far, in the order of base_url."""
        return [ReplicaCounts(url=r.provider.endpoint, requests=r.requests, errors=r.errors,
                              latency_p50_s=statistics.median(r.latencies) if r.latencies else None, rests=r.rests)
                for r in self._replicas]


def replica_counts(role: str, name: str, provider: Provider) -> EndpointReplicas | None:
    """An endpoint's replicas for the run summary; None unless it has replicas and sent requests."""
    if not isinstance(provider, ReplicaSet) or not provider.requests:
        return None
    return EndpointReplicas(role, name, provider.counts())
