package wecom_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/wecom"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func cutConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func TestNoSecretOrTokenInErrorsOrLogs(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	f := setup(t, withClient(func(c *wecom.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.MaxAttempts = 2
	}))
	ctx := ctxT(t)
	token, err := f.client.AccessToken(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, token)

	var errs []error
	check := func(err error) {
		t.Helper()
		require.Error(t, err)
		errs = append(errs, err)
	}

	// Transport errors print the URL: its query must be redacted.
	f.rec.setIntercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.URL.Path == "/cgi-bin/user/get" {
			cutConnection(w)
			return true
		}
		return false
	})
	_, err = f.client.GetUser(ctx, "u000001")
	check(err)
	require.Contains(t, err.Error(), "access_token=REDACTED")

	// An errmsg echoing the token or secret is scrubbed.
	f.rec.setIntercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.URL.Path == "/cgi-bin/user/get" {
			_, _ = w.Write([]byte(`{"errcode":40058,"errmsg":"bad request ` + r.URL.Query().Get("access_token") + ` ` + testSecret + `"}`))
			return true
		}
		return false
	})
	_, err = f.client.GetUser(ctx, "u000001")
	check(err)
	var we *wecom.Error
	require.ErrorAs(t, err, &we)
	require.Equal(t, "bad request REDACTED REDACTED", we.Msg)

	// gettoken carries the secret in its query.
	fresh := f.newClient(t, func(c *wecom.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.MaxAttempts = 2
	})
	f.rec.setIntercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.URL.Path == "/cgi-bin/gettoken" {
			cutConnection(w)
			return true
		}
		return false
	})
	_, err = fresh.GetUser(ctx, "u000001")
	check(err)
	require.Contains(t, err.Error(), "corpsecret=REDACTED")

	// Retries of -1 are logged.
	f.rec.setIntercept(nil)
	faultFor(f, "user/get", 1, emulator.Faults{ErrorRate: 1})
	_, err = f.client.GetUser(ctx, "u000001")
	require.NoError(t, err)

	for _, err := range errs {
		require.NotContains(t, err.Error(), token)
		require.NotContains(t, err.Error(), testSecret)
	}
	out := logs.String()
	require.Contains(t, out, "retrying")
	require.NotContains(t, out, token)
	require.NotContains(t, out, testSecret)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	f := setup(t, withClient(func(c *wecom.Config) { c.Registerer = reg }))
	second := f.newClient(t, func(c *wecom.Config) { c.Registerer = reg }) // shares the collectors
	ctx := ctxT(t)
	faultFor(f, "user/get", 1, emulator.Faults{ConcurrencyRate: 1})
	_, err := f.client.GetUser(ctx, "u000001")
	require.NoError(t, err)
	_, err = second.GetUser(ctx, "nobody")
	require.ErrorIs(t, err, wecom.ErrNotFound)

	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				if l.GetName() != "corp_id" {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
			}
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			if c := m.GetCounter(); c != nil {
				got[key] = c.GetValue()
			}
		}
	}
	require.Equal(t, 2.0, got["wecom_client_calls_total{api=user/get,errcode=0}"]+got["wecom_client_calls_total{api=user/get,errcode=60111}"])
	require.Equal(t, 1.0, got["wecom_client_calls_total{api=user/get,errcode=45033}"])
	require.Equal(t, 1.0, got["wecom_client_retries_total{api=user/get,reason=45033}"])
	require.Equal(t, 2.0, got["wecom_client_token_fetches_total{result=ok}"], "one per client (in-memory stores)")
}
