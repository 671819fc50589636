"""Signing in with an API key, and out. The key is posted once, checked as a bearer key is,
and never kept: the session cookie names it by its digest (service/console/session.py)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from common.errors import RecsError, Unauthorized
from service.auth import RANK
from service.console.session import COOKIE
from service.console.web import (
    PAGES,
    PREFIX,
    Ctx,
    application,
    page,
    peer,
    read_form,
    render,
    same_origin,
    secure,
    sessions,
)
from storage import console_sessions
from storage.keys import token_digest

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("")
@router.get("/")
async def home(request: Request) -> Response:
    """The first page the caller's key may open (a `read` key has no Overview)."""
    session = sessions(request).read(request.cookies.get(COOKIE))
    if session is None:
        return RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
    try:
        principal = await application(request).auth.key(session.digest)
    except RecsError:
        return RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
    first = next(slug for _, slug, role in PAGES if RANK[principal.role] >= RANK[role])
    return RedirectResponse(f"{PREFIX}/{first}", status_code=303)


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    return render(request, "sign_in.html")


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    app = application(request)
    token = (await read_form(request)).get("token", "").strip()
    if not same_origin(request):
        return render(request, "sign_in.html", 403, message="Sign in from this site's own page.")
    # A key only: JWTs are for services, and a session must be revocable with its key.
    if not token or token.count(".") == 2:
        return render(request, "sign_in.html", 401, message="Enter an API key.")
    try:
        app.limiter.blocked(peer(request))  # as /api/v1 refuses a guessing address
        await app.auth.key(token_digest(token))
    except Unauthorized:
        try:
            await app.limiter.failed(peer(request))
        except RecsError as exc:
            return render(request, "sign_in.html", exc.status, message=exc.message)
        return render(request, "sign_in.html", 401, message="That key is not valid.")
    except RecsError as exc:
        return render(request, "sign_in.html", exc.status, message=exc.message)
    signer = sessions(request)
    _, cookie = signer.new(token_digest(token))
    response = RedirectResponse(f"{PREFIX}/", status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=signer.lifetime,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=secure(request),
    )
    return response


@router.post("/sign-out")
@page("read", "GET", "/console")
async def sign_out(ctx: Ctx) -> Response:
    """End the session here and everywhere: its nonce is remembered until it would have
    ended, so a copy of the cookie opens nothing."""
    left = ctx.session.expires - int(time.time())
    await console_sessions.end(
        ctx.app.redis, ctx.app.settings.event_namespace, ctx.session.nonce, left
    )
    response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response
