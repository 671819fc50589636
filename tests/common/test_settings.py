from __future__ import annotations

import pytest

from common.errors import ConfigError
from common.settings import DEFAULT_INTERACTION_WEIGHTS, InteractionSettings, load_settings
from indexing.profiles import type_weights


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "S3_ENDPOINT",
        "S3_BUCKET",
        "S3_ACCESS_KEY",
        "S3_SECRET_KEY",
        "PORT",
        "HOST",
        "ADMIN_API_KEY",
        "EMBEDDING_MODEL",
        "INTERACTION_WEIGHTS",
        "RATING_WEIGHTS",
        "JWT_SECRET",
        "DEPLOYMENT_NAME",
        "ENVIRONMENT",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_bind_locally_on_8000() -> None:
    settings = load_settings()
    assert settings.api.host == "127.0.0.1"
    assert settings.api.port == 8000
    assert settings.interactions.interaction_weights == DEFAULT_INTERACTION_WEIGHTS


def test_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/x")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("S3_ENDPOINT", "http://minio:9000/")
    monkeypatch.setenv("S3_BUCKET", "my-bucket")
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("EMBEDDING_MODEL", "other-model")
    settings = load_settings()
    assert settings.database.url == "postgresql://u@db:5432/x"
    assert settings.redis.url == "redis://cache:6379/2"
    assert settings.s3.endpoint == "minio:9000"
    assert settings.s3.bucket == "my-bucket"
    assert settings.api.port == 9001
    assert settings.embedding.model == "other-model"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://localhost/x"),
        ("REDIS_URL", "http://localhost"),
        ("PORT", "70000"),
        ("PORT", "eighty"),
        ("S3_BUCKET", "Bad_Bucket"),
        ("S3_SECRET_KEY", "short"),
        ("ADMIN_API_KEY", "tooshort"),
        ("INTERACTION_WEIGHTS", '{"view": "heavy"}'),
        ("INTERACTION_WEIGHTS", '{"Bad Name": 1}'),
        ("RATING_WEIGHTS", "[1, 2, 3]"),
        # The nearest items a build keeps must lie within the HNSW beam (128).
        ("INDEX_SIMILAR_DEPTH", "128"),
        ("RATE_LIMIT_READ_PER_MINUTE", "-1"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert variable in str(raised.value)


def test_every_bad_variable_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "0")
    monkeypatch.setenv("REDIS_URL", "nope")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "PORT" in str(raised.value) and "REDIS_URL" in str(raised.value)


def test_interaction_types_are_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERACTION_WEIGHTS", '{"play": 1.5, "skip": -1}')
    interactions = load_settings().interactions
    assert interactions.types == {"play", "skip", "rating"}
    assert type_weights(["skip"], [None], interactions).tolist() == [-1.0]


@pytest.mark.parametrize(
    ("value", "weight"),
    [(1, -2.0), (2, -1.0), (3, 1.0), (4, 2.0), (5, 3.0), (3.5, 1.5), (1.5, -1.5)],
)
def test_rating_weights_interpolate_between_the_five_points(value: float, weight: float) -> None:
    assert type_weights(["rating"], [value], InteractionSettings())[0] == pytest.approx(weight)


def test_each_deployment_has_its_own_event_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:secret@db:5433/shop")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/9")
    monkeypatch.setenv("S3_BUCKET", "shop-index")
    derived = load_settings().event_namespace
    assert derived == "9:db:5433/shop+127.0.0.1:8333/shop-index"
    assert "secret" not in derived
    monkeypatch.setenv("S3_BUCKET", "staging-index")
    assert load_settings().event_namespace != derived  # another bucket, another deployment
    monkeypatch.setenv("REDIS_URL", "unix:///run/redis.sock?db=4")
    monkeypatch.setenv("DEPLOYMENT_NAME", "staging")
    assert load_settings().event_namespace == "4:staging"
    monkeypatch.setenv("DEPLOYMENT_NAME", "no spaces")
    with pytest.raises(ConfigError, match="DEPLOYMENT_NAME"):
        load_settings()


def test_production_refuses_the_shipped_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql://recs:recs@db:5432/recs")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    for variable in ("S3_SECRET_KEY", "DATABASE_URL", "ADMIN_API_KEY"):
        assert variable in str(refused.value)
    monkeypatch.setenv("DATABASE_URL", "postgresql://recs:9f2c1e7a@db:5432/recs")
    monkeypatch.setenv("S3_SECRET_KEY", "a-real-secret-of-ours")
    monkeypatch.setenv("ADMIN_API_KEY", "admin-0123456789abcdef")
    assert load_settings().environment == "production"
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("S3_SECRET_KEY", "recs-local-secret")
    assert load_settings().s3.secret_key.get_secret_value() == "recs-local-secret"


def test_conversions_default_to_the_configured_engaging_types(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().experiment.conversion_types == ["click", "like", "superlike", "purchase"]
    monkeypatch.setenv("INTERACTION_WEIGHTS", '{"play": 1.5, "skip": -1, "finish": 3}')
    assert load_settings().experiment.conversion_types == ["play", "finish"]
    monkeypatch.setenv("EXPERIMENT_CONVERSION_TYPES", '["finish"]')
    assert load_settings().experiment.conversion_types == ["finish"]
    monkeypatch.setenv("EXPERIMENT_CONVERSION_TYPES", '["purchase"]')
    with pytest.raises(ConfigError, match="not configured"):
        load_settings()
