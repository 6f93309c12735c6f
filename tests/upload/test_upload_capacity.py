"""Streamed and tus uploads under slow, stalled and greedy clients: parts spill to disk when
memory is taken, quiet uploads are aborted, a new upload that finds no room waits its turn
(unread) and is refused only past the admission wait; tus requests obey the same limits."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asgi_scope import upload_scope
from polling import eventually
from prometheus_client.parser import text_string_to_metric_families

from risingstars.kit import errors
from risingstars.upload.settings import MiB

CHUNK = 64 * 1024
# Bounds on waiting for answers that, broken, would never come (not timings under test).
ANSWER_TIMEOUT = 60


class Client:
    """One upload driven through the ASGI app by hand, as a socket would: the body goes out in
    64 KiB chunks, stops after `pause_at` bytes until `resume` is set, then sends the rest, or
    disconnects (`then="disconnect"`)."""

    def __init__(
        self,
        svc,
        data: bytes,
        *,
        user: str | None = None,
        pause_at: int | None = None,
        then: str = "send",
        title: bytes = b"Jugada en camara lenta",
    ) -> None:
        boundary = uuid.uuid4().hex
        self.body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\n'.encode()
            + title
            + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="video_file"; '
            f'filename="v.mp4"\r\nContent-Type: video/mp4\r\n\r\n'.encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        self.svc = svc
        self.headers = [
            (b"host", b"upload.test"),
            (b"authorization", svc.headers(user or str(uuid.uuid4()))["Authorization"].encode()),
            (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
        ]
        self.pause_at = pause_at
        self.then = then
        self.sent = 0
        self.paused = asyncio.Event()  # the server asked for more past pause_at
        self.resume = asyncio.Event()
        self.status: int | None = None
        self.answer = b""
        self.response_headers: dict[bytes, bytes] = {}

    async def _receive(self) -> dict:
        if self.pause_at is not None and self.sent >= self.pause_at and not self.resume.is_set():
            self.paused.set()
            await self.resume.wait()
        if self.then == "disconnect" and self.resume.is_set():
            return {"type": "http.disconnect"}
        chunk = self.body[self.sent : self.sent + CHUNK]
        if self.pause_at is not None and self.sent < self.pause_at:
            chunk = chunk[: self.pause_at - self.sent]
        self.sent += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": self.sent < len(self.body)}

    async def _send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.response_headers = dict(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.answer += message.get("body", b"")

    async def run(self) -> int:
        scope = upload_scope(self.headers)
        await self.svc.app(scope, self._receive, self._send)
        assert self.status is not None
        return self.status

    def start(self) -> asyncio.Task[int]:
        return asyncio.create_task(self.run())


async def hold_the_memory(svc, holder: Client) -> asyncio.Task[int]:
    """`holder` (paused mid-part) takes the only memory buffer and keeps it (never reclaimed):
    every other part must spill. The caller resumes it, and awaits the task, at the end."""
    store = svc.runtime.buffers
    store.reclaim_after = math.inf
    task = holder.start()
    await asyncio.wait_for(holder.paused.wait(), ANSWER_TIMEOUT)
    assert store.in_use == 1
    return task


# Room for one part in memory and one on disk: `memory_and_disk_taken` fills both.
ONE_PART_OF_EACH = {"upload_buffer_bytes": 5 * MiB, "upload_spill_bytes": 5 * MiB}


@contextlib.asynccontextmanager
async def memory_and_disk_taken(svc, data: bytes) -> AsyncIterator[None]:
    """Two uploads paused mid-part hold the one memory buffer and the one spill file of a
    service configured with room for a part of each; they disconnect when the block ends."""
    holders = [Client(svc, data, pause_at=CHUNK, then="disconnect") for _ in range(2)]
    tasks = [c.start() for c in holders]
    try:
        for client in holders:
            await asyncio.wait_for(client.paused.wait(), ANSWER_TIMEOUT)
        yield
    finally:
        for client in holders:
            client.resume.set()
        await asyncio.wait_for(asyncio.gather(*tasks), ANSWER_TIMEOUT)


async def metric(svc, name: str) -> float:
    text = (await svc.client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return sample.value
    raise AssertionError(f"{name} not exported")


def part_files(svc) -> list[Path]:
    return sorted(svc.runtime.buffers.dir.glob("*.part"))


async def nothing_left(svc, s3, tools) -> None:
    store = svc.runtime.buffers
    assert (store.parts, store.in_use, store.spill_reserved, store.waiting) == (0, 0, 0, 0)
    assert part_files(svc) == []
    assert await metric(svc, "upload_spill_bytes_in_use") == 0
    assert await metric(svc, "upload_part_buffers_in_use") == 0
    assert tools.open_uploads(s3, svc.settings.s3_bucket) == []


def stored(s3, svc, response) -> bytes:
    key = f"originals/{response.json()['video_id']}.mp4"
    return s3.get_object(Bucket=svc.settings.s3_bucket, Key=key)["Body"].read()


async def test_fifty_stalled_clients_do_not_block_a_normal_upload(
    service, clips, s3, tools, tmp_path
) -> None:
    data = clips["big"].read_bytes()
    async with service(upload_spill_dir=str(tmp_path)) as svc:
        assert svc.runtime.buffers.memory_parts == 4
        spilled_before = await metric(svc, "upload_spilled_bytes_total")
        # Each sends a valid MP4 head and goes quiet, from its own user (the per-user cap is
        # another test), as mobile clients do.
        stalled = [Client(svc, data, pause_at=CHUNK, then="disconnect") for _ in range(50)]
        tasks = [c.start() for c in stalled]
        for client in stalled:
            await asyncio.wait_for(client.paused.wait(), ANSWER_TIMEOUT)
        store = svc.runtime.buffers
        assert store.parts == 50
        assert await metric(svc, "upload_part_buffers_in_use") == 4
        assert await metric(svc, "upload_spill_bytes_in_use") > 0

        response = await asyncio.wait_for(svc.upload(clips["big"]), ANSWER_TIMEOUT)
        assert response.status_code == 201, response.text
        assert stored(s3, svc, response) == data
        assert await metric(svc, "upload_spilled_bytes_total") > spilled_before

        for client in stalled:
            client.resume.set()
        await asyncio.wait_for(asyncio.gather(*tasks), ANSWER_TIMEOUT)
        assert await svc.sql("SELECT count(*) FROM videos") == 1
        await nothing_left(svc, s3, tools)


async def test_an_idle_upload_is_aborted_with_nothing_left_behind(
    service, clips, s3, tools, tmp_path
) -> None:
    data = clips["big"].read_bytes()
    async with service(upload_idle_seconds=0.5, upload_spill_dir=str(tmp_path)) as svc:
        aborted_before = await metric(svc, "upload_idle_aborted_total")
        # Past the first part, so S3 already holds a multipart upload for it.
        client = Client(svc, data, pause_at=6 * MiB)
        task = client.start()
        await asyncio.wait_for(client.paused.wait(), ANSWER_TIMEOUT)
        assert len(tools.open_uploads(s3, svc.settings.s3_bucket)) == 1

        status = await asyncio.wait_for(task, ANSWER_TIMEOUT)
        assert status == 408
        assert b"No se recibieron datos durante 0.5 s" in client.answer
        assert await metric(svc, "upload_idle_aborted_total") == aborted_before + 1
        assert tools.keys(s3, svc.settings.s3_bucket) == []
        assert await svc.sql("SELECT count(*) FROM videos") == 0
        await nothing_left(svc, s3, tools)


async def test_an_upload_past_its_deadline_is_aborted(service, clips, s3, tools, tmp_path) -> None:
    data = clips["big"].read_bytes()
    async with service(
        upload_idle_seconds=60, upload_deadline_seconds=1, upload_spill_dir=str(tmp_path)
    ) as svc:
        aborted_before = await metric(svc, "upload_idle_aborted_total")
        client = Client(svc, data, pause_at=6 * MiB)
        status = await asyncio.wait_for(client.run(), ANSWER_TIMEOUT)
        assert status == 408
        assert b"tiempo m\xc3\xa1ximo de 1 s" in client.answer
        assert await metric(svc, "upload_idle_aborted_total") == aborted_before
        assert await svc.sql("SELECT count(*) FROM videos") == 0
        await nothing_left(svc, s3, tools)


async def test_spilled_parts_are_removed_on_success_failure_and_disconnect(
    service, clips, s3, tools, tmp_path
) -> None:
    big = clips["big"].read_bytes()
    async with service(upload_buffer_bytes=5 * MiB, upload_spill_dir=str(tmp_path)) as svc:
        store = svc.runtime.buffers
        holder = Client(svc, big, pause_at=CHUNK, then="disconnect")
        holder_task = await hold_the_memory(svc, holder)

        outcomes = {
            "success": (Client(svc, big), 201),
            "failure": (Client(svc, clips["hd_720p"].read_bytes()), 400),
            "disconnect": (Client(svc, big, then="disconnect"), 400),
        }
        for name, (client, expected) in outcomes.items():
            client.pause_at = min(6 * MiB, len(client.body) // 2)
            spilled_before = await metric(svc, "upload_spilled_bytes_total")
            task = client.start()
            await asyncio.wait_for(client.paused.wait(), ANSWER_TIMEOUT)
            assert part_files(svc), name  # the part being filled is on disk
            assert await metric(svc, "upload_spill_bytes_in_use") > 0
            client.resume.set()
            assert await asyncio.wait_for(task, ANSWER_TIMEOUT) == expected, client.answer
            assert await metric(svc, "upload_spilled_bytes_total") > spilled_before
            assert part_files(svc) == [], name
            assert await metric(svc, "upload_spill_bytes_in_use") == 0, name
            assert store.parts == 1  # the holder's

        holder.resume.set()
        await asyncio.wait_for(holder_task, ANSWER_TIMEOUT)
        assert await svc.sql("SELECT count(*) FROM videos") == 1
        await nothing_left(svc, s3, tools)


async def test_a_users_uploads_past_the_cap_are_429(service, clips, s3, tools, tmp_path) -> None:
    data = clips["ok"].read_bytes()
    user = str(uuid.uuid4())
    async with service(upload_max_per_user=2, upload_spill_dir=str(tmp_path)) as svc:
        running = [Client(svc, data, user=user, pause_at=CHUNK) for _ in range(2)]
        tasks = [c.start() for c in running]
        for client in running:
            await asyncio.wait_for(client.paused.wait(), ANSWER_TIMEOUT)

        extra = Client(svc, data, user=user)
        assert await asyncio.wait_for(extra.run(), ANSWER_TIMEOUT) == 429
        assert extra.sent == 0  # refused before its body was read
        assert extra.response_headers[b"retry-after"]
        assert b"Ya tiene 2 cargas en curso" in extra.answer
        # Someone else is not affected.
        other = await asyncio.wait_for(svc.upload(clips["ok"]), ANSWER_TIMEOUT)
        assert other.status_code == 201

        for client in running:
            client.resume.set()
        assert await asyncio.wait_for(asyncio.gather(*tasks), ANSWER_TIMEOUT) == [201, 201]
        again = await asyncio.wait_for(
            svc.upload(clips["ok"], headers=svc.headers(user)), ANSWER_TIMEOUT
        )
        assert again.status_code == 201
        await nothing_left(svc, s3, tools)


async def test_with_memory_and_disk_full_a_new_upload_waits_unread_then_goes_ahead(
    service, clips, s3, tools, tmp_path
) -> None:
    data = clips["big"].read_bytes()
    async with service(**ONE_PART_OF_EACH, upload_spill_dir=str(tmp_path)) as svc:
        waited_before = await metric(svc, "upload_admission_wait_seconds_sum")
        async with memory_and_disk_taken(svc, data):
            waiter = Client(svc, data)
            task = waiter.start()
            await eventually(
                lambda: metric(svc, "upload_admission_waiting"), ANSWER_TIMEOUT, "the wait"
            )
            assert waiter.sent == 0 and not task.done()  # not a byte read while it waits
        # The holders left: the waiter got their room.
        assert await asyncio.wait_for(task, ANSWER_TIMEOUT) == 201, waiter.answer
        assert waiter.sent == len(waiter.body)
        assert await metric(svc, "upload_admission_waiting") == 0
        assert await metric(svc, "upload_admission_wait_seconds_sum") > waited_before
        await nothing_left(svc, s3, tools)


async def test_a_new_upload_is_503_only_past_the_admission_wait(
    service, clips, s3, tools, tmp_path
) -> None:
    data = clips["big"].read_bytes()
    settings = {**ONE_PART_OF_EACH, "upload_admission_wait_seconds": 0.5}
    async with service(**settings, upload_spill_dir=str(tmp_path)) as svc:
        refused_before = await metric(svc, "upload_admissions_refused_total")
        async with memory_and_disk_taken(svc, data):
            refused = Client(svc, data)
            assert await asyncio.wait_for(refused.run(), ANSWER_TIMEOUT) == 503
            assert refused.sent == 0
            assert refused.response_headers[b"retry-after"]
            assert json.loads(refused.answer) == {
                "detail": "El servicio está recibiendo demasiadas cargas. Intente de nuevo en "
                "unos segundos.",
                "code": "busy",
            }
            assert await metric(svc, "upload_admissions_refused_total") == refused_before + 1

        # Room again: the next one is taken.
        response = await asyncio.wait_for(svc.upload(clips["big"]), ANSWER_TIMEOUT)
        assert response.status_code == 201, response.text
        await nothing_left(svc, s3, tools)


async def test_a_stalled_client_admitted_from_the_queue_does_not_keep_the_room(
    service, clips, s3, tools, tmp_path
) -> None:
    data = clips["big"].read_bytes()
    settings = {**ONE_PART_OF_EACH, "upload_idle_seconds": 0.5}
    async with service(**settings, upload_spill_dir=str(tmp_path)) as svc:
        store = svc.runtime.buffers
        async with memory_and_disk_taken(svc, data):
            # First in the queue: a client that never sends a byte; behind it, a normal one.
            stalled = Client(svc, data, pause_at=0, then="disconnect")
            stalled_task = stalled.start()
            await eventually(lambda: store.admitting == 1, ANSWER_TIMEOUT, "the stalled one")
            normal = Client(svc, data)
            normal_task = normal.start()
            await eventually(lambda: store.admitting == 2, ANSWER_TIMEOUT, "the normal one")
        # The stalled one goes first, is cut off by the idle timeout, and its room goes on.
        assert await asyncio.wait_for(stalled_task, ANSWER_TIMEOUT) == 408
        assert await asyncio.wait_for(normal_task, ANSWER_TIMEOUT) == 201, normal.answer
        stalled.resume.set()
        await nothing_left(svc, s3, tools)


# --- tus: a PATCH request's part comes from the same store ---------------------------------

TUS = {"Tus-Resumable": "1.0.0"}


async def tus_create(svc, size: int) -> uuid.UUID:
    response = await svc.client.post(
        "/api/videos/tus/",
        headers={**svc.headers(), **TUS, "Upload-Length": str(size),
                 "Upload-Metadata": "title " + base64.b64encode(b"Tiro de esquina").decode()},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return uuid.UUID(response.headers["Location"].rsplit("/", 1)[1])


async def tus_patch(svc, upload_id: uuid.UUID, offset: int, data: bytes):
    return await svc.client.patch(
        f"/api/videos/tus/{upload_id}",
        headers={**svc.headers(), **TUS, "Upload-Offset": str(offset),
                 "Content-Type": "application/offset+octet-stream"},
        content=data,
    )  # fmt: skip


async def test_tus_parts_spill_when_memory_is_taken_and_are_removed(
    service, clips, s3, tools, tmp_path
) -> None:
    data = clips["big"].read_bytes()
    async with service(upload_buffer_bytes=5 * MiB, upload_spill_dir=str(tmp_path)) as svc:
        store = svc.runtime.buffers
        holder = Client(svc, data, pause_at=CHUNK, then="disconnect")
        holder_task = await hold_the_memory(svc, holder)
        spilled_before = await metric(svc, "upload_spilled_bytes_total")

        upload_id = await tus_create(svc, len(data))
        files_mid_request = []

        async def across_a_part_boundary():
            yield data[:MiB]
            files_mid_request.append(part_files(svc))
            yield data[MiB : 6 * MiB]

        async with svc.runtime.tus.leased(upload_id, svc.user) as upload:
            upload = await svc.runtime.tus.append(upload, 0, across_a_part_boundary())
        assert upload.offset == 6 * MiB and upload.tail_bytes == MiB
        assert files_mid_request[0], "the part being filled is a spill file"
        assert part_files(svc) == [] and store.parts == 1  # the tail waits in S3, not here
        assert await metric(svc, "upload_spill_bytes_in_use") == 0

        done = await tus_patch(svc, upload_id, 6 * MiB, data[6 * MiB :])
        assert done.status_code == 204, done.text
        key = f"originals/{done.headers['Video-Id']}.mp4"
        assert s3.get_object(Bucket=svc.settings.s3_bucket, Key=key)["Body"].read() == data
        assert await metric(svc, "upload_spilled_bytes_total") > spilled_before + 6 * MiB
        assert part_files(svc) == [] and store.parts == 1

        holder.resume.set()
        await asyncio.wait_for(holder_task, ANSWER_TIMEOUT)
        await nothing_left(svc, s3, tools)


async def test_tus_with_memory_and_disk_full_past_the_wait_is_503_and_keeps_its_offset(
    service, clips, s3, tools, tmp_path
) -> None:
    data = clips["big"].read_bytes()
    settings = {**ONE_PART_OF_EACH, "upload_admission_wait_seconds": 0.5}
    async with service(**settings, upload_spill_dir=str(tmp_path)) as svc:
        upload_id = await tus_create(svc, len(data))
        assert (await tus_patch(svc, upload_id, 0, data[:MiB])).status_code == 204
        async with memory_and_disk_taken(svc, data):
            refused = await tus_patch(svc, upload_id, MiB, data[MiB:])
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] and refused.headers["Tus-Resumable"] == "1.0.0"
            assert "demasiadas cargas" in refused.json()["detail"]
            assert (await svc.runtime.tus.get(upload_id, svc.user)).offset == MiB

        done = await tus_patch(svc, upload_id, MiB, data[MiB:])
        assert done.status_code == 204, done.text
        await nothing_left(svc, s3, tools)


async def test_a_quiet_tus_request_ends_and_keeps_what_arrived(
    service, clips, s3, tools, tmp_path
) -> None:
    data = clips["big"].read_bytes()
    async with service(upload_idle_seconds=0.5, upload_spill_dir=str(tmp_path)) as svc:
        upload_id = await tus_create(svc, len(data))
        never = asyncio.Event()

        async def then_silence():
            yield data[:MiB]
            await never.wait()

        with pytest.raises(errors.TimedOut):
            async with svc.runtime.tus.leased(upload_id, svc.user) as upload:
                await asyncio.wait_for(
                    svc.runtime.tus.append(upload, 0, then_silence()), ANSWER_TIMEOUT
                )
        assert (await svc.runtime.tus.get(upload_id, svc.user)).offset == MiB
        store = svc.runtime.buffers
        assert (store.parts, store.in_use, part_files(svc)) == (0, 0, [])
        done = await tus_patch(svc, upload_id, MiB, data[MiB:])
        assert done.status_code == 204, done.text
        await nothing_left(svc, s3, tools)


class TusTrickle:
    """A tus PATCH driven by hand: a valid first chunk, then a byte at a time, each just
    inside the idle timeout, until `stop` is set (then it disconnects)."""

    def __init__(self, svc, upload_id: uuid.UUID, user: str, data: bytes) -> None:
        self.svc = svc
        self.scope = {
            **upload_scope([
                (b"host", b"upload.test"),
                (b"authorization", svc.headers(user)["Authorization"].encode()),
                (b"tus-resumable", b"1.0.0"),
                (b"upload-offset", b"0"),
                (b"content-type", b"application/offset+octet-stream"),
            ]),
            "method": "PATCH",
            "path": f"/api/videos/tus/{upload_id}",
            "raw_path": f"/api/videos/tus/{upload_id}".encode(),
        }  # fmt: skip
        self.data = data
        self.sent = 0
        self.stop = asyncio.Event()
        self.status: int | None = None

    async def _receive(self) -> dict:
        if self.stop.is_set():
            return {"type": "http.disconnect"}
        if self.sent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.1)  # a byte every 0.1 s
            if self.stop.is_set():
                return {"type": "http.disconnect"}
        size = CHUNK if not self.sent else 1
        chunk = self.data[self.sent : self.sent + size]
        self.sent += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def _send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]

    async def run(self) -> int:
        await self.svc.app(self.scope, self._receive, self._send)
        assert self.status is not None
        return self.status


async def test_trickling_tus_requests_of_one_account_do_not_stop_another_users_upload(
    service, clips, s3, tools, tmp_path
) -> None:
    """One account opens its 5 uploads and sends 4 concurrent PATCHes to each, every one
    trickling a byte at a time: one PATCH per upload goes ahead (the rest 423 at once), three
    per account (the rest 429), and another user's upload finds room and is stored."""
    data = clips["big"].read_bytes()
    # Room for four parts: what three trickling requests hold leaves one for someone else.
    settings = {"upload_buffer_bytes": 10 * MiB, "upload_spill_bytes": 10 * MiB,
                "upload_admission_wait_seconds": 5, "upload_spill_dir": str(tmp_path)}  # fmt: skip
    async with service(**settings) as svc:
        attacker = svc.user
        uploads = [await tus_create(svc, len(data)) for _ in range(5)]
        tricklers = [TusTrickle(svc, u, attacker, data) for u in uploads for _ in range(4)]
        tasks = [asyncio.create_task(t.run()) for t in tricklers]
        try:
            store = svc.runtime.buffers

            def settled() -> bool:
                return sum(t.done() for t in tasks) == 17 and store.parts == 3

            await eventually(settled, ANSWER_TIMEOUT, "17 refusals and 3 trickling requests")
            refused = sorted(t.result() for t in tasks if t.done())
            # An upload's first PATCH takes its lease and the others get 423 at once; of the lease
            # holders the account's slots admit three and refuse the rest (429). Which request of
            # an upload wins its lease is the scheduler's choice: a holder refused a slot frees the
            # lease, and a sibling that takes it meets the full slots too (429 instead of 423).
            assert set(refused) <= {423, 429} and refused.count(429) >= 2, refused

            victim = await asyncio.wait_for(
                svc.upload(clips["big"], headers=svc.headers(str(uuid.uuid4()))), ANSWER_TIMEOUT
            )
            assert victim.status_code == 201, victim.text
            assert stored(s3, svc, victim) == data

            for trickler in tricklers:
                trickler.stop.set()
            statuses = await asyncio.wait_for(asyncio.gather(*tasks), ANSWER_TIMEOUT)
            assert all(400 <= s < 500 for s in statuses), statuses
            # What the trickling requests sent was kept, as for any dropped request.
            offsets = [(await svc.runtime.tus.get(u, attacker)).offset for u in uploads]
            assert sorted(o > 0 for o in offsets) == [False, False, True, True, True]
        finally:
            # A failed assertion must not leave requests trickling into the next tests.
            for trickler in tricklers:
                trickler.stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
