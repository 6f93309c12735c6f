"""Direct-to-S3 uploads (extension): the client PUTs the parts of an S3 multipart upload to
presigned URLs itself, can ask which parts are stored to resume after a dropped connection, and
asks us to complete: the parts are checked, the upload completed, the MP4 header validated with
ranged reads, and the video registered like a streamed one."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import time
import uuid
from typing import Any

from botocore.exceptions import ClientError
from fastapi import HTTPException

from risingstars.kit.tokens import Claims
from risingstars.upload import catalog, ingest, messages, metrics, mp4, queries, storage
from risingstars.upload.runtime import Runtime
from risingstars.upload.s3upload import abort_upload

log = logging.getLogger("risingstars.upload.direct")


@dataclasses.dataclass(frozen=True)
class StoredPart:
    number: int
    size: int
    etag: str


def expected_sizes(size: int, part_bytes: int) -> list[int]:
    count = max(1, math.ceil(size / part_bytes))
    return [part_bytes] * (count - 1) + [size - part_bytes * (count - 1)]


def _storage_down(exc: Exception) -> HTTPException:
    log.error("S3 unavailable", extra={"error": repr(exc)})
    return HTTPException(503, messages.STORAGE_DOWN, headers={"Retry-After": "5"})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


async def _owned(conn: Any, upload_id: uuid.UUID, user: Claims, *, lock: bool = False) -> Any:
    row = await conn.fetchrow(queries.LOCK_DIRECT if lock else queries.GET_DIRECT, upload_id)
    if row is None:
        raise HTTPException(404, messages.UPLOAD_NOT_FOUND)
    if row["user_id"] != user.sub:
        raise HTTPException(403, messages.UPLOAD_FORBIDDEN)
    return row


async def stored_parts(rt: Runtime, row: Any) -> list[StoredPart] | None:
    """The parts S3 holds, or None if the multipart upload no longer exists."""
    parts: list[StoredPart] = []
    paginator = rt.s3.get_paginator("list_parts")
    try:
        async for page in paginator.paginate(
            Bucket=rt.settings.s3_bucket,
            Key=storage.original_key(row["video_id"]),
            UploadId=row["s3_upload_id"],
        ):
            parts += [
                StoredPart(p["PartNumber"], p["Size"], p["ETag"]) for p in page.get("Parts", [])
            ]
    except ClientError as exc:
        if _code(exc) in {"NoSuchUpload", "404"}:
            return None
        raise
    return parts


async def describe(rt: Runtime, row: Any, parts: list[StoredPart]) -> dict[str, Any]:
    expected = expected_sizes(row["size_bytes"], row["part_bytes"])
    stored = {p.number: p for p in parts}
    described = []
    for number, size in enumerate(expected, start=1):
        part = stored.get(number)
        done = part is not None and part.size == size
        entry: dict[str, Any] = {"part_number": number, "size": size, "uploaded": done}
        if not done:
            entry["url"] = await rt.s3.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": rt.settings.s3_bucket,
                    "Key": storage.original_key(row["video_id"]),
                    "UploadId": row["s3_upload_id"],
                    "PartNumber": number,
                },
                ExpiresIn=rt.settings.presign_ttl_seconds,
            )
        described.append(entry)
    expires = row["created_at"] + datetime.timedelta(seconds=rt.settings.direct_upload_ttl_seconds)
    return {
        "upload_id": str(row["id"]),
        "video_id": str(row["video_id"]),
        "title": row["title"],
        "size": row["size_bytes"],
        "part_size": row["part_bytes"],
        "expires_at": catalog.iso(expires),
        "parts": described,
    }


async def create(rt: Runtime, user: Claims, title: str, size: int) -> dict[str, Any]:
    video_id = uuid.uuid4()
    upload_id = uuid.uuid4()
    key = storage.original_key(video_id)
    try:
        created = await rt.s3.create_multipart_upload(
            Bucket=rt.settings.s3_bucket, Key=key, ContentType="video/mp4"
        )
    except storage.STORAGE_ERRORS as exc:
        raise _storage_down(exc) from None
    uploader = catalog.Uploader.from_claims(user)
    try:
        created_at = await rt.pool.fetchval(
            queries.INSERT_DIRECT,
            upload_id,
            video_id,
            created["UploadId"],
            uploader.user_id,
            uploader.username,
            uploader.city,
            title,
            size,
            rt.settings.upload_part_bytes,
        )
    except BaseException:
        await abort_upload(rt.s3, rt.settings.s3_bucket, key, created["UploadId"])
        raise
    row = {
        "id": upload_id,
        "video_id": video_id,
        "s3_upload_id": created["UploadId"],
        "title": title,
        "size_bytes": size,
        "part_bytes": rt.settings.upload_part_bytes,
        "created_at": created_at,
    }
    return await describe(rt, row, [])


async def status(rt: Runtime, user: Claims, upload_id: uuid.UUID) -> dict[str, Any]:
    row = await _owned(rt.pool, upload_id, user)
    try:
        parts = await stored_parts(rt, row)
    except storage.STORAGE_ERRORS as exc:
        raise _storage_down(exc) from None
    if parts is None:
        raise HTTPException(404, messages.UPLOAD_NOT_FOUND)
    return await describe(rt, row, parts)


async def cancel(rt: Runtime, user: Claims, upload_id: uuid.UUID) -> None:
    async with rt.pool.acquire() as conn, conn.transaction():
        row = await _owned(conn, upload_id, user, lock=True)
        key = storage.original_key(row["video_id"])
        if not await abort_upload(rt.s3, rt.settings.s3_bucket, key, row["s3_upload_id"]):
            raise HTTPException(503, messages.STORAGE_DOWN, headers={"Retry-After": "5"})
        await conn.execute(queries.DELETE_DIRECT, upload_id)


def _check_parts(row: Any, parts: list[StoredPart]) -> list[StoredPart]:
    expected = expected_sizes(row["size_bytes"], row["part_bytes"])
    stored = {p.number: p for p in parts}
    missing = [n for n in range(1, len(expected) + 1) if n not in stored]
    if missing:
        raise HTTPException(400, f"Faltan partes por subir: {', '.join(map(str, missing))}")
    wrong = [n for n, size in enumerate(expected, start=1) if stored[n].size != size]
    if wrong:
        raise HTTPException(
            400,
            "Estas partes no tienen el tamaño esperado y deben subirse de nuevo: "
            + ", ".join(map(str, wrong)),
        )
    return [stored[n] for n in range(1, len(expected) + 1)]


async def _stored_size(rt: Runtime, key: str) -> int | None:
    try:
        head = await rt.s3.head_object(Bucket=rt.settings.s3_bucket, Key=key)
    except ClientError as exc:
        if _code(exc) in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise
    return head["ContentLength"]


async def complete(rt: Runtime, user: Claims, upload_id: uuid.UUID) -> dict[str, Any]:
    started = time.perf_counter()
    bucket = rt.settings.s3_bucket
    rejected: ingest.Rejected | None = None
    gone = False
    delivery: catalog.Delivery | None = None
    # The row stays locked throughout, so two concurrent completions cannot both register; the
    # video is recorded in the same transaction that retires the upload.
    async with rt.pool.acquire() as conn, conn.transaction():
        row = await _owned(conn, upload_id, user, lock=True)
        video_id = row["video_id"]
        key = storage.original_key(video_id)
        try:
            parts = await stored_parts(rt, row)
            if parts is None:
                # Completed by an earlier call that failed afterwards: the object is there.
                gone = await _stored_size(rt, key) != row["size_bytes"]
            else:
                ordered = _check_parts(row, parts)
                await rt.s3.complete_multipart_upload(
                    Bucket=bucket,
                    Key=key,
                    UploadId=row["s3_upload_id"],
                    MultipartUpload={
                        "Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in ordered]
                    },
                )
            if not gone:
                rejected, info = await _validate(rt, key, row["size_bytes"])
                if rejected is not None:
                    await storage.delete_keys(rt.s3, bucket, [key])
        except storage.STORAGE_ERRORS as exc:
            raise _storage_down(exc) from None
        await conn.execute(queries.DELETE_DIRECT, upload_id)
        if not gone and rejected is None:
            uploader = catalog.Uploader(row["user_id"], row["username"], row["city"])
            delivery = await catalog.record(
                conn, rt, video_id, uploader, row["title"], row["size_bytes"], info
            )
    if gone:
        raise HTTPException(404, messages.UPLOAD_NOT_FOUND)
    if rejected is not None:
        metrics.UPLOADS.labels("direct", "rejected", rejected.reason).inc()
        raise HTTPException(400, rejected.detail)
    assert delivery is not None
    await catalog.deliver(rt, delivery)
    metrics.UPLOADS.labels("direct", "accepted", "ok").inc()
    metrics.UPLOAD_DURATION.labels("accepted").observe(time.perf_counter() - started)
    return {"message": messages.UPLOADED, "task_id": str(video_id), "video_id": str(video_id)}


async def _validate(
    rt: Runtime, key: str, size: int
) -> tuple[ingest.Rejected | None, mp4.Mp4Info | None]:
    """Check the stored file's MP4 header with a few ranged reads."""

    async def read(offset: int, length: int) -> bytes:
        return await storage.read_range(rt.s3, rt.settings.s3_bucket, key, offset, length)

    if size > rt.limits.max_bytes:
        return ingest.Rejected("too_large", messages.too_large(rt.limits.max_bytes)), None
    try:
        info = await mp4.probe(read, size, max_moov_bytes=rt.settings.max_moov_bytes)
        ingest.check_info(info, rt.limits)
    except mp4.Mp4Error as exc:
        return ingest.rejection(exc, rt.limits), None
    except ingest.Rejected as exc:
        return exc, None
    return None, info
