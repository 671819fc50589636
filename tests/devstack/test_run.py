"""`make run`'s entrypoint, as a user runs it: real processes, real servers, Ctrl-C at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import demo
from devstack.servers import Stack, port_open
from recs_client import Client, Unauthorized
from tests.helpers import free_port, fresh_database

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_env(stack: Stack) -> Iterator[dict[str, str]]:
    """The test servers, a database of its own, and a port nobody uses."""
    database = fresh_database(stack, "recs_run_test")
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
        url = f"http://127.0.0.1:{port}"
        with Client(url, run_env["ADMIN_API_KEY"]) as recs:
            assert len(recs.items_page(limit=5)["items"]) == 5
            expected = demo.catalog()[0]
            assert recs.get_item(expected["item_id"])["title"] == expected["title"]
            assert recs.get_user("user-0000")["interaction_count"] > 0
            assert recs.ready()["status"] == "ready"
        with Client(url, "no") as stranger, pytest.raises(Unauthorized):
            stranger.items_page()
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
        with Client(f"http://127.0.0.1:{port}", run_env["ADMIN_API_KEY"]) as recs:
            assert recs.items_page() == {"items": [], "next_cursor": None}
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


def _children(parent: int) -> dict[str, list[int]]:
    """The run's worker, beat and API processes by role, from their command lines."""
    found: dict[str, list[int]] = {"worker": [], "beat": [], "api": []}
    listed = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True)
    for pid in map(int, listed.stdout.split()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if b"uvicorn" in command:
            found["api"].append(pid)
        elif b"beat" in command:
            found["beat"].append(pid)
        elif b"worker" in command:
            found["worker"].append(pid)
    return found


def test_a_killed_worker_is_restarted_while_the_api_serves_and_beat_runs_once(
    run_env: dict[str, str],
) -> None:
    # Every server is configured here: the state folder must still be made for beat.
    process, _ = start(run_env | {"DEMO_DATA": "0"})
    port = int(run_env["PORT"])
    try:
        before = _children(process.pid)
        assert len(before["worker"]) == 1 and len(before["beat"]) == 1, before
        os.kill(before["worker"][0], signal.SIGKILL)
        with Client(f"http://127.0.0.1:{port}", run_env["ADMIN_API_KEY"]) as recs:
            deadline = time.monotonic() + 60
            while True:
                assert recs.health()["status"] == "ok"
                now = _children(process.pid)
                if now["worker"] and now["worker"] != before["worker"]:
                    break
                assert time.monotonic() < deadline, "the worker was not started again"
                time.sleep(0.2)
            assert now["beat"] == before["beat"] and now["api"] == before["api"]
            # The new worker takes tasks: a build queued now succeeds.
            recs.put_items(demo.catalog(items_per_genre=2))
            build = recs.wait_for_build(recs.request_build()["build_id"], timeout=180)
            assert build["state"] == "succeeded", build
    finally:
        rest = interrupt(process, port)
    assert "the worker exited with -9; starting it again" in rest
    assert all(not Path(f"/proc/{pid}").exists() for pids in now.values() for pid in pids)
