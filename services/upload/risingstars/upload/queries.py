"""The service's SQL."""

from __future__ import annotations

INSERT_VIDEO = """
INSERT INTO videos (id, user_id, username, city, city_key, title, status, original_key,
                    size_bytes, duration_seconds, width, height)
VALUES ($1, $2, $3, $4, $5, $6, 'uploaded', $7, $8, $9, $10, $11)
"""

# The relay leaves a row alone for `grace` seconds: its request is publishing it right now.
INSERT_OUTBOX = """
INSERT INTO outbox (kind, video_id, payload, next_attempt_at, traceparent)
VALUES ($1, $2, $3::jsonb, now() + make_interval(secs => $4), $5)
RETURNING id
"""

DELETE_OUTBOX = "DELETE FROM outbox WHERE id = $1"

DUE_OUTBOX = """
SELECT id, kind, payload, attempts, traceparent FROM outbox
WHERE next_attempt_at <= now()
ORDER BY next_attempt_at, id
LIMIT $1
FOR UPDATE SKIP LOCKED
"""

RETRY_OUTBOX = """
UPDATE outbox
SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $2), last_error = $3
WHERE id = $1
"""

COUNT_OUTBOX = "SELECT count(*) FROM outbox"

LIST_OWN = """
SELECT id, title, status, uploaded_at, processed_at, processed_key
FROM videos WHERE user_id = $1
ORDER BY uploaded_at DESC, id DESC
LIMIT $2 OFFSET $3
"""

GET_VIDEO = """
SELECT id, user_id, title, status, failure_reason, uploaded_at, processed_at, original_key,
       processed_key, thumbnail_key, votes, size_bytes, duration_seconds, width, height
FROM videos WHERE id = $1
"""

LOCK_VIDEO = "SELECT user_id, status FROM videos WHERE id = $1 FOR UPDATE"

DELETE_VIDEO = "DELETE FROM videos WHERE id = $1"

# A job not yet sent for a deleted video must not be sent at all.
DELETE_PENDING_JOB = "DELETE FROM outbox WHERE kind = 'job' AND video_id = $1"

_PUBLIC = """
SELECT id, title, username, city, processed_key, thumbnail_key, votes, processed_at
FROM videos WHERE status = 'processed'
"""
_NEWEST = " ORDER BY processed_at DESC, id DESC LIMIT $1"
PUBLIC_LIST = _PUBLIC + _NEWEST + " OFFSET $2"
PUBLIC_LIST_CITY = _PUBLIC + " AND city_key = $3" + _NEWEST + " OFFSET $2"
# Keyset pages (`after`, the cursor of the last row seen): any page costs the same.
PUBLIC_AFTER = _PUBLIC + " AND (processed_at, id) < ($2, $3)" + _NEWEST
PUBLIC_AFTER_CITY = _PUBLIC + " AND city_key = $4 AND (processed_at, id) < ($2, $3)" + _NEWEST

# The primary key (video_id, user_id) makes concurrent duplicates wait for the first one and
# then do nothing. Owners cannot vote for their own videos.
INSERT_VOTE = """
INSERT INTO votes (video_id, user_id)
SELECT $1, $2 WHERE EXISTS (
    SELECT 1 FROM videos WHERE id = $1 AND status = 'processed' AND user_id <> $2)
ON CONFLICT DO NOTHING
RETURNING 1
"""

COUNT_VOTE = "UPDATE videos SET votes = votes + 1 WHERE id = $1"

PUBLIC_OWNER = "SELECT user_id FROM videos WHERE id = $1 AND status = 'processed'"

# The daily quota: uploads accepted in the last 24 hours (the ledger keeps deleted ones; the
# videos term counts what the release before the ledger accepted) and unfinished ones.
UPLOADS_LAST_DAY = """
SELECT (SELECT count(*) FROM (
            SELECT video_id FROM upload_ledger
            WHERE user_id = $1 AND accepted_at > now() - interval '1 day'
            UNION
            SELECT id FROM videos WHERE user_id = $1 AND uploaded_at > now() - interval '1 day'
        ) AS accepted)
     + (SELECT count(*) FROM direct_uploads WHERE user_id = $1)
     + (SELECT count(*) FROM tus_uploads WHERE user_id = $1 AND completed_at IS NULL)
"""

# Kept for a day whatever becomes of the video; a user's older entries go on their next upload.
INSERT_LEDGER = """
WITH pruned AS (
    DELETE FROM upload_ledger WHERE user_id = $2 AND accepted_at < now() - interval '2 days'
)
INSERT INTO upload_ledger (video_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING
"""

# Serialises a user's upload creations: counts checked under it hold (caps, daily quota).
LOCK_UPLOADER = "SELECT pg_advisory_xact_lock(hashtextextended('uploads:' || $1, 0))"

# Players: the sum of votes over their processed videos; name and city from the newest one.
RANKINGS = """
SELECT user_id,
       (array_agg(username ORDER BY uploaded_at DESC))[1] AS username,
       (array_agg(city ORDER BY uploaded_at DESC))[1] AS city,
       sum(votes)::bigint AS votes
FROM videos WHERE status = 'processed'
GROUP BY user_id
"""

# The processing queue (queue_positions.py): when each waiting video was queued, in order (the
# `videos_waiting` index), as whole microseconds (exact: extract gives a numeric since
# PostgreSQL 14; a third of the cost of sending the ids); and the mean service time of the
# newest $2 jobs that ended (the `videos_finished` index: $2 rows, whatever the table's size).
QUEUE_STATE = """
SELECT ARRAY(SELECT (extract(epoch FROM uploaded_at) * 1000000)::bigint FROM videos
             WHERE status IN ('uploaded', 'processing')
             ORDER BY uploaded_at, id LIMIT $1) AS waiting,
       (SELECT avg(service_seconds) FROM (
            SELECT service_seconds FROM videos WHERE finished_at IS NOT NULL
            ORDER BY finished_at DESC, id DESC LIMIT $2) AS newest) AS mean_service_seconds
"""

# How long the oldest video still waiting for its job to end has waited (0 when none does).
OLDEST_WAITING_SECONDS = """
SELECT coalesce(extract(epoch FROM now() - min(uploaded_at)), 0)::float8 FROM videos
WHERE status IN ('uploaded', 'processing')
"""

LOCK_STATUS = "SELECT status FROM videos WHERE id = $1 FOR UPDATE"

# Returns the seconds from upload to playable.
MARK_PROCESSED = """
UPDATE videos
SET status = 'processed', processed_at = now(), processed_key = $2, thumbnail_key = $3,
    failure_reason = NULL, service_seconds = $4, finished_at = now()
WHERE id = $1
RETURNING extract(epoch FROM processed_at - uploaded_at)::float8
"""

MARK_FAILED = """
UPDATE videos
SET status = $2, failure_reason = $3, service_seconds = $4, finished_at = now()
WHERE id = $1
"""

MARK_PROCESSING = "UPDATE videos SET status = 'processing' WHERE id = $1 AND status = 'uploaded'"

INSERT_DIRECT = """
INSERT INTO direct_uploads (id, video_id, s3_upload_id, user_id, username, city, title,
                            size_bytes, part_bytes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING *
"""

GET_DIRECT = """
SELECT id, video_id, s3_upload_id, user_id, username, city, title, size_bytes, part_bytes,
       created_at
FROM direct_uploads WHERE id = $1
"""

LOCK_DIRECT = GET_DIRECT + " FOR UPDATE"

DELETE_DIRECT = "DELETE FROM direct_uploads WHERE id = $1"

OPEN_DIRECT = "SELECT count(*) FROM direct_uploads WHERE user_id = $1"

EXPIRE_DIRECT = """
DELETE FROM direct_uploads
WHERE created_at < now() - make_interval(secs => $1)
RETURNING video_id, s3_upload_id
"""

LIVE_DIRECT = "SELECT s3_upload_id FROM direct_uploads"
