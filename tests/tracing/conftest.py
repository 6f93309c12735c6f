"""Spans of every service in this process, caught by the OpenTelemetry SDK's in-memory exporter
(the services export nothing of their own in tests: no OTLP endpoint is configured)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from risingstars.kit import tracing


class _Recorder(InMemorySpanExporter):
    """Keeps spans only while a test of this directory runs: the provider stays installed for
    the rest of the session, and the spans of later tests would pile up for nothing."""

    recording = False

    def export(self, spans):  # type: ignore[no-untyped-def]
        if not self.recording:
            return SpanExportResult.SUCCESS
        return super().export(spans)


@pytest.fixture(scope="session")
def _exporter() -> _Recorder:
    # The services install the provider from their entry points (kit.tracing.setup); in tests
    # nothing has, or an earlier test did: either way spans go to this exporter too.
    provider = tracing.setup("tests", {})
    assert isinstance(trace.get_tracer_provider(), TracerProvider)
    exporter = _Recorder()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(_exporter: _Recorder) -> Iterator[InMemorySpanExporter]:
    _exporter.clear()
    _exporter.recording = True
    yield _exporter
    _exporter.recording = False
    _exporter.clear()
