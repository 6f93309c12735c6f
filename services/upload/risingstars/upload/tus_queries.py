"""SQL of the tus uploads (migrations/010_tus_uploads.sql)."""

from __future__ import annotations

INSERT = """
INSERT INTO tus_uploads (id, video_id, s3_upload_id, user_id, username, city, title, metadata,
                         length, part_bytes, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now() + make_interval(secs => $11))
RETURNING *
"""

GET = "SELECT * FROM tus_uploads WHERE id = $1"

COUNT_OPEN = "SELECT count(*) FROM tus_uploads WHERE user_id = $1 AND completed_at IS NULL"

# Progress is recorded only from the offset the request started at: of two requests racing on
# one upload, one records and the other learns it lost (409).
ADVANCE = """
UPDATE tus_uploads SET "offset" = $3, etags = $4, tail_bytes = $5
WHERE id = $1 AND "offset" = $2 AND completed_at IS NULL
"""

COMPLETE = """
UPDATE tus_uploads SET "offset" = length, etags = $3, tail_bytes = 0, completed_at = now()
WHERE id = $1 AND "offset" = $2 AND completed_at IS NULL
"""

DELETE = "DELETE FROM tus_uploads WHERE id = $1"

EXPIRED = """
SELECT * FROM tus_uploads WHERE expires_at < now() ORDER BY expires_at LIMIT $1
FOR UPDATE SKIP LOCKED
"""
