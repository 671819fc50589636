"""Versions in the object store: uploaded under their own prefix, manifest last."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from common.errors import NotFound, ObjectStoreUnavailable
from indexing.artifacts import (
    ARTIFACTS,
    MANIFEST,
    CorruptArtifact,
    IndexVersion,
    KeptLists,
    Part,
    sha256_of,
    verify,
)
from storage.blob import BlobStore


def prefix(version: int) -> str:
    # Zero-padded so that listing order is version order.
    return f"versions/{version:010d}/"


def upload(store: BlobStore, folder: Path, manifest: dict[str, Any]) -> None:
    """Artifacts first, manifest last: a prefix with a manifest is a complete version."""
    for name in ARTIFACTS:
        store.put_file(prefix(manifest["version"]) + name, folder / name)
    store.put_bytes(prefix(manifest["version"]) + MANIFEST, json.dumps(manifest).encode())


def fetch_manifest(store: BlobStore, version: int) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(store.get_bytes(prefix(version) + MANIFEST))
    return manifest


def download(
    store: BlobStore, version: int, data_dir: Path, *, offline: bool = False
) -> tuple[Path, dict[str, Any]]:
    """Bring a version into `data_dir/<version>/`, reusing files already there whose sha256
    matches; raise CorruptArtifact if a downloaded file does not. With `offline`, when the
    store is unreachable a complete local copy that passes its own manifest's checks is used
    as it is."""
    folder = data_dir / f"{version:010d}"
    try:
        manifest = fetch_manifest(store, version)
    except ObjectStoreUnavailable:
        local = _verified_local(folder, version) if offline else None
        if local is None:
            raise
        return folder, local
    folder.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACTS:
        path = folder / name
        if path.is_file() and sha256_of(path) == manifest["artifacts"][name]["sha256"]:
            continue
        _fetch(store, version, path)
    verify(folder, manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder, manifest


def _verified_local(folder: Path, version: int) -> dict[str, Any] | None:
    """The manifest of a complete, verified local copy of `version`, or None."""
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
        if manifest.get("version") != version:
            return None
        verify(folder, manifest)
    except (OSError, ValueError, KeyError, CorruptArtifact):
        return None
    return manifest


def lists_part_name(part: int) -> str:
    return f"lists-{part:04d}.npz"


def upload_part(store: BlobStore, version: int, path: Path) -> None:
    """A part of the version's lists ranked after it went live, beside its files."""
    store.put_file(prefix(version) + path.name, path)


def download_part(store: BlobStore, version: int, record: dict[str, Any], data_dir: Path) -> Part:
    """A recorded part of the version's lists, from its local copy where that matches its
    sha256, else from the store; raise CorruptArtifact if the store's does not match."""
    path = data_dir / f"{version:010d}" / record["name"]
    if path.is_file():
        try:
            return Part.load(path, record["sha256"])
        except CorruptArtifact:
            pass  # a stale or broken copy: the store's replaces it
    path.parent.mkdir(parents=True, exist_ok=True)
    _fetch(store, version, path)
    return Part.load(path, record["sha256"])


def read_parts(
    store: BlobStore,
    copy: IndexVersion,
    number: int,
    records: list[dict[str, Any]],
    data_dir: Path,
) -> list[int]:
    """Fold into `copy` (of version `number`) each recorded part of its lists ranked after it
    went live that it has not read, and that was ranked with what its lists were. Returns the
    parts that could not be read (missing, or failing their sha256), left unread; with the
    store down, the error stops the reading, and what was read stands."""
    unreadable = []
    for record in records:
        part_number = int(record["part"])
        if part_number in copy.parts_read:
            continue
        lists = copy.lists or KeptLists.empty(len(copy.user_ids), record["ranked_with"])
        if record["ranked_with"] == lists.ranked_with:
            try:
                part = download_part(store, number, record, data_dir)
            except CorruptArtifact:
                unreadable.append(part_number)
                continue
            copy.lists = lists.with_part(part)
        copy.parts_read.add(part_number)
    return unreadable


def _fetch(store: BlobStore, version: int, path: Path) -> None:
    """The version's file named as `path` is, from the store into `path` (whole or not at
    all); CorruptArtifact if the store has none."""
    partial = path.with_name(f".{path.name}.part")
    try:
        store.get_file(prefix(version) + path.name, partial)
    except NotFound as exc:
        raise CorruptArtifact(f"version {version}: {path.name} is missing from the store") from exc
    os.replace(partial, path)


def remove(store: BlobStore, version: int) -> int:
    return store.delete_prefix(prefix(version))


def prune_local(data_dir: Path, keep: set[int]) -> None:
    """Remove local copies of versions not in `keep`."""
    if not data_dir.is_dir():
        return
    for folder in data_dir.iterdir():
        if folder.is_dir() and folder.name.isdigit() and int(folder.name) not in keep:
            shutil.rmtree(folder, ignore_errors=True)
