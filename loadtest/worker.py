"""The worker scenario: jobs injected straight into a jobs queue, in the real message format
(`risingstars.jobs`), for a processor started with CONCURRENCY = 1, 2 and 4, on 50 MB and 100 MB
2560×1440 inputs. Figures: videos/min, mean service time (the processor's own histogram), and
the backlog over time. Local stacks only (it needs the emulated S3 and SQS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psutil

from loadtest import media
from loadtest.sampler import Sampler
from loadtest.stack import ROOT, moto_client
from risingstars.dev import infra
from risingstars.jobs import Job, encode, parse_event
from risingstars.upload import storage


def _metric(port: int, name: str, outcome: str = "processed") -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(f'{name}{{outcome="{outcome}"}}'):
            return float(line.split()[-1])
    return 0.0


def _processor(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "risingstars.processor"],
        env={**os.environ, **env, "PORT": str(port)},
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    out.close()

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    infra.wait_until(ready, 60, "processor", proc)
    return proc


def one(ctx, sqs, s3, res, source: bytes, mb: int, concurrency: int, jobs: int, timeout: float):
    name = f"worker-{mb}mb-c{concurrency}"
    out = ctx.out / name
    out.mkdir(parents=True, exist_ok=True)
    port = infra.free_port()
    env = {
        **infra.AWS_DUMMY_ENV,
        "AWS_ENDPOINT_URL": ctx.stack.moto_url(),
        "S3_BUCKET": res.bucket,
        "JOBS_QUEUE_URL": res.jobs_queue_url,
        "EVENTS_QUEUE_URL": res.events_queue_url,
        "CONCURRENCY": str(concurrency),
        "RECEIVE_WAIT_SECONDS": "1",
        "DRAIN_SECONDS": "0",
        "SHUTDOWN_TIMEOUT_SECONDS": "10",  # a job still running at the end is handed back
        "LOG_LEVEL": "warning",
    }
    proc = _processor(env, port, out / "processor.log")
    try:
        return _measure(ctx, sqs, s3, res, source, proc, port, out, mb, concurrency, jobs, timeout)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _measure(ctx, sqs, s3, res, source, proc, port, out, mb, concurrency, jobs, timeout):
    name = out.name

    def processes() -> dict[int, str]:
        try:
            p = psutil.Process(proc.pid)
            return {c.pid: "processor" for c in [p, *p.children(recursive=True)]}
        except psutil.Error:
            return {}

    ids = [str(uuid.uuid4()) for _ in range(jobs)]
    for video_id in ids:
        # One plain PUT each: a copy of a multipart object keeps a composite checksum that the
        # processor's download then refuses (FlexibleChecksumError) on moto.
        s3.put_object(Bucket=res.bucket, Key=storage.original_key(video_id), Body=source)
    spec = {"name": name, "kind": "worker", "mb": mb, "concurrency": concurrency, "jobs": jobs}
    (out / "phase.json").write_text(json.dumps(spec, indent=1))
    ctx.log(f"phase {name}: {jobs} jobs of {mb} MB, processor CONCURRENCY={concurrency}")
    before = (
        _metric(port, "processor_job_duration_seconds_sum"),
        _metric(port, "processor_job_duration_seconds_count"),
    )
    done: list[dict[str, Any]] = []
    with Sampler(out, processes, {"jobs": res.jobs_queue_url}):
        started = time.time()
        (out / "started").write_text(f"{started:.3f}\n")
        for i in range(0, jobs, 10):
            entries = [
                {
                    "Id": str(n),
                    "MessageBody": encode(
                        Job(
                            video_id=v,
                            source_key=storage.original_key(v),
                            processed_key=storage.processed_key(v),
                            thumbnail_key=storage.thumbnail_key(v),
                        )
                    ),
                }
                for n, v in enumerate(ids[i : i + 10])
            ]
            sqs.send_message_batch(QueueUrl=res.jobs_queue_url, Entries=entries)
        deadline = time.monotonic() + timeout
        while len(done) < jobs and time.monotonic() < deadline:
            got = sqs.receive_message(
                QueueUrl=res.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            for m in got:
                event = parse_event(m["Body"])
                done.append({"time": time.time() - started, "type": event.type})
                sqs.delete_message(QueueUrl=res.events_queue_url, ReceiptHandle=m["ReceiptHandle"])
        total = _metric(port, "processor_job_duration_seconds_sum") - before[0]
        count = _metric(port, "processor_job_duration_seconds_count") - before[1]
    processed = [d for d in done if d["type"] == "processed"]
    wall = max((d["time"] for d in done), default=timeout)
    result = {
        **spec,
        "processed": len(processed),
        "failed": len(done) - len(processed),
        "lost": jobs - len(done),
        "wall_s": wall,
        "videos_per_min": 60 * len(processed) / wall if processed else 0.0,
        "mean_service_s": total / count if count else None,
        "events": done,
    }
    (out / "worker.json").write_text(json.dumps(result, indent=1))
    ctx.log(
        f"  {len(processed)}/{jobs} processed in {wall:.0f} s: "
        f"{result['videos_per_min']:.1f} videos/min, mean service "
        f"{result['mean_service_s'] or 0:.1f} s"
    )
    return result


def run(ctx, args) -> list[dict[str, Any]]:
    moto = ctx.stack.moto_url()
    if moto is None:
        ctx.log("worker scenario skipped: it needs the local stack's emulated S3 and SQS")
        return []
    if args.pause_processor:
        ctx.stack.pause_processor()  # the stack's own processor must not take these CPUs
    res = infra.create_aws_resources(moto, "loadtest-worker", max_receive_count=5)
    s3, sqs = moto_client("s3", moto), moto_client("sqs", moto)
    results = []
    for mb in args.worker_sizes:
        source = media.worker_input(mb, Path(args.cache)).read_bytes()
        for concurrency in args.worker_concurrency:
            jobs = max(2, args.worker_jobs * concurrency)
            results.append(
                one(ctx, sqs, s3, res, source, mb, concurrency, jobs, args.worker_timeout)
            )
    return results
