"""Each request gets an id, returned in the answer, and one JSON access line without the
token."""

from __future__ import annotations

import logging

import httpx
import orjson
import pytest

from service.api.metrics import access_log
from tests.conftest import ADMIN_KEY


async def test_a_request_id_is_kept_or_made_and_logged_with_the_key_not_the_token(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    access_log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="recs.access"):
            given = await client.get("/api/v1/items/nope", headers={"X-Request-ID": "req-42"})
            made = await client.get("/health")
            odd = await client.get("/health", headers={"X-Request-ID": "bad id\\n"})
    finally:
        access_log.removeHandler(caplog.handler)
    assert given.headers["x-request-id"] == "req-42"
    assert len(made.headers["x-request-id"]) == 32
    assert odd.headers["x-request-id"] != "bad id\\n"
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "recs.access"]
    first = next(line for line in lines if line["request_id"] == "req-42")
    assert first["method"] == "GET" and first["status"] == 404
    assert first["route"] == "/api/v1/items/{item_id}" and first["key"] == "admin-key"
    assert first["duration_ms"] >= 0
    assert all(ADMIN_KEY not in r.getMessage() for r in caplog.records)
