"""Refuse request bodies over a size limit before they are read into memory."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import ClientError


class PayloadTooLarge(ClientError):
    code = "payload_too_large"
    status = 413


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(send, self.max_bytes)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise PayloadTooLarge(f"the body is over {self.max_bytes} bytes")
            return message

        await self.app(scope, counting, send)


async def _refuse(send: Send, max_bytes: int) -> None:
    from service.api.errors import error_response

    response = error_response(413, "payload_too_large", f"the body is over {max_bytes} bytes")
    await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
