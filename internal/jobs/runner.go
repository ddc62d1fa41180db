package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/wecomsync/wecomsync/internal/mirror"
	"github.com/wecomsync/wecomsync/internal/wecom"
)

// Queue is the River queue all wecomsync jobs run in.
const Queue = "wecom"

// WeCom is what the jobs need from a corp's REST client (*wecom.Client).
type WeCom interface {
	UploadMedia(ctx context.Context, typ, filename string, content io.Reader) (wecom.Media, error)
	SyncUsers(ctx context.Context, j wecom.ImportJob) (string, error)
	ReplaceUsers(ctx context.Context, j wecom.ImportJob) (string, error)
	ReplaceParties(ctx context.Context, j wecom.ImportJob) (string, error)
	BatchGetResult(ctx context.Context, jobID string) (wecom.BatchResult, error)
	SubmitExport(ctx context.Context, j wecom.ExportJob) (string, error)
	ExportGetResult(ctx context.Context, jobID string) (wecom.ExportResult, error)
	DownloadExportBlockToFile(ctx context.Context, b wecom.ExportBlock, path string) error
	ListTags(ctx context.Context) ([]wecom.TagSummary, error)
	GetTag(ctx context.Context, tagID int) (*wecom.Tag, error)
}

// Mirror is what the jobs need from the mirror (*mirror.Store): the snapshot merge and the
// recorded batch_job_result events.
type Mirror interface {
	Sync(ctx context.Context, corpID string, src mirror.SyncSource) (mirror.SyncReport, error)
	ChangeWatermark(ctx context.Context, corpID string) (int64, error)
	JobEvent(ctx context.Context, corpID, jobID string) (mirror.JobEvent, error)
}

// Config configures a Runner. Pool is required; the rest is needed by the jobs that use it.
type Config struct {
	// Pool is the Postgres pool of River, the job tables and the mirror reads. It should
	// allow at least 8 connections (River's listener and producers, a merge transaction
	// and its streaming reads).
	Pool *pgxpool.Pool
	// Mirror merges exports and reconciliations.
	Mirror Mirror
	// Clients are the WeCom clients by corp id (contacts-sync secrets).
	Clients map[string]WeCom
	// Fallback returns a list-API snapshot of a corp for reconciliations where WeCom
	// refuses exports (48009 and the other ErrNoPermission codes). Optional.
	Fallback func(corpID string) (mirror.SyncSource, error)
	// WorkDir holds downloaded export blocks (resumable .part files) while a job runs.
	// Default: os.TempDir()/wecomsync-jobs.
	WorkDir string
	// Logger receives job logs. Default: discard.
	Logger *slog.Logger
	// Registerer, when set, gets the runner's Prometheus collectors.
	Registerer prometheus.Registerer
	// Concurrency is how many jobs this process works at once. Default 4.
	Concurrency int
	// PollMin and PollMax bound the snooze between polls of a WeCom job (doubling from
	// PollMin). Defaults 1s and 30s.
	PollMin, PollMax time.Duration
	// ExportBlockSize is the export block size (entities per file). Default 0 = WeCom's
	// default (10^6).
	ExportBlockSize int
	// Periodic jobs (reconciliations and scheduled imports), installed only when
	// Schedules is set (by `worker run`).
	Schedules *Schedules
	// RescueStuckJobsAfter is how long a job may stay running before River assumes its
	// worker died and runs it again. Default 1h (River's default).
	RescueStuckJobsAfter time.Duration
	// JobTimeout bounds one attempt of a job. Default 2h.
	JobTimeout time.Duration
	// Hook, for tests, is called at named points of a job ("downloaded <kind> <i>",
	// "merging"); a returned error fails the attempt there.
	Hook func(ctx context.Context, jobID int64, point string) error
	// ClientID names this process's River client (default River's own).
	ClientID string
}

func (c Config) withDefaults() Config {
	if c.WorkDir == "" {
		c.WorkDir = os.TempDir() + "/wecomsync-jobs"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.PollMin <= 0 {
		c.PollMin = time.Second
	}
	if c.PollMax <= 0 {
		c.PollMax = 30 * time.Second
	}
	if c.JobTimeout <= 0 {
		c.JobTimeout = 2 * time.Hour
	}
	return c
}

// Runner runs import, export and reconcile jobs on River: it registers the workers, the
// periodic jobs, and offers the enqueue and inspection calls the CLI uses. Safe for
// concurrent use.
type Runner struct {
	cfg     Config
	pool    *pgxpool.Pool
	river   *river.Client[pgx.Tx]
	view    *MirrorView
	log     *slog.Logger
	metrics *Metrics
}

// New returns a Runner; it does not start working jobs (see Start). Errors: a missing
// pool, a bad schedule, collectors that cannot be registered.
func New(cfg Config) (*Runner, error) {
	cfg = cfg.withDefaults()
	if cfg.Pool == nil {
		return nil, errors.New("jobs runner needs a Postgres pool")
	}
	m, err := NewMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, pool: cfg.Pool, view: NewMirrorView(cfg.Pool), log: cfg.Logger, metrics: m}
	workers := river.NewWorkers()
	river.AddWorker(workers, &importWorker{r: r})
	river.AddWorker(workers, &exportWorker{r: r})
	river.AddWorker(workers, &reconcileWorker{r: r})
	rc := &river.Config{
		ID:                   cfg.ClientID,
		Logger:               cfg.Logger,
		Queues:               map[string]river.QueueConfig{Queue: {MaxWorkers: cfg.Concurrency}},
		Workers:              workers,
		JobTimeout:           cfg.JobTimeout,
		RescueStuckJobsAfter: cfg.RescueStuckJobsAfter,
		// Polling WeCom is done by snoozing, which River does not count as an attempt;
		// MaxAttempts bounds real failures (network, 5xx, -1) only.
		MaxAttempts: 12,
	}
	if cfg.Schedules != nil {
		rc.PeriodicJobs = cfg.Schedules.periodicJobs()
	}
	rc.FetchPollInterval = 200 * time.Millisecond
	client, err := river.NewClient(riverpgxv5.New(cfg.Pool), rc)
	if err != nil {
		return nil, fmt.Errorf("creating river client: %w", err)
	}
	r.river = client
	return r, nil
}

// River returns the underlying River client (for tests and the CLI).
func (r *Runner) River() *river.Client[pgx.Tx] { return r.river }

// Start starts working jobs (and, with Schedules, the periodic jobs). It returns once
// started; Stop ends it.
func (r *Runner) Start(ctx context.Context) error {
	if err := os.MkdirAll(r.cfg.WorkDir, 0o700); err != nil {
		return fmt.Errorf("creating job work dir: %w", err)
	}
	if err := r.river.Start(ctx); err != nil {
		return fmt.Errorf("starting job runner: %w", err)
	}
	return nil
}

// Stop stops fetching jobs and waits for running ones to finish (until ctx ends, when
// they are cancelled and retried later by any runner).
func (r *Runner) Stop(ctx context.Context) error {
	err := r.river.Stop(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		err = r.river.StopAndCancel(context.WithoutCancel(ctx))
	}
	return err
}

// Kill stops the runner abruptly, cancelling running jobs (a test stand-in for a
// crashed worker: the jobs are retried by another runner).
func (r *Runner) Kill(ctx context.Context) error { return r.river.StopAndCancel(ctx) }

// WakeOnJobEvent makes the job waiting for WeCom job e.JobID poll at once (used for
// batch_job_result events, so an import finishes without waiting for its next poll).
// Unknown job ids are ignored.
func (r *Runner) WakeOnJobEvent(ctx context.Context, e mirror.JobEvent) error {
	var id int64
	err := r.pool.QueryRow(ctx, `SELECT river_job_id FROM wecom.job_runs WHERE corp_id = $1 AND state->>'wecom_job_id' = $2
		ORDER BY river_job_id DESC LIMIT 1`, e.CorpID, e.JobID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finding job of wecom job %s: %w", e.JobID, err)
	}
	if _, err := r.river.JobRetry(ctx, id); err != nil {
		return fmt.Errorf("waking job %d: %w", id, err)
	}
	r.log.InfoContext(ctx, "job woken by batch_job_result", slog.Int64("job_id", id), slog.String("wecom_job_id", e.JobID))
	return nil
}

// RunJobEvents wakes jobs for every event received on ch until ctx ends or ch closes
// (pass worker.JobEvents.C()). It never blocks the sender for long.
func (r *Runner) RunJobEvents(ctx context.Context, ch <-chan mirror.JobEvent) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-ch:
			if !ok {
				return
			}
			if err := r.WakeOnJobEvent(ctx, e); err != nil {
				r.log.WarnContext(ctx, "waking job", slog.String("error", err.Error()))
			}
		}
	}
}

func (r *Runner) client(corpID string) (WeCom, error) {
	c, ok := r.cfg.Clients[corpID]
	if !ok {
		return nil, fmt.Errorf("no WeCom credentials configured for corp %s", corpID)
	}
	return c, nil
}

func (r *Runner) hook(ctx context.Context, id int64, point string) error {
	if r.cfg.Hook == nil {
		return nil
	}
	return r.cfg.Hook(ctx, id, point)
}

// backoff is the snooze before poll n (0-based): PollMin doubling up to PollMax.
func (r *Runner) backoff(n int) time.Duration {
	d := r.cfg.PollMin
	for i := 0; i < n && d < r.cfg.PollMax; i++ {
		d *= 2
	}
	return min(d, r.cfg.PollMax)
}

// run is a wecom.job_runs row.
type run struct {
	ID      int64
	CorpID  string
	Kind    string
	Phase   string
	Done    int64
	Total   int64
	State   json.RawMessage
	Summary json.RawMessage
	Error   *string
	Created time.Time
	Updated time.Time
}

// ensureRun returns the job's row, creating it for jobs inserted by River itself
// (periodic jobs).
func (r *Runner) ensureRun(ctx context.Context, id int64, corpID, kind string) (*run, error) {
	var x run
	err := r.pool.QueryRow(ctx, `INSERT INTO wecom.job_runs (river_job_id, corp_id, kind) VALUES ($1, $2, $3)
		ON CONFLICT (river_job_id) DO UPDATE SET updated_at = now()
		RETURNING river_job_id, corp_id, kind, phase, done, total, state`, id, corpID, kind).
		Scan(&x.ID, &x.CorpID, &x.Kind, &x.Phase, &x.Done, &x.Total, &x.State)
	if err != nil {
		return nil, fmt.Errorf("reading job %d: %w", id, err)
	}
	return &x, nil
}

// save records a job's phase, progress and resumable state.
func (r *Runner) save(ctx context.Context, id int64, phase string, done, total int64, state any) error {
	b, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("encoding job %d state: %w", id, err)
	}
	_, err = r.pool.Exec(ctx, `UPDATE wecom.job_runs SET phase = $2, done = $3, total = $4, state = $5, updated_at = now()
		WHERE river_job_id = $1`, id, phase, done, total, b)
	if err != nil {
		return fmt.Errorf("saving job %d: %w", id, err)
	}
	return nil
}

// fail records a permanent failure and returns it wrapped in river.JobCancel (no retry).
func (r *Runner) fail(ctx context.Context, id int64, kind string, err error) error {
	_, uerr := r.pool.Exec(context.WithoutCancel(ctx), `UPDATE wecom.job_runs SET phase = 'failed', error = $2, state = '{}',
		updated_at = now() WHERE river_job_id = $1`, id, err.Error())
	if uerr != nil {
		r.log.ErrorContext(ctx, "recording job failure", slog.Int64("job_id", id), slog.String("error", uerr.Error()))
	}
	r.metrics.Jobs.WithLabelValues(kind, "failed").Inc()
	r.log.ErrorContext(ctx, "job failed", slog.Int64("job_id", id), slog.String("kind", kind), slog.String("error", err.Error()))
	return river.JobCancel(err)
}

// noteError records the latest transient error (the job is retried).
func (r *Runner) noteError(ctx context.Context, id int64, err error) error {
	_, _ = r.pool.Exec(context.WithoutCancel(ctx), `UPDATE wecom.job_runs SET error = $2, updated_at = now() WHERE river_job_id = $1`, id, err.Error())
	return err
}

// finish marks the job done in tx with summary and completes the River job in the same
// transaction.
func finish[T river.JobArgs](ctx context.Context, tx pgx.Tx, job *river.Job[T], summary any) error {
	b, err := json.Marshal(summary)
	if err != nil {
		return fmt.Errorf("encoding job summary: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE wecom.job_runs SET phase = 'done', summary = $2, state = '{}', error = NULL,
		updated_at = now() WHERE river_job_id = $1`, job.ID, b); err != nil {
		return fmt.Errorf("recording job %d done: %w", job.ID, err)
	}
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("completing job %d: %w", job.ID, err)
	}
	return nil
}

// permanent reports whether a WeCom error will not go away by retrying.
func permanent(err error) bool {
	var we *wecom.Error
	if !errors.As(err, &we) {
		return false
	}
	for _, transient := range []error{wecom.ErrRateLimited, wecom.ErrConcurrency, wecom.ErrSystemBusy, wecom.ErrTokenInvalid} {
		if errors.Is(err, transient) {
			return false
		}
	}
	return true
}

// uniqueActive are the River states in which a unique job blocks a duplicate: a finished
// job does not, so the same import or reconcile can run again later.
var uniqueActive = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
	rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateScheduled}
