"""The `recs` command against an API process and a Celery worker of its own: import files
with rejected rows set aside, build and wait, ask, export, keys, and the exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from common.settings import Settings
from devstack.servers import api_server, stop_process
from tests.conftest import ADMIN_KEY, ROOT
from tests.helpers import free_port
from tests.workers.test_pipeline import worker

pytestmark = pytest.mark.slow


@pytest.fixture
def service(db: object, tmp_path: Path) -> Iterator[str]:
    """An API process on the test servers; its URL."""
    port = free_port()
    log = (tmp_path / "api.log").open("wb")
    process = subprocess.Popen(
        api_server("127.0.0.1", port),
        cwd=ROOT,
        env=os.environ | {"INDEX_DATA_DIR": str(tmp_path / "api-index")},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            assert process.poll() is None, (tmp_path / "api.log").read_text()
            return False

    try:
        until_sync(up, 60)
        yield url
    finally:
        stop_process(process)
        log.close()


def until_sync(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the API did not answer in time"
        time.sleep(0.2)


def recs(url: str, *args: str, key: str = ADMIN_KEY) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recs_client.cli", *args],
        cwd=ROOT,
        env=os.environ | {"RECS_URL": url, "RECS_API_KEY": key, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_a_first_session_with_the_command(
    service: str, app: FastAPI, settings: Settings, tmp_path: Path
) -> None:
    films = tmp_path / "films.csv"
    rows = ["item_id,title,category,tags,year"]
    rows += [f"film-{n},Film {n},{('horror', 'comedy')[n % 2]},a|b,{1970 + n}" for n in range(20)]
    rows.append("broken,,horror,,1999")  # no title: refused, set aside
    films.write_text("\n".join(rows) + "\n")
    loaded = recs(service, "import", "items", str(films))
    assert loaded.returncode == 1, loaded.stderr
    assert "21 rows read" in loaded.stdout and "20 stored" in loaded.stdout
    rejected = read_lines(tmp_path / "films.csv.rejected.jsonl")
    assert [(r["row"], r["data"]["item_id"]) for r in rejected] == [(21, "broken")]
    assert "title" in rejected[0]["error"]

    events = tmp_path / "events.jsonl"
    lines = [
        {"user_id": f"u{n}", "item_id": f"film-{(n + k) % 20}", "type": "like"}
        for n in range(30)
        for k in range(0, 6, 2)
    ]
    lines.append({"user_id": "u0", "item_id": "nosuch", "type": "like"})
    events.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines) + b"{not json\n")
    loaded = recs(service, "import", "interactions", str(events), "--batch", "25")
    assert loaded.returncode == 1, loaded.stderr
    assert "92 rows read" in loaded.stdout and "90 stored" in loaded.stdout
    reasons = [r["error"] for r in read_lines(tmp_path / "events.jsonl.rejected.jsonl")]
    assert len(reasons) == 2 and any("nosuch" in r for r in reasons)
    assert any(r.startswith("not JSON") for r in reasons)

    with worker(settings, tmp_path):
        built = recs(service, "build", "--wait", "--force")
        assert built.returncode == 0, built.stdout + built.stderr
        assert "is live" in built.stdout
        listed = recs(service, "--json", "versions")
        assert listed.returncode == 0 and orjson.loads(listed.stdout)["active"] is not None
        asked = recs(service, "--json", "recommend", "u1", "--limit", "3")
        assert asked.returncode == 0 and len(orjson.loads(asked.stdout)["items"]) == 3
        table = recs(service, "similar", "film-1", "--filter", 'category = "horror"')
        assert table.returncode == 0 and "film-" in table.stdout
        out = tmp_path / "lists.jsonl"
        exported = recs(service, "export", "recommendations", "-o", str(out), "--limit", "2")
        assert exported.returncode == 0, exported.stderr
        assert len(out.read_bytes().splitlines()) == 30

    created = recs(service, "--json", "keys", "create", "reader", "--role", "read")
    token = orjson.loads(created.stdout)["token"]
    assert recs(service, "keys", "list", key=token).returncode == 77
    assert recs(service, "keys", "list", key="wrong").returncode == 77
    assert recs(service, "import", "items", str(tmp_path / "absent.csv")).returncode == 66
    assert recs(f"http://127.0.0.1:{free_port()}", "versions").returncode == 69
    assert recs(service, "activate", "999").returncode == 1
    replayed = recs(service, "events", "replay-dead")
    assert replayed.returncode == 0 and "0 replayed" in replayed.stdout
