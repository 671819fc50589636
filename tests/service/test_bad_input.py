"""Input that once reached PostgreSQL or the JSON codecs and answered 500 is a 4xx that names
the problem, and nothing is stored."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from tests.helpers import assert_error, item


def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for _ in range(depth):
        node = {"a": node}
    return node


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"title": "bad\x00title"}, "NUL"),
        ({"title": "T", "description": "a\x00b"}, "NUL"),
        ({"title": "T", "tags": ["ok", "b\x00d"]}, "NUL"),
        ({"title": "T", "attributes": {"k\x00": 1}}, "NUL"),
        ({"title": "T", "attributes": {"k": ["x\x00"]}}, "NUL"),
        ({"title": "T", "attributes": {"big": 2**64}}, "64 bits"),
        ({"title": "T", "attributes": {"small": -(2**63) - 1}}, "64 bits"),
        ({"title": "T", "attributes": nested(20)}, "deeper than 8"),
        ({"title": "T", "attributes": {str(n): n for n in range(5_000)}}, "more than 1000"),
        ({"title": "T", "attributes": {"blob": "x" * 100_000}}, "larger than 64 KiB"),
    ],
)
async def test_bad_item_fields_are_refused_by_name(
    client: httpx.AsyncClient, db: asyncpg.Pool, fields: dict[str, Any], named: str
) -> None:
    error = assert_error(await client.put("/api/v1/items/x", json=fields), 422, "invalid_request")
    assert named in str(error), error
    batch = {"items": [item("fine"), {"item_id": "y", **fields}]}
    assert_error(await client.post("/api/v1/items/batch", json=batch), 422)
    assert await db.fetchval("SELECT count(*) FROM items") == 0


@pytest.mark.parametrize("depth", [200, 300, 10_000])
async def test_json_nested_hundreds_deep_is_a_4xx(
    client: httpx.AsyncClient, db: asyncpg.Pool, depth: int
) -> None:
    body = '{"title": "T", "attributes": ' + '{"a": ' * depth + "{}" + "}" * depth + "}"
    headers = {"Content-Type": "application/json"}
    answer = await client.put("/api/v1/items/x", content=body, headers=headers)
    assert answer.status_code in (400, 422), answer.text
    assert any(why in answer.text for why in ("recursion", "deeper than 8", "parsing the body"))
    assert await db.fetchval("SELECT count(*) FROM items") == 0


async def test_attributes_at_the_caps_are_kept(client: httpx.AsyncClient) -> None:
    attributes = {"deep": nested(6), "big": 2**63 - 1, "list": list(range(900))}
    answer = await client.put("/api/v1/items/x", json={"title": "T", "attributes": attributes})
    assert answer.status_code == 200, answer.text
    assert (await client.get("/api/v1/items/x")).json()["attributes"] == attributes


@pytest.mark.parametrize("bad_id", ["a/b", "tab\there", "nul\x00", "\x7f"])
async def test_ids_that_could_not_be_addressed_are_refused(
    client: httpx.AsyncClient, db: asyncpg.Pool, bad_id: str
) -> None:
    error = assert_error(
        await client.post("/api/v1/items/batch", json={"items": [item(bad_id)]}), 422
    )
    assert "control characters" in str(error) or "NUL" in str(error), error
    row = {"user_id": bad_id, "item_id": "x", "type": "view"}
    assert_error(await client.post("/api/v1/interactions", json=row), 422)
    assert await db.fetchval("SELECT count(*) FROM items") == 0
    assert await db.fetchval("SELECT count(*) FROM users") == 0


@pytest.mark.parametrize("path", ["/api/v1/items/a%18b", "/api/v1/users/a%C2%92b"])
async def test_a_write_to_a_path_id_with_control_characters_is_a_422(
    client: httpx.AsyncClient, db: asyncpg.Pool, path: str
) -> None:
    answer = await client.put(path, json={"title": "T"})
    assert "control characters" in str(assert_error(answer, 422, "invalid_request"))
    assert await db.fetchval("SELECT count(*) FROM items") == 0


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/items/a%00b",
        "/api/v1/users/a%00b",
        "/api/v1/recommendations/a%00b",
        "/api/v1/items?category=a%00b",
        "/api/v1/trending?category=a%00b",
        "/api/v1/trending?variant=lukewarm",
        f"/api/v1/index/versions/{2**63}",
        f"/api/v1/index/versions/{10**30}",
    ],
)
async def test_bad_path_and_query_values_are_a_422(client: httpx.AsyncClient, path: str) -> None:
    assert_error(await client.get(path), 422, "invalid_request")


async def test_a_version_id_out_of_range_cannot_be_activated(client: httpx.AsyncClient) -> None:
    assert_error(await client.post(f"/api/v1/index/versions/{2**63}/activate"), 422)


async def test_nul_in_an_interaction_is_refused(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await client.put("/api/v1/items/x", json={"title": "T"})
    for row in (
        {"user_id": "u", "item_id": "x", "type": "vi\x00ew"},
        {"user_id": "u", "item_id": "x", "type": "view", "event_id": "e\x00"},
    ):
        assert_error(await client.post("/api/v1/interactions", json=row), 422)
        batch = {"interactions": [row]}
        assert_error(await client.post("/api/v1/interactions/batch", json=batch), 422)
    assert await db.fetchval("SELECT count(*) FROM interactions") == 0


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("TRACE", "/api/v1/items/x", "GET, PUT, DELETE"),
        ("PATCH", "/api/v1/experiments", "GET, POST"),
        ("DELETE", "/api/v1/index/versions", "GET"),
        # `batch` is an item id as well as the batch route: both answer at this path.
        ("OPTIONS", "/api/v1/items/batch", "GET, POST, PUT, DELETE"),
        ("OPTIONS", "/api/v1/interactions", "POST"),
        ("HEAD", "/api/v1/trending", "GET"),
        ("POST", "/health", "GET"),
        ("PUT", "/openapi.json", "GET, HEAD"),
    ],
)
async def test_a_method_the_path_does_not_have_is_a_405_naming_those_it_has(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    answer = await client.request(method, path)
    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == allowed
    if method != "HEAD":
        assert_error(answer, 405, "method_not_allowed")
    else:
        assert answer.content == b""


async def test_head_answers_where_the_route_serves_it(client: httpx.AsyncClient) -> None:
    """Starlette's own routes (the OpenAPI document, the docs) answer HEAD as GET, bodiless;
    the API's routes declare GET alone, and say so."""
    answer = await client.head("/openapi.json")
    assert answer.status_code == 200 and answer.content == b""
    assert (await client.head("/health")).headers["allow"] == "GET"


async def test_an_unknown_path_is_a_404_without_allow(client: httpx.AsyncClient) -> None:
    answer = await client.request("TRACE", "/api/v1/nowhere")
    assert_error(answer, 404, "not_found")
    assert "allow" not in answer.headers


async def test_a_caller_without_a_token_hears_of_the_token_before_the_method(
    anonymous: httpx.AsyncClient,
) -> None:
    answer = await anonymous.request("TRACE", "/api/v1/items/x")
    assert_error(answer, 401, "unauthorized")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/index/builds", {"activate": 0}),
        ("POST", "/api/v1/index/builds", {"force": "true"}),
        ("PUT", "/api/v1/items/x", {"title": "T", "published_at": True}),
        ("PUT", "/api/v1/items/x", {"title": "T", "published_at": "soon"}),
        ("POST", "/api/v1/search", {"text": "t", "limit": "5"}),
        ("POST", "/api/v1/search", {"text": "t", "limit": True}),
        (
            "POST",
            "/api/v1/interactions",
            {"user_id": "u", "item_id": "x", "type": "rating", "value": True},
        ),
    ],
)
async def test_a_value_of_another_json_type_is_refused(
    client: httpx.AsyncClient, db: asyncpg.Pool, method: str, path: str, body: dict[str, Any]
) -> None:
    """A field takes the JSON type the schema names: `0` is not `false`, "5" is not 5."""
    assert_error(await client.request(method, path, json=body), 422, "invalid_request")
    assert await db.fetchval("SELECT count(*) FROM items") == 0
    assert await db.fetchval("SELECT count(*) FROM builds") == 0


async def test_times_and_values_come_as_datasets_give_them(client: httpx.AsyncClient) -> None:
    """A time is ISO 8601 or seconds since 1970 (a number, or digits as text), and an
    interaction's value a number or one as text: what a loader of a CSV file sends."""
    epoch = {"title": "T", "published_at": 1_700_000_000}
    assert (
        (await client.put("/api/v1/items/x", json=epoch))
        .json()["published_at"]
        .startswith("2023-11-14T22:13:20")
    )
    digits = {"title": "T", "published_at": "1700000000"}
    assert (await client.put("/api/v1/items/y", json=digits)).status_code == 200
    rows = [
        {"user_id": "u", "item_id": "x", "type": "rating", "value": "4", "timestamp": "1700000000"},
        {"user_id": "u", "item_id": "y", "type": "rating", "value": 5, "timestamp": 1_700_000_001},
    ]
    answer = await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 2


async def test_a_number_without_a_fraction_is_an_integer(client: httpx.AsyncClient) -> None:
    """As JSON Schema has it: `5.0` is the integer 5."""
    answer = await client.post("/api/v1/search", json={"text": "t", "limit": 5.0})
    assert answer.status_code == 200, answer.text
