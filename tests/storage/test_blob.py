"""One suite for the blob store contract, run against the local folder and against real S3,
each opened by its URL; and the choice of backend by that URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from common.errors import ConfigError, NotFound, ObjectStoreUnavailable
from common.settings import BlobSettings, Settings, load_settings
from storage.blob import BlobStore, open_store
from storage.blob.local import LocalStore
from storage.blob.s3 import S3Store


def stored_at(settings: Settings, url: str | None) -> Settings:
    """`settings` with BLOB_URL set to `url` (None: unset)."""
    return settings.model_copy(update={"blob": BlobSettings(url=url)})


@pytest.fixture(params=["file", "s3"])
def store(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> Iterator[BlobStore]:
    if request.param == "file":
        local = open_store(stored_at(settings, f"file://{tmp_path / 'blobs'}"))
        local.ensure()
        yield local
        return
    s3 = open_store(settings)
    s3.ensure()
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


def test_an_object_is_read_in_chunks(store: BlobStore) -> None:
    data = bytes(range(256)) * 1_000
    store.put_bytes("suite/chunked.bin", data)
    chunks = list(store.read_chunks("suite/chunked.bin", 65_536))
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= 65_536 and len(chunks) >= 4


def test_a_missing_key_is_not_found(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        list(store.read_chunks("suite/absent", 1_024))
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


def test_a_folder_that_cannot_be_made_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    store = LocalStore(tmp_path / "file" / "blobs")
    with pytest.raises(ObjectStoreUnavailable):
        store.ensure()
    with pytest.raises(ObjectStoreUnavailable):
        store.ping()
    with pytest.raises(ObjectStoreUnavailable):
        store.put_bytes("suite/a", b"a")


def test_unset_the_store_is_the_configured_s3_bucket(settings: Settings) -> None:
    store = open_store(stored_at(settings, None))
    assert isinstance(store, S3Store) and store.bucket == settings.s3.bucket
    store.ping()


def test_an_s3_url_names_the_bucket_on_the_configured_server(settings: Settings) -> None:
    other = "recs-test-other-bucket"
    store = open_store(stored_at(settings, f"s3://{other}"))
    assert isinstance(store, S3Store) and store.bucket == other
    # The configured endpoint and credentials: it answers, and makes its bucket.
    store.ensure()
    store.put_bytes("suite/x", b"x")
    assert store.get_bytes("suite/x") == b"x"
    assert store.delete_prefix("suite/") == 1


def test_a_file_url_is_a_folder(settings: Settings, tmp_path: Path) -> None:
    store = open_store(stored_at(settings, f"file://{tmp_path}/with%20space"))
    assert isinstance(store, LocalStore) and store.root == tmp_path / "with space"
    store.ensure()
    store.put_bytes("v/a", b"a")
    assert (tmp_path / "with space" / "v" / "a").read_bytes() == b"a"


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ftp://host/path", "unknown scheme 'ftp'"),
        ("/just/a/path", "unknown scheme ''"),
        ("file://relative/path", "three slashes"),
        ("s3://Not_A_Bucket", "valid bucket name"),
        ("s3://bucket/with/a/path", "valid bucket name"),
    ],
)
def test_a_url_of_no_known_store_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, url: str, said: str
) -> None:
    monkeypatch.setenv("BLOB_URL", url)
    with pytest.raises(ConfigError, match=rf"BLOB_URL: .*{said}"):
        load_settings()
    # Settings made in code skip validation: the factory refuses the URL itself.
    unchecked = settings.model_copy(update={"blob": BlobSettings.model_construct(url=url)})
    with pytest.raises(ConfigError, match=rf"BLOB_URL: .*{said}"):
        open_store(unchecked)
