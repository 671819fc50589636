"""What every console page shares: who is signed in, what their role lets them see, the
templates, and how a refusal is shown.

A page is an `async def (Ctx) -> Response` wrapped by `page(role, method, api_path)`: the
wrapper reads the session (service/console/session.py), checks the key again, checks the
role that the same action needs through /api/v1 and counts the request against the same
rate limits (as `method api_path`), checks the CSRF token on every POST, and turns a
refusal into a page with the status /api/v1 would give (never a 500 for a known error).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import TypeAdapter, ValidationError

from common.errors import Forbidden, InvalidInput, RecsError, TooManyRequests, Unauthorized
from common.models import Id, Role
from service.application import Application
from service.auth import RANK, Principal
from service.console.session import COOKIE, Session, Sessions
from storage import console_sessions

log = logging.getLogger(__name__)
T = TypeVar("T")
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
PREFIX = "/console"
_ID: TypeAdapter[str] = TypeAdapter(Id)
FORM_BYTES = 256 * 1024

# The pages, in the order the navigation lists them, with the role that may open each.
# A `read` key is embedded in client apps: it sees what it may read through /api/v1 and
# nothing of users' histories (Items and Users show it similar items and try-it only).
PAGES: tuple[tuple[str, str, Role], ...] = (
    ("Overview", "overview", "admin"),
    ("Versions", "versions", "admin"),
    ("Builds", "builds", "admin"),
    ("Experiments", "experiments", "admin"),
    ("Trending", "trending", "read"),
    ("Items", "items", "read"),
    ("Users", "users", "read"),
    ("Scenarios", "scenarios", "admin"),
    ("Keys", "keys", "admin"),
)


@dataclass
class Ctx:
    """A signed-in request: the application, the caller, and the form it posted."""

    request: Request
    app: Application
    principal: Principal
    session: Session
    csrf: str
    form: dict[str, str]

    def may(self, role: Role) -> bool:
        return RANK[self.principal.role] >= RANK[role]

    def query(self, name: str) -> str | None:
        """A query parameter, None where absent or blank."""
        value = self.request.query_params.get(name, "").strip()
        return value or None

    def path_id(self, name: str) -> str:
        """An id from the path, checked as /api/v1 checks ids (a refusal names it)."""
        try:
            return _ID.validate_python(self.request.path_params[name])
        except ValidationError as exc:
            raise InvalidInput(f"{name}: {exc.errors(include_url=False)[0]['msg']}") from None

    def query_id(self, name: str) -> str | None:
        return self.query_as(name, _ID)

    def query_as(self, name: str, adapter: TypeAdapter[T]) -> T | None:
        """A query parameter checked by the type /api/v1 checks it with; a refusal names it."""
        value = self.query(name)
        if value is None:
            return None
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            raise InvalidInput(f"{name}: {exc.errors(include_url=False)[0]['msg']}") from None

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return render(self.request, template, status, ctx=self, **values)


def sessions(request: Request) -> Sessions:
    found: Sessions = request.app.state.console_sessions
    return found


def application(request: Request) -> Application:
    found: Application = request.app.state.application
    return found


def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    ctx: Ctx | None = values.get("ctx")
    nav = [(label, slug) for label, slug, role in PAGES if ctx is not None and ctx.may(role)]
    response = templates.TemplateResponse(
        request, template, {"nav": nav, "prefix": PREFIX, **values}, status_code=status
    )
    # Pages name users and keys: never kept by a shared cache, never framed by another site.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def peer(request: Request) -> str:
    return request.client.host if request.client else ""


def same_origin(request: Request) -> bool:
    """A POST from a page of this origin: where the browser names one, it must be ours (the
    host the browser asked for, which a proxy passes on as X-Forwarded-Host)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    asked = request.headers.get("x-forwarded-host") or request.headers.get("host", "")
    return urlsplit(origin).netloc == asked.split(",")[0].strip()


def secure(request: Request) -> bool:
    """Whether the browser reached us over HTTPS (directly, or through a TLS proxy)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
    return request.url.scheme == "https" or forwarded == "https"


def go(*parts: str, query: str = "") -> RedirectResponse:
    """A redirect to PREFIX/parts..., each part quoted whole (an id may hold ? # / or %)."""
    path = "/".join([PREFIX, *(quote(part, safe="") for part in parts)])
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form (the console's forms post nothing else), each field's last value."""
    body = await request.body()
    if len(body) > FORM_BYTES:
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


Page = Callable[[Ctx], Awaitable[Response]]


def page(role: Role, method: str, api_path: str) -> Callable[[Page], Callable[[Request], Any]]:
    """Guard a page: signed in, with `role`, admitted as `method api_path` would be."""

    def wrap(handler: Page) -> Callable[[Request], Any]:
        async def guarded(request: Request) -> Response:
            app = application(request)
            signer = sessions(request)
            session = signer.read(request.cookies.get(COOKIE))
            if session is None:
                return _to_sign_in(request)
            try:
                principal = await app.auth.key(session.digest)
            except Unauthorized:
                return _to_sign_in(request)
            except RecsError as exc:
                return _refused(request, exc, None)
            ctx = Ctx(request, app, principal, session, signer.csrf(session), {})
            try:
                namespace = app.settings.event_namespace
                if await console_sessions.ended(app.redis, namespace, session.nonce):
                    return _to_sign_in(request)
                if request.method == "POST":
                    ctx.form = await read_form(request)
                    given = ctx.form.get("csrf") or request.headers.get("x-csrf-token")
                    if not same_origin(request) or not signer.csrf_ok(session, given):
                        raise Forbidden(
                            "the form's CSRF token is missing or wrong; reload the page"
                        )
                principal.require(role)
                await app.limiter.admit(principal, peer(request), method, api_path)
                return await handler(ctx)
            except RecsError as exc:
                return _refused(request, exc, ctx)
            except ValidationError as exc:  # a form read into a body model
                first = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in first["loc"]) or "form"
                return _refused(request, InvalidInput(f"{where}: {first['msg']}"), ctx)

        # Not functools.wraps: FastAPI would read the handler's signature through it.
        guarded.__name__, guarded.__doc__ = handler.__name__, handler.__doc__
        return guarded

    return wrap


def _to_sign_in(request: Request) -> Response:
    if request.method != "GET" or request.headers.get("accept") == "application/json":
        return render(request, "error.html", 401, message="Sign in again: the session is over.")
    return RedirectResponse(f"{PREFIX}/sign-in", status_code=303)


def _refused(request: Request, exc: RecsError, ctx: Ctx | None) -> Response:
    response = render(
        request, "error.html", exc.status, ctx=ctx, code=exc.code, message=exc.message
    )
    if isinstance(exc, TooManyRequests):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response
