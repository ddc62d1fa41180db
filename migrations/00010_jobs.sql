-- Job runner tables (internal/jobs). River's own tables (river_job, river_leader, ...) are
-- created by rivermigrate, run by `worker migrate up` after these goose migrations.

-- +goose Up
-- One row per river job of ours: what a CLI or `worker jobs show` displays, and the
-- resumable state of the job (WeCom job ids, export keys, downloaded blocks), so that a
-- job re-run on another worker continues where the last attempt stopped.
CREATE TABLE wecom.job_runs (
    river_job_id bigint      PRIMARY KEY,
    corp_id      text        NOT NULL,
    kind         text        NOT NULL,
    phase        text        NOT NULL DEFAULT 'queued',
    done         bigint      NOT NULL DEFAULT 0,
    total        bigint      NOT NULL DEFAULT 0,
    state        jsonb       NOT NULL DEFAULT '{}',
    summary      jsonb,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_runs_corp_idx ON wecom.job_runs (corp_id, created_at DESC);

-- The official CSV an import uploads, kept until the job ends so that every attempt
-- uploads the same bytes (a media_id lives 3 days).
CREATE TABLE wecom.import_files (
    river_job_id bigint      PRIMARY KEY REFERENCES wecom.job_runs ON DELETE CASCADE,
    sha256       text        NOT NULL,
    rows         integer     NOT NULL,
    csv          bytea       NOT NULL
);

-- Per-row results of an import, fetched from batch/getresult as soon as the job is done
-- (WeCom keeps only the last 5 jobs' results).
CREATE TABLE wecom.import_results (
    river_job_id bigint  NOT NULL REFERENCES wecom.job_runs ON DELETE CASCADE,
    seq          integer NOT NULL,
    userid       text,
    partyid      bigint,
    action       integer,
    errcode      integer NOT NULL,
    errmsg       text    NOT NULL,
    PRIMARY KEY (river_job_id, seq)
);

-- +goose Down
DROP TABLE wecom.import_results;
DROP TABLE wecom.import_files;
DROP TABLE wecom.job_runs;
