-- Accounts. Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- ids are UUIDv7 text (time-ordered, so they double as a stable pagination key),
-- times are unix milliseconds, and "disabled" is a nullable timestamp rather than a boolean.
CREATE TABLE users (
    id            TEXT    PRIMARY KEY,
    username      TEXT    NOT NULL,
    email         TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    disabled_at   BIGINT  NULL
);

-- Usernames and emails are unique regardless of case.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_role_idx ON users (role);

-- Refresh tokens, stored only as their SHA-256. A family is one login session: every rotation
-- adds a token to it, and reuse of a rotated token revokes the whole family.
CREATE TABLE refresh_tokens (
    token_hash  TEXT   PRIMARY KEY,
    user_id     TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT NULL,
    revoked_at  BIGINT NULL
);

CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
