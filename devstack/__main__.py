"""`python -m devstack run`: the whole service on this machine, with what it needs.

Uses the servers the environment names, starts local ones for the rest, runs a Celery worker,
beat, the events process and the API (devstack/supervise.py restarts any but the API that
exits), loads demo data into an empty catalog, and stops all it started on Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from common.errors import ConfigError
from common.settings import load_settings
from devstack import demo
from devstack.servers import Stack, api_server, bring_up, celery_worker, port_open
from devstack.supervise import Child, Supervisor

STATE_DIR = Path(".stack")
READY_SECONDS = 120
BUILD_SECONDS = 600


def admin_key(state_dir: Path) -> str:
    """ADMIN_API_KEY when set; else one generated once and kept under the state folder."""
    if key := os.environ.get("ADMIN_API_KEY"):
        return key
    path = state_dir / "admin_key"
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = "admin_" + secrets.token_urlsafe(24)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def children(env: dict[str, str], host: str, port: int) -> list[Child]:
    """The worker, beat and the API, each its own process. Beat's schedule and pid file are
    kept per port under the state folder: the pid file refuses a second beat for this port."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    state = STATE_DIR.resolve()
    celery = [sys.executable, "-m", "celery", "-A", "workers.app"]
    # The worker's embedding and index builds yield the CPU to the API (niceness 10): on a
    # small machine, serving stays quick while a build runs.
    worker = ["nice", "-n", "10", *celery_worker("--loglevel=INFO", "--hostname=recs@%h")]
    beat = [
        *celery,
        "beat",
        "--loglevel=INFO",
        f"--schedule={state / f'celerybeat-schedule-{port}'}",
        f"--pidfile={state / f'celerybeat-{port}.pid'}",
    ]
    api = api_server(host, port)
    # The event consumers and the outbox's relay (service/events).
    events = [sys.executable, "-m", "service.events"]
    return [
        Child("worker", worker, env),
        Child("beat", beat, env),
        Child("events", events, env),
        Child("API", api, env, essential=True),
    ]


def wait_ready(url: str, api: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + READY_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise RuntimeError(f"the API exited with {api.returncode} before it was ready")
        try:
            answer = httpx.get(f"{url}/health/ready", timeout=3)
            if answer.status_code == 200:
                body: dict[str, Any] = answer.json()
                return body
            last = answer.text
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise RuntimeError(f"the API was not ready within {READY_SECONDS}s: {last}")


def load_demo(url: str, key: str) -> str:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        present = client.get("/api/v1/items", params={"limit": 1}).raise_for_status().json()
        if present["items"]:
            return "catalog not empty: demo data not loaded"
        items = demo.catalog()
        client.post("/api/v1/items/batch", json={"items": items}).raise_for_status()
        rows = demo.interactions(items)
        for start in range(0, len(rows), 5000):
            batch = {"interactions": rows[start : start + 5000]}
            client.post("/api/v1/interactions/batch", json=batch).raise_for_status()
    return f"demo data loaded: {len(items)} items, {len(rows)} interactions"


def ensure_index(url: str, key: str) -> str:
    """Build the first index version when there is a catalog but no version yet."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        active = client.get("/api/v1/index/versions").raise_for_status().json()["active"]
        if active is not None:
            return f"serving index version {active}"
        if not client.get("/api/v1/items", params={"limit": 1}).json()["items"]:
            return "no index yet: add items, then POST /api/v1/index/builds"
        answer = client.post("/api/v1/index/builds", json={"reason": "first start"})
        build = answer.raise_for_status().json()
        deadline = time.monotonic() + BUILD_SECONDS
        shown = ""
        while time.monotonic() < deadline:
            answer = client.get(f"/api/v1/index/builds/{build['build_id']}")
            build = answer.raise_for_status().json()
            line = f"building the first index: {build['stage']} {build['progress']:.0%}"
            if line != shown:
                print(line, flush=True)
                shown = line
            if build["state"] == "succeeded":
                return f"serving index version {build['version']} (built now)"
            if build["state"] == "failed":
                raise RuntimeError(f"the first index build failed: {build['error']}")
            time.sleep(0.5)
    raise RuntimeError(f"the first index build took over {BUILD_SECONDS}s")


def run() -> int:
    key = admin_key(STATE_DIR)
    os.environ["ADMIN_API_KEY"] = key
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    host, port = settings.api.host, settings.api.port
    if port_open(host, port):
        print(f"error: {host}:{port} is taken; set PORT to another port", file=sys.stderr)
        return 2

    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    stack: Stack | None = None
    supervisor: Supervisor | None = None
    try:
        stack = bring_up(STATE_DIR)
        env = os.environ | stack.env | {"HF_HUB_OFFLINE": "1", "ADMIN_API_KEY": key}
        supervisor = Supervisor(children(env, host, port), say=lambda line: print(line, flush=True))
        supervisor.start()
        url = f"http://{host}:{port}"
        api = supervisor.children[-1].process
        assert api is not None
        wait_ready(url, api)
        loaded = "DEMO_DATA=0: demo data skipped"
        if os.environ.get("DEMO_DATA", "1") != "0":
            loaded = load_demo(url, key)
        index = ensure_index(url, key)
        started = ", ".join(stack.started) or "none (all configured or already running)"
        print(
            f"\nrecs is serving at {url}  (API docs: {url}/docs)\n"
            f"  admin key:       {key}\n"
            f"  console:         {url}/console  (sign in with the admin key)\n"
            f"  servers started: {started}\n"
            f"  {loaded}\n"
            f"  {index}\n"
            f"  try: curl -H 'Authorization: Bearer {key}' {url}/api/v1/recommendations/user-0001\n"
            "Ctrl-C stops everything started here.\n",
            flush=True,
        )
        while not stopping.wait(0.5):
            if (ended := supervisor.check()) is not None:
                print(f"error: {ended}", flush=True)
                return 1
        return 0
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if supervisor is not None:
            supervisor.stop()
        if stack is not None:
            stack.stop()
        print("stopped.", flush=True)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "run"
    if command == "run":
        return run()
    print("usage: python -m devstack run", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
