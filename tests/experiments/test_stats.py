"""The test against control, tested: its false-positive rate, its power, its intervals."""

from __future__ import annotations

import numpy as np

from experiments.stats import Counts, always_valid_p, compare, wilson


def trial(rng: np.random.Generator, users: int, rate: float, rate_b: float) -> float:
    """One A/B test on `users` per arm with per-user conversion rates; its p-value."""
    a, b = rng.binomial(users, rate), rng.binomial(users, rate_b)
    found = compare(
        Counts(users=users, converted_users=int(b)), Counts(users=users, converted_users=int(a))
    )
    assert found is not None
    return found.p_value


def test_equal_variants_are_called_different_about_five_times_in_a_hundred() -> None:
    rng = np.random.default_rng(20261201)
    seeds = 4_000
    false = sum(trial(rng, 2_000, 0.1, 0.1) < 0.05 for _ in range(seeds))
    rate = false / seeds
    # At 4,000 seeds the rate's standard error is 0.34 points: 4.0% to 6.0% is +-3 of them.
    assert 0.040 <= rate <= 0.060, rate


def test_a_real_difference_is_found_with_enough_users() -> None:
    rng = np.random.default_rng(7)
    runs = 400
    found = sum(trial(rng, 5_000, 0.10, 0.12) < 0.05 for _ in range(runs))
    # 0.02 apart with a standard error of 0.0063: z = 3.2, so the power is Phi(3.2 - 1.96),
    # 0.89. A test that found nothing, or everything, would fail this.
    assert 0.84 <= found / runs <= 0.94, found / runs


def test_no_users_or_no_spread_mean_no_claim() -> None:
    assert compare(Counts(users=0), Counts(users=10)) is None
    none = compare(Counts(users=10), Counts(users=10))
    assert none is not None and none.p_value == 1.0 and none.lift is None


def test_wilson_intervals_cover_the_rate() -> None:
    low, high = wilson(10, 100)
    assert low < 0.1 < high
    assert abs(low - 0.0552) < 1e-3 and abs(high - 0.1744) < 1e-3
    assert wilson(0, 0) == (0.0, 1.0)
    rng = np.random.default_rng(3)
    hits = sum(
        (lambda lo_hi: lo_hi[0] <= 0.3 <= lo_hi[1])(wilson(int(rng.binomial(400, 0.3)), 400))
        for _ in range(2_000)
    )
    assert 0.93 <= hits / 2_000 <= 0.97


def looked_at(
    rng: np.random.Generator, rate: float, rate_b: float, looks: int
) -> tuple[bool, bool]:
    """One experiment looked at `looks` times as 100 more users join each arm: whether the
    always-valid p-value, and the fixed-level one, ever fell below 0.05."""
    a, b = rng.random(looks * 100) < rate, rng.random(looks * 100) < rate_b
    valid = fixed = False
    for look in range(1, looks + 1):
        n = look * 100
        control = Counts(users=n, converted_users=int(a[:n].sum()))
        variant = Counts(users=n, converted_users=int(b[:n].sum()))
        found = compare(variant, control)
        assert found is not None
        valid |= (always_valid_p(variant, control) or 1.0) < 0.05
        fixed |= found.p_value < 0.05
    return valid, fixed


def test_the_guardrails_p_value_stays_valid_however_often_it_is_looked_at() -> None:
    rng = np.random.default_rng(11)
    runs = [looked_at(rng, 0.1, 0.1, looks=30) for _ in range(300)]
    valid = sum(v for v, _ in runs) / len(runs)
    fixed = sum(f for _, f in runs) / len(runs)
    # Thirty looks at a fixed 5% test stop equal variants about a quarter of the time.
    assert fixed > 0.15, fixed
    assert valid <= 0.05, valid
    # And a real drop is still caught.
    caught = sum(looked_at(rng, 0.1, 0.06, looks=30)[0] for _ in range(50))
    assert caught >= 45
