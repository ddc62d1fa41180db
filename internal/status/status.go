// Package status serves the worker's status page: a plain, server-rendered HTML page at
// "/" that refreshes itself every few seconds and works without JavaScript, and the same
// figures as JSON at "/status.json" for scripts.
//
// Per corp it shows the mirror's size (wecom.users, departments, tags), the last event
// applied (wecom.lanes: stream sequence and time), the lag behind WECOM_EVENTS (the
// corp's newest stream sequence against the last applied one, narrowed by the lane
// consumers' pending counts, labelled exact or "at most"), the relay's position
// (wecom.relay_cursors against the newest wecom.changes seq), dead letters and the last
// reconciliation with the drift it healed (wecom.job_runs). Below: the lane consumers on
// WECOM_EVENTS, running and recent jobs with their progress, and the latest dead letters
// (reason only, never the payload).
//
// The page reads Postgres through Querier (one read-only query per figure family) and
// JetStream through StreamGetter; every read of a request shares one timeout. A source
// that cannot be read leaves its figures out and adds a plain problem line; the
// underlying error goes to the log only, so no connection detail reaches the page.
package status

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wecomsync/wecomsync/internal/callback"
)

// Querier is what the page needs from Postgres: read-only queries. A *pgxpool.Pool
// satisfies it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// StreamGetter looks up a JetStream stream by name; jetstream.JetStream satisfies it.
// The page calls Info, GetLastMsgForSubject and ListConsumers on the stream it returns.
type StreamGetter interface {
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
}

// Config configures a Handler. DB is required; the rest have defaults.
type Config struct {
	// DB is the Postgres the mirror lives in (schema wecom).
	DB Querier
	// Streams gives the event stream; nil leaves the NATS figures (lag, lanes) out.
	Streams StreamGetter
	// Stream is the event stream's name; default callback.StreamName (WECOM_EVENTS).
	Stream string
	// Corps are the configured corps, listed even before the mirror holds anything of
	// theirs. Corps found in the database are listed too.
	Corps []string
	// Logger receives the errors behind the page's problem lines; default slog.Default().
	Logger *slog.Logger
	// Now is the clock for "ago" figures; default time.Now.
	Now func() time.Time
	// Timeout bounds all the reads of one request; default 3s.
	Timeout time.Duration
	// Refresh is the page's self-refresh interval; default 5s.
	Refresh time.Duration
	// RecentJobs and RecentDeadLetters bound the lists; defaults 10 and 5.
	RecentJobs, RecentDeadLetters int
}

// Handler serves the status page ("/") and its JSON ("/status.json"). It is safe for
// concurrent use.
type Handler struct {
	cfg Config
}

// New returns a Handler for cfg, filling in defaults. It panics when cfg.DB is nil (a
// programming error).
func New(cfg Config) *Handler {
	if cfg.DB == nil {
		panic("status: Config.DB is required")
	}
	if cfg.Stream == "" {
		cfg.Stream = callback.StreamName
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 5 * time.Second
	}
	if cfg.RecentJobs <= 0 {
		cfg.RecentJobs = 10
	}
	if cfg.RecentDeadLetters <= 0 {
		cfg.RecentDeadLetters = 5
	}
	return &Handler{cfg: cfg}
}

// ServeHTTP answers GET (and HEAD) "/" with the HTML page and "/status.json" with the
// JSON Snapshot; any other path is 404 and any other method 405. A source that cannot be
// read still gives 200, with the figures it could read and Snapshot.Problems saying what
// is missing.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" && r.URL.Path != "/status.json" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	snap := h.Collect(r.Context())
	var buf bytes.Buffer
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if r.URL.Path == "/status.json" {
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false) // for scripts: subjects keep their '>' ("wecom.events.>")
		if err := enc.Encode(snap); err != nil {
			h.cfg.Logger.ErrorContext(r.Context(), "encoding status JSON", slog.String("error", err.Error()))
			http.Error(w, "encoding status failed", http.StatusInternalServerError)
			return
		}
		hdr.Set("Content-Type", "application/json")
	} else {
		if err := h.render(&buf, snap); err != nil {
			h.cfg.Logger.ErrorContext(r.Context(), "rendering status page", slog.String("error", err.Error()))
			http.Error(w, "rendering status page failed", http.StatusInternalServerError)
			return
		}
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		// No scripts, no remote anything: inline CSS only.
		hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	}
	_, _ = w.Write(buf.Bytes())
}
