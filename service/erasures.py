"""Users erased after a held version was built: the version forgets them in this process.

A version holds its users' rows (their taste vectors, their lists ranked by the build). An
erased user's id leaves the version's `user_row`, so every lookup by id finds nothing (their
answer is the cold-start one), and their row is kept aside so that similar-users answers
leave it out. The erasing process announces `users_erased` and every process forgets them at
once; a missed announcement, or a version loaded later but built before an erasure, is
caught up from the tombstones, which name ids only by hash (storage/erasures.py): a held
version's ids are hashed where there is an erasure it has not applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import asyncpg

from indexing.artifacts import IndexVersion
from storage import erasures

# Erasures this long before a version's snapshot are looked for too: a build reads its data
# over a while, not at one instant.
SNAPSHOT_MARGIN = timedelta(minutes=10)


class ErasedUsers:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._rows: dict[int, set[int]] = {}  # by version: the erased users' rows
        self._applied: dict[int, set[bytes]] = {}  # by version: the tombstones caught up

    def rows(self, version: IndexVersion) -> set[int]:
        return self._rows.get(version.version, set())

    def forget(self, versions: Iterable[IndexVersion], user_ids: Iterable[str]) -> None:
        """These users were erased: each version forgets them."""
        ids = list(user_ids)
        for version in versions:
            for user_id in ids:
                row = version.user_row.pop(user_id, None)
                if row is not None:
                    self._rows.setdefault(version.version, set()).add(row)

    async def catch_up(self, versions: Iterable[IndexVersion]) -> None:
        """Apply the erasures since each version's snapshot that it has not applied."""
        for version in versions:
            since = datetime.fromtimestamp(version.data_as_of, UTC) - SNAPSHOT_MARGIN
            applied = self._applied.setdefault(version.version, set())
            new = set(await erasures.erased_since(self.pool, since)) - applied
            if new:
                found = await asyncio.to_thread(_named, version, new)
                self.forget([version], found)
                applied |= new

    def keep_only(self, numbers: set[int]) -> None:
        """Let go of what was kept for versions no longer held."""
        for kept in (self._rows, self._applied):
            for number in set(kept) - numbers:
                del kept[number]


def _named(version: IndexVersion, hashes: set[bytes]) -> list[str]:
    """The version's user ids whose hash is one of `hashes`."""
    return [u for u in version.user_row if erasures.user_hash(u) in hashes]
