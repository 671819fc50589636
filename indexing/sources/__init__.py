"""The ranking sources, one module each, and their registry.

A source (base.py, `Source`) is fitted from a build's data, scores a user's candidates and
proposes its own, says how far it is to be trusted for a user, and explains itself. The
blend (indexing/hybrid.py), the build's tuning (indexing/tuning.py, blends.py, listwise.py),
the explanations and the weight settings go through REGISTRY, in its order: the order in
which the blend sums its sources, and the tuning tries their weights.
"""

from __future__ import annotations

from indexing.sources.als import Als
from indexing.sources.base import Source
from indexing.sources.content import Content
from indexing.sources.cooccurrence import Cooccurrence
from indexing.sources.ease import Ease
from indexing.sources.recent import Recent
from indexing.sources.sequence import Sequence
from indexing.sources.trending import Trending

REGISTRY: tuple[Source, ...] = (
    Content(),
    Als(),
    Ease(),
    Cooccurrence(),
    Recent(),
    Sequence(),
    Trending(),
)
NAMES = tuple(source.name for source in REGISTRY)
# The sources that speak from what other users did.
FROM_OTHERS = tuple(source.name for source in REGISTRY if source.from_others)


def named(name: str) -> Source:
    """The registered source called `name`."""
    for source in REGISTRY:
        if source.name == name:
            return source
    raise KeyError(f"no ranking source is called {name!r}")


def own_cold_weights() -> dict[str, str]:
    """The sources that have a cold weight of their own (`Source.cold`), and its setting."""
    return {s.name: s.cold_weight for s in REGISTRY if s.cold == "own" and s.cold_weight}


def weight_settings() -> tuple[str, ...]:
    """The RankingSettings weights of the registered sources: each one's, then the cold
    weights of those that have their own."""
    return (*(source.weight for source in REGISTRY), *own_cold_weights().values())
