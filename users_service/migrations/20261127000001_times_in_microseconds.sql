-- Every service stores times in one unit: microseconds since the Unix epoch (was milliseconds
-- here). NULL stays NULL.
UPDATE users
SET created_at  = created_at * 1000,
    updated_at  = updated_at * 1000,
    disabled_at = disabled_at * 1000;

UPDATE refresh_tokens
SET created_at = created_at * 1000,
    expires_at = expires_at * 1000,
    used_at    = used_at * 1000,
    revoked_at = revoked_at * 1000;
