-- Open direct uploads are counted per user (a cap per user, and the daily upload quota).
CREATE INDEX direct_uploads_by_owner ON direct_uploads (user_id);
