-- users_main_department_idx served no query: a department's members are found through
-- user_departments (its department index covers every membership, the main one
-- included), and nothing reads members by main_department alone. Every member insert,
-- and every update that is not HOT, paid for it: measured with pg_stat_statements on
-- BenchmarkApplyBatch, the member INSERT took 11% and the UPDATE 5% less time without it
-- (apply rate +7%). Dropping an index takes a brief exclusive lock; no rewrite.

-- +goose Up
DROP INDEX IF EXISTS wecom.users_main_department_idx;

-- +goose Down
CREATE INDEX IF NOT EXISTS users_main_department_idx ON wecom.users (corp_id, main_department);
