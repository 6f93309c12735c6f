-- The W3C trace context of the request that recorded an outbox message, so the job it becomes
-- continues the upload's trace whoever sends it (the request, or the relay later). Nullable:
-- rows written before it, or by code that does not set it, are sent without one.
ALTER TABLE outbox ADD COLUMN traceparent text;
