"""An experiment's design: its variants, what each one changes, and which one a user gets.

Assignment hashes the user id with the experiment's own salt into [0, 1) and walks the
variants' cumulative weights. Every API process computes the same answer from the stored
experiment alone, and a user keeps their variant for as long as the experiment runs. A salt
per experiment keeps assignments independent across experiments: the users in one test's
treatment are not also the treatment of every other test.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from common.errors import InvalidInput
from common.models import Experiment, VariantIn
from common.settings import RankingSettings

RANKING_KEYS = frozenset(RankingSettings.model_fields)
STRATEGIES = ("hybrid", "popular")
PARAM_KEYS = RANKING_KEYS | {"strategy", "index_version", "scenario"}


@dataclass(frozen=True)
class Params:
    """What a variant changes: ranking settings over the served version's, the strategy,
    the index version that answers (None: the active one), and the scenario whose rules
    replace the request's (None: the request's own)."""

    ranking: dict[str, Any] = field(default_factory=dict)
    strategy: str = "hybrid"
    index_version: int | None = None
    scenario: str | None = None

    def apply(self, served: RankingSettings) -> RankingSettings:
        return served.model_copy(update=self.ranking) if self.ranking else served


DEFAULT = Params()


def parse_params(raw: dict[str, Any], where: str = "params") -> Params:
    """A variant's params, checked: only known keys, each value as its setting allows.
    Raises InvalidInput naming each problem."""
    problems = []
    unknown = sorted(set(raw) - PARAM_KEYS)
    if unknown:
        problems.append(
            (where, f"unknown params {unknown}; known: {sorted(PARAM_KEYS)}"),
        )
    ranking = {k: v for k, v in raw.items() if k in RANKING_KEYS}
    for name, value in ranking.items():
        if isinstance(value, float) and not math.isfinite(value):
            problems.append((f"{where}.{name}", "must be a finite number"))
    if ranking and not problems:
        try:
            checked = RankingSettings(**ranking)
        except ValidationError as exc:
            for error in exc.errors():
                name = ".".join(str(p) for p in error["loc"])
                problems.append((f"{where}.{name}", str(error["msg"])))
        else:
            ranking = {k: getattr(checked, k) for k in ranking}
    strategy = raw.get("strategy", "hybrid")
    if strategy not in STRATEGIES:
        problems.append((f"{where}.strategy", f"must be one of {list(STRATEGIES)}"))
    version = raw.get("index_version")
    if isinstance(version, float) and version.is_integer():
        version = int(version)  # an integer to JSON Schema, as 4227 is
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**63
    ):
        problems.append((f"{where}.index_version", "must be a version number (an integer >= 1)"))
    scenario = raw.get("scenario")
    if scenario is not None and not (isinstance(scenario, str) and 1 <= len(scenario) <= 128):
        problems.append((f"{where}.scenario", "must be a scenario's id (1 to 128 characters)"))
    if problems:
        first_field, first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidInput(
            f"{first_field}: {first}{more}",
            details=[{"field": f, "message": m} for f, m in problems],
        )
    return Params(ranking=ranking, strategy=str(strategy), index_version=version, scenario=scenario)


def check_variants(variants: Sequence[VariantIn]) -> list[Params]:
    """Every variant's params, checked; the first bad one raises InvalidInput."""
    return [parse_params(v.params, f"variants[{n}].params") for n, v in enumerate(variants)]


def bucket(salt: str, user_id: str) -> float:
    """Where a user falls in [0, 1) for one experiment: uniform, and the same everywhere."""
    digest = hashlib.blake2b(f"{salt}\x00{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float
    control: bool
    active: bool
    params: Params


@dataclass(frozen=True)
class Design:
    """A stored experiment, ready to assign users."""

    salt: str
    variants: tuple[Variant, ...]

    @classmethod
    def of(cls, experiment: Experiment, salt: str) -> Design:
        variants = tuple(
            Variant(v.name, v.weight, v.control, v.active, parse_params(v.params))
            for v in experiment.variants
        )
        return cls(salt, variants)

    @property
    def control(self) -> Variant:
        return next(a for a in self.variants if a.control)

    def assigned(self, user_id: str) -> Variant:
        """The variant the user belongs to, by weight (stopped variants included)."""
        point = bucket(self.salt, user_id) * sum(a.weight for a in self.variants)
        for variant in self.variants:
            point -= variant.weight
            if point < 0:
                return variant
        return self.variants[-1]

    def serves(self, user_id: str) -> tuple[Variant, bool]:
        """The variant whose ranking the user gets, and whether their answers count for it.
        A user of a variant the guardrail stopped gets control's ranking, counted nowhere,
        so that control's population stays the one it was assigned."""
        variant = self.assigned(user_id)
        if variant.active:
            return variant, True
        return self.control, False

    @property
    def pinned(self) -> set[int]:
        """Versions that the variants still running pin."""
        return {
            a.params.index_version
            for a in self.variants
            if a.active and a.params.index_version is not None
        }
