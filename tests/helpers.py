"""Small assertions shared by the API tests."""

from __future__ import annotations

from typing import Any

import httpx


def assert_error(answer: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The answer is `status` with the contract's error body; returns that body's `error`."""
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def item(item_id: str, **fields: Any) -> dict[str, Any]:
    return {"item_id": item_id, "title": f"Title of {item_id}", **fields}
