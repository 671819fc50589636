"""An experiment's results, computed from its stored impressions and the users' interactions;
and the worker's tick, which copies impressions, stores results and applies guardrails.

The API's results route and the worker's tick both call `compute`: what ops read and what
the guardrail acts on are the same figures.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from common.errors import CacheUnavailable
from common.models import Experiment, ExperimentResults, VariantResult
from common.settings import ExperimentSettings
from experiments.stats import METHOD, Counts, always_valid_p, compare, wilson
from storage import events
from storage import experiments as stored

if TYPE_CHECKING:  # the clients come from the caller; storage/ alone calls them
    import asyncpg
    from redis.asyncio import Redis

log = logging.getLogger(__name__)
FLUSH_BATCH = 5_000
# A results request copies at most this many answers' impressions before it answers; the
# worker's tick copies the rest.
FLUSH_ROUNDS = 25


async def drain(pool: asyncpg.Pool, redis: Redis, rounds: int = FLUSH_ROUNDS) -> bool:
    """Copy waiting impressions into PostgreSQL; True if none are left waiting."""
    for _ in range(rounds):
        if await stored.flush(pool, redis, FLUSH_BATCH) < FLUSH_BATCH:
            return True
    return False


def summarise(
    experiment: Experiment,
    counts: dict[str, dict[str, int]],
    served: dict[str, dict[str, int]],
    settings: ExperimentSettings,
    complete: bool,
) -> ExperimentResults:
    """Per-variant figures and each variant's test against control."""
    tallies = {v.name: Counts(**counts.get(v.name, {})) for v in experiment.variants}
    control = next(v for v in experiment.variants if v.control)
    rows = []
    for variant in experiment.variants:
        tally = tallies[variant.name]
        users = tally.users
        row = VariantResult(
            name=variant.name,
            control=variant.control,
            weight=variant.weight,
            active=variant.active,
            users=users,
            impressions=tally.impressions,
            clicks=tally.clicks,
            ctr=tally.clicks / tally.impressions if tally.impressions else 0.0,
            conversions_per_user=tally.clicks / users if users else 0.0,
            converted_users=tally.converted_users,
            conversion_rate=tally.converted_users / users if users else 0.0,
            conversion_rate_ci95=wilson(tally.converted_users, users),
            index_versions=served.get(variant.name, {}),
            stopped_at=variant.stopped_at,
            stop_reason=variant.stop_reason,
        )
        if not variant.control and (found := compare(tally, tallies[control.name])):
            row.lift = found.lift
            row.difference = found.difference
            row.difference_ci95 = found.difference_ci95
            row.z = found.z
            row.p_value = found.p_value
            row.significant = found.significant(settings.alpha)
            row.always_valid_p_value = always_valid_p(tally, tallies[control.name])
        rows.append(row)
    return ExperimentResults(
        experiment_id=experiment.experiment_id,
        active=experiment.active,
        method=METHOD,
        alpha=settings.alpha,
        attribution_hours=settings.attribution_hours,
        conversion_types=list(settings.conversion_types or ()),
        computed_at=datetime.now(UTC),
        complete=complete,
        variants=rows,
    )


async def compute(
    pool: asyncpg.Pool, redis: Redis, settings: ExperimentSettings, experiment: Experiment
) -> ExperimentResults:
    """Results as of now, stored for /metrics. With Redis down, from what was copied
    already (`complete` false)."""
    return await _counted(pool, settings, experiment, await _drained(pool, redis))


async def _drained(pool: asyncpg.Pool, redis: Redis, rounds: int = FLUSH_ROUNDS) -> bool:
    """`drain`, but with Redis down only False: what was copied already still counts."""
    try:
        return await drain(pool, redis, rounds)
    except CacheUnavailable as exc:
        log.warning("results without the impressions still in Redis: %s", exc)
        return False


async def _counted(
    pool: asyncpg.Pool, settings: ExperimentSettings, experiment: Experiment, complete: bool
) -> ExperimentResults:
    """Results from what PostgreSQL holds, stored for /metrics."""
    counts, served = await stored.counts(
        pool, experiment.experiment_id, settings.conversion_types or (), settings.attribution_hours
    )
    results = summarise(experiment, counts, served, settings, complete)
    await stored.save_results(pool, experiment.experiment_id, results.model_dump(mode="json"))
    return results


def worse(result: VariantResult, control: VariantResult, settings: ExperimentSettings) -> bool:
    """What the guardrail stops: below control with an always-valid p-value under alpha
    (checked at every tick, it still errs at most alpha of the time), on enough users."""
    return (
        result.always_valid_p_value is not None
        and result.always_valid_p_value < settings.alpha
        and (result.difference or 0.0) < 0
        and min(result.users, control.users) >= settings.guardrail_min_users
    )


async def tick(
    pool: asyncpg.Pool, redis: Redis, settings: ExperimentSettings, namespace: str
) -> list[str]:
    """Copy impressions, store every running experiment's results, and stop the variants
    their guardrails catch; returns those stopped, as "experiment/variant"."""
    complete = await _drained(pool, redis, rounds=1_000)
    stopped = []
    for experiment, _, _ in await stored.to_serve(pool, stopped=0):
        results = await _counted(pool, settings, experiment, complete)
        if not experiment.guardrail:
            continue
        control = next(r for r in results.variants if r.control)
        for result in results.variants:
            if result.control or not result.active or not worse(result, control, settings):
                continue
            figures = result.model_dump(mode="json")
            reason = (
                f"guardrail: conversion {result.conversion_rate:.4f} against control's "
                f"{control.conversion_rate:.4f}, always-valid p = "
                f"{result.always_valid_p_value:.3g}"
            )
            if await stored.stop_variant(
                pool, experiment.experiment_id, result.name, reason, figures
            ):
                log.warning("stopped %s/%s: %s", experiment.experiment_id, result.name, reason)
                stopped.append(f"{experiment.experiment_id}/{result.name}")
    if stopped:
        try:
            await events.publish(redis, namespace, "experiments_changed")
        except CacheUnavailable:
            log.warning("could not announce the stopped variants; the API finds them by polling")
    return stopped
