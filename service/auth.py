"""Who is calling: a bearer API key or a signed JWT, each carrying one role.

Roles nest: `admin` may do all that `write` may, and `write` all that `read` may.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import get_args

import asyncpg
import jwt

from common.errors import DatabaseUnavailable, Forbidden, Unauthorized
from common.models import Role
from common.settings import ApiSettings
from storage.keys import role_of, token_digest

log = logging.getLogger(__name__)
RANK: dict[str, int] = {"read": 0, "write": 1, "admin": 2}
# A key lookup that takes longer than this is treated as a database outage.
LOOKUP_SECONDS = 2.0
ROLES = frozenset(get_args(Role))


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role

    def require(self, role: Role) -> None:
        if RANK[self.role] < RANK[role]:
            raise Forbidden(f"this needs the {role!r} role; the token has {self.role!r}")


@dataclass
class Authenticator:
    """Resolves bearer tokens, remembering stored keys briefly to keep a DB read off each call.

    A key revoked in this process stops working at once; other processes forget it within
    `cache_seconds` while PostgreSQL answers. While it does not, a key seen before keeps the
    last answer, so reads with client keys survive a database outage.
    """

    settings: ApiSettings
    pool: asyncpg.Pool
    _cache: dict[bytes, tuple[float, Principal | None]] = field(default_factory=dict)
    # (pool, token digest) -> the lookup in flight
    _lookups: dict[tuple[int, bytes], asyncio.Task[tuple[str, Role] | None]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        admin = self.settings.admin_api_key
        self._admin_digest = token_digest(admin.get_secret_value()) if admin else None

    async def principal(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("send 'Authorization: Bearer <token>'")
        if token.count(".") == 2:
            return self._from_jwt(token)
        return await self.key(token_digest(token))

    async def key(self, digest: bytes) -> Principal:
        """The API key whose token has this digest (the console's session keeps the digest,
        never the token), checked as a bearer key is: revoked keys stop working."""
        if self._admin_digest and hmac.compare_digest(digest, self._admin_digest):
            return Principal("admin-key", "admin")
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached and cached[0] > now:
            found = cached[1]
        else:
            try:
                row = await asyncio.wait_for(asyncio.shield(self._lookup(digest)), LOOKUP_SECONDS)
            except (DatabaseUnavailable, TimeoutError) as exc:
                if cached is None:
                    raise DatabaseUnavailable(f"cannot check the token now: {exc}") from exc
                # PostgreSQL is down or hung: the key was valid (or not) moments ago, and
                # reads go on with that answer until it can be asked again.
                log.warning("key lookup failed (%s); using the last answer", exc)
                found = cached[1]
            else:
                found = Principal(row[0], row[1]) if row else None
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (now + self.settings.key_cache_seconds, found)
        if found is None:
            raise Unauthorized("the token is not valid")
        return found

    def forget(self) -> None:
        self._cache.clear()

    def _lookup(self, digest: bytes) -> asyncio.Task[tuple[str, Role] | None]:
        """One lookup per token at a time. A caller that stops waiting leaves it running:
        cancelling a query on a hung server would hold the caller until the statement
        timeout, so it ends on its own, bounded by that timeout."""
        key = (id(self.pool), digest)
        task = self._lookups.get(key)
        if task is None:
            task = self._lookups[key] = asyncio.create_task(role_of(self.pool, digest))

            def landed(done: asyncio.Task[tuple[str, Role] | None]) -> None:
                self._lookups.pop(key, None)
                if not done.cancelled():
                    done.exception()  # seen: the waiting caller, if any, reports it

            task.add_done_callback(landed)
        return task

    def _from_jwt(self, token: str) -> Principal:
        secret = self.settings.jwt_secret
        if secret is None:
            raise Unauthorized("the token is not valid")
        required = ["exp", "sub", "role"]
        required += ["iss"] if self.settings.jwt_issuer else []
        required += ["aud"] if self.settings.jwt_audience else []
        try:
            claims = jwt.decode(
                token,
                secret.get_secret_value(),
                algorithms=["HS256"],
                issuer=self.settings.jwt_issuer,
                audience=self.settings.jwt_audience,
                options={"require": required},
            )
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"the token is not valid: {exc}") from exc
        if claims["exp"] - time.time() > self.settings.jwt_max_lifetime_seconds:
            raise Unauthorized(
                "the token lives too long: at most "
                f"{self.settings.jwt_max_lifetime_seconds} s from now are accepted"
            )
        role = claims["role"]
        if role not in ROLES:
            raise Unauthorized("the token's role is not one of read, write, admin")
        return Principal(str(claims["sub"]), role)
