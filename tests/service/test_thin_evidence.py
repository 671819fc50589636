"""A new user whose few likes only a handful of people share is carried by what those items
are, through the API on real data and the real model: the first 2,000 films of MovieLens
latest-small, rated by users 1-120, and five likes of its first five horror films.

The data is read from the shared folder beside the repository (or RECS_DATA_DIR); it is
never copied into the project.
"""

from __future__ import annotations

import csv
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from common.settings import Settings
from tests.conftest import ROOT
from tests.helpers import build_now, running

DATA = Path(os.environ.get("RECS_DATA_DIR", ROOT.parent / "shared" / "data")) / "ml-latest-small"
MODEL = "all-MiniLM-L6-v2"

pytestmark = pytest.mark.skipif(
    not (DATA / "ratings.csv").is_file(), reason=f"MovieLens latest-small is not at {DATA}"
)


def films() -> list[dict[str, Any]]:
    """The first 2,000 rows of movies.csv as items: genres as tags, the first as category."""
    with (DATA / "movies.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:2000]
    items = []
    for row in rows:
        genres = [] if row["genres"] == "(no genres listed)" else row["genres"].split("|")
        item: dict[str, Any] = {"item_id": row["movieId"], "title": row["title"], "tags": genres}
        if genres:
            item["category"] = genres[0]
        items.append(item)
    return items


def ratings(known: set[str]) -> list[dict[str, Any]]:
    """Users 1-120's ratings of those films (half stars below 1 sent as 1)."""
    with (DATA / "ratings.csv").open(newline="", encoding="utf-8") as f:
        return [
            {
                "user_id": f"ml-{row['userId']}",
                "item_id": row["movieId"],
                "type": "rating",
                "value": max(1.0, float(row["rating"])),
                "timestamp": datetime.fromtimestamp(int(row["timestamp"]), UTC).isoformat(),
            }
            for row in csv.DictReader(f)
            if int(row["userId"]) <= 120 and row["movieId"] in known
        ]


async def test_five_horror_likes_bring_horror(settings: Settings, db: asyncpg.Pool) -> None:
    embedding = settings.embedding.model_copy(update={"model": MODEL})
    real = settings.model_copy(update={"embedding": embedding})
    items = films()
    horror = [i["item_id"] for i in items if "Horror" in i["tags"]]
    async with running(real) as (app, client):
        for start in range(0, len(items), 1000):
            batch = {"items": items[start : start + 1000]}
            assert (await client.post("/api/v1/items/batch", json=batch)).status_code == 200
        rows = ratings({i["item_id"] for i in items})
        for start in range(0, len(rows), 5000):
            batch = {"interactions": rows[start : start + 5000]}
            answer = await client.post("/api/v1/interactions/batch", json=batch)
            assert answer.status_code == 202, answer.text
        await app.state.application.drain()
        assert await build_now(app) is not None

        for item_id in horror[:5]:
            like = {"user_id": "newcomer", "item_id": item_id, "type": "like"}
            assert (await client.post("/api/v1/interactions", json=like)).status_code == 202
        await app.state.application.drain()
        answer = (await client.get("/api/v1/recommendations/newcomer")).json()

    shown = [i["item_id"] for i in answer["items"]]
    assert answer["strategy"] == "hybrid" and len(shown) == 10
    assert not set(shown) & set(horror[:5])
    assert len(set(shown) & set(horror)) >= 3, answer
