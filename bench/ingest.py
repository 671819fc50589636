"""Ingest throughput through the API beside a raw asyncpg COPY of the same rows.

Run against a running service (`make run` in another terminal):

    .venv/bin/python bench/ingest.py --url http://127.0.0.1:8000 --key "$ADMIN_API_KEY"

Bodies are serialised before the clock starts, so the client's JSON encoding is not counted.
Each round posts fresh rows (new ids and event ids); the COPY goes into a scratch table made
`LIKE` the real one (same columns, defaults and indexes, no foreign keys), dropped after.
The figure that matters is the ratio: API rows/s over COPY rows/s, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson

from common.settings import load_settings

BATCH = 10_000


def make_items(run: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "item_id": f"bench-{run}-{n}",
            "title": f"Bench item {n}",
            "description": "A generated item for the ingest benchmark.",
            "category": f"cat-{n % 20}",
            "tags": [f"tag-{n % 7}", f"tag-{n % 11}"],
            "attributes": {"n": n},
        }
        for n in range(count)
    ]


def make_interactions(run: str, items: list[str], count: int) -> list[dict[str, Any]]:
    start = datetime.now(UTC) - timedelta(days=30)
    kinds = ["view", "click", "like", "purchase"]
    return [
        {
            "user_id": f"bench-{run}-u{n % 5000}",
            "item_id": items[(n * 7919) % len(items)],
            "type": kinds[n % 4],
            "timestamp": (start + timedelta(seconds=n)).isoformat(),
            "event_id": f"bench-{run}-e{n}",
        }
        for n in range(count)
    ]


async def post_all(
    client: httpx.AsyncClient, path: str, key: str, rows: list[dict[str, Any]], concurrency: int
) -> float:
    bodies = [orjson.dumps({key: rows[i : i + BATCH]}) for i in range(0, len(rows), BATCH)]
    queue = list(reversed(bodies))

    async def sender() -> None:
        while queue:
            body = queue.pop()
            answer = await client.post(
                path, content=body, headers={"content-type": "application/json"}
            )
            answer.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return len(rows) / (time.perf_counter() - started)


async def copy_rows(
    conn: asyncpg.Connection, table: str, columns: list[str], records: list[tuple[Any, ...]]
) -> float:
    scratch = f"bench_copy_{table}"
    await conn.execute(f"DROP TABLE IF EXISTS {scratch}")
    await conn.execute(f"CREATE TABLE {scratch} (LIKE {table} INCLUDING ALL)")
    try:
        started = time.perf_counter()
        for i in range(0, len(records), BATCH):
            await conn.copy_records_to_table(
                scratch, records=records[i : i + BATCH], columns=columns
            )
        return len(records) / (time.perf_counter() - started)
    finally:
        await conn.execute(f"DROP TABLE {scratch}")


def interaction_records(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            r["event_id"],
            r["user_id"],
            r["item_id"],
            r["type"],
            None,
            datetime.fromisoformat(r["timestamp"]),
        )
        for r in rows
    ]


def item_records(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            r["item_id"],
            r["title"],
            r["description"],
            r["category"],
            r["tags"],
            orjson.dumps(r["attributes"]).decode(),
            "0" * 64,
        )
        for r in rows
    ]


async def one_round(args: argparse.Namespace, conn: asyncpg.Connection) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    items = make_items(run, args.items)
    rows = make_interactions(run, [i["item_id"] for i in items], args.interactions)
    headers = {"Authorization": f"Bearer {args.key}"}
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=120) as client:
        items_api = await post_all(client, "/api/v1/items/batch", "items", items, args.concurrency)
        rows_api = await post_all(
            client, "/api/v1/interactions/batch", "interactions", rows, args.concurrency
        )
    items_copy = await copy_rows(
        conn,
        "items",
        ["item_id", "title", "description", "category", "tags", "attributes", "content_hash"],
        item_records(items),
    )
    rows_copy = await copy_rows(
        conn,
        "interactions",
        ["event_id", "user_id", "item_id", "type", "value", "occurred_at"],
        interaction_records(rows),
    )
    return {
        "items_api": items_api,
        "items_copy": items_copy,
        "rows_api": rows_api,
        "rows_copy": rows_copy,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PORT', '8000')}")
    parser.add_argument("--key", default=os.environ.get("ADMIN_API_KEY") or _saved_key())
    parser.add_argument("--database-url", default=load_settings().database.url)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--interactions", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not args.key:
        parser.error("pass --key or set ADMIN_API_KEY")

    conn = await asyncpg.connect(args.database_url)
    try:
        rounds = [await one_round(args, conn) for _ in range(args.rounds)]
    finally:
        await conn.close()

    print(
        f"{args.items:,} items and {args.interactions:,} interactions a round, "
        f"batches of {BATCH:,}, {args.concurrency} concurrent requests, {args.rounds} rounds"
    )
    print(f"{'':24}{'median':>12}{'min':>12}{'max':>12}")
    for label, name in [
        ("items/s API", "items_api"),
        ("items/s COPY", "items_copy"),
        ("interactions/s API", "rows_api"),
        ("interactions/s COPY", "rows_copy"),
    ]:
        values = [r[name] for r in rounds]
        print(
            f"{label:24}{statistics.median(values):>12,.0f}{min(values):>12,.0f}"
            f"{max(values):>12,.0f}"
        )
    for label, api, copy in [
        ("items", "items_api", "items_copy"),
        ("interactions", "rows_api", "rows_copy"),
    ]:
        ratios = [r[api] / r[copy] for r in rounds]
        print(
            f"ratio API/COPY {label:13} median {statistics.median(ratios):.2f} "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
        )


def _saved_key() -> str | None:
    path = os.path.join(".stack", "admin_key")
    return open(path).read().strip() if os.path.exists(path) else None


if __name__ == "__main__":
    asyncio.run(main())
