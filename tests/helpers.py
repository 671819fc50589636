"""Small assertions shared by the API tests."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx


def assert_error(answer: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The answer is `status` with the contract's error body; returns that body's `error`."""
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def item(item_id: str, **fields: Any) -> dict[str, Any]:
    return {"item_id": item_id, "title": f"Title of {item_id}", **fields}


async def build_now(app: Any, *, force: bool = False, activate: bool = True) -> int | None:
    """Build a version in this process (no worker) and have the app serve it."""
    from embeddings.encoder import make_encoder
    from workers.context import BuildContext
    from workers.pipeline import build_version

    res = app.state.application
    version = (
        await build_version(
            res.pool,
            res.store,
            make_encoder(res.settings.embedding.model),
            res.settings,
            BuildContext(),
            force=force,
            activate=activate,
        )
    ).version
    await res.serving.sync()
    return version


def count_rankings(monkeypatch: Any) -> list[int]:
    """One entry for each call of `ranking.recommend` from now on."""
    from indexing import ranking

    calls: list[int] = []
    real = ranking.recommend

    def counted(*args: Any, **kwargs: Any) -> ranking.Ranked:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ranking, "recommend", counted)
    return calls


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Return once `condition()` holds; fail if it does not within `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not reached within {seconds:g} s"
        await asyncio.sleep(0.02)


def genre_catalog(per_genre: int = 8) -> list[dict[str, Any]]:
    """Items whose titles and tags carry their genre's words, so vectors cluster by genre."""
    words = {
        "Horror": ["haunted", "ghost", "blood", "scream", "zombie", "curse", "demon", "crypt"],
        "Comedy": ["wedding", "prank", "laugh", "silly", "party", "joke", "roommate", "holiday"],
        "Space": ["starship", "galaxy", "planet", "alien", "orbit", "rocket", "nebula", "comet"],
        "Western": ["cowboy", "sheriff", "outlaw", "ranch", "saloon", "desert", "horse", "bounty"],
    }
    items = []
    for genre, vocab in words.items():
        for n in range(per_genre):
            picked = [vocab[(n + k) % len(vocab)] for k in range(3)]
            items.append(
                {
                    "item_id": f"{genre.lower()}-{n}",
                    "title": f"The {picked[0]} {picked[1]}",
                    "description": f"{genre} {' '.join(picked)}",
                    "category": genre,
                    "tags": [genre.lower(), *picked[1:]],
                }
            )
    return items


@asynccontextmanager
async def running(settings: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """Another API process for `settings` (started and stopped as uvicorn would), and an
    admin client of it."""
    from service.api.main import create_app
    from tests.conftest import ADMIN_KEY

    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://peer.test",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as http,
    ):
        yield app, http


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fresh_database(stack: Any, name: str) -> str:
    """The URL of database `name` on the test server, created if missing, emptied."""
    import asyncpg

    from devstack.servers import ensure_database

    database: str = stack.env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{name}"

    async def reset() -> None:
        await ensure_database(database)
        conn = await asyncpg.connect(database)
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        await conn.close()

    asyncio.run(reset())
    return database


def shop_catalog() -> list[dict[str, Any]]:
    """The genre catalog with shop attributes: every other item in stock, a price, a year,
    and a publication date a day apart."""
    items = genre_catalog()
    for n, item in enumerate(items):
        item["attributes"] = {"in_stock": n % 2 == 0, "price": n * 10, "year": 1980 + n}
        item["published_at"] = f"2026-01-{1 + n % 28:02d}"
    return items


async def listed(client: httpx.AsyncClient, path: str, **params: Any) -> list[str]:
    answer = await client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return [i["item_id"] for i in answer.json()["items"]]
