"""A second API process notices a new active version by itself and swaps without failing
requests in flight."""

from __future__ import annotations

import asyncio
import time

import httpx
from fastapi import FastAPI

from common.settings import Settings
from tests.helpers import build_now, genre_catalog, running


async def test_another_process_follows_activations_while_answering(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    await client.post("/api/v1/items/batch", json={"items": genre_catalog(4)})
    rows = [{"user_id": "fan", "item_id": f"space-{k}", "type": "like"} for k in range(3)]
    await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    first = await build_now(app)
    second = await build_now(app, force=True)

    async with running(settings) as (_, peer):
        assert (await peer.get("/health/ready")).json()["index_version"] == second
        failures: list[int] = []
        stop = asyncio.Event()

        async def keep_asking() -> None:
            while not stop.is_set():
                for path in ("/api/v1/recommendations/fan", "/api/v1/items/space-1/similar"):
                    answer = await peer.get(path)
                    if answer.status_code != 200:
                        failures.append(answer.status_code)
                await asyncio.sleep(0)

        askers = [asyncio.create_task(keep_asking()) for _ in range(4)]
        try:
            for target in (first, second, first):
                await client.post(f"/api/v1/index/versions/{target}/activate")
                deadline = time.monotonic() + 10
                while (await peer.get("/health/ready")).json()["index_version"] != target:
                    assert time.monotonic() < deadline, f"the peer never served {target}"
                    await asyncio.sleep(0.05)
                answer = await peer.get("/api/v1/recommendations/fan")
                assert answer.json()["index_version"] == target
        finally:
            stop.set()
            await asyncio.gather(*askers)
        assert failures == []
