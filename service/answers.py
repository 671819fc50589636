"""Lists this process ranked recently, so that paging and repeats cost nothing.

An entry is dropped when its user interacts (in this process directly, in the others through
a `profiles_changed` event), once it is `ttl` seconds old, or when the oldest entries make
room under `max_bytes`. A new index version needs no purge: the version is part of the key.

Entries are kept in the order they were stored and all live `ttl`: the oldest is always the
first to expire, so every store sweeps the expired ones from the front, whether or not they
are ever asked for again, and memory stays bounded by what the last `ttl` seconds asked.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

# (user, version, rules, exclude_seen, experiment, variant)
Key = tuple[str, int, tuple[Any, ...], bool, str | None, str | None]
CachedList = tuple[list[tuple[str, float]], str]  # (item id, score) pairs, strategy
# CPython's cost of one (item id, score) pair beyond the id's characters: the tuple, the
# float, the str header and the list slot.
_PAIR_BYTES = 56 + 24 + 49 + 8
_ENTRY_BYTES = 400  # the key, the list, the ordered dict's and the user index's slots


def size_of(key: Key, ranked: CachedList) -> int:
    """An estimate of the bytes an entry holds."""
    pairs = ranked[0]
    return _ENTRY_BYTES + len(key[0]) + sum(len(i) for i, _ in pairs) + _PAIR_BYTES * len(pairs)


class AnswerCache:
    def __init__(self, max_bytes: int = 64 * 1024 * 1024, ttl: float = 60.0) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.bytes = 0
        self._entries: OrderedDict[Key, tuple[float, int, CachedList]] = OrderedDict()
        self._by_user: dict[str, set[Key]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> CachedList | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] < time.monotonic():
            self._remove(key)
            return None
        return found[2]

    def put(self, key: Key, ranked: CachedList) -> None:
        now = time.monotonic()
        self._remove(key)
        size = size_of(key, ranked)
        self._entries[key] = (now + self.ttl, size, ranked)
        self.bytes += size
        self._by_user.setdefault(key[0], set()).add(key)
        while self._entries:
            oldest, (expires, _, _) = next(iter(self._entries.items()))
            if expires >= now and self.bytes <= self.max_bytes:
                break
            self._remove(oldest)

    def drop(self, user_ids: Iterable[str]) -> None:
        for user_id in user_ids:
            for key in self._by_user.pop(user_id, ()):
                found = self._entries.pop(key, None)
                if found is not None:
                    self.bytes -= found[1]

    def _remove(self, key: Key) -> None:
        found = self._entries.pop(key, None)
        if found is None:
            return
        self.bytes -= found[1]
        keys = self._by_user.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_user[key[0]]
