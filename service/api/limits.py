"""What a request must pass before the app reads its body: a size limit and, for the API,
a valid token and its rate limits (service/ratelimit.py). A caller without a token costs a
header check, never the parse of a 64 MiB body."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import ClientError, RecsError, Unauthorized


class PayloadTooLarge(ClientError):
    code = "payload_too_large"
    status = 413


# Routes that take up to 10,000 rows in one body.
BATCH_PATHS = ("/batch", "/items/delete", "/exports")


class BodyLimit:
    """`batch_bytes` for the batch routes (paths ending in BATCH_PATHS), `max_bytes`
    elsewhere."""

    def __init__(self, app: ASGIApp, max_bytes: int, batch_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.batch_bytes = batch_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.batch_bytes if scope["path"].endswith(BATCH_PATHS) else self.max_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, PayloadTooLarge(f"the body is over {limit} bytes"))
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"the body is over {limit} bytes")
            return message

        await self.app(scope, counting, send)


class AuthenticateFirst:
    """Resolves the bearer token of every request under `prefix` before anything reads the
    body, and leaves the principal in the request's state for the routes' role checks."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization")
        resources = scope["app"].state.application
        client = scope.get("client")
        address = client[0] if client else "unknown"
        try:
            resources.limiter.blocked(address)
            try:
                principal = await resources.auth.principal(
                    header.decode("latin-1") if header else None
                )
            except Unauthorized:
                await resources.limiter.failed(address)
                raise
            await resources.limiter.admit(principal, address, scope["method"], scope["path"])
        except RecsError as exc:
            await _refuse(send, exc)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


async def _refuse(send: Send, exc: RecsError) -> None:
    from service.api.errors import error_for

    response = error_for(exc)
    await send(
        {"type": "http.response.start", "status": exc.status, "headers": response.raw_headers}
    )
    await send({"type": "http.response.body", "body": response.body})
