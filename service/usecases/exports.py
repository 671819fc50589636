"""Batch exports: lists for many users or items, as JSON lines in the object store.

The API queues an export (`create`); a worker writes it (`write`), asking this layer's own
use cases for each list, so a line holds exactly what the live endpoint answers for that id
(user_list for users, similar_items for items, under the same filter and scenario). The file
is written in parts of PART_IDS ids; storage/exports.py records each part once it is stored,
so a worker that takes over a stopped export goes on from the last part written, and the
export succeeds only once every part is. The download streams the parts in order, a chunk at
a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import orjson

from common import tracing
from common.errors import DependencyError, NotFound, NotReady
from common.models import Export, ExportIn, ExportQueued
from service.application import Application
from service.usecases import rules
from service.usecases.similar import similar_items
from service.usecases.user_list import ListRequest, user_list
from storage import exports
from workers.factory import EXPORT_TASK

log = logging.getLogger(__name__)

# Ids per part: a part is computed, then stored and recorded; a takeover redoes one at most.
PART_IDS = 2_000
# What a download reads from the object store at a time.
CHUNK_BYTES = 256 * 1024


async def create(app: Application, body: ExportIn) -> ExportQueued:
    """Record an export and queue it for a worker. The filter and scenario are checked
    first: a bad one is refused here, not found failed later."""
    rules.rules_for(app, None, body.filter, body.scenario)
    row = await exports.create(app.pool, body.kind, body.model_dump(exclude_none=True))
    await _queue(app, row["export_id"])
    return ExportQueued(export_id=row["export_id"])


async def get(app: Application, export_id: str) -> Export:
    """An export's state and progress. Exports whose worker fell silent are queued again
    first (a worker that takes one over goes on from its last part)."""
    for stalled in await exports.stalled(app.pool, app.settings.index.heartbeat_timeout):
        log.warning("export %s: its worker fell silent; queued again", stalled)
        await _queue(app, stalled)
    return Export(**await exports.get(app.pool, export_id))


async def download(app: Application, export_id: str) -> Iterator[bytes]:
    """The export's JSON lines, a chunk at a time, read from the object store as they are
    asked for (blocking reads: iterate in a thread). NotReady until it has succeeded."""
    row = await exports.get(app.pool, export_id)
    if row["state"] != "succeeded":
        raise NotReady(f"export {export_id!r} is {row['state']}; download it once it succeeded")
    keys = [exports.part_key(export_id, n) for n in range(1, row["parts"] + 1)]
    store = app.store

    def chunks() -> Iterator[bytes]:
        for key in keys:
            yield from store.read_chunks(key, CHUNK_BYTES)

    return chunks()


async def write(app: Application, export_id: str) -> None:
    """Write the export's parts from the last one recorded, then mark it succeeded. Nothing
    to do where it has finished (a redelivered task). A dependency that fails raises
    DependencyError with the parts so far recorded: the next attempt goes on from there."""
    row = await exports.claim(app.pool, export_id)
    if row is None:
        log.info("export %s has finished; nothing to do", export_id)
        return
    asked = ExportIn.model_validate({**row["request"], "kind": row["kind"]})
    if row["total"] is None:
        total = len(asked.ids) if asked.ids else await exports.count_ids(app.pool, asked.kind)
        await exports.set_total(app.pool, export_id, total)
    part, after = row["parts"], row["resume_after"]
    while True:
        batch, next_after = await _next_ids(app, asked, after)
        if not batch:
            break
        lines = [await _line(app, asked, one) for one in batch]
        part += 1
        key = exports.part_key(export_id, part)
        await asyncio.to_thread(app.store.put_bytes, key, b"".join(lines))
        await exports.part_written(app.pool, export_id, part, len(batch), next_after)
        after = next_after
    await exports.finish(app.pool, export_id)
    log.info("export %s succeeded: %d parts", export_id, part)


async def fail(app: Application, export_id: str, error: str) -> None:
    await exports.finish(app.pool, export_id, error)


async def _next_ids(app: Application, asked: ExportIn, after: str | None) -> tuple[list[str], str]:
    """The ids of the next part, and where the one after starts."""
    if asked.ids is not None:
        start = int(after or 0)
        batch = asked.ids[start : start + PART_IDS]
        return batch, str(start + len(batch))
    batch = await exports.ids_after(app.pool, asked.kind, after, PART_IDS)
    return batch, batch[-1] if batch else (after or "")


async def _line(app: Application, asked: ExportIn, one: str) -> bytes:
    """One JSON line: the id and its list, as the live endpoint answers it."""
    if asked.kind == "recommendations":
        request = ListRequest(
            user_id=one, limit=asked.limit, filter=asked.filter, scenario=asked.scenario
        )
        items = (await user_list(app, request)).items
    else:
        try:
            found = await similar_items(
                app, one, asked.limit, filter_text=asked.filter, scenario=asked.scenario
            )
        except NotFound as exc:  # a listed item that is unknown or deleted
            return orjson.dumps({"id": one, "items": [], "error": exc.message}) + b"\n"
        items = found.items
    pairs = [{"item_id": i.item_id, "score": i.score} for i in items]
    return orjson.dumps({"id": one, "items": pairs}) + b"\n"


async def _queue(app: Application, export_id: str) -> None:
    try:
        await asyncio.to_thread(
            app.celery.send_task, EXPORT_TASK, args=[export_id], headers=tracing.task_headers()
        )
    except Exception as exc:
        await exports.finish(app.pool, export_id, f"could not queue: {exc}")
        raise DependencyError(f"the task queue is unavailable: {exc}") from exc
