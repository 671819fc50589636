"""What routes are handed: the pool, the cache, the served index, the caller.

Route signatures stay one line each through the `...Dep` aliases.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import asyncpg
import faiss
from celery import Celery
from fastapi import Depends, FastAPI, Request, Response, params
from fastapi.routing import APIRoute
from redis.asyncio import Redis
from threadpoolctl import threadpool_limits

from common.models import Role
from common.settings import Settings
from embeddings.encoder import Encoder, Vectors, configured, embed_items
from service.auth import RANK, Authenticator, Principal
from service.experiments import Experiments
from service.profiles import Refresher
from service.ratelimit import RateLimiter
from service.serving import Serving
from service.trending import Trending
from storage.blob.s3 import S3Store, StoreProbe

T = TypeVar("T")


def one_thread_each() -> None:
    """A ranking thread runs FAISS with no OpenMP team of its own (the setting is per
    thread): one query's search is too small to split."""
    faiss.omp_set_num_threads(1)


@dataclass
class Resources:
    """Everything the app opens in its lifespan and closes after."""

    settings: Settings
    pool: asyncpg.Pool
    redis: Redis
    store: S3Store
    auth: Authenticator
    serving: Serving
    celery: Celery
    profiles: Refresher
    store_probe: StoreProbe
    limiter: RateLimiter
    trending: Trending
    experiments: Experiments
    _encoder: Encoder | None = None
    _background: set[asyncio.Task[None]] = field(default_factory=set)
    # The model runs on one thread of its own: queries wait their turn instead of each
    # executor thread growing its own allocator arena around the model.
    _encoding: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="query-encoder")
    )
    _ranking: ThreadPoolExecutor | None = None
    # One BLAS thread for the process: a ranking's products are small, and OpenBLAS's own
    # threads cost more than they saved there, fighting the other ranking thread for the
    # cores (a live ranking on bench/serving.py's 100k version: 7.4 ms, against 3.4 ms).
    _blas: threadpool_limits = field(default_factory=lambda: threadpool_limits(1, "blas"))

    @property
    def encoder(self) -> Encoder:
        """The query encoder, created on first use: most processes never need it."""
        if self._encoder is None:
            self._encoder = configured(self.settings.embedding)
        return self._encoder

    async def encode(self, texts: list[str]) -> Vectors:
        """Query texts as vectors, off the event loop, on the encoder's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._encoding, lambda: self.encoder.encode(texts))

    async def embed_item(self, text: str, labels: str) -> Vectors:
        """One item's vector as the workers make it (`embed_items`), on the encoder's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._encoding, lambda: embed_items(self.encoder, [text], [labels])
        )

    async def rank(self, work: Callable[[], T]) -> T:
        """`work` (a ranking or a search) on a ranking thread, off the event loop."""
        if self._ranking is None:
            self._ranking = ThreadPoolExecutor(
                self.settings.api.ranking_threads,
                thread_name_prefix="ranking",
                initializer=one_thread_each,
            )
        return await asyncio.get_running_loop().run_in_executor(self._ranking, work)

    def close(self) -> None:
        self._blas.restore_original_limits()
        self._encoding.shutdown(wait=False, cancel_futures=True)
        if self._ranking is not None:
            self._ranking.shutdown(wait=False, cancel_futures=True)

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` after the answer is sent; shutdown waits for it."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background work: scheduled tasks, profile refreshes and the lists they
        rank ahead."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.profiles.flush()
        await self.profiles.ranked()


# Dependencies are `async def` even where they do not await: FastAPI runs plain functions in
# a thread pool, and that hand-off costs more than these whole functions.
def _resources(request: Request) -> Resources:
    found: Resources = request.app.state.resources
    return found


async def resources(request: Request) -> Resources:
    return _resources(request)


async def _pool(request: Request) -> asyncpg.Pool:
    return _resources(request).pool


async def _settings(request: Request) -> Settings:
    return _resources(request).settings


async def _serving(request: Request) -> Serving:
    return _resources(request).serving


async def _principal(request: Request) -> Principal:
    """The caller AuthenticateFirst resolved before the body was read."""
    found = request.scope.get("state", {}).get("principal")
    if isinstance(found, Principal):
        return found
    return await _resources(request).auth.principal(request.headers.get("authorization"))


def require(role: Role) -> params.Depends:
    """The one dependency that guards every /api/v1 route: one call, no sub-dependencies
    (each level of FastAPI's dependency solving costs a cheap answer a few percent). A
    `Guarded` route checks the same role before its body is read."""

    async def check(request: Request) -> Principal:
        principal = await _principal(request)
        principal.require(role)
        return principal

    check.role = role  # type: ignore[attr-defined]  # read by `required_role`
    guard: params.Depends = Depends(check)
    return guard


def required_role(dependencies: Iterable[params.Depends]) -> Role | None:
    """The strongest role that `require` guards among `dependencies` ask for (a router's
    and a route's own); None where there is none."""
    roles: list[Role] = [
        role
        for dependency in dependencies
        if (role := getattr(dependency.dependency, "role", None)) is not None
    ]
    return max(roles, key=RANK.__getitem__, default=None)


class Guarded(APIRoute):
    """A route whose caller's role is checked before anything reads its body.

    FastAPI parses a route's JSON body before it runs the route's dependencies, so a `read`
    key posting bad JSON to a write route would otherwise hear of its JSON (400) rather
    than of its role (403). The caller was resolved before the body too (AuthenticateFirst):
    a refused request never has a byte of its body read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        role = required_role(self.dependencies)
        if role is None:
            return handle
        needed: Role = role

        async def guarded(request: Request) -> Response:
            (await _principal(request)).require(needed)
            return await handle(request)

        return guarded


BEARER = "HTTPBearer"


def document_security(app: FastAPI, prefix: str) -> None:
    """Declare the bearer scheme on every operation under `prefix` in the OpenAPI document.
    The token itself is resolved by AuthenticateFirst before the body is read, so no route
    declares it as a dependency of its own."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        spec = generate()
        schemes = spec.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[BEARER] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key or an HS256 JWT.",
        }
        for path, operations in spec.get("paths", {}).items():
            if path.startswith(prefix):
                for operation in operations.values():
                    operation["security"] = [{BEARER: []}]
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


ResourcesDep = Annotated[Resources, Depends(resources)]
PoolDep = Annotated[asyncpg.Pool, Depends(_pool)]
SettingsDep = Annotated[Settings, Depends(_settings)]
ServingDep = Annotated[Serving, Depends(_serving)]
