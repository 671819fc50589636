"""Ranked lists recently computed by this process, so that paging and repeats cost nothing.

An entry is dropped when its user interacts (in this process directly, in the others through
a `profiles_changed` event), when it is older than `ttl`, or when the least recently used
entries make room. A new index version needs no purge: the version is part of the key.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable

Key = tuple[str, int, str | None, bool]  # user, version, category, exclude_seen
Ranked = tuple[list[tuple[str, float]], str]  # (item id, score) pairs, strategy


class AnswerCache:
    def __init__(self, capacity: int = 50_000, ttl: float = 60.0) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self._entries: OrderedDict[Key, tuple[float, Ranked]] = OrderedDict()
        self._by_user: dict[str, set[Key]] = {}

    def get(self, key: Key) -> Ranked | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] < time.monotonic():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return found[1]

    def put(self, key: Key, ranked: Ranked) -> None:
        self._entries[key] = (time.monotonic() + self.ttl, ranked)
        self._entries.move_to_end(key)
        self._by_user.setdefault(key[0], set()).add(key)
        while len(self._entries) > self.capacity:
            self._remove(next(iter(self._entries)))

    def drop(self, user_ids: Iterable[str]) -> None:
        for user_id in user_ids:
            for key in self._by_user.pop(user_id, ()):
                self._entries.pop(key, None)

    def _remove(self, key: Key) -> None:
        self._entries.pop(key, None)
        keys = self._by_user.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_user[key[0]]
