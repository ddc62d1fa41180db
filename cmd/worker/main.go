// Command worker keeps the Postgres mirror of WeCom contact directories in step with the
// WECOM_EVENTS stream and publishes the mirror's changes to WECOM_CHANGES. Configuration
// is by environment (see README.md).
//
//	worker migrate up|down|status       apply, roll back or list schema migrations
//	worker run                          initial sync of empty mirrors, the apply lanes, the change
//	                                    relay and the job runner; / (status page) /status.json
//	                                    /healthz /readyz /metrics
//	worker sync --corp CORP             full sync of one corp from the WeCom API, now
//	worker events dead [--corp CORP]    list dead letters not yet replayed
//	worker events replay ID|--all       re-apply dead letters and mark them replayed
//
// Environment (besides DATABASE_URL, NATS_URL, WECOM_CORP_ID, WECOM_CONTACT_SECRET,
// WECOM_API_URL, WECOM_TENANTS_FILE and LOG_LEVEL):
//
//	WORKER_ADMIN_ADDR          :8081             admin HTTP server
//	WORKER_CONSUMER            wecomsync-mirror  durable consumer (lane) name on WECOM_EVENTS; with
//	                                             partitions, lane i is <name>-p<i>
//	WORKER_PARTITIONS          1                 lanes the corps are spread over (FNV-1a of the corp id
//	                                             mod N); raise it (2-4 per replica) to spread corps over
//	                                             several replicas. Every replica pulls every lane; each
//	                                             lane is applied by one replica at a time (see
//	                                             internal/worker). To change it, stop the workers,
//	                                             change it everywhere, start them.
//	WORKER_BATCH_SIZE          4000              events per batch (MaxAckPending is twice this)
//	WORKER_MAX_WAIT            100ms             longest wait for a full batch
//	WORKER_ACK_WAIT            30s               redelivery after an unacked delivery
//	WORKER_PINNED_TTL          10s               failover: a silent pinned replica is replaced after this
//	WORKER_MAX_DELIVER         -1                deliveries per event (-1 unlimited; poison is dead-lettered)
//	WORKER_RETRY_BACKOFF       1s,2s,5s,10s,30s  NakWithDelay schedule for transient errors
//	WORKER_SHUTDOWN_TIMEOUT    20s               to finish the batch in flight and drain
//	WORKER_APPLY_TIMEOUT       2m                a batch's apply (lookups included) is cancelled and retried after this
//	WORKER_LOOKUP_CONCURRENCY  4                 concurrent lookups per batch
//	WORKER_API_CONCURRENCY     8                 concurrent WeCom calls per corp during a sync
//	WORKER_INITIAL_SYNC        true              sync a corp whose mirror is empty before applying
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wecomsync/wecomsync/internal/callback"
	"github.com/wecomsync/wecomsync/internal/db"
	"github.com/wecomsync/wecomsync/internal/mirror"
	"github.com/wecomsync/wecomsync/internal/status"
	"github.com/wecomsync/wecomsync/internal/wecom"
	"github.com/wecomsync/wecomsync/internal/worker"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  worker migrate up|down|status
  worker run
  worker sync --corp CORP_ID
  worker events dead [--corp CORP_ID] [--limit N]
  worker events replay ID | --all [--corp CORP_ID]
  worker import users --file F --mode sync|replace [--dry-run] [--allow-deletes N] [--corp ID] [--detach]
  worker import departments --file F [--dry-run] [--corp ID] [--detach]
  worker export users|simple-users|departments | tag --id N [--corp ID] [--detach]
  worker reconcile [--corp ID] [--detach]
  worker jobs list [--limit N] | show ID | cancel ID | retry ID`

// run executes the subcommand in args[1:]. `run` blocks until ctx ends or SIGINT/SIGTERM
// arrives and prints "worker ready admin=HOST:PORT" on stdout once it is consuming; the
// other subcommands print their results on stdout and return.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) < 2 {
		return errors.New(usage)
	}
	switch args[1] {
	case "migrate":
		if len(args) != 3 {
			return errors.New("worker migrate takes one of up, down or status\n" + usage)
		}
		dir := db.Direction(args[2])
		if dir != db.Up && dir != db.Down && dir != db.Status {
			return fmt.Errorf("worker migrate takes up, down or status, got %q", args[2])
		}
		cfg, err := loadConfig(getenv, need{})
		if err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
		pool, err := db.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		return db.Migrate(ctx, pool, dir, stdout)
	case "run":
		if len(args) != 2 {
			return fmt.Errorf("worker run takes no arguments (configure it by environment), got %q", strings.Join(args[2:], " "))
		}
		return runWorker(ctx, getenv, stdout, stderr)
	case "sync":
		return runSync(ctx, args[2:], getenv, stdout, stderr)
	case "events":
		if len(args) < 3 {
			return errors.New("worker events takes dead or replay\n" + usage)
		}
		switch args[2] {
		case "dead":
			return runDead(ctx, args[3:], getenv, stdout, stderr)
		case "replay":
			return runReplay(ctx, args[3:], getenv, stdout, stderr)
		}
		return fmt.Errorf("worker events takes dead or replay, got %q", args[2])
	}
	if isJobCommand(args[1]) { // import, export, reconcile, jobs: internal/jobs (jobs_cli.go)
		return runJobCommand(ctx, args[1:], getenv, stdout, stderr)
	}
	return fmt.Errorf("unknown command %q\n%s", args[1], usage)
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// openDB opens the pool and refuses a schema with pending migrations.
func openDB(ctx context.Context, url string, opts ...func(*pgxpool.Config)) (*pgxpool.Pool, error) {
	pool, err := db.Open(ctx, url, opts...)
	if err != nil {
		return nil, err
	}
	pending, err := db.Pending(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if pending {
		pool.Close()
		return nil, errors.New("the database schema has pending migrations: run `worker migrate up` first")
	}
	return pool, nil
}

// runWorker is `worker run`: initial sync, the apply lane, the outbox relay and the admin
// HTTP server, until ctx ends; then it stops fetching, finishes the batch in flight,
// stops the relay, drains NATS and closes the pool.
func runWorker(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(getenv, need{nats: true, tenants: true, contact: true})
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := newLogger(stderr, cfg.LogLevel)
	if prev, changed := worker.SetGCDefaults(getenv); changed {
		defer debug.SetGCPercent(prev) // for callers in the same process (tests)
	}
	// One connection per lane applying at once, two for the relay (LISTEN and a publishing
	// round), one for the status page and lookups' token store, one spare.
	pool, err := openDB(ctx, cfg.DatabaseURL, db.MinConns(cfg.DatabaseURL, len(cfg.lanes())+4))
	if err != nil {
		return err
	}
	defer pool.Close()

	nc, err := nats.Connect(cfg.NATSURL, nats.Name("wecomsync-worker"), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true), nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Drain or Close
				log.Warn("NATS disconnected", slog.String("error", err.Error()))
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", slog.String("url", c.ConnectedUrlRedacted())) }))
	if err != nil {
		return fmt.Errorf("connecting to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("creating JetStream context: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := worker.NewMetrics(reg)
	mmetrics := mirror.NewMetrics(reg)
	wc, err := newWeCom(cfg, pool, reg, log)
	if err != nil {
		return err
	}
	jobs := worker.NewJobEvents(256)
	store := mirror.NewStore(pool, wc, log, mirror.Options{
		Metrics: mmetrics, LookupConcurrency: cfg.LookupConcurrency,
		OnJobEvent: func(e mirror.JobEvent) {
			if !jobs.Notify(e) {
				log.Debug("job event notification dropped (no runner reading)", slog.String("job_id", e.JobID))
			}
		},
	})
	defer store.Close() // before the pool closes: cancels a post-sync ANALYZE

	var ready atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready: starting (stream, consumer or initial sync)", http.StatusServiceUnavailable)
			return
		}
		if !nc.IsConnected() {
			http.Error(w, "not ready: NATS not connected", http.StatusServiceUnavailable)
			return
		}
		rctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := pool.Ping(rctx); err != nil {
			http.Error(w, "not ready: Postgres unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// The status page (internal/status): "/" for people (plain HTML that refreshes itself)
	// and "/status.json" for scripts; read-only figures from Postgres and WECOM_EVENTS.
	mux.Handle("GET /", status.New(status.Config{DB: pool, Streams: js, Corps: cfg.corpIDs(), Logger: log}))
	ln, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.AdminAddr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	defer srv.Close()
	log.InfoContext(ctx, "admin server listening", slog.String("addr", ln.Addr().String()))

	// Start-up steps that wait on NATS, Postgres or WeCom are retried until they work or
	// ctx ends, so the worker can start before its dependencies (readyz says when).
	lanes := cfg.lanes()
	var (
		cons   []jetstream.Consumer
		stream jetstream.Stream
	)
	err = retry(ctx, log, "preparing streams and the lane consumers", func() error {
		if err := ensureEventsStream(ctx, js); err != nil {
			return err
		}
		if err := mirror.EnsureChangesStream(ctx, js, cfg.ChangesReplicas); err != nil {
			return err
		}
		if stream, err = js.Stream(ctx, callback.StreamName); err != nil {
			return fmt.Errorf("looking up stream %s: %w", callback.StreamName, err)
		}
		cons, err = worker.EnsureLanes(ctx, js, cfg.Lane.Name, lanes, cfg.Tuning, store, log)
		return err
	})
	if err == nil && cfg.InitialSync {
		err = retry(ctx, log, "initial sync", func() error {
			return worker.InitialSync(ctx, store, wc, worker.EventsTail(js), cfg.corpIDs(), log, metrics)
		})
	}
	if err != nil {
		if ctx.Err() != nil {
			return shutdown(log, srv, nc, cfg.Tuning.ShutdownGrace)
		}
		return err
	}

	laneConsumers := make([]*worker.Consumer, len(lanes))
	laneNames := make([]string, len(lanes))
	for i, l := range lanes {
		laneConsumers[i] = worker.NewConsumer(l, cons[i], store, log, metrics, cfg.Tuning, cfg.corpIDs())
		laneConsumers[i].SetUnpinner(stream)
		laneNames[i] = l.Name
	}
	lane := worker.NewGroup(laneConsumers, log, cfg.Tuning)
	relay := mirror.NewRelay(pool, js, log, mirror.RelayOptions{Metrics: mmetrics})
	var wg sync.WaitGroup
	laneCtx, stopLane := context.WithCancel(ctx)
	defer stopLane()
	laneDone := make(chan error, 1)
	go func() { laneDone <- lane.Run(laneCtx) }()
	relayCtx, stopRelay := context.WithCancel(context.Background())
	defer stopRelay()
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The relay is supervised: a failing relay is restarted, never the lane stopped.
		for relayCtx.Err() == nil {
			if err := relay.Run(relayCtx); err != nil && relayCtx.Err() == nil {
				log.ErrorContext(relayCtx, "change relay stopped; restarting", slog.String("error", err.Error()))
				sleepCtx(relayCtx, 5*time.Second)
			}
		}
	}()
	// The job runner (internal/jobs, jobs_cli.go): queued imports, exports and
	// reconciliations, their cron schedules, and imports woken by batch_job_result events.
	stopJobs, err := startJobRunner(ctx, cfg, getenv, store, jobs.C(), reg, log)
	if err != nil {
		stopLane()
		<-laneDone
		stopRelay()
		wg.Wait()
		return errors.Join(err, shutdown(log, srv, nc, cfg.Tuning.ShutdownGrace))
	}
	ready.Store(true)
	log.InfoContext(ctx, "worker ready", slog.String("admin", ln.Addr().String()), slog.Any("corps", cfg.corpIDs()),
		slog.Any("lanes", laneNames))
	fmt.Fprintf(stdout, "worker ready admin=%s\n", ln.Addr())

	var runErr error
	select {
	case err := <-serveErr:
		runErr = fmt.Errorf("serving admin HTTP: %w", err)
		stopLane()
		<-laneDone
	case err := <-laneDone:
		// Run returns before ctx ends only when a test hook stops it.
		runErr = err
	case <-ctx.Done():
		log.Info("shutting down: no new batches, finishing the batch in flight")
		if err := <-laneDone; err != nil {
			runErr = err
		}
	}
	ready.Store(false)
	jobsCtx, cancelJobs := context.WithTimeout(context.Background(), cfg.Tuning.ShutdownGrace)
	runErr = errors.Join(runErr, stopJobs(jobsCtx)) // running jobs are cancelled at the deadline and retried later
	cancelJobs()
	stopRelay()
	wg.Wait()
	return errors.Join(runErr, shutdown(log, srv, nc, cfg.Tuning.ShutdownGrace))
}

// shutdown closes the admin server and drains NATS within grace; the pool is closed by
// the caller's defer, last.
func shutdown(log *slog.Logger, srv *http.Server, nc *nats.Conn, grace time.Duration) error {
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if derr := nc.Drain(); derr != nil && !errors.Is(derr, nats.ErrConnectionClosed) {
		err = errors.Join(err, fmt.Errorf("draining NATS: %w", derr))
	}
	// Drain is asynchronous: wait for it to finish so in-flight acks reach the server.
	for nc.IsDraining() && sctx.Err() == nil {
		sleepCtx(sctx, 10*time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	log.Info("stopped")
	return nil
}

// ensureEventsStream creates WECOM_EVENTS with the receiver's defaults when it does not
// exist yet (the worker may start first); an existing stream is left as the receiver
// configured it.
func ensureEventsStream(ctx context.Context, js jetstream.JetStream) error {
	if _, err := js.Stream(ctx, callback.StreamName); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("looking up stream %s: %w", callback.StreamName, err)
	}
	_, err := js.CreateStream(ctx, callback.StreamConfig(callback.DefaultStreamOptions))
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("creating stream %s: %w", callback.StreamName, err)
	}
	return nil
}

// retry runs f until it succeeds or ctx ends, with a capped backoff, logging failures.
func retry(ctx context.Context, log *slog.Logger, what string, f func() error) error {
	delay := 500 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		log.WarnContext(ctx, what+" failed; retrying", slog.String("error", err.Error()), slog.Duration("in", delay))
		if !sleepCtx(ctx, delay) {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		delay = min(2*delay, 30*time.Second)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runSync is `worker sync --corp X`.
func runSync(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	corp := fs.String("corp", "", "corp id to sync (one of the configured tenants)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *corp == "" || fs.NArg() != 0 {
		return errors.New("worker sync takes --corp CORP_ID")
	}
	cfg, err := loadConfig(getenv, need{tenants: true, contact: true})
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if !contains(cfg.corpIDs(), *corp) {
		return fmt.Errorf("corp %s is not configured (configured: %s)", *corp, strings.Join(cfg.corpIDs(), ", "))
	}
	log := newLogger(stderr, cfg.LogLevel)
	pool, err := openDB(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	reg := prometheus.NewRegistry()
	wc, err := newWeCom(cfg, pool, reg, log)
	if err != nil {
		return err
	}
	store := mirror.NewStore(pool, wc, log, mirror.Options{Metrics: mirror.NewMetrics(reg), LookupConcurrency: cfg.LookupConcurrency})
	defer func() { store.WaitAnalyze(); store.Close() }() // a one-shot sync: let its ANALYZE finish
	rep, err := worker.SyncCorp(ctx, store, wc, *corp, log, worker.NewMetrics(reg))
	if err != nil {
		return err
	}
	for _, e := range []struct {
		name string
		c    mirror.Counts
	}{{"users", rep.Users}, {"departments", rep.Departments}, {"tags", rep.Tags}} {
		fmt.Fprintf(stdout, "%-12s created=%d updated=%d deleted=%d unchanged=%d\n", e.name, e.c.Created, e.c.Updated, e.c.Deleted, e.c.Unchanged)
	}
	return nil
}

// newWeCom builds one WeCom client per tenant (its contacts-sync secret), sharing the
// access tokens through Postgres with every other process and one rate limiter.
func newWeCom(cfg Config, pool *pgxpool.Pool, reg prometheus.Registerer, log *slog.Logger) (*worker.WeCom, error) {
	store := wecom.NewPGTokenStore(pool)
	limits := wecom.NewLimits(wecom.DefaultRateLimitPerMinute, 0)
	clients := map[string]worker.DirectoryClient{}
	for _, t := range cfg.Tenants {
		c, err := wecom.New(wecom.Config{BaseURL: cfg.APIURL, CorpID: t.CorpID, Secret: t.ContactSecret,
			Logger: log, Registerer: reg, Store: store, Limits: limits})
		if err != nil {
			return nil, fmt.Errorf("creating the WeCom client of %s: %w", t, err)
		}
		clients[t.CorpID] = c
	}
	return worker.NewWeCom(clients, cfg.APIConcurrency), nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
