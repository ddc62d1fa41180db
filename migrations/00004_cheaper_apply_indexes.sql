-- Cheaper index maintenance on the apply path, measured with pg_stat_statements on
-- BenchmarkApplyBatch: the change log's `at` only grows, so a BRIN index serves range
-- queries by time at a fraction of a btree's insert cost; an applied event id is the
-- SHA-256 of the decrypted XML, which names the corp, so it is unique on its own and the
-- key need not repeat corp_id in every entry.

-- +goose Up
DROP INDEX wecom.changes_at_idx;
CREATE INDEX changes_at_idx ON wecom.changes USING brin (at);
ALTER TABLE wecom.applied_events DROP CONSTRAINT applied_events_pkey;
ALTER TABLE wecom.applied_events ADD PRIMARY KEY (event_id);

-- +goose Down
ALTER TABLE wecom.applied_events DROP CONSTRAINT applied_events_pkey;
ALTER TABLE wecom.applied_events ADD PRIMARY KEY (corp_id, event_id);
DROP INDEX wecom.changes_at_idx;
CREATE INDEX changes_at_idx ON wecom.changes (at);
