"""What a request must pass before its body is read: a valid token, and a size limit per
route (1 MiB, the batch routes 64 MiB)."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import ADMIN_KEY
from tests.helpers import assert_error

BODY_ROUTES = [
    ("PUT", "/api/v1/items/x"),
    ("PUT", "/api/v1/users/u"),
    ("POST", "/api/v1/items/batch"),
    ("POST", "/api/v1/interactions"),
    ("POST", "/api/v1/interactions/batch"),
    ("POST", "/api/v1/search"),
    ("POST", "/api/v1/keys"),
    ("POST", "/api/v1/index/builds"),
]


async def call(
    app: FastAPI, method: str, path: str, token: str | None, declared: bool = False
) -> tuple[int, int]:
    """Send a 45 MB body straight to the ASGI app, chunked unless `declared`; (status, body
    chunks the app read)."""
    headers = [(b"content-type", b"application/json")]
    if declared:
        headers.append((b"content-length", b"45000000"))
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("recs.test", 80),
        "scheme": "http",
        "root_path": "",
        "app": app,
    }
    reads = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b" " * 1_000_000, "more_body": reads < 45}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status, reads


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_without_a_valid_token_no_body_is_read(
    app: FastAPI, db: asyncpg.Pool, method: str, path: str
) -> None:
    for token in (None, "not-a-key-at-all"):
        status, reads = await call(app, method, path, token)
        assert (status, reads) == (401, 0)


async def test_a_valid_token_still_meets_the_size_limit_first(
    app: FastAPI, db: asyncpg.Pool
) -> None:
    status, reads = await call(app, "PUT", "/api/v1/items/x", ADMIN_KEY, declared=True)
    assert (status, reads) == (413, 0)  # declared 45 MB, over the 1 MiB limit


async def test_bodies_over_a_mebibyte_are_refused_except_on_batch_routes(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    big = {"title": "T", "description": "x" * 20_000, "tags": ["t" * 100] * 100}
    item = {"item_id": "x", **big}
    single = {"title": "T", "description": "d" * (1024 * 1024)}
    assert_error(await client.put("/api/v1/items/x", json=single), 413, "payload_too_large")
    assert await db.fetchval("SELECT count(*) FROM items") == 0
    # 60 items of ~30 KB each: over a mebibyte, under the batch limit.
    many = {"items": [{**item, "item_id": f"i{n}"} for n in range(60)]}
    answer = await client.post("/api/v1/items/batch", json=many)
    assert answer.status_code == 200, answer.text
    assert await db.fetchval("SELECT count(*) FROM items") == 60
