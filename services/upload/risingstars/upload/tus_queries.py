"""SQL of the tus uploads (migrations/010_tus_uploads.sql, 030_tus_patch_lease.sql)."""

from __future__ import annotations

INSERT = """
INSERT INTO tus_uploads (id, video_id, s3_upload_id, user_id, username, city, title, metadata,
                         length, part_bytes, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now() + make_interval(secs => $11))
RETURNING *
"""

GET = "SELECT * FROM tus_uploads WHERE id = $1"

COUNT_OPEN = "SELECT count(*) FROM tus_uploads WHERE user_id = $1 AND completed_at IS NULL"

# The upload, leased for $3 seconds under token $2; no row while another request holds it.
LEASE = """
UPDATE tus_uploads SET patch_lease = $2, patch_until = now() + make_interval(secs => $3)
WHERE id = $1 AND (patch_until IS NULL OR patch_until < now())
RETURNING *
"""

RENEW = """
UPDATE tus_uploads SET patch_until = now() + make_interval(secs => $3)
WHERE id = $1 AND patch_lease = $2
"""

RELEASE = """
UPDATE tus_uploads SET patch_lease = NULL, patch_until = NULL WHERE id = $1 AND patch_lease = $2
"""

# Only from the request's starting offset and under its lease: of two racing requests (a lease
# ran out), one records and the other learns it lost.
ADVANCE = """
UPDATE tus_uploads SET "offset" = $3, etags = $4, tail_bytes = $5, tail_name = $7
WHERE id = $1 AND "offset" = $2 AND completed_at IS NULL AND patch_lease = $6
"""

COMPLETE = """
UPDATE tus_uploads SET "offset" = length, etags = $3, tail_bytes = 0, tail_name = NULL,
                       completed_at = now(),
                       patch_lease = NULL, patch_until = NULL
WHERE id = $1 AND "offset" = $2 AND completed_at IS NULL AND patch_lease = $4
"""

DELETE = "DELETE FROM tus_uploads WHERE id = $1"

DELETE_LEASED = "DELETE FROM tus_uploads WHERE id = $1 AND patch_lease = $2"

# Expired uploads, leased so that no request appends meanwhile (nor another worker removes).
LEASE_EXPIRED = """
UPDATE tus_uploads SET patch_lease = $2, patch_until = now() + make_interval(secs => $3)
WHERE id IN (SELECT id FROM tus_uploads
             WHERE expires_at < now() AND (patch_until IS NULL OR patch_until < now())
             ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING *
"""
