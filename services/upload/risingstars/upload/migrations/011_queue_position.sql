-- Queue position and ETA (jobqueue.py). How long the processor worked on each processed video,
-- from its `processed` event (NULL when the event did not say): the ETA averages the newest.
ALTER TABLE videos ADD COLUMN service_seconds double precision;

-- The videos waiting for processing, in the order their jobs were queued: each API replica
-- reads this list every few seconds, and it must not walk the processed ones to find it.
CREATE INDEX videos_waiting ON videos (uploaded_at, id) WHERE status IN ('uploaded', 'processing');
