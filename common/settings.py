"""One settings object, read from the environment, shared by the API and the workers.

Each concern reads its own variables (``DATABASE_URL``, ``REDIS_URL``, ``S3_*``, ...). A bad
value stops the process at start with a message naming the variable, never at first use.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.errors import ConfigError

DEFAULT_INTERACTION_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "like": 2.0,
    "superlike": 3.0,
    "purchase": 3.0,
    "seen": 0.5,
    "dislike": -2.0,
    "hide": -3.0,
}
# Weight of a `rating` interaction whose value is 1, 2, 3, 4, 5; values between interpolate.
DEFAULT_RATING_WEIGHTS: tuple[float, float, float, float, float] = (-2.0, -1.0, 1.0, 2.0, 3.0)

# What counts as a conversion in an experiment, where these types are configured.
CONVERSION_TYPES = ("click", "like", "superlike", "purchase")

_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


class _Section(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)


class DatabaseSettings(_Section):
    """PostgreSQL: the catalog, users and interactions, builds and versions, keys and
    experiments."""

    model_config = SettingsConfigDict(env_prefix="DATABASE_")

    # The PostgreSQL server and database (postgresql:// or postgres://).
    url: str = "postgresql://postgres@127.0.0.1:5432/recs"
    # Connections each process's pool keeps open.
    pool_min: Annotated[int, Field(ge=1, le=100)] = 2
    # Connections each process's pool opens at most.
    pool_max: Annotated[int, Field(ge=1, le=200)] = 10
    # A statement the server has not answered within this many seconds fails with a 503
    # (database_unavailable): a hung PostgreSQL is a clear error, not a hung request.
    # Workers allow their long build queries INDEX_BUILD_TIME_LIMIT.
    command_timeout: Annotated[float, Field(gt=0, le=3_600)] = 5.0

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// or postgres://")
        return value


class RedisSettings(_Section):
    """Redis: the Celery broker, stored profiles and the lists ranked from them, trending
    lists, rate counts, the impression stream, and the channel that keeps every API process
    in step."""

    model_config = SettingsConfigDict(env_prefix="REDIS_")

    # The Redis server and database (redis://, rediss:// or unix://). Pub/sub ignores the
    # database number: see DEPLOYMENT_NAME.
    url: str = "redis://127.0.0.1:6379/0"
    # The API's wait for one Redis call; a hung Redis then costs a request this, once in a
    # few seconds (storage/cache.py).
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 1.5

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


class S3Settings(_Section):
    """The object store of index versions, unless BLOB_URL names a folder: each version's
    files and manifest under `versions/<id>/` (S3, MinIO, SeaweedFS)."""

    model_config = SettingsConfigDict(env_prefix="S3_")

    # host:port of the S3 server (a URL is accepted: its scheme is dropped).
    endpoint: str = "127.0.0.1:8333"
    # The bucket of index versions, created if missing (an `s3://` BLOB_URL names another).
    bucket: Annotated[str, Field(pattern=_BUCKET)] = "recs-index"
    # The S3 access key.
    access_key: Annotated[str, Field(min_length=3)] = "recs-local"
    # The S3 secret key; ENVIRONMENT=production refuses the shipped default.
    secret_key: Annotated[SecretStr, Field(min_length=8)] = SecretStr("recs-local-secret")
    # Talk to S3 over HTTPS.
    secure: bool = False
    # The S3 region, where the server needs one.
    region: str | None = None

    @field_validator("endpoint")
    @classmethod
    def _host_port(cls, value: str) -> str:
        # The minio client takes host[:port]; accept a URL too, since that is what people paste.
        stripped = re.sub(r"^https?://", "", value).rstrip("/")
        if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", stripped):
            raise ValueError("must be host[:port], for example 127.0.0.1:9000")
        return stripped


class BlobSettings(_Section):
    """Where index versions are stored: one URL, whose scheme picks the backend
    (storage/blob/)."""

    model_config = SettingsConfigDict(env_prefix="BLOB_")

    # `s3://<bucket>`: S3 at S3_ENDPOINT, with the S3 credentials, in that bucket;
    # `file:///<absolute path>`: a folder, for development or one machine (every API process
    # and worker must see the same folder). Unset: `s3://` and S3_BUCKET, where a deployment
    # that sets only the S3 variables always stored. Any other URL stops the process at start.
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None:
            blob_location(value)
        return value


def blob_location(url: str) -> tuple[Literal["s3", "file"], str]:
    """(scheme, where) of a blob store URL: ("s3", bucket) or ("file", absolute path).
    Raise ValueError for any other URL, saying what is accepted."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not re.fullmatch(_BUCKET, parts.netloc) or parts.path not in ("", "/"):
            raise ValueError(f"{url!r}: an S3 URL is s3://<bucket>, with a valid bucket name")
        return "s3", parts.netloc
    if parts.scheme == "file":
        path = unquote(parts.path)
        if parts.netloc or not path.startswith("/"):
            raise ValueError(f"{url!r}: a folder is file:///<absolute path> (three slashes)")
        return "file", path
    raise ValueError(
        f"{url!r}: unknown scheme {parts.scheme!r}; use s3://<bucket> or file:///<absolute path>"
    )


class ApiSettings(_Section):
    """The API process: where it listens, who may call it, and what it keeps in memory."""

    # The address the API listens on.
    host: str = "127.0.0.1"
    # The port the API listens on.
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    # The port the API process serves gRPC on (proto/recs/v1/recs.proto), at the same host;
    # 0 turns gRPC off.
    grpc_port: Annotated[int, Field(ge=0, le=65535)] = 50051
    # At shutdown, gRPC calls in flight get this long to finish.
    grpc_grace_seconds: Annotated[float, Field(ge=0, le=300)] = 10.0
    # The first admin token (16 characters or more): the API does not start without it.
    admin_api_key: Annotated[SecretStr | None, Field(min_length=16)] = None
    # When set, HS256 JWTs signed with it are accepted as tokens (32 characters or more).
    jwt_secret: Annotated[SecretStr | None, Field(min_length=32)] = None
    # When set, a JWT must name this issuer (iss).
    jwt_issuer: Annotated[str | None, Field(min_length=1)] = None
    # When set, a JWT must name this audience (aud).
    jwt_audience: Annotated[str | None, Field(min_length=1)] = None
    # Signs the console's session cookies (32 characters or more); every API process must
    # share it. Unset: derived from ADMIN_API_KEY, or, without one, random per process (a
    # session then holds only in the process that signed it in).
    console_secret: Annotated[SecretStr | None, Field(min_length=32)] = None
    # A console session ends this long after sign-in.
    console_session_seconds: Annotated[int, Field(ge=60, le=7 * 86_400)] = 8 * 3600
    # One JSON line per request on stderr (the `recs.access` logger): method, route template,
    # status, duration, request id (X-Request-ID, kept or made, and returned) and key id,
    # never the token.
    access_log: bool = True
    # A JWT that is still valid for longer than this from now is refused.
    jwt_max_lifetime_seconds: Annotated[int, Field(ge=60)] = 86_400
    # Request bodies larger than this get a 413 on the batch routes.
    max_body_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024 * 1024
    # Request bodies larger than this get a 413 on every other route. A request without a
    # valid token gets its 401 before any of its body is read.
    body_limit_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    # How long a process trusts a key lookup: a key revoked in one process stops working in
    # the others within this.
    key_cache_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0
    # The answer cache (service/answers.py): each API process keeps the lists it ranked in the
    # last 60 s within this many bytes, the oldest dropped first, so paging and repeats within
    # that minute cost nothing. A request with `Cache-Control: no-cache` skips it (a kept list
    # still answers that request).
    answer_cache_bytes: Annotated[int, Field(ge=0)] = 64 * 1024 * 1024
    # Threads that rank and search, off the event loop: a slow list never holds up /health
    # or a cached answer. FAISS and numpy release the GIL, so two use both cores of a small
    # machine; more only queue behind the GIL.
    ranking_threads: Annotated[int, Field(ge=1, le=64)] = 2
    # After a profile refresh, the API ranks those users' default lists in the background
    # (service/lists.py), so their next request is a lookup. At most this many users wait
    # to be ranked (0: none): the users of a refresh beyond that are ranked when they ask.
    rank_ahead_users: Annotated[int, Field(ge=0, le=1_000_000)] = 1_000
    # Each API process keeps the stored profiles and lists it last read of users who acted
    # since the build, within this many bytes, until a newer profile of theirs is announced
    # (service/profiles.py): their next request reads nothing from Redis.
    held_profile_bytes: Annotated[int, Field(ge=0)] = 32 * 1024 * 1024


class RateSettings(_Section):
    """Requests per minute, per API key (by kind of route) and per client address; 0 turns
    one limit off. The admin key and admin JWTs are not limited: they are the operator's.
    Counts are shared by every API process through Redis."""

    model_config = SettingsConfigDict(env_prefix="RATE_LIMIT_")

    # Off (false): nothing is counted or limited.
    enabled: bool = True
    # Per key, on GET and HEAD routes.
    read_per_minute: Annotated[int, Field(ge=0)] = 500
    # Per key, on the other methods, but for the two below.
    write_per_minute: Annotated[int, Field(ge=0)] = 1_200
    # POST /search encodes a query with the model: tens of milliseconds of CPU each.
    search_per_minute: Annotated[int, Field(ge=0)] = 60
    # Per key, on POST /index/builds.
    build_per_minute: Annotated[int, Field(ge=0)] = 10
    # Every request an address makes with a non-admin token, across keys.
    address_per_minute: Annotated[int, Field(ge=0)] = 6_000
    # Requests with a missing or wrong token, per address: guessing tokens stays slow.
    failed_auth_per_minute: Annotated[int, Field(ge=0)] = 120


class EmbeddingSettings(_Section):
    """The model that turns item texts and search queries into vectors."""

    model_config = SettingsConfigDict(env_prefix="EMBEDDING_")

    # A sentence-transformers model, loaded from disk only (the packaged one, or a folder);
    # `hashing-<dim>` is a fast word-hashing stand-in for tests.
    model: Annotated[str, Field(min_length=1)] = "all-MiniLM-L6-v2"
    # Texts per encoder call; at most 32 for `onnx-int8`, which is both faster and closer to
    # fp32 in small batches.
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 128
    # A build (or a large embedding task) queues its stale items in pieces of this many, so
    # that every running worker embeds a share.
    chunk_items: Annotated[int, Field(ge=16, le=100_000)] = 256
    # onnx-int8: the model exported once from its packaged files to ONNX and quantised to int8
    # (embeddings/onnx.py), kept in EMBEDDING_CACHE_DIR: about 2x the texts per second of
    # `torch` on CPU, with vectors at cosine 0.995 to fp32's on average, 0.989 at worst;
    # torch: sentence-transformers as shipped, in fp32.
    runtime: Literal["torch", "onnx-int8"] = "onnx-int8"
    # Threads the onnx-int8 model runs on in each process; 0: one per core. Where several
    # workers share a machine, 1 each lets every worker add its core's throughput.
    threads: Annotated[int, Field(ge=0, le=256)] = 0
    # Where the ONNX export and its int8 copy are kept, under the model's digest.
    cache_dir: Path = Path("model_cache")


class IndexSettings(_Section):
    """How versions are built, kept, loaded and served."""

    model_config = SettingsConfigDict(env_prefix="INDEX_")

    # Where versions are built and downloaded.
    data_dir: Path = Path("index_data")
    # Exact search below this many items; HNSW at or above it.
    exact_below: Annotated[int, Field(ge=1)] = 5_000
    # HNSW: links per node (M).
    hnsw_m: Annotated[int, Field(ge=4, le=128)] = 32
    # 40, not 80: in a build on bench/serving.py's 1M items the item index took 95-100 s
    # instead of 133-140 s, at recall@10 0.9985 against exact search (1.0 at 80); the ALS
    # factor index builds in 59 s instead of 84 s, at 0.988 (0.994).
    hnsw_ef_construction: Annotated[int, Field(ge=8, le=1024)] = 40
    # HNSW: the beam (efSearch) of every search but similar items' (INDEX_SIMILAR_EF_SEARCH).
    hnsw_ef_search: Annotated[int, Field(ge=8, le=4096)] = 128
    # The beam of a similar-items search (and of the build's nearest items), for up to this
    # many results; 64, not 128: on bench/serving.py's 1M items recall@10 against exact
    # search stayed 0.9973 at every beam from 51 to 128, and a search took half the time.
    similar_ef_search: Annotated[int, Field(ge=8, le=4096)] = 64
    # How many of the newest versions (ready or rejected) are kept, and besides them the active
    # one and those a running experiment pins; older ones are deleted from the object store.
    keep_versions: Annotated[int, Field(ge=1, le=100)] = 5
    # Age at which an interaction counts half in a user's taste vector.
    half_life_days: Annotated[float, Field(gt=0)] = 30.0
    # Users with fewer interactions get the popular list (so do users with neither a positive
    # item nor a taste); one like is enough for a personal list, whose weights each build
    # chooses for users with little evidence too.
    cold_start_min: Annotated[int, Field(ge=0)] = 1
    # The newest interactions of a user that a profile refresh reads after a write (a build
    # reads them all).
    profile_history: Annotated[int, Field(ge=10, le=1_000_000)] = 2_000
    # Depth of the one ranked list that `offset` pages through.
    ranking_depth: Annotated[int, Field(ge=10, le=5_000)] = 200
    # A build ranks its users' lists ahead (indexing/precompute.py), the most active first,
    # keeping each list's first `precompute_depth`: up to this many seconds in all, the
    # trending lists they follow included where none are published (0: none). The users
    # left are ranked in parts before the version goes live (`fill_seconds`).
    precompute_seconds: Annotated[float, Field(ge=0)] = 60.0
    # How many items of each list ranked ahead are kept (by the build, after it, and after a
    # user acts).
    precompute_depth: Annotated[int, Field(ge=10, le=5_000)] = 100
    # A build also finds each item's nearest items, the most popular first, for up to this many
    # seconds (0: none), `similar_depth` deep: similar items become a lookup. A second of
    # these searches lists about 10,000 items, where a second of rankings lists about 300
    # users (at 1M items, on two cores): the nearest items get the larger share.
    similar_seconds: Annotated[float, Field(ge=0)] = 120.0
    # How many nearest items a build keeps per item; below INDEX_SIMILAR_EF_SEARCH.
    similar_depth: Annotated[int, Field(ge=10, le=200)] = 50
    # A build that activates its version first ranks the lists of the users its precompute
    # had no time for, `fill_part_users` at a time, for up to this many seconds (0: none;
    # its "ranking lists" stage, ending two minutes before INDEX_BUILD_TIME_LIMIT at the
    # latest), so that the version goes live with them. Users still left then (a huge
    # catalog) are ranked by the workers once it is live, for up to this long again, each
    # part served as it is uploaded. About 300 users a second at 1M items on two cores:
    # 200,000 users take some 11 minutes.
    fill_seconds: Annotated[float, Field(ge=0)] = 1_800.0
    # Users per part of those lists, each uploaded and recorded on its own (once the version
    # is live, each part is a task, served once uploaded).
    fill_part_users: Annotated[int, Field(ge=1)] = 10_000
    # Held-out users each build tunes and evaluates itself on (0: no tuning, no figures, no
    # gate). The more, the smaller the gain a build can tell from noise.
    evaluate_users: Annotated[int, Field(ge=0)] = 2_000
    # How often each API process reads the active version from PostgreSQL, besides hearing it
    # announced.
    poll_seconds: Annotated[float, Field(gt=0, le=60)] = 2.0
    # Seconds a build may run; a worker's statements may take as long.
    build_time_limit: Annotated[int, Field(ge=10)] = 3_600
    # A running build silent this long is marked failed (its worker died).
    heartbeat_timeout: Annotated[float, Field(ge=1)] = 60.0
    # Retries of a build that PostgreSQL or S3 failed.
    build_retries: Annotated[int, Field(ge=0, le=10)] = 2
    # Seconds before each retry.
    build_retry_seconds: Annotated[float, Field(ge=0)] = 10.0
    # Half-life of an interaction in the trending scores (indexing/trending.py).
    trending_half_life_hours: Annotated[float, Field(gt=0)] = 24.0
    # The default trending window: the interactions of the last this many hours.
    trending_window_hours: Annotated[int, Field(ge=1, le=24 * 365)] = 72
    # How new an item must be (its published_at) to count for `fresh`.
    trending_fresh_days: Annotated[float, Field(gt=0)] = 14.0
    # Period of the worker job that publishes the trending lists of the default window.
    trending_refresh_seconds: Annotated[float, Field(ge=5)] = 60.0
    # Time a build may spend, after its first fit on the holdout split, choosing model
    # settings (70% of it at most) and blend weights (at least 30%, for scoring the held-out
    # users); 0: serve the starting values as configured.
    tune_seconds: Annotated[float, Field(ge=0)] = 90.0
    # The quality gate (indexing/gate.py): how far below the active version's configuration,
    # refitted on the build's own split, a build's held-out NDCG@10 may fall beyond noise, as
    # a fraction of that reference's, before the build is kept as `rejected`. A build not
    # above popularity on its own holdout is rejected too.
    gate_tolerance: Annotated[float, Field(ge=0, le=1)] = 0.1
    # Beat queues a build every night; it goes live only through the quality gate.
    nightly: bool = True
    # The hour (UTC) of the nightly build.
    nightly_hour: Annotated[int, Field(ge=0, le=23)] = 3

    @model_validator(mode="after")
    def _nearest_within_the_beam(self) -> IndexSettings:
        # A search of k results visits the same HNSW nodes for any k within efSearch: the
        # nearest items a build keeps are then the head of what the API's search finds.
        if self.similar_depth >= self.similar_ef_search:
            raise ValueError(
                f"INDEX_SIMILAR_DEPTH ({self.similar_depth}) must be below "
                f"INDEX_SIMILAR_EF_SEARCH ({self.similar_ef_search})"
            )
        return self


class RankingSettings(_Section):
    """How the hybrid ranker blends its sources (see indexing/hybrid.py for the formula).

    The weights are starting values: each build searches around them on its own holdout
    (INDEX_TUNE_SECONDS) and serves what it chose. Sources are standardised per list, then
    weighed by their trust in the user, before blending, so weights compare across sources.
    A user's weights move from the cold set to the rich one as their positive items grow."""

    model_config = SettingsConfigDict(env_prefix="RANKING_")

    # `content`, for a user with a rich history: the taste vector against item embeddings.
    content_weight: Annotated[float, Field(ge=0)] = 0.5
    # `collaborative`, rich history: implicit ALS factors.
    collaborative_weight: Annotated[float, Field(ge=0)] = 1.0
    # `ease`, rich history: EASE item-item weights.
    ease_weight: Annotated[float, Field(ge=0)] = 1.0
    # `cooccurrence`, rich history: the shrunk item-item cosine.
    cooccurrence_weight: Annotated[float, Field(ge=0)] = 1.0
    # `recent`, rich history: item-item weights seeded by the newest positive items.
    recent_weight: Annotated[float, Field(ge=0)] = 0.5
    # `sequence`, rich history: what other users went on to after the newest positive items.
    sequence_weight: Annotated[float, Field(ge=0)] = 0.5
    # `trending`, rich history: the served hot list, on a log scale.
    trending_weight: Annotated[float, Field(ge=0)] = 0.25
    # `content` for a user with no positive items yet; collaborative sources weigh 0 there.
    cold_content_weight: Annotated[float, Field(ge=0)] = 1.0
    # `trending` for a user with no positive items yet.
    cold_trending_weight: Annotated[float, Field(ge=0)] = 0.5
    # Positive items, each counted by its support, at which a user's weights are halfway from
    # the cold set to the rich one.
    adapt_at: Annotated[float, Field(gt=0)] = 5.0
    # How many of the newest positive items seed the "recent" and "sequence" sources.
    recent_items: Annotated[int, Field(ge=1, le=100)] = 10
    # How hard items like a disliked or hidden one are pushed down: at 1, an item as close as
    # can be to a rejected one sinks by the whole spread of the user's list.
    negative_weight: Annotated[float, Field(ge=0)] = 2.0
    # MMR: 1.0 ranks by relevance alone, lower values trade relevance for variety.
    mmr_lambda: Annotated[float, Field(ge=0, le=1)] = 1.0
    # At most this many items of one category in a list (unset: no cap).
    max_per_category: Annotated[int | None, Field(ge=1)] = None


class CollaborativeSettings(_Section):
    """The collaborative models fitted at build time (indexing/collaborative.py): implicit
    ALS, EASE, the shrunk item-item cosine and what follows what. Factors, regularisation,
    alpha, the EASE penalty, the shrinkage and the item evidence are starting values: each
    build searches around them on its own holdout."""

    model_config = SettingsConfigDict(env_prefix="COLLABORATIVE_")

    # ALS latent factors.
    factors: Annotated[int, Field(ge=2, le=512)] = 64
    # ALS L2 regularisation.
    regularization: Annotated[float, Field(gt=0)] = 0.1
    # ALS confidence of a pair: 1 + alpha * its evidence (Hu, Koren and Volinsky, 2008).
    alpha: Annotated[float, Field(gt=0)] = 2.0
    # ALS iterations.
    iterations: Annotated[int, Field(ge=1, le=200)] = 15
    # Neighbours kept per item by the item-item cosine, and followers by `sequence`.
    neighbours: Annotated[int, Field(ge=1, le=2_000)] = 200
    # Weights kept per item by EASE, the largest in magnitude.
    ease_neighbours: Annotated[int, Field(ge=1, le=5_000)] = 1_000
    # Shrinkage of the item-item cosine, so that two co-occurrences cannot outrank two
    # hundred.
    shrinkage: Annotated[float, Field(ge=0)] = 20.0
    # EASE's L2 penalty.
    ease_lambda: Annotated[float, Field(gt=0)] = 200.0
    # An item follows another when it comes at most this many positive interactions later
    # in a user's history (the "sequence" source).
    sequence_window: Annotated[int, Field(ge=1, le=100)] = 10
    # EASE inverts a dense matrix over this many of the most-liked items: n^2 * 4 bytes of
    # memory (1.6 GB at 20,000) and n^3 time. Beyond them the other sources rank.
    ease_max_items: Annotated[int, Field(ge=0, le=60_000)] = 20_000
    # Half-life of the evidence the collaborative models learn from (0: no decay; the
    # "recent" source and the taste vectors weigh recency in any case).
    half_life_days: Annotated[float, Field(ge=0)] = 0.0
    # What the item-item models (EASE, cosine) and the row sums learn from a positive pair:
    # its evidence, or 1. Where a purchase weighs three views, views are what most held-out
    # interactions are, and counting every pair alike can predict them better; each build
    # tries both. ALS always weighs its confidences by the evidence.
    item_evidence: Literal["weighted", "binary"] = "weighted"
    # Seed of ALS's random start and of the tuning's draw of users, so a build repeats.
    seed: int = 7


class ExperimentSettings(_Section):
    """A/B experiments: what counts as a conversion, and how results are tested."""

    model_config = SettingsConfigDict(env_prefix="EXPERIMENT_")

    # A conversion is one of EXPERIMENT_CONVERSION_TYPES by a user on an item shown to them,
    # between its first showing and this many hours after its last.
    attribution_hours: Annotated[float, Field(gt=0, le=24 * 365)] = 24.0
    # Interaction types that count as a conversion. Unset: those of click, like, superlike and
    # purchase that are configured, or else every type of positive weight.
    conversion_types: Annotated[list[str] | None, Field(min_length=1)] = None
    # Two-sided significance level of the tests against control.
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    # The guardrail stops a variant only once it and control each have this many users.
    guardrail_min_users: Annotated[int, Field(ge=10)] = 200
    # How often the worker copies impressions from Redis to PostgreSQL, computes results
    # and applies guardrails; a results request copies them first in any case.
    tick_seconds: Annotated[float, Field(ge=1)] = 30.0
    # Impressions waiting in Redis beyond this many answers are trimmed, oldest first (only
    # when no worker copies them for a long time).
    stream_max: Annotated[int, Field(ge=1_000)] = 1_000_000
    # How often each API process re-reads the experiments, should an announcement be lost.
    refresh_seconds: Annotated[float, Field(gt=0, le=300)] = 5.0


class EventSettings(_Section):
    """Events in and out (docs/events.md): the transport, the topics' names, and how the
    consumers take their messages."""

    model_config = SettingsConfigDict(env_prefix="EVENTS_")

    # The transport: unset, Redis Streams in REDIS_URL's database; kafka://host:port[,...]
    # a Kafka cluster (kafka+ssl:// for TLS).
    url: str | None = None
    # Topic (stream) names start with this: <prefix>.events, .interactions, .items, .dead.
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")] = "recs"
    # SASL credentials for Kafka; both or neither.
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # SASL mechanism for Kafka, where credentials are given.
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    # A CA bundle to verify the brokers' certificates with (kafka+ssl://); unset: the system's.
    ssl_ca_file: Path | None = None
    # Redis Streams: entries kept per stream, older ones trimmed (approximately).
    stream_maxlen: Annotated[int, Field(ge=1_000)] = 1_000_000
    # The consumer group the consumers of one deployment share: each message is taken by one.
    group: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")] = "recs"
    # Messages a consumer takes at once; they are stored in one batch.
    batch: Annotated[int, Field(ge=1, le=10_000)] = 1_000
    # An interaction naming an item not known yet is tried again for this long (the item may
    # be on its way on <prefix>.items) before it is dead-lettered.
    unknown_item_seconds: Annotated[float, Field(ge=0)] = 60.0
    # How often the outbox is looked at for events to publish, should a wake-up be missed.
    outbox_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    # Kafka's consumer session timeout: a consumer silent this long leaves its group.
    session_timeout_ms: Annotated[int, Field(ge=1_000, le=300_000)] = 30_000

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> EventSettings:
        if (self.sasl_username is None) != (self.sasl_password is None):
            raise ValueError("EVENTS_SASL_USERNAME and EVENTS_SASL_PASSWORD go together")
        if self.url is not None and urlsplit(self.url).scheme not in ("kafka", "kafka+ssl"):
            raise ValueError("EVENTS_URL: kafka://host:port[,host:port] or kafka+ssl://...")
        return self

    def topic(self, name: str) -> str:
        """A topic's full name: `events`, `interactions`, `items` or `dead`."""
        return f"{self.prefix}.{name}"


class InteractionSettings(_Section):
    """Interaction types and the weight each one gives an item in a user's profile."""

    # Interaction types and their weights in a user's profile; negative ones (dislike, hide)
    # push down the items like them. `rating` is built in: see RATING_WEIGHTS.
    interaction_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_INTERACTION_WEIGHTS)
    )
    # Weight of a `rating` of 1, 2, 3, 4, 5; values between interpolate.
    rating_weights: tuple[float, float, float, float, float] = DEFAULT_RATING_WEIGHTS

    @field_validator("interaction_weights")
    @classmethod
    def _types(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("must name at least one interaction type")
        for name, weight in value.items():
            if name == "rating":
                raise ValueError("'rating' is built in; set its weights with RATING_WEIGHTS")
            if not _TYPE_NAME.match(name):
                raise ValueError(f"type {name!r} must match {_TYPE_NAME.pattern}")
            if not math.isfinite(weight):
                raise ValueError(f"weight of {name!r} must be a finite number")
        return value

    @field_validator("rating_weights")
    @classmethod
    def _finite(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not all(math.isfinite(w) for w in value):
            raise ValueError("weights must be finite numbers")
        return value

    @property
    def types(self) -> frozenset[str]:
        return frozenset(self.interaction_weights) | {"rating"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # `production` refuses the credentials this project ships for local use (the S3 secret
    # key, the DATABASE_URL password) and requires ADMIN_API_KEY; the test suite runs as
    # `test`.
    environment: Literal["development", "test", "production"] = "development"
    # Names this deployment among others that share a Redis server (pub/sub ignores the
    # database number). Unset: derived from the PostgreSQL database and the S3 bucket.
    deployment_name: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_.:/@+-]{1,200}$")] = None
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    blob: BlobSettings = Field(default_factory=BlobSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    rate: RateSettings = Field(default_factory=RateSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    interactions: InteractionSettings = Field(default_factory=InteractionSettings)
    ranking: RankingSettings = Field(default_factory=RankingSettings)
    collaborative: CollaborativeSettings = Field(default_factory=CollaborativeSettings)
    experiment: ExperimentSettings = Field(default_factory=ExperimentSettings)
    events: EventSettings = Field(default_factory=EventSettings)

    @model_validator(mode="before")
    @classmethod
    def _default_conversions(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        experiment = data.get("experiment") or ExperimentSettings()
        interactions = data.get("interactions") or InteractionSettings()
        if isinstance(experiment, dict):
            experiment = ExperimentSettings(**experiment)
        if isinstance(interactions, dict):
            interactions = InteractionSettings(**interactions)
        if (
            isinstance(experiment, ExperimentSettings)
            and isinstance(interactions, InteractionSettings)
            and experiment.conversion_types is None
        ):
            weights = interactions.interaction_weights
            types = [t for t in CONVERSION_TYPES if t in weights] or [
                t for t, w in weights.items() if w > 0
            ]
            data = {**data, "experiment": experiment.model_copy(update={"conversion_types": types})}
        return data

    @model_validator(mode="after")
    def _conversions_are_types(self) -> Settings:
        unknown = sorted(set(self.experiment.conversion_types or ()) - self.interactions.types)
        if unknown:
            raise ValueError(
                f"EXPERIMENT_CONVERSION_TYPES names types that are not configured: {unknown}"
            )
        return self

    @property
    def blob_url(self) -> str:
        """The blob store's URL: BLOB_URL, or else the S3 bucket of S3_BUCKET."""
        return self.blob.url or f"s3://{self.s3.bucket}"

    @property
    def deployment(self) -> str:
        """The deployment's name: DEPLOYMENT_NAME, or else made from where its PostgreSQL
        database and S3 bucket are."""
        if self.deployment_name is not None:
            return self.deployment_name
        database = urlsplit(self.database.url)
        where = f"{database.hostname or 'localhost'}:{database.port or 5432}"
        return f"{where}{database.path or '/'}+{self.s3.endpoint}/{self.s3.bucket}"

    @property
    def event_namespace(self) -> str:
        """What this deployment's announcements carry and its channel is named by: the
        Redis database number and the deployment's name."""
        return f"{_redis_database(self.redis.url)}:{self.deployment}"


def _redis_database(url: str) -> int:
    """The database number a Redis URL selects: its path (redis://host/3) or ?db=3."""
    parts = urlsplit(url)
    number = parse_qs(parts.query).get("db", [parts.path.strip("/") or "0"])[0]
    return int(number) if number.isdigit() else 0


_SECTION_PREFIX: dict[type[BaseSettings], str] = {
    Settings: "",
    DatabaseSettings: "DATABASE_",
    RedisSettings: "REDIS_",
    S3Settings: "S3_",
    BlobSettings: "BLOB_",
    ApiSettings: "",
    RateSettings: "RATE_LIMIT_",
    EmbeddingSettings: "EMBEDDING_",
    IndexSettings: "INDEX_",
    InteractionSettings: "",
    RankingSettings: "RANKING_",
    CollaborativeSettings: "COLLABORATIVE_",
    ExperimentSettings: "EXPERIMENT_",
    EventSettings: "EVENTS_",
}


def load_settings(**overrides: Any) -> Settings:
    """Read the environment; raise ConfigError naming each bad variable."""
    sections: dict[str, Any] = {}
    problems: list[str] = []
    for name, field in Settings.model_fields.items():
        section = field.annotation
        if name in overrides:
            sections[name] = overrides[name]
            continue
        if not (isinstance(section, type) and issubclass(section, _Section)):
            continue
        try:
            sections[name] = section()
        except ValidationError as exc:
            problems.extend(_describe(exc, _SECTION_PREFIX[section]))
    try:
        settings = Settings(**sections)
    except ValidationError as exc:
        problems.extend(_describe(exc, ""))
    else:
        problems.extend(_production_problems(settings))
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return settings


# Credentials this project ships for local use (devstack, docker-compose.yml): fine on a
# laptop, never in production.
DEFAULT_SECRETS = frozenset({"recs-local-secret", "recs-minio-secret", "recs", "postgres"})


def _production_problems(settings: Settings) -> list[str]:
    if settings.environment != "production":
        return []
    problems = []
    if settings.s3.secret_key.get_secret_value() in DEFAULT_SECRETS:
        problems.append("S3_SECRET_KEY: the shipped default is refused in production")
    if urlsplit(settings.database.url).password in DEFAULT_SECRETS:
        problems.append("DATABASE_URL: the shipped default password is refused in production")
    if settings.api.admin_api_key is None:
        problems.append("ADMIN_API_KEY: required in production")
    return problems


def _describe(exc: ValidationError, prefix: str) -> list[str]:
    described = []
    for error in exc.errors():
        variable = (prefix + str(error["loc"][0])).upper() if error["loc"] else prefix.rstrip("_")
        described.append(f"{variable}: {error['msg']}" if variable else str(error["msg"]))
    return described


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
