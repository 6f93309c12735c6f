"""A part body botocore can rewind and aiohttp can stream without copying the part, and
uploads sharing a tiny memory pool (the PartStore itself: test_upload_capacity_store.py)."""

from __future__ import annotations

import asyncio
import base64
import io
import zlib

import pytest
from prometheus_client import REGISTRY

from risingstars.upload.partbody import PartBody
from risingstars.upload.settings import MiB


async def test_part_body_reads_seeks_and_streams_the_whole_part_every_time() -> None:
    data = bytes(range(256)) * 4000
    body = PartBody(memoryview(bytearray(data)))
    assert len(body) == len(data)
    assert body.read(10) == data[:10]
    assert body.tell() == 10
    assert body.read() == data[10:]
    assert body.read(5) == b""
    body.seek(-6, io.SEEK_END)
    assert body.read() == data[-6:]
    body.seek(0)
    for _ in range(2):  # a retried request streams it again from the start
        streamed = b"".join([bytes(chunk) async for chunk in body])
        assert streamed == data


@pytest.mark.parametrize("pool_parts", [1, 2])
async def test_concurrent_uploads_share_a_tiny_pool_without_deadlock(
    service, clips, s3, tools, pool_parts
) -> None:
    path = clips["big"]  # three parts each
    async with service(
        upload_buffer_bytes=pool_parts * 5 * 1024 * 1024, upload_max_per_user=4
    ) as svc:
        responses = await asyncio.gather(*(svc.upload(path) for _ in range(4)))
        assert [r.status_code for r in responses] == [201] * 4
        assert svc.runtime.buffers.in_use == 0
        for r in responses:
            key = f"originals/{r.json()['video_id']}.mp4"
            obj = s3.get_object(Bucket=svc.settings.s3_bucket, Key=key)
            assert obj["Body"].read() == path.read_bytes()
        assert tools.open_uploads(s3, svc.settings.s3_bucket) == []


async def test_each_part_goes_to_s3_with_the_crc32_of_its_bytes(service, clips, s3) -> None:
    # S3 refuses a part whose CRC32 does not match (moto does not check): the sums sent must be
    # those of the file's slices, for parts held in memory and parts spilled to disk alike.
    path = clips["big"]  # three parts
    data = path.read_bytes()
    sent: dict[tuple[str, int], str] = {}

    def record(params: dict, **_: object) -> None:
        sent[(params["Key"], params["PartNumber"])] = params["ChecksumCRC32"]

    spilled = REGISTRY.get_sample_value("upload_spilled_bytes_total") or 0
    async with service(upload_buffer_bytes=5 * MiB, upload_max_per_user=4) as svc:
        svc.runtime.s3.meta.events.register("provide-client-params.s3.UploadPart", record)
        responses = await asyncio.gather(*(svc.upload(path) for _ in range(2)))
        assert [r.status_code for r in responses] == [201, 201]
    assert REGISTRY.get_sample_value("upload_spilled_bytes_total") > spilled  # parts on disk
    for r in responses:
        key = f"originals/{r.json()['video_id']}.mp4"
        for number in (1, 2, 3):
            piece = data[(number - 1) * 5 * MiB : number * 5 * MiB]
            crc = base64.b64encode(zlib.crc32(piece).to_bytes(4, "big")).decode()
            assert sent[(key, number)] == crc, (key, number)
