"""Request rate and latency from the API process's own metrics (service/api/metrics.py's
`http_request_duration_seconds`), as the Overview shows them: the console's own pages and
/metrics left out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

METRIC = "http_request_duration_seconds"
LEFT_OUT = ("/console", "/metrics")


@dataclass(frozen=True)
class Requests:
    total: int
    per_second: float
    mean_ms: float | None
    # Upper bounds of the histogram buckets holding the median and the 99th percentile.
    p50_ms: float | None
    p99_ms: float | None


@dataclass
class RequestFigures:
    """Reads the histogram; the rate is over the time since the last reading (or start)."""

    registry: CollectorRegistry
    _last: tuple[float, int] = field(default_factory=lambda: (time.monotonic(), 0))

    def read(self) -> Requests:
        buckets: dict[float, int] = {}
        count, seconds = 0, 0.0
        for metric in self.registry.collect():
            if metric.name != METRIC:
                continue
            for sample in metric.samples:
                if sample.labels.get("route", "").startswith(LEFT_OUT):
                    continue
                if sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0) + int(sample.value)
                elif sample.name.endswith("_count"):
                    count += int(sample.value)
                elif sample.name.endswith("_sum"):
                    seconds += sample.value
        now = time.monotonic()
        then, before = self._last
        rate = (count - before) / (now - then) if now > then else 0.0
        self._last = (now, count)
        return Requests(
            total=count,
            per_second=rate,
            mean_ms=1000 * seconds / count if count else None,
            p50_ms=_quantile(buckets, count, 0.5),
            p99_ms=_quantile(buckets, count, 0.99),
        )


def _quantile(buckets: dict[float, int], count: int, q: float) -> float | None:
    """The upper bound of the first bucket holding the q-th request (cumulative counts)."""
    if not count:
        return None
    for bound in sorted(buckets):
        if buckets[bound] >= q * count:
            return 1000 * bound
    return None
