-- A spent refresh token keeps its successor, encrypted under a key derived from the spent token
-- itself (which only its holder has): a second refresh with it within the grace window gets the
-- same successor instead of revoking the family. The table alone never reveals a usable token.
ALTER TABLE auth.refresh_tokens ADD COLUMN successor_sealed bytea;
