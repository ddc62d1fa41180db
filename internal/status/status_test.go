package status_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/status"
	"github.com/wecomsync/wecomsync/internal/worker"
)

func TestStatusPage(t *testing.T) {
	t.Parallel()
	// One seeded database and stream for the read-only checks.
	b := setup(t, corpC)
	ids := b.seed(t)

	t.Run("HTMLFiguresMatchTheDatabase", func(t *testing.T) {
		t.Parallel()
		html, hdr := b.get(t, "/")
		require.Equal(t, "text/html; charset=utf-8", hdr.Get("Content-Type"))
		requirePageMatches(t, b, html, ids)
	})

	t.Run("JSONFiguresMatchTheDatabase", func(t *testing.T) {
		t.Parallel()
		s := b.snapshot(t)
		require.Empty(t, s.Problems)
		require.Equal(t, []string{corpA, corpB, corpC}, []string{s.Corps[0].CorpID, s.Corps[1].CorpID, s.Corps[2].CorpID})
		for _, id := range []string{corpA, corpB, corpC} {
			x, c := b.truth(t, id), corpOf(t, s, id)
			require.Equal(t, x.users, c.Users, id)
			require.Equal(t, x.departments, c.Departments, id)
			require.Equal(t, x.tags, c.Tags, id)
			require.Equal(t, x.publishedSeq, c.Relay.PublishedSeq, id)
			require.Equal(t, x.maxSeq, c.Relay.MaxSeq, id)
			require.Equal(t, x.unpublished, c.Relay.Behind, id)
			require.Equal(t, x.dead, c.DeadLetters, id)
		}
		a := corpOf(t, s, corpA)
		x := b.truth(t, corpA)
		require.Equal(t, int64(3), x.users, "the seed")
		require.NotNil(t, a.LastApplied)
		require.Equal(t, uint64(x.appliedSeq), a.LastApplied.StreamSeq)
		require.True(t, x.appliedAt.Equal(a.LastApplied.At), "%s vs %s", x.appliedAt, a.LastApplied.At)
		require.Equal(t, uint64(5), a.NewestEvent.StreamSeq)
		require.Equal(t, status.Lag{State: status.LagBehind, Events: 2, Exact: false, Basis: a.Lag.Basis}, a.Lag)
		require.Contains(t, a.Lag.Basis, "upper bound")
		require.Nil(t, corpOf(t, s, corpB).LastApplied)
		require.Equal(t, status.LagBehind, corpOf(t, s, corpB).Lag.State)
		require.Equal(t, uint64(7), corpOf(t, s, corpB).Lag.Events)
		require.Equal(t, status.LagUpToDate, corpOf(t, s, corpC).Lag.State)
		require.Nil(t, corpOf(t, s, corpC).NewestEvent)

		require.NotNil(t, a.Reconcile.Last)
		require.Equal(t, ids.reconcileID, a.Reconcile.Last.ID)
		require.Equal(t, 3, a.Reconcile.Last.Drift.Total)
		require.Equal(t, 2, a.Reconcile.Last.Drift.Users.Updated)
		require.Nil(t, a.Reconcile.Current)

		require.Len(t, s.Jobs.Running, 1)
		require.Equal(t, ids.runningID, s.Jobs.Running[0].ID)
		require.Equal(t, int64(40), s.Jobs.Running[0].Done)
		require.Equal(t, int64(100), s.Jobs.Running[0].Total)
		require.Equal(t, []int64{ids.failedID, ids.reconcileID}, []int64{s.Jobs.Recent[0].ID, s.Jobs.Recent[1].ID}, "newest first")

		require.Equal(t, int64(2), s.DeadLetters.Pending)
		require.Len(t, s.DeadLetters.Latest, 2)
		require.Equal(t, ids.deadID, s.DeadLetters.Latest[1].ID)
		require.Equal(t, int64(3), s.DeadLetters.Latest[1].StreamSeq)

		require.NotNil(t, s.Stream)
		require.Equal(t, uint64(7), s.Stream.Messages)
		require.Len(t, s.Lanes, 1, "only the worker's lanes: %+v", s.Lanes)
		require.Equal(t, worker.DefaultLane.Name, s.Lanes[0].Name)
		require.Equal(t, uint64(7), s.Lanes[0].Pending)
		require.Equal(t, []string{"wecom.events.>"}, s.Lanes[0].Filters)
		body, _ := b.get(t, "/status.json")
		require.Contains(t, body, `"wecom.events.>"`, "not \\u003e: the JSON is for scripts")
	})

	t.Run("EscapesMarkupAndKeepsSecretsOut", func(t *testing.T) {
		t.Parallel()
		html, hdr := b.get(t, "/")
		require.Contains(t, html, "&lt;script&gt;alert(1)&lt;/script&gt; bad &amp; worse")
		require.NotContains(t, html, "<script")
		require.Contains(t, html, "no privilege &lt;b&gt;")
		require.Contains(t, hdr.Get("Content-Security-Policy"), "default-src 'none'")
		js, _ := b.get(t, "/status.json")
		require.NotContains(t, js, payloadSecret)
		require.NotContains(t, js, stateSecret)
	})

	t.Run("RefreshesItselfWithoutJavaScript", func(t *testing.T) {
		t.Parallel()
		html, _ := b.get(t, "/")
		require.Contains(t, html, `<meta http-equiv="refresh" content="5">`)
		require.NotContains(t, html, "<script")
		require.Equal(t, "no-store", func() string { _, h := b.get(t, "/"); return h.Get("Cache-Control") }())
	})

	t.Run("UnknownPathIsNotFoundAndPostIsRefused", func(t *testing.T) {
		t.Parallel()
		resp, err := http.Get(b.srv.URL + "/nope")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		resp, err = http.Post(b.srv.URL+"/", "text/plain", strings.NewReader("x"))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	})
}

func TestLag(t *testing.T) {
	t.Parallel()

	t.Run("ExactOnTheCorpsOwnLane", func(t *testing.T) {
		t.Parallel()
		b := setup(t, corpA, corpB, corpC)
		ctx := context.Background()
		_, err := worker.EnsureConsumer(ctx, b.js, worker.CorpLane(corpB), worker.DefaultOptions)
		require.NoError(t, err)
		b.publish(t, corpA, `{}`)
		b.publish(t, corpB, `{}`)
		b.publish(t, corpB, `{}`)
		s := b.snapshot(t)
		lag := corpOf(t, s, corpB).Lag
		require.Equal(t, status.LagBehind, lag.State)
		require.Equal(t, uint64(2), lag.Events)
		require.True(t, lag.Exact)
		html, _ := b.get(t, "/")
		require.Equal(t, "2 behind", cell(t, html, "corp-"+corpB+"-lag"))
		require.Equal(t, status.LagUpToDate, corpOf(t, s, corpC).Lag.State, "corp C has no events")
		a := corpOf(t, s, corpA).Lag
		require.Equal(t, uint64(1), a.Events)
		require.False(t, a.Exact)
		require.Contains(t, a.Basis, "no lane receives this corp")
	})

	t.Run("UpToDateWhenTheLaneReachedTheNewestEvent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, corpA, corpB, corpC)
		ctx := context.Background()
		_, err := worker.EnsureConsumer(ctx, b.js, worker.DefaultLane, worker.DefaultOptions)
		require.NoError(t, err)
		b.publish(t, corpA, `{}`)
		b.publish(t, corpB, `{}`)
		b.exec(t, `INSERT INTO wecom.lanes (corp_id, last_stream_seq) VALUES ($1, 1)`, corpA)
		s := b.snapshot(t)
		require.Equal(t, status.LagUpToDate, corpOf(t, s, corpA).Lag.State)
		require.Equal(t, status.LagBehind, corpOf(t, s, corpB).Lag.State)
		html, _ := b.get(t, "/")
		require.Equal(t, "up to date", cell(t, html, "corp-"+corpA+"-lag"))
	})
}

func TestUnavailableSources(t *testing.T) {
	t.Parallel()

	t.Run("MissingStreamLeavesNATSFiguresOutWithAProblemLine", func(t *testing.T) {
		t.Parallel()
		b := setup(t, corpC)
		b.seed(t)
		h := status.New(status.Config{DB: b.pool, Streams: b.js, Stream: "NO_SUCH_STREAM", Logger: slog.New(slog.DiscardHandler)})
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		b.srv = srv
		s := b.snapshot(t)
		require.Len(t, s.Problems, 1)
		require.Contains(t, s.Problems[0], "the event stream NO_SUCH_STREAM could not be read")
		require.Equal(t, status.LagUnknown, corpOf(t, s, corpA).Lag.State)
		require.Equal(t, int64(3), corpOf(t, s, corpA).Users, "Postgres figures are still there")
		html, _ := b.get(t, "/")
		require.Equal(t, "unknown", cell(t, html, "corp-"+corpA+"-lag"))
		require.Contains(t, html, `id="problems"`)
	})

	t.Run("DatabaseDownGivesAPageOfProblemsWithoutDetails", func(t *testing.T) {
		t.Parallel()
		b := setup(t, corpC)
		b.pool.Close() // every query now fails
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s := b.handler.Collect(ctx)
		require.NotEmpty(t, s.Problems)
		for _, p := range s.Problems {
			require.True(t, strings.HasSuffix(p, "could not be read (see the worker log)"), p)
			require.NotContains(t, p, "postgres")
		}
		html, _ := b.get(t, "/")
		require.Contains(t, html, "mirror sizes could not be read")
		require.Equal(t, "0", cell(t, html, fmt.Sprintf("corp-%s-users", corpC)))
	})
}
