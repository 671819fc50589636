"""Items' current fields, as filters and `fields` read them.

A filter is judged over the whole served catalog at once (indexing/columns.py): each field
it reads is one column per version, read from the catalog on first need (one query of one
field for every live item) and kept. What changed since then is read every few seconds
from the catalog by when it changed (this process's own writes at once): a changed item is
judged by its fields now, whatever the column says, and an item the version does not know
(newer than its build) is looked up. Once too many items have changed, the columns are
dropped and read afresh, so the work per request stays bounded.

The rows of a version that pass a filter are kept per (version, filter, category) while
nothing changes (and, for a filter that says `now`, within the second).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import numpy as np

from common.models import Item
from indexing import columns
from indexing.artifacts import IndexVersion
from indexing.filters import Filter, Path
from indexing.subsets import Subset
from service.background import cancel, every
from storage import catalog

log = logging.getLogger(__name__)

# More changed items than this, and the columns are read afresh instead.
CHANGED_LIMIT = 10_000
# Each read of the changes goes back this far before the last one: a write's updated_at is
# its transaction's start, which may come before a read that did not see it yet.
OVERLAP = timedelta(seconds=60)
# Filtered subsets kept, and items kept for `fields` and for judging items a version lacks.
SUBSETS_KEPT = 256
ITEMS_KEPT = 20_000
# The columns held, in all: a filter may name any attribute.
COLUMNS_BYTES = 512 * 1024 * 1024


def filter_view(item: Item) -> dict[str, Any]:
    """An item's fields as a filter reads them."""
    return {
        "item_id": item.item_id,
        "category": item.category,
        "tags": item.tags,
        "title": item.title,
        "published_at": item.published_at,
        "attributes": item.attributes,
    }


@dataclass
class _Table:
    """One version's columns, by field path (`indexing.columns.Table`)."""

    n: int
    read: dict[Path, columns.Column] = field(default_factory=dict)

    def column(self, path: Path) -> columns.Column:
        return self.read[path]


class CatalogFields:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.changed: dict[str, Item | None] = {}  # item id -> its fields now (None: deleted)
        self.generation = 0  # moves whenever `changed` does
        self._since: datetime | None = None
        self._tables: OrderedDict[int, _Table] = OrderedDict()
        self._reading: dict[tuple[int, Path, int], asyncio.Task[columns.Column]] = {}
        self._subsets: OrderedDict[tuple[Any, ...], Subset] = OrderedDict()
        self._items: OrderedDict[str, Item | None] = OrderedDict()
        self._watch: asyncio.Task[None] | None = None
        self._epoch = 0  # moves when the columns are dropped
        self._floor: datetime | None = None  # changes at or before it are in any column
        # Bytes of each column held, least recently used first, across versions.
        self._columns_bytes: OrderedDict[tuple[int, Path], int] = OrderedDict()

    async def start(self, poll_seconds: float) -> None:
        """Note the catalog's time, then read what changes every `poll_seconds`."""
        try:
            self._since = await catalog.database_now(self.pool) - OVERLAP
        except Exception:
            log.warning("could not read the catalog's time; the watch tries again", exc_info=True)
        self._watch = asyncio.create_task(
            every(poll_seconds, self.refresh, "read the catalog's changes"), name="catalog-fields"
        )

    async def stop(self) -> None:
        if self._watch is not None:
            await cancel([self._watch])

    def forget(self) -> None:
        """Drop everything held (a catalog emptied behind this process's back: tests)."""
        self._afresh()
        self._items.clear()

    def _afresh(self, floor: datetime | None = None) -> None:
        """Drop the columns and what changed since they were read: they are read again on
        first need, later than `floor`, so a change at or before it is in them."""
        self.changed.clear()
        self._tables.clear()
        self._subsets.clear()
        self._columns_bytes.clear()
        self._epoch += 1  # a column read begun before this is not taken into a new table
        self._floor = floor
        self.generation += 1

    async def refresh(self) -> None:
        """Read what changed in the catalog since the last read."""
        if self._since is None:
            self._since = await catalog.database_now(self.pool) - OVERLAP
            return
        found, now = await catalog.changed_since(self.pool, self._since)
        self._since = now - OVERLAP
        floor = self._floor
        self.noted([(i, item) for i, item, at in found if floor is None or at > floor])
        if len(self.changed) > CHANGED_LIMIT:
            log.info("%d items changed: reading the filter columns afresh", len(self.changed))
            self._afresh(floor=now)

    def noted(self, found: Iterable[tuple[str, Item | None]]) -> None:
        """Items written or deleted (None), by this process or as read from the catalog."""
        moved = False
        for item_id, item in found:
            if item_id not in self.changed or self.changed[item_id] != item:
                self.changed[item_id] = item
                self._items.pop(item_id, None)
                moved = True
        if moved:
            self.generation += 1

    async def subset(
        self, version: IndexVersion, found: Filter | None, category: str | None, now: datetime
    ) -> Subset | None:
        """The version's rows in `category` that pass the filter at `now`, judged by their
        current fields; None where nothing is asked."""
        if found is None and category is None:
            return None
        in_category = version.in_category(category) if category is not None else None
        changed = [
            (row, item)
            for item_id, item in self.changed.items()
            if (row := version.item_row.get(item_id)) is not None
        ]
        if found is None and in_category is not None and not changed:
            return in_category  # as the version has it: nothing in it changed since
        moment = int(now.timestamp()) if found is not None and found.timed else None
        text = found.text if found is not None else None
        key = (version.version, text, category, self.generation, moment)
        held = self._subsets.get(key)
        if held is not None:
            self._subsets.move_to_end(key)
            return held
        table = await self._table(version, found.paths) if found is not None else None

        def judge() -> Subset:
            n = len(version.item_ids)
            if found is not None and table is not None:
                member = columns.mask(found, table, now)
            else:
                member = np.ones(n, dtype=bool)
            if category is not None:
                member &= in_category.member if in_category is not None else False
            for row, item in changed:  # by their fields now, category included
                member[row] = (
                    item is not None
                    and (category is None or item.category == category)
                    and (found is None or found(filter_view(item), now))
                )
            return Subset(member, " and ".join(f"{k} {v!r}" for k, v in named if v))

        named = (("category", category), ("filter", text))
        # Array work over the whole catalog (milliseconds at a million rows): off the loop.
        made = await asyncio.to_thread(judge)
        self._subsets[key] = made
        if len(self._subsets) > SUBSETS_KEPT:
            self._subsets.popitem(last=False)
        return made

    async def passing(
        self,
        version: IndexVersion | None,
        subset: Subset | None,
        found: Filter | None,
        category: str | None,
        ids: Collection[str],
        now: datetime,
    ) -> set[str]:
        """Which of `ids` pass the filter and category by their fields now: a version's
        rows by `subset` (made by `subset` above), others (newer than the version, or
        with no version) looked up in one query."""
        if found is None and category is None:
            return set(ids)
        passed, unknown = set(), []
        for item_id in ids:
            row = version.item_row.get(item_id) if version is not None else None
            if item_id in self.changed or row is None:
                unknown.append(item_id)
            elif subset is None or subset.member[row]:
                passed.add(item_id)
        for item_id, item in (await self.items(unknown)).items():
            if item is None or (category is not None and item.category != category):
                continue
            if found is None or found(filter_view(item), now):
                passed.add(item_id)
        return passed

    async def items(self, ids: Collection[str]) -> dict[str, Item | None]:
        """The items' current fields (None: deleted or unknown), in at most one query."""
        out: dict[str, Item | None] = {}
        missing = []
        for item_id in ids:
            if item_id in self.changed:
                out[item_id] = self.changed[item_id]
            elif item_id in self._items:
                self._items.move_to_end(item_id)
                out[item_id] = self._items[item_id]
            else:
                missing.append(item_id)
        if missing:
            read = await catalog.items_by_id(self.pool, missing)
            for item_id in missing:
                item = read.get(item_id)
                out[item_id] = item
                self._items[item_id] = item
            while len(self._items) > ITEMS_KEPT:
                self._items.popitem(last=False)
        return out

    async def _table(self, version: IndexVersion, paths: Iterable[Path]) -> _Table:
        table = self._tables.get(version.version)
        if table is None:
            table = self._tables[version.version] = _Table(len(version.item_ids))
            while len(self._tables) > 3:  # the active version, and a pinned or previous one
                number, _ = self._tables.popitem(last=False)
                for key in [k for k in self._columns_bytes if k[0] == number]:
                    del self._columns_bytes[key]
        self._tables.move_to_end(version.version)
        paths = list(paths)
        wanted = [p for p in paths if p not in table.read]
        if wanted:
            read = await asyncio.gather(*(self._column(version, p) for p in wanted))
            table.read.update(zip(wanted, read, strict=True))
            for path, column in zip(wanted, read, strict=True):
                self._columns_bytes[(version.version, path)] = column.nbytes
        for path in paths:
            self._columns_bytes.move_to_end((version.version, path))
        self._keep_within_budget(table, version.version, paths)
        return table

    def _keep_within_budget(self, table: _Table, number: int, using: list[Path]) -> None:
        """Drop the least recently used columns past COLUMNS_BYTES (never those in use): a
        filter may name any attribute, and each costs a column of the whole catalog."""
        while sum(self._columns_bytes.values()) > COLUMNS_BYTES:
            key = next(
                (k for k in self._columns_bytes if not (k[0] == number and k[1] in using)), None
            )
            if key is None:
                return
            del self._columns_bytes[key]
            held = self._tables.get(key[0])
            if held is not None:
                held.read.pop(key[1], None)

    async def _column(self, version: IndexVersion, path: Path) -> columns.Column:
        """One field's column for the version: one read shared by concurrent requests."""
        key = (version.version, path, self._epoch)
        task = self._reading.get(key)
        if task is None:
            task = asyncio.create_task(self._read_column(version, path))
            self._reading[key] = task
            task.add_done_callback(lambda _: self._reading.pop(key, None))
        return await asyncio.shield(task)

    async def _read_column(self, version: IndexVersion, path: Path) -> columns.Column:
        values = await catalog.field_values(self.pool, path)
        rows: Mapping[str, int] = version.item_row

        def build() -> columns.Column:
            pairs = ((r, v) for i, v in values if (r := rows.get(i)) is not None)
            return columns.Column.of(len(version.item_ids), pairs)

        return await asyncio.to_thread(build)
