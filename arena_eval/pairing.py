"""Games between contestants (docs/design.md §3.3.1): which pairs of contestants other than the baseline also meet
on a question, under `pairing: all` or `pairing: {opponents: K}`. Pure, and cheap enough for `validate`.

The draw for {opponents: K} is balanced and needs no random generator: the contestants are put in a circle in an
order fixed by hashing (seed, question id, name), so it depends on the seed, the question and the set of
contestants only (a resumed run draws the same games, the config's order does not matter), and differs from
question to question. Each one meets its K nearest neighbours on the circle (⌊K/2⌋ on either side); an odd K adds
the contestant opposite (n even) or a matching along the circle's longest chords (n odd, where one contestant a
question is left with K − 1: n·K is odd, so no draw can give everyone K). Every contestant thus meets K others on
almost every question, and over the questions each meets each other about equally often.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import OpponentPairing
    from .context import RunScope

# A pair: (the contestant in the baseline's place, i.e. position A in game 1; the other). The first is the one
# listed earlier in the config, so a pair's games are always named the same way.
Pair = tuple[str, str]


def opponent_pairs(question_id: str, contestants: Sequence[str], pairing: str | OpponentPairing) -> list[Pair]:
    """The pairs of `contestants` (the baseline left out, in the config's order) that meet on `question_id`
    besides their games against the baseline; none under `pairing: baseline`."""
    if pairing == "baseline" or len(contestants) < 2:
        return []
    if pairing == "all":
        return list(itertools.combinations(contestants, 2))
    assert not isinstance(pairing, str)
    circle = sorted(contestants, key=lambda name: _draw_key(pairing.seed, question_id, name))
    edges = _circulant(len(circle), pairing.opponents)
    rank = {name: i for i, name in enumerate(contestants)}
    pairs: set[Pair] = set()
    for i, j in edges:
        first, second = (circle[i], circle[j]) if rank[circle[i]] < rank[circle[j]] else (circle[j], circle[i])
        pairs.add((first, second))
    return sorted(pairs, key=lambda pair: (rank[pair[0]], rank[pair[1]]))


def _draw_key(seed: int, question_id: str, name: str) -> str:
    return hashlib.sha256(f"{seed}\x1f{question_id}\x1f{name}".encode()).hexdigest()


def _circulant(n: int, k: int) -> list[tuple[int, int]]:
    """Edges (i, j) of a graph on n places of a circle in which every place has degree k (one place k − 1 when n
    and k are both odd): the k nearest places, and for an odd k the opposite place or a matching of long chords."""
    k = min(k, n - 1)
    edges = [(i, (i + d) % n) for d in range(1, k // 2 + 1) for i in range(n)]
    if k % 2:
        if n % 2 == 0:
            edges += [(i, i + n // 2) for i in range(n // 2)]
        else:
            # The chords of length (n - 1) / 2 form one cycle through every place (that length is prime to n); every
            # other chord of it is a matching that leaves one place out.
            step = (n - 1) // 2
            walk = [(t * step) % n for t in range(n)]
            edges += [(walk[t], walk[t + 1]) for t in range(0, n - 1, 2)]
    return edges


def opponents_of(scope: RunScope) -> Callable[[str], list[Pair]] | None:
    """question id → the pairs that meet on it besides the baseline's games, for the run's contestants; None under
    `pairing: baseline` (today's games only)."""
    pairing = scope.config.pairing
    if pairing == "baseline":
        return None
    names = [c.name for c in scope.contestants[1:]]
    return lambda question_id: opponent_pairs(question_id, names, pairing)


def pairs_per_question(scope: RunScope) -> int:
    """How many pairs meet on a question besides the baseline's games, when every contestant answered it (the same
    for every question: the draw changes who, not how many)."""
    opponents = opponents_of(scope)
    return len(opponents("")) if opponents is not None else 0
