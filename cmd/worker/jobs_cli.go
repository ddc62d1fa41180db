package main

// The job commands (import, export, reconcile, jobs) and the job runner inside
// `worker run`, over internal/jobs. run() dispatches to runJobCommand for those
// subcommands; runWorker calls startJobRunner after the mirror store exists.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	jobrun "github.com/wecomsync/wecomsync/internal/jobs"
	"github.com/wecomsync/wecomsync/internal/mirror"
	"github.com/wecomsync/wecomsync/internal/wecom"
	"github.com/wecomsync/wecomsync/internal/worker"
)

// isJobCommand reports whether cmd is one of the job commands.
func isJobCommand(cmd string) bool {
	switch cmd {
	case "import", "export", "reconcile", "jobs":
		return true
	}
	return false
}

// jobsConfig builds the job runner configuration shared by `worker run` and the job
// commands: a contacts-sync client per corp (tokens shared through Postgres), the list-API
// fallback source, the work dir (WORKER_JOBS_DIR, default $TMPDIR/wecomsync-jobs).
func jobsConfig(cfg Config, getenv func(string) string, pool *pgxpool.Pool, store *mirror.Store, reg prometheus.Registerer, log *slog.Logger) (jobrun.Config, error) {
	clients := map[string]jobrun.WeCom{}
	dirs := map[string]worker.DirectoryClient{}
	tokens := wecom.NewPGTokenStore(pool)
	for _, t := range cfg.Tenants {
		c, err := wecom.New(wecom.Config{BaseURL: cfg.APIURL, CorpID: t.CorpID, Secret: t.ContactSecret, Store: tokens,
			Logger: log, Registerer: reg})
		if err != nil {
			return jobrun.Config{}, fmt.Errorf("creating WeCom client for %s: %w", t.CorpID, err)
		}
		clients[t.CorpID], dirs[t.CorpID] = c, c
	}
	wc := worker.NewWeCom(dirs, cfg.APIConcurrency)
	dir := getenv("WORKER_JOBS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "wecomsync-jobs")
	}
	return jobrun.Config{Pool: pool, Mirror: store, Clients: clients, Fallback: wc.Source, WorkDir: dir,
		Logger: log, Registerer: reg}, nil
}

// openJobsPool opens the job runner's own pool of at least 10 connections: River keeps a
// LISTEN connection and its producers, and a merge holds a transaction while streaming
// reads run beside it, so sharing the lane's small pool could starve either.
func openJobsPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing DATABASE_URL: %w", err)
	}
	pc.MaxConns = max(pc.MaxConns, 10)
	pc.ConnConfig.RuntimeParams["application_name"] = "wecomsync-jobs"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("creating the job runner's Postgres pool: %w", err)
	}
	return pool, nil
}

// runJobCommand runs `worker import|export|reconcile|jobs ...` (args without the program
// name).
func runJobCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	n := need{tenants: true, contact: args[0] != "jobs"}
	cfg, err := loadConfig(getenv, n)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := newLogger(stderr, cfg.LogLevel)
	check, err := openDB(ctx, cfg.DatabaseURL) // refuses a schema with pending migrations
	if err != nil {
		return err
	}
	check.Close()
	pool, err := openJobsPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := mirror.NewStore(pool, nil, log, mirror.Options{})
	defer func() { store.WaitAnalyze(); store.Close() }() // one-shot jobs: let a post-sync ANALYZE finish
	jc, err := jobsConfig(cfg, getenv, pool, store, nil, log)
	if err != nil {
		return err
	}
	cli := &jobrun.CLI{Config: jc, Corps: cfg.corpIDs(), Getenv: getenv}
	return cli.Run(ctx, args, stdout, stderr)
}

// startJobRunner starts the job runner of `worker run`: it works queued jobs, installs the
// periodic reconciliations and imports (WORKER_RECONCILE_CRON, WORKER_IMPORT_SCHEDULES)
// and wakes imports on the batch_job_result events from events. The returned stop
// drains running jobs until its context ends.
func startJobRunner(ctx context.Context, cfg Config, getenv func(string) string, store *mirror.Store,
	events <-chan mirror.JobEvent, reg prometheus.Registerer, log *slog.Logger) (func(context.Context) error, error) {
	pool, err := openJobsPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	jc, err := jobsConfig(cfg, getenv, pool, store, reg, log)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if jc.Schedules, err = jobrun.SchedulesFromEnv(getenv, cfg.corpIDs()); err != nil {
		pool.Close()
		return nil, fmt.Errorf("configuration: %w", err)
	}
	r, err := jobrun.New(jc)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if err := r.Start(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	evCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.RunJobEvents(evCtx, events)
	}()
	return func(sctx context.Context) error {
		cancel()
		<-done
		err := r.Stop(sctx)
		pool.Close()
		return err
	}, nil
}
