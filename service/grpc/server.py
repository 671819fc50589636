"""The gRPC door (proto/recs/v1/recs.proto): `recs.v1.Recommendations` in the API process, on
GRPC_PORT, sharing its application (the loaded version, the caches) with HTTP.

Each RPC authenticates from the `authorization` metadata with the same keys, roles and rate
limits as HTTP, reads its request into the model the use case takes (service/grpc/requests.py)
and calls that use case, so an RPC lists the same items as the HTTP request. Errors map to
status codes as the contract says, with the contract's error code in the trailing metadata
`error-code`. A call past its deadline is cancelled, and its work with it. The standard
health service follows readiness; reflection is on; graceful shutdown drains calls in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from pydantic import ValidationError

from common.errors import (
    ClientError,
    DependencyError,
    Forbidden,
    NotFound,
    RecsError,
    TooManyRequests,
    Unauthorized,
)
from common.models import InteractionIn, Role
from recs.v1 import recs_pb2 as pb
from recs.v1 import recs_pb2_grpc
from service.application import Application
from service.auth import Principal
from service.grpc import answers, requests
from service.usecases import health as readiness
from service.usecases import interactions, search, session_list, similar, trending
from service.usecases.user_list import ListRequest, user_list

log = logging.getLogger(__name__)
T = TypeVar("T")
SERVICE = "recs.v1.Recommendations"
# Messages larger than this are refused (a client stream's each message is small; a batch
# of interactions is a stream).
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# RecordInteractions stores the stream in batches of this many, as the batch endpoint does.
STREAM_BATCH = 1_000
HEALTH_SECONDS = 2.0


class Servicer(recs_pb2_grpc.RecommendationsServicer):
    def __init__(self, app: Application) -> None:
        self.app = app

    async def Recommend(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async def answer() -> Any:
            asked = requests.RecommendIn.model_validate(requests.fields_of(request))
            found = await user_list(
                self.app,
                ListRequest(
                    user_id=asked.user_id,
                    limit=asked.limit,
                    offset=asked.offset,
                    category=asked.category,
                    filter=asked.filter,
                    scenario=asked.scenario,
                    fields=asked.fields,
                    exclude_seen=asked.exclude_seen,
                    experiment_id=asked.experiment_id,
                    explain=asked.explain,
                ),
            )
            return pb.RecommendResponse(
                user_id=found.user_id,
                items=answers.items(found.items),
                strategy=found.strategy,
                cached=found.cached,
                recommendation_id=found.recommendation_id,
                **answers.optional(
                    index_version=found.index_version,
                    variant=found.variant,
                    experiment_state=found.experiment_state,
                ),
            )

        return await self._call(context, "read", "GET", "/recommendations", answer)

    async def RecommendSession(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async def answer() -> Any:
            found = await session_list.recommend_session(self.app, requests.session_of(request))
            return pb.RecommendSessionResponse(
                items=answers.items(found.items),
                strategy=found.strategy,
                unknown_items=found.unknown_items,
                recommendation_id=found.recommendation_id,
                **answers.optional(index_version=found.index_version),
            )

        return await self._call(context, "read", "POST", "/recommendations", answer)

    async def SimilarItems(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async def answer() -> Any:
            asked = requests.SimilarItemsIn.model_validate(requests.fields_of(request))
            found = await similar.similar_items(
                self.app,
                asked.item_id,
                asked.limit,
                asked.category,
                asked.filter,
                asked.fields,
                asked.scenario,
            )
            return pb.SimilarItemsResponse(
                item_id=found.item_id,
                items=answers.items(found.items),
                recommendation_id=found.recommendation_id,
                **answers.optional(index_version=found.index_version),
            )

        return await self._call(context, "read", "GET", "/items/similar", answer)

    async def Trending(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async def answer() -> Any:
            asked = requests.TrendingIn.model_validate(requests.fields_of(request))
            found = await trending.trending(
                self.app,
                asked.variant,
                asked.category,
                asked.limit,
                asked.window_hours,
                asked.filter,
                asked.fields,
                asked.scenario,
            )
            return pb.TrendingResponse(
                variant=found.variant,
                window_hours=found.window_hours,
                items=answers.items(found.items),
                recommendation_id=found.recommendation_id,
                **answers.optional(category=found.category),
            )

        return await self._call(context, "read", "GET", "/trending", answer)

    async def Search(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async def answer() -> Any:
            asked = requests.search_of(request)
            found = await search.search(
                self.app,
                asked.text,
                asked.limit,
                asked.category,
                asked.filter,
                asked.fields,
                asked.scenario,
            )
            return pb.SearchResponse(
                items=answers.items(found.items),
                recommendation_id=found.recommendation_id,
                **answers.optional(index_version=found.index_version),
            )

        return await self._call(context, "read", "POST", "/search", answer)

    async def RecordInteractions(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> Any:
        async def answer() -> Any:
            accepted = duplicates = 0
            batch: list[InteractionIn] = []
            async for message in request_iterator:
                batch.append(requests.interaction_of(message))
                if len(batch) == STREAM_BATCH:
                    done = await interactions.record_batch(self.app, batch)
                    accepted, duplicates = accepted + done.accepted, duplicates + done.duplicates
                    batch = []
            if batch:
                done = await interactions.record_batch(self.app, batch)
                accepted, duplicates = accepted + done.accepted, duplicates + done.duplicates
            return pb.RecordInteractionsResponse(accepted=accepted, duplicates=duplicates)

        return await self._call(context, "write", "POST", "/interactions/batch", answer)

    async def _call(
        self,
        context: grpc.aio.ServicerContext,
        role: Role,
        method: str,
        path: str,
        answer: Callable[[], Awaitable[T]],
    ) -> T:
        """Authenticate, admit and answer, every error as its status code."""
        try:
            principal = await self._caller(context, role)
            await self.app.limiter.admit(principal, _peer(context), method, path)
            return await answer()
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "request"
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "invalid_request",
                f"{where}: {first['msg']}",
            )
        except RecsError as exc:
            status, code = _status(exc)
            if isinstance(exc, TooManyRequests):
                context.set_trailing_metadata(
                    (("error-code", code), ("retry-after", str(exc.retry_after)))
                )
                await context.abort(status, exc.message)
            await _abort(context, status, code, exc.message)
        raise AssertionError("abort raises")

    async def _caller(self, context: grpc.aio.ServicerContext, role: Role) -> Principal:
        metadata = dict(context.invocation_metadata() or ())
        header = metadata.get("authorization")
        try:
            principal = await self.app.auth.principal(header if isinstance(header, str) else None)
        except Unauthorized:
            await self.app.limiter.failed(_peer(context))
            raise
        principal.require(role)
        return principal


def _status(exc: RecsError) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, Unauthorized):
        return grpc.StatusCode.UNAUTHENTICATED, exc.code
    if isinstance(exc, Forbidden):
        return grpc.StatusCode.PERMISSION_DENIED, exc.code
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND, exc.code
    if isinstance(exc, TooManyRequests):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, exc.code
    if isinstance(exc, DependencyError):
        return grpc.StatusCode.UNAVAILABLE, exc.code
    if isinstance(exc, ClientError):
        return grpc.StatusCode.INVALID_ARGUMENT, exc.code
    return grpc.StatusCode.INTERNAL, exc.code


async def _abort(
    context: grpc.aio.ServicerContext, status: grpc.StatusCode, code: str, message: str
) -> None:
    context.set_trailing_metadata((("error-code", code),))
    await context.abort(status, message)


def _peer(context: grpc.aio.ServicerContext) -> str:
    """The caller's address, as the rate limits count it (ipv4:1.2.3.4:5678 -> 1.2.3.4)."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    return rest.rpartition(":")[0].strip("[]") if kind in ("ipv4", "ipv6") else peer


class GrpcDoor:
    """The server, its health service following readiness, and their shutdown."""

    def __init__(self, app: Application, port: int, host: str) -> None:
        self.app = app
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ]
        )
        recs_pb2_grpc.add_RecommendationsServicer_to_server(  # type: ignore[no-untyped-call]
            Servicer(app), self.server
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = (
            pb.DESCRIPTOR.services_by_name["Recommendations"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, self.server)
        self.port = self.server.add_insecure_port(f"{host}:{port}")
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.server.start()
        await self.follow_readiness()
        self._watch = asyncio.create_task(self._watch_readiness())
        log.info("gRPC: %s on port %d", SERVICE, self.port)

    async def follow_readiness(self) -> None:
        ready = await readiness.readiness(self.app)
        serving = ready["status"] in ("ready", "degraded")
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE):
            await self.health.set(name, status)

    async def _watch_readiness(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_SECONDS)
            try:
                await self.follow_readiness()
            except Exception:
                log.warning("gRPC: could not read readiness", exc_info=True)

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let those in flight finish within `grace` seconds."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
