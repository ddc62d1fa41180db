package emulator

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRateAndConcurrencyLimits(t *testing.T) {
	t.Parallel()

	t.Run("PerAPIRateLimitAnswers45009UntilNextMinute", func(t *testing.T) {
		t.Parallel()
		clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		e := setup(t, func(c *Config) { c.RateLimitPerMinute = 3; c.Now = clock.Now })
		for i := 0; i < 3; i++ {
			requireCode(t, e.contact(t, "GET", "/cgi-bin/user/get?userid=u000001", nil), 0)
		}
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/get?userid=u000001", nil), CodeFreqLimit)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/department/simplelist", nil), 0) // another API, another budget
		clock.Add(time.Minute)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/get?userid=u000001", nil), 0)
	})

	t.Run("ConcurrencyLimitAnswers45033", func(t *testing.T) {
		t.Parallel()
		e := setup(t, func(c *Config) { c.ConcurrencyLimit = 1; c.Faults.LatencyMS = 10000 })
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/cgi-bin/user/get?userid=u000001&access_token="+e.tok[SecretContact], nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
		}()
		waitFor(t, "a call in flight", func() bool { return e.srv.Inflight("/cgi-bin/user/get") == 1 })
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/get?userid=u000001", nil), CodeConcurrencyLimit)
		cancel() // the held call ends when its client goes away
		wg.Wait()
		require.NoError(t, e.srv.SetFaults(Faults{}))
		waitFor(t, "no call in flight", func() bool { return e.srv.Inflight("/cgi-bin/user/get") == 0 })
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/get?userid=u000001", nil), 0)
	})
}

func TestFaultInjection(t *testing.T) {
	t.Parallel()
	e := setup(t)

	t.Run("AdminEndpointSetsErrorRates", func(t *testing.T) {
		for _, tc := range []struct {
			body string
			code int
		}{
			{`{"error_rate":1}`, CodeSystemBusy},
			{`{"error_rate":0,"freq_limit_rate":1}`, CodeFreqLimit},
			{`{"freq_limit_rate":0,"concurrency_rate":1}`, CodeConcurrencyLimit},
			{`{"concurrency_rate":0}`, 0},
		} {
			status, out := e.raw(t, "POST", "/admin/faults", "", tc.body)
			require.Equal(t, http.StatusOK, status, "%s", out)
			requireCode(t, e.contact(t, "GET", "/cgi-bin/user/get?userid=u000001", nil), tc.code)
		}
	})
	t.Run("AdminRejectsInvalidRates", func(t *testing.T) {
		status, _ := e.raw(t, "POST", "/admin/faults", "", `{"error_rate":2}`)
		require.Equal(t, http.StatusBadRequest, status)
	})
	t.Run("GetReturnsCurrentFaults", func(t *testing.T) {
		e.raw(t, "POST", "/admin/faults", "", `{"latency_ms":1,"callback_drop_rate":0.5}`)
		_, out := e.raw(t, "GET", "/admin/faults", "", nil)
		var f Faults
		require.NoError(t, json.Unmarshal(out, &f))
		require.Equal(t, Faults{LatencyMS: 1, CallbackDropRate: 0.5}, f)
	})
}
