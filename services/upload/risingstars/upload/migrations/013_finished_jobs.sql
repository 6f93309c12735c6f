-- When a video's processing ended (processed, failed or rejected): the queue ETA averages the
-- service time of the newest jobs that ended, failures included, since they kept a processor
-- busy too (queue_positions.py). Videos processed before this column existed count from processed_at.
ALTER TABLE videos ADD COLUMN finished_at timestamptz;
UPDATE videos SET finished_at = processed_at WHERE status = 'processed';
CREATE INDEX videos_finished ON videos (finished_at DESC, id DESC) WHERE finished_at IS NOT NULL;
