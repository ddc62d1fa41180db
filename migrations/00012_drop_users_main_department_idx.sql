-- users_main_department_idx served no query: a department's members are found through
-- user_departments (its department index covers every membership, the main one
-- included), and nothing reads members by main_department alone. Every member insert,
-- and every update that is not HOT, paid for it: measured with pg_stat_statements on
-- BenchmarkApplyBatch, the member INSERT took 11% and the UPDATE 5% less time without it
-- (apply rate +7%).
--
-- CONCURRENTLY, outside a transaction: a plain DROP INDEX queues for an exclusive lock
-- on wecom.users behind any open transaction on it (a sync's merge, an export ingest)
-- and blocks every apply and read of the table while it waits, and the previous
-- release's workers keep running during an upgrade.

-- +goose NO TRANSACTION

-- +goose Up
DROP INDEX CONCURRENTLY IF EXISTS wecom.users_main_department_idx;

-- +goose Down
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_main_department_idx ON wecom.users (corp_id, main_department);
