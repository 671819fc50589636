"""API keys: created by an admin, stored as sha256 of the token, revocable."""

from __future__ import annotations

import hashlib
import secrets

import asyncpg

from common.errors import NotFound
from common.models import ApiKey, NewApiKey, Role
from storage.db import database_errors

TOKEN_PREFIX = "rk_"


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


async def create_key(pool: asyncpg.Pool, name: str, role: Role) -> NewApiKey:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key_id = "key_" + secrets.token_hex(8)
    with database_errors():
        row = await pool.fetchrow(
            """INSERT INTO api_keys (key_id, name, role, token_sha256) VALUES ($1, $2, $3, $4)
               RETURNING key_id, name, role, created_at, revoked_at""",
            key_id,
            name,
            role,
            token_digest(token),
        )
    assert row is not None
    return NewApiKey(**row, token=token)


async def list_keys(pool: asyncpg.Pool) -> list[ApiKey]:
    with database_errors():
        rows = await pool.fetch(
            "SELECT key_id, name, role, created_at, revoked_at FROM api_keys ORDER BY created_at"
        )
    return [ApiKey(**row) for row in rows]


async def revoke_key(pool: asyncpg.Pool, key_id: str) -> None:
    with database_errors():
        status = await pool.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL",
            key_id,
        )
    if status == "UPDATE 0":
        raise NotFound(f"no active key {key_id!r}")


async def role_of(pool: asyncpg.Pool, digest: bytes) -> tuple[str, Role] | None:
    """(key_id, role) of the live key with this token digest, or None."""
    with database_errors():
        row = await pool.fetchrow(
            "SELECT key_id, role FROM api_keys WHERE token_sha256 = $1 AND revoked_at IS NULL",
            digest,
        )
    return (row["key_id"], row["role"]) if row else None
