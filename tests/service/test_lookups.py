"""Plain reads answered ahead of FastAPI's routing give FastAPI's answers, byte for byte, and
everything else still goes through FastAPI."""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.api import lookups
from tests.helpers import assert_error
from tests.service.test_recommendations import served

__all__ = ["served"]


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the requests the lookups answer from now on."""
    seen: list[str] = []
    for lookup in lookups.LOOKUPS:
        real = lookup.answer

        async def counted(found_id: str, *args: Any, real: Any = real) -> Any:
            seen.append(found_id)
            return await real(found_id, *args)

        monkeypatch.setattr(lookup, "answer", counted)
    return seen


async def through_fastapi(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, path: str, **options: Any
) -> httpx.Response:
    with monkeypatch.context() as patch:
        patch.setattr(lookups, "LOOKUPS", ())
        return await client.get(path, **options)


NO_CACHE = {"Cache-Control": "no-cache"}
PLAIN = [
    ("/api/v1/items/space-3/similar", {}, {}),
    ("/api/v1/items/space-3/similar", {"limit": 5}, NO_CACHE),
    ("/api/v1/items/horror-0/similar", {"limit": 200}, {}),
    ("/api/v1/recommendations/horror-fan-0", {}, {}),
    ("/api/v1/recommendations/horror-fan-0", {"limit": 3, "offset": 2}, {}),
    ("/api/v1/recommendations/someone-new", {"limit": 4}, {}),
    ("/api/v1/recommendations/viewer-1", {"offset": 0}, {}),
    ("/api/v1/recommendations/viewer-1", {"offset": 0}, NO_CACHE),
    ("/api/v1/recommendations/comedy-fan-1", {"limit": 5}, {"Cache-Control": "max-age=0"}),
    ("/api/v1/items/space-3/similar", {"category": "space", "limit": 3}, {}),
    ("/api/v1/recommendations/horror-fan-0", {"category": "comedy"}, {}),
    ("/api/v1/recommendations/horror-fan-0", {"exclude_seen": "false", "limit": "04"}, {}),
    ("/api/v1/recommendations/horror-fan-1", {"explain": "true", "limit": 2}, {}),
    ("/api/v1/recommendations/horror-fan-1", {"experiment_id": "none-running"}, {}),
    ("/api/v1/recommendations/u%20with%20space", {"category": "space%opera"}, {}),
]


@pytest.mark.parametrize(("path", "params", "headers"), PLAIN)
async def test_a_plain_read_is_answered_here_as_fastapi_answers_it(
    client: httpx.AsyncClient,
    served: int,
    taken: list[str],
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    params: dict[str, int],
    headers: dict[str, str],
) -> None:
    # A list ranked live is cached from here on (and kept again, for no-cache).
    await client.get(path, params=params, headers=headers)
    assert len(taken) == 1
    ours = await client.get(path, params=params, headers=headers)
    theirs = await through_fastapi(client, monkeypatch, path, params=params, headers=headers)
    assert len(taken) == 2
    assert ours.status_code == theirs.status_code == 200
    # Byte for byte, but for the recommendation_id each answer has of its own.
    assert anonymised(ours.content) == anonymised(theirs.content)
    assert ours.json()["recommendation_id"] != theirs.json()["recommendation_id"]
    assert ours.headers["content-type"] == theirs.headers["content-type"]
    assert ours.headers["content-length"] == theirs.headers["content-length"]
    assert ours.headers["x-request-id"]
    assert ours.json()["index_version"] == served


def anonymised(body: bytes) -> bytes:
    return re.sub(rb'"recommendation_id":"[0-9a-f]{32}"', b'"recommendation_id":""', body)


@pytest.mark.parametrize(
    "case",
    [
        ("/api/v1/items/space-3/similar", {"category": ""}, {}),
        ("/api/v1/items/space-3/similar", {"limit": 0}, {}),
        ("/api/v1/items/space-3/similar", {"limit": 201}, {}),
        ("/api/v1/items/space-3/similar", {"limit": "five"}, {}),
        ("/api/v1/items/space-3/similar", {"limit": ["5", "6"]}, {}),
        ("/api/v1/items/space-3/similar", {"offset": 1}, {}),
        ("/api/v1/items/" + "x" * 129 + "/similar", {}, {}),
        ("/api/v1/recommendations/horror-fan-0", {"explain": "maybe"}, {}),
        ("/api/v1/recommendations/horror-fan-0", {"unknown": "1"}, {}),
        ("/api/v1/recommendations/horror-fan-0", {"category": "x" * 129}, {}),
        ("/api/v1/recommendations/horror-fan-0", {"offset": 10_001}, {}),
        ("/api/v1/recommendations/horror-fan-0", {"limit": ""}, {}),
        ("/api/v1/recommendations/horror-fan-0", {}, {"Cache-Control": "x" * 257}),
        ("/api/v1/recommendations/horror-fan-0/more", {}, {}),
    ],
)
async def test_anything_else_goes_through_fastapi(
    client: httpx.AsyncClient,
    served: int,
    taken: list[str],
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[str, dict[str, Any], dict[str, str]],
) -> None:
    path, params, headers = case
    ours = await client.get(path, params=params, headers=headers)
    assert taken == []
    theirs = await through_fastapi(client, monkeypatch, path, params=params, headers=headers)
    assert ours.status_code == theirs.status_code
    if ours.status_code != 200:
        assert ours.json() == theirs.json()


async def test_refusals_and_failures_read_as_fastapi_gives_them(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    app: FastAPI,
    served: int,
    taken: list[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert_error(await anonymous.get("/api/v1/items/space-3/similar"), 401)
    assert taken == []
    # A route's own error (here an item that does not exist) comes out as the handlers give it.
    ours = await client.get("/api/v1/items/nope/similar")
    theirs = await through_fastapi(client, monkeypatch, "/api/v1/items/nope/similar")
    assert taken == ["nope"]
    assert_error(ours, 404, "not_found")
    assert ours.content == theirs.content

    def broken(*_: Any) -> None:
        raise RuntimeError("a bug")

    # A bug answers the 500 of FastAPI's last handler, and its traceback goes to the log.
    monkeypatch.setattr(app.state.application.serving, "deleted_rows", broken)
    with caplog.at_level(logging.ERROR, logger="service.api.errors"):
        ours = await client.get("/api/v1/items/space-3/similar")
    assert_error(ours, 500, "internal_error")
    assert "a bug" not in ours.text
    assert "a bug" in caplog.text


async def test_the_metrics_name_the_route(
    client: httpx.AsyncClient, served: int, taken: list[str]
) -> None:
    await client.get("/api/v1/items/space-3/similar", params={"limit": 2})
    await client.get("/api/v1/recommendations/horror-fan-0")
    assert len(taken) == 2
    metrics = (await client.get("/metrics")).text
    for template in ("/api/v1/items/{item_id}/similar", "/api/v1/recommendations/{user_id}"):
        assert f'method="GET",route="{template}",status="200"' in metrics
