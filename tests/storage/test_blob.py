"""One suite for the blob store contract, run against the local folder and against real S3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from common.errors import NotFound, ObjectStoreUnavailable
from common.settings import Settings
from storage.blob import BlobStore
from storage.blob.local import LocalStore
from storage.blob.s3 import S3Store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        yield LocalStore(tmp_path / "blobs")
        return
    settings: Settings = request.getfixturevalue("settings")
    s3 = S3Store(settings.s3)
    s3.ensure_bucket()
    s3.delete_prefix("suite/")
    yield s3
    s3.delete_prefix("suite/")


def test_bytes_round_trip(store: BlobStore) -> None:
    store.put_bytes("suite/a/one.bin", b"\x00payload\xff")
    assert store.get_bytes("suite/a/one.bin") == b"\x00payload\xff"


def test_files_round_trip(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 100_000)
    store.put_file("suite/file.bin", source)
    target = tmp_path / "target.bin"
    store.get_file("suite/file.bin", target)
    assert target.read_bytes() == source.read_bytes()


def test_a_missing_key_is_not_found(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        store.get_bytes("suite/absent")
    with pytest.raises(NotFound):
        store.get_file("suite/absent", tmp_path / "x")


def test_list_and_delete_by_prefix(store: BlobStore) -> None:
    for key in ("suite/v1/a", "suite/v1/b/c", "suite/v2/a"):
        store.put_bytes(key, key.encode())
    assert store.list("suite/v1/") == ["suite/v1/a", "suite/v1/b/c"]
    assert store.delete_prefix("suite/v1/") == 2
    assert store.list("suite/") == ["suite/v2/a"]


def test_wrong_credentials_are_refused(settings: Settings) -> None:
    wrong = settings.s3.model_copy(update={"access_key": "nobody-here"})
    with pytest.raises(ObjectStoreUnavailable, match="refused"):
        S3Store(wrong).ping()


def test_an_unreachable_store_is_unavailable(settings: Settings) -> None:
    dead = settings.s3.model_copy(update={"endpoint": "127.0.0.1:1"})
    with pytest.raises(ObjectStoreUnavailable):
        S3Store(dead).ping()
