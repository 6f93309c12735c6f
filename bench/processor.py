"""The processor against bare ffmpeg, on this machine, with moto's S3 + SQS server.

- `processor.overhead_ratio`: one job through the worker (its own job-duration metric: from
  receiving the message to the event published and the message deleted) divided by the bare
  ffmpeg command the worker runs for it, on the same local input; the median of the ratios of
  back-to-back pairs. Wall time on a shared machine is noisy, so two steadier companions:
  `overhead_ratio_cpu` (CPU seconds of the job, ffmpeg and this process, over bare ffmpeg's) and
  `overhead_ratio_in_job` (the job's wall time over its own ffmpeg pass).
- the client's worker scenario: jobs injected straight into the queue, 2560x1440 inputs of
  ~50 MB and ~100 MB (40 s, noisy high-bitrate test pattern with audio, CABAC like a phone's),
  concurrency 1 and 2: videos per minute (first job sent to last event published) and the
  mean service time, each beside its ratio to bare ffmpeg run one video at a time.
- `bare_today_*`: the command of before the issue-15 sweep (veryfast, bicubic, ffmpeg's own
  thread count), run bare in the same run, and `videos_per_min_vs_bare_today_*` against it;
  `videos_per_min_2c_cpu_*`: 120 / the job's CPU seconds, what two idle cores would do (this
  machine is shared, so CPU seconds are the steady figure, wall time is not).

Inputs are generated once and cached in .bench/processor/. BENCH_PROCESSOR_JOBS sets the jobs
per figure (default 4), BENCH_PROCESSOR_PAIRS the overhead pairs (default 5);
BENCH_PROCESSOR_QUICK=1 measures only the 50 MB input at concurrency 1 (1 pair, 2 jobs).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from prometheus_client import REGISTRY

from bench import printer
from risingstars.dev import clips, infra
from risingstars.kit import aws
from risingstars.kit.settings import AWSSettings
from risingstars.processor import media
from risingstars.processor.app import create_app
from risingstars.processor.settings import Settings

CACHE = Path(__file__).resolve().parents[1] / ".bench" / "processor"
INPUTS = {"50mb": "9500k", "100mb": "19M"}  # video bitrate for ~50 MB / ~100 MB in 40 s
SECONDS = 40
QUICK = bool(os.environ.get("BENCH_PROCESSOR_QUICK"))
JOBS = int(os.environ.get("BENCH_PROCESSOR_JOBS", "2" if QUICK else "4"))
PAIRS = int(os.environ.get("BENCH_PROCESSOR_PAIRS", "1" if QUICK else "5"))


say = printer("processor")


def note(text: str) -> None:
    print(f"# {text}", flush=True)


def make_input(name: str) -> Path:
    bitrate = INPUTS[name]
    recipe = functools.partial(
        clips.make_clip,
        seconds=SECONDS,
        size="2560x1440",
        filters="noise=alls=12:allf=t",
        tone=True,
        preset="superfast",
        video=("-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate, "-pix_fmt", "yuv420p"),
        audio=("-c:a", "aac", "-b:a", "128k"),
    )
    return clips.Cache(CACHE, {f"qhd_{name}": recipe}).get(f"qhd_{name}")


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def cpu_seconds() -> float:
    """CPU used so far by this process and its finished children (ffmpeg; moto still runs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# The encoding before the issue-15 sweep, for the baseline beside today's default.
BEFORE_SWEEP = {
    "preset": "veryfast", "crf": 23, "scaler": "bicubic", "threads": 0, "maxrate_kbps": 0
}  # fmt: skip


def bare_ffmpeg(
    ffmpeg: str, source: Path, settings: Settings, scratch: Path, **changes: object
) -> dict:
    """The worker's encoding command, run by hand on a local copy of the input."""
    encoding = dataclasses.replace(media.Encoding.of(settings), **changes)
    command = media.encode_command(
        ffmpeg, source, scratch / "bare.mp4", scratch / "bare.jpg", encoding
    )
    cpu, started = cpu_seconds(), time.perf_counter()
    subprocess.run(command, check=True)
    return {"wall": time.perf_counter() - started, "cpu": cpu_seconds() - cpu}


class Bench:
    def __init__(self, moto_url: str, scratch: Path) -> None:
        self.moto_url = moto_url
        self.scratch = scratch
        self.resources = infra.create_aws_resources(
            moto_url, f"bench{uuid.uuid4().hex[:8]}", max_receive_count=5, visibility_timeout=600
        )

    def settings(self, concurrency: int) -> Settings:
        work = self.scratch / "work"
        work.mkdir(exist_ok=True)
        return Settings(
            s3_bucket=self.resources.bucket,
            jobs_queue_url=self.resources.jobs_queue_url,
            events_queue_url=self.resources.events_queue_url,
            aws_endpoint_url=self.moto_url,
            concurrency=concurrency,
            drain_seconds=0,
            shutdown_timeout_seconds=600,
            receive_wait_seconds=2,  # stopping waits for the current poll
            work_dir=str(work),
        )

    async def upload(self, s3, source: Path) -> str:
        key = f"originals/{source.stem}-{uuid.uuid4().hex[:8]}.mp4"
        await s3.put_object(Bucket=self.resources.bucket, Key=key, Body=source.read_bytes())
        return key

    async def run_jobs(self, sqs, source_key: str, count: int, concurrency: int) -> dict:
        """Send `count` jobs at once to a fresh worker; wall time to the last event published
        and the worker's own per-job durations."""
        settings = self.settings(concurrency)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            sum_before = metric("processor_job_duration_seconds_sum", outcome="processed")
            count_before = metric("processor_job_duration_seconds_count", outcome="processed")
            ffmpeg_before = metric("processor_ffmpeg_duration_seconds_sum")
            cpu = cpu_seconds()
            started = time.time()
            for _ in range(count):
                video_id = str(uuid.uuid4())
                job = {
                    "type": "process",
                    "video_id": video_id,
                    "source_key": source_key,
                    "processed_key": f"processed/{video_id}.mp4",
                    "thumbnail_key": f"processed/{video_id}.jpg",
                }
                await sqs.send_message(
                    QueueUrl=self.resources.jobs_queue_url, MessageBody=json.dumps(job)
                )
            published: list[float] = []
            while len(published) < count:
                response = await sqs.receive_message(
                    QueueUrl=self.resources.events_queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=2,
                    MessageSystemAttributeNames=["SentTimestamp"],
                )
                for message in response.get("Messages", []):
                    event = json.loads(message["Body"])
                    if event["type"] != "processed":
                        raise RuntimeError(f"job not processed: {event}")
                    published.append(int(message["Attributes"]["SentTimestamp"]) / 1000)
                    await sqs.delete_message(
                        QueueUrl=self.resources.events_queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                    )
            cpu = cpu_seconds() - cpu
        done = metric("processor_job_duration_seconds_count", outcome="processed") - count_before
        total = metric("processor_job_duration_seconds_sum", outcome="processed") - sum_before
        ffmpeg = metric("processor_ffmpeg_duration_seconds_sum") - ffmpeg_before
        return {
            "cpu": cpu / done,
            "wall": max(published) - started,
            "service": total / done,
            "ffmpeg": ffmpeg / done,
            "jobs": done,
        }


async def scenario(bench: Bench, ffmpeg: str, sources: dict[str, Path]) -> None:
    settings = bench.settings(1)
    async with (
        aws.client("s3", AWSSettings(aws_endpoint_url=bench.moto_url)) as s3,
        aws.client("sqs", AWSSettings(aws_endpoint_url=bench.moto_url)) as sqs,
    ):
        keys = {name: await bench.upload(s3, path) for name, path in sources.items()}

        # Overhead: worker vs bare ffmpeg on the ~50 MB input, back to back.
        pairs = []
        for _ in range(PAIRS):
            alone = await asyncio.to_thread(
                bare_ffmpeg, ffmpeg, sources["50mb"], settings, bench.scratch
            )
            pairs.append((alone, await bench.run_jobs(sqs, keys["50mb"], 1, 1)))
        shown = [(round(b["wall"], 2), round(w["service"], 2)) for b, w in pairs]
        note(f"overhead pairs (bare ffmpeg s, worker job s): {shown}")
        say("overhead_ratio", statistics.median(w["service"] / b["wall"] for b, w in pairs))
        say("overhead_ratio_cpu", statistics.median(w["cpu"] / b["cpu"] for b, w in pairs))
        say(
            "overhead_ratio_in_job", statistics.median(w["service"] / w["ffmpeg"] for _, w in pairs)
        )
        bare = {"50mb": statistics.median(b["wall"] for b, _ in pairs)}
        bare_cpu = {"50mb": statistics.median(b["cpu"] for b, _ in pairs)}
        if not QUICK:
            runs = [
                await asyncio.to_thread(
                    bare_ffmpeg, ffmpeg, sources["100mb"], settings, bench.scratch
                )
                for _ in range(2)
            ]
            bare["100mb"] = statistics.median(r["wall"] for r in runs)
            bare_cpu["100mb"] = statistics.median(r["cpu"] for r in runs)
        for name in bare:
            say(f"bare_ffmpeg_s_{name}", bare[name], "s")
            say(f"bare_ffmpeg_cpu_s_{name}", bare_cpu[name], "s")
        # Today's bare command, run as often as the default's back-to-back pairs.
        before = [
            await asyncio.to_thread(
                bare_ffmpeg, ffmpeg, sources["50mb"], settings, bench.scratch, **BEFORE_SWEEP
            )
            for _ in range(min(PAIRS, 3))
        ]
        bare_today = statistics.median(r["wall"] for r in before)
        say("bare_today_ffmpeg_s_50mb", bare_today, "s")
        say("bare_today_ffmpeg_cpu_s_50mb", statistics.median(r["cpu"] for r in before), "s")
        say("bare_today_videos_per_min_50mb", 60 / bare_today, "videos/min")

        for name in bare:
            for concurrency in (1,) if QUICK else (1, 2):
                result = await bench.run_jobs(sqs, keys[name], JOBS, concurrency)
                per_minute = JOBS / result["wall"] * 60
                tag = f"c{concurrency}_{name}"
                say(f"videos_per_min_{tag}", per_minute, "videos/min")
                # Baseline: bare ffmpeg, one video after another.
                say(f"videos_per_min_vs_bare_ffmpeg_{tag}", per_minute / (60 / bare[name]))
                say(f"service_time_s_{tag}", result["service"], "s")
                say(f"service_time_vs_bare_ffmpeg_{tag}", result["service"] / bare[name])
                say(f"cpu_s_per_video_{tag}", result["cpu"], "s")
                say(f"videos_per_min_2c_cpu_{tag}", 120 / result["cpu"], "videos/min")
                if name == "50mb":
                    say(f"videos_per_min_vs_bare_today_{tag}", per_minute / (60 / bare_today))
                note(f"load average after {tag}: {os.getloadavg()[0]:.2f}")


def run() -> None:
    ffmpeg = media.locate_ffmpeg(os.environ.get("FFMPEG_PATH") or None)
    sources = {name: make_input(name) for name in INPUTS if not QUICK or name == "50mb"}
    for name, path in sources.items():
        note(f"input {name}: {path.stat().st_size / 1e6:.1f} MB, 2560x1440, {SECONDS} s")
    note(f"{JOBS} jobs per throughput figure, {PAIRS} overhead pairs, ffmpeg {ffmpeg}")
    note(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (other work skews wall time)"
    )
    saved = {k: os.environ.get(k) for k in [*infra.AWS_DUMMY_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(infra.AWS_DUMMY_ENV)
    with tempfile.TemporaryDirectory(prefix="bench-processor-") as tmp:
        scratch = Path(tmp)
        moto = infra.start_moto(log_path=scratch / "moto.log")
        try:
            bench = Bench(moto.url, scratch)
            asyncio.run(scenario(bench, ffmpeg, sources))
        finally:
            infra.stop(moto.proc)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        run()
