"""Traces across processes (OpenTelemetry): a request, the Celery tasks it queues, a build's
stages and the events that announce them appear as one trace.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set: then `configure` installs the SDK with an OTLP
exporter (HTTP) for this process, under OTEL_SERVICE_NAME or the name given. Unset, the
OpenTelemetry API stays its no-op self: `span` costs a context manager that does nothing,
and `traceparent` returns None, so nothing is carried.

The context travels as W3C `traceparent` text: in a Celery task's headers, in an event's
`traceparent` (the outbox keeps it with the event; a Kafka header or a stream field carries
it), and from an incoming event into the work it causes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry import context, propagate, trace

_configured = False


def enabled() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def configure(service: str) -> bool:
    """Install the SDK and the OTLP exporter for this process, once, where an endpoint is
    set; whether tracing is on."""
    global _configured
    if _configured or not enabled():
        return _configured
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or service
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True
    return True


def shutdown() -> None:
    """Send what is buffered (at a process's end)."""
    provider = trace.get_tracer_provider()
    stop = getattr(provider, "shutdown", None)
    if stop is not None:
        stop()


@contextmanager
def span(
    name: str, traceparent: str | None = None, **attributes: str | int | float
) -> Iterator[None]:
    """A span for a piece of work, the child of `traceparent` where one came with it (a task's
    header, an event), else of the current span."""
    if not _configured:
        yield
        return
    parent = propagate.extract({"traceparent": traceparent}) if traceparent else None
    tracer = trace.get_tracer("recs")
    with tracer.start_as_current_span(name, context=parent, attributes=attributes or None):
        yield


def on() -> bool:
    """Whether this process traces (checked before any tracing work, so that none is done
    where it does not)."""
    return _configured


@contextmanager
def server_span(method: str, traceparent: str | None) -> Iterator[Callable[[str, int], None]]:
    """The span of one HTTP request, continuing the caller's trace; the block calls what it
    yields with the route template and status once they are known."""
    parent = propagate.extract({"traceparent": traceparent}) if traceparent else None
    tracer = trace.get_tracer("recs")
    with tracer.start_as_current_span(
        f"HTTP {method}", context=parent, kind=trace.SpanKind.SERVER
    ) as current:

        def named(route: str, status: int) -> None:
            current.update_name(f"{method} {route}")
            current.set_attribute("http.route", route)
            current.set_attribute("http.response.status_code", status)

        yield named


def task_headers() -> dict[str, str]:
    """Headers that carry the current trace into a Celery task; none where tracing is off."""
    mark = traceparent()
    return {"traceparent": mark} if mark else {}


def traceparent() -> str | None:
    """The current span's context as W3C `traceparent` text; None where tracing is off or
    no span is current."""
    if not _configured:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def continued(traceparent: str | None) -> Iterator[None]:
    """Make `traceparent` the current context (work done for a message that carried it)."""
    if not _configured or not traceparent:
        yield
        return
    token = context.attach(propagate.extract({"traceparent": traceparent}))
    try:
        yield
    finally:
        context.detach(token)


class Opened:
    """A span begun and made current by `begin`, until `end` (Celery's task signals come in
    pairs, not around a block)."""

    def __init__(self, span: trace.Span, token: object) -> None:
        self.span, self.token = span, token


def begin(name: str, traceparent: str | None = None) -> Opened | None:
    """Start a span (the child of `traceparent` if given) and make it current."""
    if not _configured:
        return None
    parent = propagate.extract({"traceparent": traceparent}) if traceparent else None
    span = trace.get_tracer("recs").start_span(name, context=parent)
    token = context.attach(trace.set_span_in_context(span))
    return Opened(span, token)


def end(opened: Opened | None) -> None:
    if opened is None:
        return
    context.detach(opened.token)  # type: ignore[arg-type]
    opened.span.end()


class Stages:
    """One span per stage of a long piece of work (a build), each ending where the next
    begins; the children of the span current when the first began."""

    def __init__(self) -> None:
        self._current: trace.Span | None = None
        self._parent: context.Context | None = None

    def enter(self, stage: str) -> None:
        if not _configured:
            return
        if self._parent is None:
            self._parent = context.get_current()
        self.close()
        self._current = trace.get_tracer("recs").start_span(f"stage {stage}", context=self._parent)

    def close(self) -> None:
        if self._current is not None:
            self._current.end()
            self._current = None
