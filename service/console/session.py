"""The console's sign-in session: a signed cookie that names the API key by its digest.

The token itself is never kept: not in the cookie, not in a page, not in a URL. The cookie
holds the key's SHA-256 digest (which opens nothing in /api/v1), when the session ends and
a random nonce, signed with HMAC-SHA256. Each request checks the key again (service/auth.py),
so a revoked key's sessions end at once in the process that revoked it and within the key
cache's seconds in the others.

Actions are protected against cross-site requests twice: the cookie is SameSite=Strict, so
a browser sends it on no request another site starts; and every POST carries a CSRF token
(a form field or the X-CSRF-Token header) that is an HMAC of the session's nonce, which a
page of another origin cannot read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

import orjson

from common.settings import ApiSettings

log = logging.getLogger(__name__)
COOKIE = "recs_console"


@dataclass(frozen=True)
class Session:
    digest: bytes
    expires: int
    nonce: str


class Sessions:
    """Signs and reads session cookies and their CSRF tokens."""

    def __init__(self, settings: ApiSettings) -> None:
        self.lifetime = settings.console_session_seconds
        if settings.console_secret is not None:
            secret = settings.console_secret.get_secret_value().encode()
        elif settings.admin_api_key is not None:
            # The admin key is shared by every API process already; what is derived from
            # it cannot be turned back into it.
            admin = settings.admin_api_key.get_secret_value().encode()
            secret = hashlib.sha256(b"recs console sessions\0" + admin).digest()
        else:
            log.warning("console: no CONSOLE_SECRET or ADMIN_API_KEY; sessions hold per process")
            secret = secrets.token_bytes(32)
        self._secret = secret

    def new(self, digest: bytes) -> tuple[Session, str]:
        """A session for the key with this digest, and its cookie value."""
        session = Session(digest, int(time.time()) + self.lifetime, secrets.token_urlsafe(16))
        body = _b64(orjson.dumps({"k": digest.hex(), "e": session.expires, "n": session.nonce}))
        return session, f"{body}.{self._sign(body.encode())}"

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie holds; None where it is missing, forged or over."""
        if not cookie or cookie.count(".") != 1:
            return None
        body, signature = cookie.split(".")
        if not _same(signature, self._sign(body.encode())):
            return None
        try:
            fields = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            session = Session(bytes.fromhex(fields["k"]), int(fields["e"]), str(fields["n"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > time.time() else None

    def csrf(self, session: Session) -> str:
        return self._sign(b"csrf\0" + session.nonce.encode())

    def csrf_ok(self, session: Session, given: str | None) -> bool:
        return given is not None and _same(given, self.csrf(session))

    def _sign(self, data: bytes) -> str:
        return _b64(hmac.new(self._secret, data, hashlib.sha256).digest())


def _same(given: str, expected: str) -> bool:
    """A constant-time comparison that takes any text (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
