"""The upload service's own metrics (HTTP metrics come from the kit)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

UPLOADS = Counter(
    "upload_uploads_total",
    "Uploads finished, by path (stream, direct, tus) and outcome (accepted, rejected, aborted, "
    "failed)",
    ["path", "outcome", "reason"],
)
BYTES_INGESTED = Counter(
    "upload_bytes_ingested_total",
    "Video bytes received, by path (stream and tus: as they arrive; direct: the completed file)",
    ["path"],
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
SPILLED_BYTES = Counter(
    "upload_spilled_bytes_total", "Upload bytes written to the spill directory (memory was full)"
)
SPILL_BYTES_IN_USE = Gauge(
    "upload_spill_bytes_in_use", "Bytes of parts held in the spill directory right now"
)
UPLOADS_WAITING = Gauge(
    "upload_uploads_waiting", "Streaming uploads waiting for room for their next part"
)
ADMISSION_WAIT = Histogram(
    "upload_admission_wait_seconds",
    "How long new uploads (streamed, tus requests) waited for room for their first part",
    buckets=(0.01, 0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
)
ADMISSION_WAITING = Gauge(
    "upload_admission_waiting", "New uploads waiting for room for their first part right now"
)
ADMISSIONS_REFUSED = Counter(
    "upload_admissions_refused_total",
    "New uploads refused (503 busy) after waiting UPLOAD_ADMISSION_WAIT_SECONDS for room",
)
IDLE_ABORTED = Counter(
    "upload_idle_aborted_total", "Streaming uploads aborted because the client sent nothing"
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

# The pipeline (queue_gauges.py, events.py, outbox.py).
JOBS_QUEUE = Gauge("upload_jobs_queue_messages", "Messages in the jobs queue, by state", ["state"])
OLDEST_WAITING = Gauge(
    "upload_jobs_queue_oldest_age_seconds",
    "How long the oldest video still waiting for its processing to end has waited (0: none)",
)
DEAD_LETTERS = Gauge("upload_dead_letter_messages", "Messages in the jobs' dead-letter queue")
TIME_TO_PLAYABLE = Histogram(
    "upload_time_to_playable_seconds",
    "From a video's upload being accepted to its processed event recorded",
    buckets=(5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1200, 1800, 2700, 3600),
)
VIDEOS = Counter(
    "upload_videos_total",
    "Videos by what happened to them (accepted, processed, rejected, failed); reason: the "
    "processor's code for rejected and failed ones",
    ["event", "reason"],
)
for _state in ("visible", "in_flight"):
    JOBS_QUEUE.labels(_state)
for _event in ("accepted", "processed"):
    VIDEOS.labels(_event, "")
for _path in ("stream", "direct", "tus"):
    BYTES_INGESTED.labels(_path)
