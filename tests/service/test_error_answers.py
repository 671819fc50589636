"""Each operation in the OpenAPI document declares the error answers its route gives, with the
contract's error body, and an answer provoked from the running app is one its operation
declares."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from common.errors import DependencyError
from tests.helpers import assert_error, item

ERROR_BODY = {"$ref": "#/components/schemas/ErrorAnswer"}


def operations(app: FastAPI) -> dict[tuple[str, str], dict[str, Any]]:
    spec = app.openapi()
    return {
        (method.upper(), path): operation
        for path, item_ops in spec["paths"].items()
        for method, operation in item_ops.items()
    }


def statuses(app: FastAPI, method: str, path: str) -> set[int]:
    responses = operations(app)[(method, path)]["responses"]
    return {int(status) for status in responses if status[0] in "45"}


def test_every_api_error_carries_the_contract_error_body(app: FastAPI) -> None:
    for (_, path), operation in operations(app).items():
        for status, response in operation["responses"].items():
            if status[0] in "45" and path.startswith("/api/v1/"):
                assert response["content"]["application/json"]["schema"] == ERROR_BODY
    schemas = app.openapi()["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["ErrorAnswer"]["properties"]["error"] == {"$ref": "#/components/schemas/Error"}


def test_the_answers_follow_from_each_route(app: FastAPI) -> None:
    # Read role, path parameter, query: no 403, no body answers.
    assert statuses(app, "GET", "/api/v1/users/{user_id}/similar") == {401, 404, 422, 429, 503}
    # A filter outside the grammar is a 400, in the query or in the body.
    assert 400 in statuses(app, "GET", "/api/v1/items/{item_id}/similar")
    assert 400 in statuses(app, "POST", "/api/v1/search")
    # Admin role, no parameters, no body.
    assert statuses(app, "GET", "/api/v1/index/versions") == {401, 403, 429, 503}
    # PUT creates what it names: never a 404.
    assert statuses(app, "PUT", "/api/v1/items/{item_id}") == {400, 401, 403, 413, 422, 429, 503}
    # An interaction naming an unknown item, which its shape does not show.
    assert 404 in statuses(app, "POST", "/api/v1/interactions")
    # What the route itself declares stays, with the error body.
    assert 409 in statuses(app, "POST", "/api/v1/experiments")
    # Outside the API: no token, no rate limit; readiness keeps its own 503.
    assert statuses(app, "GET", "/health") == set()
    assert statuses(app, "GET", "/health/ready") == {503}


def test_descriptions_name_the_codes_of_the_error_tree(app: FastAPI) -> None:
    responses = operations(app)[("POST", "/api/v1/items/batch")]["responses"]
    assert "`invalid_json`" in responses["400"]["description"]
    assert "`batch_too_large`" in responses["422"]["description"]
    for error in (DependencyError, *DependencyError.__subclasses__()):
        assert f"`{error.code}`" in responses["503"]["description"]
    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True


def test_path_parameters_are_never_empty(app: FastAPI) -> None:
    for operation in operations(app).values():
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["schema"].get("type") == "string":
                assert parameter["schema"]["minLength"] >= 1, parameter


@pytest.mark.parametrize(
    ("method", "path", "template", "body", "status", "code"),
    [
        ("GET", "/api/v1/items/none", "/api/v1/items/{item_id}", None, 404, "not_found"),
        ("DELETE", "/api/v1/keys/none", "/api/v1/keys/{key_id}", None, 404, "not_found"),
        (
            "GET",
            "/api/v1/index/builds/none",
            "/api/v1/index/builds/{build_id}",
            None,
            404,
            "not_found",
        ),
        ("POST", "/api/v1/search", "/api/v1/search", b"\x00", 400, "invalid_json"),
        ("PUT", "/api/v1/users/u", "/api/v1/users/{user_id}", b"\xff\xfe{", 400, None),
        ("POST", "/api/v1/keys", "/api/v1/keys", b"[]", 422, "invalid_request"),
        ("GET", "/api/v1/items?cursor=nope", "/api/v1/items", None, 422, "invalid_request"),
        (
            "POST",
            "/api/v1/interactions",
            "/api/v1/interactions",
            b'{"user_id": "u", "item_id": "none", "type": "view"}',
            404,
            "unknown_item",
        ),
        (
            "POST",
            "/api/v1/interactions/batch",
            "/api/v1/interactions/batch",
            b'{"interactions": [{"user_id": "u", "item_id": "none", "type": "view"}]}',
            422,
            "unknown_item",
        ),
    ],
)
async def test_an_answer_provoked_is_one_the_operation_declares(
    app: FastAPI,
    client: httpx.AsyncClient,
    method: str,
    path: str,
    template: str,
    body: bytes | None,
    status: int,
    code: str | None,
) -> None:
    headers = {"Content-Type": "application/json"}
    answer = await client.request(method, path, content=body, headers=headers)
    assert_error(answer, status, code)
    assert status in statuses(app, method, template)


async def test_a_read_key_hears_403_where_one_is_declared(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    created = await client.post("/api/v1/keys", json={"name": "reader", "role": "read"})
    reader = {"Authorization": f"Bearer {created.json()['token']}"}
    answer = await client.put("/api/v1/items/x", json=item("x"), headers=reader)
    assert_error(answer, 403, "forbidden")
    assert 403 in statuses(app, "PUT", "/api/v1/items/{item_id}")
    assert 403 not in statuses(app, "GET", "/api/v1/trending")


async def test_a_body_over_the_limit_is_a_declared_413(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    limit = app.state.application.settings.api.body_limit_bytes
    body = {"text": "x" * (limit + 1)}
    assert_error(await client.post("/api/v1/search", json=body), 413, "payload_too_large")
    assert 413 in statuses(app, "POST", "/api/v1/search")
