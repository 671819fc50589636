"""What routes are handed: the pool, the cache, the caller. Route signatures stay one line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request, params
from redis.asyncio import Redis

from common.models import Role
from common.settings import Settings
from service.auth import Authenticator, Principal
from storage.blob.s3 import S3Store


@dataclass
class Resources:
    """Everything the app opens in its lifespan and closes after."""

    settings: Settings
    pool: asyncpg.Pool
    redis: Redis
    store: S3Store
    auth: Authenticator


def resources(request: Request) -> Resources:
    found: Resources = request.app.state.resources
    return found


def _pool(request: Request) -> asyncpg.Pool:
    return resources(request).pool


def _settings(request: Request) -> Settings:
    return resources(request).settings


async def _principal(request: Request) -> Principal:
    return await resources(request).auth.principal(request.headers.get("authorization"))


def require(role: Role) -> params.Depends:
    """The one dependency that guards every /api/v1 route."""

    async def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        principal.require(role)
        return principal

    guard: params.Depends = Depends(check)
    return guard


ResourcesDep = Annotated[Resources, Depends(resources)]
PoolDep = Annotated[asyncpg.Pool, Depends(_pool)]
SettingsDep = Annotated[Settings, Depends(_settings)]
