package wecom_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/testutil/pgtest"
	"github.com/wecomsync/wecomsync/internal/wecom"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	testCorp    = "wwclienttest"
	testSecret  = "contact-secret-s3cr3t-value"
	testConsole = "console-secret-s3cr3t-value"
	testApp     = "app-secret-s3cr3t-value"
	testLinked  = "wwlinkedcorp"
)

// interceptor may answer a request itself (returning true) instead of the emulator.
type interceptor func(w http.ResponseWriter, r *http.Request, next http.Handler) bool

// recorder sits in front of the emulator: it counts requests per path (gettoken calls
// included, which the emulator's stats do not separate) and lets a test intercept them.
type recorder struct {
	mu        sync.Mutex
	counts    map[string]int
	seq       []string
	intercept atomic.Pointer[interceptor]
	next      http.Handler
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/cgi-bin/")
	rec.mu.Lock()
	rec.counts[p]++
	rec.seq = append(rec.seq, p)
	rec.mu.Unlock()
	if f := rec.intercept.Load(); f != nil && (*f)(w, r, rec.next) {
		return
	}
	rec.next.ServeHTTP(w, r)
}

// count returns the requests seen for api (path without /cgi-bin/).
func (rec *recorder) count(api string) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.counts[api]
}

// calls returns the sequence of paths seen so far that match one of apis.
func (rec *recorder) calls(apis ...string) []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []string
	for _, p := range rec.seq {
		for _, a := range apis {
			if p == a {
				out = append(out, p)
			}
		}
	}
	return out
}

func (rec *recorder) setIntercept(f interceptor) {
	if f == nil {
		rec.intercept.Store(nil)
		return
	}
	rec.intercept.Store(&f)
}

// fixture is an in-process emulator behind a recorder and a client for it.
type fixture struct {
	emu    *emulator.Server
	srv    *httptest.Server
	rec    *recorder
	client *wecom.Client
	url    string
}

type option func(*emulator.Config, *wecom.Config)

func withSeed(n int) option {
	return func(e *emulator.Config, _ *wecom.Config) { e.SeedUsers = n }
}

func withClient(f func(*wecom.Config)) option {
	return func(_ *emulator.Config, c *wecom.Config) { f(c) }
}

func withEmulator(f func(*emulator.Config)) option {
	return func(e *emulator.Config, _ *wecom.Config) { f(e) }
}

// testClientConfig is a client config with short delays for tests.
func testClientConfig(url string) wecom.Config {
	return wecom.Config{
		BaseURL: url, CorpID: testCorp, Secret: testSecret,
		CallTimeout: 5 * time.Second, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond,
		FreqLimitBlock: 20 * time.Millisecond, MaxAttempts: 8,
	}
}

func setup(t testing.TB, opts ...option) *fixture {
	t.Helper()
	ecfg := emulator.Config{
		CorpID: testCorp, ContactSecret: testSecret, ConsoleSecret: testConsole, AppSecret: testApp,
		SeedUsers: 60, LinkedCorpID: testLinked, Jobs: emulator.JobsConfig{Immediate: true},
	}
	ccfg := testClientConfig("")
	for _, o := range opts {
		o(&ecfg, &ccfg)
	}
	emu, err := emulator.New(ecfg)
	require.NoError(t, err)
	rec := &recorder{counts: map[string]int{}, next: emu.Handler()}
	srv := httptest.NewServer(rec)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = emu.Close(ctx)
	})
	ccfg.BaseURL = srv.URL
	c, err := wecom.New(ccfg)
	require.NoError(t, err)
	return &fixture{emu: emu, srv: srv, rec: rec, client: c, url: srv.URL}
}

// newClient returns another client for the fixture's emulator (another "process").
func (f *fixture) newClient(t testing.TB, mod func(*wecom.Config)) *wecom.Client {
	t.Helper()
	cfg := testClientConfig(f.url)
	if mod != nil {
		mod(&cfg)
	}
	c, err := wecom.New(cfg)
	require.NoError(t, err)
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// errcodeOf returns the WeCom errcode of err, or 0.
func errcodeOf(err error) int {
	var we *wecom.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return 0
}
