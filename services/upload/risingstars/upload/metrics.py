"""The upload service's own metrics (HTTP metrics come from the kit)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

UPLOADS = Counter(
    "upload_uploads_total",
    "Uploads finished, by path (stream, direct) and outcome (accepted, rejected, aborted, failed)",
    ["path", "outcome", "reason"],
)
BYTES_INGESTED = Counter(
    "upload_bytes_ingested_total", "Video bytes received through the streaming upload"
)
UPLOAD_DURATION = Histogram(
    "upload_duration_seconds",
    "Time from the start of an upload request to its answer, by outcome",
    ["outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
)
BUFFERS_IN_USE = Gauge(
    "upload_part_buffers_in_use", "Part buffers held by streaming uploads (the pool is bounded)"
)
OUTBOX_BACKLOG = Gauge("upload_outbox_backlog", "Outbox messages not yet delivered")
OUTBOX_PUBLISHED = Counter(
    "upload_outbox_published_total", "Outbox messages delivered, by who sent them", ["sender"]
)
VOTES = Counter("upload_votes_total", "Vote requests, by result", ["result"])
EVENTS = Counter(
    "upload_events_consumed_total",
    "Processor events consumed, by type and result",
    ["type", "result"],
)
