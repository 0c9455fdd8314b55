-- Access tokens revoked before they expire, served to the other services at
-- GET /internal/revocations. A row with a session_id revokes that session's tokens (logout,
-- refresh-token reuse, disabled account); a row without revokes the account's tokens that carry no
-- session, issued up to revoked_at. Rows are deleted once expires_at passes: by then every token
-- they concern has expired.
CREATE TABLE revocations (
    id          TEXT   PRIMARY KEY,
    user_id     TEXT   NOT NULL,
    session_id  TEXT   NULL,
    revoked_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE INDEX revocations_revoked_at_idx ON revocations (revoked_at);
CREATE INDEX revocations_expires_at_idx ON revocations (expires_at);
CREATE INDEX revocations_session_idx ON revocations (session_id);
CREATE INDEX revocations_user_idx ON revocations (user_id);
