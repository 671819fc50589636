"""A user's default list, ranked as the API ranks it live, and the copy of it that a profile
refresh ranks ahead, so that a user who has just acted is answered by a lookup, as a user
idle since the build is (indexing/precompute.py).

When the API refreshes a user's profile (service/profiles.py), it ranks that user's list in
the background and keeps it in Redis beside the profile, stamped with the served version,
the stored profile's time and a digest of the settings it was ranked with. A request reads
both in one round trip and answers from the list only where all three are still the
request's own: a newer profile, another version or other settings rank live. Like a list
ranked at the build, such a list is ranked with no item deleted (the API drops deleted items
as it answers) and follows the trending list as it stood when it was ranked; it is dropped
after LIST_SECONDS, so that a user who never acts again is ranked live after a day.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from common.settings import Settings
from experiments.design import DEFAULT, Params
from indexing import precompute, ranking
from indexing.artifacts import IndexVersion
from indexing.hybrid import Trend
from indexing.profiles import Profile
from indexing.subsets import Subset

Pairs = list[tuple[str, float]]
# A list ranked ahead is dropped after a day even if nothing replaces it: it follows the
# trending list only as it stood when it was ranked.
LIST_SECONDS = 86_400


@dataclass(frozen=True)
class KeptList:
    """A list ranked ahead: its items best first, its strategy, and the depth it was cut
    at (a list shorter than that holds every item there was)."""

    pairs: Pairs
    strategy: str
    depth: int


def rank(
    version: IndexVersion,
    profile: Profile,
    settings: Settings,
    *,
    deleted: frozenset[int],
    trending: Trend | None,
    params: Params = DEFAULT,
    among: Subset | None = None,
    exclude_seen: bool = True,
) -> tuple[Pairs, str]:
    """The user's list `ranking_depth` deep, as (item id, score) pairs, and its strategy."""
    found = ranking.recommend(
        version,
        profile,
        params.apply(version.ranking(settings.ranking)),
        strategy=params.strategy,
        depth=settings.index.ranking_depth,
        cold_start_min=settings.index.cold_start_min,
        among=among,
        exclude_seen=exclude_seen,
        deleted=deleted,
        trending=trending,
    )
    ids = version.item_ids
    return [(ids[r], s) for r, s in zip(found.rows.tolist(), found.scores.tolist(), strict=True)], (
        found.strategy
    )


def settings_digest(version: IndexVersion, settings: Settings) -> str:
    """What a kept list depends on besides the version and the profile, in a few bytes."""
    said = orjson.dumps(precompute.ranked_with(version, settings), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(said, digest_size=12).hexdigest()


def rank_ahead(
    version: IndexVersion,
    users: list[tuple[str, tuple[Profile, float]]],
    settings: Settings,
    trending: Trend | None,
    digest: str,
) -> dict[str, bytes]:
    """Each user's list ranked from (their profile, the time it was stored), encoded.

    Ranked with no item deleted, as the build ranks its lists: the API drops items deleted
    by the time it answers, and an item restored meanwhile is still in the list."""
    done = {}
    for user_id, (profile, stamp) in users:
        pairs, strategy = rank(version, profile, settings, deleted=frozenset(), trending=trending)
        depth = settings.index.precompute_depth
        done[user_id] = encode(version.version, stamp, digest, pairs, strategy, depth)
    return done


def encode(
    version: int, stamp: float, digest: str, pairs: Pairs, strategy: str, depth: int
) -> bytes:
    """A list ranked from the profile stored at `stamp`, cut at `depth`, for Redis."""
    head = pairs[:depth]
    return orjson.dumps(
        {
            "version": version,
            "at": stamp,
            "digest": digest,
            "strategy": strategy,
            "depth": depth,
            "items": [i for i, _ in head],
            "scores": [s for _, s in head],
        }
    )


def ranked_from(raw: bytes | None, version: int, stamp: float | None) -> bool:
    """Whether a stored list was ranked for `version` from the profile stored at `stamp`."""
    if raw is None or stamp is None:
        return False
    try:
        found = orjson.loads(raw)
        return bool(found["version"] == version and found["at"] == stamp)
    except (ValueError, KeyError, TypeError):
        return False


def decode(raw: bytes | None, version: int, stamp: float | None, digest: str) -> KeptList | None:
    """The stored list, if it was ranked for this version, from the profile stored at
    `stamp`, with these settings; else None (rank live)."""
    if raw is None or stamp is None:
        return None
    try:
        found = orjson.loads(raw)
        if found["version"] != version or found["at"] != stamp or found["digest"] != digest:
            return None
        pairs = list(zip(found["items"], found["scores"], strict=True))
        return KeptList(pairs, found["strategy"], int(found["depth"]))
    except (ValueError, KeyError, TypeError):  # not a list this code wrote: rank live
        return None
