"""Profiles recomputed the moment a user interacts, so their next answer reflects it.

The API recomputes the touched users' vectors from their newest `INDEX_PROFILE_HISTORY`
interactions against the served version's item vectors and keeps them in Redis, where every
API process reads them. A profile written after a version's snapshot supersedes what that
version knows of the user.
Every write queues its users in PostgreSQL in its own transaction (storage/activity.py), and
a user leaves the queue only once their profile is stored: a crash after the 202 or a Redis
outage delays a refresh, never loses one. With Redis down, reads fall back to the profile
the served version holds. After a refresh the process ranks those users' default lists in
the background and keeps them beside the profiles (service/lists.py), so that a user's next
request is a lookup.
"""

from __future__ import annotations

import base64
import logging
import math
import time
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import asyncpg
import numpy as np
import orjson
from redis.asyncio import Redis

from common.errors import CacheUnavailable
from common.settings import Settings
from indexing.artifacts import IndexVersion
from indexing.profiles import Floats, Profile, type_weights, user_decay, user_vectors
from indexing.ranking import newest_first, profile_of
from service import lists
from storage import activity
from storage import profiles as stored_profiles
from storage.events import publish

log = logging.getLogger(__name__)
PROFILE_SECONDS = 7 * 86_400


async def refresh(
    pool: asyncpg.Pool,
    redis: Redis,
    settings: Settings,
    version: IndexVersion | None,
    user_ids: Sequence[str],
    stored: ProfileStamps | None = None,
) -> dict[str, bytes]:
    """Recompute and store the profiles of `user_ids`, tell every API process (and this
    one's `stored`), and return them as stored.

    All of them at once: one query, one sparse product for the vectors, one pipeline. Each
    profile reads the user's newest `profile_history` interactions, so a user with a long
    history costs no more than one with that many.
    """
    now = time.time()
    began = datetime.now(UTC)
    rows = await activity.recent_history(pool, user_ids, settings.index.profile_history)
    position = {user_id: n for n, user_id in enumerate(user_ids)}
    weights = type_weights(
        [r["type"] for r in rows], [r["value"] for r in rows], settings.interactions
    )
    net: list[dict[str, float]] = [defaultdict(float) for _ in user_ids]
    newest: list[dict[str, float]] = [defaultdict(float) for _ in user_ids]
    counts = [0] * len(user_ids)
    for row, weight in zip(rows, weights, strict=True):
        n = position[row["user_id"]]
        net[n][row["item_id"]] += float(weight)
        newest[n][row["item_id"]] = max(newest[n][row["item_id"]], row["at"])
        counts[n] += 1
    half_life = version.collaborative.half_life_days if version and version.collaborative else 0.0
    vectors = _vectors(settings, version, rows, position, weights)
    encoded: dict[str, bytes] = {}
    for n, user_id in enumerate(user_ids):
        liked, strength = newest_first(
            list(net[n]),
            np.fromiter(net[n].values(), dtype=np.float32, count=len(net[n])),
            np.fromiter(newest[n].values(), dtype=np.float64, count=len(newest[n])),
            half_life,
        )
        profile = {
            "at": now,
            "version": version.version if version else None,
            "count": counts[n],
            "seen": sorted(net[n]),
            "negative": sorted(i for i, w in net[n].items() if w < 0),
            "liked": liked,
            "evidence": strength,
            # Under a key of its own: a process of an older release reads "vector" as none
            # (and takes the version's vector) rather than failing on a string.
            "vector": None,
            "vector_f32": (
                _packed(vectors[n]) if vectors is not None and vectors[n].any() else None
            ),
        }
        encoded[user_id] = orjson.dumps(profile, option=orjson.OPT_SERIALIZE_NUMPY)
    # A user erased while this ran: what was read of them is gone, and nothing is stored.
    for user_id in await activity.erased_since(pool, list(encoded), began):
        del encoded[user_id]
    await stored_profiles.save(redis, encoded, PROFILE_SECONDS, now)
    if stored is not None:
        stored.record(list(encoded), now)
    await publish(
        redis, settings.event_namespace, "profiles_changed", user_ids=list(encoded), at=now
    )
    return encoded


def _vectors(
    settings: Settings,
    version: IndexVersion | None,
    rows: list[asyncpg.Record],
    position: dict[str, int],
    weights: Floats,
) -> Floats | None:
    """Taste vectors of every user in `position` over the version's item vectors."""
    if version is None:
        return None
    keep = [n for n, r in enumerate(rows) if r["item_id"] in version.item_row]
    users = np.array([position[rows[n]["user_id"]] for n in keep], dtype=np.int64)
    items = np.array([version.item_row[rows[n]["item_id"]] for n in keep], dtype=np.int64)
    at = np.array([rows[n]["at"] for n in keep], dtype=np.float64)
    decayed = weights[keep] * user_decay(users, at, settings.index.half_life_days)
    return user_vectors(users, items, decayed, len(position), version.item_vectors)


@dataclass(frozen=True)
class Read:
    """A user's freshest profile; the time of the stored profile it came from (None: the
    version's own), and the list ranked from that stored profile, as stored (service/lists.py)."""

    profile: Profile
    stamp: float | None = None
    ranked: bytes | None = None


class ProfileStamps:
    """Who has a stored profile, as far as this process knows: each user's stamp (the time
    of their newest stored profile), and `since`, the time from which the stamps are whole;
    and the last reads of users who have one, while they are still their newest.

    The stamps are whole from `since` on while the event channel holds: every refresh writes
    its users' stamps to Redis before it announces them (storage/profiles.py), so the stamps
    read after the channel is subscribed, and the announcements from then on, miss no profile
    stored at or after `since`. While they are whole, a user with no profile stored since a
    version's snapshot has none that the version does not know, and a request for them reads
    nothing from Redis; neither does one whose newest profile, once read, said what the
    version says (their list is the build's). A user whose newest profile and list this
    process has read once reads them again only once a newer profile is announced. A lost
    channel makes the stamps unknown, and drops those reads, until the next subscription
    reads the stamps again.
    """

    def __init__(self, max_bytes: int = 0) -> None:
        self.stamps: dict[str, float] = {}
        self.since: float | None = None
        # Reads of users who have acted, each while it is their newest (`remember_read`) and for
        # READ_SECONDS at most, the least recently asked dropped first beyond `max_bytes`:
        # (version, stamp, read, size, until).
        self.max_bytes = max_bytes
        self.bytes = 0
        self._reads: OrderedDict[str, tuple[int, float, Read, int, float]] = OrderedDict()
        # Users whose newest stored profile says what a version says of them (a refresh
        # after a bulk load, say): (that version, the profile's time).
        self._same_as_build: dict[str, tuple[int, float]] = {}
        self.verdicts = Verdicts()

    def record(self, user_ids: Iterable[str], at: float) -> None:
        """These users' profiles were stored at `at`."""
        stamps = self.stamps
        for user_id in user_ids:
            if at > stamps.get(user_id, -math.inf):
                stamps[user_id] = at
                self._same_as_build.pop(user_id, None)
                if user_id in self._reads:
                    self._drop(user_id)

    def forget(self, user_ids: Iterable[str]) -> None:
        """These users were erased: they have no stored profile now."""
        for user_id in user_ids:
            self.stamps.pop(user_id, None)
            self._same_as_build.pop(user_id, None)
            if user_id in self._reads:
                self._drop(user_id)

    def unchanged_since_build(self, user_id: str, version: int, at: float) -> bool:
        """Whether the user's profile is surely what `version` (its snapshot at `at`) holds:
        none stored since, or the newest stored says the same (`record_same_as_build`)."""
        if self.none_stored_since(user_id, at):
            return True
        if self.since is None or user_id not in self._same_as_build:
            return False
        return self._same_as_build[user_id] == (version, self.stamps.get(user_id))

    def record_same_as_build(self, version: int, user_id: str, stamp: float) -> None:
        """The profile stored at `stamp`, if it is the user's newest, says what `version`
        says of them."""
        if self.since is not None and self.stamps.get(user_id) == stamp:
            self._same_as_build[user_id] = (version, stamp)

    def remembered_read(self, version: int, user_id: str) -> Read | None:
        """The read kept for the user, while it is still of their newest stored profile."""
        found = self._reads.get(user_id)
        if found is None:
            return None
        number, stamp, read, _, until = found
        stale = until < time.monotonic() or self.stamps.get(user_id) != stamp
        if number != version or self.since is None or stale:
            self._drop(user_id)
            return None
        self._reads.move_to_end(user_id)
        return read

    def remember_read(self, version: int, user_id: str, read: Read) -> None:
        """Keep a read from Redis of the user's newest stored profile, with the list ranked
        from it: while no newer profile is announced, both are what Redis holds."""
        stamp = read.stamp
        if self.since is None or stamp is None or self.stamps.get(user_id) != stamp:
            return
        profile = read.profile
        entries = len(profile.seen) + len(profile.liked) + len(profile.negative)
        size = READ_BYTES + READ_ENTRY_BYTES * entries + len(read.ranked or b"") * 3
        if profile.vector is not None:
            size += profile.vector.nbytes
        if size > self.max_bytes:
            return
        if user_id in self._reads:
            self._drop(user_id)
        self._reads[user_id] = (version, stamp, read, size, time.monotonic() + READ_SECONDS)
        self.bytes += size
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._reads)))

    def _drop(self, user_id: str) -> None:
        self.bytes -= self._reads.pop(user_id)[3]

    def read_all(self, found: dict[str, float], since: float) -> None:
        """Every stamp from `since` on, read after the channel was subscribed. What was
        announced meanwhile stands: it may be newer than what was read."""
        self.stamps = {u: at for u, at in self.stamps.items() if at >= since}
        self._same_as_build = {
            u: same for u, same in self._same_as_build.items() if u in self.stamps
        }
        self.record_each(found)
        self.since = since

    def record_each(self, found: dict[str, float]) -> None:
        """Each user's profile was stored at their time."""
        for user_id, at in found.items():
            self.record((user_id,), at)

    def lost(self) -> None:
        """The channel is lost: announcements may be missed until it is read again."""
        self.since = None
        self.stamps = {}
        self._reads.clear()
        self._same_as_build.clear()
        self.bytes = 0

    def none_stored_since(self, user_id: str, at: float) -> bool:
        """Whether the user surely has no profile stored at or after `at`."""
        return (
            self.since is not None and self.since <= at and self.stamps.get(user_id, -math.inf) < at
        )


async def current(
    redis: Redis, version: IndexVersion | None, user_id: str, stored: ProfileStamps | None = None
) -> Profile:
    """The freshest profile: the stored one if newer than the version's snapshot; the
    version's own when Redis cannot be reached."""
    return (await read(redis, version, user_id, stored)).profile


async def read(
    redis: Redis, version: IndexVersion | None, user_id: str, stored: ProfileStamps | None = None
) -> Read:
    """`current`'s profile, with the list ranked from it, in one round trip; in none where
    `stored` knows the user has no profile newer than the version's snapshot."""
    if version is None or stored is None:
        return await _read(redis, version, user_id)
    if stored.none_stored_since(user_id, version.data_as_of):
        return Read(profile_of(version, user_id))
    held = stored.remembered_read(version.version, user_id)
    if held is not None:
        return held
    read = await _read(redis, version, user_id, stored.verdicts)
    if read.stamp is not None and read.profile.built:
        stored.record_same_as_build(version.version, user_id, read.stamp)
    elif lists.ranked_from(read.ranked, version.version, read.stamp):
        stored.remember_read(version.version, user_id, read)
    return read


async def _read(
    redis: Redis, version: IndexVersion | None, user_id: str, verdicts: Verdicts | None = None
) -> Read:
    try:
        raw, ranked = await stored_profiles.load_with_list(redis, user_id)
    except CacheUnavailable:
        log.warning("Redis is unavailable: serving %r from the version's profile", user_id)
        raw = ranked = None
    if raw is not None:
        found = parse(raw, version, user_id, verdicts)
        if found is not None:
            return Read(found[0], found[1], ranked)
    return Read(profile_of(version, user_id) if version is not None else Profile())


# What `ProfileStamps.remember_read` counts for a read beyond its vector and the list's
# bytes: the objects themselves, and each id of the profile's sets and tuples with its slot.
READ_BYTES = 1_000
READ_ENTRY_BYTES = 100
# A remembered read is read again after this long, as an answer is ranked again after a minute:
# the list it holds expires in Redis after a day (service/lists.py), and a missed
# announcement costs no more than this.
READ_SECONDS = 60.0


def _packed(vector: Floats) -> str:
    """A taste vector as base64 of its little-endian float32 bytes: every read of a profile
    parses it, and 384 floats as JSON numbers cost 14 us to parse and convert, against 2 us."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _unpacked(stored: str | list[float]) -> Floats:
    """The vector of `_packed`, or of a profile stored before as a list of numbers
    (under "vector")."""
    if isinstance(stored, str):
        return np.frombuffer(base64.b64decode(stored), dtype="<f4").astype(np.float32)
    return np.asarray(stored, dtype=np.float32)


def parse(
    raw: bytes, version: IndexVersion | None, user_id: str, verdicts: Verdicts | None = None
) -> tuple[Profile, float] | None:
    """A stored profile and its time, if it is newer than the version's snapshot; the
    verdicts of whether it says what the version says are kept in `verdicts`."""
    stored = orjson.loads(raw)
    if version is not None and stored["at"] < version.data_as_of:
        return None
    vector = stored.get("vector_f32") or stored["vector"]
    taste: Floats | None
    if vector is not None and (version is None or stored["version"] == version.version):
        taste = _unpacked(vector)
    elif version is not None:
        # Computed against other item vectors: keep the history, take the version's vector
        # for this user (or none).
        taste = profile_of(version, user_id).vector
    else:
        taste = None
    fresh = Profile(
        vector=taste,
        seen=frozenset(stored["seen"]),
        negative=frozenset(stored["negative"]),
        count=int(stored["count"]),
        liked=tuple(stored.get("liked", ())),
        evidence=tuple(stored.get("evidence", ())),
    )
    stamp = float(stored["at"])
    return _built_if_same(fresh, version, user_id, stamp, verdicts), stamp


def _built_if_same(
    fresh: Profile,
    version: IndexVersion | None,
    user_id: str,
    stored_at: float,
    verdicts: Verdicts | None,
) -> Profile:
    """`fresh` marked as the version's own where it says what the version's profile says
    (a refresh after a bulk load, say, with nothing done since the snapshot): the user's
    list is then the one the build ranked. The verdict is kept per stored profile, so an
    idle user's requests compare once."""
    if version is None:
        return fresh
    key = (version.version, user_id, stored_at)
    same = verdicts.get(key) if verdicts is not None else None
    if same is None:
        own = profile_of(version, user_id)
        same = (
            own.built
            and own.liked == fresh.liked
            and own.seen == fresh.seen
            and own.negative == fresh.negative
            and len(own.evidence) == len(fresh.evidence)
            and np.allclose(own.evidence, fresh.evidence, rtol=1e-5)
        )
        if verdicts is not None:
            verdicts.put(key, same)
    return replace(fresh, built=True) if same else fresh


class Verdicts:
    """Whether a stored profile says what a version says of its user (`_built_if_same`), by
    (version, user, the stored profile's time), so that an idle user's requests compare
    once; the oldest dropped beyond KEPT (about 100 bytes each)."""

    KEPT = 100_000

    def __init__(self) -> None:
        self._found: OrderedDict[tuple[int, str, float], bool] = OrderedDict()

    def get(self, key: tuple[int, str, float]) -> bool | None:
        return self._found.get(key)

    def put(self, key: tuple[int, str, float], same: bool) -> None:
        self._found[key] = same
        if len(self._found) > self.KEPT:
            self._found.popitem(last=False)
