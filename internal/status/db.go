package status

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wecomsync/wecomsync/internal/jobs"
)

// The queries read only the documented tables of migrations/00001, 00003 and 00010. Each
// is a grouped or index-bounded read, cheap enough for a page that refreshes every few
// seconds: counts are index-only scans of the primary keys, the newest change is the
// last entry of the (corp_id, seq) key, and the unpublished-change count stops at
// RelayCountCap.
const (
	sizesSQL = `SELECT corp_id, sum(u)::bigint, sum(d)::bigint, sum(t)::bigint FROM (
		SELECT corp_id, count(*) AS u, 0 AS d, 0 AS t FROM wecom.users GROUP BY corp_id
		UNION ALL SELECT corp_id, 0, count(*), 0 FROM wecom.departments GROUP BY corp_id
		UNION ALL SELECT corp_id, 0, 0, count(*) FROM wecom.tags GROUP BY corp_id) x
		GROUP BY corp_id`
	lanesSQL      = `SELECT corp_id, last_stream_seq, updated_at FROM wecom.lanes`
	deadCountSQL  = `SELECT corp_id, count(*) FROM wecom.dead_letters WHERE replayed_at IS NULL GROUP BY corp_id`
	deadLatestSQL = `SELECT id, corp_id, stream_seq, subject, left(reason, 500), at FROM wecom.dead_letters
		WHERE replayed_at IS NULL ORDER BY id DESC LIMIT $1`
	// The job columns: never state (an export's keys and download URLs live there).
	jobColumns = `river_job_id, corp_id, kind, phase, done, total, summary, left(coalesce(error, ''), 500), created_at, updated_at`
	// The latest finished reconcile of each corp, and the latest of any phase.
	reconcileDoneSQL = `SELECT DISTINCT ON (corp_id) ` + jobColumns + ` FROM wecom.job_runs
		WHERE kind = 'reconcile' AND phase = 'done' ORDER BY corp_id, created_at DESC, river_job_id DESC`
	reconcileLatestSQL = `SELECT DISTINCT ON (corp_id) ` + jobColumns + ` FROM wecom.job_runs
		WHERE kind = 'reconcile' ORDER BY corp_id, created_at DESC, river_job_id DESC`
	runningJobsSQL = `SELECT ` + jobColumns + ` FROM wecom.job_runs
		WHERE phase NOT IN ('done', 'failed', 'cancelled') ORDER BY created_at DESC, river_job_id DESC LIMIT 50`
	recentJobsSQL = `SELECT ` + jobColumns + ` FROM wecom.job_runs
		WHERE phase IN ('done', 'failed', 'cancelled') ORDER BY updated_at DESC, river_job_id DESC LIMIT $1`
	relaySQL = `SELECT c.corp_id, coalesce(r.published_seq, 0), r.updated_at,
		coalesce((SELECT max(seq) FROM wecom.changes WHERE corp_id = c.corp_id), 0),
		(SELECT count(*) FROM (SELECT 1 FROM wecom.changes ch
			WHERE ch.corp_id = c.corp_id AND ch.seq > coalesce(r.published_seq, 0) LIMIT $2) x)
		FROM unnest($1::text[]) AS c(corp_id) LEFT JOIN wecom.relay_cursors r ON r.corp_id = c.corp_id`
)

// readDB fills in every Postgres figure.
func (c *collector) readDB(ctx context.Context) {
	c.each(ctx, "mirror sizes", sizesSQL, nil, func(r pgx.Rows) error {
		var id string
		var u, d, t int64
		if err := r.Scan(&id, &u, &d, &t); err != nil {
			return err
		}
		x := c.corp(id)
		x.Users, x.Departments, x.Tags = u, d, t
		return nil
	})
	c.each(ctx, "lane positions", lanesSQL, nil, func(r pgx.Rows) error {
		var id string
		var seq int64
		var at time.Time
		if err := r.Scan(&id, &seq, &at); err != nil {
			return err
		}
		c.corp(id).LastApplied = &Applied{StreamSeq: uint64(seq), At: at.UTC()}
		return nil
	})
	c.each(ctx, "dead letters", deadCountSQL, nil, func(r pgx.Rows) error {
		var id string
		var n int64
		if err := r.Scan(&id, &n); err != nil {
			return err
		}
		c.corp(id).DeadLetters = n
		c.s.DeadLetters.Pending += n
		return nil
	})
	c.each(ctx, "latest dead letters", deadLatestSQL, []any{c.h.cfg.RecentDeadLetters}, func(r pgx.Rows) error {
		var d DeadLetter
		if err := r.Scan(&d.ID, &d.CorpID, &d.StreamSeq, &d.Subject, &d.Reason, &d.At); err != nil {
			return err
		}
		d.At = d.At.UTC()
		c.s.DeadLetters.Latest = append(c.s.DeadLetters.Latest, d)
		return nil
	})
	c.each(ctx, "reconciliations", reconcileDoneSQL, nil, func(r pgx.Rows) error {
		j, err := scanJob(r)
		if err != nil {
			return err
		}
		c.corp(j.CorpID).Reconcile.Last = j
		return nil
	})
	c.each(ctx, "reconciliations", reconcileLatestSQL, nil, func(r pgx.Rows) error {
		j, err := scanJob(r)
		if err != nil {
			return err
		}
		x := c.corp(j.CorpID)
		if x.Reconcile.Last == nil || x.Reconcile.Last.ID != j.ID {
			x.Reconcile.Current = j
		}
		return nil
	})
	c.each(ctx, "running jobs", runningJobsSQL, nil, func(r pgx.Rows) error {
		j, err := scanJob(r)
		if err != nil {
			return err
		}
		c.s.Jobs.Running = append(c.s.Jobs.Running, *j)
		return nil
	})
	c.each(ctx, "recent jobs", recentJobsSQL, []any{c.h.cfg.RecentJobs}, func(r pgx.Rows) error {
		j, err := scanJob(r)
		if err != nil {
			return err
		}
		c.s.Jobs.Recent = append(c.s.Jobs.Recent, *j)
		return nil
	})
	// The relay last: it reads the corps found so far, so a corp that has changes but no
	// cursor yet (a relay that never ran) shows everything unpublished.
	ids := make([]string, 0, len(c.corps))
	for id := range c.corps {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return
	}
	c.each(ctx, "relay positions", relaySQL, []any{ids, RelayCountCap + 1}, func(r pgx.Rows) error {
		var id string
		var rl Relay
		if err := r.Scan(&id, &rl.PublishedSeq, &rl.UpdatedAt, &rl.MaxSeq, &rl.Behind); err != nil {
			return err
		}
		if rl.Behind > RelayCountCap {
			rl.Behind, rl.Capped = RelayCountCap, true
		}
		if rl.UpdatedAt != nil {
			t := rl.UpdatedAt.UTC()
			rl.UpdatedAt = &t
		}
		c.corp(id).Relay = rl
		return nil
	})
}

// each runs one query and calls f for every row; a failure becomes a problem line named
// what (once per name).
func (c *collector) each(ctx context.Context, what, sql string, args []any, f func(pgx.Rows) error) {
	rows, err := c.h.cfg.DB.Query(ctx, sql, args...)
	if err == nil {
		for rows.Next() && err == nil {
			err = f(rows)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		for _, p := range c.s.Problems {
			if strings.HasPrefix(p, what+" ") {
				return
			}
		}
		c.problem(ctx, what, err)
	}
}

// scanJob scans jobColumns.
func scanJob(r pgx.Rows) (*JobRun, error) {
	var j JobRun
	if err := r.Scan(&j.ID, &j.CorpID, &j.Kind, &j.Phase, &j.Done, &j.Total, &j.Summary, &j.Error, &j.CreatedAt, &j.UpdatedAt); err != nil {
		return nil, err
	}
	j.CreatedAt, j.UpdatedAt = j.CreatedAt.UTC(), j.UpdatedAt.UTC()
	j.Drift = driftOf(j.Kind, j.Summary)
	return &j, nil
}

// driftOf reads the merge counts of a finished reconcile or export summary
// (jobs.ExportSummary); nil for other kinds or no summary.
func driftOf(kind string, summary json.RawMessage) *Drift {
	if len(summary) == 0 || (kind != "reconcile" && !strings.HasPrefix(kind, "export_")) {
		return nil
	}
	var s jobs.ExportSummary
	if err := json.Unmarshal(summary, &s); err != nil {
		return nil
	}
	d := &Drift{Users: s.Users, Departments: s.Departments, Tags: s.Tags}
	for _, x := range []jobs.Counts{s.Users, s.Departments, s.Tags} {
		d.Total += x.Created + x.Updated + x.Deleted
	}
	return d
}
