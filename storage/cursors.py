"""Page cursors: where the last page ended, as opaque text a client passes back."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from common.errors import InvalidInput

NOT_ISSUED = "cursor is not one this service issued"


def encode(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


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
