"""Assignment by hash, and the params a variant may change."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.errors import InvalidInput
from common.models import Experiment, Variant
from experiments.design import Design, bucket, parse_params


def experiment(*weights: float, stopped: tuple[str, ...] = ()) -> Experiment:
    names = ["control", *(f"v{n}" for n in range(1, len(weights)))]
    return Experiment(
        experiment_id="e",
        description=None,
        variants=[
            Variant(name=n, weight=w, params={}, control=n == "control", active=n not in stopped)
            for n, w in zip(names, weights, strict=True)
        ],
        active=True,
        guardrail=False,
        created_at=datetime.now(UTC),
    )


def test_assignment_follows_the_weights_over_100000_users() -> None:
    design = Design.of(experiment(1, 2, 7), salt="s1")
    counts = {"control": 0, "v1": 0, "v2": 0}
    for n in range(100_000):
        counts[design.assigned(f"user-{n}").name] += 1
    # Binomial spread at 100,000 users is at most 0.16 points; allow 0.6.
    assert abs(counts["control"] / 100_000 - 0.1) < 0.006
    assert abs(counts["v1"] / 100_000 - 0.2) < 0.006
    assert abs(counts["v2"] / 100_000 - 0.7) < 0.006


def test_assignment_is_sticky_and_the_same_in_every_process() -> None:
    first, second = Design.of(experiment(1, 1), "salt"), Design.of(experiment(1, 1), "salt")
    users = [f"u{n}" for n in range(1_000)]
    assert [first.assigned(u).name for u in users] == [second.assigned(u).name for u in users]
    assert [first.assigned(u).name for u in users] == [first.assigned(u).name for u in users]


def test_each_experiments_salt_draws_its_own_split() -> None:
    users = [f"u{n}" for n in range(4_000)]
    a, b = Design.of(experiment(1, 1), "one"), Design.of(experiment(1, 1), "two")
    both = sum(a.assigned(u).name == "v1" and b.assigned(u).name == "v1" for u in users)
    # Independent halves share about a quarter of the users, not half of them.
    assert abs(both / len(users) - 0.25) < 0.03
    assert 0 <= bucket("one", "u1") < 1


def test_a_stopped_variants_users_get_control_and_are_not_counted() -> None:
    design = Design.of(experiment(1, 1, stopped=("v1",)), "salt")
    users = [f"u{n}" for n in range(200)]
    of_v1 = [u for u in users if design.assigned(u).name == "v1"]
    assert of_v1
    for user in of_v1:
        assert design.serves(user) == (design.control, False)
    other = next(u for u in users if design.assigned(u).name == "control")
    assert design.serves(other) == (design.control, True)


def test_params_take_ranking_settings_strategy_and_a_version() -> None:
    parsed = parse_params(
        {"mmr_lambda": 0.7, "max_per_category": 2, "content_weight": 0, "strategy": "popular"}
    )
    assert parsed.ranking == {"mmr_lambda": 0.7, "max_per_category": 2, "content_weight": 0.0}
    assert parsed.strategy == "popular" and parsed.index_version is None
    assert parse_params({"index_version": 3}).index_version == 3


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"mmr_lamda": 0.5}, "mmr_lamda"),
        ({"mmr_lambda": 2}, "mmr_lambda"),
        ({"content_weight": -1}, "content_weight"),
        ({"strategy": "random"}, "strategy"),
        ({"index_version": 0}, "index_version"),
        ({"index_version": "3"}, "index_version"),
        ({"content_weight": float("inf")}, "content_weight"),
    ],
)
def test_bad_params_are_refused_by_name(params: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_params(params, "variants[1].params")
    assert named in caught.value.message
    assert caught.value.message.startswith("variants[1].params")
