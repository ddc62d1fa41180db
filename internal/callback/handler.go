// Package callback is the HTTP receiver for WeCom's encrypted callbacks: it verifies and
// decrypts each one, parses it into an event, stores it in the WECOM_EVENTS JetStream
// stream, and answers WeCom 200 only once JetStream has acknowledged it, so an event is
// never acknowledged to WeCom and then lost.
package callback

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wecomsync/wecomsync/internal/crypto"
	"github.com/wecomsync/wecomsync/internal/event"
	"github.com/wecomsync/wecomsync/internal/tenant"
)

// Options tune the handler; zero values take the defaults.
type Options struct {
	// TimestampWindow is how far a callback's timestamp may be from now (default 5 min).
	TimestampWindow time.Duration
	// MaxBody is the largest POST body accepted (default 1 MiB).
	MaxBody int64
	// PublishTimeout bounds the wait for a PubAck, so WeCom gets a 503 inside its
	// 5-second budget and retries (default 3 s).
	PublishTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.TimestampWindow == 0 {
		o.TimestampWindow = 5 * time.Minute
	}
	if o.MaxBody == 0 {
		o.MaxBody = 1 << 20
	}
	if o.PublishTimeout == 0 {
		o.PublishTimeout = 3 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Publisher is the part of jetstream.JetStream the handler needs.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

type tenantState struct {
	t       tenant.Tenant
	crypter *crypto.Crypter
}

// Handler serves /callback and /callback/{tenant}.
type Handler struct {
	tenants map[string]*tenantState
	single  *tenantState // served at /callback: the only tenant, or the one named "default"
	pub     Publisher
	log     *slog.Logger
	metrics *Metrics
	opts    Options
	bufs    sync.Pool
}

// NewHandler returns a Handler for tenants that publishes to pub. It returns an error
// when a tenant's EncodingAESKey is malformed.
func NewHandler(tenants []tenant.Tenant, pub Publisher, log *slog.Logger, metrics *Metrics, opts Options) (*Handler, error) {
	opts.defaults()
	h := &Handler{tenants: map[string]*tenantState{}, pub: pub, log: log, metrics: metrics, opts: opts}
	h.bufs.New = func() any { return new(bytes.Buffer) }
	for _, t := range tenants {
		c, err := crypto.New(t.Token, t.AESKey, t.CorpID)
		if err != nil {
			return nil, fmt.Errorf("configuring %s: %w", t, err)
		}
		h.tenants[t.Name] = &tenantState{t: t, crypter: c}
	}
	// The bare /callback serves the only tenant, or the one named "default" among several
	// (so adding a second tenant, e.g. while rotating a key, keeps the old URL working).
	if len(tenants) == 1 {
		h.single = h.tenants[tenants[0].Name]
	} else {
		h.single = h.tenants[tenant.DefaultName]
	}
	return h, nil
}

// ServeHTTP routes GET (URL verification) and POST (event delivery).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/callback")
	var ts *tenantState
	switch {
	case !ok:
	case name == "" || name == "/":
		ts = h.single
	case name[0] == '/' && !strings.Contains(name[1:], "/"):
		ts = h.tenants[name[1:]]
	}
	if ts == nil {
		h.reject(w, r, "", http.StatusNotFound, OutcomeUnknownTenant, "unknown tenant", nil)
		return
	}
	switch r.Method {
	case http.MethodGet:
		h.verifyURL(w, r, ts)
	case http.MethodPost:
		h.receive(w, r, ts)
	default:
		w.Header().Set("Allow", "GET, POST")
		h.reject(w, r, ts.t.Name, http.StatusMethodNotAllowed, OutcomeBadMethod, "method not allowed", nil)
	}
}

// reject answers an error status with a short plain-text reason. The log line carries
// the reason and the error, which never include a secret or the ciphertext.
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, tenantName string, status int, outcome, reason string, err error) {
	h.metrics.Requests.WithLabelValues(tenantName, r.Method, outcome).Inc()
	attrs := []any{slog.String("tenant", tenantName), slog.String("method", r.Method), slog.Int("status", status),
		slog.String("outcome", outcome), slog.String("remote_addr", r.RemoteAddr)}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	level := slog.LevelWarn
	if status >= 500 {
		level = slog.LevelError
	}
	h.log.Log(r.Context(), level, "callback rejected: "+reason, attrs...)
	http.Error(w, reason, status)
}

type params struct {
	signature, timestamp, nonce string
}

// query reads the signed parameters, rejecting requests that lack them or carry a
// timestamp outside the window. It reports false after answering the request.
func (h *Handler) query(w http.ResponseWriter, r *http.Request, ts *tenantState) (params, bool) {
	q := r.URL.Query()
	p := params{signature: q.Get("msg_signature"), timestamp: q.Get("timestamp"), nonce: q.Get("nonce")}
	if p.signature == "" || p.timestamp == "" || p.nonce == "" {
		h.reject(w, r, ts.t.Name, http.StatusBadRequest, OutcomeBadRequest, "msg_signature, timestamp and nonce are required", nil)
		return p, false
	}
	return p, true
}

// fresh checks the (already authenticated) timestamp against the window, so a captured
// request cannot be replayed later. It reports false after answering the request.
func (h *Handler) fresh(w http.ResponseWriter, r *http.Request, ts *tenantState, p params) bool {
	sec, err := strconv.ParseInt(p.timestamp, 10, 64)
	if err != nil {
		h.reject(w, r, ts.t.Name, http.StatusBadRequest, OutcomeBadRequest, "timestamp is not a unix time", nil)
		return false
	}
	skew := h.opts.Now().Sub(time.Unix(sec, 0))
	if skew > h.opts.TimestampWindow || -skew > h.opts.TimestampWindow {
		h.reject(w, r, ts.t.Name, http.StatusForbidden, OutcomeStale, "timestamp outside the allowed window",
			fmt.Errorf("timestamp is %s away from now, window %s", skew.Round(time.Second), h.opts.TimestampWindow))
		return false
	}
	return true
}

func (h *Handler) cryptoFailure(w http.ResponseWriter, r *http.Request, ts *tenantState, err error) {
	reason, status, outcome := "decrypt", http.StatusBadRequest, OutcomeDecryptFailed
	switch {
	case errors.Is(err, crypto.ErrSignature):
		reason, status, outcome = "signature", http.StatusUnauthorized, OutcomeBadSignature
	case errors.Is(err, crypto.ErrEnvelope):
		reason, outcome = "envelope", OutcomeBadRequest
	case errors.Is(err, crypto.ErrBase64):
		reason = "base64"
	case errors.Is(err, crypto.ErrPadding):
		reason = "padding"
	case errors.Is(err, crypto.ErrShortBuffer):
		reason = "short_buffer"
	case errors.Is(err, crypto.ErrReceiveID):
		reason, status = "receiveid", http.StatusForbidden
	}
	h.metrics.CryptoFailures.WithLabelValues(ts.t.Name, reason).Inc()
	h.reject(w, r, ts.t.Name, status, outcome, "callback rejected ("+reason+")", err)
}

// verifyURL answers the admin console's GET with the decrypted echostr, verbatim.
func (h *Handler) verifyURL(w http.ResponseWriter, r *http.Request, ts *tenantState) {
	p, ok := h.query(w, r, ts)
	if !ok {
		return
	}
	echostr := r.URL.Query().Get("echostr")
	if echostr == "" {
		h.reject(w, r, ts.t.Name, http.StatusBadRequest, OutcomeBadRequest, "echostr is required", nil)
		return
	}
	if err := ts.crypter.VerifySignature(p.signature, p.timestamp, p.nonce, echostr); err != nil {
		h.cryptoFailure(w, r, ts, err)
		return
	}
	if !h.fresh(w, r, ts, p) {
		return
	}
	plain, err := ts.crypter.Decrypt(echostr)
	if err != nil {
		h.cryptoFailure(w, r, ts, err)
		return
	}
	h.metrics.Requests.WithLabelValues(ts.t.Name, r.Method, OutcomeVerified).Inc()
	h.log.InfoContext(r.Context(), "callback URL verified", slog.String("tenant", ts.t.Name))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(plain)
}

// receive handles one POSTed event: verify, decrypt, parse, publish, then answer.
func (h *Handler) receive(w http.ResponseWriter, r *http.Request, ts *tenantState) {
	received := h.opts.Now()
	p, ok := h.query(w, r, ts)
	if !ok {
		return
	}
	buf := h.bufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 { // do not pin rare huge buffers in the pool
			buf.Reset()
			h.bufs.Put(buf)
		}
	}()
	buf.Reset()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.opts.MaxBody)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.reject(w, r, ts.t.Name, http.StatusRequestEntityTooLarge, OutcomeTooLarge, "body too large",
				fmt.Errorf("body exceeds %d bytes", h.opts.MaxBody))
			return
		}
		h.reject(w, r, ts.t.Name, http.StatusBadRequest, OutcomeBadRequest, "reading body", err)
		return
	}
	env, err := crypto.ParseEnvelope(buf.Bytes())
	if err != nil {
		h.cryptoFailure(w, r, ts, err)
		return
	}
	if err := ts.crypter.VerifySignature(p.signature, p.timestamp, p.nonce, env.Encrypt); err != nil {
		h.cryptoFailure(w, r, ts, err)
		return
	}
	if !h.fresh(w, r, ts, p) {
		return
	}
	plain, err := ts.crypter.Decrypt(env.Encrypt)
	if err != nil {
		h.cryptoFailure(w, r, ts, err)
		return
	}

	msg, subject := h.message(r.Context(), ts, plain, received)
	data := msg.AppendJSON(make([]byte, 0, len(msg.XML)*2+len(msg.Data)+256))
	nm := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	nm.Header.Set(jetstream.MsgIDHeader, msg.ID)

	ctx, cancel := context.WithTimeout(r.Context(), h.opts.PublishTimeout)
	defer cancel()
	start := time.Now()
	ack, err := h.pub.PublishMsg(ctx, nm, jetstream.WithExpectStream(StreamName))
	h.metrics.PublishDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		// Not stored: a non-200 makes WeCom retry, and the retry carries the same XML, so
		// the same Nats-Msg-Id dedups it if this publish did land after all.
		h.reject(w, r, ts.t.Name, http.StatusServiceUnavailable, OutcomePublishFailed, "event not stored, retry",
			fmt.Errorf("publishing %s: %w", subject, err))
		return
	}
	outcome := OutcomeOK
	if ack.Duplicate {
		outcome = OutcomeDuplicate
		h.metrics.Duplicates.WithLabelValues(ts.t.Name).Inc()
	} else {
		evl, ctl := eventLabels(msg.Event, msg.ChangeType)
		h.metrics.Events.WithLabelValues(ts.t.Name, evl, ctl).Inc()
	}
	h.metrics.Requests.WithLabelValues(ts.t.Name, r.Method, outcome).Inc()
	if h.log.Enabled(r.Context(), slog.LevelDebug) {
		h.log.DebugContext(r.Context(), "callback stored", slog.String("tenant", ts.t.Name), slog.String("subject", subject),
			slog.String("id", msg.ID), slog.Uint64("stream_seq", ack.Sequence), slog.Bool("duplicate", ack.Duplicate))
	}
	w.WriteHeader(http.StatusOK)
}

// UnparsedEvent is the event name of messages whose decrypted XML could not be parsed.
// Such a callback is authentic (its signature verified), so it is stored rather than
// rejected, under wecom.events.<corp>.unparsed with the raw XML, for the worker to
// dead-letter: WeCom would only retry the same bytes and then drop them.
const UnparsedEvent = "unparsed"

// message builds the bus message and subject for a decrypted callback.
func (h *Handler) message(ctx context.Context, ts *tenantState, plain []byte, received time.Time) (*event.Message, string) {
	ev, err := event.Parse(plain)
	if err != nil {
		h.metrics.Unparsed.WithLabelValues(ts.t.Name).Inc()
		h.log.WarnContext(ctx, "storing a callback whose XML is malformed", slog.String("tenant", ts.t.Name), slog.String("error", err.Error()))
		msg := event.NewMessage(nil, plain, ts.t.Name, ts.t.CorpID, received)
		msg.Event = UnparsedEvent
		return msg, "wecom.events." + event.Token(ts.t.CorpID) + "." + UnparsedEvent
	}
	return event.NewMessage(ev, plain, ts.t.Name, ts.t.CorpID, received), ev.Subject(ts.t.CorpID)
}
