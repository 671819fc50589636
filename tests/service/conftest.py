"""Fixtures of the service's tests."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import build_now, shop_catalog

GENRES = ("horror", "comedy", "space", "western")


@pytest.fixture
async def shop(client: httpx.AsyncClient, app: FastAPI) -> dict[str, dict[str, Any]]:
    """The shop catalog, fans of one genre each, a version built and served; the items by id."""
    items = shop_catalog()
    assert (await client.post("/api/v1/items/batch", json={"items": items})).status_code == 200
    rows = [
        {"user_id": f"{g}-fan-{f}", "item_id": f"{g}-{(f + k) % 8}", "type": "like"}
        for g in GENRES
        for f in range(3)
        for k in range(4)
    ]
    await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    await app.state.application.drain()
    assert await build_now(app) is not None
    return {item["item_id"]: item for item in items}
