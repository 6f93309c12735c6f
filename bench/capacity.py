"""Capacity benchmark: the upload paths under slow, stalled and many clients.

The service runs as in a container (`python -m risingstars.upload serve`, uvicorn) against a
throwaway PostgreSQL and moto's S3/SQS server. Every client is a small raw HTTP/1.1 client in
this process; a link-limited one sends through a token bucket (its uplink: time lost waiting
on the far end is never made up, as on a real link). "Straight to S3" means the same client
PUTs the file's 5 MiB parts to presigned UploadPart URLs of a multipart upload this process
creates and completes. Every stored object is deleted as soon as its upload answers, so moto
(which keeps objects in memory) does not slow down as a phase goes on.

- capacity.slow_clients_ratio: median time of SLOW_CLIENTS clients at SLOW_RATE bytes/s each
  uploading a 12 MB file straight to S3 ÷ the same through POST /api/videos/upload (≥ 0.9);
  both groups run at the same time, so each sees the same load of the machine.
- capacity.stalled_ratio: median time of a full-speed 12 MB upload through the service while
  STALLED clients hold uploads they stopped sending mid-file ÷ the same upload alone (≤ 1.5).
- capacity.streamed_ratio_300 / capacity.direct_ratio_300: uploads/s of USERS closed-loop
  full-speed users (USER_UPLOADS uploads of USER_FILE_BYTES each) through POST
  /api/videos/upload, resp. the presigned direct path (/api/videos/uploads...), ÷ the same
  uploads straight to S3 (≥ 0.9); p95 latencies beside them. The storage endpoint (moto)
  runs on a core of its own and everything else (clients, PostgreSQL, the service) on the
  other, as S3 never shares a pod's CPU: both sides of each ratio get the same storage.
- capacity.streamed_ratio_300_shared / capacity.direct_ratio_300_shared: the same with every
  process free to use every core, so the service's CPU competes with the emulator's.
- capacity.upload_rss_mb_300: peak RSS (VmHWM) of a fresh upload process through the
  300-user phases, the larger of the two runs (≤ 175 MB: docs/benchmarks.md, 2026-12-08).
- capacity.streamed_cpu_ratio_300: the upload process's CPU-seconds per MB through the streamed
  phase ÷ moto's CPU-seconds per MB through the straight-to-S3 phase: what our hop costs next to
  the storage endpoint, whatever else the machine runs.

Before every 300-user phase the bucket is emptied and the jobs queue drained: moto scans every
queued message on each SendMessage, so jobs left by earlier phases would slow later ones.

Scaled to fit `make bench ENTRY=capacity` in about 8 minutes on 2 cores: the 300-user phases
use one 8 MB file per user (12 MB files would hold 3.6 GB in moto at once, and every round
takes minutes with moto saturated).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
from aiobotocore.config import AioConfig

from bench import printer
from bench.upload import (
    PART_BYTES,
    Servers,
    Service,
    cpu_seconds,
    empty_bucket,
    make_clip,
    padded,
    servers,
)
from risingstars.dev.tokens import TokenFactory
from risingstars.kit import aws
from risingstars.kit.settings import AWSSettings

MB = 1_000_000
MiB = 1024 * 1024
SLOW_CLIENTS = 100
SLOW_RATE = 130_000  # bytes/s: the seed's per-user rate
SLOW_FILE_BYTES = 12 * MB
STALLED = 50
STALL_AFTER = MiB  # how much of the file a stalled client sends before going quiet
STALLED_RUNS = 5
USERS = 300
USER_UPLOADS = 1
USER_FILE_BYTES = 8 * MB
# 300 uploads in flight need a part each, most of them on disk (the default, 1 GiB, admits
# about 200 at once per process).
SPILL_BYTES = 4 * 1024 * MiB
SETTLE_TIMEOUT = 60


bench = printer("capacity")


# --- a client's uplink and a small HTTP/1.1 client -------------------------------------------


class Link:
    """A token bucket: `rate` bytes/s with at most `burst` bytes of credit (None: full speed)."""

    SLICE = 16 * 1024

    def __init__(self, rate: float | None, burst: int = 64 * 1024) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    async def send(self, writer: asyncio.StreamWriter, data: bytes | memoryview) -> None:
        view = memoryview(data)
        if self.rate is None:
            for start in range(0, len(view), MiB):
                writer.write(view[start : start + MiB])
                await writer.drain()
            return
        for start in range(0, len(view), self.SLICE):
            chunk = view[start : start + self.SLICE]
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens < len(chunk):
                await asyncio.sleep((len(chunk) - self.tokens) / self.rate)
                self.tokens = float(len(chunk))
                self.stamp = time.monotonic()
            self.tokens -= len(chunk)
            writer.write(chunk)
            await writer.drain()


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> dict:
        return json.loads(self.body)


async def request(
    url: str,
    method: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | memoryview = b"",
    parts: tuple[bytes | memoryview, ...] = (),
    link: Link | None = None,
) -> Answer:
    """One request on its own connection; the body is `body` or the concatenation of `parts`."""
    pieces = parts or (body,)
    target = urlsplit(url)
    reader, writer = await asyncio.open_connection(target.hostname, target.port)
    try:
        path = target.path + (f"?{target.query}" if target.query else "")
        lines = [f"{method} {path} HTTP/1.1", f"Host: {target.netloc}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        lines.append(f"Content-Length: {sum(len(p) for p in pieces)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        for piece in pieces:
            await (link or Link(None)).send(writer, piece)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        answer_headers = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name:
                answer_headers[name.strip().lower()] = value.strip()
        length = int(answer_headers.get("content-length", "0"))
        return Answer(status, answer_headers, await reader.readexactly(length) if length else b"")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def form(data: bytes, boundary: str) -> tuple[bytes, bytes]:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nbench\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="video_file"; '
        f'filename="v.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
    ).encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


# --- the three ways to upload a file ---------------------------------------------------------


class Target:
    def __init__(self, base: str, s3, bucket: str, keys: TokenFactory) -> None:
        self.base = base
        self.s3 = s3
        self.bucket = bucket
        self.keys = keys
        self.tokens: dict[int, str] = {}

    def auth(self, user: int) -> dict[str, str]:
        if user not in self.tokens:
            self.tokens[user] = self.keys.token(f"bench-{user}", username=f"u{user}", ttl=7200)
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    async def forget(self, key: str) -> None:
        await self.s3.delete_object(Bucket=self.bucket, Key=key)

    async def streamed(self, user: int, data: bytes, link: Link) -> None:
        boundary = uuid.uuid4().hex
        head, tail = form(data, boundary)
        answer = await request(
            f"{self.base}/api/videos/upload",
            "POST",
            headers={
                **self.auth(user),
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
            parts=(head, data, tail),
            link=link,
        )
        if answer.status != 201:
            raise RuntimeError(f"streamed upload answered {answer.status}: {answer.body[:200]!r}")
        await self.forget(f"originals/{answer.json()['video_id']}.mp4")

    async def _put_parts(self, urls: list[str], data: bytes, link: Link) -> list[str]:
        etags = []
        for number, url in enumerate(urls):
            part = memoryview(data)[number * PART_BYTES : (number + 1) * PART_BYTES]
            answer = await request(url, "PUT", body=part, link=link)
            if answer.status != 200:
                raise RuntimeError(f"UploadPart answered {answer.status}: {answer.body[:200]!r}")
            etags.append(answer.headers["etag"])
        return etags

    async def straight_to_s3(self, user: int, data: bytes, link: Link) -> None:
        key = f"bench/{uuid.uuid4()}.mp4"
        upload_id = (await self.s3.create_multipart_upload(Bucket=self.bucket, Key=key))["UploadId"]
        urls = [
            await self.s3.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "UploadId": upload_id,
                    "PartNumber": n,
                },
            )
            for n in range(1, -(-len(data) // PART_BYTES) + 1)
        ]
        etags = await self._put_parts(urls, data, link)
        await self.s3.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]
            },
        )
        await self.forget(key)

    async def direct(self, user: int, data: bytes, link: Link) -> None:
        created = await request(
            f"{self.base}/api/videos/uploads",
            "POST",
            headers={**self.auth(user), "Content-Type": "application/json"},
            body=json.dumps({"title": "bench", "size": len(data)}).encode(),
        )
        if created.status != 201:
            raise RuntimeError(f"direct create answered {created.status}: {created.body[:200]!r}")
        upload = created.json()
        await self._put_parts([p["url"] for p in upload["parts"]], data, link)
        done = await request(
            f"{self.base}/api/videos/uploads/{upload['upload_id']}/complete",
            "POST",
            headers=self.auth(user),
        )
        if done.status != 201:
            raise RuntimeError(f"direct complete answered {done.status}: {done.body[:200]!r}")
        await self.forget(f"originals/{done.json()['video_id']}.mp4")


Upload = Callable[[int, bytes, Link], Awaitable[None]]


# --- phases ----------------------------------------------------------------------------------


class Phase:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.elapsed = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.latencies, n=20)[-1]


async def closed_loop(
    upload: Upload, users: int, each: int, data: bytes, rate: float | None, *, first: int = 0
) -> Phase:
    """`users` clients (numbered from `first`), each sending `each` uploads back to back on
    its own link."""
    phase = Phase()

    async def user(number: int) -> None:
        link = Link(rate)
        for _ in range(each):
            started = time.perf_counter()
            try:
                await upload(number, data, link)
            except Exception as exc:  # counted, and the user goes on
                phase.errors.append(repr(exc)[:200])
                continue
            phase.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(user(n) for n in range(first, first + users)))
    phase.elapsed = time.perf_counter() - started
    if phase.errors:
        print(f"# {len(phase.errors)} errors, first: {phase.errors[0]}", flush=True)
    return phase


async def metric(base: str, name: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{base}/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


async def settle(base: str) -> None:
    """Wait until the service holds no parts (aborted uploads have been cleaned up)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        if (
            await metric(base, "upload_part_buffers_in_use") == 0
            and await metric(base, "upload_spill_bytes_in_use") == 0
        ):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the service still holds parts")


async def stalled_ratio(target: Target, data: bytes) -> float:
    async def timed() -> float:
        started = time.perf_counter()
        await target.streamed(10_000, data, Link(None))
        return time.perf_counter() - started

    await timed()  # warm-up
    alone = statistics.median([await timed() for _ in range(STALLED_RUNS)])

    boundary = uuid.uuid4().hex
    head, _ = form(data, boundary)
    target_url = urlsplit(target.base)
    stallers = []
    for n in range(STALLED):
        _, writer = await asyncio.open_connection(target_url.hostname, target_url.port)
        token = target.auth(20_000 + n)["Authorization"]
        writer.write(
            (
                f"POST /api/videos/upload HTTP/1.1\r\nHost: bench\r\nAuthorization: {token}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {len(head) + len(data) + 64}\r\n\r\n"
            ).encode()
            + head
            + data[:STALL_AFTER]
        )
        await writer.drain()
        stallers.append(writer)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while await metric(target.base, "upload_spill_bytes_in_use") < (STALLED - 4) * STALL_AFTER:
        if time.monotonic() > deadline:
            raise RuntimeError("the stalled clients were not all taken in")
        await asyncio.sleep(0.2)
    try:
        stalled = statistics.median([await timed() for _ in range(STALLED_RUNS)])
    finally:
        for writer in stallers:
            writer.close()
    await settle(target.base)
    bench("stalled_alone_s", alone, "s")
    bench("stalled_with_50_s", stalled, "s")
    return stalled / alone


# The cores this bench may use, read before any placement narrows its own affinity.
CORES = sorted(os.sched_getaffinity(0))


def place(moto_pid: int, split: bool) -> str:
    """Split: moto on the first core, this process and every other child on the rest.
    Shared: every process on every core. Returns how the run was placed."""
    cores = CORES
    if split and len(cores) < 2:
        return "shared (one core only)"
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        wanted = set(cores)
        if split:
            wanted = {cores[0]} if proc.pid == moto_pid else set(cores[1:])
        with contextlib.suppress(psutil.Error):
            for thread in proc.threads():  # affinity is per thread
                os.sched_setaffinity(thread.id, wanted)
    return "split" if split else "shared"


async def reset_storage(run: Servers, sqs) -> None:
    """Empty the bucket and drain the jobs queue (PurgeQueue is allowed once a minute)."""
    empty_bucket(run.moto_url, run.resources.bucket)
    url = run.resources.jobs_queue_url
    for _ in range(2 * USERS):  # 10 per receive: room for every job of several phases
        got = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = got.get("Messages", [])
        if not messages:
            return
        await sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
    raise RuntimeError("the jobs queue did not drain")


async def users_300(
    env: dict[str, str], log: Path, run: Servers, s3, sqs, data: bytes, *, split: bool
) -> float:
    suffix = "" if split else "_shared"
    with Service(env, log) as service:  # fresh: its peak RSS is this run's
        print(f"# 300-user phases: {place(run.moto_pid, split)}", flush=True)
        target = Target(f"http://127.0.0.1:{service.port}", s3, run.resources.bucket, run.keys)
        await reset_storage(run, sqs)
        moto_before = cpu_seconds(run.moto_pid)
        s3_phase = await closed_loop(target.straight_to_s3, USERS, USER_UPLOADS, data, None)
        moto_cpu = cpu_seconds(run.moto_pid) - moto_before
        await reset_storage(run, sqs)
        service_before = service.cpu_seconds()
        streamed = await closed_loop(target.streamed, USERS, USER_UPLOADS, data, None)
        service_cpu = service.cpu_seconds() - service_before
        await settle(target.base)
        await reset_storage(run, sqs)
        direct = await closed_loop(target.direct, USERS, USER_UPLOADS, data, None)
        rss = service.status("VmHWM")
    place(run.moto_pid, split=False)
    bench(f"s3_uploads_s_300{suffix}", s3_phase.rate, "uploads/s")
    bench(f"s3_p95_s_300{suffix}", s3_phase.p95, "s")
    bench(f"streamed_uploads_s_300{suffix}", streamed.rate, "uploads/s")
    bench(f"streamed_p95_s_300{suffix}", streamed.p95, "s")
    bench(f"streamed_errors_300{suffix}", len(streamed.errors))
    bench(f"streamed_ratio_300{suffix}", streamed.rate / s3_phase.rate)
    bench(f"direct_uploads_s_300{suffix}", direct.rate, "uploads/s")
    bench(f"direct_p95_s_300{suffix}", direct.p95, "s")
    bench(f"direct_errors_300{suffix}", len(direct.errors))
    bench(f"direct_ratio_300{suffix}", direct.rate / s3_phase.rate)
    if not split:
        # Machine-independent: what our hop costs per MB next to what the storage endpoint
        # (moto) costs per MB of the straight-to-S3 phase.
        megabytes = USER_FILE_BYTES / MB
        service_ms = 1000 * service_cpu / (megabytes * len(streamed.latencies))
        moto_ms = 1000 * moto_cpu / (megabytes * len(s3_phase.latencies))
        bench("streamed_service_cpu_ms_per_mb_300", service_ms, "ms/MB")
        bench("s3_moto_cpu_ms_per_mb_300", moto_ms, "ms/MB")
        bench("streamed_cpu_ratio_300", service_ms / moto_ms)
    return rss


async def run_phases(env: dict[str, str], log: Path, run: Servers) -> None:
    moto_url, keys, tmp, bucket = run.moto_url, run.keys, run.tmp, run.resources.bucket
    clip = make_clip(tmp)
    slow_data = padded(clip, SLOW_FILE_BYTES, tmp / "slow.mp4").read_bytes()
    user_data = padded(clip, USER_FILE_BYTES, tmp / "user.mp4").read_bytes()
    # 300 clients connecting at once overflow moto's listen backlog: connections take seconds,
    # which is the emulator's limit, not a failure of the path measured.
    s3_config = aws.client_config(max_pool_connections=USERS, signature_version="s3v4").merge(
        AioConfig(connect_timeout=60)
    )
    settings = AWSSettings(aws_endpoint_url=moto_url)
    async with aws.client("s3", settings, s3_config) as s3, aws.client("sqs", settings) as sqs:
        with Service(env, log) as service:
            target = Target(f"http://127.0.0.1:{service.port}", s3, bucket, keys)
            bench("stalled_ratio", await stalled_ratio(target, slow_data))

            # Both groups at once: the same minutes of a shared machine for each.
            direct, streamed = await asyncio.gather(
                closed_loop(target.straight_to_s3, SLOW_CLIENTS, 1, slow_data, SLOW_RATE),
                closed_loop(target.streamed, SLOW_CLIENTS, 1, slow_data, SLOW_RATE, first=1000),
            )
            pure = SLOW_FILE_BYTES / SLOW_RATE
            bench("slow_pure_transfer_s", pure, "s")
            bench("slow_s3_median_s", statistics.median(direct.latencies), "s")
            bench("slow_streamed_median_s", statistics.median(streamed.latencies), "s")
            bench("slow_streamed_errors", len(streamed.errors))
            bench(
                "slow_clients_ratio",
                statistics.median(direct.latencies) / statistics.median(streamed.latencies),
            )
        rss = [
            await users_300(env, log, run, s3, sqs, user_data, split=split)
            for split in (True, False)
        ]
        bench("upload_rss_mb_300", max(rss), "MB")


async def main() -> None:
    with servers("capacity") as run:
        env = {
            **run.env,
            "UPLOAD_SPILL_DIR": str(run.tmp / "spill"),
            "UPLOAD_SPILL_BYTES": str(SPILL_BYTES),
            # As the chart deploys the upload service (upload.settings.dbPoolSize): each
            # asyncpg connection holds about 200 KB, so the pool's size shows in the peak RSS.
            "DB_POOL_SIZE": "10",
        }
        await run_phases(env, run.tmp / "upload.log", run)


def run() -> None:
    asyncio.run(main())


if __name__ == "__main__":
    run()
