"""Direct-to-S3 uploads (extension): create, resume, complete, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from risingstars.upload import catalog, messages, schemas
from risingstars.upload.deps import Runtime, UploadId, User

router = APIRouter(prefix="/api/videos/uploads", tags=["direct uploads"])
# A stored part has no URL: the field is left out, not null.
DESCRIBED = {"response_model": schemas.DirectUpload, "response_model_exclude_unset": True}


@router.post("", status_code=201, responses=schemas.errors(400, 401, 429, 503), **DESCRIBED)
async def create_upload(user: User, body: schemas.NewUpload, rt: Runtime) -> Any:
    return await rt.direct.create(catalog.Uploader.from_claims(user), body.title, body.size)


@router.get("/{upload_id}", responses=schemas.errors(401, 403, 404, 503), **DESCRIBED)
async def upload_status(user: User, upload_id: UploadId, rt: Runtime) -> Any:
    return await rt.direct.status(user.sub, upload_id)


@router.post(
    "/{upload_id}/complete",
    status_code=201,
    response_model=schemas.Uploaded,
    responses=schemas.errors(400, 401, 403, 404, 503),
)
async def complete_upload(user: User, upload_id: UploadId, rt: Runtime) -> Any:
    return await rt.direct.complete(user.sub, upload_id)


@router.delete(
    "/{upload_id}",
    response_model=schemas.Cancelled,
    responses=schemas.errors(401, 403, 404, 503),
)
async def cancel_upload(user: User, upload_id: UploadId, rt: Runtime) -> Any:
    await rt.direct.cancel(user.sub, upload_id)
    return {"message": messages.UPLOAD_CANCELLED, "upload_id": str(upload_id)}
