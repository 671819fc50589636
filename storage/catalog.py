"""The item catalog in PostgreSQL. Deleting keeps the row (marked) so history is never lost."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from common.errors import InvalidInput, NotFound
from common.models import Item, ItemFields, ItemIn
from common.text import content_hash, item_text
from storage import cursors
from storage.db import database_errors, transaction

_COLUMNS = (
    "item_id, title, description, category, tags, attributes, published_at, created_at, updated_at"
)
_COLUMN_NAMES = [name.strip() for name in _COLUMNS.split(",")]

# One statement for any number of rows. Tags and attributes travel as JSON text because
# unnest() would flatten an array of arrays.
_UPSERT = """
WITH revived AS (
    SELECT item_id FROM items WHERE item_id = ANY($1::text[]) AND deleted_at IS NOT NULL
), written AS (
INSERT INTO items AS i (item_id, title, description, category, tags, attributes,
                        published_at, content_hash)
SELECT r.item_id, r.title, r.description, r.category,
       ARRAY(SELECT jsonb_array_elements_text(r.tags::jsonb)), r.attributes::jsonb,
       r.published_at, r.content_hash
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::timestamptz[], $8::text[])
     AS r(item_id, title, description, category, tags, attributes, published_at, content_hash)
ON CONFLICT (item_id) DO UPDATE SET
    title = EXCLUDED.title, description = EXCLUDED.description,
    category = EXCLUDED.category, tags = EXCLUDED.tags, attributes = EXCLUDED.attributes,
    published_at = EXCLUDED.published_at, content_hash = EXCLUDED.content_hash,
    updated_at = now(), deleted_at = NULL
RETURNING item_id
)
SELECT (SELECT count(*) FROM written) AS written, ARRAY(SELECT item_id FROM revived) AS revived
"""


def _columns(items: Sequence[ItemIn]) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(8)]
    for item in items:
        text = item_text(item.title, item.description, item.category, item.tags)
        row = (
            item.item_id,
            item.title,
            item.description,
            item.category,
            orjson.dumps(item.tags).decode(),
            orjson.dumps(item.attributes).decode(),
            item.published_at,
            content_hash(text),
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


async def upsert_items(pool: asyncpg.Pool, items: Sequence[ItemIn]) -> tuple[int, list[str]]:
    """Insert or replace items in one statement; a repeated item_id keeps its last version.

    Returns how many distinct items were written, and which of them were deleted before.
    """
    latest = list({item.item_id: item for item in items}.values())
    with database_errors():
        row = await pool.fetchrow(_UPSERT, *_columns(latest))
    assert row is not None
    return int(row["written"]), list(row["revived"])


async def put_item(pool: asyncpg.Pool, item_id: str, fields: ItemFields) -> tuple[Item, bool]:
    """The stored item, and whether it had been deleted before."""
    async with transaction(pool) as conn:
        written = await conn.fetchrow(
            _UPSERT, *_columns([ItemIn(item_id=item_id, **fields.model_dump())])
        )
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM items WHERE item_id = $1", item_id)
    assert row is not None and written is not None, "the row was written in this transaction"
    return Item(**row), bool(written["revived"])


async def get_item(pool: asyncpg.Pool, item_id: str) -> Item:
    with database_errors():
        row = await pool.fetchrow(
            f"SELECT {_COLUMNS} FROM items WHERE item_id = $1 AND deleted_at IS NULL", item_id
        )
    if row is None:
        raise NotFound(f"item {item_id!r} does not exist")
    return Item(**row)


async def delete_item(pool: asyncpg.Pool, item_id: str) -> None:
    with database_errors():
        status = await pool.execute(
            "UPDATE items SET deleted_at = now() WHERE item_id = $1 AND deleted_at IS NULL",
            item_id,
        )
    if status == "UPDATE 0":
        raise NotFound(f"item {item_id!r} does not exist")


async def delete_items(pool: asyncpg.Pool, item_ids: Sequence[str]) -> list[str]:
    """Mark the live items among `item_ids` deleted, in one statement; returns those."""
    with database_errors():
        rows = await pool.fetch(
            """UPDATE items SET deleted_at = now()
               WHERE item_id = ANY($1::text[]) AND deleted_at IS NULL RETURNING item_id""",
            list(set(item_ids)),
        )
    return [r["item_id"] for r in rows]


async def list_items(
    pool: asyncpg.Pool, *, category: str | None, limit: int, cursor: str | None
) -> tuple[list[Item], str | None]:
    """A page of live items in item_id order, and the cursor of the next page (None at the end)."""
    after = decode_cursor(cursor) if cursor else None
    with database_errors():
        rows = await pool.fetch(
            f"""SELECT {_COLUMNS} FROM items
                WHERE deleted_at IS NULL
                  AND ($1::text IS NULL OR category = $1)
                  AND ($2::text IS NULL OR item_id > $2)
                ORDER BY item_id LIMIT $3""",
            category,
            after,
            limit + 1,
        )
    items = [Item(**row) for row in rows[:limit]]
    more = len(rows) > limit
    return items, encode_cursor(items[-1].item_id) if more else None


def encode_cursor(item_id: str) -> str:
    return cursors.encode({"after": item_id})


def decode_cursor(cursor: str) -> str:
    after = cursors.decode(cursor).get("after")
    if not isinstance(after, str):
        raise InvalidInput(cursors.NOT_ISSUED)
    return after


async def deleted_ids(pool: asyncpg.Pool) -> set[str]:
    """Every item deleted and not restored since."""
    with database_errors():
        rows = await pool.fetch("SELECT item_id FROM items WHERE deleted_at IS NOT NULL")
    return {r["item_id"] for r in rows}


async def deleted_since(pool: asyncpg.Pool, when: datetime) -> int:
    """How many items that existed at `when` are deleted now."""
    with database_errors():
        count = await pool.fetchval(
            """SELECT count(*) FROM items
               WHERE deleted_at IS NOT NULL AND deleted_at > $1 AND created_at <= $1""",
            when,
        )
    return int(count)


async def live_share(pool: asyncpg.Pool, item_ids: Sequence[str]) -> float:
    """The share of `item_ids` that are live items (1 for none)."""
    if not item_ids:
        return 1.0
    with database_errors():
        live = await pool.fetchval(
            "SELECT count(*) FROM items WHERE item_id = ANY($1::text[]) AND deleted_at IS NULL",
            list(item_ids),
        )
    return int(live) / len(item_ids)


# A field's column for filters, by the name the filter grammar gives it. An attribute path
# travels as a parameter (`#>` with a text array): nothing a filter says is ever SQL.
_FIELD_COLUMNS = {
    "item_id": "item_id",
    "category": "category",
    "tags": "tags",
    "title": "title",
    "published_at": "published_at",
}


async def field_values(pool: asyncpg.Pool, path: Sequence[str]) -> list[tuple[str, Any]]:
    """Every live item's value of one field (`("tags",)`, `("attributes", "year")`), as
    (item_id, value); a value is None where the item lacks it. An attribute's inner names
    are read here, object keys only (`#>` would read `0` as an array's index, and a filter
    does not)."""
    if path[0] == "attributes":
        query = """SELECT item_id, attributes -> $1::text AS value
                   FROM items WHERE deleted_at IS NULL"""
        args: list[Any] = [path[1]]
    else:
        column = _FIELD_COLUMNS[path[0]]  # a KeyError here is a caller's bug, not input
        query = f"SELECT item_id, {column} AS value FROM items WHERE deleted_at IS NULL"
        args = []
    with database_errors():
        async with pool.acquire() as conn:
            rows = await conn.fetch(query, *args)
    inner = path[2:] if path[0] == "attributes" else ()
    return [(r["item_id"], _inside(r["value"], inner)) for r in rows]


def _inside(value: Any, keys: Sequence[str]) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


async def changed_since(
    pool: asyncpg.Pool, when: datetime
) -> tuple[list[tuple[str, Item | None, datetime]], datetime]:
    """Items written or deleted after `when` (None for a deleted one) with when each last
    changed, and the database's time as it read them."""
    with database_errors():
        async with pool.acquire() as conn:
            now = await conn.fetchval("SELECT now()")
            rows = await conn.fetch(
                f"""SELECT {_COLUMNS}, deleted_at IS NOT NULL AS deleted,
                           greatest(updated_at, deleted_at) AS changed_at
                    FROM items WHERE updated_at > $1 OR deleted_at > $1""",
                when,
            )
    found = [
        (
            r["item_id"],
            None if r["deleted"] else Item(**{k: r[k] for k in _COLUMN_NAMES}),
            r["changed_at"],
        )
        for r in rows
    ]
    return found, now


async def database_now(pool: asyncpg.Pool) -> datetime:
    with database_errors():
        now: datetime = await pool.fetchval("SELECT now()")
    return now


async def items_by_id(pool: asyncpg.Pool, item_ids: Sequence[str]) -> dict[str, Item]:
    """The live items among `item_ids`, in one query."""
    if not item_ids:
        return {}
    with database_errors():
        rows = await pool.fetch(
            f"""SELECT {_COLUMNS} FROM items
                WHERE item_id = ANY($1::text[]) AND deleted_at IS NULL""",
            list(item_ids),
        )
    return {r["item_id"]: Item(**r) for r in rows}
