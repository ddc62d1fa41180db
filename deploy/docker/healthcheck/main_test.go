package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRun(t *testing.T) {
	t.Parallel()
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ready\n")
	}))
	t.Cleanup(ready.Close)
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not ready: NATS not connected", http.StatusServiceUnavailable)
	}))
	t.Cleanup(notReady.Close)
	hanging := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(hanging.Close)
	noEnv := func(string) string { return "" }

	t.Run("SucceedsOn2xx", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		require.NoError(t, run(context.Background(), []string{"healthcheck", ready.URL}, noEnv, &out, io.Discard))
		require.Contains(t, out.String(), "200 OK")
	})
	t.Run("UsesHealthcheckURLFromEnvironment", func(t *testing.T) {
		t.Parallel()
		env := func(k string) string {
			if k == "HEALTHCHECK_URL" {
				return ready.URL
			}
			return ""
		}
		require.NoError(t, run(context.Background(), []string{"healthcheck"}, env, io.Discard, io.Discard))
	})
	t.Run("FailsOnNon2xxWithTheReason", func(t *testing.T) {
		t.Parallel()
		err := run(context.Background(), []string{"healthcheck", notReady.URL}, noEnv, io.Discard, io.Discard)
		require.ErrorContains(t, err, "503")
		require.ErrorContains(t, err, "NATS not connected")
	})
	t.Run("FailsWhenTheServerDoesNotAnswerInTime", func(t *testing.T) {
		t.Parallel()
		err := run(context.Background(), []string{"healthcheck", "-timeout", "50ms", hanging.URL}, noEnv, io.Discard, io.Discard)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("FailsWithoutAURL", func(t *testing.T) {
		t.Parallel()
		err := run(context.Background(), []string{"healthcheck"}, noEnv, io.Discard, io.Discard)
		require.ErrorContains(t, err, "HEALTHCHECK_URL")
	})
	t.Run("RejectsSeveralURLs", func(t *testing.T) {
		t.Parallel()
		err := run(context.Background(), []string{"healthcheck", ready.URL, ready.URL}, noEnv, io.Discard, io.Discard)
		require.ErrorContains(t, err, "at most one URL")
	})
}
