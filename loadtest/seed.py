"""The client's earlier load test (JMeter against the previous system on AWS: ALB + an auto
scaling group of 1–10 instances, FastAPI + Celery + SQS + S3 + RDS), as figures. The prose is in
docs/capacity/seed.md. Its files were 10–15 MB; MB/s is not reported there and is estimated as
req/s × 12.5 MB."""

from __future__ import annotations

FILE_MB = 12.5

# users, duration (s), requests, success %, errors by status, mean / min / max latency (s), req/s
PHASES = [
    {
        "phase": "sanity (5, then 100 users)",
        "users": 105,
        "duration_s": 542,
        "requests": 620,
        "success_pct": 100.0,
        "errors": {},
        "mean_s": 69.4,
        "min_s": 4.09,
        "max_s": 208.0,
        "req_s": 1.14,
    },
    {
        "phase": "100 users",
        "users": 100,
        "duration_s": 481,
        "requests": 510,
        "success_pct": 99.02,
        "errors": {"401": 5},
        "mean_s": 90.5,
        "min_s": 4.10,
        "max_s": 208.05,
        "req_s": 1.06,
    },
    {
        "phase": "200 users",
        "users": 200,
        "duration_s": 468,
        "requests": 657,
        "success_pct": 99.85,
        "errors": {"401": 1},
        "mean_s": 141.4,
        "min_s": 4.01,
        "max_s": 284.69,
        "req_s": 1.41,
    },
    {
        "phase": "300 users",
        "users": 300,
        "duration_s": 471,
        "requests": 692,
        "success_pct": 100.0,
        "errors": {},
        "mean_s": 204.2,
        "min_s": 4.72,
        "max_s": 349.87,
        "req_s": 1.47,
    },
]
for _p in PHASES:
    _p["mb_s"] = _p["req_s"] * FILE_MB

BY_USERS = {p["users"]: p for p in PHASES}
