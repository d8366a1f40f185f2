-- Absolute session lifetime: refreshing moves expires_at, never beyond max_expires_at.
ALTER TABLE auth.sessions ADD COLUMN max_expires_at timestamptz;
UPDATE auth.sessions SET max_expires_at = greatest(expires_at, created_at + interval '30 days');
ALTER TABLE auth.sessions ALTER COLUMN max_expires_at SET NOT NULL;

-- Refresh tokens a rotation replaced: presenting one again revokes its session.
CREATE TABLE auth.retired_refresh_tokens (
    refresh_hash text        PRIMARY KEY,
    sid          uuid        NOT NULL REFERENCES auth.sessions (sid) ON DELETE CASCADE,
    retired_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX retired_refresh_tokens_sid_idx ON auth.retired_refresh_tokens (sid);
