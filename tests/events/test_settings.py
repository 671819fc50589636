"""How EVENTS_* settings become a Kafka client's: brokers, TLS and SASL; and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from common.settings import EventSettings
from storage.bus.kafka import client_config


def test_tls_and_sasl_reach_the_kafka_client() -> None:
    settings = EventSettings(
        url="kafka+ssl://a.example:9093,b.example:9093",
        sasl_username="recs",
        sasl_password="s3cret",
        sasl_mechanism="SCRAM-SHA-512",
        ssl_ca_file=Path("/etc/ca.pem"),
    )
    assert client_config(settings) == {
        "bootstrap.servers": "a.example:9093,b.example:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "recs",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/ca.pem",
    }
    assert client_config(EventSettings(url="kafka://k:9092"))["security.protocol"] == "PLAINTEXT"
    assert client_config(EventSettings(url="kafka+ssl://k:9093"))["security.protocol"] == "SSL"
    plain = EventSettings(url="kafka://k:9092", sasl_username="u", sasl_password="p")
    assert client_config(plain)["security.protocol"] == "SASL_PLAINTEXT"


@pytest.mark.parametrize(
    "fields",
    [
        {"url": "amqp://rabbit:5672"},
        {"url": "kafka://k:9092", "sasl_username": "only-a-name"},
        {"prefix": "has space"},
    ],
)
def test_a_bad_events_setting_is_refused(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        EventSettings(**fields)  # type: ignore[arg-type]


def test_topics_are_named_by_the_prefix() -> None:
    assert EventSettings(prefix="shop").topic("dead") == "shop.dead"
