-- Videos, votes, the jobs/deletions outbox, and direct-to-S3 uploads in progress.

CREATE TABLE videos (
    id               uuid PRIMARY KEY,
    user_id          text NOT NULL,
    username         text NOT NULL,
    city             text NOT NULL,
    -- city without case or accents, computed by the service (no database extension needed)
    city_key         text NOT NULL,
    title            text NOT NULL,
    status           text NOT NULL
        CHECK (status IN ('uploaded', 'processing', 'processed', 'failed', 'rejected')),
    failure_reason   text,
    original_key     text NOT NULL,
    processed_key    text,
    thumbnail_key    text,
    size_bytes       bigint NOT NULL,
    duration_seconds double precision,
    width            integer,
    height           integer,
    votes            integer NOT NULL DEFAULT 0,
    uploaded_at      timestamptz NOT NULL DEFAULT now(),
    processed_at     timestamptz
);

CREATE INDEX videos_by_owner ON videos (user_id, uploaded_at DESC, id DESC);
CREATE INDEX videos_public ON videos (processed_at DESC, id DESC) WHERE status = 'processed';
CREATE INDEX videos_public_by_city ON videos (city_key, processed_at DESC, id DESC)
    WHERE status = 'processed';

CREATE TABLE votes (
    video_id   uuid NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    user_id    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (video_id, user_id)
);

-- Messages to deliver after a commit: processing jobs (to SQS) and stored objects to delete.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('job', 'delete_objects')),
    video_id        uuid,
    payload         jsonb NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX outbox_due ON outbox (next_attempt_at);
CREATE INDEX outbox_by_video ON outbox (video_id) WHERE kind = 'job';

CREATE TABLE direct_uploads (
    id           uuid PRIMARY KEY,
    video_id     uuid NOT NULL UNIQUE,
    s3_upload_id text NOT NULL,
    user_id      text NOT NULL,
    username     text NOT NULL,
    city         text NOT NULL,
    title        text NOT NULL,
    size_bytes   bigint NOT NULL,
    part_bytes   integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX direct_uploads_by_age ON direct_uploads (created_at);
