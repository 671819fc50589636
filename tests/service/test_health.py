from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
from fastapi import FastAPI

from common.settings import Settings
from indexing.trending import VARIANTS
from storage.blob.s3 import S3Store, StoreProbe
from tests.helpers import build_now, genre_catalog, running


async def test_health_answers_without_credentials(anonymous: httpx.AsyncClient) -> None:
    answer = await anonymous.get("/health")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


async def test_ready_checks_every_backing_server(anonymous: httpx.AsyncClient) -> None:
    answer = await anonymous.get("/health/ready")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["checks"] == {"database": "ok", "cache": "ok", "object_store": "ok"}
    assert "index_version" in body


async def test_ready_is_503_and_names_the_store_that_is_down(
    anonymous: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    resources = app.state.application
    healthy = resources.store_probe
    dead = S3Store(settings.s3.model_copy(update={"endpoint": "127.0.0.1:1"}))
    resources.store_probe = StoreProbe(dead)
    try:
        answer = await anonymous.get("/health/ready")
    finally:
        resources.store_probe.close()
        resources.store_probe = healthy
    assert answer.status_code == 503
    checks = answer.json()["checks"]
    assert checks["database"] == "ok" and checks["cache"] == "ok"
    assert checks["object_store"] != "ok"


async def test_a_hung_store_holds_one_thread_however_often_readiness_is_asked(
    anonymous: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # takes the request, never answers

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    resources = app.state.application
    healthy = resources.store_probe
    hung = S3Store(settings.s3.model_copy(update={"endpoint": f"127.0.0.1:{port}"}))
    resources.store_probe = StoreProbe(hung, name="hung-probe")
    try:
        for _ in range(3):
            answers = await asyncio.gather(*(anonymous.get("/health/ready") for _ in range(5)))
            for answer in answers:
                assert answer.status_code == 503
                assert answer.json()["checks"]["object_store"] == "no answer within 2s"
            # The executor everything else shares is free: this runs at once.
            started = time.monotonic()
            assert await asyncio.wait_for(asyncio.to_thread(lambda: 1), 1.0) == 1
            assert time.monotonic() - started < 0.5
        threads = [t.name for t in threading.enumerate() if t.name.startswith("hung-probe")]
        assert len(threads) == 1
    finally:
        resources.store_probe.close()
        resources.store_probe = healthy
        silent.close()
        for writer in held:
            writer.close()


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/api/v1/items/some-id")
    await client.get("/api/v1/items/another-id")
    text = (await client.get("/metrics")).text
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("http_requests_total{")
        and 'route="/api/v1/items/{item_id}"' in ln
        and 'status="404"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 2
    assert "http_request_duration_seconds_bucket" in text
    assert "some-id" not in text


async def test_openapi_and_docs_are_served(anonymous: httpx.AsyncClient) -> None:
    spec = (await anonymous.get("/openapi.json")).json()
    for path in (
        "/api/v1/items/{item_id}",
        "/api/v1/items/batch",
        "/api/v1/items",
        "/api/v1/users/{user_id}",
        "/api/v1/interactions",
        "/api/v1/interactions/batch",
    ):
        assert path in spec["paths"]
    assert (await anonymous.get("/docs")).status_code == 200
    batch = spec["paths"]["/api/v1/interactions/batch"]["post"]["requestBody"]
    ref = batch["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "interactions" in spec["components"]["schemas"][ref]["properties"]


async def test_openapi_declares_the_bearer_scheme_the_errors_and_the_enums(
    anonymous: httpx.AsyncClient, settings: Settings
) -> None:
    spec = (await anonymous.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]
    get_item = spec["paths"]["/api/v1/items/{item_id}"]["get"]
    assert get_item["security"] and {"401", "403", "422", "503"} <= set(get_item["responses"])
    error = get_item["responses"]["401"]["content"]["application/json"]["schema"]["$ref"]
    assert error.endswith("/ErrorAnswer")
    assert "security" not in spec["paths"]["/health"]["get"]
    trending = spec["paths"]["/api/v1/trending"]["get"]["parameters"]
    variant = next(p for p in trending if p["name"] == "variant")["schema"]
    assert tuple(variant["enum"]) == VARIANTS
    # A read has no body: no 413; its path names an item: 404.
    assert {"401", "403", "404", "422", "429", "503"} <= set(get_item["responses"])
    assert "413" not in get_item["responses"]
    # The interaction types are the configured ones.
    kinds = spec["components"]["schemas"]["InteractionIn"]["properties"]["type"]["enum"]
    assert kinds == sorted(settings.interactions.types) and "view" in kinds


async def test_unknown_routes_use_the_error_body(anonymous: httpx.AsyncClient) -> None:
    answer = await anonymous.get("/nowhere")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


async def test_an_oversized_body_is_a_413(client: httpx.AsyncClient, app: FastAPI) -> None:
    limit = app.state.application.settings.api.max_body_bytes
    answer = await client.post(
        "/api/v1/items/batch",
        content=b" " * (limit + 1),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"


async def test_without_s3_the_api_starts_from_its_verified_local_copy(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    await client.post("/api/v1/items/batch", json={"items": genre_catalog(4)})
    rows = [{"user_id": "fan", "item_id": f"horror-{k}", "type": "like"} for k in range(3)]
    await client.post("/api/v1/interactions/batch", json={"interactions": rows})
    version = await build_now(app)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    no_s3 = settings.model_copy(
        update={"s3": settings.s3.model_copy(update={"endpoint": f"127.0.0.1:{closed}"})}
    )
    started = time.monotonic()
    async with running(no_s3) as (_, peer):
        assert time.monotonic() - started < 15
        ready = await peer.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "degraded"
        assert ready.json()["index_version"] == version
        assert ready.json()["checks"]["object_store"] != "ok"
        answer = (await peer.get("/api/v1/recommendations/fan")).json()
        assert answer["index_version"] == version and answer["items"]
