"""Spans of every service in this process, caught by the OpenTelemetry SDK's in-memory exporter
(the services export nothing of their own in tests: no OTLP endpoint is configured)."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from risingstars.kit import tracing


@pytest.fixture(scope="session")
def _exporter() -> InMemorySpanExporter:
    # The services install the provider from their entry points (kit.tracing.setup); in tests
    # nothing has, or an earlier test did: either way spans go to this exporter too.
    provider = tracing.setup("tests", {})
    assert isinstance(trace.get_tracer_provider(), TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(_exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    _exporter.clear()
    return _exporter
