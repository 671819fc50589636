"""No Docker engine runs in CI, so the deployment files are checked by reading them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_runs_every_part_with_a_health_check() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "minio", "api", "worker", "beat"} <= set(services)
    for name in ("postgres", "redis", "minio", "api", "worker", "beat"):
        assert "test" in services[name]["healthcheck"], name


def test_the_app_waits_for_healthy_servers_and_the_bucket() -> None:
    services = compose()["services"]
    for name in ("api", "worker", "beat"):
        needs = services[name]["depends_on"]
        assert needs["postgres"]["condition"] == "service_healthy"
        assert needs["redis"]["condition"] == "service_healthy"
        assert needs["minio-setup"]["condition"] == "service_completed_successfully"
    setup = " ".join(services["minio-setup"]["command"])
    bucket = services["api"]["environment"]["S3_BUCKET"]
    assert f"mc mb --ignore-existing local/{bucket}" in setup


def test_the_app_points_at_the_compose_servers() -> None:
    env = compose()["services"]["api"]["environment"]
    assert "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:6379")
    assert env["S3_ENDPOINT"] == "minio:9000"
    minio = compose()["services"]["minio"]["environment"]
    assert env["S3_ACCESS_KEY"] == minio["MINIO_ROOT_USER"]
    assert env["S3_SECRET_KEY"] == minio["MINIO_ROOT_PASSWORD"]


def test_worker_and_beat_run_the_celery_app() -> None:
    services = compose()["services"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "workers.app", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "workers.app", "beat"]


def test_the_events_process_runs_beside_them() -> None:
    services = compose()["services"]
    assert services["events"]["command"] == ["python", "-m", "service.events"]


def test_dockerfile_is_multi_stage_non_root_and_installs_dependencies_before_source() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert text.index("pip install -r requirements.txt") < text.index("COPY service")
    assert "torch==2.13.0" in text


def test_dockerfile_copies_every_package() -> None:
    text = (ROOT / "Dockerfile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for package in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        name = package.rstrip("*")
        assert f"COPY {name} ./{name}" in text, name
