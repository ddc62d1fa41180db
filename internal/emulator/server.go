package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the emulator: directory, REST API, admin API and callback sender. Create it
// with New; serve Handler yourself (httptest) or call Start; always Close it.
type Server struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	dir     *Directory
	linked  *Directory // nil without a linked corp
	school  *schoolStore
	tokens  *tokenStore
	faults  atomic.Pointer[Faults]
	cb      *sender // always present; cb.def is nil without a callback URL
	mux     *http.ServeMux
	routes  map[string]*routeEntry
	exts    []Extension
	calls   atomic.Int64
	errMu   sync.Mutex
	errs    map[int]int64
	verify  atomic.Value // string: verification result
	httpSrv *http.Server
	ln      net.Listener
	bg      sync.WaitGroup
	stop    chan struct{}
	closed  sync.Once
}

// Extension adds endpoints (and possibly background work) to a Server. The async
// import/export jobs (files jobs_*.go, export_*.go) implement it and register a factory
// with registerExtension from an init func; New calls every factory after the directory is
// ready and Close closes the extensions in reverse order before the callback sender stops.
type Extension interface {
	// Routes returns the endpoints to add; paths must not clash with the core ones.
	Routes() []Route
	// Close stops the extension's background work; it may block until ctx ends.
	Close(ctx context.Context) error
}

var extensionFactories []func(*Server) (Extension, error)

// registerExtension adds a factory New calls for every Server. Call it from init only.
func registerExtension(f func(*Server) (Extension, error)) {
	extensionFactories = append(extensionFactories, f)
}

// Secret kinds a token can belong to.
type SecretKind int

// The secrets of the main corp.
const (
	SecretContact SecretKind = 1 << iota // 通讯录同步 secret
	SecretConsole                        // admin console: writes are called back
	SecretApp                            // read-only self-built app
)

const (
	allSecrets   = SecretContact | SecretConsole | SecretApp
	writeSecrets = SecretContact | SecretConsole
)

// Route is one endpoint. Method is the HTTP method WeCom documents ("GET" or "POST");
// see the package comment for how the other method is treated.
type Route struct {
	Path   string
	Method string
	// NoAuth skips access_token checks, rate limits and faults (e.g. gettoken itself, or
	// a download URL); such a route uses Raw or Handle with a zero Call.Secret.
	NoAuth bool
	// Allow is the set of secrets that may call it; others get 48002. Zero = any.
	Allow SecretKind
	// Handle answers with a JSON value (it must carry errcode/errmsg itself) or an error
	// (an *APIError becomes {"errcode","errmsg"}; any other error answers -1).
	Handle func(c *Call) (any, error)
	// Raw writes the response itself (non-JSON answers); used instead of Handle.
	Raw func(c *Call)
	// ErrorLists names list fields the endpoint's error answers still carry, empty
	// (probes saw user/get errors with "department":[] etc.).
	ErrorLists []string
}

// routeEntry is a Route with its rate-limit window and in-flight counter (single corp,
// so per API is per corp per API).
type routeEntry struct {
	Route
	windowMinute atomic.Int64
	windowCount  atomic.Int64
	inflight     atomic.Int64
}

// Call is one authenticated REST call.
type Call struct {
	W      http.ResponseWriter
	R      *http.Request
	Secret SecretKind // zero for NoAuth routes
	body   []byte
}

// Body returns the request body ("" for a POST endpoint called with GET).
func (c *Call) Body() []byte { return c.body }

// Decode unmarshals the JSON body into v. An empty body leaves v unchanged; malformed
// JSON is 47001.
func (c *Call) Decode(v any) error {
	if len(c.body) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.body, v); err != nil {
		return apiErr(CodeDataFormat, "Warning: wrong json format. %v", err)
	}
	return nil
}

// Query returns a query parameter.
func (c *Call) Query(name string) string { return c.R.URL.Query().Get(name) }

// base is the errcode/errmsg every answer carries.
type base struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

var okBase = base{0, "ok"}

// New builds a Server: it loads the state file (if any) or seeds the directory, seeds the
// linked corp, builds the routes and starts the callback sender. It does not listen; use
// Handler or Start. Errors: invalid Config, unreadable state file, extension failures.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("validating emulator config: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now, errs: map[int]int64{}, stop: make(chan struct{})}
	f := cfg.Faults
	s.faults.Store(&f)
	s.verify.Store("not configured")
	s.dir = NewDirectory(cfg.CorpID, cfg.CorpName)
	loaded := false
	if cfg.StatePath != "" {
		var err error
		if loaded, err = s.dir.LoadFile(cfg.StatePath); err != nil {
			return nil, err
		}
	}
	if !loaded && cfg.SeedUsers > 0 {
		s.dir.Seed(cfg.SeedUsers, cfg.SeedRandom)
	}
	if cfg.LinkedCorpID != "" {
		s.linked = NewDirectory(cfg.LinkedCorpID, "互联企业")
		s.linked.Seed(cfg.LinkedCorpUsers, cfg.SeedRandom+1)
	}
	s.school = newSchoolStore()
	s.tokens = newTokenStore(cfg.TokenTTL)
	var def *CallbackTarget
	if cfg.CallbackURL != "" {
		var err error
		if def, err = NewCallbackTarget(cfg.CallbackURL, cfg.CallbackToken, cfg.CallbackAESKey, cfg.CorpID); err != nil {
			return nil, err
		}
		s.verify.Store("pending")
	}
	s.cb = newSender(s, def)
	s.routes = map[string]*routeEntry{}
	for _, r := range s.coreRoutes() {
		s.addRoute(r)
	}
	for _, mk := range extensionFactories {
		ext, err := mk(s)
		if err != nil {
			s.closeExts(context.Background())
			return nil, fmt.Errorf("starting emulator extension: %w", err)
		}
		s.exts = append(s.exts, ext)
		for _, r := range ext.Routes() {
			s.addRoute(r)
		}
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/", s.serveAPI)
	s.adminRoutes(s.mux)
	s.bg.Add(1)
	go func() { defer s.bg.Done(); s.cb.run() }()
	if cfg.StatePath != "" && cfg.StateInterval > 0 {
		s.bg.Add(1)
		go s.saveLoop()
	}
	s.log.Info("emulator directory ready", "corp_id", cfg.CorpID, "users", s.dir.UserCount(), "state_loaded", loaded)
	return s, nil
}

func (s *Server) addRoute(r Route) {
	s.routes[r.Path] = &routeEntry{Route: r}
}

// Directory returns the main corp's directory.
func (s *Server) Directory() *Directory { return s.dir }

// LinkedDirectory returns the linked corp's directory, or nil.
func (s *Server) LinkedDirectory() *Directory { return s.linked }

// Config returns the effective configuration (defaults applied).
func (s *Server) Config() Config { return s.cfg }

// Logger returns the server's logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// Now returns the server clock's current time.
func (s *Server) Now() time.Time { return s.now() }

// Handler returns the HTTP handler serving /cgi-bin/, /admin/ and /healthz.
func (s *Server) Handler() http.Handler { return s.mux }

// Start listens on Config.Addr and serves in the background; it then runs the callback
// URL verification in the background (result in /admin/stats and the log). It returns
// once listening; Addr gives the actual address.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	s.httpSrv = &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("emulator http server stopped", "err", err)
		}
	}()
	if s.cb.def != nil && !s.cfg.SkipCallbackVerify {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			vctx, cancel := context.WithTimeout(context.Background(), s.cfg.CallbackTimeout)
			defer cancel()
			go func() {
				select {
				case <-s.stop:
					cancel()
				case <-vctx.Done():
				}
			}()
			_ = s.VerifyCallbackURL(vctx)
		}()
	}
	return nil
}

// Addr returns the address Start listens on ("" before Start).
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops serving (waiting for in-flight calls until ctx ends), closes extensions,
// lets the callback sender drain its queue until ctx ends, then saves the state file.
// It is safe to call more than once; later calls return nil.
func (s *Server) Close(ctx context.Context) error {
	var errs []error
	s.closed.Do(func() {
		close(s.stop)
		if s.httpSrv != nil {
			if err := s.httpSrv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("shutting down http server: %w", err))
			}
		}
		errs = append(errs, s.closeExts(ctx))
		s.cb.close(ctx)
		s.bg.Wait()
		if s.cfg.StatePath != "" {
			if err := s.dir.SaveFile(s.cfg.StatePath); err != nil {
				errs = append(errs, err)
			} else {
				s.log.Info("emulator state saved", "path", s.cfg.StatePath)
			}
		}
	})
	return errors.Join(errs...)
}

func (s *Server) closeExts(ctx context.Context) error {
	var errs []error
	for i := len(s.exts) - 1; i >= 0; i-- {
		if err := s.exts[i].Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("closing emulator extension: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (s *Server) saveLoop() {
	defer s.bg.Done()
	t := time.NewTicker(s.cfg.StateInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.dir.SaveFile(s.cfg.StatePath); err != nil {
				s.log.Error("saving emulator state", "err", err)
			}
		}
	}
}

// Faults returns the current fault injection settings.
func (s *Server) Faults() Faults { return *s.faults.Load() }

// SetFaults replaces the fault injection settings; it returns an error for invalid rates.
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.faults.Store(&f)
	return nil
}

// serveAPI routes /cgi-bin/ (and extension) paths. Unknown paths get HTTP 404 with an
// empty body, as WeCom.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	rt, ok := s.routes[r.URL.Path]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	c := &Call{W: w, R: r}
	// A POST endpoint called with GET has no body, so it answers its missing-parameter
	// error (ASSUMPTION, see the package comment). Raw routes read the body themselves.
	if r.Method == http.MethodPost && rt.Raw == nil {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		if err != nil {
			return
		}
		c.body = body
	}
	if rt.NoAuth {
		s.dispatch(rt, c)
		return
	}
	s.calls.Add(1)
	// Token first (WeCom checks it before anything else), then permission, limits, faults.
	secret, err := s.tokens.check(r.URL.Query().Get("access_token"), s.now())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	c.Secret = secret
	if rt.Allow != 0 && rt.Allow&secret == 0 {
		s.writeErr(w, apiErr(CodeNoPermission, "api forbidden"))
		return
	}
	if lim := s.cfg.RateLimitPerMinute; lim > 0 {
		minute := s.now().Unix() / 60
		if old := rt.windowMinute.Load(); old != minute && rt.windowMinute.CompareAndSwap(old, minute) {
			rt.windowCount.Store(0)
		}
		if rt.windowCount.Add(1) > int64(lim) {
			s.writeErr(w, apiErr(CodeFreqLimit, "api freq out of limit"))
			return
		}
	}
	if lim := s.cfg.ConcurrencyLimit; lim > 0 {
		n := rt.inflight.Add(1)
		defer rt.inflight.Add(-1)
		if n > int64(lim) {
			s.writeErr(w, apiErr(CodeConcurrencyLimit, "api concurrent out of limit"))
			return
		}
	} else {
		rt.inflight.Add(1)
		defer rt.inflight.Add(-1)
	}
	f := s.faults.Load()
	if f.LatencyMS > 0 {
		t := time.NewTimer(time.Duration(f.LatencyMS) * time.Millisecond)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if f.ErrorRate > 0 || f.FreqLimitRate > 0 || f.ConcurrencyRate > 0 {
		x := rand.Float64()
		switch {
		case x < f.ErrorRate:
			s.writeErr(w, apiErr(CodeSystemBusy, "system busy"))
			return
		case x < f.ErrorRate+f.FreqLimitRate:
			s.writeErr(w, apiErr(CodeFreqLimit, "api freq out of limit"))
			return
		case x < f.ErrorRate+f.FreqLimitRate+f.ConcurrencyRate:
			s.writeErr(w, apiErr(CodeConcurrencyLimit, "api concurrent out of limit"))
			return
		}
	}
	s.dispatch(rt, c)
}

// Inflight returns the number of calls currently running for the API at path.
func (s *Server) Inflight(path string) int64 {
	if rt, ok := s.routes[path]; ok {
		return rt.inflight.Load()
	}
	return 0
}

func (s *Server) dispatch(rt *routeEntry, c *Call) {
	if rt.Raw != nil {
		rt.Raw(c)
		return
	}
	v, err := rt.Handle(c)
	var ae *APIError
	if err != nil && len(rt.ErrorLists) > 0 && errors.As(err, &ae) {
		s.countErr(ae.Code)
		m := map[string]any{"errcode": ae.Code, "errmsg": ae.Msg}
		for _, k := range rt.ErrorLists {
			m[k] = []any{}
		}
		s.writeJSON(c.W, m)
		return
	}
	if err != nil {
		s.writeErr(c.W, err)
		return
	}
	s.writeJSON(c.W, v)
}

func (s *Server) writeJSON(w http.ResponseWriter, v any) {
	// WeCom does not HTML-escape its JSON: a download URL's '&' stays '&', not \u0026.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		s.writeErr(w, err)
		return
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

// writeErr answers an error as WeCom does: HTTP 200 with {"errcode","errmsg"}.
func (s *Server) writeErr(w http.ResponseWriter, err error) {
	var ae *APIError
	if !errors.As(err, &ae) {
		s.log.Error("emulator handler failed", "err", err)
		ae = apiErr(CodeSystemBusy, "system busy")
	}
	s.countErr(ae.Code)
	s.writeJSON(w, base{ae.Code, ae.Msg})
}

func (s *Server) countErr(code int) {
	s.errMu.Lock()
	s.errs[code]++
	s.errMu.Unlock()
}

// Notify delivers change_contact callbacks for events to the configured callback URL, in
// order, after the ones already queued. It never blocks on delivery and does nothing
// without a callback URL. The REST handlers call it for console-secret writes only.
func (s *Server) Notify(events ...ChangeEvent) {
	if s.cb.def == nil {
		return
	}
	at := s.now()
	for _, ev := range events {
		if x := changeXML(s.cfg.CorpID, ev, at, s.cfg.CallbackMinimal); x != nil {
			s.cb.enqueue(outMsg{target: s.cb.def, xml: x})
		}
	}
}

// update applies fn to the directory for a REST call and, when the call was made with the
// console secret, queues the callbacks of its changes before the lock is released (so
// they are delivered in the order the changes happened).
func (s *Server) update(c *Call, fn func(tx *Tx) error) error {
	_, err := s.dir.UpdateNotify(fn, func(evs []ChangeEvent) {
		if c.Secret == SecretConsole {
			s.Notify(evs...)
		}
	})
	return err
}

// SendCallback queues an arbitrary plaintext XML message (e.g. a batch_job_result) for
// encrypted delivery, in order with the change events, to target, or to the configured
// callback URL when target is nil. It returns an error when target is nil and no callback
// URL is configured. It does not block on delivery.
func (s *Server) SendCallback(target *CallbackTarget, xml []byte) error {
	if target == nil {
		if s.cb.def == nil {
			return errors.New("sending callback: no callback URL configured")
		}
		target = s.cb.def
	}
	s.cb.enqueue(outMsg{target: target, xml: xml})
	return nil
}
