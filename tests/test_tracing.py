"""Traces across processes: an API process and a Celery worker of their own export by OTLP to
a collector these tests run; a build requested with a trace context shows the request, the
task and the build's stages in that one trace, and the event announcing it carries it. With
no endpoint set, nothing is traced."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis as redis_client
from fastapi import FastAPI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from common import tracing
from common.settings import Settings
from devstack import demo
from devstack.servers import api_server, stop_process
from recs_client import Client
from service.events.relay import Relay
from tests.conftest import ADMIN_KEY, ROOT
from tests.helpers import free_port
from tests.workers.test_pipeline import worker

pytestmark = pytest.mark.slow
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class Collector:
    """Spans posted to /v1/traces (OTLP over HTTP, protobuf): (service, name, trace id)."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, str]] = []
        spans = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    service = next(
                        (
                            a.value.string_value
                            for a in resource.resource.attributes
                            if a.key == "service.name"
                        ),
                        "",
                    )
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            spans.append((service, span.name, span.trace_id.hex()))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, trace_id: str) -> set[tuple[str, str]]:
        return {(service, name) for service, name, found in self.spans if found == trace_id}


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.server.shutdown()
    running.server.server_close()


def test_nothing_is_traced_without_an_endpoint() -> None:
    assert not tracing.enabled() and not tracing.on()
    assert tracing.traceparent() is None and tracing.task_headers() == {}


def traced_build(settings: Settings, collector: Collector, tmp_path: Path) -> None:
    """An API process and a worker exporting to `collector`; a build asked for with a trace
    context of ours, followed until its stages' spans arrive."""
    traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    port = free_port()
    log = (tmp_path / "api.log").open("wb")
    api = subprocess.Popen(
        api_server("127.0.0.1", port),
        cwd=ROOT,
        env=os.environ | traced | {"INDEX_DATA_DIR": str(tmp_path / "api-index")},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert api.poll() is None, (tmp_path / "api.log").read_text()
            time.sleep(0.2)
        with Client(url, ADMIN_KEY) as recs, worker(settings, tmp_path, **traced):
            items = demo.catalog(items_per_genre=3)
            recs.put_items(items)
            recs.record_interactions(demo.interactions(items, users=20))
            parent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
            asked = recs.http.post(
                "/api/v1/index/builds", json={"force": True}, headers={"traceparent": parent}
            )
            build = recs.wait_for_build(asked.json()["build_id"], timeout=180)
            assert build["state"] == "succeeded", build
            deadline = time.monotonic() + 30
            # The task's span ends after its last stage's: both are exported by then.
            while ("recs-worker", "task recs.build_index") not in collector.of(TRACE_ID):
                assert time.monotonic() < deadline, collector.spans
                time.sleep(0.2)
    finally:
        stop_process(api)
        log.close()


INCOMING = "0af7651916cd43dd8448eb211c80319c"


def traced_consumption(collector: Collector, tmp_path: Path) -> None:
    """An events process exporting to `collector`, given a message that carries a trace."""
    traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    log = (tmp_path / "events.log").open("wb")
    events = subprocess.Popen(
        [sys.executable, "-m", "service.events"],
        cwd=ROOT,
        env=os.environ | traced,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        message = {
            "user_id": "traced",
            "item_id": demo.catalog(items_per_genre=3)[0]["item_id"],
            "type": "view",
            "traceparent": f"00-{INCOMING}-b7ad6b7169203331-01",
        }
        redis = redis_client.Redis.from_url(os.environ["REDIS_URL"])
        redis.xadd("recs.interactions", {"data": orjson.dumps(message)})
        redis.close()
        deadline = time.monotonic() + 60
        while ("recs-events", "events.consume") not in collector.of(INCOMING):
            assert events.poll() is None, (tmp_path / "events.log").read_text()
            assert time.monotonic() < deadline, collector.spans
            time.sleep(0.2)
    finally:
        stop_process(events)
        log.close()


async def test_a_request_its_build_task_and_the_stages_are_one_trace(
    db: object, app: FastAPI, settings: Settings, collector: Collector, tmp_path: Path
) -> None:
    await asyncio.to_thread(traced_build, settings, collector, tmp_path)
    found = collector.of(TRACE_ID)
    assert ("recs-api", "POST /api/v1/index/builds") in found
    assert ("recs-worker", "task recs.build_index") in found
    stages = {name for service, name in found if service == "recs-worker"}
    assert {"stage embedding", "stage tuning"} <= stages, stages
    # The event announcing the build carries the request's trace.
    res = app.state.application
    await res.events.ensure([res.settings.events.topic("events")])
    await Relay(res, res.events).publish_pending()
    published = [orjson.loads(m.value) for m in await res.events.read("recs.events", 100)]
    queued = next(e for e in published if e["type"] == "build.queued")
    assert TRACE_ID in queued["traceparent"]
    # An incoming message's trace is taken up by the consumer that stores it.
    await asyncio.to_thread(traced_consumption, collector, tmp_path)
