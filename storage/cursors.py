"""Page cursors: where the last page ended, as opaque text a client passes back."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import orjson

from common.errors import InvalidInput

NOT_ISSUED = "cursor is not one this service issued"
# The times a cursor may hold: any other could not be stored, so was never issued.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def encode(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def encode_keyset(at: datetime, key: str | int) -> str:
    """Where a page ordered by (a time, a key) ended."""
    return encode({"at": at.isoformat(), "id": key})


def decode_keyset(cursor: str, key: type = str) -> tuple[datetime, Any]:
    """(time, key) from `encode_keyset`'s cursor; anything else is an InvalidInput (a time
    outside what PostgreSQL holds included: it cannot be one this service issued)."""
    position = decode(cursor)
    try:
        at, found = datetime.fromisoformat(position["at"]), position["id"]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(NOT_ISSUED) from exc
    if not isinstance(found, key) or isinstance(found, bool) or at.tzinfo is None:
        raise InvalidInput(NOT_ISSUED)
    if not EARLIEST <= at <= LATEST:
        raise InvalidInput(NOT_ISSUED)
    return at, found


def decode(cursor: str) -> dict[str, Any]:
    """The position a cursor holds; one this service did not issue is an InvalidInput."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(NOT_ISSUED) from exc
    if not isinstance(position, dict):
        raise InvalidInput(NOT_ISSUED)
    return position
