package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// JobInfo is a job as `worker jobs list|show` display it: River's view (state, attempts,
// errors) and ours (corp, kind, phase, progress, summary).
type JobInfo struct {
	ID          int64              `json:"id"`
	Kind        string             `json:"kind"`
	CorpID      string             `json:"corp_id"`
	State       rivertype.JobState `json:"state"`
	Phase       string             `json:"phase"`
	Done        int64              `json:"done"`
	Total       int64              `json:"total"`
	Attempt     int                `json:"attempt"`
	Args        json.RawMessage    `json:"args"`
	Summary     json.RawMessage    `json:"summary,omitempty"`
	Error       string             `json:"error,omitempty"`
	Errors      []string           `json:"errors,omitempty"`
	CreatedAt   time.Time          `json:"created_at"`
	FinishedAt  *time.Time         `json:"finished_at,omitempty"`
	ScheduledAt time.Time          `json:"scheduled_at"`
	Results     []ImportResultRow  `json:"results,omitempty"`
	row         *rivertype.JobRow
}

// ImportResultRow is one per-row result of an import.
type ImportResultRow struct {
	Seq     int    `json:"seq"`
	UserID  string `json:"userid,omitempty"`
	PartyID int64  `json:"partyid,omitempty"`
	Action  int    `json:"action,omitempty"`
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// Finished reports whether the job will not run again (completed, cancelled, discarded).
func (j *JobInfo) Finished() bool {
	switch j.State {
	case rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
		return true
	}
	return false
}

// ErrJobNotFound is returned for an unknown job id.
var ErrJobNotFound = errors.New("job not found")

// Show returns job id with its per-row results (imports; at most 10,000 rows).
func (r *Runner) Show(ctx context.Context, id int64) (*JobInfo, error) {
	row, err := r.river.JobGet(ctx, id)
	if errors.Is(err, river.ErrNotFound) {
		return nil, fmt.Errorf("job %d: %w", id, ErrJobNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading job %d: %w", id, err)
	}
	j := r.info(ctx, row)
	rows, err := r.pool.Query(ctx, `SELECT seq, coalesce(userid, ''), coalesce(partyid, 0), coalesce(action, 0), errcode, errmsg
		FROM wecom.import_results WHERE river_job_id = $1 ORDER BY seq LIMIT 10000`, id)
	if err != nil {
		return nil, fmt.Errorf("reading results of job %d: %w", id, err)
	}
	var x ImportResultRow
	_, err = pgx.ForEachRow(rows, []any{&x.Seq, &x.UserID, &x.PartyID, &x.Action, &x.ErrCode, &x.ErrMsg}, func() error {
		j.Results = append(j.Results, x)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading results of job %d: %w", id, err)
	}
	return j, nil
}

// info joins a River job row with its job_runs row.
func (r *Runner) info(ctx context.Context, row *rivertype.JobRow) *JobInfo {
	j := &JobInfo{ID: row.ID, Kind: row.Kind, State: row.State, Attempt: row.Attempt, Args: row.EncodedArgs,
		CreatedAt: row.CreatedAt, FinishedAt: row.FinalizedAt, ScheduledAt: row.ScheduledAt, row: row}
	for _, e := range row.Errors {
		j.Errors = append(j.Errors, e.Error)
	}
	var errText *string
	err := r.pool.QueryRow(ctx, `SELECT corp_id, kind, phase, done, total, summary, error FROM wecom.job_runs WHERE river_job_id = $1`, row.ID).
		Scan(&j.CorpID, &j.Kind, &j.Phase, &j.Done, &j.Total, &j.Summary, &errText)
	if err == nil && errText != nil {
		j.Error = *errText
	}
	if err != nil {
		// Not started yet and inserted by River itself (a periodic job): River's view only.
		var a struct {
			CorpID string `json:"corp_id"`
		}
		_ = json.Unmarshal(row.EncodedArgs, &a)
		j.CorpID, j.Kind, j.Phase = a.CorpID, strings.TrimPrefix(row.Kind, "wecom_"), string(row.State)
	}
	return j
}

// List returns the latest jobs (newest first), at most limit.
func (r *Runner) List(ctx context.Context, limit int) ([]*JobInfo, error) {
	res, err := r.river.JobList(ctx, river.NewJobListParams().Kinds(ImportArgs{}.Kind(), ExportArgs{}.Kind(), ReconcileArgs{}.Kind()).
		States(rivertype.JobStateAvailable, rivertype.JobStateCancelled, rivertype.JobStateCompleted, rivertype.JobStateDiscarded,
			rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled).
		OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(limit))
	if err != nil {
		return nil, fmt.Errorf("listing jobs: %w", err)
	}
	out := make([]*JobInfo, 0, len(res.Jobs))
	for _, row := range res.Jobs {
		out = append(out, r.info(ctx, row))
	}
	return out, nil
}

// Cancel cancels job id: a queued or snoozed job never runs; a running one has its
// context cancelled (a WeCom job already submitted keeps running in WeCom).
func (r *Runner) Cancel(ctx context.Context, id int64) (*JobInfo, error) {
	row, err := r.river.JobCancel(ctx, id)
	if errors.Is(err, river.ErrNotFound) {
		return nil, fmt.Errorf("job %d: %w", id, ErrJobNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("cancelling job %d: %w", id, err)
	}
	_, _ = r.pool.Exec(ctx, `UPDATE wecom.job_runs SET phase = 'cancelled', updated_at = now() WHERE river_job_id = $1
		AND phase NOT IN ('done', 'failed')`, id)
	return r.info(ctx, row), nil
}

// Retry makes a failed, cancelled or snoozed job run again now (River's JobRetry). A job
// that failed permanently starts over (its state is cleared).
func (r *Runner) Retry(ctx context.Context, id int64) (*JobInfo, error) {
	_, _ = r.pool.Exec(ctx, `UPDATE wecom.job_runs SET phase = 'retrying', error = NULL, updated_at = now()
		WHERE river_job_id = $1 AND phase IN ('failed', 'cancelled')`, id)
	row, err := r.river.JobRetry(ctx, id)
	if errors.Is(err, river.ErrNotFound) {
		return nil, fmt.Errorf("job %d: %w", id, ErrJobNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("retrying job %d: %w", id, err)
	}
	return r.info(ctx, row), nil
}

// Follow calls progress with the job's state every interval until it is finished, and
// returns the final state. It blocks until then or ctx ends.
func (r *Runner) Follow(ctx context.Context, id int64, interval time.Duration, progress func(*JobInfo)) (*JobInfo, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		row, err := r.river.JobGet(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("following job %d: %w", id, err)
		}
		j := r.info(ctx, row)
		if progress != nil {
			progress(j)
		}
		if j.Finished() {
			return r.Show(ctx, id)
		}
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-t.C:
		}
	}
}
