// Package jobs runs wecomsync's long jobs on River (a Postgres job queue): bulk imports
// into WeCom (CSV validation against the mirror, dry-run diffs, a deletion guard, then
// media/upload → batch/syncuser|replaceuser|replaceparty → batch/getresult with per-row
// results kept in Postgres), exports out of WeCom merged into the mirror (fresh key per
// job, resumable block downloads with md5 checks, streaming decryption and JSON parsing,
// one merge transaction through mirror.Store.Sync), reconciliations that heal drift and
// report it, and the cron schedules that run them inside `worker run`.
//
// Every job keeps its resumable state in wecom.job_runs, so a job whose worker died is
// picked up by another (River re-runs it) and continues where it stopped. Waiting on
// WeCom is done by snoozing the job (river.JobSnooze), never by holding a goroutine.
package jobs
