"""The processor's Prometheus metrics, served on /metrics beside the kit's HTTP metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

OUTCOMES = (
    "processed",
    "reused",
    "rejected",
    "retried",
    "failed",
    "handed_back",
    "malformed",
    "no_space",
)

JOBS = Counter("processor_jobs_total", "Job attempts finished, by outcome", ["outcome"])
JOB_SECONDS = Histogram(
    "processor_job_duration_seconds",
    "One job attempt, from receiving the message to its event published and message settled",
    ["outcome"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600),
)
FFMPEG_SECONDS = Histogram(
    "processor_ffmpeg_duration_seconds",
    "Wall time of the encoding ffmpeg pass",
    buckets=(0.5, 1, 2.5, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600),
)
REALTIME_FACTOR = Histogram(
    "processor_realtime_factor",
    "Seconds of output video produced per second of ffmpeg wall time",
    buckets=(0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24),
)
QUEUE_WAIT = Histogram(
    "processor_queue_wait_seconds",
    "Time a job waited in the queue before its first delivery (now - SentTimestamp)",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
IN_FLIGHT = Gauge("processor_jobs_in_flight", "Jobs being processed by this worker")
# Utilisation is in flight / workers.
WORKERS = Gauge("processor_workers", "Jobs this worker may run at once (CONCURRENCY)")
RECEIVE_ERRORS = Counter("processor_receive_errors_total", "Failed polls of the jobs queue")

for _outcome in OUTCOMES:
    JOBS.labels(_outcome)
