"""A Python client of the recommendation service: `Client` (blocking) and `AsyncClient`,
typed, on httpx, one method per route of the HTTP contract.

    from recs_client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as recs:
        recs.put_items([{"item_id": "alien", "title": "Alien", "category": "horror"}])
        recs.record_interaction("u1", "alien", "like")
        for item in recs.recommend("u1", limit=5)["items"]:
            print(item["item_id"], item["score"])

Errors raise `RecsError` subclasses carrying the contract's error code (recs_client/errors.py).
"""

from recs_client.client import AsyncClient, Backoff, Client
from recs_client.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    RecsError,
    ServerError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)

__all__ = [
    "AsyncClient",
    "Backoff",
    "BadRequest",
    "Client",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "RecsError",
    "ServerError",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
]
