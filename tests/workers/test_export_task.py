"""An export through a real Celery worker: the task opens an application of its own over
the active version and writes the lists the API answers (driven through the client
library)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from common.settings import Settings
from recs_client import AsyncClient
from tests.service.test_experiments import fans
from tests.workers.test_pipeline import worker

pytestmark = pytest.mark.slow


async def test_a_worker_writes_an_export_that_downloads_as_the_live_lists(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, tmp_path: Path
) -> None:
    await fans(client, app, 12)
    recs = AsyncClient(http=client)
    with worker(settings, tmp_path):
        export_id = (await recs.create_export("recommendations"))["export_id"]
        async with asyncio.timeout(120):
            state = await recs.wait_for_export(export_id, every=0.2)
    assert state["state"] == "succeeded", (state, (tmp_path / "worker.log").read_text()[-3000:])
    found = [line async for line in recs.download_export(export_id)]
    assert len(found) == state["rows"] == 12
    for line in found:
        live = await recs.recommend(line["id"])
        assert line["items"] == [
            {"item_id": i["item_id"], "score": i["score"]} for i in live["items"]
        ]
