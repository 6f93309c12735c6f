"""One trace per video: OpenTelemetry spans, with the W3C trace context carried across every hop
a video takes (the request, the outbox row, the SQS messages both ways). FastAPI makes the
requests' spans (`FASTAPI_TELEMETRY`); the helpers here make the messages'.

`setup` installs the SDK's tracer provider once per process. Spans are always made (the logs
carry their ids, so one video's lines can be found in every service), but they leave the process
only when an OTLP endpoint is configured: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), over HTTP/protobuf; the exporter reads the other standard
`OTEL_EXPORTER_OTLP_*` variables itself. `OTEL_SDK_DISABLED=true` turns tracing off.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger("risingstars.kit.tracing")

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
# What a consumer asks SQS for (receive_message's MessageAttributeNames).
MESSAGE_ATTRIBUTES = [TRACEPARENT, TRACESTATE]
_PROPAGATOR = TraceContextTextMapPropagator()
_QUIET = {"/healthz", "/readyz", "/metrics"}


def exporting(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def setup(service: str, environ: Mapping[str, str] | None = None) -> Any:
    """Install the process's tracer provider (once; a second call keeps the first)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporting(env):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        log.info("exporting traces over OTLP", extra={"service": service})
    trace.set_tracer_provider(provider)
    return provider


def tracer() -> trace.Tracer:
    return trace.get_tracer("risingstars")


def ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, None outside one (for the logs)."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def traceparent() -> str | None:
    """The current trace context as a `traceparent` value (to store with a message)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


def context_of(carrier: Mapping[str, str] | str | None) -> otel_context.Context | None:
    """The context a stored `traceparent` (or a carrier of headers) names; None if none."""
    if not carrier:
        return None
    if isinstance(carrier, str):
        carrier = {TRACEPARENT: carrier}
    found = _PROPAGATOR.extract(carrier)
    if not trace.get_current_span(found).get_span_context().is_valid:
        return None
    return found


def annotate(name: str, **attributes: str) -> None:
    """Mark a moment on the current span (and tag it), e.g. `stored` with the video's id."""
    span = trace.get_current_span()
    for key, value in attributes.items():
        span.set_attribute(_attribute(key), value)
    span.add_event(name, {_attribute(k): v for k, v in attributes.items()})


# Attribute names as OpenTelemetry spells them, from the keyword arguments callers use.
_ATTRIBUTE_NAMES = {"video_id": "video.id", "event_type": "event.type"}


def _attribute(key: str) -> str:
    return _ATTRIBUTE_NAMES.get(key, key)


@contextlib.contextmanager
def producer(
    name: str, parent: str | None = None, **attributes: str
) -> Iterator[dict[str, dict[str, str]]]:
    """A span for sending one SQS message, child of `parent` (a stored traceparent) or of the
    current span; yields the message attributes that carry it to the consumer."""
    with tracer().start_as_current_span(
        name,
        context=context_of(parent),
        kind=trace.SpanKind.PRODUCER,
        attributes={_attribute(k): v for k, v in attributes.items()},
    ):
        yield sqs_attributes()


def sqs_attributes() -> dict[str, dict[str, str]]:
    """The current trace context as SQS message attributes (empty outside a span)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return {k: {"DataType": "String", "StringValue": v} for k, v in carrier.items()}


def message_context(message: Mapping[str, Any]) -> otel_context.Context | None:
    """The trace context an SQS message (as received) carries in its attributes."""
    attributes = message.get("MessageAttributes") or {}
    carrier = {
        name: value["StringValue"]
        for name, value in attributes.items()
        if name in MESSAGE_ATTRIBUTES and isinstance(value, dict) and "StringValue" in value
    }
    return context_of(carrier)


@contextlib.contextmanager
def consumer(name: str, message: Mapping[str, Any], **attributes: str) -> Iterator[trace.Span]:
    """A span for handling one received SQS message, in the trace the message carries."""
    with tracer().start_as_current_span(
        name,
        context=message_context(message),
        kind=trace.SpanKind.CONSUMER,
        attributes={_attribute(k): v for k, v in attributes.items()},
    ) as span:
        yield span


def _quiet(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in _QUIET


# FastAPI makes each request's server span itself (named by the route template, continuing the
# caller's `traceparent`), around the whole middleware stack, so the request's log lines carry
# its ids. Probes and /metrics make none; per-dependency spans would only add volume.
FASTAPI_TELEMETRY = {"operation_spans": False, "exclude": _quiet}
