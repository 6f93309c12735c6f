-- One PATCH at a time per tus upload, across replicas: a request holds the upload's lease
-- (its own random token, until `patch_until`) while it appends; another request meanwhile is
-- refused at once (423). The lease outlives a crashed process only until `patch_until`.
ALTER TABLE tus_uploads ADD COLUMN patch_lease uuid;
ALTER TABLE tus_uploads ADD COLUMN patch_until timestamptz;
-- The tail object's name (under tus/<id>/), unique to the request that wrote it, so a request
-- that lost a race never overwrites the tail the winner recorded.
ALTER TABLE tus_uploads ADD COLUMN tail_name text;
