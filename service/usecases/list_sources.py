"""Where a user's list comes from: a chain of sources, tried in order, the first that has
the list answering.

1. `FromAnswerCache`: the list this process ranked for the same request within the last
   minute (service/answers.py).
2. `FromKeptList`: the list kept for the served version: ranked by the build for a user who
   has done nothing since (indexing/precompute.py), or ranked after the user's newest
   interaction and stored beside their profile (service/lists.py).
3. `FromLiveRanking`: the list ranked now, from the user's freshest profile; it always answers,
   and what it ranks is cached for the first source.

A kept list answers only the request it was ranked for: the default ranking (seen items left
out, under no variant that ranks otherwise), paged within its depth. A request kept to a
category or a filter reads it through them, where enough of it passes to fill the page;
otherwise it is ranked live within them. The user's profile is read from Redis only where a
source needs it, and at most once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from experiments.design import DEFAULT, Params
from indexing.artifacts import IndexVersion
from indexing.profiles import Profile
from indexing.subsets import Subset
from service import lists, profiles
from service.answers import Key
from service.application import Application
from service.usecases import rules
from service.usecases.rules import NO_RULES, Rules

Pairs = list[tuple[str, float]]


@dataclass(frozen=True)
class Ask:
    """What the sources are asked: the first `count` items of a user's list under
    `version`, ranked with `params` (a variant's, or the default)."""

    user_id: str
    version: IndexVersion | None
    count: int
    rules: Rules = NO_RULES
    among: Subset | None = None  # the version's rows that pass the rules (None: all)
    exclude_seen: bool = True
    params: Params = DEFAULT
    # The experiment and variant whose ranking this is; None outside any variant.
    experiment_id: str | None = None
    variant: str | None = None
    fresh: bool = False  # the answer cache is skipped (and the new list kept)
    generation: int = 0  # the catalog's, where the rules read items' fields

    @property
    def cache_key(self) -> Key:
        number = self.version.version if self.version else 0
        return (
            self.user_id,
            number,
            (*self.rules.key, self.generation),
            self.exclude_seen,
            self.experiment_id,
            self.variant,
        )

    @property
    def default_ranking(self) -> bool:
        """Whether a kept list holds this list (within the rules): the version's own
        ranking, seen items left out."""
        return self.exclude_seen and ranks_as_served(self.params)

    def admits(self, row: int) -> bool:
        return self.among is None or bool(self.among.member[row])


def ranks_as_served(params: Params) -> bool:
    """Whether a variant's params rank exactly as the served version does (an A/A test's
    variants, or an variant that only pins a version): its users' kept lists are its lists."""
    return not params.ranking and params.strategy == DEFAULT.strategy


@dataclass(frozen=True)
class Found:
    """A list as a source found it: (item id, score) pairs best first, its strategy, the
    source's name, and whether the answer cache held it."""

    pairs: Pairs
    strategy: str
    source: str
    cached: bool = False


class UserProfile:
    """A user's freshest profile, read from Redis on first need, once per request."""

    def __init__(self, app: Application, version: IndexVersion | None, user_id: str) -> None:
        self.app, self.version, self.user_id = app, version, user_id
        self._read: profiles.Read | None = None

    async def read(self) -> profiles.Read:
        if self._read is None:
            serving = self.app.serving
            self._read = await profiles.read(
                self.app.redis, self.version, self.user_id, serving.profile_stamps
            )
        return self._read

    async def profile(self) -> Profile:
        return (await self.read()).profile


class ListSource(Protocol):
    name: str

    async def find(self, app: Application, ask: Ask, user: UserProfile) -> Found | None:
        """The list, or None where this source does not have it."""


class FromAnswerCache:
    name = "answer cache"

    async def find(self, app: Application, ask: Ask, user: UserProfile) -> Found | None:
        if ask.fresh:
            return None
        found = app.serving.answers.get(ask.cache_key)
        if found is None:
            return None
        return Found(found[0], found[1], self.name, cached=True)


class FromKeptList:
    name = "kept list"

    async def find(self, app: Application, ask: Ask, user: UserProfile) -> Found | None:
        version = ask.version
        if version is None or not ask.default_ranking:
            return None
        serving = app.serving
        if not serving.profile_stamps.unchanged_since_build(
            ask.user_id, version.version, version.data_as_of
        ):
            read = await user.read()
            if not read.profile.built:
                return self._ranked_after_acting(app, version, read, ask)
        # Idle since the build: the build's list answers, without reading a profile at all.
        return self._ranked_by_build(app, version, ask)

    def _ranked_by_build(self, app: Application, version: IndexVersion, ask: Ask) -> Found | None:
        """The first `count` live items (within the rules) of the list the build ranked;
        None where it ranked none for the user, or too few are left of a list cut at its
        depth (a live ranking has more)."""
        built = app.serving.kept_lists(version)
        row = version.user_row.get(ask.user_id)
        kept = built.get(row) if built is not None and row is not None else None
        if kept is None:
            return None
        assert built is not None
        rows, scores, strategy = kept
        deleted = app.serving.deleted_rows(version)
        if ask.among is None:
            head = ask.count + len(deleted)  # enough rows to hold `count` live ones
            rows, scores = rows[:head], scores[:head]
        ids = version.item_ids
        pairs = []
        for r, s in zip(rows.tolist(), scores.tolist(), strict=True):
            if r not in deleted and ask.admits(r):
                pairs.append((ids[r], s))
                if len(pairs) == ask.count:
                    break
        if len(pairs) < ask.count and len(kept[0]) >= built.depth:
            return None
        return Found(pairs, strategy, self.name)

    def _ranked_after_acting(
        self, app: Application, version: IndexVersion, read: profiles.Read, ask: Ask
    ) -> Found | None:
        """The list ranked from the user's newest stored profile, where it was ranked for
        this version with this process's settings (service/lists.py)."""
        digest = app.serving.list_digest(version)
        ahead = lists.decode(read.ranked, version.version, read.stamp, digest)
        if ahead is None:
            return None
        pairs = ahead.pairs
        if ask.among is not None:
            rows = version.item_row
            pairs = [p for p in pairs if (r := rows.get(p[0])) is not None and ask.admits(r)]
        pairs = live(pairs, app.serving.deleted, ask.count)
        if len(pairs) < ask.count and len(ahead.pairs) >= ahead.depth:
            return None
        return Found(pairs, ahead.strategy, self.name)


class FromLiveRanking:
    name = "live ranking"

    async def find(self, app: Application, ask: Ask, user: UserProfile) -> Found:
        profile = await user.profile()
        pairs, strategy = await rank_now(app, ask, profile)
        app.serving.answers.put(ask.cache_key, (pairs, strategy))
        return Found(pairs, strategy, self.name)


async def rank_now(app: Application, ask: Ask, profile: Profile) -> tuple[Pairs, str]:
    """The user's list `ranking_depth` deep, ranked now on a ranking thread."""
    version, settings = ask.version, app.settings
    depth = settings.index.ranking_depth
    strategy = ask.params.strategy
    if version is None or strategy.startswith("trending:"):
        # A trending list (a scenario's strategy), or no index yet: popularity straight
        # from recent interactions.
        variant = strategy.partition(":")[2] or "hot"
        found = await app.trending.top(variant, app.trending.hours, ask.rules.category)
        seen = profile.seen if ask.exclude_seen else frozenset()
        excluded = app.serving.deleted | profile.negative | seen
        found = [(i, s) for i, s in found if i not in excluded]
        if ask.rules.narrowing:
            applied = rules.Applied(ask.rules, version, ask.among, datetime.now(UTC))
            found = await rules.keep(app, applied, found)
        return found[:depth], strategy if version is not None else "popular"
    deleted = app.serving.deleted_rows(version)
    trending = app.trending.hot_scores(version)
    ranked_version = version
    return await app.rank(
        lambda: lists.rank(
            ranked_version,
            profile,
            settings,
            deleted=deleted,
            trending=trending,
            params=ask.params,
            among=ask.among,
            exclude_seen=ask.exclude_seen,
        )
    )


# The chain, in the order the sources are tried; the last always answers.
CHAIN: Sequence[ListSource] = (FromAnswerCache(), FromKeptList(), FromLiveRanking())


async def find_list(app: Application, ask: Ask, user: UserProfile) -> Found:
    """The user's list from the first source in CHAIN that has it."""
    for source in CHAIN:
        found = await source.find(app, ask, user)
        if found is not None:
            narrowed = "true" if ask.rules.narrowing else "false"
            app.list_sources.labels(source.name, narrowed).inc()
            return found
    raise AssertionError("the live ranking always answers")


def live(pairs: Pairs, deleted: set[str], count: int) -> Pairs:
    """The first `count` pairs whose item is not deleted (a kept list may predate it)."""
    if not deleted:
        return pairs[:count]
    kept = []
    for pair in pairs:
        if pair[0] not in deleted:
            kept.append(pair)
            if len(kept) == count:
                break
    return kept
