from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from starlette.types import Message

from common.errors import DatabaseUnavailable, Unauthorized
from common.settings import Settings
from service.api.deps import Guarded, required_role
from service.api.routes import experiments, index, items, keys, recommendations, users
from service.auth import LOOKUP_SECONDS, Authenticator
from tests.helpers import assert_error

READ_ROUTES = [("GET", "/api/v1/items"), ("GET", "/api/v1/items/x"), ("GET", "/api/v1/users/u")]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_key(client: httpx.AsyncClient, role: str) -> str:
    answer = await client.post("/api/v1/keys", json={"name": f"{role} key", "role": role})
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


@pytest.mark.parametrize(
    ("method", "path"),
    [
        *READ_ROUTES,
        ("PUT", "/api/v1/items/x"),
        ("POST", "/api/v1/interactions"),
        ("GET", "/api/v1/keys"),
    ],
)
async def test_no_token_is_a_401_that_reveals_nothing(
    anonymous: httpx.AsyncClient, method: str, path: str
) -> None:
    answer = await anonymous.request(method, path, json={})
    assert_error(answer, 401, "unauthorized")
    assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header", ["Bearer wrong-token", "Basic dXNlcjpwYXNz", "Bearer", "test-admin-key-0123456789"]
)
async def test_a_wrong_token_is_a_401(anonymous: httpx.AsyncClient, header: str) -> None:
    answer = await anonymous.get("/api/v1/items/x", headers={"Authorization": header})
    assert_error(answer, 401, "unauthorized")


async def test_the_admin_key_from_the_environment_works(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/keys")).status_code == 200


async def test_roles_nest_and_are_enforced(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    read, write = await make_key(client, "read"), await make_key(client, "write")
    admin = await make_key(client, "admin")

    put = {"title": "T"}
    assert_error(
        await anonymous.put("/api/v1/items/x", json=put, headers=bearer(read)), 403, "forbidden"
    )
    assert (
        await anonymous.put("/api/v1/items/x", json=put, headers=bearer(write))
    ).status_code == 200
    assert (await anonymous.get("/api/v1/items/x", headers=bearer(admin))).status_code == 200
    assert_error(await anonymous.get("/api/v1/keys", headers=bearer(write)), 403, "forbidden")
    assert (await anonymous.get("/api/v1/keys", headers=bearer(admin))).status_code == 200


async def test_a_forbidden_answer_does_not_say_whether_the_thing_exists(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    read = await make_key(client, "read")
    await client.put("/api/v1/items/exists", json={"title": "T"})
    there = await anonymous.get("/api/v1/items/exists", headers=bearer(read))
    absent = await anonymous.get("/api/v1/items/absent", headers=bearer(read))
    assert there.status_code == absent.status_code == 403
    assert there.json() == absent.json()


async def test_auth_is_checked_before_the_body(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    read = await make_key(client, "read")
    bad = {"no": "title"}
    assert_error(await anonymous.put("/api/v1/items/x", json=bad), 401)
    assert_error(await anonymous.put("/api/v1/items/x", json=bad, headers=bearer(read)), 403)


def _guarded_routes() -> list[tuple[str, str, str]]:
    """(method, path with its parameters filled in, role) of every /api/v1 route."""
    found = []
    for module in (recommendations, items, users, keys, index, experiments):
        for route in module.router.routes:
            assert isinstance(route, Guarded), route
            role = required_role(route.dependencies)
            assert role is not None, route.path
            path = re.sub(r"\{[^}]+\}", "x1", route.path)
            found += [(method, path, role) for method in sorted(route.methods)]
    return found


async def _answer_without_reading(
    app: FastAPI, method: str, path: str, token: str | None
) -> tuple[int, dict[str, Any], bool]:
    """Send a request whose body is bad JSON straight to the app, and say whether the app
    ever asked for a byte of it."""
    read = False
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        read = True
        return {"type": "http.request", "body": b"{not json", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"content-length", b"9")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.9", 1234),
        "server": ("recs.test", 80),
        "app": app,
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), read


async def test_every_route_refuses_a_caller_before_reading_a_byte_of_the_body(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """401 without a token and 403 for a role too weak, on every route, with the body
    unread: a read key posting bad JSON to a write route learns of its role, not its JSON."""
    read = await make_key(client, "read")
    write = await make_key(client, "write")
    routes = _guarded_routes()
    assert {role for _, _, role in routes} == {"read", "write", "admin"}
    for method, path, role in routes:
        status, body, was_read = await _answer_without_reading(app, method, path, None)
        assert (status, body["error"]["code"], was_read) == (401, "unauthorized", False), path
        for token, weak in ((read, role != "read"), (write, role == "admin")):
            if weak:
                status, body, was_read = await _answer_without_reading(app, method, path, token)
                assert (status, body["error"]["code"], was_read) == (403, "forbidden", False), (
                    method,
                    path,
                )
    # The reported case: a read key, bad JSON, a write route.
    status, body, _ = await _answer_without_reading(app, "POST", "/api/v1/interactions", read)
    assert status == 403


async def test_keys_are_stored_hashed_and_listed_without_tokens(client: httpx.AsyncClient) -> None:
    created = (await client.post("/api/v1/keys", json={"name": "ci", "role": "write"})).json()
    assert created["token"].startswith("rk_") and created["role"] == "write"
    pool = client._transport.app.state.application.pool  # type: ignore[attr-defined]
    stored = await pool.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", created["key_id"])
    assert created["token"].encode() not in bytes(stored["token_sha256"])
    assert len(stored["token_sha256"]) == 32
    listed = (await client.get("/api/v1/keys")).json()["keys"]
    assert [k["key_id"] for k in listed] == [created["key_id"]]
    assert "token" not in listed[0]


async def test_a_revoked_key_stops_working_at_once(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    created = (await client.post("/api/v1/keys", json={"name": "tmp", "role": "write"})).json()
    headers = bearer(created["token"])
    assert (await anonymous.get("/api/v1/items", headers=headers)).status_code == 200
    assert (await client.delete(f"/api/v1/keys/{created['key_id']}")).status_code == 204
    assert_error(await anonymous.get("/api/v1/items", headers=headers), 401)
    assert_error(await client.delete(f"/api/v1/keys/{created['key_id']}"), 404)


async def test_a_revoked_key_stops_working_in_other_processes_after_the_cache_time(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    created = (await client.post("/api/v1/keys", json={"name": "tmp", "role": "read"})).json()
    other = Authenticator(
        settings.api.model_copy(update={"key_cache_seconds": 0.0}), app.state.application.pool
    )
    header = f"Bearer {created['token']}"
    assert (await other.principal(header)).role == "read"
    await client.delete(f"/api/v1/keys/{created['key_id']}")
    with pytest.raises(Unauthorized):
        await other.principal(header)


@pytest.mark.parametrize("body", [{"name": "x", "role": "root"}, {"role": "read"}, {"name": ""}])
async def test_bad_key_requests_are_refused(
    client: httpx.AsyncClient, body: dict[str, str]
) -> None:
    assert_error(await client.post("/api/v1/keys", json=body), 422)


def _jwt(secret: str, **claims: object) -> str:
    return jwt.encode({"sub": "svc", "exp": int(time.time()) + 60, **claims}, secret, "HS256")


async def test_signed_jwts_carry_a_role(app: FastAPI, settings: Settings) -> None:
    secret = "s" * 40
    auth = Authenticator(
        settings.api.model_copy(update={"jwt_secret": SecretStr(secret)}),
        app.state.application.pool,
    )
    principal = await auth.principal(f"Bearer {_jwt(secret, role='write')}")
    assert (principal.subject, principal.role) == ("svc", "write")
    for token in (
        _jwt("another-secret-of-enough-length-000000", role="write"),
        _jwt(secret, role="superuser"),
        _jwt(secret, role="read", exp=int(time.time()) - 10),
        jwt.encode({"sub": "svc", "role": "admin"}, secret, "HS256"),
    ):
        with pytest.raises(Unauthorized):
            await auth.principal(f"Bearer {token}")


async def silent_server() -> tuple[asyncio.Server, int]:
    """A TCP server that takes connections and never says a word: a hung PostgreSQL."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()
        finally:
            writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_known_keys_keep_working_while_postgresql_is_down_or_hung(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    created = (await client.post("/api/v1/keys", json={"name": "app", "role": "read"})).json()
    header = f"Bearer {created['token']}"
    # Every lookup goes to the database: the cache time is 0.
    auth = Authenticator(
        settings.api.model_copy(update={"key_cache_seconds": 0.0}), app.state.application.pool
    )
    assert (await auth.principal(header)).role == "read"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    hung, port = await silent_server()
    for where in (closed, port):
        dead = await asyncpg.create_pool(
            f"postgresql://postgres@127.0.0.1:{where}/none", min_size=0, timeout=30
        )
        auth.pool = dead
        started = time.monotonic()
        assert (await auth.principal(header)).role == "read"
        with pytest.raises(DatabaseUnavailable):
            await auth.principal("Bearer never-seen-before-0000")
        assert time.monotonic() - started < 2 * LOOKUP_SECONDS + 1
        dead.terminate()
    hung.close()

    # PostgreSQL is back: a revocation reaches this process at its next lookup.
    auth.pool = app.state.application.pool
    await client.delete(f"/api/v1/keys/{created['key_id']}")
    with pytest.raises(Unauthorized):
        await auth.principal(header)


async def test_jwts_can_be_bound_to_an_issuer_and_audience_and_a_lifetime(
    app: FastAPI, settings: Settings
) -> None:
    secret = "s" * 40
    auth = Authenticator(
        settings.api.model_copy(
            update={
                "jwt_secret": SecretStr(secret),
                "jwt_issuer": "https://login.example",
                "jwt_audience": "recs",
                "jwt_max_lifetime_seconds": 3_600,
            }
        ),
        app.state.application.pool,
    )
    good = {"role": "read", "iss": "https://login.example", "aud": "recs"}
    assert (await auth.principal(f"Bearer {_jwt(secret, **good)}")).role == "read"
    for claims, why in (
        ({"role": "read", "aud": "recs"}, "iss"),
        ({**good, "iss": "https://elsewhere.example"}, "(?i)issuer"),
        ({**good, "aud": "another-service"}, "(?i)audience"),
        ({**good, "exp": int(time.time()) + 7_200}, "lives too long"),
    ):
        with pytest.raises(Unauthorized, match=why):
            await auth.principal(f"Bearer {_jwt(secret, **claims)}")
