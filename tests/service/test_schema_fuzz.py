"""Schemathesis over the served /openapi.json, as an outside client would: every operation
with generated and boundary inputs, the admin token, and every check schemathesis has: no
5xx, only documented statuses, headers and bodies, schema-valid requests accepted and
schema-violating ones refused, 405 with `Allow` for methods a path lacks. The few refusals a
schema cannot state are excused, each by name, in schema_fuzz_hooks.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.servers import Stack, api_server
from tests.conftest import ADMIN_KEY
from tests.helpers import free_port, fresh_database

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
# Generated cases per operation: enough to reach every field's edges (the coverage phase adds
# its boundary cases), small enough to keep the suite's time: about 2,700 cases in 20 s.
EXAMPLES = 40
SEED = 20261205
HOOKS = "tests.service.schema_fuzz_hooks"


@pytest.fixture
def server(stack: Stack, tmp_path: Path) -> Iterator[str]:
    """An API process on a database of its own, ready when this yields its URL."""
    database = fresh_database(stack, "recs_fuzz_test")
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": database,
        "DEPLOYMENT_NAME": "fuzz",
        "INDEX_DATA_DIR": str(tmp_path / "index"),
        "ACCESS_LOG": "false",
    }
    log = (tmp_path / "api.log").open("wb")
    process = subprocess.Popen(
        api_server("127.0.0.1", port),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, (tmp_path / "api.log").read_text()
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the API was not ready in 60 s"
        time.sleep(0.2)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def test_the_service_answers_as_its_openapi_document_says(server: str, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{server}/openapi.json",
            "--header",
            f"Authorization: Bearer {ADMIN_KEY}",
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--no-color",
            "--no-shrink",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ],
        cwd=tmp_path,
        env=os.environ | {"SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = result.stdout[-12000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    summary = json.loads(report.read_text())
    operations, cases = summary["operations"], summary["test_cases"]
    assert summary["complete"] and operations["tested"] == operations["total"] >= 20, summary
    assert operations["errored"] == 0 and summary["errors"] == [], tail
    assert cases["generated"] >= 2_000 and cases["with_failures"] == 0, summary
    print(f"schemathesis: {operations['tested']} operations, {cases['generated']} cases passed")
