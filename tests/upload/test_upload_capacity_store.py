"""The PartStore: memory parts, then spill files within the disk budget; running uploads wait
for their next part first, new ones wait behind them in arrival order (bounded); idle memory
parts move to disk for uploads that are moving."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import zlib

import pytest
from polling import eventually
from prometheus_client import REGISTRY

from risingstars.kit.errors import Unavailable
from risingstars.upload.spill import PartStore

PART = 1024


def store_in(tmp_path, memory_parts: int = 1, disk_parts: int = 1, **kw) -> PartStore:
    return PartStore(PART, memory_parts, tmp_path / "spill", disk_parts * PART, **kw)


async def test_memory_first_then_disk_then_busy(tmp_path) -> None:
    store = store_in(tmp_path, reclaim_after=float("inf"))
    first, second = await store.admit(), await store.admit()
    assert (first.in_memory, second.in_memory) == (True, False)
    with pytest.raises(Unavailable) as refused:
        await store.admit()
    assert (refused.value.status_code, refused.value.headers()) == (503, {"Retry-After": "5"})
    assert "demasiadas cargas" in refused.value.detail
    assert refused.value.code == "busy"

    second.write(memoryview(b"x" * 100))
    assert second.path is not None and second.path.read_bytes() == b"x" * 100
    assert (store.spill_in_use, store.spill_reserved) == (100, PART)
    second.close()
    assert not second.path.exists()
    assert (store.spill_in_use, store.spill_reserved, store.parts) == (0, 0, 1)
    first.close()
    assert (store.in_use, store.parts) == (0, 0)
    store.close()
    assert not store.dir.exists()


async def test_a_running_upload_waits_for_a_part_and_new_ones_do_not_overtake(tmp_path) -> None:
    store = store_in(tmp_path, disk_parts=0)
    held = await store.admit()
    waiter = asyncio.ensure_future(store.take())
    await eventually(lambda: store.waiting == 1, 5, "the upload to wait")
    assert not waiter.done()
    held.close()
    with pytest.raises(Unavailable):
        await store.admit()  # the woken waiter goes first
    part = await asyncio.wait_for(waiter, 5)
    assert part.in_memory and store.waiting == 0
    part.close()


def _wait_seconds() -> float:
    return REGISTRY.get_sample_value("upload_admission_wait_seconds_sum") or 0.0


async def test_new_uploads_wait_for_room_in_arrival_order_behind_running_ones(tmp_path) -> None:
    store = store_in(tmp_path, disk_parts=0, admission_wait=60)
    held = await store.admit()
    waited_before = _wait_seconds()
    newcomers = []
    for n in range(3):
        newcomers.append(asyncio.ensure_future(store.admit()))
        await eventually(lambda n=n: store.admitting == n + 1, 5, "the newcomer to queue")
    running = asyncio.ensure_future(store.take())
    await eventually(lambda: store.waiting == 1, 5, "the running upload to wait")

    order = []
    held.close()  # the running upload first, though it came last
    part = await asyncio.wait_for(running, 5)
    for _ in newcomers:
        part.close()
        done, _ = await asyncio.wait(newcomers, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        finished = [t for t in done if t not in order]
        assert len(finished) == 1, "one part frees one newcomer"
        order += finished
        part = finished[0].result()
    part.close()
    assert order == newcomers
    assert (store.admitting, store.waiting, store.parts) == (0, 0, 0)
    assert _wait_seconds() > waited_before


async def test_a_new_upload_is_refused_when_no_room_comes_within_the_wait(tmp_path) -> None:
    store = store_in(tmp_path, disk_parts=0, admission_wait=0.2)
    held = await store.admit()
    refused = REGISTRY.get_sample_value("upload_admissions_refused_total") or 0
    with pytest.raises(Unavailable) as busy:
        await asyncio.wait_for(store.admit(), 5)
    assert busy.value.headers() == {"Retry-After": "5"}
    assert REGISTRY.get_sample_value("upload_admissions_refused_total") == refused + 1
    assert store.admitting == 0
    held.close()
    assert (await store.admit()).in_memory  # the refused one held nothing


async def test_a_newcomer_leaving_with_its_part_passes_it_on(tmp_path) -> None:
    store = store_in(tmp_path, disk_parts=0, admission_wait=60)
    held = await store.admit()
    first = asyncio.ensure_future(store.admit())
    second = asyncio.ensure_future(store.admit())
    await eventually(lambda: store.admitting == 2, 5, "both newcomers to queue")
    held.close()  # hands the part to `first`...
    first.cancel()  # ...which leaves before using it
    part = await asyncio.wait_for(second, 5)
    assert first.cancelled() and store.admitting == 0 and store.parts == 1
    part.close()


async def test_a_cancelled_waiter_passes_its_turn_on(tmp_path) -> None:
    store = store_in(tmp_path, disk_parts=0)
    held = await store.admit()
    first = asyncio.ensure_future(store.take())
    second = asyncio.ensure_future(store.take())
    await eventually(lambda: store.waiting == 2, 5, "both uploads to wait")
    held.close()  # wakes `first`...
    first.cancel()  # ...which leaves before using its turn
    part = await asyncio.wait_for(second, 5)
    assert first.cancelled() and store.waiting == 0
    part.close()


async def test_an_idle_memory_part_moves_to_disk_for_a_newcomer(tmp_path) -> None:
    store = store_in(tmp_path, reclaim_after=0)
    slow = await store.admit()
    slow.write(memoryview(b"a" * 300))
    fast = await store.admit()
    assert fast.in_memory and not slow.in_memory
    assert slow.path is not None and slow.path.read_bytes() == b"a" * 300
    slow.write(memoryview(b"b" * (PART - 300 + 50)))
    assert slow.full and slow.size == PART
    body = slow.seal()
    assert body.read() == b"a" * 300 + b"b" * (PART - 300)
    body.seek(-4, io.SEEK_END)
    assert body.read() == b"bbbb"
    assert b"".join([bytes(c) async for c in body]) == b"a" * 300 + b"b" * (PART - 300)
    # Sealed parts stay where they are: there is no room left for a third.
    fast.seal()
    with pytest.raises(Unavailable):
        await store.admit()
    slow.close()
    fast.close()
    assert (store.in_use, store.spill_in_use, store.spill_reserved) == (0, 0, 0)
    assert list(store.dir.glob("*.part")) == []


async def test_directories_of_dead_processes_are_removed_at_start(tmp_path) -> None:
    alive = store_in(tmp_path)
    dead = tmp_path / "spill" / "proc-gone"
    dead.mkdir()
    (dead / ".lock").touch()
    (dead / "left.part").write_bytes(os.urandom(100))
    newcomer = store_in(tmp_path)
    assert not dead.exists()
    assert alive.dir.exists() and newcomer.dir != alive.dir
    alive.close()
    newcomer.close()


def _crc32(data: bytes) -> dict[str, str]:
    digest = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    return {"ChecksumAlgorithm": "CRC32", "ChecksumCRC32": digest}


async def test_a_part_carries_the_crc32_of_its_bytes_wherever_they_were_held(tmp_path) -> None:
    # S3 checks the CRC32 sent with each part (a wrong one fails the upload); moto does not,
    # so the sum is checked here, for a part in memory, on disk, and moved between the two.
    data = os.urandom(PART)
    store = store_in(tmp_path / "a", reclaim_after=float("inf"))
    in_memory, on_disk = await store.admit(), await store.admit()
    assert (in_memory.in_memory, on_disk.in_memory) == (True, False)
    for part in (in_memory, on_disk):
        part.write(memoryview(data[:300]))
        part.write(memoryview(data[300:]))
        assert part.full
        assert part.seal().checksum == _crc32(data)
        part.close()
    store.close()

    store = store_in(tmp_path / "b", reclaim_after=0)
    moved = await store.admit()
    moved.write(memoryview(data[:500]))
    newcomer = await store.admit()  # takes the idle part's buffer: its bytes move to disk
    assert not moved.in_memory and newcomer.in_memory
    moved.write(memoryview(data[500:]))
    assert moved.seal().checksum == _crc32(data)
    moved.close()
    newcomer.close()
    store.close()
