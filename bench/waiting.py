"""Memory of an upload waiting for admission, against an idle keep-alive connection.

When memory parts and spill are full, a new upload waits for room with its body unread
(spill.PartStore.admit): the client is slowed by TCP instead of refused. What a waiting upload
costs the process is its connection and request state, and that is what this measures. The
service runs as deployed (`python -m risingstars.upload serve`) against a throwaway PostgreSQL
and moto, with no spill (UPLOAD_SPILL_BYTES=0): two trickling uploads hold the two memory parts
and every upload after them waits.

- waiting.kb_per_idle_connection: RSS growth per keep-alive connection that made one request
  and stays open (the baseline: what any client costs).
- waiting.kb_per_waiting_upload: RSS growth per upload waiting for admission, each having sent
  its headers and 256 KiB of its body.
- waiting.ratio: the second ÷ the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import httpx

from bench import printer
from bench.capacity import form, metric
from bench.upload import Service, servers

bench = printer("waiting")

CONNECTIONS = 300
SENT_BYTES = 256 * 1024
FILE_BYTES = 12_000_000
# A header box, then a large mdat: a valid start that keeps the MP4 scanner reading.
MP4_START = (
    (24).to_bytes(4, "big") + b"ftypisom" + (1).to_bytes(4, "big") + b"isomiso2"
    + (FILE_BYTES - 24).to_bytes(4, "big") + b"mdat"
)  # fmt: skip


async def idle_connection(port: int) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    return writer


async def upload(
    port: int, token: str, body: int, trickle_seconds: float = 0
) -> asyncio.StreamWriter:
    """An upload sending its head and `body` bytes, then (trickling) a KB every half second;
    its writer, held by the caller so that the connection stays open."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    boundary = uuid.uuid4().hex
    head, _ = form(b"", boundary)
    writer.write(
        f"POST /api/videos/upload HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(head) + FILE_BYTES}\r\n\r\n".encode()
        + head
        + MP4_START
        + bytes(body)
    )
    for _ in range(int(trickle_seconds * 2)):
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.write(bytes(1000))
    # A waiting upload's socket fills once the server stops reading: it is left as it is.
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(writer.drain(), 5)
    return writer


async def until(base: str, gauge: str, at_least: float, seconds: float) -> None:
    """Poll the service's gauge without blocking the uploads' event loop."""
    for _ in range(int(seconds * 4)):
        if await metric(base, gauge) >= at_least:
            return
        await asyncio.sleep(0.25)
    raise RuntimeError(f"{gauge} did not reach {at_least} in {seconds} s")


async def main() -> None:
    with servers("waiting") as run:
        env = {
            **run.env,
            "UPLOAD_SPILL_DIR": str(run.tmp / "spill"),
            "UPLOAD_SPILL_BYTES": "0",
            "UPLOAD_ADMISSION_WAIT_SECONDS": "600",
        }
        with Service(env, run.tmp / "upload.log") as service:
            port = service.port
            base = f"http://127.0.0.1:{port}"
            token = run.keys.token("bench-waiting", username="waiting", ttl=3600)
            for _ in range(20):  # warm: the routes, the token verifier, the pool
                httpx.get(f"http://127.0.0.1:{port}/api/videos", headers={
                    "Authorization": f"Bearer {token}"})  # fmt: skip
            holders = [
                asyncio.create_task(upload(port, token, 6_000_000, trickle_seconds=300))
                for _ in range(2)
            ]
            await until(base, "upload_part_buffers_in_use", 2, 60)
            before = service.status("VmRSS")
            idle = [await idle_connection(port) for _ in range(CONNECTIONS)]
            with_idle = service.status("VmRSS")
            waiters = [
                asyncio.create_task(upload(port, token, SENT_BYTES)) for _ in range(CONNECTIONS)
            ]
            await until(base, "upload_admission_waiting", CONNECTIONS, 120)
            with_waiting = service.status("VmRSS")
            for task in [*holders, *waiters]:
                task.cancel()
            for writer in idle:
                writer.close()
        per_idle = (with_idle - before) * 1024 / CONNECTIONS
        per_waiting = (with_waiting - with_idle) * 1024 / CONNECTIONS
        bench("kb_per_idle_connection", per_idle, "KB")
        bench("kb_per_waiting_upload", per_waiting, "KB")
        bench("ratio", per_waiting / per_idle)


def run() -> None:
    asyncio.run(main())


if __name__ == "__main__":
    run()
