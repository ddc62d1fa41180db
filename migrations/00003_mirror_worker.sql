-- Worker state for the mirror (internal/mirror): apply lanes, dedup, dead letters,
-- the change-log relay cursor and job results.

-- +goose Up

-- One row per corp: the last WECOM_EVENTS stream sequence applied to the mirror, written
-- in the same transaction as the changes it applied (exactly once in effect).
CREATE TABLE wecom.lanes (
    corp_id         text        PRIMARY KEY,
    last_stream_seq bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Ids of events applied (or handled: ignored, job results), for dedup beyond
-- JetStream's duplicate window (WeCom retries one callback for minutes; a callback
-- re-published under a new stream sequence must not apply twice). Prune policy: rows older
-- than the WECOM_EVENTS max age (7 days by default) can no longer be redelivered by the
-- stream and are deleted by Store.PruneAppliedEvents, which the worker calls periodically.
-- event_id is the 32-byte SHA-256 the bus message id spells in hex (an id that is not
-- 64 hex digits is stored as the SHA-256 of its text): half the index of the hex text.
CREATE TABLE wecom.applied_events (
    corp_id    text        NOT NULL,
    event_id   bytea       NOT NULL,
    stream_seq bigint      NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (corp_id, event_id)
);
-- BRIN: the prune deletes by age, and rows arrive in time order; cheap to maintain.
CREATE INDEX applied_events_applied_at_idx ON wecom.applied_events USING brin (applied_at);

-- Items that can never apply, kept for inspection and replay.
CREATE TABLE wecom.dead_letters (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    corp_id     text        NOT NULL,
    stream_seq  bigint      NOT NULL,
    event_id    text        NOT NULL DEFAULT '',
    subject     text        NOT NULL DEFAULT '',
    reason      text        NOT NULL,
    payload     bytea       NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz
);
CREATE INDEX dead_letters_pending_idx ON wecom.dead_letters (corp_id, id) WHERE replayed_at IS NULL;

-- The relay's progress: the last wecom.changes seq of the corp published to
-- WECOM_CHANGES (PubAck received). A row exists for every corp that has changes.
CREATE TABLE wecom.relay_cursors (
    corp_id       text        PRIMARY KEY,
    published_seq bigint      NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- batch_job_result events, for the job runner.
CREATE TABLE wecom.job_events (
    corp_id     text        NOT NULL,
    event_id    text        NOT NULL,
    job_id      text        NOT NULL,
    job_type    text        NOT NULL,
    err_code    integer     NOT NULL,
    err_msg     text        NOT NULL,
    stream_seq  bigint      NOT NULL,
    at          timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (corp_id, event_id)
);
CREATE INDEX job_events_job_idx ON wecom.job_events (corp_id, job_id);

-- +goose Down
DROP TABLE wecom.job_events;
DROP TABLE wecom.relay_cursors;
DROP TABLE wecom.dead_letters;
DROP TABLE wecom.applied_events;
DROP TABLE wecom.lanes;
