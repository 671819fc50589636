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
from service.background import cancel
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
        self._reading: dict[tuple[int, Path], asyncio.Task[columns.Column]] = {}
        self._subsets: OrderedDict[tuple[Any, ...], Subset] = OrderedDict()
        self._items: OrderedDict[str, Item | None] = OrderedDict()
        self._watch: asyncio.Task[None] | None = None

    async def start(self, poll_seconds: float) -> None:
        """Note the catalog's time, then read what changes every `poll_seconds`."""
        try:
            self._since = await catalog.database_now(self.pool) - OVERLAP
        except Exception:
            log.warning("could not read the catalog's time; the watch tries again", exc_info=True)
        self._watch = asyncio.create_task(self._poll(poll_seconds), name="catalog-fields")

    async def stop(self) -> None:
        if self._watch is not None:
            await cancel([self._watch])

    async def _poll(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("could not read the catalog's changes", exc_info=True)

    def forget(self) -> None:
        """Drop everything held (a catalog emptied behind this process's back: tests)."""
        self.changed.clear()
        self._tables.clear()
        self._subsets.clear()
        self._items.clear()
        self.generation += 1

    async def refresh(self) -> None:
        """Read what changed in the catalog since the last read."""
        if self._since is None:
            self._since = await catalog.database_now(self.pool) - OVERLAP
            return
        found, now = await catalog.changed_since(self.pool, self._since)
        self._since = now - OVERLAP
        self.noted(found)
        if len(self.changed) > CHANGED_LIMIT:
            log.info("%d items changed: reading the filter columns afresh", len(self.changed))
            self.changed.clear()
            self._tables.clear()
            self._subsets.clear()
            self._since = now - OVERLAP
            self.generation += 1

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
        in_category = version.in_category(category) if category is not None else None
        if category is not None and in_category is None:  # a category the version lacks
            return Subset(np.zeros(len(version.item_ids), dtype=bool), f"category {category!r}")
        if found is None:
            return in_category
        moment = int(now.timestamp()) if found.timed else None
        key = (version.version, found.text, category, self.generation, moment)
        held = self._subsets.get(key)
        if held is not None:
            self._subsets.move_to_end(key)
            return held
        table = await self._table(version, found.paths)
        changed = list(self.changed.items())

        def judge() -> Subset:
            member = columns.mask(found, table, now)
            for item_id, item in changed:
                row = version.item_row.get(item_id)
                if row is not None:
                    member[row] = item is not None and found(filter_view(item), now)
            return Subset(member, f"filter {found.text!r}")

        # Array work over the whole catalog (milliseconds at a million rows): off the loop.
        made = await asyncio.to_thread(judge)
        if in_category is not None:
            made = made & in_category
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
                self._tables.popitem(last=False)
        self._tables.move_to_end(version.version)
        wanted = [p for p in paths if p not in table.read]
        if wanted:
            read = await asyncio.gather(*(self._column(version, p) for p in wanted))
            table.read.update(zip(wanted, read, strict=True))
        return table

    async def _column(self, version: IndexVersion, path: Path) -> columns.Column:
        """One field's column for the version: one read shared by concurrent requests."""
        key = (version.version, path)
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
