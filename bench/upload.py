"""Upload service benchmark: ingest throughput against S3 itself, memory while streaming, and
rankings against a trivial endpoint.

The service runs as it does in a container (`python -m risingstars.upload`, uvicorn) against a
throwaway PostgreSQL and moto's S3/SQS server; its memory is read from /proc.

- upload.ingest_ratio: MB/s through POST /api/videos/upload ÷ MB/s of the same files sent as S3
  multipart uploads (same part size) straight to the same endpoint by this process with the
  service's own S3 client; 16 concurrent 12 MB uploads, best of several alternating rounds.
- upload.tus_ratio: MB/s of the same 16 files uploaded by tus (creation, then PATCH requests of
  TUS_CHUNK_BYTES on one keep-alive connection, as tuspy and our CLI send them) ÷ MB/s through
  POST /api/videos/upload, best of the same alternating rounds (≥ 0.85).
- upload.peak_rss_mb / upload.peak_rss_mb_small: the service's peak RSS (VmHWM) while 16
  concurrent 90 MB (resp. 10 MB) uploads stream, each on a fresh process.
- upload.rankings_ratio: GET /api/public/rankings req/s with 100k videos and 1M votes ÷ GET
  /healthz req/s, same server, same keep-alive load generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import boto3
import httpx
import imageio_ffmpeg

from bench import printer
from risingstars.dev import infra
from risingstars.dev.tokens import TokenFactory, serve_jwks
from risingstars.kit import aws
from risingstars.kit.settings import AWSSettings
from risingstars.upload.text import city_key

MB = 1_000_000
MiB = 1024 * 1024
PART_BYTES = 5 * MiB  # the service default (UPLOAD_PART_BYTES)
CONCURRENCY = 16
INGEST_ROUNDS = 8
LOAD_SECONDS = 5.0
LOAD_CONNECTIONS = 32
# The CLI's chunk (clients/cli): one PATCH per S3 part, so no request leaves a tail behind.
TUS_CHUNK_BYTES = 5 * MiB
CITIES = ["Bogotá", "Medellín", "Cali", "Barranquilla", "Cartagena"]


bench = printer("upload")


# --- tokens and keys -------------------------------------------------------------------------


# --- input files -----------------------------------------------------------------------------


def make_clip(directory: Path) -> Path:
    clip = directory / "clip.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
         "-i", "testsrc2=size=1920x1080:rate=5", "-t", "25", "-c:v", "libx264",
         "-preset", "ultrafast", "-crf", "40", "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    return clip


def padded(clip: Path, size: int, path: Path) -> Path:
    """A valid MP4 of exactly `size` bytes: the clip, then a `free` box of random bytes."""
    data = clip.read_bytes()
    pad = size - len(data)
    with path.open("wb") as out:
        out.write(data)
        out.write(struct.pack(">I4s", pad, b"free"))
        remaining = pad - 8
        while remaining:
            chunk = os.urandom(min(remaining, 4 * MiB))
            out.write(chunk)
            remaining -= len(chunk)
    return path


# --- a small keep-alive HTTP/1.1 client (cheap, so the server is what gets measured) ----------


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.headers: dict[str, str] = {}  # of the last response

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()

    async def response(self) -> tuple[int, bytes]:
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        self.headers = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name:
                self.headers[name.strip().lower()] = value.strip()
        length = int(self.headers.get("content-length", "0"))
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    async def send_file(self, head: bytes, path: Path, offset: int, size: int) -> None:
        """`head`, then `size` bytes of the file from `offset`, a MiB at a time."""
        assert self.writer is not None
        self.writer.write(head)
        with path.open("rb") as f:
            f.seek(offset)
            while size and (chunk := f.read(min(MiB, size))):
                self.writer.write(chunk)
                size -= len(chunk)
                await self.writer.drain()


async def post_file(port: int, token: str, path: Path) -> int:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nbench\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="video_file"; '
        f'filename="{path.name}"\r\nContent-Type: video/mp4\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + path.stat().st_size + len(tail)
    conn = Connection(port)
    await conn.open()
    assert conn.writer is not None
    try:
        request = (
            f"POST /api/videos/upload HTTP/1.1\r\nHost: bench\r\n"
            f"Authorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {length}\r\n\r\n"
        ).encode()
        await conn.send_file(request + head, path, 0, path.stat().st_size)
        conn.writer.write(tail)
        await conn.writer.drain()
        status, body = await conn.response()
    finally:
        await conn.close()
    if status != 201:
        raise RuntimeError(f"upload answered {status}: {body[:200]!r}")
    return status


async def tus_file(port: int, token: str, path: Path) -> None:
    """One tus upload: creation, then PATCH requests of TUS_CHUNK_BYTES, one connection."""
    size = path.stat().st_size
    auth = f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\nHost: bench\r\n"
    conn = Connection(port)
    await conn.open()
    assert conn.writer is not None
    try:
        conn.writer.write(
            (
                f"POST /api/videos/tus/ HTTP/1.1\r\n{auth}Upload-Length: {size}\r\n"
                f"Upload-Metadata: title YmVuY2g=\r\nContent-Length: 0\r\n\r\n"
            ).encode()
        )
        status, body = await conn.response()
        if status != 201:
            raise RuntimeError(f"tus creation answered {status}: {body[:200]!r}")
        location = conn.headers["location"]
        for offset in range(0, size, TUS_CHUNK_BYTES):
            length = min(TUS_CHUNK_BYTES, size - offset)
            head = (
                f"PATCH {location} HTTP/1.1\r\n{auth}Upload-Offset: {offset}\r\n"
                f"Content-Type: application/offset+octet-stream\r\n"
                f"Content-Length: {length}\r\n\r\n"
            ).encode()
            await conn.send_file(head, path, offset, length)
            status, body = await conn.response()
            if status != 204:
                raise RuntimeError(f"tus PATCH answered {status}: {body[:200]!r}")
    finally:
        await conn.close()


async def load(port: int, paths: list[str], seconds: float, connections: int) -> float:
    """Requests per second over `connections` keep-alive connections cycling through paths."""
    requests = [f"GET {p} HTTP/1.1\r\nHost: bench\r\n\r\n".encode() for p in paths]
    done = 0
    deadline = time.monotonic() + seconds

    async def worker(offset: int) -> None:
        nonlocal done
        conn = Connection(port)
        await conn.open()
        assert conn.writer is not None
        i = offset
        try:
            while time.monotonic() < deadline:
                conn.writer.write(requests[i % len(requests)])
                status, _ = await conn.response()
                if status != 200:
                    raise RuntimeError(f"{paths[i % len(paths)]} answered {status}")
                done += 1
                i += 1
        finally:
            await conn.close()

    start = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    return done / (time.monotonic() - start)


# --- the service under test ------------------------------------------------------------------


class Service:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = infra.free_port()
        self.env = {**env, "PORT": str(self.port)}
        self.log = log
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Service:
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "risingstars.upload", "serve"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        infra.wait_until(self._ready, 60, "upload service", self.proc)
        return self

    def _ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        infra.stop(self.proc)

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def status(self, field: str) -> float:
        """A VmRSS/VmHWM-style line of /proc/<pid>/status, in MB."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / MB
        raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_env(
    moto_url: str, dsn: str, jwks_url: str, resources: infra.AWSResources, **extra: str
) -> dict[str, str]:
    """The service's environment against the throwaway servers, its database migrated."""
    env = {
        **os.environ,
        **infra.AWS_DUMMY_ENV,
        "AWS_ENDPOINT_URL": moto_url,
        "DATABASE_URL": dsn,
        "JWKS_URL": jwks_url,
        "S3_BUCKET": resources.bucket,
        "JOBS_QUEUE_URL": resources.jobs_queue_url,
        "EVENTS_QUEUE_URL": resources.events_queue_url,
        "UPLOAD_PART_BYTES": str(PART_BYTES),
        # One user uploads every file of the run, all at once.
        "UPLOAD_DAILY_QUOTA": "1000000",
        "UPLOAD_MAX_PER_USER": "1000",
        "MAX_OPEN_UPLOADS_PER_USER": "1000",
        "DRAIN_SECONDS": "0",
        "LOG_LEVEL": "warning",
        **extra,
    }
    subprocess.run([sys.executable, "-m", "risingstars.upload", "migrate"],
                   env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return env


@dataclasses.dataclass(frozen=True)
class Servers:
    tmp: Path
    keys: TokenFactory
    moto_url: str
    moto_pid: int
    resources: infra.AWSResources
    dsn: str
    env: dict[str, str]


@contextlib.contextmanager
def servers(name: str) -> Iterator[Servers]:
    """A scratch directory, throwaway PostgreSQL and moto, a JWKS server for `keys`, and the
    service's environment against them (its database migrated)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)
        os.environ.update(infra.AWS_DUMMY_ENV)
        keys = TokenFactory()
        with (
            infra.running(infra.start_postgres, tmp / "pg", log_path=tmp / "pg.log") as pg,
            infra.running(infra.start_moto, log_path=tmp / "moto.log") as moto,
            serve_jwks(keys.jwks) as jwks_url,
        ):
            resources = infra.create_aws_resources(moto.url, name)
            dsn = infra.create_database(pg, f"{name}_bench")
            env = service_env(moto.url, dsn, jwks_url, resources)
            yield Servers(tmp, keys, moto.url, moto.proc.pid, resources, dsn, env)


# --- measurements ----------------------------------------------------------------------------


async def direct_multipart(settings: AWSSettings, bucket: str, files: list[Path]) -> float:
    """MB/s of S3 multipart uploads of `files`, all at once, parts of each file in parallel."""
    async with aws.client("s3", settings, aws.client_config(max_pool_connections=100)) as s3:

        async def one(path: Path) -> None:
            key = f"direct/{uuid.uuid4()}.mp4"
            created = await s3.create_multipart_upload(Bucket=bucket, Key=key)
            size = path.stat().st_size

            async def part(number: int) -> dict:
                with path.open("rb") as f:
                    f.seek((number - 1) * PART_BYTES)
                    body = f.read(PART_BYTES)
                r = await s3.upload_part(Bucket=bucket, Key=key, UploadId=created["UploadId"],
                                         PartNumber=number, Body=body)  # fmt: skip
                return {"PartNumber": number, "ETag": r["ETag"]}

            count = -(-size // PART_BYTES)
            parts = await asyncio.gather(*(part(n) for n in range(1, count + 1)))
            await s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=created["UploadId"],
                                               MultipartUpload={"Parts": parts})  # fmt: skip

        start = time.perf_counter()
        await asyncio.gather(*(one(p) for p in files))
        elapsed = time.perf_counter() - start
    return sum(p.stat().st_size for p in files) / MB / elapsed


async def through_service(
    service: Service, token: str, files: list[Path], send: Callable = post_file
) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(send(service.port, token, p) for p in files))
    elapsed = time.perf_counter() - start
    return sum(p.stat().st_size for p in files) / MB / elapsed


def empty_bucket(endpoint: str, bucket: str) -> None:
    s3 = boto3.client("s3", endpoint_url=endpoint)
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objects:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})


async def peak_rss(env: dict[str, str], log: Path, token: str, files: list[Path]) -> float:
    with Service(env, log) as service:
        await through_service(service, token, files)
        return service.status("VmHWM")


async def seed_rankings(dsn: str, videos: int = 100_000) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        keys = [city_key(c) for c in CITIES]
        await conn.execute(
            """
            INSERT INTO videos (id, user_id, username, city, city_key, title, status,
                                original_key, processed_key, size_bytes, uploaded_at, processed_at)
            SELECT md5('video' || i)::uuid, 'user' || (i % 20000), 'player' || (i % 20000),
                   ($2::text[])[1 + (i % 20000) % 5], ($3::text[])[1 + (i % 20000) % 5],
                   'video ' || i, 'processed', 'originals/' || i, 'processed/' || i, 1000,
                   now() - i * interval '1 second', now() - i * interval '1 second'
            FROM generate_series(0, $1 - 1) AS i
            """,
            videos, CITIES, keys,
        )  # fmt: skip
        # Between 1 and 20 votes per video (about 10.5 on average): about a million rows.
        await conn.execute(
            """
            INSERT INTO votes (video_id, user_id)
            SELECT md5('video' || i)::uuid, 'voter' || ((i * 7 + k) % 50000)
            FROM generate_series(0, $1 - 1) AS i, generate_series(0, 19) AS k
            WHERE k <= (i * 37) % 20
            """,
            videos,
        )
        await conn.execute(
            """
            UPDATE videos SET votes = c.n
            FROM (SELECT video_id, count(*) AS n FROM votes GROUP BY video_id) AS c
            WHERE videos.id = c.video_id
            """
        )
        await conn.execute("ANALYZE videos; ANALYZE votes")
        return await conn.fetchval("SELECT count(*) FROM votes")
    finally:
        await conn.close()


def rankings_paths() -> list[str]:
    paths = ["/api/public/rankings", "/api/public/rankings?limit=100",
             "/api/public/rankings?limit=50&offset=200"]  # fmt: skip
    for city in ["bogota", "MEDELLIN", "Cali", "barranquilla", "Cartagena"]:
        paths.append(f"/api/public/rankings?city={city}")
        paths.append(f"/api/public/rankings?city={city}&limit=20&offset={random.randint(0, 50)}")
    return paths


async def main() -> None:
    with servers("upload") as run:
        tmp, keys, moto_url, resources = run.tmp, run.keys, run.moto_url, run.resources
        env, dsn = run.env, run.dsn
        sub = str(uuid.uuid4())
        token = keys.token(sub, username=f"bench-{sub[:6]}", ttl=7200)
        log = tmp / "upload.log"
        clip = make_clip(tmp)
        files12 = [padded(clip, 12 * MB, tmp / "f12.mp4")] * CONCURRENCY
        aws_settings = AWSSettings(aws_endpoint_url=moto_url)

        # Ingest: alternate direct, proxied and tus rounds; best of each.
        direct_runs, proxied_runs, tus_runs = [], [], []
        with Service(env, log) as service:
            await through_service(service, token, files12[:2])  # warm-up
            await through_service(service, token, files12[:2], tus_file)
            for _ in range(INGEST_ROUNDS):
                direct_runs.append(await direct_multipart(aws_settings, resources.bucket, files12))
                empty_bucket(moto_url, resources.bucket)
                proxied_runs.append(await through_service(service, token, files12))
                empty_bucket(moto_url, resources.bucket)
                tus_runs.append(await through_service(service, token, files12, tus_file))
                empty_bucket(moto_url, resources.bucket)
        direct, proxied, by_tus = max(direct_runs), max(proxied_runs), max(tus_runs)
        bench("direct_s3_mb_s", direct, "MB/s")
        bench("ingest_mb_s", proxied, "MB/s")
        bench("ingest_ratio", proxied / direct)
        bench("tus_mb_s", by_tus, "MB/s")
        bench("tus_ratio", by_tus / proxied)

        # Memory: fresh processes, 16 concurrent uploads each.
        files90 = [padded(clip, 90 * MB, tmp / "f90.mp4")] * CONCURRENCY
        bench("peak_rss_mb", await peak_rss(env, log, token, files90), "MB")
        (tmp / "f90.mp4").unlink()
        empty_bucket(moto_url, resources.bucket)
        files10 = [padded(clip, 10 * MB, tmp / "f10.mp4")] * CONCURRENCY
        bench("peak_rss_mb_small", await peak_rss(env, log, token, files10), "MB")
        empty_bucket(moto_url, resources.bucket)

        # Rankings against a trivial endpoint.
        votes = await seed_rankings(dsn)
        bench("rankings_votes", votes)
        with Service(env, log) as service:
            paths = rankings_paths()
            await load(service.port, paths, 1.0, 4)  # warm-up: first aggregate
            trivial = await load(service.port, ["/healthz"], LOAD_SECONDS, LOAD_CONNECTIONS)
            ranked = await load(service.port, paths, LOAD_SECONDS, LOAD_CONNECTIONS)
        bench("healthz_rps", trivial, "req/s")
        bench("rankings_rps", ranked, "req/s")
        bench("rankings_ratio", ranked / trivial)


def run() -> None:
    asyncio.run(main())


if __name__ == "__main__":
    run()
