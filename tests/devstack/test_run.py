"""`make run`'s entrypoint, as a user runs it: real processes, real servers, Ctrl-C at the end."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from devstack import demo
from devstack.servers import Stack, ensure_database, port_open

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def run_env(stack: Stack) -> Iterator[dict[str, str]]:
    """The test servers, a database of its own, and a port nobody uses."""
    database = stack.env["DATABASE_URL"].rsplit("/", 1)[0] + "/recs_run_test"

    async def reset() -> None:
        await ensure_database(database)
        conn = await asyncpg.connect(database)
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        await conn.close()

    asyncio.run(reset())
    env = (
        os.environ
        | stack.env
        | {
            "DATABASE_URL": database,
            "PORT": str(free_port()),
            "ADMIN_API_KEY": "run-test-admin-key-000000",
        }
    )
    yield env


def start(env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    """Start `python -m devstack run`; return it once it printed its banner, with the lines."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 180
    for line in process.stdout:
        lines.append(line)
        if "Ctrl-C stops everything" in line or time.monotonic() > deadline:
            break
    assert "Ctrl-C stops everything" in "".join(lines), "".join(lines[-40:])
    return process, lines


def interrupt(process: subprocess.Popen[str], port: int) -> str:
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    assert not port_open("127.0.0.1", port)
    return rest


def test_run_serves_demo_data_and_stops_everything_on_ctrl_c(run_env: dict[str, str]) -> None:
    process, lines = start(run_env)
    port = int(run_env["PORT"])
    try:
        banner = "".join(lines)
        assert f"http://127.0.0.1:{port}" in banner
        assert run_env["ADMIN_API_KEY"] in banner
        headers = {"Authorization": f"Bearer {run_env['ADMIN_API_KEY']}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            first = client.get("/api/v1/items", params={"limit": 5}).json()
            assert len(first["items"]) == 5
            expected = demo.catalog()[0]
            stored = client.get(f"/api/v1/items/{expected['item_id']}").json()
            assert stored["title"] == expected["title"]
            user = client.get("/api/v1/users/user-0000").json()
            assert user["interaction_count"] > 0
            assert client.get("/health/ready").status_code == 200
            assert client.get("/api/v1/items").status_code == 200
            assert (
                client.get("/api/v1/items", headers={"Authorization": "Bearer no"}).status_code
                == 401
            )
    finally:
        if process.poll() is None:
            rest = interrupt(process, port)
            assert "stopped." in rest
    # No worker was left behind.
    leftover = subprocess.run(
        ["pgrep", "-f", f"uvicorn.*--port {port}"], capture_output=True, text=True
    )
    assert leftover.stdout == ""


def test_demo_data_can_be_skipped(run_env: dict[str, str]) -> None:
    process, lines = start(run_env | {"DEMO_DATA": "0"})
    port = int(run_env["PORT"])
    try:
        assert "demo data skipped" in "".join(lines)
        headers = {"Authorization": f"Bearer {run_env['ADMIN_API_KEY']}"}
        items = httpx.get(f"http://127.0.0.1:{port}/api/v1/items", headers=headers).json()
        assert items == {"items": [], "next_cursor": None}
    finally:
        interrupt(process, port)


def test_a_bad_setting_stops_the_start_with_its_name(run_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devstack", "run"],
        cwd=ROOT,
        env=run_env | {"PORT": "not-a-port"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "PORT" in result.stderr
