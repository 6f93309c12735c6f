-- The daily upload quota counts accepted uploads from here, so deleting a video does not give its
-- encode back (upload, delete, upload...). Entries older than a day are pruned by the service.
CREATE TABLE upload_ledger (
    video_id    uuid PRIMARY KEY,
    user_id     text NOT NULL,
    accepted_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX upload_ledger_by_owner ON upload_ledger (user_id, accepted_at);

INSERT INTO upload_ledger (video_id, user_id, accepted_at)
SELECT id, user_id, uploaded_at FROM videos WHERE uploaded_at > now() - interval '1 day'
ON CONFLICT DO NOTHING;
