-- Access tokens shared by every process that calls WeCom with the same credentials
-- (internal/wecom PGTokenStore). One row per (corp id, secret): WeCom issues an
-- independent token per app secret, so a corp alone is not a key. The secret itself is
-- never stored, only its SHA-256. A process refreshing a token holds the row lock
-- (SELECT ... FOR UPDATE) while it calls gettoken, so the others wait for its result.

-- +goose Up
CREATE TABLE wecom.access_tokens (
    corp_id       text        NOT NULL,
    secret_sha256 bytea       NOT NULL CHECK (octet_length(secret_sha256) = 32),
    access_token  text        NOT NULL DEFAULT '',
    expires_at    timestamptz NOT NULL DEFAULT 'epoch',
    -- refresh_at is when the token is due for an early refresh (before expires_at).
    refresh_at    timestamptz NOT NULL DEFAULT 'epoch',
    fetched_at    timestamptz,
    -- The last failed gettoken (e.g. 40001): reported to the processes that were waiting
    -- for that refresh instead of each of them calling gettoken again.
    failed_at     timestamptz,
    fail_code     integer,
    fail_msg      text,
    PRIMARY KEY (corp_id, secret_sha256)
);

COMMENT ON TABLE wecom.access_tokens IS
    'WeCom access tokens per (corp id, SHA-256 of the secret); internal/wecom PGTokenStore';

-- +goose Down
DROP TABLE IF EXISTS wecom.access_tokens;
