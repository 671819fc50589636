"""Per-variant results and the test against control.

The unit is the user, not the impression: one user's impressions are not independent (a
user who likes what they see clicks many of them), so a test over impressions would count
one enthusiast many times and find differences that are not there. Each user's outcome is
whether they converted at least once; variants compare by a two-sided two-proportion z-test
on those outcomes (pooled variance), with Wilson intervals for each rate and a Wald interval
for the difference. Users are many and independent by assignment, so the normal
approximation holds once each side has a few dozen users and events.

That p-value is valid for one look at the data. The guardrail looks again at every tick, and
a fixed-level test repeated that often finds a difference in equal variants far more often
than its level. It acts on an always-valid p-value instead: the mixture sequential
probability ratio test of Johari, Pekelis and Walsh ("Always Valid Inference", 2017), whose
chance of ever falling below alpha, however often it is looked at, is at most alpha.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054
METHOD = "two-sided two-proportion z-test on per-user conversion (pooled variance)"


@dataclass(frozen=True)
class Counts:
    users: int = 0
    impressions: int = 0
    clicks: int = 0
    converted_users: int = 0


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) for no trials."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Comparison:
    lift: float | None
    difference: float
    difference_ci95: tuple[float, float]
    z: float
    p_value: float

    def significant(self, alpha: float) -> bool:
        return self.p_value < alpha


def compare(variant: Counts, control: Counts) -> Comparison | None:
    """Variant against control on converted users; None while either has no users."""
    n1, n0 = variant.users, control.users
    if n1 == 0 or n0 == 0:
        return None
    p1, p0 = variant.converted_users / n1, control.converted_users / n0
    pooled = (variant.converted_users + control.converted_users) / (n1 + n0)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    difference = p1 - p0
    if spread == 0:
        # Both rates 0 or both 1: no evidence of a difference.
        z, p_value = 0.0, 1.0
    else:
        z = difference / spread
        p_value = math.erfc(abs(z) / math.sqrt(2))
    wald = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    return Comparison(
        lift=difference / p0 if p0 > 0 else None,
        difference=difference,
        difference_ci95=(difference - Z95 * wald, difference + Z95 * wald),
        z=z,
        p_value=p_value,
    )


# The mixture's spread of effects, relative to the pooled conversion rate: the guardrail is
# most sensitive to changes of about this fraction.
MIXTURE_RELATIVE_SCALE = 0.2


def always_valid_p(variant: Counts, control: Counts) -> float | None:
    """mSPRT p-value of the difference in per-user conversion (normal mixture over the
    effect, with the effect's estimated variance); None while either side has no users."""
    n1, n0 = variant.users, control.users
    if n1 == 0 or n0 == 0:
        return None
    p1, p0 = variant.converted_users / n1, control.converted_users / n0
    variance = p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0
    if variance == 0:
        return 1.0
    pooled = (variant.converted_users + control.converted_users) / (n1 + n0)
    tau2 = (MIXTURE_RELATIVE_SCALE * max(pooled, 1 / (n1 + n0))) ** 2
    difference = p1 - p0
    log_ratio = 0.5 * math.log(variance / (variance + tau2)) + (
        tau2 * difference * difference / (2 * variance * (variance + tau2))
    )
    return min(1.0, math.exp(-log_ratio))
