"""Loading a file of items or interactions through the batch endpoints: rows read as they
are needed (CSV or JSON lines), sent in batches, several in flight, and the rows the service
refuses written beside the file with the reason.

A batch is all or nothing on the service's side: where it is refused naming rows (an unknown
item, a bad type), those rows are set aside and the rest is sent again, so one bad row costs
one round trip, not its batch.
"""

from __future__ import annotations

import asyncio
import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import orjson

from recs_client.client import AsyncClient
from recs_client.errors import InvalidRequest, NotFound, RecsError

Kind = Literal["items", "interactions"]
# The batch endpoints take up to 10,000 rows.
MAX_BATCH = 10_000
# Columns of an items CSV that are fields of the item; any other column is an attribute.
ITEM_COLUMNS = ("item_id", "title", "description", "category", "tags", "published_at")
INTERACTION_COLUMNS = (
    "user_id",
    "item_id",
    "type",
    "value",
    "timestamp",
    "event_id",
    "recommendation_id",
)
# Where a refusal's details name a row: {"index": n} or a field like "body.items[12].title".
_ROW = re.compile(r"(?:items|interactions)\[(\d+)\]")


@dataclass
class Summary:
    """What a load did: rows read, sent and stored, duplicates, and rows refused."""

    read: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_path: Path | None = None
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class Row:
    number: int  # 1-based line (JSON lines) or record (CSV) of the file
    data: dict[str, Any]


def rows(path: Path, kind: Kind) -> Iterator[Row | tuple[int, str]]:
    """The file's rows as request bodies, or (number, problem) for a row that cannot be
    one. `.csv` is CSV with a header; anything else is JSON lines."""
    with path.open(encoding="utf-8", newline="") as source:
        if path.suffix.lower() == ".csv":
            yield from _csv_rows(source, kind)
        else:
            for number, line in enumerate(source, start=1):
                if not line.strip():
                    continue
                try:
                    data = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield number, f"not JSON: {exc}"
                    continue
                if not isinstance(data, dict):
                    yield number, "not a JSON object"
                    continue
                yield Row(number, data)


def _csv_rows(source: TextIO, kind: Kind) -> Iterator[Row | tuple[int, str]]:
    reader = csv.DictReader(source)
    for number, record in enumerate(reader, start=1):
        convert = _item if kind == "items" else _interaction
        try:
            yield Row(number, convert({k: v for k, v in record.items() if k is not None}))
        except ValueError as exc:
            yield number, str(exc)


def _item(record: dict[str, str | None]) -> dict[str, Any]:
    """A CSV record as an item: tags split on '|', other columns as attributes (numbers
    where they read as numbers)."""
    item: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for column, raw in record.items():
        value = (raw or "").strip()
        if column == "tags":
            item["tags"] = [t.strip() for t in value.split("|") if t.strip()]
        elif column in ITEM_COLUMNS:
            if value:
                item[column] = value
        elif value:
            attributes[column.removeprefix("attributes.")] = _number(value)
    if attributes:
        item["attributes"] = attributes
    return item


def _interaction(record: dict[str, str | None]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column in INTERACTION_COLUMNS:
        value = (record.get(column) or "").strip()
        if not value:
            continue
        if column == "value":
            try:
                row[column] = float(value)
            except ValueError:
                raise ValueError(f"value {value!r} is not a number") from None
        else:
            row[column] = value
    return row


def _number(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


class Loader:
    """Sends a file's rows in batches of `batch` with `parallel` batches in flight."""

    def __init__(
        self,
        client: AsyncClient,
        kind: Kind,
        *,
        batch: int = 5_000,
        parallel: int = 4,
        progress: Callable[[int], None] = lambda _: None,
    ) -> None:
        self.client, self.kind = client, kind
        self.batch = max(1, min(batch, MAX_BATCH))
        self.parallel = max(1, parallel)
        self.progress = progress
        self.summary = Summary()
        self._rejected: list[tuple[int, Any, str]] = []

    async def load(self, path: Path) -> Summary:
        """Send the file; a batch that fails for good (a wrong key, the service away after
        the retries) stops the load, and the rows set aside so far are written all the same."""
        slots = asyncio.Semaphore(self.parallel)
        tasks: set[asyncio.Task[None]] = set()
        pending: list[Row] = []

        async def send(batch: list[Row]) -> None:
            try:
                await self._send(batch)
            finally:
                slots.release()

        async def start(batch: list[Row]) -> None:
            await slots.acquire()
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    slots.release()
                    raise task.exception()  # type: ignore[misc]
            tasks.add(asyncio.create_task(send(batch)))

        try:
            for row in rows(path, self.kind):
                self.summary.read += 1
                if isinstance(row, tuple):
                    self._reject(row[0], None, row[1])
                    continue
                pending.append(row)
                if len(pending) == self.batch:
                    await start(pending)
                    pending = []
            if pending:
                await start(pending)
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._write_rejected(path)
        return self.summary

    async def _send(self, batch: list[Row]) -> None:
        """Send a batch; rows the service names as refused are set aside and the rest sent
        again. A refusal that names no row refuses the whole batch."""
        while batch:
            try:
                if self.kind == "items":
                    done = await self.client.put_items([r.data for r in batch])
                    self.summary.stored += done["upserted"]
                else:
                    answer = await self.client.record_interactions([r.data for r in batch])
                    self.summary.stored += answer["accepted"]
                    self.summary.duplicates += answer["duplicates"]
                self.progress(len(batch))
                return
            except (InvalidRequest, NotFound) as exc:
                named = _named_rows(exc, len(batch))
                if not named:
                    for row in batch:
                        self._reject(row.number, row.data, f"{exc.code}: {exc.message}")
                    self.progress(len(batch))
                    return
                for index, problem in sorted(named.items(), reverse=True):
                    row = batch.pop(index)
                    self._reject(row.number, row.data, problem)
                self.progress(len(named))

    def _reject(self, number: int, data: Any, problem: str) -> None:
        self.summary.rejected += 1
        reason = problem.split(":", 1)[0]
        self.summary.errors[reason] = self.summary.errors.get(reason, 0) + 1
        self._rejected.append((number, data, problem))

    def _write_rejected(self, path: Path) -> None:
        if not self._rejected:
            return
        target = path.with_name(path.name + ".rejected.jsonl")
        with target.open("wb") as out:
            for number, data, problem in sorted(self._rejected, key=lambda r: r[0]):
                out.write(orjson.dumps({"row": number, "data": data, "error": problem}) + b"\n")
        self.summary.rejected_path = target


def _named_rows(exc: RecsError, size: int) -> dict[int, str]:
    """The batch's rows a refusal names, with what is wrong with each."""
    named: dict[int, str] = {}
    for detail in exc.details:
        index = detail.get("index")
        if not isinstance(index, int):
            found = _ROW.search(str(detail.get("field", "")))
            index = int(found.group(1)) if found else None
        if index is not None and 0 <= index < size:
            message = detail.get("message")
            if message is None and detail.get("item_id") is not None:
                message = f"the catalog holds no item {detail['item_id']!r}"
            elif message is not None and detail.get("field"):
                message = f"{str(detail['field']).removeprefix('body.')}: {message}"
            named.setdefault(index, f"{detail.get('code', exc.code)}: {message or exc.message}")
    return named
