// Command callback receives WeCom's encrypted contact-change callbacks, verifies and
// decrypts them, and stores them in the WECOM_EVENTS JetStream stream, answering WeCom only
// after JetStream holds each event. Configuration is by environment (see README.md).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wecomsync/wecomsync/internal/callback"
	"github.com/wecomsync/wecomsync/internal/tenant"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "callback:", err)
		os.Exit(1)
	}
}

// Config is the receiver's configuration, read from the environment.
type Config struct {
	Addr            string
	NATSURL         string
	Tenants         []tenant.Tenant
	LogLevel        slog.Level
	TimestampWindow time.Duration
	MaxBody         int64
	PublishTimeout  time.Duration
	ShutdownTimeout time.Duration
	Stream          callback.StreamOptions
}

func loadConfig(getenv func(string) string) (Config, error) {
	c := Config{
		Addr:            ":8080",
		NATSURL:         nats.DefaultURL,
		TimestampWindow: 5 * time.Minute,
		MaxBody:         1 << 20,
		PublishTimeout:  3 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		Stream:          callback.DefaultStreamOptions,
	}
	if v := getenv("CALLBACK_ADDR"); v != "" {
		c.Addr = v
	}
	if v := getenv("NATS_URL"); v != "" {
		c.NATSURL = v
	}
	if err := c.LogLevel.UnmarshalText([]byte(cmp(getenv("LOG_LEVEL"), "info"))); err != nil {
		return c, fmt.Errorf("LOG_LEVEL must be debug, info, warn or error, got %q", getenv("LOG_LEVEL"))
	}
	var err error
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{
		{"CALLBACK_TIMESTAMP_WINDOW", &c.TimestampWindow},
		{"CALLBACK_PUBLISH_TIMEOUT", &c.PublishTimeout},
		{"CALLBACK_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout},
		{"WECOM_EVENTS_DUPLICATE_WINDOW", &c.Stream.DuplicateWindow},
		{"WECOM_EVENTS_MAX_AGE", &c.Stream.MaxAge},
	} {
		if v := getenv(d.name); v != "" {
			if *d.dst, err = time.ParseDuration(v); err != nil || *d.dst <= 0 {
				return c, fmt.Errorf("%s must be a positive duration such as 5m, got %q", d.name, v)
			}
		}
	}
	if v := getenv("CALLBACK_MAX_BODY_BYTES"); v != "" {
		if c.MaxBody, err = strconv.ParseInt(v, 10, 64); err != nil || c.MaxBody < 1024 {
			return c, fmt.Errorf("CALLBACK_MAX_BODY_BYTES must be an integer of at least 1024, got %q", v)
		}
	}
	if v := getenv("WECOM_EVENTS_REPLICAS"); v != "" {
		if c.Stream.Replicas, err = strconv.Atoi(v); err != nil || c.Stream.Replicas < 1 || c.Stream.Replicas > 5 {
			return c, fmt.Errorf("WECOM_EVENTS_REPLICAS must be 1 to 5, got %q", v)
		}
	}
	if c.Tenants, err = tenant.Load(getenv, tenant.Need{Callback: true}); err != nil {
		return c, err
	}
	return c, c.validate()
}

func (c Config) validate() error {
	if c.PublishTimeout >= 5*time.Second {
		return fmt.Errorf("CALLBACK_PUBLISH_TIMEOUT must be under WeCom's 5s budget, got %s", c.PublishTimeout)
	}
	return nil
}

func cmp(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// run starts the receiver and blocks until ctx ends or SIGINT/SIGTERM arrives, then shuts
// down: stop accepting, finish in-flight publishes, drain NATS. It prints
// "callback ready addr=HOST:PORT" on stdout once it listens.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 1 {
		return fmt.Errorf("callback takes no arguments (configure it by environment), got %q", strings.Join(args[1:], " "))
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	nc, err := nats.Connect(cfg.NATSURL, nats.Name("wecomsync-callback"), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true), nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("NATS disconnected", slog.Any("error", err))
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
	metrics := callback.NewMetrics(reg)
	h, err := callback.NewHandler(cfg.Tenants, js, log, metrics, callback.Options{
		TimestampWindow: cfg.TimestampWindow, MaxBody: cfg.MaxBody, PublishTimeout: cfg.PublishTimeout,
	})
	if err != nil {
		return err
	}

	// The stream is created in the background so the receiver starts (and answers 503,
	// making WeCom retry) while NATS is still coming up; /readyz says when it can store.
	var streamReady atomic.Bool
	go func() {
		for {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := callback.EnsureStream(sctx, js, cfg.Stream)
			cancel()
			if err == nil {
				streamReady.Store(true)
				log.InfoContext(ctx, "stream ready", slog.String("stream", callback.StreamName))
				return
			}
			log.WarnContext(ctx, "stream not ready yet", slog.String("error", err.Error()))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()

	mux := http.NewServeMux()
	mux.Handle("/callback", h)
	mux.Handle("/callback/", h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !nc.IsConnected() || !streamReady.Load() {
			http.Error(w, "not ready: NATS not connected or stream missing", http.StatusServiceUnavailable)
			return
		}
		rctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if _, err := js.Stream(rctx, callback.StreamName); err != nil {
			http.Error(w, "not ready: stream "+callback.StreamName+" unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	names := make([]string, len(cfg.Tenants))
	for i, t := range cfg.Tenants {
		names[i] = t.Name
	}
	log.InfoContext(ctx, "callback receiver listening", slog.String("addr", ln.Addr().String()), slog.Any("tenants", names))
	fmt.Fprintf(stdout, "callback ready addr=%s\n", ln.Addr())

	select {
	case err := <-serveErr:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: no new requests, finishing in-flight publishes")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if derr := nc.Drain(); derr != nil && !errors.Is(derr, nats.ErrConnectionClosed) {
		err = errors.Join(err, fmt.Errorf("draining NATS: %w", derr))
	}
	if err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	log.Info("stopped")
	return nil
}
