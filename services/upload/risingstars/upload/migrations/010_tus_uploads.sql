-- Resumable uploads by the tus 1.0 protocol (routes/tus.py). The bytes live in S3: whole parts
-- of a multipart upload, and the last incomplete part as a separate `tail` object, so any
-- replica can continue an upload that another started. A finished upload keeps its row until
-- it expires, so a client that asks again learns it is complete instead of starting over.
CREATE TABLE tus_uploads (
    id           uuid PRIMARY KEY,
    video_id     uuid NOT NULL UNIQUE,
    s3_upload_id text NOT NULL,
    user_id      text NOT NULL,
    username     text NOT NULL,
    city         text NOT NULL,
    title        text NOT NULL,
    metadata     text NOT NULL,
    length       bigint NOT NULL CHECK (length > 0),
    part_bytes   integer NOT NULL,
    -- Bytes stored: the parts below, then `tail_bytes` in the tail object.
    "offset"     bigint NOT NULL DEFAULT 0,
    etags        text[] NOT NULL DEFAULT '{}',
    tail_bytes   integer NOT NULL DEFAULT 0,
    completed_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

CREATE INDEX tus_uploads_by_expiry ON tus_uploads (expires_at);
CREATE INDEX tus_uploads_open_by_owner ON tus_uploads (user_id) WHERE completed_at IS NULL;
